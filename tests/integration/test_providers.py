"""Upstream provider engines end to end against fake providers on loopback: wire formats, retries, deadlines.

The fakes (tests/fakes/upstreams.py) are real HTTP servers, so these tests exercise httpx, the connection pool,
timeouts and the engines' parsing exactly as production does; only the provider is pretend.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from audio_fixtures import write_audio
from fakes.upstreams import FakeGemini, FakeOpenAI, drop, error, hang, latency, malformed_json, rate_limited

from earshot.engines.base import KnownAudio, TranscriptionOptions
from earshot.engines.providers import audio_convert
from earshot.engines.providers.gemini import GeminiAudioEngine
from earshot.engines.providers.http import RetryPolicy, call_upstream, default_http_client
from earshot.engines.providers.openai_chat_audio import OpenAIChatAudioEngine
from earshot.engines.providers.openai_transcription import OpenAITranscriptionEngine, language_code
from earshot.errors import FileTooLargeError, ProviderError, ProviderTimeoutError, UnsupportedByModelError

# Short backoff so retry tests stay fast; Retry-After and deadlines use real time.
FAST = RetryPolicy(base_delay_sec=0.05, max_delay_sec=0.2)
SECONDS = 2.0


# -- fixtures ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("provider-audio")
    for fmt in ("wav", "mp3", "m4a", "webm", "mp4_video"):
        write_audio(directory / fmt, fmt=fmt, seconds=SECONDS)
    return directory


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as upstream:
        yield upstream


def whisper(upstream: FakeOpenAI, *, model: str = "whisper-1", **kw: Any) -> OpenAITranscriptionEngine:
    return OpenAITranscriptionEngine(
        base_url=upstream.url, api_key=upstream.api_key, upstream_model=model, retry_policy=FAST, **kw
    )


def gemini_engine(upstream: FakeGemini, **kw: Any) -> GeminiAudioEngine:
    return GeminiAudioEngine(
        base_url=upstream.url, api_key=upstream.api_key, upstream_model="gemini-2.5-flash", retry_policy=FAST, **kw
    )


def chat_engine(upstream: FakeOpenAI, **kw: Any) -> OpenAIChatAudioEngine:
    return OpenAIChatAudioEngine(
        base_url=upstream.url, api_key=upstream.api_key, upstream_model="gpt-4o-audio-preview", retry_policy=FAST, **kw
    )


def options(**kw: Any) -> TranscriptionOptions:
    return TranscriptionOptions.model_validate({"deadline_sec": 10.0, **kw})


def decoded(data: bytes) -> tuple[str, str, int, float]:
    """(container, codec, sample rate, seconds) of encoded audio bytes."""
    container: Any = av.open(io.BytesIO(data), mode="r")
    with container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return container.format.name, stream.codec_context.name, stream.rate, samples / stream.rate


# -- OpenAI-compatible transcription -----------------------------------------------------------------------------


def test_whisper_transcribes_with_segments_and_words(openai: FakeOpenAI, audio_dir: Path) -> None:
    transcript = whisper(openai).transcribe(audio_dir / "m4a", options(language="en", word_timestamps=True))

    assert transcript.text == "Hello there. How are you?"
    assert transcript.language == "en"  # Whisper said "english"
    assert [(s.start, s.end, s.text.strip()) for s in transcript.segments] == [
        (0.0, 1.2, "Hello there."),
        (1.2, 2.5, "How are you?"),
    ]
    assert [w.word for w in transcript.segments[1].words] == ["How", "are", "you?"]
    assert [w.word for w in transcript.words] == ["Hello", "there.", "How", "are", "you?"]

    (request,) = openai.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["authorization"] == f"Bearer {openai.api_key}"
    assert request.field("model") == "whisper-1"
    assert request.field("response_format") == "verbose_json"
    assert request.form["timestamp_granularities[]"] == ["segment", "word"]
    assert request.field("language") == "en"
    assert request.filename == "audio.m4a"  # OpenAI reads m4a: sent untouched
    assert request.audio == (audio_dir / "m4a").read_bytes()


def test_whisper_options_model_overrides_the_engine_default(openai: FakeOpenAI, audio_dir: Path) -> None:
    whisper(openai).transcribe(audio_dir / "wav", options(upstream_model="whisper-large-v3", prompt="Kenobi"))

    (request,) = openai.requests
    assert request.field("model") == "whisper-large-v3"
    assert request.field("prompt") == "Kenobi"
    assert request.form["timestamp_granularities[]"] == ["segment"]
    assert "language" not in request.form


def test_whisper_translation_uses_the_translations_endpoint(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.language = "french"

    transcript = whisper(openai).transcribe(audio_dir / "mp3", options(task="translate", language="fr"))

    assert transcript.language == "en"
    (request,) = openai.requests
    assert request.path == "/v1/audio/translations"
    assert "language" not in request.form  # the translations endpoint takes neither
    assert "timestamp_granularities[]" not in request.form


def test_json_only_models_get_one_segment_spanning_the_audio(openai: FakeOpenAI, audio_dir: Path) -> None:
    engine = whisper(openai, model="gpt-4o-transcribe")

    transcript = engine.transcribe(audio_dir / "wav", options())

    (request,) = openai.requests
    assert request.field("response_format") == "json"
    assert "timestamp_granularities[]" not in request.form
    assert transcript.text == "Hello there. How are you?"
    assert len(transcript.segments) == 1
    assert transcript.segments[0].end == pytest.approx(SECONDS, abs=0.05)
    with pytest.raises(UnsupportedByModelError):
        engine.check(options(word_timestamps=True))
    with pytest.raises(UnsupportedByModelError):
        engine.check(options(task="translate"))


def test_metered_audio_is_named_without_opening_the_file_again(
    openai: FakeOpenAI, audio_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The charged run hands the engine what metering found: the upload's format is named from it (no second
    PyAV open on the request path) and the metered length, not the container's, is the transcript's span."""

    def reopened(path: Path) -> tuple[str, float | None]:
        raise AssertionError(f"{path} was opened again")

    monkeypatch.setattr(audio_convert, "describe_format", reopened)
    known = KnownAudio(format_name="mp3", codec="mp3", has_video=False, seconds=1.5)

    transcript = whisper(openai, model="gpt-4o-transcribe").transcribe(
        audio_dir / "mp3", options(known_audio=known.model_dump())
    )

    (request,) = openai.requests
    assert request.filename == "audio.mp3"  # passed through as metered: an mp3 OpenAI reads
    assert request.audio == (audio_dir / "mp3").read_bytes()
    assert transcript.segments[0].end == 1.5


