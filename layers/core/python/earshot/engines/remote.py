"""Embedded engines run by the inference function: the API functions check, meter and bill, then call it.

Deployed, the models live in a container-image function (``functions/inference``), too large for the zip functions
that serve the API. ``Runtime`` wraps each embedded engine of a function that has ``EARSHOT_INFERENCE_FUNCTION``
set in a ``Remote*Engine``: ``check`` stays local (cheap, before billing), ``transcribe``/``ask`` send one
``InferenceCall`` to the inference function and read its answer back. Audio travels inside the call while it fits
Lambda's 6 MB synchronous payload (base64 makes it a third larger); above that it goes by blob key, written under
``inference/`` for the call and deleted after it.

Locally nothing is wrapped: the same engines run in-process, as the inference handler runs them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from earshot import errors
from earshot.audio.budget import current_budget
from earshot.blob_layout import inference_key
from earshot.engines.base import Transcript, TranscriptionOptions
from earshot.engines.providers import GenerationResult
from earshot.ports import BlobStore

# Lambda's synchronous invoke payload limit (request and response), 6 MB.
INVOKE_PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# Room for the call's JSON around the audio (options, a prompt of up to a few hundred KB): audio whose base64 fits
# in the rest travels inline; larger audio goes by blob key.
CALL_ENVELOPE_BYTES = 512 * 1024
INLINE_AUDIO_LIMIT_BYTES = (INVOKE_PAYLOAD_LIMIT_BYTES - CALL_ENVELOPE_BYTES) * 3 // 4

Op = Literal["transcribe", "ask", "regions"]
Role = Literal["transcription", "question"]


class Invoker(Protocol):
    """Calls the inference function synchronously with a JSON payload and returns its JSON answer.

    Raises the ``EarshotError`` subclass the function raised (by its class name), ``EngineError`` for anything else
    it raised, and ``ProviderError`` when the function could not be reached.
    """

    def invoke(self, payload: dict[str, Any], *, timeout_sec: float) -> dict[str, Any]: ...


@dataclass(frozen=True)
class InferenceCall:
    """One engine call, as the inference function receives it."""

    op: Op
    sku: str  # the catalog model whose embedded engine runs it
    role: Role
    arguments: dict[str, Any]  # the op's keyword arguments (options, question, ...), JSON-able
    audio: dict[str, str]  # {"inline": base64} or {"blob_key": key}; plus "filename"
    budget_sec: float | None = None  # the metered length: the function's decoders stop there too

    def to_payload(self) -> dict[str, Any]:
        return {
            "call": {
                "op": self.op,
                "sku": self.sku,
                "role": self.role,
                "arguments": self.arguments,
                "budget_sec": self.budget_sec,
            },
            "audio": self.audio,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> InferenceCall:
        try:
            call = payload["call"]
            audio = payload["audio"]
            if call["op"] not in ("transcribe", "ask", "regions") or call["role"] not in ("transcription", "question"):
                raise ValueError(call)
            return cls(
                op=call["op"],
                sku=str(call["sku"]),
                role=call["role"],
                arguments=dict(call["arguments"]),
                audio={str(k): str(v) for k, v in audio.items()},
                budget_sec=float(call["budget_sec"]) if call.get("budget_sec") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.InvalidRequestError(f"not an inference call: {exc!r}") from None


@contextlib.contextmanager
def audio_reference(
    blobs: BlobStore, audio: Path, *, inline_limit: int = INLINE_AUDIO_LIMIT_BYTES
) -> Iterator[dict[str, str]]:
    """``audio`` as a call's ``audio`` field: inline when small, else a blob that exists for the call only."""
    size = audio.stat().st_size
    if size <= inline_limit:
        yield {"inline": base64.b64encode(audio.read_bytes()).decode("ascii"), "filename": audio.name}
        return
    key = inference_key(uuid.uuid4().hex, audio.name)
    blobs.put(key, audio.read_bytes())
    try:
        yield {"blob_key": key, "filename": audio.name}
    finally:
        blobs.delete(key)


