"""Long audio in parallel: a plan of chunks cut at silences, run concurrently, merged back with exact offsets.

The plan comes from the speech regions voice activity detection found (``SpeechRegion``-like: ``start``/``end`` in
seconds): ``plan_chunks`` cuts ``[0, duration]`` into chunks of at most ``max_chunk_sec`` inside silences
(``cut_at_silences``: anywhere in a pause, not only at its middle, so a long pause never forces a cut inside speech)
and drops the chunks with no speech at all, which need no engine.
``run_chunks`` runs one callable per chunk on a pool of workers: threads locally (the engines release the GIL), and
in the cloud the same threads each wait on one invocation of the inference function. ``predicted_wall_sec``
schedules the chunks the same way on paper, so a request can be refused before it is charged.

Merging is exact because each chunk's results are relative to its own start: ``merge_transcripts`` adds the offset to
every segment and word, renumbers segments and makes one language decision (speech-weighted majority);
``cluster_speakers`` maps each chunk's local speakers to global ones by clustering their centroid embeddings;
``join_events`` offsets sound events and joins an event that a cut split in two.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from earshot.engines.base import Segment, Transcript, Word

T = TypeVar("T")
EventT = TypeVar("EventT", bound="TimedLabel")

# The longest chunk one engine call gets. Short enough that ten chunks of a ten-minute recording each finish in a
# few seconds on two vCPUs, long enough that Whisper's 30-s windows are mostly full and the cut count stays small.
DEFAULT_MAX_CHUNK_SEC = 60.0
# Two events of one label this close across a cut are one event.
EVENT_JOIN_TOLERANCE_SEC = 0.5


class Timed(Protocol):
    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


class TimedLabel(Timed, Protocol):
    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class Chunk:
    """One piece of the audio: ``[start, end)`` in seconds, with ``speech_sec`` of speech inside."""

    index: int
    start: float
    end: float
    speech_sec: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks worth running (those with speech), in order, and what they were cut from."""

    duration: float
    max_chunk_sec: float
    chunks: tuple[Chunk, ...]

    @property
    def audio_sec(self) -> float:
        """Seconds of audio the engines will process."""
        return sum(chunk.duration for chunk in self.chunks)


def _overlap(region: Timed, start: float, end: float) -> float:
    return max(0.0, min(region.end, end) - max(region.start, start))


def silences(regions: Sequence[Timed], duration: float) -> list[tuple[float, float]]:
    """The gaps between the speech ``regions`` within ``[0, duration]`` (before the first, between, after the last)."""
    gaps: list[tuple[float, float]] = []
    previous = 0.0
    for region in sorted(regions, key=lambda r: r.start):
        if region.start > previous:
            gaps.append((previous, min(region.start, duration)))
        previous = max(previous, region.end)
    if previous < duration:
        gaps.append((previous, duration))
    return [(start, end) for start, end in gaps if end > start]


def cut_at_silences(regions: Sequence[Timed], duration: float, max_chunk_sec: float) -> list[tuple[float, float]]:
    """Consecutive ``(start, end)`` chunks covering ``[0, duration]``, each at most ``max_chunk_sec``, cut in silence.

    Each cut goes in the last silence that keeps the chunk within the limit: at the limit itself when the silence
    reaches past it (long pauses cost no extra chunk), else in the middle of the silence. A silence in the chunk's
    first quarter is not used (it would make a run of tiny chunks). Speech that runs on past the limit without a
    pause is cut at the limit, the only place left.
    """
    if max_chunk_sec <= 0:
        raise ValueError("max_chunk_sec must be positive")
    if duration <= 0:
        return []
    gaps = silences(regions, duration)
    chunks: list[tuple[float, float]] = []
    start = 0.0
    while duration - start > max_chunk_sec:
        limit = start + max_chunk_sec
        earliest = start + max_chunk_sec / 4
        usable = [(max(a, earliest), min(b, limit)) for a, b in gaps if b > earliest and a < limit]
        if not usable:
            end = limit
        else:
            a, b = usable[-1]
            end = limit if b >= limit else (a + b) / 2
        end = round(end, 3)
        chunks.append((round(start, 3), end))
        start = end
    chunks.append((round(start, 3), round(duration, 3)))
    return chunks