def test_metered_video_container_keeps_its_name(openai: FakeOpenAI, audio_dir: Path) -> None:
    known = KnownAudio(format_name="mov,mp4,m4a,3gp,3g2,mj2", codec="aac", has_video=True, seconds=SECONDS)

    whisper(openai).transcribe(audio_dir / "mp4_video", options(known_audio=known.model_dump()))

    (request,) = openai.requests
    assert request.filename == "audio.mp4"


def test_whisper_refuses_unknown_languages_before_any_work(openai: FakeOpenAI) -> None:
    with pytest.raises(UnsupportedByModelError) as raised:
        whisper(openai).check(options(language="klingon"))

    assert raised.value.param == "language"
    assert openai.requests == []


def test_language_names_become_iso_codes() -> None:
    assert language_code("English") == "en"
    assert language_code("en-US") == "en"
    assert language_code("javanese") == "jv"
    assert language_code("jw") == "jv"
    assert language_code("castilian") == "es"
    assert language_code("klingon") is None


def test_audio_over_the_upload_limit_is_reencoded_to_flac(openai: FakeOpenAI, audio_dir: Path) -> None:
    source = audio_dir / "wav"  # 44.1 kHz PCM, about 176 kB
    engine = whisper(openai, max_upload_bytes=100_000)

    engine.transcribe(source, options())

    (request,) = openai.requests
    assert request.filename == "audio.flac"
    assert request.audio is not None
    container, codec, rate, seconds = decoded(request.audio)
    assert (container, codec, rate) == ("flac", "flac", 16_000)
    assert seconds == pytest.approx(SECONDS, abs=0.05)


