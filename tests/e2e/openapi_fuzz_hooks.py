"""Schemathesis hooks for the OpenAPI fuzz test (loaded through SCHEMATHESIS_HOOKS).

The schema says a processing route takes "audio" (a file part, an https URL, a data URL, base64, a
file_id); it cannot say "audio that decodes" or "a file that exists". So in positive cases (requests the
schema calls valid) each value the schema cannot pin down is replaced by a real one of the same kind:
- the file part by a 1 s clip; a URL by one a loopback server serves (the fuzzed server allows loopback
  URLs, as local development does); a data URL or base64 by the clip encoded; a file_id by a finished
  upload of the clip; callbacks by the loopback server;
- known_speaker_references[] by 3 s clips, as many as there are names (a count JSON Schema cannot tie);
- an Idempotency-Key made unique to its case (a key names one request);
- when the generator drew more than one audio source despite the schema's oneOf, only the first is kept;
- extract-audio's ``schema`` by ``{"type": "object"}`` (an arbitrary JSON Schema the embedded extractor
  cannot meet is the documented 500 "Failed to extract audio data").
Negative cases are left exactly as generated.
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from typing import Any

import schemathesis

_CLIP = Path(os.environ["EARSHOT_FUZZ_CLIP_PATH"]).read_bytes()  # 1 s of audio
_VOICE = Path(os.environ["EARSHOT_FUZZ_VOICE_PATH"]).read_bytes()  # 3 s: a known speaker's reference clip
_FILE_ID = os.environ.get("EARSHOT_FUZZ_FILE_ID", "")  # a finished (retained) upload of the clip
_HOST = os.environ.get("EARSHOT_FUZZ_HOST", "")  # http://127.0.0.1:PORT: GET /clip.wav, POST anything
_AUDIO_URL = f"{_HOST}/clip.wav"
_CALLBACK_URL = f"{_HOST}/callback"
_DATA_URL = "data:audio/wav;base64," + base64.b64encode(_CLIP).decode()


def _audio_string(value: str, input_method: str | None) -> str:
    if input_method == "url" or (input_method is None and value.startswith("http")):
        return _AUDIO_URL
    if input_method == "file_id" or value.startswith("file-"):
        return _FILE_ID
    return _DATA_URL


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return case
    return _with_real_audio(case)


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    """The document's own examples name the file part ("speech.wav"): send that file's kind of audio."""
    for case in examples:
        if isinstance(case.body, dict):
            _with_real_audio(case)


def _with_real_audio(case: Any) -> Any:
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":  # a key names one request: each positive case its own
            headers[name] = f"{headers[name][:200]}-{uuid.uuid4().hex}"
    body = case.body
    if not isinstance(body, dict):
        return case
    sources = [name for name in ("file", "url", "file_id") if name in body]
    for extra in sources[1:]:  # the schema's oneOf: exactly one (the generator does not always honour it)
        del body[extra]
    if "file" in body:
        body["file"] = _CLIP
    if isinstance(body.get("url"), str):
        body["url"] = _AUDIO_URL
    if isinstance(body.get("audio"), str):
        method = body.get("inputMethod")
        body["audio"] = _audio_string(body["audio"], method if isinstance(method, str) else None)
    if isinstance(body.get("file_id"), str):
        body["file_id"] = _FILE_ID
    if isinstance(body.get("callback_url"), str):
        body["callback_url"] = _CALLBACK_URL
    _known_speakers(body)
    if "schema" in body and body["schema"] is not None:
        # extract-audio's result must satisfy it, and the embedded extractor answers one JSON object: a valid
        # JSON Schema it can meet (an arbitrary one is a documented 500, "Failed to extract audio data").
        body["schema"] = {"type": "object"}
    return case


def _known_speakers(body: dict[str, Any]) -> None:
    """One 2-10 s voice clip per known speaker name (a count JSON Schema cannot tie together)."""
    names_key, references_key = "known_speaker_names[]", "known_speaker_references[]"
    names, references = body.get(names_key), body.get(references_key)
    if names is None and references is None:
        return
    count = min(len(names or []), len(references or []))
    if count == 0:
        body.pop(names_key, None)
        body.pop(references_key, None)
        return
    body[names_key] = list(names or [])[:count]
    body[references_key] = ["data:audio/wav;base64," + base64.b64encode(_VOICE).decode()] * count