def plan_chunks(
    regions: Sequence[Timed],
    duration: float,
    *,
    max_chunk_sec: float = DEFAULT_MAX_CHUNK_SEC,
) -> ChunkPlan:
    """Cut ``[0, duration]`` at silences into chunks of at most ``max_chunk_sec`` and keep those with speech.

    Parameters
    ----------
    regions
        Speech regions, sorted (voice activity detection's output).
    duration
        The audio's length in seconds.
    max_chunk_sec
        The longest chunk; a region of speech longer than this is cut inside, the only place left.
    """
    pieces = cut_at_silences(regions, duration, max_chunk_sec)
    chunks: list[Chunk] = []
    for start, end in pieces:
        speech = sum(_overlap(region, start, end) for region in regions)
        if speech > 0:
            chunks.append(Chunk(index=len(chunks), start=start, end=end, speech_sec=round(speech, 3)))
    return ChunkPlan(duration=duration, max_chunk_sec=max_chunk_sec, chunks=tuple(chunks))


def schedule(durations: Sequence[float], workers: int) -> float:
    """The makespan of running jobs of ``durations`` on ``workers`` (longest first, each to the least-loaded worker,
    as a pool picks them up when the longest are submitted first)."""
    if workers < 1:
        raise ValueError("at least one worker")
    loads = [0.0] * min(workers, max(1, len(durations)))
    for duration in sorted(durations, reverse=True):
        index = loads.index(min(loads))
        loads[index] += duration
    return max(loads)


def predicted_wall_sec(
    plan: ChunkPlan, *, engine_sec_per_audio_sec: float, workers: int, per_chunk_overhead_sec: float = 0.0
) -> float:
    """How long running ``plan`` should take: each chunk costs its duration x the engine's measured rate plus a fixed
    overhead (an invoke, a model already loaded), scheduled on ``workers``."""
    costs = [chunk.duration * engine_sec_per_audio_sec + per_chunk_overhead_sec for chunk in plan.chunks]
    return schedule(costs, workers) if costs else 0.0


def run_chunks(chunks: Sequence[Chunk], work: Callable[[Chunk], T], *, workers: int) -> list[T]:
    """``work`` on every chunk, at most ``workers`` at a time, longest first; results in chunk order.

    The first failure stops the chunks not yet started and is raised (after the running ones finish: a thread
    cannot be stopped, and each holds an engine or an invocation).
    """
    if not chunks:
        return []
    if workers <= 1 or len(chunks) == 1:
        return [work(chunk) for chunk in chunks]
    failed = threading.Event()

    def guarded(chunk: Chunk) -> T:
        if failed.is_set():
            raise _Skipped()
        try:
            return work(chunk)
        except BaseException:
            failed.set()
            raise

    order = sorted(chunks, key=lambda chunk: chunk.duration, reverse=True)
    with ThreadPoolExecutor(max_workers=min(workers, len(chunks)), thread_name_prefix="earshot-chunk") as pool:
        futures: dict[int, Future[T]] = {chunk.index: pool.submit(guarded, chunk) for chunk in order}
        wait(futures.values(), return_when=FIRST_EXCEPTION)
    errors = [f.exception() for f in futures.values() if f.exception() and not isinstance(f.exception(), _Skipped)]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [futures[chunk.index].result() for chunk in chunks]


class _Skipped(Exception):
    """A chunk not started because another failed."""


# -- merging -------------------------------------------------------------------------------------------------------
def _speech_in(transcript: Transcript) -> float:
    return sum(max(0.0, segment.end - segment.start) for segment in transcript.segments)


def decide_language(parts: Sequence[tuple[Chunk, Transcript]]) -> str:
    """One language for the whole recording: the one with the most transcribed speech (ties: the earliest chunk)."""
    weight: dict[str, float] = {}
    for chunk, transcript in parts:
        weight[transcript.language] = weight.get(transcript.language, 0.0) + max(_speech_in(transcript), 1e-3)
        del chunk
    if not weight:
        return ""
    best = max(weight.values())
    return next(t.language for _, t in parts if math.isclose(weight[t.language], best))


