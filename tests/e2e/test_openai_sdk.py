"""The official openai SDK against `earshot serve`: all five formats, billed exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import httpx
import openai
import pytest
from recordings import librivox, requires_testdata
from speech_fixtures import requires_espeak, speak
from speech_scoring import word_error_rate

pytestmark = requires_espeak

SENTENCE = "hello world this is a test of the speech engine"
# espeak-ng's default German voice at slow rates is a hard test for Whisper base's language identification (one
# sentence in four is taken for English at 150 wpm); its Klatt voice at espeak's own rate is heard as German.
GERMAN_VOICE = "de+klatt4"


@pytest.fixture(scope="module")
def speech_mp3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak(tmp_path_factory.mktemp("speech") / "hello.mp3", SENTENCE, fmt="mp3")


def _balance(server, key: str) -> int:  # type: ignore[no-untyped-def]
    response = httpx.get(f"{server.url}/v1/credits/balance", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    return int(response.json()["balance_micro_usd"])


def _client(server, key: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)


def test_default_json_format_transcribes_and_bills(server, speech_mp3: Path) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key(balance_usd="0.01")
    with speech_mp3.open("rb") as audio:
        result = _client(server, key).audio.transcriptions.create(model="transcribe", file=audio)
    words = set(result.text.lower().split())
    assert len(words & set(SENTENCE.split())) >= 3, result.text
    extra = result.model_extra or {}
    assert extra["billing"]["billable_minutes"] == 1
    assert extra["billing"]["cost_micro_usd"] == 900
    assert extra["billing"]["balance_micro_usd"] == 10_000 - 900
    assert result.usage is not None and result.usage.type == "duration"
    assert _balance(server, key) == 10_000 - 900


def test_verbose_json_has_segments_words_and_duration(server, speech_mp3: Path) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key()
    with speech_mp3.open("rb") as audio:
        result = _client(server, key).audio.transcriptions.create(
            model="transcribe",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            language="en",
        )
    assert result.language == "English"
    assert 2.0 < result.duration < 6.0
    assert result.segments and all(0 <= s.start < s.end <= result.duration + 0.05 for s in result.segments)
    assert result.words and all(w.start <= w.end for w in result.words)
    assert (result.model_extra or {})["billing"]["duration_sec"] == pytest.approx(result.duration)


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_formats_carry_billing_in_headers(server, speech_mp3: Path, fmt: Literal["text", "srt", "vtt"]) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key()
    before = _balance(server, key)
    with speech_mp3.open("rb") as audio:
        raw = _client(server, key).audio.transcriptions.with_raw_response.create(
            model="transcribe", file=audio, response_format=fmt
        )
    body = raw.text
    headers = raw.headers
    assert headers["x-earshot-model"] == "whisper-base"
    assert headers["x-earshot-billable-minutes"] == "1"
    assert headers["x-earshot-cost-usd"] == "0.000900"
    assert round(float(headers["x-earshot-balance-usd"]) * 1_000_000) == before - 900
    assert float(headers["x-earshot-duration-sec"]) > 2.0
    assert _balance(server, key) == before - 900
    if fmt == "vtt":
        assert body.startswith("WEBVTT") and "-->" in body
    elif fmt == "srt":
        assert body.startswith("1\n") and "-->" in body and "," in body.splitlines()[1]
    else:
        assert body.strip() and not body.lstrip().startswith("{")
    # the SDK's parsed form is the bare string for these formats
    with speech_mp3.open("rb") as audio:
        parsed = _client(server, key).audio.transcriptions.create(model="transcribe", file=audio, response_format=fmt)
    assert isinstance(parsed, str)


def test_translations_of_english_audio(server, speech_mp3: Path) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key()
    with speech_mp3.open("rb") as audio:
        result = _client(server, key).audio.translations.create(model="transcribe", file=audio)
    assert result.text
    assert (result.model_extra or {})["billing"]["cost_micro_usd"] == 900


def test_sdk_errors_map_to_its_exception_classes(server, speech_mp3: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.AuthenticationError) as auth, speech_mp3.open("rb") as audio:
        _client(server, "sk-es-nope").audio.transcriptions.create(model="transcribe", file=audio)
    assert auth.value.code == "auth_error"

    poor = server.create_key(balance_usd="0.0001")
    with pytest.raises(openai.APIStatusError) as billing, speech_mp3.open("rb") as audio:
        _client(server, poor).audio.transcriptions.create(model="transcribe", file=audio)
    assert billing.value.status_code == 402
    assert billing.value.body["code"] == "billing_error"  # type: ignore[index]

    key = server.create_key()
    with pytest.raises(openai.BadRequestError) as bad, speech_mp3.open("rb") as audio:
        _client(server, key).audio.transcriptions.create(model="whisper-1", file=audio)
    assert bad.value.code == "not_a_transcription_model"


def test_usage_lists_what_was_billed(server, speech_mp3: Path) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key()
    client = _client(server, key)
    for _ in range(2):
        with speech_mp3.open("rb") as audio:
            client.audio.transcriptions.create(model="transcribe", file=audio)
    usage = httpx.get(f"{server.url}/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()
    debits = [e for e in usage["data"] if e["kind"] == "debit"]
    assert len(debits) == 2 and all(e["amount_micro_usd"] == -900 for e in debits)
    assert usage["total_charged_micro_usd"] == 1800
    models = {m.id: m for m in client.models.list().data}
    embedded = {"whisper-base", "whisper-tiny-en", "acoustic-understand", "acoustic-extract"}
    assert all((models[sku].model_extra or {})["live"] is True for sku in embedded)
    # The reference documents' upstream SKUs are listed too, live only where their provider key is configured.
    assert {"whisper-v3-turbo", "whisper-1", "gemini-3-flash-audio", "gemini-2.5-pro"} <= set(models) - embedded
    assert json.loads(httpx.get(f"{server.url}/openapi.json").text)["openapi"].startswith("3.1")


# -- real speech, as a user would send it ------------------------------------------------------------------------
@requires_testdata
@pytest.mark.parametrize("fmt", ["json", "verbose_json", "text", "srt", "vtt"])
def test_real_read_speech_comes_back_nearly_word_for_word_in_every_format(  # type: ignore[no-untyped-def]
    server, fmt: Literal["json", "verbose_json", "text", "srt", "vtt"]
) -> None:
    utterance = librivox()[0]  # "and mister john dashwood had then leisure to consider how much ..."
    key = server.create_key()
    with utterance.path.open("rb") as audio:
        result = _client(server, key).audio.transcriptions.create(model="transcribe", file=audio, response_format=fmt)
    text = result if isinstance(result, str) else result.text
    if fmt in ("srt", "vtt"):
        text = " ".join(line for line in text.splitlines() if line and "-->" not in line and not line.isdigit())
        text = text.removeprefix("WEBVTT")
    assert word_error_rate([utterance.text], [text]) <= 0.1, text


@requires_testdata
def test_verbose_json_carries_what_whisper_produced(server) -> None:  # type: ignore[no-untyped-def]
    key = server.create_key()
    with librivox()[1].path.open("rb") as audio:
        result = _client(server, key).audio.transcriptions.create(
            model="transcribe", file=audio, response_format="verbose_json", timestamp_granularities=["word"]
        )
    assert result.language == "English"
    assert (result.model_extra or {})["language_probability"] > 0.9
    assert result.segments and result.words
    segment = result.segments[0]
    assert segment.tokens and segment.avg_logprob < 0 and segment.compression_ratio > 0
    assert 0 <= segment.no_speech_prob < 0.5 and segment.temperature == 0.0 and segment.seek == 0
    assert [w.word for w in result.words][:3] == ["He", "was", "not"]


@requires_espeak
def test_german_speech_comes_back_german_and_translates_into_english(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    german = speak(
        tmp_path / "de.wav",
        "Guten Morgen, ich möchte gerne einen Kaffee bestellen.",
        voice=GERMAN_VOICE,
        words_per_minute=175,
    )
    client = _client(server, server.create_key())
    with german.open("rb") as audio:
        heard = client.audio.transcriptions.create(model="transcribe", file=audio, response_format="verbose_json")
    assert heard.language == "German" and "kaffee" in heard.text.lower()
    with german.open("rb") as audio:
        translated = client.audio.translations.create(model="transcribe", file=audio)
    assert "coffee" in translated.text.lower()


@requires_espeak
def test_the_english_model_refuses_german_and_charges_nothing(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    german = speak(
        tmp_path / "de.wav",
        "Guten Morgen, ich möchte gerne einen Kaffee bestellen.",
        voice=GERMAN_VOICE,
        words_per_minute=175,
    )
    key = server.create_key()
    before = _balance(server, key)
    client = _client(server, key)
    with pytest.raises(openai.BadRequestError) as asked, german.open("rb") as audio:
        client.audio.transcriptions.create(model="transcribe-fast", file=audio, language="de")
    assert asked.value.code == "unsupported_by_model"
    with pytest.raises(openai.BadRequestError) as heard, german.open("rb") as audio:
        client.audio.transcriptions.create(model="transcribe-fast", file=audio)
    assert heard.value.code == "unsupported_by_model" and "german" in str(heard.value.message)
    assert _balance(server, key) == before
