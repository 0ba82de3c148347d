"""The layers: what each function gets, what the build puts in them, and how function sizes are counted.

No pip, no network: the build's pure parts run on small directories, and the synthesized stack on stub layers.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from infra_synth import REPO_ROOT, Synthesized, make_stub_layers

from earshot import routes
from earshot.ffprobe_binary import read_digest_record, unpack_ffprobe
from infra import build_layers
from infra.capabilities.layers import Layers
from infra.constants import (
    AUDIO_FUNCTIONS,
    AUDIO_LAYER,
    AUDIO_LAYER_MODULES,
    CORE_LAYER,
    FFPROBE_LAYER,
    FUNCTIONS_DIR,
    IMAGE_FUNCTIONS,
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    LIGHT_FUNCTIONS,
    METERING_FUNCTIONS,
    layers_for,
)

FUNCTIONS = routes.functions()
LIGHT = sorted(set(FUNCTIONS) & LIGHT_FUNCTIONS)


def _layer_refs(synth: Synthesized, name: str) -> list[str]:
    props = synth.resources[synth.function_logical_id(name)]["Properties"]
    return [layer["Ref"] for layer in props["Layers"]]


# --- which function gets which layer -------------------------------------------------------------------------


def test_every_function_is_audio_metering_light_or_an_image() -> None:
    classes = (AUDIO_FUNCTIONS, METERING_FUNCTIONS, LIGHT_FUNCTIONS, IMAGE_FUNCTIONS)
    assert sum(len(c) for c in classes) == len(set().union(*classes))  # disjoint
    on_disk = {fn.name for fn in FUNCTIONS_DIR.iterdir() if (fn / "handler.py").is_file()}
    unclassified = (set(FUNCTIONS) | on_disk) - set().union(*classes)
    assert not unclassified, f"classify {sorted(unclassified)} in infra.constants (AUDIO_FUNCTIONS/LIGHT_FUNCTIONS)"


def test_the_functions_that_handle_audio_are_the_audio_ones() -> None:
    # Meter and bill, convert for upstreams (PyAV); the embedded engines run in the inference image.
    assert {"transcriptions", "understand", "extract"} <= AUDIO_FUNCTIONS
    # Meters (ffprobe) and moves money; never decodes.
    assert {"workflow"} == METERING_FUNCTIONS
    assert {"inference"} == IMAGE_FUNCTIONS
    # They plan tasks with earshot.kinds.prepare, whose embedded engines stay light proxies until they run.
    assert {
        "authorizer",
        "account",
        "models",
        "openapi",
        "tasks",
        "understanding",
        "ingest",
        "uploads",
    } <= LIGHT_FUNCTIONS


def test_an_unclassified_function_fails_synthesis(tmp_path: Path) -> None:
    stubs = make_stub_layers(tmp_path)
    layers = Layers(
        Stack(App(), "Probe"),
        "Layers",
        core_asset_dir=stubs[CORE_LAYER],
        audio_asset_dir=stubs[AUDIO_LAYER],
        ffprobe_asset_dir=stubs[FFPROBE_LAYER],
    )
    with pytest.raises(KeyError, match=r"neither infra\.constants\.AUDIO_FUNCTIONS nor LIGHT_FUNCTIONS"):
        layers.for_function("karaoke")


def test_three_layers_for_the_same_runtime_and_architecture(dev: Synthesized) -> None:
    layers = dev.of_type("AWS::Lambda::LayerVersion")
    assert set(layers) == set(dev.layer_logical_ids().values())
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
        assert layer["Properties"]["CompatibleArchitectures"] == ["x86_64"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_audio_functions_get_core_audio_ffprobe_and_light_ones_only_core(dev: Synthesized, name: str) -> None:
    ids = dev.layer_logical_ids()
    layers: tuple[str, ...]
    if name in AUDIO_FUNCTIONS:
        layers = (CORE_LAYER, AUDIO_LAYER, FFPROBE_LAYER)
    elif name in METERING_FUNCTIONS:
        layers = (CORE_LAYER, FFPROBE_LAYER)
    else:
        layers = (CORE_LAYER,)
    expected = {ids[layer] for layer in layers}
    refs = _layer_refs(dev, name)
    assert len(refs) == len(expected) and set(refs) == expected  # CDK sorts them; the layers never overlap
    assert layers_for(name) == layers


# --- the light functions run without the audio layer ---------------------------------------------------------

# Run in a fresh interpreter (this one has numpy loaded already): make the audio layer's modules unimportable, as
# they are in a function without that layer, load each light function's handler and its routes' endpoints, then
# serve its sample events (events/<function>-*.json) with a real key in a local store.
_LIGHT_PROBE = r"""
import importlib, importlib.util, json, sys
from pathlib import Path