# -- Gemini -----------------------------------------------------------------------------------------------------


def test_gemini_answers_a_question_about_wav(gemini: FakeGemini, audio_dir: Path) -> None:
    result = gemini_engine(gemini).ask(
        audio_dir / "wav", "What do you hear?", system="Be brief.", max_tokens=64, temperature=0.2, deadline_sec=10
    )

    assert result.text == "A steady 440 Hz tone."  # the thought part is not the answer
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (250, 42, "stop")
    (request,) = gemini.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == gemini.api_key
    assert request.query == {}  # the key never travels in the URL
    assert "authorization" not in request.headers
    assert request.audio_format == "audio/wav"
    assert request.audio == (audio_dir / "wav").read_bytes()
    body = request.json
    assert body["contents"][0]["parts"][1] == {"text": "What do you hear?"}
    assert body["system_instruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"] == {"maxOutputTokens": 64, "temperature": 0.2}


def test_gemini_json_mode_and_length_finish(gemini: FakeGemini, audio_dir: Path) -> None:
    gemini.finish_reason = "MAX_TOKENS"

    result = gemini_engine(gemini).ask(audio_dir / "mp3", "Describe it as JSON", json_mode=True, deadline_sec=10)

    assert result.finish_reason == "length"
    (request,) = gemini.requests
    assert request.json["generationConfig"] == {"responseMimeType": "application/json"}
    assert request.audio_format == "audio/mp3"


@pytest.mark.parametrize("fmt", ["m4a", "webm", "mp4_video"])
def test_gemini_gets_formats_it_does_not_take_as_flac(gemini: FakeGemini, audio_dir: Path, fmt: str) -> None:
    gemini_engine(gemini).ask(audio_dir / fmt, "What do you hear?", deadline_sec=10)

    (request,) = gemini.requests
    assert request.audio_format == "audio/flac"
    assert request.audio is not None
    container, codec, rate, seconds = decoded(request.audio)
    assert (container, codec, rate) == ("flac", "flac", 16_000)
    assert seconds == pytest.approx(SECONDS, abs=0.05)


def test_gemini_refuses_audio_too_long_for_one_inline_request(gemini: FakeGemini, tmp_path: Path) -> None:
    long_noise = write_audio(tmp_path / "long.wav", fmt="wav", seconds=20.0, kind="noise")

    with pytest.raises(FileTooLargeError) as raised:
        gemini_engine(gemini, max_request_bytes=60_000).ask(long_noise, "What is this?", deadline_sec=10)

    assert "Gemini" in raised.value.message and "shorter" in raised.value.message
    assert gemini.requests == []  # refused before spending an upstream call


def test_gemini_transcribes_into_segments(gemini: FakeGemini, audio_dir: Path) -> None:
    gemini.reply_text = json.dumps(
        {
            "language": "de",
            "segments": [
                {"start": 1.0, "end": 9.0, "text": " Wie geht's? "},  # runs past the audio: clamped
                {"start": 0.0, "end": 1.0, "text": "Hallo."},
                {"start": 1.5, "end": 1.6, "text": "  "},
            ],
        }
    )

    transcript = gemini_engine(gemini).transcribe(audio_dir / "m4a", options(prompt="Grüße"))

    assert transcript.text == "Hallo. Wie geht's?"
    assert transcript.language == "de"
    assert [(s.id, s.start, s.text) for s in transcript.segments] == [(0, 0.0, "Hallo."), (1, 1.0, "Wie geht's?")]
    assert transcript.segments[1].end == pytest.approx(SECONDS, abs=0.05)
    config = gemini.requests[0].json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert "segments" in config["responseSchema"]["properties"]
    assert "Grüße" in gemini.requests[0].json["contents"][0]["parts"][1]["text"]


def test_gemini_transcript_that_is_not_json_keeps_its_words(gemini: FakeGemini, audio_dir: Path) -> None:
    gemini.reply_text = "Hello there."

    transcript = gemini_engine(gemini).transcribe(audio_dir / "wav", options(task="translate"))

    assert transcript.text == "Hello there."
    assert transcript.language == "en"
    assert len(transcript.segments) == 1