def _shift(word: Word, offset: float) -> Word:
    return word.model_copy(update={"start": round(word.start + offset, 3), "end": round(word.end + offset, 3)})


def merge_transcripts(parts: Sequence[tuple[Chunk, Transcript]], *, language: str | None = None) -> Transcript:
    """The chunks' transcripts as one: times offset by each chunk's start, segments renumbered in order, the text
    joined, ``language`` (or ``decide_language``) for all."""
    ordered = sorted(parts, key=lambda part: part[0].start)
    segments: list[Segment] = []
    words: list[Word] = []
    texts: list[str] = []
    for chunk, transcript in ordered:
        offset = chunk.start
        for segment in transcript.segments:
            segments.append(
                segment.model_copy(
                    update={
                        "id": len(segments),
                        "start": round(segment.start + offset, 3),
                        "end": round(segment.end + offset, 3),
                        "words": [_shift(word, offset) for word in segment.words],
                    }
                )
            )
        words.extend(_shift(word, offset) for word in transcript.words)
        if transcript.text.strip():
            texts.append(transcript.text.strip())
    return Transcript(
        text=" ".join(texts),
        language=language if language is not None else decide_language(ordered),
        segments=segments,
        words=words,
    )


def cluster_speakers(centroids: Sequence[Any], *, threshold: float) -> list[list[int]]:
    """Global speaker numbers for each chunk's local speakers.

    ``centroids[i]`` holds chunk ``i``'s speakers' centroid embeddings (one row per local speaker, as diarization
    returns them). All rows are clustered together (average linkage on cosine distance, stopped at ``threshold``,
    the same rule as within a recording); the result maps ``[chunk][local speaker]`` to a global speaker, numbered
    by first appearance.
    """
    import numpy as np

    from earshot.engines.speakers import agglomerate

    rows = [np.asarray(row, dtype=np.float32) for chunk in centroids for row in chunk]
    if not rows:
        return [[] for _ in centroids]
    labels = agglomerate(np.stack(rows), threshold)
    order: dict[int, int] = {}
    mapped = [order.setdefault(int(label), len(order)) for label in labels]
    result: list[list[int]] = []
    position = 0
    for chunk in centroids:
        result.append(mapped[position : position + len(chunk)])
        position += len(chunk)
    return result


def join_events(
    parts: Sequence[tuple[Chunk, Sequence[EventT]]], *, tolerance_sec: float = EVENT_JOIN_TOLERANCE_SEC
) -> list[EventT]:
    """The chunks' sound events on one timeline: offset by each chunk's start, and an event a cut split in two (same
    label, ending and starting within ``tolerance_sec`` of the cut) joined back into one."""
    timeline: list[Any] = []
    for chunk, events in sorted(parts, key=lambda part: part[0].start):
        for event in sorted(events, key=lambda e: e.start):
            shifted = replace(event, start=round(event.start + chunk.start, 3), end=round(event.end + chunk.start, 3))  # type: ignore[type-var]
            at_cut = abs(shifted.start - chunk.start) <= tolerance_sec
            earlier = next((e for e in reversed(timeline) if e.label == shifted.label), None)
            if at_cut and earlier is not None and abs(earlier.end - chunk.start) <= tolerance_sec and chunk.start > 0:
                merged = replace(earlier, end=max(earlier.end, shifted.end))
                if hasattr(earlier, "score"):
                    merged = replace(merged, score=max(earlier.score, getattr(shifted, "score", 0.0)))
                timeline[timeline.index(earlier)] = merged
                continue
            timeline.append(shifted)
    return sorted(timeline, key=lambda e: (e.start, e.label))


# -- a transcription engine that fans out ----------------------------------------------------------------------------
SpeechRegions = Callable[[Any, Any], Sequence[Timed]]  # (audio path, its 16 kHz mono int16 PCM) -> speech regions


