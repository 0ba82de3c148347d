"""The inference function's contract: deployed API functions send their engine calls to it (audio inline, or by
blob key above the invoke payload limit) and get the same answer the engine gives in-process.

The wire is replaced by ``InProcessInvoker`` over a second runtime without ``EARSHOT_INFERENCE_FUNCTION`` (what the
inference function itself runs), so the whole JSON round trip, the blob hand-off and the error names are real.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from audio_fixtures import audio_bytes

from earshot import errors
from earshot.adapters.lambda_invoker import LambdaInvoker
from earshot.blob_layout import INFERENCE_PREFIX
from earshot.config import Settings
from earshot.engines.base import Transcript, TranscriptionOptions
from earshot.engines.remote import (
    InferenceCall,
    RemoteTranscriptionEngine,
    audio_reference,
    raise_remote_error,
)
from earshot.inference import InProcessInvoker, handle_inference
from earshot.local.server import LocalGateway
from earshot.runtime import Runtime, get_runtime, reset_runtime
from earshot.services.accounts import create_key


class RecordingInvoker:
    """Runs the calls in-process and keeps every payload, as the Lambda service would receive it."""

    def __init__(self, runtime: Runtime) -> None:
        self.inner = InProcessInvoker(runtime)
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, payload: dict[str, Any], *, timeout_sec: float) -> dict[str, Any]:
        self.payloads.append(json.loads(json.dumps(payload)))
        return self.inner.invoke(payload, timeout_sec=timeout_sec)


def _deployed_api_runtime(monkeypatch: pytest.MonkeyPatch, engine_runtime: Runtime) -> tuple[Runtime, RecordingInvoker]:
    monkeypatch.setenv("EARSHOT_INFERENCE_FUNCTION", "earshot-test-inference")
    reset_runtime()
    api = get_runtime()
    invoker = RecordingInvoker(engine_runtime)
    api._extras["inference_invoker"] = invoker
    return api, invoker


def test_an_api_function_runs_embedded_engines_through_the_inference_function(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_runtime = get_runtime()  # built before the variable is set: runs its engines itself
    api, invoker = _deployed_api_runtime(monkeypatch, engine_runtime)
    key = create_key(api.store, name="t", balance_micro_usd=1_000_000)
    wav = audio_bytes("wav", 3.0, sample_rate=16000)
    body = (
        b'--B\r\nContent-Disposition: form-data; name="response_format"\r\n\r\nverbose_json\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n' + wav + b"\r\n--B--\r\n"
    )
    response = LocalGateway(max_request_bytes=26 * 1024 * 1024).handle(
        method="POST",
        path="/v1/audio/transcriptions",
        raw_query="",
        headers={"Authorization": f"Bearer {key.secret}", "Content-Type": "multipart/form-data; boundary=B"},
        body=body,
    )
    assert response.status == 200, response.body
    document = json.loads(response.body)
    assert document["billing"]["billable_minutes"] == 1
    (payload,) = invoker.payloads  # one engine call, audio inline: it fits the invoke payload
    assert payload["call"]["op"] == "transcribe" and payload["call"]["role"] == "transcription"
    assert payload["audio"]["inline"] and "blob_key" not in payload["audio"]
    assert len(json.dumps(payload)) < 6 * 1024 * 1024
    assert "text" in document


def test_audio_above_the_payload_limit_goes_by_blob_key_and_is_deleted_after(data_dir: Path) -> None:
    runtime = get_runtime()
    audio = data_dir.parent / "long.wav"
    audio.write_bytes(audio_bytes("wav", 2.0, sample_rate=16000))
    with audio_reference(runtime.blobs, audio, inline_limit=1000) as reference:
        key = reference["blob_key"]
        assert key.startswith(INFERENCE_PREFIX) and "inline" not in reference
        assert runtime.blobs.get(key) == audio.read_bytes()
    assert not runtime.blobs.exists(key)


class _FakeLocal:
    def __init__(self) -> None:
        self.checked: list[TranscriptionOptions] = []

    def check(self, options: TranscriptionOptions) -> None:
        self.checked.append(options)


def test_the_remote_engine_sends_large_audio_by_key_and_reads_the_transcript(data_dir: Path) -> None:
    runtime = get_runtime()
    seen: list[dict[str, Any]] = []

    class Echo:
        def invoke(self, payload: dict[str, Any], *, timeout_sec: float) -> dict[str, Any]:
            seen.append(payload)
            assert runtime.blobs.exists(payload["audio"]["blob_key"])  # present for the call
            assert timeout_sec == pytest.approx(12.0 + 5.0)
            return {"result": Transcript(text="hello", language="en").model_dump()}

    big = data_dir.parent / "big.wav"
    big.write_bytes(b"\0" * 5_000_000)  # above INLINE_AUDIO_LIMIT_BYTES
    local = _FakeLocal()
    engine = RemoteTranscriptionEngine(local, sku="s", role="transcription", invoker=Echo(), blobs=runtime.blobs)
    engine.check(TranscriptionOptions())
    transcript = engine.transcribe(big, TranscriptionOptions(deadline_sec=12.0))
    assert transcript.text == "hello" and local.checked  # checks stay local
    assert not runtime.blobs.exists(seen[0]["audio"]["blob_key"])  # deleted after the call


def test_engine_errors_cross_the_wire_by_class_name(data_dir: Path) -> None:
    runtime = get_runtime()
    call = InferenceCall(
        op="transcribe",
        sku="whisper-base",
        role="transcription",
        arguments={"options": TranscriptionOptions().model_dump(mode="json")},
        audio={"inline": "bm90IGF1ZGlv", "filename": "x.wav"},  # "not audio"
    )
    with pytest.raises(errors.InvalidAudioError):
        InProcessInvoker(runtime).invoke(call.to_payload(), timeout_sec=10)
    with pytest.raises(errors.NotFoundError):
        handle_inference(runtime, {**call.to_payload(), "call": {**call.to_payload()["call"], "sku": "nope"}})
    with pytest.raises(errors.InvalidRequestError):
        handle_inference(runtime, {"step": "reserve", "state": {}})  # not an engine step
    with pytest.raises(errors.ProviderTimeoutError):
        raise_remote_error("ProviderTimeoutError", "slow")
    with pytest.raises(errors.EngineError, match="failed: MemoryError"):
        raise_remote_error("MemoryError", "oom")


class _FakeLambdaClient:
    def __init__(self, answer: dict[str, Any], *, function_error: bool) -> None:
        self.answer = answer
        self.function_error = function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        response: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(self.answer).encode())}
        if self.function_error:
            response["FunctionError"] = "Unhandled"
        return response


class _FakeSession:
    def __init__(self, client: _FakeLambdaClient) -> None:
        self.client_config: Any = None
        self._client = client

    def client(self, service: str, config: Any) -> _FakeLambdaClient:
        assert service == "lambda"
        self.client_config = config
        return self._client


def test_the_lambda_invoker_waits_for_the_deadline_and_never_retries() -> None:
    client = _FakeLambdaClient({"result": {"text": "ok"}}, function_error=False)
    session = _FakeSession(client)
    answer = LambdaInvoker(session, "earshot-dev-inference").invoke({"call": {}}, timeout_sec=20.5)
    assert answer == {"result": {"text": "ok"}}
    (call,) = client.calls
    assert call["FunctionName"] == "earshot-dev-inference" and call["InvocationType"] == "RequestResponse"
    assert session.client_config.read_timeout == 21
    assert session.client_config.retries == {"mode": "standard", "max_attempts": 1}


def test_the_lambda_invoker_raises_the_functions_error_class() -> None:
    client = _FakeLambdaClient({"errorType": "InvalidAudioError", "errorMessage": "truncated"}, function_error=True)
    with pytest.raises(errors.InvalidAudioError, match="truncated"):
        LambdaInvoker(_FakeSession(client), "f").invoke({}, timeout_sec=5)


def test_settings_name_the_inference_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARSHOT_INFERENCE_FUNCTION", "earshot-prod-inference")
    assert Settings().inference_function == "earshot-prod-inference"


def test_embedded_recognisers_fan_out_with_vad_in_the_inference_function(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from earshot.engines.fanout import ChunkedTranscriptionEngine

    monkeypatch.setattr(Runtime, "_fans_out", lambda self, model, role: role == "transcription")
    engine_runtime = get_runtime()
    api, _invoker = _deployed_api_runtime(monkeypatch, engine_runtime)
    model = api.catalog.resolve_transcription("transcribe")
    engine = api.transcription_engine(model)
    assert isinstance(engine, ChunkedTranscriptionEngine)
    assert api.engine_parallelism(model) == (10, 60.0)  # deployed: ten invocations at once, 60-s chunks
    assert isinstance(engine._inner, RemoteTranscriptionEngine)
    assert engine._speech_regions == engine._inner.speech_regions  # VAD runs where its model is
    # Locally, the worker pool has a thread per CPU unless configured.
    monkeypatch.setenv("EARSHOT_FANOUT_WORKERS", "3")
    monkeypatch.delenv("EARSHOT_INFERENCE_FUNCTION")
    reset_runtime()
    assert get_runtime().engine_parallelism(model) == (3, 60.0)
