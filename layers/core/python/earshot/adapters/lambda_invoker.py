"""``Invoker`` on AWS Lambda: a synchronous invoke of the inference function (``earshot.engines.remote``)."""

from __future__ import annotations

import json
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from earshot.engines.remote import raise_remote_error
from earshot.errors import ProviderError, ProviderTimeoutError


class LambdaInvoker:
    """Invokes ``function_name`` with ``RequestResponse`` and decodes its answer.

    No SDK retries: a retried invoke would run the engine twice, and the caller's deadline has no room for it.
    A client per read timeout, as botocore fixes the timeout per client.
    """

    def __init__(self, session: Any, function_name: str) -> None:
        self._session = session
        self._function = function_name
        self._clients: dict[int, Any] = {}

    def _client(self, timeout_sec: float) -> Any:
        read_timeout = max(1, int(timeout_sec + 0.999))
        client = self._clients.get(read_timeout)
        if client is None:
            config = Config(
                connect_timeout=3, read_timeout=read_timeout, retries={"mode": "standard", "max_attempts": 1}
            )
            client = self._clients[read_timeout] = self._session.client("lambda", config=config)
        return client

    def invoke(self, payload: dict[str, Any], *, timeout_sec: float) -> dict[str, Any]:
        try:
            response = self._client(timeout_sec).invoke(
                FunctionName=self._function,
                InvocationType="RequestResponse",
                Payload=json.dumps(payload, separators=(",", ":")).encode(),
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ProviderError(f"the inference function could not be invoked ({code})", retry_after=1) from exc
        except BotoCoreError as exc:
            if "timeout" in type(exc).__name__.lower():
                raise ProviderTimeoutError("the inference function did not answer in time") from exc
            raise ProviderError("the inference function could not be reached") from exc
        body = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            error = body if isinstance(body, dict) else {}
            raise_remote_error(str(error.get("errorType", "")), str(error.get("errorMessage", "")))
        if not isinstance(body, dict):
            raise ProviderError("the inference function answered something other than a JSON object")
        return body
