"""The public contract's shapes: pydantic models for every request and response body.

``GET /openapi.json`` is generated from these (see ``earshot.openapi``); behaviour lives elsewhere.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from earshot.limits import MAX_UPLOAD_BYTES
from earshot.uploaded import StagedUpload

# A form's file: its bytes, or (local server) the file it was streamed into; the schema shows bytes only.
UploadedAudio = bytes | SkipJsonSchema[InstanceOf[StagedUpload]]

ResponseFormat = Literal["json", "verbose_json", "text", "srt", "vtt", "diarized_json"]
TimestampGranularity = Literal["segment", "word"]


class ContractModel(BaseModel):
    """Builds its validator on first use, not at import: a cold Lambda pays only for the models it touches."""

    model_config = ConfigDict(defer_build=True)


# -- errors ------------------------------------------------------------------------------------
class ErrorBody(ContractModel):
    message: str
    type: str
    code: str
    param: str | None = None
    request_id: str


class ErrorEnvelope(ContractModel):
    error: ErrorBody


class MessageError(ContractModel):
    """extract-audio's error shape: ``{"error": "message"}``."""

    error: str


# -- billing -----------------------------------------------------------------------------------
class Billing(ContractModel):
    duration_sec: float = Field(description="Measured from the audio itself with ffprobe.")
    duration_source: str = Field(description="measured (from the audio) or caller_hint (a longer duration_sec hint).")
    billable_minutes: int = Field(description="max(1, ceil(duration_sec / 60)).")
    cost_usd: float
    cost_micro_usd: int
    balance_usd: float = Field(description="Balance after this charge.")
    balance_micro_usd: int


class DurationUsage(ContractModel):
    """OpenAI's usage block for duration-billed transcription models."""

    type: Literal["duration"] = "duration"
    seconds: float