repo, data_dir = Path(sys.argv[1]), Path(sys.argv[2])
functions, absent = sys.argv[3].split(","), set(sys.argv[4].split(","))
hide_ffprobe = sys.argv[5] == "hide-ffprobe"


class AudioLayerAbsent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in absent:
            raise ModuleNotFoundError(f"No module named {name!r} (the audio layer is not mounted)", name=name)
        return None


sys.meta_path.insert(0, AudioLayerAbsent())
from earshot import config, routes
from earshot.adapters.sqlite_store import SqliteStore
from earshot.local.events import LocalContext
from earshot.ports import new_task
from earshot.runtime import get_runtime
from earshot.services.accounts import create_key

if hide_ffprobe:  # the light functions have no ffprobe layer either
    config._REPO_FFPROBE = data_dir / "no-ffprobe"
new = create_key(SqliteStore(data_dir / "earshot.db"), name="probe", balance_micro_usd=1_000_000)


class StartsRecorded:  # deployed, these functions start Step Functions executions; the workflow runs elsewhere
    def __init__(self):
        self.started = []

    def start(self, task_id, state):
        self.started.append(task_id)


get_runtime()._extras["jobs"] = StartsRecorded()


def ensure_task(task_id):  # the task a tasks-* event names, owned by the probe's account, as submit_task leaves it
    tasks = get_runtime().tasks
    if tasks.get_task(task_id) is None:
        kind = task_id.split("-")[1]
        task = new_task(kind=kind, account_id=new.account.id, model="probe", request={})
        tasks.create_task(task.model_copy(update={"id": task_id}))
        tasks.append_event(task_id, type="status", data={"status": "pending", "progress": 0})


outcome = {}
for function in functions:
    spec = importlib.util.spec_from_file_location(f"{function}_handler", repo / "functions" / function / "handler.py")
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    for route in routes.routes_for(function):
        importlib.import_module(route.endpoint.split(":")[0])
    for path in sorted((repo / "events").glob(f"{function}-*.json")):
        event = json.loads(path.read_text())
        if "headers" in event:  # HTTP events; the ingest function's are S3 notifications
            event["headers"]["authorization"] = f"Bearer {new.secret}"
        caller = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda")
        if caller is not None:
            caller.update(account_id=new.account.id, key_id=new.key.id)
        if "task_id" in (event.get("pathParameters") or {}):
            ensure_task(event["pathParameters"]["task_id"])
        try:
            result = handler.lambda_handler(event, LocalContext(function))
        except Exception as exc:
            outcome[path.name] = f"raised {type(exc).__name__}: {exc}"
            continue
        if function == "authorizer":
            outcome[path.name] = "authorized" if "account_id" in result["context"] else str(result["context"])
        elif function == "ingest":
            outcome[path.name] = "ingested" if "tasks" in result else str(result)
        elif function == "sweeper":
            outcome[path.name] = "swept" if "refunded" in result else str(result)
        else:
            outcome[path.name] = result["statusCode"]
