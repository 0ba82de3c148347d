"""The v2 Audio/transcribe error contract: the document's statuses, messages in the request's culture.

The reference document lists 400 (validation: file format, size, ... or insufficient balance), 401
(unauthorized), 403 (no permission), 404 (the model is not found) and 500 (unexpected). It gives no
error body, so the body is Earshot's envelope (``{"error": {message, type, code, param, request_id}}``,
codes unchanged) with the message in ``?culture=en|es`` (English when absent or unknown). Rate
limiting keeps its 429 and ``Retry-After``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from earshot.errors import (
    EarshotError,
    ModelNotLive,
    NotAnAudioModelError,
    NotATranscriptionModelError,
    NotEnabledError,
    RateLimitedError,
)
from earshot.schemas import ErrorBody, ErrorEnvelope

if TYPE_CHECKING:
    from earshot.http.contracts import ErrorReply

CULTURES = ("en", "es")

_SPANISH = {
    "invalid_request": "La solicitud no es válida.",
    "invalid_audio": "No se pudo leer el audio: está vacío, truncado o no es un formato de audio compatible.",
    "not_a_transcription_model": "No se encontró el modelo de transcripción indicado.",
    "not_an_audio_model": "No se encontró el modelo de audio indicado.",
    "unsupported_by_model": "El modelo no admite esta solicitud (por ejemplo, el idioma indicado).",
    "auth_error": "Falta la clave de API o no es válida.",
    "billing_error": "Saldo insuficiente para esta solicitud. Recargue su cuenta e inténtelo de nuevo.",
    "not_found": "No se encontró el recurso solicitado.",
    "not_enabled": "No tiene permiso: el audio no está habilitado para esta cuenta.",
    "idempotency_conflict": "Conflicto de idempotencia: la clave ya se usó con otra solicitud.",
    "file_too_large": "El archivo supera el tamaño máximo permitido de 25 MB.",
    "unsupported_media_type": "El tipo de contenido no es compatible: envíe multipart/form-data.",
    "schema_mismatch": "El resultado no cumple el esquema indicado.",
    "rate_limited": "Demasiadas solicitudes. Espere e inténtelo de nuevo.",
    "provider_error": "El proveedor del modelo falló. No se ha cobrado la solicitud.",
    "provider_timeout": "El proveedor del modelo no respondió a tiempo. No se ha cobrado la solicitud.",
    "internal_error": "Error inesperado. Se ha registrado.",
}

_NOT_LIVE_ES = (
    "El modelo {sku!r} no está activo en este despliegue: falta configurar la credencial de su proveedor. "
    "GET /v1/models muestra qué modelos están activos y qué configurar."
)


def status_of(error: EarshotError) -> int:
    if error.status in (401, 405, 429):  # 405: HTTP's own answer for a method the path does not take
        return error.status
    if isinstance(error, RateLimitedError):
        return 429
    if isinstance(error, NotEnabledError):
        return 403
    if isinstance(error, ModelNotLive):  # the model exists but its provider is not configured: validation, not 404
        return 400
    if isinstance(error, NotATranscriptionModelError | NotAnAudioModelError):
        return 404
    if error.status >= 500:
        return 500
    if error.status == 404:
        return 404
    return 400  # validation, oversize (413), insufficient balance (402), conflicts (409), media type (415)


def message_in(error: EarshotError, culture: str | None) -> str:
    if (culture or "en").lower() != "es":
        return error.message
    if isinstance(error, ModelNotLive):
        message = _NOT_LIVE_ES.format(sku=error.sku)
    else:
        message = _SPANISH.get(error.code, "Error en la solicitud.")
    if error.param:
        message += f" (parámetro: {error.param})"
    return message


def render(error: EarshotError, request_id: str, *, culture: str | None) -> ErrorReply:
    from earshot.http.contracts import ErrorReply, base_headers

    body = ErrorEnvelope(
        error=ErrorBody(
            message=message_in(error, culture),
            type=error.type,
            code=error.code,
            param=error.param,
            request_id=request_id,
        )
    ).model_dump_json()
    return ErrorReply(status=status_of(error), headers=base_headers(error, request_id), body=body)
