"""Typed settings, read lazily from the environment (never at import time).

Tests and the local server set the environment first, then call ``get_settings()``; call
``reset_settings()`` after changing it.
"""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024
# Where `make serve` listens by default: the local server's public base URL when nothing else is known.
DEFAULT_LOCAL_BASE_URL = "http://127.0.0.1:8080"
_PACKAGE_DIR = Path(__file__).resolve().parent
# layers/core/python/earshot -> layers/ffprobe/bin/ffprobe, where `make` puts the pinned static ffprobe. (Not
# parents[3]: in Lambda the package is /opt/python/earshot, which has only three parents.)
_REPO_FFPROBE = _PACKAGE_DIR.parents[2] / "ffprobe" / "bin" / "ffprobe"
# Where the ffprobe Lambda layer mounts its binary.
_LAYER_FFPROBE = Path("/opt/bin/ffprobe")


class Settings(BaseSettings):
    """Everything Earshot reads from its environment, with the embedded defaults of local mode."""

    model_config = SettingsConfigDict(env_prefix="EARSHOT_", extra="ignore")

    runtime: Literal["local", "aws"] = "local"
    stage: str = "local"
    data_dir: Path = Path(".earshot")
    catalog: Path | None = Field(default=None, description="Model catalog TOML; the shipped default when unset.")
    ffprobe: Path | None = Field(default=None, description="ffprobe binary; found automatically when unset.")
    max_inline_bytes: int = Field(default=25 * MB, description="Largest audio accepted inside a request body.")
    max_fetch_bytes: int = Field(default=100 * MB, description="Largest audio fetched from a caller's URL.")
    allow_loopback_urls: bool = Field(
        default=False, description="Let audio and callback URLs reach 127.0.0.1 (tests and local demos only)."
    )
    public_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+$",
        description="Scheme and host clients reach this API at (links the local server hands out, such as upload "
        "URLs). Never taken from a request's Host header. Defaults to the address the local server listens on.",
    )
    rate_limit_per_minute: int = Field(default=600, ge=1, description="Requests per API key per minute.")
    request_timeout_sec: float = Field(default=29.0, description="Deadline for a synchronous request locally.")
    # The aws runtime's resources, named by the CDK stack. Each table's variable is its
    # ``dynamo_layout.TableSpec.env_var`` (EARSHOT_ACCOUNTS_TABLE, ...).
    accounts_table: str | None = None
    api_keys_table: str | None = None
    rate_limits_table: str | None = None
    tasks_table: str | None = None
    task_events_table: str | None = None
    step_markers_table: str | None = None
    idempotency_table: str | None = None
    state_machine_arn: str | None = None
    # Deployed API functions run embedded engines in this function (the container image) rather than in-process.
    inference_function: str | None = None
    fanout_workers: int | None = Field(
        default=None,
        ge=1,
        description="Chunks of one long recording transcribed at once (threads locally, invocations deployed); "
        "default: the CPU count locally, 10 when the inference function runs them.",
    )
    fanout_chunk_sec: float = Field(default=60.0, gt=0, description="Longest chunk of a long recording.")
    ledger_table: str | None = None
    bucket_name: str | None = None

    def resolved_catalog(self) -> Path:
        return self.catalog if self.catalog is not None else _PACKAGE_DIR / "catalogs" / "default.toml"

    def resolved_ffprobe(self) -> Path:
        if self.ffprobe is not None:
            return self.ffprobe
        if _LAYER_FFPROBE.is_file():
            return _LAYER_FFPROBE
        from earshot.ffprobe_binary import LAYER_FFPROBE_GZ, unpack_ffprobe

        if LAYER_FFPROBE_GZ.is_file():  # the layer ships it compressed: unpacked to /tmp once per environment
            return unpack_ffprobe(LAYER_FFPROBE_GZ)
        if _REPO_FFPROBE.is_file():
            return _REPO_FFPROBE
        found = shutil.which("ffprobe")
        if found:
            return Path(found)
        raise RuntimeError("ffprobe not found: run `make setup` or set EARSHOT_FFPROBE")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
