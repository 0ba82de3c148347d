"""The model catalog: data, one file per deployment (``EARSHOT_CATALOG``), never code."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from earshot.errors import NotAnAudioModelError, NotATranscriptionModelError

ModelKind = Literal["transcription", "understanding", "extraction"]
# Embedded engines run inside the function; the others are upstream wire formats.
PROVIDERS = ("embedded:whisper", "embedded:analyzer", "openai-transcription", "gemini", "openai-chat-audio")


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
    credential: str | None = Field(default=None, pattern=r"^(env|ssm|secret):\S+$")

    @model_validator(mode="after")
    def _provider_is_known(self) -> CatalogModel:
        if self.provider not in PROVIDERS:
            raise ValueError(f"model {self.sku!r}: provider must be one of {', '.join(PROVIDERS)}")
        if not self.provider.startswith("embedded:") and not self.credential:
            raise ValueError(f"model {self.sku!r}: an upstream provider needs a credential reference")
        return self

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
