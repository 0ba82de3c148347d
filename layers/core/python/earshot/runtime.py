"""Wires ports to adapters for the current runtime: local (SQLite, files) or aws (DynamoDB, S3).

Built once per process (a warm Lambda or the local server) and cached; ``reset_runtime()`` after
changing the environment in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from threading import Lock

from earshot.catalog import Catalog, CatalogModel, cached_catalog
from earshot.config import Settings, get_settings, reset_settings
from earshot.engines.base import TranscriptionEngine
from earshot.errors import ProviderError
from earshot.ports import AccountStore, BlobStore


@dataclass
class Runtime:
    settings: Settings
    store: AccountStore
    blobs: BlobStore
    catalog: Catalog
    ffprobe: Path
    _engines: dict[str, TranscriptionEngine] = field(default_factory=dict)
    _lock: Lock = field(default_factory=Lock)

    def transcription_engine(self, model: CatalogModel) -> TranscriptionEngine:
        """The engine serving ``model``, built on first use and kept for the process."""
        with self._lock:
            engine = self._engines.get(model.provider)
            if engine is None:
                engine = _build_transcription_engine(model)
                self._engines[model.provider] = engine
            return engine


def _build_transcription_engine(model: CatalogModel) -> TranscriptionEngine:
    if model.provider == "embedded:pocketsphinx":
        from earshot.engines.pocketsphinx_engine import PocketsphinxEngine

        return PocketsphinxEngine()
    raise ProviderError(f"model {model.sku!r} names provider {model.provider!r}, which this deployment cannot call")


def _build_local(settings: Settings) -> tuple[AccountStore, BlobStore]:
    from earshot.adapters.file_blobs import FileBlobStore
    from earshot.adapters.sqlite_store import SqliteStore

    data_dir = settings.data_dir.expanduser()
    return SqliteStore(data_dir / "earshot.db"), FileBlobStore(data_dir / "blobs")


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    settings = get_settings()
    if settings.runtime == "aws":
        from earshot.adapters.aws import build_aws_ports

        store, blobs = build_aws_ports(settings)
    else:
        store, blobs = _build_local(settings)
    return Runtime(
        settings=settings,
        store=store,
        blobs=blobs,
        catalog=cached_catalog(settings.resolved_catalog()),
        ffprobe=settings.resolved_ffprobe(),
    )


def reset_runtime() -> None:
    reset_settings()
    get_runtime.cache_clear()