# -- transcriptions ----------------------------------------------------------------------------
class ServerVadChunking(ContractModel):
    """OpenAI's ``server_vad`` chunking object (its numbers are accepted and range-checked)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["server_vad"]
    prefix_padding_ms: int | None = Field(default=None, ge=0, le=10_000)
    silence_duration_ms: int | None = Field(default=None, ge=0, le=10_000)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)


class TranscriptionForm(ContractModel):
    """``multipart/form-data`` fields of ``POST /v1/audio/transcriptions`` (and translations)."""

    model_config = ConfigDict(extra="forbid")

    file: UploadedAudio | None = Field(
        default=None,
        description="The audio file: mp3, wav, m4a, ogg, webm or flac.",
        json_schema_extra={"format": "binary"},
    )
    url: str | None = Field(default=None, max_length=2048, description="Instead of file: an https URL of the audio.")
    file_id: str | None = Field(
        default=None, max_length=64, description="Instead of file: a finished /v1/uploads file."
    )
    model: str = Field(default="transcribe", min_length=1, max_length=128)
    language: str | None = Field(default=None, max_length=32, description="ISO-639-1 code, e.g. en.")
    prompt: str | None = Field(default=None, max_length=4096)
    response_format: ResponseFormat = Field(
        default="verbose_json",
        description="verbose_json by default, as the transcription document says (the openai SDK sends its own).",
    )
    temperature: float = Field(default=0.0, ge=0.0, le=1.0)
    timestamp_granularities: list[TimestampGranularity] = Field(
        default_factory=lambda: list[TimestampGranularity](["segment"]),
        alias="timestamp_granularities[]",
        description="With verbose_json: segment (default) and/or word.",
    )
    known_speaker_names: list[str] = Field(
        default_factory=list,
        alias="known_speaker_names[]",
        max_length=4,
        description="With diarized_json: names for the voices in known_speaker_references[] (up to 4).",
    )
    known_speaker_references: list[str] = Field(
        default_factory=list,
        alias="known_speaker_references[]",
        max_length=4,
        description="With diarized_json: data:audio/...;base64, URLs of 2-10 s clips, one per known speaker name.",
    )
    chunking_strategy: Literal["auto"] | ServerVadChunking | None = Field(
        default=None,
        description='"auto" or {"type": "server_vad", ...}: accepted; the audio is cut at voice-activity silences '
        "either way.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fold_chunking_strategy(cls, data: Any) -> Any:
        """The openai SDK sends ``chunking_strategy[type]=server_vad``; curl users may send a JSON object."""
        if not isinstance(data, dict):
            return data
        nested = {key[len("chunking_strategy[") : -1]: data[key] for key in data if _is_chunking_key(key)}
        if nested:
            data = {key: value for key, value in data.items() if not _is_chunking_key(key)}
            data["chunking_strategy"] = nested
        value = data.get("chunking_strategy")
        if isinstance(value, str) and value.strip().startswith("{"):
            import json

            with contextlib.suppress(ValueError):  # if it does not parse, validation says what is expected
                data = {**data, "chunking_strategy": json.loads(value)}
        elif value == "":
            data = {**data, "chunking_strategy": None}
        return data

    stream: bool = Field(
        default=False,
        description="Stream the text as it is decoded: Server-Sent Events transcript.text.delta ... "
        "transcript.text.done (OpenAI's transcription stream events); response_format json or text.",
    )

    @field_validator("language")
    @classmethod
    def _language_shape(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not all(ch.isalpha() or ch in "-_" for ch in value):
            raise ValueError("must be a language code such as 'en'")
        return value


def _is_chunking_key(key: object) -> bool:
    return isinstance(key, str) and key.startswith("chunking_strategy[") and key.endswith("]")


class WordOut(ContractModel):
    word: str
    start: float
    end: float


class SegmentOut(ContractModel):
    id: int
    seek: int = 0
    start: float
    end: float
    text: str
    tokens: list[int] = Field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None


class TranscriptionJson(ContractModel):
    text: str
    model: str
    usage: DurationUsage
    billing: Billing


class TranscriptionVerboseJson(ContractModel):
    task: Literal["transcribe", "translate"]
    language: str = Field(description="Language name in English, e.g. 'english'.")
    language_probability: float | None = Field(
        default=None,
        description="How sure the model is of `language`, 0..1, when it identified the language itself "
        "(no `language` was given). Absent when the model did not identify it.",
    )
    duration: float
    text: str
    segments: list[SegmentOut]
    words: list[WordOut] | None = None
    model: str
    usage: DurationUsage
    billing: Billing


class DiarizedSegmentOut(ContractModel):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str = Field(description="A, B, ... in order of appearance, or a name from known_speaker_names[].")


class TranscriptionDiarizedJson(ContractModel):
    """OpenAI's ``TranscriptionDiarized``, plus Earshot's ``model`` and ``billing``."""

    task: Literal["transcribe"] = "transcribe"
    duration: float
    text: str
    segments: list[DiarizedSegmentOut]
    model: str
    usage: DurationUsage
    billing: Billing


# -- account -----------------------------------------------------------------------------------
class CreditBalance(ContractModel):
    object: Literal["credit_balance"] = "credit_balance"
    account_id: str
    balance_usd: float
    balance_micro_usd: int
    currency: Literal["USD"] = "USD"
    audio_enabled: bool


class LedgerEntryOut(ContractModel):
    id: str
    object: Literal["ledger_entry"] = "ledger_entry"
    request_id: str
    kind: Literal["debit", "refund", "topup"]
    amount_usd: float
    amount_micro_usd: int
    balance_after_usd: float
    balance_after_micro_usd: int
    model: str | None
    duration_sec: float | None
    billable_minutes: int | None
    description: str
    created_at: int


class UsageQuery(ContractModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=1000)
    before: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^led_[0-9a-f]{1,59}$",
        description="Page from this entry id (exclusive): a ledger entry's id, as next_before gives it.",
    )


class UsageList(ContractModel):
    object: Literal["list"] = "list"
    data: list[LedgerEntryOut]
    has_more: bool
    next_before: str | None
    total_charged_micro_usd: int = Field(description="Sum of debits minus refunds on this page.")


class ModelOut(ContractModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    kind: str
    aliases: list[str]
    price_per_minute_usd: float
    price_per_minute_micro_usd: int
    languages: list[str] | None
    description: str
    live: bool = Field(
        description="Whether this deployment can serve the model now: embedded engines always; an upstream model "
        "once its provider credential is configured. A request for a model that is not live is refused (400) "
        "before any charge."
    )
    setup: str | None = Field(
        default=None, description="For a model that is not live: what to configure (names only, never a secret)."
    )


class ModelList(ContractModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


# -- audio understand --------------------------------------------------------------------------
class UnderstandForm(ContractModel):
    """``multipart/form-data`` fields of ``POST /v1/audio/understand``: ``file`` or ``url``."""

    model_config = ConfigDict(extra="forbid")

    file: UploadedAudio | None = Field(
        default=None, json_schema_extra={"format": "binary"}, description="The audio file."
    )
    url: str | None = Field(default=None, max_length=2048, description="https URL of the audio, fetched server-side.")
    file_id: str | None = Field(default=None, max_length=64, description="A finished /v1/uploads file.")
    question: str = Field(min_length=1, max_length=10_000, description="What to find out about how the audio sounds.")
    model: str = Field(default="audio-understand", min_length=1, max_length=128)
    duration_sec: float | None = Field(
        default=None, gt=0, le=86_400, description="Optional hint; it can raise the bill, never lower it."
    )


class UnderstandBilling(ContractModel):
    duration_sec: float
    duration_source: Literal["measured", "caller_hint"]
    billable_minutes: int
    cost_usd: float
    cost_micro_usd: int
    balance_usd: float
    balance_micro_usd: int


class UnderstandResponse(ContractModel):
    answer: str
    model: str
    billing: UnderstandBilling


# -- extract-audio (DumplingAI shape) ----------------------------------------------------------
class ExtractRequest(ContractModel):
    model_config = ConfigDict(extra="forbid")

    inputMethod: Literal["url", "base64", "file_id"]
    audio: str = Field(min_length=1, description="An https URL, or base64 audio (a data: URL is accepted too).")
    prompt: str = Field(min_length=1, max_length=20_000)
    jsonMode: bool = False
    schema_: dict[str, Any] | None = Field(
        default=None, alias="schema", description="JSON Schema the result must satisfy (implies jsonMode)."
    )
    model: str = Field(default="extract", min_length=1, max_length=128)


class ExtractResponse(ContractModel):
    results: Any = Field(description="A string, or with jsonMode the JSON value the model produced.")
    prompt: str
    audioDuration: float
    creditUsage: int


class ExtractFormats(ContractModel):
    supportedFormats: list[str]
    maxFileSizeMB: int
    maxDurationSeconds: int
    maxInlineSizeMB: float = Field(
        description="Largest audio inside the request (base64) on this deployment; larger audio by URL or file_id."
    )
    largerFiles: str = Field(description="How to send audio above maxInlineSizeMB.")


# -- /api/v2/Audio/transcribe ------------------------------------------------------------------
class CultureQuery(ContractModel):
    culture: str = Field(
        default="en", pattern="^([eE][nN]|[eE][sS])$", description="Language of error messages: en or es."
    )


class V2TranscribeForm(ContractModel):
    model_config = ConfigDict(extra="forbid")

    file: UploadedAudio = Field(json_schema_extra={"format": "binary"}, description="Audio or video (mp4, mpeg) file.")
    model: str = Field(default="transcribe", min_length=1, max_length=128)
    prompt: str | None = Field(default=None, max_length=256)
    user: str | None = Field(default=None, max_length=100)
    channel: str | None = Field(default=None, max_length=100)


class V2Metadata(ContractModel):
    language: str
    duration: str


class V2TokenUsage(ContractModel):
    completionTokens: int
    promptTokens: int
    totalTokens: int


class V2Cost(ContractModel):
    completion: float
    prompt: float
    total: float
    currency: str


class V2TranscribeResponse(ContractModel):
    instanceId: str
    transcript: str
    metadata: V2Metadata
    tokenUsage: V2TokenUsage
    cost: V2Cost


# -- tasks -------------------------------------------------------------------------------------
class TaskStream(ContractModel):
    url: str


class TaskOut(ContractModel):
    """The unified task object (``GET /v1/tasks/{task_id}``)."""

    id: str
    object: str
    kind: str
    model: str
    status: Literal["pending", "processing", "completed", "failed"]
    progress: int
    created_at: int
    updated_at: int
    stream: TaskStream | None = None
    results: list[Any] | None = None
    error: dict[str, Any] | None = None

    @classmethod
    def from_task(cls, task: Any, *, results: list[Any] | None = None) -> TaskOut:
        return cls(
            id=task.id,
            object=task.object,
            kind=task.kind,
            model=task.model,
            status=task.status,
            progress=task.progress,
            created_at=task.created_at,
            updated_at=task.updated_at,
            stream=TaskStream(url=f"/v1/tasks/{task.id}/events") if task.stream else None,
            results=results if results is not None else task.results,
            error=task.error,
        )


class TaskWaitQuery(ContractModel):
    model_config = ConfigDict(extra="forbid")

    wait: float = Field(default=0, ge=0, le=25, description="Long-poll: wait up to N seconds for a final status.")


class UnderstandingRequest(ContractModel):
    """``POST /v1/audio/understanding`` (JSON)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="audio-understand", min_length=1, max_length=128)
    audio: str = Field(min_length=1, description="An https URL, or data:audio/<type>;base64,<payload>.")
    prompt: str = Field(default="Please transcribe this audio file", min_length=1, max_length=100_000)
    sync: bool = False
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=65_536)
    temperature: float | None = Field(default=None, ge=0, le=2)
    system: str | None = Field(default=None, max_length=10_000)
    include_reasoning: bool = False