def test_gemini_refuses_word_timestamps_and_truncated_transcripts(gemini: FakeGemini, audio_dir: Path) -> None:
    engine = gemini_engine(gemini)
    with pytest.raises(UnsupportedByModelError):
        engine.check(options(word_timestamps=True))

    gemini.finish_reason = "MAX_TOKENS"
    with pytest.raises(ProviderError, match="before the transcript was complete"):
        engine.transcribe(audio_dir / "wav", options())


def test_gemini_retries_resource_exhausted(gemini: FakeGemini, audio_dir: Path) -> None:
    gemini.fail_next(error(429), error(503))

    result = gemini_engine(gemini).ask(audio_dir / "wav", "What do you hear?", deadline_sec=10)

    assert result.text == "A steady 440 Hz tone."
    assert len(gemini.requests) == 3


def test_gemini_error_message_reaches_the_caller_without_the_key(gemini: FakeGemini, audio_dir: Path) -> None:
    engine = GeminiAudioEngine(base_url=gemini.url, api_key="AIza-wrong-key-987654", retry_policy=FAST)

    with pytest.raises(ProviderError) as raised:
        engine.ask(audio_dir / "wav", "What do you hear?", deadline_sec=10)

    assert "API key not valid" in raised.value.message
    assert "AIza-wrong-key-987654" not in str(raised.value)
    assert len(gemini.requests) == 1  # a 400 is not retried


# -- OpenAI chat with input_audio -----------------------------------------------------------------------------


def test_chat_answers_a_question_about_mp3(openai: FakeOpenAI, audio_dir: Path) -> None:
    result = chat_engine(openai).ask(
        audio_dir / "mp3", "What do you hear?", system="Be brief.", max_tokens=50, temperature=0.5, deadline_sec=10
    )

    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("A steady 440 Hz tone.", 120, 8)
    assert result.finish_reason == "stop"
    (request,) = openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {openai.api_key}"
    body = request.json
    assert body["model"] == "gpt-4o-audio-preview"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"][0] == {"type": "text", "text": "What do you hear?"}
    assert (body["max_completion_tokens"], body["temperature"]) == (50, 0.5)
    assert request.audio_format == "mp3"
    assert request.audio == (audio_dir / "mp3").read_bytes()