loaded = sorted(m for m in sys.modules if m.split(".")[0] in absent)
print(json.dumps({"events": outcome, "audio_modules_loaded": loaded}))
"""


def _probe_light_functions(tmp_path: Path, *, hide_ffprobe: bool) -> dict[str, object]:
    env = {
        **os.environ,
        "EARSHOT_RUNTIME": "local",
        "EARSHOT_DATA_DIR": str(tmp_path),
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
    env.pop("EARSHOT_FFPROBE", None)
    if hide_ffprobe:
        env["PATH"] = os.path.dirname(sys.executable)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _LIGHT_PROBE,
            str(REPO_ROOT),
            str(tmp_path),
            ",".join(LIGHT),
            ",".join(AUDIO_LAYER_MODULES),
            "hide-ffprobe" if hide_ffprobe else "keep-ffprobe",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _expected_events() -> dict[str, object]:
    events = sorted(p.name for f in LIGHT for p in (REPO_ROOT / "events").glob(f"{f}-*.json"))
    special = {"authorizer-": "authorized", "ingest-": "ingested", "sweeper-": "swept", "uploads-": 201}
    return {name: next((v for k, v in special.items() if name.startswith(k)), 200) for name in events}


def test_light_functions_import_and_serve_without_the_audio_layer(tmp_path: Path) -> None:
    result = _probe_light_functions(tmp_path, hide_ffprobe=False)
    assert result == {"events": _expected_events(), "audio_modules_loaded": []}


def test_light_functions_serve_without_the_ffprobe_layer(tmp_path: Path) -> None:
    result = _probe_light_functions(tmp_path, hide_ffprobe=True)
    assert result["events"] == _expected_events()


# --- the build -------------------------------------------------------------------------------------------------


def test_layer_requirements_are_the_pinned_runtime_dependencies() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = build_layers.runtime_requirements()
    assert requirements == project["dependencies"]
    assert all("==" in requirement for requirement in requirements)


def test_each_dependency_goes_to_exactly_one_layer() -> None:
    requirements = build_layers.runtime_requirements()
    core, audio = build_layers.split_requirements(requirements)
    assert sorted(core + audio) == sorted(requirements)
    assert {build_layers.requirement_name(r) for r in audio} == {"av", "numpy"}
    assert {"pydantic", "aws-lambda-powertools", "httpx"} <= {build_layers.requirement_name(r) for r in core}


def test_an_audio_requirement_missing_from_pyproject_fails_the_build() -> None:
    with pytest.raises(SystemExit, match="numpy"):
        build_layers.split_requirements(["av==18.1.0", "pydantic==2.14.3"])


def test_layers_sharing_a_package_fail_the_build(tmp_path: Path) -> None:
    for layer in ("core", "audio"):
        (tmp_path / layer / "python" / "typing_extensions.py").parent.mkdir(parents=True)
        (tmp_path / layer / "python" / "typing_extensions.py").write_text("")
    (tmp_path / "audio" / "python" / "numpy").mkdir()
    with pytest.raises(SystemExit, match="typing_extensions"):
        build_layers.check_layers_disjoint(tmp_path / "core", tmp_path / "audio")


def test_pruning_keeps_code_and_drops_what_the_runtime_never_reads(tmp_path: Path) -> None:
    python = tmp_path / "python"
    (python / "pkg" / "tests").mkdir(parents=True)
    (python / "pkg" / "__pycache__").mkdir()
    (python / "bin").mkdir()
    (python / "pkg" / "__init__.py").write_text("")
    (python / "pkg" / "_native.so").write_bytes(b"\x7fELF")
    (python / "pkg" / "stubs.pyi").write_text("")
    (python / "pkg" / "tests" / "test_pkg.py").write_text("")
    (python / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (python / "bin" / "tool").write_text("#!/usr/bin/python3.11\n")

    build_layers._prune(python)

    remaining = sorted(str(p.relative_to(python)) for p in python.rglob("*"))
    assert remaining == ["pkg", "pkg/__init__.py", "pkg/_native.so"]


def test_function_sizes_count_code_plus_only_the_layers_each_function_gets(tmp_path: Path) -> None:
    layer_dirs = {}
    for name, size in ((CORE_LAYER, 1000), (AUDIO_LAYER, 20_000), (FFPROBE_LAYER, 300_000)):
        layer_dirs[name] = tmp_path / name
        layer_dirs[name].mkdir()
        (layer_dirs[name] / "blob").write_bytes(b"x" * size)
    functions = tmp_path / "functions"
    for name in ("models", "transcriptions"):
        (functions / name / "__pycache__").mkdir(parents=True)
        (functions / name / "handler.py").write_bytes(b"y" * 10)
        (functions / name / "__pycache__" / "handler.cpython-313.pyc").write_bytes(b"z" * 5)  # not deployed
    (functions / "not-a-function").mkdir()

    sizes = build_layers.function_sizes(layer_dirs, functions_dir=functions)

    assert sizes == {"models": 1010, "transcriptions": 321_010}


def test_an_unclassified_function_fails_the_size_report(tmp_path: Path) -> None:
    (tmp_path / "functions" / "karaoke").mkdir(parents=True)
    (tmp_path / "functions" / "karaoke" / "handler.py").write_text("")
    with pytest.raises(KeyError, match="karaoke"):
        build_layers.function_sizes({}, functions_dir=tmp_path / "functions")


def test_the_report_says_whether_every_function_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    core = tmp_path / CORE_LAYER
    core.mkdir()
    (core / "blob").write_bytes(b"x" * 1000)
    functions = tmp_path / "functions"
    (functions / "models").mkdir(parents=True)
    (functions / "models" / "handler.py").write_text("")
    assert build_layers.report({CORE_LAYER: core}, functions_dir=functions)
    assert "function models" in capsys.readouterr().out

    os.truncate(core / "blob", LAMBDA_UNZIPPED_LIMIT_BYTES + 1)  # sparse: no disk used
    assert not build_layers.report({CORE_LAYER: core}, functions_dir=functions)
    assert "OVER Lambda's limit" in capsys.readouterr().out


def test_ffprobe_layer_ships_the_binary_compressed_with_its_digest(tmp_path: Path) -> None:
    binary = tmp_path / "ffprobe-src"
    content = b"#!/bin/sh\necho ffprobe\n" * 1000
    binary.write_bytes(content)

    root = build_layers.build_ffprobe_layer(tmp_path / "layer", binary=binary)

    assert sorted(p.name for p in (root / "bin").iterdir()) == ["ffprobe.gz", "ffprobe.sha256"]
    gz = root / "bin" / "ffprobe.gz"
    assert gzip.decompress(gz.read_bytes()) == content
    assert gz.stat().st_size < len(content)
    assert read_digest_record(gz).size == len(content)
    # What the function does with it on first use.
    unpacked = unpack_ffprobe(gz, target_dir=tmp_path / "tmp")
    assert unpacked.read_bytes() == content
    assert unpacked.stat().st_mode & 0o777 == 0o755


def test_ffprobe_layer_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    binary = tmp_path / "ffprobe-src"
    binary.write_bytes(b"#!/bin/sh\n" * 100)
    first = build_layers.build_ffprobe_layer(tmp_path / "one", binary=binary)
    os.utime(binary, (1, 1))
    second = build_layers.build_ffprobe_layer(tmp_path / "two", binary=binary)
    for name in ("ffprobe.gz", "ffprobe.sha256"):
        assert (first / "bin" / name).read_bytes() == (second / "bin" / name).read_bytes()


def test_core_layer_ships_the_compiled_walkers_built_for_lambda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctypes

    from earshot.audio.lengths import compiled

    monkeypatch.setattr(build_layers, "_pip_install", lambda target, requirements, no_deps=False: None)  # offline

    root = build_layers.build_core_layer(tmp_path / "core")

    lengths = root / "python" / "earshot" / "audio" / "lengths"
    library = ctypes.CDLL(str(lengths / "_walkers.so"))
    library.earshot_walkers_source.restype = ctypes.c_char_p
    assert library.earshot_walkers_abi() == compiled._ABI  # the ABI compiled.py loads
    assert library.earshot_walkers_source() == compiled.source_digest(lengths / "walkers.c").encode()
    assert compiled._unusable(lengths / "_walkers.so") is None
    build_layers.check_lambda_library(lengths / "_walkers.so")  # x86-64, nothing newer than Lambda's glibc


def test_a_library_lambda_could_not_load_fails_the_layer_build() -> None:
    header = "\n_walkers.so:     file format elf64-x86-64\n\nDYNAMIC SYMBOL TABLE:\n"
    old = header + "0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.2.5) memchr\n"
    new = old + "0000000000000000      DF *UND*  0000000000000000 (GLIBC_2.38) __isoc23_strtol\n"
    assert build_layers.lambda_library_problem(old) is None
    assert build_layers.lambda_library_problem(header) is None  # no libc symbol at all
    assert "glibc 2.38" in str(build_layers.lambda_library_problem(new))
    assert "x86-64" in str(build_layers.lambda_library_problem(old.replace("elf64-x86-64", "elf64-littleaarch64")))