def raise_remote_error(error_type: str, message: str) -> None:
    """Re-raise an error the inference function reported, as the same ``EarshotError`` class when it is one."""
    error_class = getattr(errors, error_type, None)
    if isinstance(error_class, type) and issubclass(error_class, errors.EarshotError):
        raise error_class(message)
    raise errors.EngineError(f"the inference function failed: {error_type}")


class _Remote:
    def __init__(self, local: Any, *, sku: str, role: Role, invoker: Invoker, blobs: BlobStore) -> None:
        self._local = local  # the lazy local proxy: its checks are cheap and never import the audio stack
        self._sku = sku
        self._role = role
        self._invoker = invoker
        self._blobs = blobs

    def _call(self, op: Op, audio: Path, arguments: dict[str, Any], *, deadline_sec: float | None) -> dict[str, Any]:
        with audio_reference(self._blobs, audio) as reference:
            call = InferenceCall(
                op=op,
                sku=self._sku,
                role=self._role,
                arguments=arguments,
                audio=reference,
                budget_sec=current_budget(),
            )
            # The function itself honours the deadline; the invoke waits a little longer for its answer.
            timeout = (deadline_sec or 900.0) + 5.0
            return self._invoker.invoke(call.to_payload(), timeout_sec=timeout)


class RemoteTranscriptionEngine(_Remote):
    """``TranscriptionEngine`` whose ``transcribe`` runs in the inference function."""

    def check(self, options: TranscriptionOptions) -> None:
        self._local.check(options)

    def transcribe(self, audio: Path, options: TranscriptionOptions) -> Transcript:
        answer = self._call(
            "transcribe", audio, {"options": options.model_dump(mode="json")}, deadline_sec=options.deadline_sec
        )
        return Transcript.model_validate(answer["result"])

    def speech_regions(self, audio: Path, pcm: Any = None) -> list[SpeechSpan]:
        """Voice activity detection in the inference function (the VAD model lives in its image)."""
        del pcm
        answer = self._call("regions", audio, {}, deadline_sec=60.0)
        return [SpeechSpan(float(start), float(end)) for start, end in answer["result"]]


class RemoteQuestionEngine(_Remote):
    """``AudioQuestionEngine`` whose ``ask`` runs in the inference function."""

    def __getattr__(self, name: str) -> Any:  # cheap checks the local proxy offers (never the engine's work)
        if name.startswith("check"):
            return getattr(self._local, name)
        raise AttributeError(name)

    def ask(
        self,
        audio: Path,
        question: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        json_mode: bool = False,
        deadline_sec: float,
    ) -> GenerationResult:
        arguments = {
            "question": question,
            "system": system,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "json_mode": json_mode,
            "deadline_sec": deadline_sec,
        }
        answer = self._call("ask", audio, arguments, deadline_sec=deadline_sec)
        return GenerationResult.model_validate(answer["result"])


@dataclass(frozen=True)
class SpeechSpan:
    """A speech region as the inference function reports it (seconds)."""

    start: float
    end: float


def run_call(engine: Any, call: InferenceCall, audio: Path) -> dict[str, Any]:
    """What the inference function does with ``call``: run the local ``engine`` on ``audio``; JSON-able answer."""
    if call.op == "regions":
        from earshot.audio.decode import decode_to_pcm16k
        from earshot.engines.fanout import vad_speech_regions

        found = vad_speech_regions(audio, decode_to_pcm16k(audio))
        return {"result": [[round(region.start, 3), round(region.end, 3)] for region in found]}
    if call.op == "transcribe":
        options = TranscriptionOptions.model_validate(call.arguments.get("options") or {})
        transcript: Transcript = engine.transcribe(audio, options)
        return {"result": transcript.model_dump(mode="json")}
    arguments = dict(call.arguments)
    question = str(arguments.pop("question", ""))
    deadline = float(arguments.pop("deadline_sec", 60.0))
    result: GenerationResult = engine.ask(audio, question, deadline_sec=deadline, **arguments)
    return {"result": result.model_dump(mode="json")}


def decoded_inline(audio: dict[str, str]) -> bytes:
    try:
        return base64.b64decode(audio["inline"], validate=True)
    except (KeyError, ValueError) as exc:
        raise errors.InvalidRequestError("the inference call's inline audio is not base64") from exc


def encoded_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":")).encode())
