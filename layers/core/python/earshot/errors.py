"""The one error hierarchy.

Every error a client can see is an ``EarshotError`` subclass carrying its HTTP status and its
``code``; each route's error contract (``earshot.http.contracts``) renders them, one module per contract. Class names
are stable: the workflow's Retry/Catch rules match on them.
"""

from __future__ import annotations

from typing import ClassVar


class EarshotError(Exception):
    """Base of every error Earshot reports to a client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "api_error"

    def __init__(self, message: str, *, param: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}  # extra response headers (rate-limit state, say)


class InvalidRequestError(EarshotError):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"


class InvalidAudioError(InvalidRequestError):
    """The bytes are not decodable audio: empty, truncated, or something else entirely."""

    code = "invalid_audio"


class UnresolvedHostError(InvalidRequestError):
    """A URL's host name has no address (now): nothing was contacted."""


class RequestTargetTooLongError(InvalidRequestError):
    """The HTTP request line's target is longer than the server reads (the local server's own check)."""

    status = 414


class HeadersTooLargeError(InvalidRequestError):
    """Too many or too long HTTP header lines (the local server's own check)."""

    status = 431


class RequestTimeoutError(InvalidRequestError):
    """The client stopped sending its request body (the local server's own check): nothing was processed."""

    status = 408


class NotATranscriptionModelError(InvalidRequestError):
    code = "not_a_transcription_model"


class NotAnAudioModelError(InvalidRequestError):
    code = "not_an_audio_model"


class ModelNotLive:
    """Marks the refusal of a catalog model whose provider credential is not configured here (a 400 before any
    charge on every route; the message names the SKU and what to configure). Each route keeps its own code."""

    sku: str = ""  # the model refused, for contracts that word their own message


class TranscriptionModelNotLiveError(ModelNotLive, NotATranscriptionModelError):
    pass


class AudioModelNotLiveError(ModelNotLive, NotAnAudioModelError):
    pass


class UnsupportedByModelError(InvalidRequestError):
    """The model exists but cannot do what was asked (a language it does not have, say)."""

    code = "unsupported_by_model"


class AuthError(EarshotError):
    status = 401
    code = "auth_error"
    type = "authentication_error"


class BillingError(EarshotError):
    status = 402
    code = "billing_error"
    type = "billing_error"


class NotFoundError(EarshotError):
    status = 404
    code = "not_found"
    type = "not_found_error"


class NotEnabledError(EarshotError):
    status = 404
    code = "not_enabled"
    type = "not_found_error"


class MethodNotAllowedError(EarshotError):
    status = 405
    code = "method_not_allowed"
    type = "invalid_request_error"


class IdempotencyConflictError(EarshotError):
    status = 409
    code = "idempotency_conflict"
    type = "invalid_request_error"


class FileTooLargeError(EarshotError):
    status = 413
    code = "file_too_large"
    type = "invalid_request_error"


class AudioTooLongForSyncError(EarshotError):
    """A synchronous request whose audio cannot be processed inside the request's time: refused before any charge.
    The message names the two ways that work (``async=true`` and ``POST /v1/uploads``)."""

    status = 413
    code = "audio_too_long_for_sync"
    type = "invalid_request_error"


class UnsupportedMediaTypeError(EarshotError):
    status = 415
    code = "unsupported_media_type"
    type = "invalid_request_error"


class SchemaMismatchError(EarshotError):
    status = 422
    code = "schema_mismatch"
    type = "invalid_request_error"


class RateLimitedError(EarshotError):
    status = 429
    code = "rate_limited"
    type = "rate_limit_error"


class InternalError(EarshotError):
    status = 500
    code = "internal_error"
    type = "api_error"


class TaskTransitionError(InternalError):
    """A task update the status rules refuse (out of a final state, or skipping ``processing``).

    Never the client's doing: the workflow or a service asked for an impossible move, so it is a 500.
    """


class EngineError(EarshotError):
    """An embedded engine failed on audio that metered fine. Charged requests are refunded."""

    status = 502
    code = "provider_error"
    type = "api_error"


class ProviderError(EarshotError):
    status = 502
    code = "provider_error"
    type = "api_error"


class ProviderTimeoutError(EarshotError):
    status = 504
    code = "provider_timeout"
    type = "api_error"


def error_for_code(code: str, message: str, *, param: str | None = None) -> EarshotError:
    """The error a stored ``{code, message}`` stands for (a failed task's), with that code's status.

    The first class in the hierarchy (breadth first) that carries ``code``; an unknown code is a 500.
    """
    queue: list[type[EarshotError]] = [EarshotError]
    while queue:
        cls = queue.pop(0)
        if cls.code == code:
            return cls(message, param=param)
        queue.extend(cls.__subclasses__())
    return InternalError(message, param=param)
