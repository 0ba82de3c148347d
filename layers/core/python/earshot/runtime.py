"""Wires ports to adapters for the current runtime: local (SQLite, files) or aws (DynamoDB, S3).

Built once per process (a warm Lambda or the local server) and cached; ``reset_runtime()`` after
changing the environment in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from threading import RLock
from typing import TYPE_CHECKING, Any

from earshot.catalog import Catalog, CatalogModel, cached_catalog
from earshot.config import Settings, get_settings, reset_settings
from earshot.errors import (
    AudioModelNotLiveError,
    EarshotError,
    ProviderError,
    TranscriptionModelNotLiveError,
)
from earshot.ports import (
    AccountStore,
    BlobStore,
    IdempotencyStore,
    JobStarter,
    RateLimiter,
    StepMarkers,
    TaskStore,
)

if TYPE_CHECKING:  # engines are imported only when a request needs one
    from earshot.engines.base import TranscriptionEngine
    from earshot.engines.providers import AudioQuestionEngine


@dataclass
class Runtime:
    settings: Settings
    store: AccountStore
    blobs: BlobStore
    catalog: Catalog
    limiter: RateLimiter
    _engines: dict[tuple[str | None, ...], Any] = field(default_factory=dict)
    _extras: dict[str, Any] = field(default_factory=dict)
    _lock: RLock = field(default_factory=RLock)

    def _lazy(self, name: str, build: Any) -> Any:
        with self._lock:
            if name not in self._extras:
                self._extras[name] = build()
            return self._extras[name]

    @property
    def ffprobe(self) -> Path:
        """Found (and, from the gzip layer, unpacked) on first use: functions that never meter need none."""
        path: Path = self._lazy("ffprobe", self.settings.resolved_ffprobe)
        return path

    @property
    def tasks(self) -> TaskStore:
        """Tasks, their events and the workflow's per-step markers (one adapter serves all three)."""
        store: TaskStore = self._lazy("tasks", lambda: self._task_stores()[0])
        return store

    @property
    def step_markers(self) -> StepMarkers:
        markers: StepMarkers = self._lazy("tasks", lambda: self._task_stores()[0])
        return markers

    @property
    def idempotency(self) -> IdempotencyStore:
        store: IdempotencyStore = self._lazy("idempotency", lambda: self._task_stores()[1])
        return store

    @property
    def jobs(self) -> JobStarter:
        """Starts the async workflow: Step Functions in the cloud, the in-process runner locally."""
        starter: JobStarter = self._lazy("jobs", self._job_starter)
        return starter

    def _task_stores(self) -> tuple[Any, Any]:
        if "task_stores" not in self._extras:
            if self.settings.runtime == "aws":
                from earshot.adapters.aws import build_aws_task_stores

                self._extras["task_stores"] = build_aws_task_stores(self.settings)
            else:
                from earshot.adapters.sqlite_tasks import SqliteIdempotencyStore, SqliteTaskStore

                database = self.settings.data_dir.expanduser() / "earshot.db"
                self._extras["task_stores"] = (SqliteTaskStore(database), SqliteIdempotencyStore(database))
        stores: tuple[Any, Any] = self._extras["task_stores"]
        return stores

    def _job_starter(self) -> JobStarter:
        if self.settings.runtime == "aws":
            from earshot.adapters.aws import build_aws_job_starter

            return build_aws_job_starter(self.settings)
        from earshot.adapters.job_starters import LocalJobStarter

        return LocalJobStarter(self)

    def _engine(self, model: CatalogModel, role: str) -> Any:
        # Keyed by endpoint and credential too: two SKUs on one provider may point at different upstreams.
        key = (
            role,
            model.provider,
            model.base_url,
            model.base_url_env,
            *model.credentials,
            model.upstream_model,
            str(model.sound_events),
        )
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = _build_engine(model, role, self)
                if model.provider.startswith("embedded:") and self.settings.inference_function:
                    engine = self._remote(engine, model, role)
                if self._fans_out(model, role):
                    from earshot.engines.fanout import ChunkedTranscriptionEngine

                    workers, max_chunk = self.engine_parallelism(model)
                    regions = getattr(engine, "speech_regions", None)  # deployed: VAD runs in the inference function
                    engine = ChunkedTranscriptionEngine(
                        engine, workers=workers, max_chunk_sec=max_chunk or 0.0, speech_regions=regions
                    )
                self._engines[key] = engine
            return engine

    def _fans_out(self, model: CatalogModel, role: str) -> bool:
        """Long audio for an embedded recogniser is split at silences and run in parallel (``earshot.engines.fanout``),
        once voice activity detection is part of the core (``earshot.engines.hearing``)."""
        import importlib.util

        return (
            role == "transcription"
            and model.provider.startswith("embedded:")
            and importlib.util.find_spec("earshot.engines.hearing") is not None
        )

    def _remote(self, local: Any, model: CatalogModel, role: str) -> Any:
        """``local`` run by the inference function (deployed API functions: the models live in its image)."""
        from earshot.engines.remote import RemoteQuestionEngine, RemoteTranscriptionEngine

        invoker = self._lazy("inference_invoker", self._inference_invoker)
        remote = RemoteTranscriptionEngine if role == "transcription" else RemoteQuestionEngine
        return remote(local, sku=model.sku, role=role, invoker=invoker, blobs=self.blobs)  # type: ignore[arg-type]

    def _inference_invoker(self) -> Any:
        from earshot.adapters.aws import build_inference_invoker

        assert self.settings.inference_function is not None
        return build_inference_invoker(self.settings.inference_function)

    def engine_parallelism(self, model: CatalogModel) -> tuple[int, float | None]:
        """How ``model``'s engine spreads one request: (workers, longest chunk in seconds), ``(1, None)`` when it
        runs the audio whole."""
        if not self._fans_out(model, "transcription") or model.kind != "transcription":
            return 1, None
        import os

        default = 10 if self.settings.inference_function else (os.cpu_count() or 1)
        return self.settings.fanout_workers or default, self.settings.fanout_chunk_sec

    def transcription_engine(self, model: CatalogModel) -> TranscriptionEngine:
        """The speech-to-text engine serving ``model``, built on first use and kept for the process."""
        engine: TranscriptionEngine = self._engine(model, "transcription")
        return engine

    def question_engine(self, model: CatalogModel) -> AudioQuestionEngine:
        """The engine answering questions about audio for ``model`` (understand, extract, understanding)."""
        engine: AudioQuestionEngine = self._engine(model, "question")
        return engine


