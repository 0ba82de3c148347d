"""diarized_json through the official openai SDK against `earshot serve`, on the real two-speaker call."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path

import httpx
import openai
import pytest
from recordings import pyannote_sample, requires_pyannote_sample
from sound_fixtures import attributed_share, rttm_turns

pytestmark = requires_pyannote_sample


# 6.5-21.7 s of the call: both speakers, short enough for the embedded recogniser inside a sync request's deadline.
EXCERPT = (6.5, 21.7)


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return pyannote_sample(tmp_path_factory.mktemp("call"))


@pytest.fixture(scope="module")
def excerpt(
    call: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[tuple[float, float, str]]]:
    wav, rttm = call
    path = tmp_path_factory.mktemp("excerpt") / "excerpt.wav"
    path.write_bytes(base64.b64decode(_clip_data_url(wav, *EXCERPT).split(",", 1)[1]))
    start, end = EXCERPT
    turns = [(max(a, start) - start, min(b, end) - start, n) for a, b, n in rttm_turns(rttm) if b > start and a < end]
    return path, turns


def _client(server, key: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def _clip_data_url(wav: Path, start: float, end: float) -> str:
    with wave.open(str(wav)) as source:
        rate = source.getframerate()
        source.setpos(round(start * rate))
        frames = source.readframes(round((end - start) * rate))
        out = io.BytesIO()
        with wave.open(out, "wb") as clip:
            clip.setnchannels(source.getnchannels())
            clip.setsampwidth(source.getsampwidth())
            clip.setframerate(rate)
            clip.writeframes(frames)
    return "data:audio/wav;base64," + base64.b64encode(out.getvalue()).decode()


def test_diarized_json_separates_the_two_speakers(server, excerpt) -> None:  # type: ignore[no-untyped-def]
    wav, reference = excerpt
    key = server.create_key()
    with wav.open("rb") as audio:
        result = _client(server, key).audio.transcriptions.create(
            model="transcribe", file=audio, response_format="diarized_json", chunking_strategy="auto"
        )
    assert result.task == "transcribe"
    assert 15.1 < result.duration < 15.3
    assert result.text.strip()
    assert {segment.speaker for segment in result.segments} == {"A", "B"}
    assert all(segment.type == "transcript.text.segment" for segment in result.segments)
    assert all(segment.id and segment.start < segment.end for segment in result.segments)
    hypothesis = [(s.start, s.end, s.speaker) for s in result.segments]
    assert attributed_share(reference, hypothesis) >= 0.7  # segment-level: word edges blur turns
    assert (result.model_extra or {})["billing"]["billable_minutes"] == 1


def test_known_speakers_take_their_names(server, call: tuple[Path, Path], excerpt) -> None:  # type: ignore[no-untyped-def]
    wav, _ = call
    key = server.create_key()
    with excerpt[0].open("rb") as audio:
        result = _client(server, key).audio.transcriptions.create(
            model="transcribe",
            file=audio,
            response_format="diarized_json",
            chunking_strategy={"type": "server_vad", "threshold": 0.5},
            known_speaker_names=["agent", "customer"],
            # Reference clips from the call itself: 10.6-14.6 s is speaker90, 21.8-28.0 s speaker91.
            known_speaker_references=[_clip_data_url(wav, 10.6, 14.4), _clip_data_url(wav, 22.0, 27.8)],
        )
    speakers = {segment.speaker for segment in result.segments}
    assert speakers == {"agent", "customer"}, speakers
    # 14.5-17.9 s of the call (8.0-11.4 s of the excerpt) is speaker91 alone.
    theirs = [s for s in result.segments if 8.1 <= (s.start + s.end) / 2 <= 11.3]
    assert theirs and all(s.speaker == "customer" for s in theirs), result.segments


def test_bad_references_are_refused_before_any_charge(server, call: tuple[Path, Path]) -> None:  # type: ignore[no-untyped-def]
    wav, _ = call
    key = server.create_key()
    headers = {"Authorization": f"Bearer {key}"}
    cases = [
        ({"known_speaker_names[]": "agent"}, "known_speaker_references[]"),
        ({"known_speaker_names[]": "agent", "known_speaker_references[]": "https://example.com/a.wav"}, None),
        ({"known_speaker_names[]": "agent", "known_speaker_references[]": _clip_data_url(wav, 10.0, 11.0)}, None),
        ({"known_speaker_names[]": "agent", "known_speaker_references[]": _clip_data_url(wav, 0.0, 12.0)}, None),
    ]
    for fields, param in cases:
        response = httpx.post(
            f"{server.url}/v1/audio/transcriptions",
            headers=headers,
            data={"response_format": "diarized_json", **fields},
            files={"file": ("call.wav", wav.read_bytes(), "audio/wav")},
            timeout=60,
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["param"] == (param or "known_speaker_references[]")
    balance = httpx.get(f"{server.url}/v1/credits/balance", headers=headers).json()
    assert balance["balance_micro_usd"] == 1_000_000
