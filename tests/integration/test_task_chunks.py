"""Long audio as a task: the workflow plans chunks at silences, its Map state runs each through the engine, and the
merge joins them, in the local runner (the same steps Step Functions invokes, chunks on a worker pool).

The recordings are built at test time from real read speech (Debian pocketsphinx-testdata's LibriVox clips) laid
on digital silence at known sample positions, so where every word must land on the recording's timeline is known.
Most tests use an engine that reports exactly where the sound is in the audio it is given (one segment per run of
non-silent samples): offsets, languages and failures are then exact and fast to check, while the planning (Silero
VAD), the chunk blobs, the Map, the merge and the money are the real ones. The one-hour test runs the embedded
recogniser itself.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from recordings import LIBRIVOX_DIR, requires_testdata

from earshot.billing import cost_micro_usd
from earshot.blob_layout import TASKS_PREFIX, task_input_key
from earshot.engines.base import Segment, Transcript, TranscriptionOptions
from earshot.jobs.steps import registry
from earshot.models import LedgerKind
from earshot.ports import Task, new_task
from earshot.runtime import get_runtime
from earshot.services.accounts import NewKey
from earshot.workflow import CHUNK_STEP, LocalRunner, RunResult

RATE = 16_000
pytestmark = requires_testdata


def _clips() -> list[npt.NDArray[np.int16]]:
    clips = []
    for path in sorted(LIBRIVOX_DIR.glob("*.wav")):
        with wave.open(str(path)) as handle:
            clips.append(np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16))
    return clips


def _recording(path: Path, seconds: float, placed: list[tuple[float, int]]) -> npt.NDArray[np.int16]:
    """``seconds`` of digital silence with clip ``i`` starting at ``t`` for each ``(t, i)``; written to ``path``."""
    clips = _clips()
    pcm = np.zeros(round(seconds * RATE), dtype=np.int16)
    for start, index in placed:
        clip = clips[index]
        at = round(start * RATE)
        pcm[at : at + len(clip)] = clip
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm.tobytes())
    return pcm


def _read(path: Path) -> npt.NDArray[np.int16]:
    from earshot.audio.decode import decode_to_pcm16k

    return decode_to_pcm16k(path)


def sound_spans(pcm: npt.NDArray[np.int16], *, gap_sec: float = 1.0) -> list[tuple[float, float]]:
    """Where ``pcm`` is not digital silence: runs of non-zero samples, joined across gaps shorter than ``gap_sec``."""
    loud = np.flatnonzero(pcm != 0)
    if len(loud) == 0:
        return []
    breaks = np.flatnonzero(np.diff(loud) > gap_sec * RATE)
    starts = [loud[0], *loud[breaks + 1]]
    ends = [*loud[breaks], loud[-1]]
    return [(round(int(a) / RATE, 3), round((int(b) + 1) / RATE, 3)) for a, b in zip(starts, ends, strict=True)]


class SpanEngine:
    """A ``TranscriptionEngine`` that hears where the sound is: one segment per span, exact to the sample.

    ``language`` says which language it "detects" in audio whose first span starts after ``odd_after`` seconds of
    silence (a stray chunk), when the caller left the language open; ``fail_after`` makes it fail on such audio.
    """

    def __init__(self, *, odd_after: float | None = None, odd_language: str = "de", fail: bool = False) -> None:
        self.odd_after = odd_after
        self.odd_language = odd_language
        self.fail = fail
        self.calls: list[tuple[float, str | None]] = []

    def check(self, options: TranscriptionOptions) -> None:
        del options

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        spans = sound_spans(_read(audio))
        first = spans[0][0] if spans else 0.0
        self.calls.append((first, options.language))
        odd = self.odd_after is not None and first > self.odd_after
        if odd and self.fail:
            raise RuntimeError("the engine crashed on this chunk")
        language = options.language or (self.odd_language if odd else "en")
        segments = [
            Segment(id=i, start=start, end=end, text=f"sound {i} ({language})") for i, (start, end) in enumerate(spans)
        ]
        return Transcript(text=" ".join(s.text for s in segments), language=language, segments=segments)


@pytest.fixture
def span_engine(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> SpanEngine:
    import earshot.runtime

    engine = SpanEngine()
    real = earshot.runtime._build_engine

    def build(model: Any, role: str, runtime: Any) -> Any:
        return (
            engine if role == "transcription" and model.provider.startswith("embedded:") else real(model, role, runtime)
        )

    monkeypatch.setattr(earshot.runtime, "_build_engine", build)
    return engine


def _task(key: NewKey, audio: Path, **options: Any) -> Task:
    runtime = get_runtime()
    task = new_task(kind="transcription", account_id=key.account.id, model="transcribe", request={})
    blob = task_input_key(task.id)
    task = task.model_copy(
        update={
            "request": {
                "options": {"model": "transcribe", "response_format": "verbose_json", **options},
                "filename": audio.name,
                "source": {"blob_key": blob, "delete_after": True},
            }
        }
    )
    runtime.tasks.create_task(task)
    runtime.blobs.put(blob, audio.read_bytes())
    return task


def _run(task: Task) -> RunResult:
    return LocalRunner(registry(get_runtime()), sleep=lambda _s: None, map_workers=2).run({"task_id": task.id})


def _money(key: NewKey) -> tuple[list[tuple[LedgerKind, int]], int]:
    runtime = get_runtime()
    ledger = [(e.kind, e.amount_micro_usd) for e in runtime.store.list_ledger(key.account.id)]
    account = runtime.store.get_account(key.account.id)
    assert account is not None
    return ledger, account.balance_micro_usd


def _task_blobs(task: Task) -> list[str]:
    root = get_runtime().blobs._path(f"{TASKS_PREFIX}{task.id}")  # type: ignore[attr-defined]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_long_recording_is_cut_at_silences_run_as_a_map_and_merged_with_exact_offsets(
    new_key: NewKey, span_engine: SpanEngine, tmp_path: Path
) -> None:
    # Clips at 2 s, 70.25 s and 140.5 s of a 200-s recording: three chunks with speech, the silent tail not run.
    pcm = _recording(tmp_path / "long.wav", 200.0, [(2.0, 0), (70.25, 1), (140.5, 3)])
    task = _task(new_key, tmp_path / "long.wav")

    result = _run(task)

    assert result.succeeded, result.error
    chunks = result.state["chunks"]
    assert len(chunks) == 3 and all(c["end"] - c["start"] <= 60.0 for c in chunks)
    assert [a.step for a in result.history].count(CHUNK_STEP) == 3  # one Map iteration per chunk with speech
    done = get_runtime().tasks.get_task(task.id)
    assert done is not None and done.status == "completed" and done.results is not None
    (body,) = done.results
    # Every segment lands where the sound is in the whole recording, to the millisecond.
    assert [(s["start"], s["end"]) for s in body["segments"]] == sound_spans(pcm)
    assert [s["id"] for s in body["segments"]] == list(range(len(body["segments"])))
    assert body["language"] == "English" and body["duration"] == 200.0
    # Billed once, for the metered 200 s (4 started minutes), captured when the task completed.
    ledger, balance = _money(new_key)
    charge = cost_micro_usd(get_runtime().catalog.resolve_transcription("transcribe"), 200.0)
    assert ledger == [("debit", -charge), ("topup", 1_000_000)]
    assert balance == 1_000_000 - charge
    assert _task_blobs(task) == []  # the input, the chunks and their results are gone


def test_one_language_is_decided_for_the_recording_and_a_stray_chunk_is_heard_again_in_it(
    new_key: NewKey, span_engine: SpanEngine, tmp_path: Path
) -> None:
    _recording(tmp_path / "long.wav", 190.0, [(1.0, 0), (61.0, 2), (125.0, 3)])
    span_engine.odd_after = 4.0  # the third chunk's speech starts 5 s in: the engine "hears" German there
    task = _task(new_key, tmp_path / "long.wav")

    result = _run(task)

    assert result.succeeded, result.error
    done = get_runtime().tasks.get_task(task.id)
    assert done is not None and done.results is not None
    (body,) = done.results
    assert body["language"] == "English"
    assert all("(en)" in s["text"] for s in body["segments"])  # the stray chunk was transcribed again, in English
    assert sorted((str(language) for _, language in span_engine.calls)) == ["None", "None", "None", "en"]


def test_a_caller_language_is_used_for_every_chunk_without_a_vote(
    new_key: NewKey, span_engine: SpanEngine, tmp_path: Path
) -> None:
    _recording(tmp_path / "long.wav", 130.0, [(1.0, 0), (70.0, 1)])
    span_engine.odd_after = 4.0
    task = _task(new_key, tmp_path / "long.wav", language="en")

    assert _run(task).succeeded
    assert [language for _, language in span_engine.calls] == ["en", "en"]


def test_a_chunk_that_fails_fails_the_task_and_refunds_exactly_what_was_taken(
    new_key: NewKey, span_engine: SpanEngine, tmp_path: Path
) -> None:
    _recording(tmp_path / "long.wav", 190.0, [(1.0, 0), (61.0, 2), (125.0, 3)])
    span_engine.odd_after, span_engine.fail = 4.0, True
    task = _task(new_key, tmp_path / "long.wav")

    result = _run(task)

    assert not result.succeeded and result.error is not None
    assert result.error["Error"] == "EngineError"
    failed = get_runtime().tasks.get_task(task.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error is not None and failed.error["code"] == "provider_error"
    ledger, balance = _money(new_key)
    charge = cost_micro_usd(get_runtime().catalog.resolve_transcription("transcribe"), 190.0)
    assert sorted(ledger) == sorted([("refund", charge), ("debit", -charge), ("topup", 1_000_000)])
    assert balance == 1_000_000  # exactly what was taken came back, once
    assert [a.step for a in result.history].count("refund_and_fail") == 1
    assert "merge_chunks" not in [a.step for a in result.history]
    assert _task_blobs(task) == []  # the chunks' audio and the input are deleted with the failure


def test_audio_no_longer_than_a_chunk_runs_whole_in_one_iteration(
    new_key: NewKey, span_engine: SpanEngine, tmp_path: Path
) -> None:
    pcm = _recording(tmp_path / "short.wav", 30.0, [(3.0, 4)])
    task = _task(new_key, tmp_path / "short.wav")

    result = _run(task)

    assert result.succeeded
    assert result.state["chunks"] == [{"index": 0, "start": 0.0, "end": 30.0, "whole": True}]
    done = get_runtime().tasks.get_task(task.id)
    assert done is not None and done.results is not None
    assert [(s["start"], s["end"]) for s in done.results[0]["segments"]] == sound_spans(pcm)


def test_silence_longer_than_a_chunk_runs_no_engine_and_answers_an_empty_transcript(
    new_key: NewKey, span_engine: SpanEngine, tmp_path: Path
) -> None:
    _recording(tmp_path / "silence.wav", 150.0, [])
    task = _task(new_key, tmp_path / "silence.wav")

    result = _run(task)

    assert result.succeeded and result.state["chunks"] == []
    assert span_engine.calls == []
    done = get_runtime().tasks.get_task(task.id)
    assert (
        done is not None
        and done.results is not None
        and done.results[0]["text"] == ""
        and done.results[0]["segments"] == []
    )
    ledger, _ = _money(new_key)
    assert [kind for kind, _ in ledger] == ["debit", "topup"]  # the metered 150 s are billed all the same