def test_chat_gets_other_formats_as_wav_and_json_mode_mentions_json(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.finish_reason = "length"

    result = chat_engine(openai).ask(audio_dir / "webm", "Describe the sound.", json_mode=True, deadline_sec=10)

    assert result.finish_reason == "length"
    (request,) = openai.requests
    assert request.audio_format == "wav"
    assert request.audio is not None
    assert decoded(request.audio)[:3] == ("wav", "pcm_s16le", 16_000)
    assert request.json["response_format"] == {"type": "json_object"}
    assert "JSON" in request.json["messages"][0]["content"]  # OpenAI refuses JSON mode otherwise


def test_chat_transcribes_into_one_segment(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.reply_text = " Hello there. \n"

    transcript = chat_engine(openai).transcribe(audio_dir / "m4a", options(language="en-GB"))

    assert transcript.text == "Hello there."
    assert transcript.language == "en"
    assert len(transcript.segments) == 1
    assert transcript.segments[0].end == pytest.approx(SECONDS, abs=0.05)
    assert "Transcribe" in openai.requests[0].json["messages"][0]["content"][0]["text"]


# -- faults: retries, Retry-After, deadlines, broken answers ----------------------------------------------------


def test_a_server_error_is_retried_then_succeeds(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.fail_next(error(503))

    transcript = whisper(openai).transcribe(audio_dir / "wav", options())

    assert transcript.text == "Hello there. How are you?"
    assert len(openai.requests) == 2


@pytest.mark.parametrize(
    "make_engine",
    [
        lambda up, path: whisper(up).transcribe(path, options()),
        lambda up, path: chat_engine(up).ask(path, "What?", deadline_sec=10),
    ],
    ids=["transcription", "chat"],
)
def test_three_failures_make_a_provider_error(
    openai: FakeOpenAI, audio_dir: Path, make_engine: Callable[[FakeOpenAI, Path], object]
) -> None:
    openai.fail_next(error(500), error(502), error(503, message="overloaded, sorry"), error(500))

    with pytest.raises(ProviderError) as raised:
        make_engine(openai, audio_dir / "wav")

    assert raised.value.status == 502
    assert "503" in raised.value.message and "overloaded, sorry" in raised.value.message
    assert len(openai.requests) == 3  # at most three attempts, whatever the layers


def test_retry_after_is_honoured(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.fail_next(rate_limited(1))
    started = time.monotonic()

    whisper(openai).transcribe(audio_dir / "wav", options())

    assert time.monotonic() - started >= 1.0
    assert len(openai.requests) == 2


def test_retry_after_as_an_http_date_is_honoured(gemini: FakeGemini, audio_dir: Path) -> None:
    gemini.fail_next(rate_limited(format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)))
    started = time.monotonic()

    gemini_engine(gemini).ask(audio_dir / "wav", "What?", deadline_sec=10)

    assert time.monotonic() - started >= 0.9  # HTTP dates have one-second resolution
    assert len(gemini.requests) == 2


def test_retry_after_beyond_the_deadline_gives_up_at_once(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.fail_next(rate_limited(30))
    started = time.monotonic()

    with pytest.raises(ProviderError) as raised:
        whisper(openai).transcribe(audio_dir / "wav", options(deadline_sec=5.0))

    assert time.monotonic() - started < 3.0  # not the 30 s asked for (slack for a loaded machine)
    assert raised.value.retry_after == 30  # the caller's client learns when to come back
    assert len(openai.requests) == 1


def test_a_hang_times_out_within_the_deadline(gemini: FakeGemini, audio_dir: Path) -> None:
    gemini.fail_next(hang(30))
    started = time.monotonic()

    with pytest.raises(ProviderTimeoutError) as raised:
        gemini_engine(gemini).ask(audio_dir / "wav", "What?", deadline_sec=1.5)

    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed <= 1.5 + 3.0  # at the deadline, not the 30 s hang (slack for a loaded machine)
    assert raised.value.status == 504
    assert len(gemini.requests) == 1


def test_slow_but_in_time_answers_are_accepted(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.fail_next(latency(0.5))

    transcript = whisper(openai).transcribe(audio_dir / "wav", options(deadline_sec=3.0))

    assert transcript.text
    assert len(openai.requests) == 1


def test_a_hang_after_a_failure_still_ends_at_the_deadline(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.fail_next(error(500), hang(30))
    started = time.monotonic()

    with pytest.raises(ProviderTimeoutError):
        chat_engine(openai).ask(audio_dir / "wav", "What?", deadline_sec=1.5)

    assert time.monotonic() - started <= 1.5 + 3.0  # at the deadline, not the 30 s hang (slack for a loaded machine)
    assert len(openai.requests) == 2


@pytest.mark.parametrize("engine", ["whisper", "gemini", "chat"])
def test_malformed_json_is_a_provider_error_without_retry(
    openai: FakeOpenAI, gemini: FakeGemini, audio_dir: Path, engine: str
) -> None:
    upstream: FakeOpenAI | FakeGemini = gemini if engine == "gemini" else openai
    upstream.fail_next(malformed_json())

    with pytest.raises(ProviderError, match="malformed JSON"):
        if engine == "whisper":
            whisper(openai).transcribe(audio_dir / "wav", options())
        elif engine == "gemini":
            gemini_engine(gemini).ask(audio_dir / "wav", "What?", deadline_sec=10)
        else:
            chat_engine(openai).ask(audio_dir / "wav", "What?", deadline_sec=10)

    assert len(upstream.requests) == 1


def test_a_dropped_connection_is_retried(gemini: FakeGemini, audio_dir: Path) -> None:
    engine = gemini_engine(gemini)
    engine.ask(audio_dir / "wav", "Warm the pool", deadline_sec=10)
    gemini.fail_next(drop())

    result = engine.ask(audio_dir / "wav", "What?", deadline_sec=10)

    assert result.text == "A steady 440 Hz tone."
    assert len(gemini.requests) == 3


def test_a_client_error_is_not_retried_and_keeps_the_upstream_message(openai: FakeOpenAI, audio_dir: Path) -> None:
    openai.fail_next(error(400, message="Audio file is too short. Minimum audio length is 0.1 seconds."))

    with pytest.raises(ProviderError, match="too short") as raised:
        whisper(openai).transcribe(audio_dir / "wav", options())

    assert raised.value.status == 502
    assert len(openai.requests) == 1


def test_the_api_key_is_sent_but_never_appears_in_errors(openai: FakeOpenAI, audio_dir: Path) -> None:
    secret = "sk-live-wrong-key-5f3c9a"
    engine = OpenAITranscriptionEngine(base_url=openai.url, api_key=secret, retry_policy=FAST)

    with pytest.raises(ProviderError) as raised:
        engine.transcribe(audio_dir / "wav", options())

    assert openai.requests[0].headers["authorization"] == f"Bearer {secret}"
    assert "Incorrect API key" in raised.value.message
    assert secret not in str(raised.value) and secret not in repr(raised.value.args)
    assert "[redacted]" in raised.value.message


def test_an_unreachable_upstream_is_a_provider_error(audio_dir: Path) -> None:
    with FakeOpenAI() as gone:
        url, key = gone.url, gone.api_key  # a port nothing listens on once the fake stops
    engine = OpenAITranscriptionEngine(base_url=url, api_key=key, retry_policy=FAST)

    with pytest.raises(ProviderError, match="could not reach"):
        engine.transcribe(audio_dir / "wav", options())


# -- call_upstream's policy, on a fake transport and a fake clock ------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def build() -> httpx.Request:
    return httpx.Request("POST", "https://upstream.test/v1/thing", content=b"{}")


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    fake = FakeTime()
    policy = RetryPolicy(clock=fake.clock, sleep=fake.sleep, random_source=lambda: 1.0, max_delay_sec=0.4)
    client, seen = scripted(httpx.Response(500), httpx.Response(502), httpx.Response(200, json={"ok": True}))

    assert call_upstream(client, build, deadline_sec=30, policy=policy) == {"ok": True}
    assert fake.sleeps == [0.25, 0.4]  # 0.25 * 2**n, capped; random_source scales it (full jitter)
    assert len(seen) == 3


def test_connect_errors_are_retried_at_most_three_times() -> None:
    fake = FakeTime()
    policy = RetryPolicy(clock=fake.clock, sleep=fake.sleep, random_source=lambda: 0.5)
    refused = httpx.ConnectError("connection refused")
    client, seen = scripted(refused, refused, refused, httpx.Response(200, json={}))

    with pytest.raises(ProviderError, match="could not reach"):
        call_upstream(client, build, deadline_sec=30, policy=policy)
    assert len(seen) == 3


def test_retry_after_http_date_is_read_against_the_wall_clock() -> None:
    fake = FakeTime()
    now = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
    policy = RetryPolicy(clock=fake.clock, sleep=fake.sleep, wall_clock=lambda: now)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    client, _ = scripted(httpx.Response(503, headers={"retry-after": later}), httpx.Response(200, json=[1]))

    assert call_upstream(client, build, deadline_sec=30, policy=policy) == [1]
    assert fake.sleeps == [7.0]


def test_backoff_that_would_outlast_the_deadline_is_not_slept() -> None:
    fake = FakeTime()
    policy = RetryPolicy(clock=fake.clock, sleep=fake.sleep, random_source=lambda: 1.0, base_delay_sec=2.0)
    client, seen = scripted(httpx.Response(503), httpx.Response(200, json={}))

    with pytest.raises(ProviderError, match="503"):
        call_upstream(client, build, deadline_sec=1.0, policy=policy)
    assert fake.sleeps == []
    assert len(seen) == 1


def test_an_exhausted_deadline_makes_no_request() -> None:
    client, seen = scripted(httpx.Response(200, json={}))

    with pytest.raises(ProviderTimeoutError):
        call_upstream(client, build, deadline_sec=0.0)
    assert seen == []


def test_the_default_client_does_not_retry_or_follow_redirects() -> None:
    client = default_http_client()
    assert client.follow_redirects is False
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert pool._retries == 0