class UploadProcess(ContractModel):
    """What to run once the upload lands: a processing route's kind, model and fields."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["transcription", "translation", "transcribev2", "understand", "extract", "llm"]
    model: str | None = Field(default=None, max_length=128)
    options: dict[str, Any] = Field(default_factory=dict, description="The route's own fields, e.g. response_format.")
    callback_url: str | None = Field(default=None, max_length=2048)


class UploadTarget(ContractModel):
    url: str = Field(description="POST the form here: the fields below, then the file in file_field.")
    method: Literal["POST"] = "POST"
    fields: dict[str, str]
    file_field: str


class UploadOut(ContractModel):
    """The 201 answer of ``POST /v1/uploads``."""

    id: str
    object: Literal["upload"] = "upload"
    filename: str
    bytes: int
    purpose: str
    status: Literal["pending"] = "pending"
    created_at: int
    expires_at: int
    upload: UploadTarget
    process: UploadProcess | None
    task_id: str | None = Field(description="The task the upload starts once it lands (with process).")
    retain: bool


class TaskDeleted(ContractModel):
    id: str
    object: str
    deleted: Literal[True] = True


class UploadRequestBody(ContractModel):
    """``POST /v1/uploads`` (JSON)."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    bytes: int = Field(ge=1, le=MAX_UPLOAD_BYTES, description="Size of the file; the upload may not exceed it.")
    purpose: str = Field(default="audio", max_length=64)
    process: UploadProcess | None = None
    retain: bool = Field(default=False, description="Keep the audio after processing (default: delete it).")
