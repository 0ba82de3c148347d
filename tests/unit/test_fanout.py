"""Long audio in parallel: the plan (chunks cut at silences, silence-only chunks skipped), its schedule and
prediction, the worker pool, and the merge (exact offsets, one language, speakers across chunks, joined events).

Speech regions here are synthetic: the planner only sees start/end times, whatever found them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from earshot.engines.base import Segment, Transcript, TranscriptionOptions, Word
from earshot.engines.fanout import (
    Chunk,
    ChunkedTranscriptionEngine,
    ChunkPlan,
    cluster_speakers,
    decide_language,
    join_events,
    merge_transcripts,
    plan_chunks,
    predicted_wall_sec,
    run_chunks,
    schedule,
)


@dataclass(frozen=True)
class Region:
    start: float
    end: float


@dataclass(frozen=True)
class Event:
    label: str
    start: float
    end: float
    score: float


def _speech_every(period: float, speech: float, duration: float) -> list[Region]:
    """Speech of ``speech`` seconds starting every ``period`` seconds: the gaps are the silences."""
    regions, start = [], 0.5
    while start + speech < duration:
        regions.append(Region(start, start + speech))
        start += period
    return regions


# -- the plan -----------------------------------------------------------------------------------------------------
def test_ten_minutes_of_talk_become_bounded_chunks_cut_in_silences() -> None:
    regions = _speech_every(period=7.0, speech=6.0, duration=600.0)
    plan = plan_chunks(regions, 600.0, max_chunk_sec=60.0)
    assert 10 <= len(plan.chunks) <= 12
    assert plan.chunks[0].start == 0.0 and plan.chunks[-1].end == 600.0
    for before, after in zip(plan.chunks, plan.chunks[1:], strict=False):
        assert before.end == after.start  # no gap, no overlap: offsets stay exact
    for chunk in plan.chunks:
        assert chunk.duration <= 60.0
        # every cut is in a silence: no region straddles a chunk boundary
        for region in regions:
            assert not region.start < chunk.end < region.end
    assert plan.audio_sec == pytest.approx(600.0)


def test_chunks_with_no_speech_need_no_engine() -> None:
    # An hour of silence with two bursts of speech: only their chunks are run.
    regions = [Region(100.0, 130.0), Region(3000.0, 3010.0)]
    plan = plan_chunks(regions, 3600.0, max_chunk_sec=60.0)
    assert [chunk.speech_sec for chunk in plan.chunks] == [30.0, 10.0]  # neither burst is cut
    assert plan.audio_sec <= 120.0
    assert [chunk.index for chunk in plan.chunks] == [0, 1]


def test_speech_longer_than_a_chunk_is_cut_at_the_limit() -> None:
    plan = plan_chunks([Region(0.0, 150.0)], 150.0, max_chunk_sec=60.0)
    assert [(c.start, c.end) for c in plan.chunks] == [(0.0, 60.0), (60.0, 120.0), (120.0, 150.0)]


def test_short_audio_is_one_chunk_and_silence_none() -> None:
    assert [(c.start, c.end) for c in plan_chunks([Region(1.0, 5.0)], 8.0).chunks] == [(0.0, 8.0)]
    assert plan_chunks([], 30.0).chunks == ()


def test_a_long_pause_is_cut_at_the_limit_not_inside_the_next_speech() -> None:
    # Silence from 0 to 100 s, then 30 s of speech: the cuts fall at 60 s (in the pause) and 120 s (in speech? no:
    # the speech ends at 130, so the chunk from 60 runs to the pause's cut after it), never inside 100..130.
    plan = plan_chunks([Region(100.0, 130.0)], 200.0, max_chunk_sec=60.0)
    for chunk in plan.chunks:
        assert not 100.0 < chunk.start < 130.0 and not 100.0 < chunk.end < 130.0
    assert [chunk.speech_sec for chunk in plan.chunks] == [30.0]


# -- schedule and prediction -------------------------------------------------------------------------------------
def test_the_schedule_puts_the_longest_jobs_first_on_the_least_loaded_worker() -> None:
    assert schedule([60, 60, 60, 60], workers=4) == 60
    assert schedule([60, 60, 60, 60], workers=2) == 120
    assert schedule([50, 40, 30, 20, 10], workers=2) == 80  # 50+30 | 40+20+10 -> 80 / 70... longest first
    assert schedule([], workers=3) == 0


def test_the_prediction_scales_with_the_rate_and_divides_by_the_parallelism() -> None:
    plan = ChunkPlan(600.0, 60.0, tuple(Chunk(i, i * 60.0, (i + 1) * 60.0, 50.0) for i in range(10)))
    one = predicted_wall_sec(plan, engine_sec_per_audio_sec=0.13, workers=1)
    ten = predicted_wall_sec(plan, engine_sec_per_audio_sec=0.13, workers=10, per_chunk_overhead_sec=1.5)
    assert one == pytest.approx(600 * 0.13)
    assert ten == pytest.approx(60 * 0.13 + 1.5)


# -- the worker pool -----------------------------------------------------------------------------------------------
def test_chunks_run_concurrently_and_come_back_in_order() -> None:
    chunks = [Chunk(i, i * 10.0, (i + 1) * 10.0 - i * 0.5, 5.0) for i in range(6)]
    running, peak, lock = [0], [0], threading.Lock()

    def work(chunk: Chunk) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return chunk.index

    assert run_chunks(chunks, work, workers=3) == [0, 1, 2, 3, 4, 5]
    assert peak[0] == 3


def test_a_failing_chunk_fails_the_run_and_stops_the_rest() -> None:
    chunks = [Chunk(i, float(i), i + 1.0, 1.0) for i in range(8)]
    started: list[int] = []

    def work(chunk: Chunk) -> int:
        started.append(chunk.index)
        if chunk.index == 0:
            raise RuntimeError("engine failed")
        time.sleep(0.05)
        return chunk.index

    with pytest.raises(RuntimeError, match="engine failed"):
        run_chunks(chunks, work, workers=2)
    assert len(started) < len(chunks)


# -- merging -------------------------------------------------------------------------------------------------------
def _transcript(text: str, language: str, *spans: tuple[float, float]) -> Transcript:
    segments = [
        Segment(id=i, start=s, end=e, text=f"{text}{i}", words=[Word(word=f"{text}{i}", start=s, end=e)])
        for i, (s, e) in enumerate(spans)
    ]
    words = [word for segment in segments for word in segment.words]
    return Transcript(text=" ".join(s.text for s in segments), language=language, segments=segments, words=words)


def test_segments_and_words_are_offset_exactly_and_renumbered() -> None:
    first, second = Chunk(0, 0.0, 58.25, 40.0), Chunk(1, 58.25, 117.5, 40.0)
    merged = merge_transcripts(
        [(second, _transcript("b", "en", (0.5, 2.0))), (first, _transcript("a", "en", (1.0, 3.0), (50.0, 57.0)))]
    )
    assert [(s.id, s.start, s.end) for s in merged.segments] == [(0, 1.0, 3.0), (1, 50.0, 57.0), (2, 58.75, 60.25)]
    assert [(w.start, w.end) for w in merged.words] == [(1.0, 3.0), (50.0, 57.0), (58.75, 60.25)]
    assert merged.segments[2].words[0].start == 58.75
    assert merged.text == "a0 a1 b0"


def test_one_language_for_the_recording_weighted_by_speech() -> None:
    parts = [
        (Chunk(0, 0.0, 60.0, 50.0), _transcript("a", "en", (0.0, 50.0))),
        (Chunk(1, 60.0, 120.0, 5.0), _transcript("b", "de", (0.0, 5.0))),
        (Chunk(2, 120.0, 180.0, 30.0), _transcript("c", "de", (0.0, 30.0))),
    ]
    assert decide_language(parts) == "en"
    assert merge_transcripts(parts).language == "en"
    assert merge_transcripts(parts, language="de").language == "de"


def test_speakers_are_the_same_people_across_chunks() -> None:
    pytest.importorskip("earshot.engines.speakers")
    alice, bob, carol = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    near_alice, near_bob = [0.97, 0.2, 0.0], [0.1, 0.98, 0.05]
    # Chunk 0 heard alice then bob; chunk 1 bob (its speaker 0) then alice; chunk 2 carol alone.
    mapping = cluster_speakers([[alice, bob], [near_bob, near_alice], [carol]], threshold=0.3)
    assert mapping == [[0, 1], [1, 0], [2]]


def test_sound_events_join_across_a_cut() -> None:
    first, second = Chunk(0, 0.0, 60.0, 0.0), Chunk(1, 60.0, 120.0, 0.0)
    joined = join_events(
        [
            (first, [Event("Siren", 50.0, 60.0, 0.6), Event("Music", 10.0, 20.0, 0.9)]),
            (second, [Event("Siren", 0.0, 4.0, 0.8), Event("Music", 30.0, 31.0, 0.5)]),
        ]
    )
    assert joined == [
        Event("Music", 10.0, 20.0, 0.9),
        Event("Siren", 50.0, 64.0, 0.8),  # one siren across the cut at 60 s
        Event("Music", 90.0, 91.0, 0.5),  # offset by the chunk's start
    ]


# -- the engine that fans out --------------------------------------------------------------------------------------
class _ChunkEcho:
    """A stand-in engine: one segment covering the audio it was given, in the language it is told (or 'de' for the
    third chunk it sees, as a confused detector would)."""

    def __init__(self, together: int = 1) -> None:
        self.calls: list[tuple[float, str | None]] = []
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        # The first ``together`` calls wait for each other: they only all get through if they run at once.
        self.barrier = threading.Barrier(together, timeout=30) if together > 1 else None

    def check(self, options: object) -> None:
        return None

    def transcribe(self, audio: object, options: TranscriptionOptions) -> Transcript:
        import wave

        with wave.open(str(audio)) as handle:
            seconds = handle.getnframes() / handle.getframerate()
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.calls.append((seconds, options.language))
            index = len(self.calls)
        if self.barrier is not None and index <= self.barrier.parties:
            self.barrier.wait()
        time.sleep(0.02)
        with self.lock:
            self.running -= 1
        language = options.language or ("de" if index == 3 else "en")
        return _transcript(f"c{seconds:.0f}-", language, (0.25, seconds - 0.25))


def _wav(path: Path, seconds: float) -> Path:
    import wave

    import numpy as np

    samples = (np.sin(np.arange(int(seconds * 16000)) * 0.1) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(samples.tobytes())
    return path


def test_long_audio_is_transcribed_in_parallel_chunks_and_merged_with_exact_offsets(tmp_path: Path) -> None:
    regions = _speech_every(period=20.0, speech=18.0, duration=200.0)
    inner = _ChunkEcho(together=3)
    engine = ChunkedTranscriptionEngine(inner, workers=3, max_chunk_sec=60.0, speech_regions=lambda audio, pcm: regions)

    merged = engine.transcribe(_wav(tmp_path / "long.wav", 200.0), TranscriptionOptions(deadline_sec=60.0))

    plan = plan_chunks(regions, 200.0, max_chunk_sec=60.0)
    assert inner.peak == 3  # the worker pool ran three chunks side by side (the barrier proves it)
    assert len(merged.segments) == len(plan.chunks)
    for segment, chunk in zip(merged.segments, plan.chunks, strict=True):
        assert segment.start == pytest.approx(chunk.start + 0.25)
        assert segment.end == pytest.approx(chunk.end - 0.25, abs=1e-3)
    # One language: the third chunk "heard" German and was transcribed again in the majority's English.
    assert merged.language == "en"
    assert [language for _, language in inner.calls[len(plan.chunks) :]] == ["en"]


def test_short_audio_goes_to_the_engine_whole(tmp_path: Path) -> None:
    inner = _ChunkEcho()
    engine = ChunkedTranscriptionEngine(inner, workers=4, max_chunk_sec=60.0, speech_regions=lambda audio, pcm: [])
    merged = engine.transcribe(_wav(tmp_path / "short.wav", 10.0), TranscriptionOptions())
    assert len(inner.calls) == 1 and inner.calls[0][0] == pytest.approx(10.0)
    assert merged.segments[0].start == 0.25


def test_silence_only_audio_needs_no_engine_call(tmp_path: Path) -> None:
    inner = _ChunkEcho()
    engine = ChunkedTranscriptionEngine(inner, workers=4, max_chunk_sec=60.0, speech_regions=lambda audio, pcm: [])
    merged = engine.transcribe(_wav(tmp_path / "quiet.wav", 130.0), TranscriptionOptions(language="en"))
    assert inner.calls == [] and merged.text == "" and merged.language == "en"