def vad_speech_regions(audio: Any, pcm: Any) -> Sequence[Timed]:
    """Speech regions from the embedded voice activity detector (Silero VAD, ``earshot.engines.hearing``)."""
    del audio
    from earshot.engines.hearing import get_ears

    regions: Sequence[Timed] = get_ears(sound_events=False).vad.regions(pcm)
    return regions


class ChunkedTranscriptionEngine:
    """``TranscriptionEngine`` that splits long audio at silences and transcribes the chunks concurrently.

    Audio up to ``max_chunk_sec`` goes to ``inner`` whole. Longer audio is decoded once to 16 kHz mono PCM, cut by
    ``plan_chunks`` on the speech regions ``speech_regions`` finds, written as one WAV per chunk with speech and
    transcribed by ``inner`` on ``workers`` threads: locally ``inner`` is the embedded engine itself (the worker
    pool stands in for invocations); deployed it is the remote engine, so each thread waits on one invocation of
    the inference function. Every chunk call gets what is left of the request's deadline. The merge is exact
    (offsets from the PCM's sample positions), with one language: the caller's, else the speech-weighted majority,
    and the chunks that heard another language are transcribed again in it.
    """

    def __init__(
        self,
        inner: Any,
        *,
        workers: int,
        max_chunk_sec: float = DEFAULT_MAX_CHUNK_SEC,
        speech_regions: SpeechRegions | None = None,
    ) -> None:
        self._inner = inner
        self.workers = max(1, workers)
        self.max_chunk_sec = max_chunk_sec
        self._speech_regions = speech_regions or vad_speech_regions

    def check(self, options: Any) -> None:
        self._inner.check(options)

    def transcribe(self, audio: Any, options: Any) -> Transcript:
        import tempfile
        import time
        import wave
        from pathlib import Path

        from earshot.audio.decode import SAMPLE_RATE, decode_to_pcm16k

        started = time.monotonic()
        pcm = decode_to_pcm16k(Path(audio))
        duration = len(pcm) / SAMPLE_RATE
        if duration <= self.max_chunk_sec:
            transcript: Transcript = self._inner.transcribe(audio, options)
            return transcript
        plan = plan_chunks(self._speech_regions(audio, pcm), duration, max_chunk_sec=self.max_chunk_sec)
        if not plan.chunks:
            return Transcript(text="", language=options.language or "", segments=[], words=[])

        def remaining(opts: Any) -> Any:
            if opts.deadline_sec is None:
                return opts
            left = max(0.0, opts.deadline_sec - (time.monotonic() - started))
            return opts.model_copy(update={"deadline_sec": left})

        with tempfile.TemporaryDirectory(prefix="earshot-chunks-") as directory:
            paths: dict[int, Path] = {}
            for chunk in plan.chunks:
                path = Path(directory) / f"chunk-{chunk.index:04d}.wav"
                with wave.open(str(path), "wb") as out:
                    out.setnchannels(1)
                    out.setsampwidth(2)
                    out.setframerate(SAMPLE_RATE)
                    out.writeframes(pcm[round(chunk.start * SAMPLE_RATE) : round(chunk.end * SAMPLE_RATE)].tobytes())
                paths[chunk.index] = path

            def run(chunk: Chunk, opts: Any = options) -> Transcript:
                result: Transcript = self._inner.transcribe(paths[chunk.index], remaining(opts))
                return result

            parts = list(zip(plan.chunks, run_chunks(plan.chunks, run, workers=self.workers), strict=True))
            language = options.language or decide_language(parts)
            stray = [chunk for chunk, transcript in parts if transcript.language != language]
            if options.language is None and stray and language:
                fixed = options.model_copy(update={"language": language})
                again = dict(
                    zip(
                        (c.index for c in stray),
                        run_chunks(stray, lambda c: run(c, fixed), workers=self.workers),
                        strict=True,
                    )
                )
                parts = [(chunk, again.get(chunk.index, transcript)) for chunk, transcript in parts]
        return merge_transcripts(parts, language=language)
