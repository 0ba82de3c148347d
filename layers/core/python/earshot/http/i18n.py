"""Error messages in the caller's culture (``/api/v2`` routes take ``?culture=en|es``).

The English message is the detailed one; other cultures get a message per error code, naming the
offending parameter, so clients can show it to their users.
"""

from __future__ import annotations

from earshot.errors import EarshotError

CULTURES = ("en", "es")

_SPANISH = {
    "invalid_request": "La solicitud no es válida.",
    "invalid_audio": "No se pudo leer el audio: está vacío, truncado o no es un formato de audio compatible.",
    "not_a_transcription_model": "El modelo indicado no es un modelo de transcripción.",
    "not_an_audio_model": "El modelo indicado no es un modelo de comprensión de audio.",
    "unsupported_by_model": "El modelo no admite esta solicitud (por ejemplo, el idioma indicado).",
    "auth_error": "Falta la clave de API o no es válida.",
    "billing_error": "Saldo insuficiente para esta solicitud. Recargue su cuenta e inténtelo de nuevo.",
    "not_found": "No se encontró el recurso solicitado.",
    "not_enabled": "El audio no está habilitado para esta cuenta.",
    "idempotency_conflict": "Conflicto de idempotencia: la clave ya se usó con otra solicitud.",
    "file_too_large": "El archivo supera el tamaño máximo permitido de 25 MB.",
    "schema_mismatch": "El resultado no cumple el esquema indicado.",
    "rate_limited": "Demasiadas solicitudes. Espere e inténtelo de nuevo.",
    "provider_error": "El proveedor del modelo falló. No se ha cobrado la solicitud.",
    "provider_timeout": "El proveedor del modelo no respondió a tiempo. No se ha cobrado la solicitud.",
    "internal_error": "Error interno. Se ha registrado.",
}


def localized(error: EarshotError, culture: str) -> EarshotError:
    """``error`` with its message in ``culture``; the class, status and code stay the same."""
    if culture != "es":
        return error
    message = _SPANISH.get(error.code, "Error en la solicitud.")
    if error.param:
        message += f" (parámetro: {error.param})"
    return type(error)(message, param=error.param, retry_after=error.retry_after)
