"""The route manifest: every public route, the function that serves it, and its shapes.

One list drives both the CDK HTTP API (``infra/``) and the local server (``earshot.local``), and the
OpenAPI document is generated from it plus the pydantic models it names. Nothing is described twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel

from earshot import examples, schemas

if TYPE_CHECKING:  # the manifest names a contract; the HTTP layer (which reads the manifest) implements it
    from earshot.http.contracts import ContractName


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # functions/<function>/handler.py
    endpoint: str  # "module:callable" under earshot.api, imported lazily by that function only
    summary: str
    auth: bool = True
    request_model: type[BaseModel] | None = None
    request_content_type: str = "application/json"
    query_model: type[BaseModel] | None = None
    responses: tuple[type[BaseModel], ...] = ()  # the success body: one of these
    success_status: int = 200
    response_content_types: tuple[str, ...] = ("application/json",)
    error_statuses: tuple[int, ...] = (400, 401)
    examples: examples.RouteExamples | None = None  # a request and its 200 answer, shown in the OpenAPI document
    errors: ContractName = "openai"  # the error contract (earshot.http.contracts) this route answers in
    # A larger body than the server's inline limit (the local server honours it; API Gateway caps every body at 10 MB).
    max_body_bytes: int | None = None
    # A processing route: it takes the controls (async, Prefer: respond-async, callback_url) and answers 202 + a task.
    processing: bool = False
    # Its 200 may be Server-Sent Events too (stream=true).
    streams: bool = False

    @property
    def operation_id(self) -> str:
        return self.endpoint.split(":", 1)[1]


_TRANSCRIPTION_ERRORS = (400, 401, 402, 404, 413, 502, 504)
# extract-audio takes up to 100 MB of audio as base64 inside its JSON body: 4/3 of that, plus the other fields.
_EXTRACT_BODY_BYTES = (100 * 1024 * 1024 + 2) // 3 * 4 + 1024 * 1024
_TEXT_FORMATS = ("application/json", "text/plain", "application/x-subrip", "text/vtt")

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/audio/transcriptions",
        function="transcriptions",
        endpoint="earshot.api.transcriptions:create_transcription",
        examples=examples.TRANSCRIPTION,
        summary="Transcribe audio (OpenAI Whisper API compatible).",
        request_model=schemas.TranscriptionForm,
        request_content_type="multipart/form-data",
        responses=(schemas.TranscriptionJson, schemas.TranscriptionVerboseJson, schemas.TranscriptionDiarizedJson),
        response_content_types=_TEXT_FORMATS,
        error_statuses=_TRANSCRIPTION_ERRORS,
        processing=True,
        streams=True,
    ),
    Route(
        "POST",
        "/v1/audio/translations",
        function="transcriptions",
        endpoint="earshot.api.transcriptions:create_translation",
        examples=examples.TRANSCRIPTION,
        summary="Transcribe audio into English text (OpenAI translations compatible).",
        request_model=schemas.TranscriptionForm,
        request_content_type="multipart/form-data",
        responses=(schemas.TranscriptionJson, schemas.TranscriptionVerboseJson, schemas.TranscriptionDiarizedJson),
        response_content_types=_TEXT_FORMATS,
        error_statuses=_TRANSCRIPTION_ERRORS,
        processing=True,
        streams=True,
    ),
    Route(
        "POST",
        "/api/v2/Audio/transcribe",
        function="transcriptions",
        endpoint="earshot.api.v2_transcribe:create_v2_transcription",
        examples=examples.V2_TRANSCRIBE,
        summary="Transcribe audio or video (v2 shape); errors in ?culture=en|es.",
        request_model=schemas.V2TranscribeForm,
        request_content_type="multipart/form-data",
        query_model=schemas.CultureQuery,
        responses=(schemas.V2TranscribeResponse,),
        error_statuses=(400, 401, 403, 404, 429, 500),
        errors="v2",
        processing=True,
    ),
    Route(
        "POST",
        "/v1/audio/understand",
        function="understand",
        endpoint="earshot.api.understand:create_understanding",
        examples=examples.UNDERSTAND,
        summary="Ask a question about how the audio sounds (tone, music, effects, language).",
        request_model=schemas.UnderstandForm,
        request_content_type="multipart/form-data",
        responses=(schemas.UnderstandResponse,),
        error_statuses=(400, 401, 402, 404, 413, 429, 502, 504),
        processing=True,
    ),
    Route(
        "POST",
        "/api/v1/extract-audio",
        function="extract",
        endpoint="earshot.api.extract:create_extraction",
        examples=examples.EXTRACT,
        summary="Extract structured data from audio by URL or base64 (10 credits + 2 per started minute).",
        request_model=schemas.ExtractRequest,
        responses=(schemas.ExtractResponse,),
        error_statuses=(400, 401, 429, 500),
        errors="extract-audio",
        max_body_bytes=_EXTRACT_BODY_BYTES,
        processing=True,
    ),
    Route(
        "GET",
        "/api/v1/extract-audio",
        function="extract",
        endpoint="earshot.api.extract:list_formats",
        examples=examples.EXTRACT_FORMATS,
        summary="Supported formats and limits of extract-audio.",
        responses=(schemas.ExtractFormats,),
        error_statuses=(401,),
        errors="extract-audio",
    ),
    Route(
        "POST",
        "/v1/audio/understanding",
        function="understanding",
        endpoint="earshot.api.understanding:create_llm_task",
        examples=examples.UNDERSTANDING,
        summary="Audio understanding as a task (async by default); results[0] is an OpenAI ChatCompletion.",
        request_model=schemas.UnderstandingRequest,
        responses=(schemas.TaskOut,),
        error_statuses=(400, 401, 402, 404, 409, 413, 429),
        processing=True,
        streams=True,
    ),
    Route(
        "GET",
        "/v1/tasks/{task_id}",
        function="tasks",
        endpoint="earshot.api.tasks:get_task",
        examples=examples.TASK,
        summary="A task (owner only); ?wait=N long-polls up to N seconds (at most 25) for a final status.",
        query_model=schemas.TaskWaitQuery,
        responses=(schemas.TaskOut,),
        error_statuses=(400, 401, 404),
    ),
    Route(
        "GET",
        "/v1/tasks/{task_id}/events",
        function="tasks",
        endpoint="earshot.api.tasks:task_events",
        examples=examples.TASK_EVENTS,
        summary="Server-Sent Events of a task's progress and status; resumable with Last-Event-ID.",
        response_content_types=("text/event-stream",),
        error_statuses=(401, 404),
    ),
    Route(
        "DELETE",
        "/v1/tasks/{task_id}",
        function="tasks",
        endpoint="earshot.api.tasks:delete_task",
        examples=examples.TASK_DELETE,
        responses=(schemas.TaskDeleted,),
        summary="Delete a task, its audio and its result.",
        error_statuses=(401, 404),
    ),
    Route(
        "POST",
        "/v1/uploads",
        function="uploads",
        endpoint="earshot.api.uploads:create_upload_url",
        examples=examples.UPLOAD,
        summary="A presigned upload (up to 500 MB) for audio above the inline limit; returns a file_id.",
        request_model=schemas.UploadRequestBody,
        responses=(schemas.UploadOut,),
        success_status=201,
        error_statuses=(400, 401, 404, 429),
    ),
    Route(
        "GET",
        "/v1/models",
        function="models",
        endpoint="earshot.api.models:list_models",
        examples=examples.MODELS,
        summary="The model catalog, OpenAI models-list shaped.",
        responses=(schemas.ModelList,),
        error_statuses=(401,),
    ),
    Route(
        "GET",
        "/v1/credits/balance",
        function="account",
        endpoint="earshot.api.account:get_balance",
        examples=examples.BALANCE,
        summary="The caller's prepaid balance.",
        responses=(schemas.CreditBalance,),
        error_statuses=(401,),
    ),
    Route(
        "GET",
        "/v1/usage",
        function="account",
        endpoint="earshot.api.account:list_usage",
        examples=examples.USAGE,
        summary="The caller's ledger, newest first.",
        query_model=schemas.UsageQuery,
        responses=(schemas.UsageList,),
    ),
    Route(
        "GET",
        "/openapi.json",
        function="openapi",
        endpoint="earshot.api.openapi:get_openapi",
        examples=examples.OPENAPI,
        summary="This API's OpenAPI 3.1 document.",
        auth=False,
        error_statuses=(),
    ),
)


# Functions no route invokes: the gateway's authorizer, the async workflow's step runner, the upload ingest, and
# the scheduled sweeper (crash recovery: earshot.services.recovery.sweep).
EVENT_FUNCTIONS = ("authorizer", "workflow", "ingest", "sweeper")


def functions() -> list[str]:
    """Every function: those the manifest's routes name, plus the event-driven ones."""
    names = {route.function for route in ROUTES}
    return [*EVENT_FUNCTIONS, *sorted(names)]


def routes_for(function: str) -> list[Route]:
    return [route for route in ROUTES if route.function == function]