def _speech_source(runtime: Runtime) -> Any:
    """The catalog's ``transcribe`` SKU as (engine, sku, languages), for engines that need words; None if absent."""
    model = runtime.catalog.find("transcribe")
    if model is None or model.kind != "transcription":
        return None
    return runtime.transcription_engine(model), model.sku, model.languages


def _build_engine(model: CatalogModel, role: str, runtime: Runtime) -> Any:
    if model.provider == "embedded:whisper" and role == "transcription":
        from earshot.engines.embedded import LazyWhisper

        return LazyWhisper(sku=model.sku, asset=model.upstream_model, languages=model.languages)
    if model.provider == "embedded:analyzer" and role == "question":
        from earshot.engines.embedded import LazyAnalyzer

        return LazyAnalyzer(lambda: _speech_source(runtime), sound_events=model.sound_events)
    if model.provider.startswith("embedded:"):
        raise ProviderError(f"model {model.sku!r} cannot serve this request")
    from earshot.adapters.credentials import CredentialMissingError, upstream_access

    try:
        access = upstream_access(model, runtime.settings)
    except CredentialMissingError as missing:
        raise not_live_error(model, role, str(missing)) from None
    api_key, base_url, upstream = access.api_key, access.base_url, model.upstream_model
    if model.provider == "openai-transcription" and role == "transcription":
        from earshot.engines.providers.openai_transcription import OpenAITranscriptionEngine

        return OpenAITranscriptionEngine(base_url=base_url, api_key=api_key, upstream_model=upstream)
    if model.provider == "gemini":
        from earshot.engines.providers.gemini import GeminiAudioEngine

        return GeminiAudioEngine(base_url=base_url, api_key=api_key, upstream_model=upstream)
    if model.provider == "openai-chat-audio":
        from earshot.engines.providers.openai_chat_audio import OpenAIChatAudioEngine

        return OpenAIChatAudioEngine(base_url=base_url, api_key=api_key, upstream_model=upstream)
    raise ProviderError(f"model {model.sku!r} cannot serve this request")


def not_live_error(model: CatalogModel, role: str, setup: str) -> EarshotError:
    """The 400 for a request naming an upstream ``model`` whose credential is not configured here."""
    message = f"model {model.sku!r} is not live on this deployment: {setup}. GET /v1/models shows which models are live"
    error: TranscriptionModelNotLiveError | AudioModelNotLiveError
    if role == "transcription":
        error = TranscriptionModelNotLiveError(message, param="model")
    else:
        error = AudioModelNotLiveError(message, param="model")
    error.sku = model.sku
    return error


def _build_local(settings: Settings) -> tuple[AccountStore, BlobStore, RateLimiter]:
    from earshot.adapters.file_blobs import FileBlobStore
    from earshot.adapters.rate_limits import SqliteRateLimiter
    from earshot.adapters.sqlite_store import SqliteStore

    data_dir = settings.data_dir.expanduser()
    database = data_dir / "earshot.db"
    return SqliteStore(database), FileBlobStore(data_dir / "blobs"), SqliteRateLimiter(database)


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    settings = get_settings()
    if settings.runtime == "aws":
        from earshot.adapters.aws import build_aws_ports, build_aws_rate_limiter

        store, blobs = build_aws_ports(settings)
        limiter = build_aws_rate_limiter(settings)
    else:
        store, blobs, limiter = _build_local(settings)
    return Runtime(
        settings=settings,
        store=store,
        blobs=blobs,
        catalog=cached_catalog(settings.resolved_catalog()),
        limiter=limiter,
    )


def reset_runtime() -> None:
    reset_settings()
    get_runtime.cache_clear()
