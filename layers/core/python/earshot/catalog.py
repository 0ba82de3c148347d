"""The model catalog: data, one file per deployment (``EARSHOT_CATALOG``), never code."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from earshot.errors import NotAnAudioModelError, NotATranscriptionModelError

ModelKind = Literal["transcription", "understanding", "extraction"]
# Embedded engines run inside the function; the others are upstream wire formats.
PROVIDERS = ("embedded:whisper", "embedded:analyzer", "openai-transcription", "gemini", "openai-chat-audio")
CREDENTIAL_PATTERN = r"^(env|ssm|secret):\S+$"


class CatalogModel(BaseModel):
    sku: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    kind: ModelKind
    provider: str
    upstream_model: str = ""
    price_micro_usd_per_minute: int = Field(ge=0)
    base_price_micro_usd: int = Field(default=0, ge=0, description="Charged once per request on top of the minutes.")
    aliases: list[str] = Field(default_factory=list)
    languages: list[str] | None = None
    translates: bool = False
    sound_events: bool = Field(
        default=True,
        description="embedded:analyzer only: run the YAMNet sound-event tagger (switch off where its unclear "
        "licence is not acceptable; answers then say sound events were not measured)",
    )
    description: str = ""
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    base_url_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="Local mode only: an environment variable that, when set, replaces base_url (a test double or "
        "a self-hosted server). Honoured under the URL policy: https, or http to loopback with "
        "EARSHOT_ALLOW_LOOPBACK_URLS (earshot.adapters.credentials).",
    )
    credential: str | None = Field(default=None, pattern=CREDENTIAL_PATTERN)
    credentials: list[Annotated[str, Field(pattern=CREDENTIAL_PATTERN)]] = Field(
        default_factory=list,
        description="Where the upstream API key may be, in order: env:NAME (read in local mode only), ssm:/path or "
        "secret:name (read when deployed only). {stage} in a reference is the deployment's stage. The first that "
        "holds a value is used; with none the model is not live and refused (400) before any charge.",
    )

    @model_validator(mode="after")
    def _provider_is_known(self) -> CatalogModel:
        if self.provider not in PROVIDERS:
            raise ValueError(f"model {self.sku!r}: provider must be one of {', '.join(PROVIDERS)}")
        if self.credential:  # the one-reference spelling: first in the list
            self.credentials = [self.credential, *(ref for ref in self.credentials if ref != self.credential)]
            self.credential = None
        if not self.provider.startswith("embedded:") and not self.credentials:
            raise ValueError(f"model {self.sku!r}: an upstream provider needs a credential reference")
        if self.provider.startswith("embedded:") and (self.credentials or self.base_url or self.base_url_env):
            raise ValueError(f"model {self.sku!r}: an embedded engine takes no credential or base URL")
        return self

    @property
    def upstream(self) -> bool:
        """Served by an upstream provider (needs its credential), not an embedded engine."""
        return not self.provider.startswith("embedded:")

    @property
    def engine(self) -> str:
        """The embedded engine name for ``embedded:<name>`` providers, else the provider itself."""
        return self.provider.removeprefix("embedded:")


class Catalog(BaseModel):
    models: list[CatalogModel]

    @model_validator(mode="after")
    def _names_are_unique(self) -> Catalog:
        seen: set[str] = set()
        for model in self.models:
            for name in (model.sku, *model.aliases):
                if name in seen:
                    raise ValueError(f"catalog name {name!r} is used twice")
                seen.add(name)
        return self

    def find(self, name: str) -> CatalogModel | None:
        for model in self.models:
            if name == model.sku or name in model.aliases:
                return model
        return None

    def resolve_transcription(self, name: str, *, translate: bool = False) -> CatalogModel:
        model = self.find(name)
        if model is None or model.kind != "transcription":
            raise NotATranscriptionModelError(
                f"{name!r} is not a transcription model; GET /v1/models lists them", param="model"
            )
        if translate and not model.translates:
            raise NotATranscriptionModelError(f"{name!r} does not translate", param="model")
        return model

    def resolve_audio(self, name: str, kinds: tuple[ModelKind, ...]) -> CatalogModel:
        model = self.find(name)
        if model is None or model.kind not in kinds:
            raise NotAnAudioModelError(
                f"{name!r} is not an audio-understanding model; GET /v1/models lists them", param="model"
            )
        return model


def load_catalog(path: Path) -> Catalog:
    try:
        with path.open("rb") as handle:
            return Catalog.model_validate(tomllib.load(handle))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise RuntimeError(f"cannot load model catalog {path}: {exc}") from exc


@lru_cache(maxsize=4)
def cached_catalog(path: Path) -> Catalog:
    return load_catalog(path)
