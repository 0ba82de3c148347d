"""Builds one function's Powertools resolver from the route manifest, with the error mapping."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel

from earshot.errors import EarshotError, InternalError, NotFoundError
from earshot.http.contracts import ContractName, render_error
from earshot.http.request import ApiRequest
from earshot.observability import logger
from earshot.routes import routes_for

Endpoint = Callable[[ApiRequest], Response[Any]]


def json_response(
    body: BaseModel | dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> Response[str]:
    text = body.model_dump_json() if isinstance(body, BaseModel) else _dumps(body)
    return Response(status_code=status, content_type="application/json", body=text, headers=headers or {})


def _dumps(body: dict[str, Any]) -> str:
    import json

    return json.dumps(body, separators=(",", ":"))


def _request_id(app: APIGatewayHttpResolver) -> str:
    try:
        return str(app.current_event.request_context.request_id or "unknown")
    except (AttributeError, KeyError):
        return "unknown"


def _error_response(
    error: EarshotError, request_id: str, contract: ContractName = "openai", query: dict[str, str] | None = None
) -> Response[str]:
    reply = render_error(error, request_id=request_id, contract=contract, query=query)
    return Response(status_code=reply.status, content_type="application/json", body=reply.body, headers=reply.headers)


def _load_endpoint(dotted: str) -> Endpoint:
    module_name, attribute = dotted.split(":", 1)
    endpoint: Endpoint = getattr(importlib.import_module(module_name), attribute)
    return endpoint


class _Resolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver, keeping the event and context it resolves on itself.

    Powertools' ``resolve`` stores them on ``BaseRouter``, the class every resolver in the process shares, and then
    routes, dispatches and renders from there. Lambda resolves one event per process at a time; the local server
    resolves many at once, one resolver per worker thread (``load_handler``), and with the class-level state a
    request could be routed, authorized and parsed from a concurrent request's event (tested). This ``resolve`` is
    Powertools' (pinned) with the state on the instance."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self.current_event = cast(APIGatewayProxyEventV2, self._to_proxy_event(cast(dict[str, Any], event)))
        self.lambda_context = context
        try:
            return self._build_response(self._resolve())
        finally:
            self.context.clear()  # Powertools' clear_context


def build_resolver(function: str) -> APIGatewayHttpResolver:
    """The resolver for ``functions/<function>``: its manifest routes, errors in each route's contract."""
    app = _Resolver()

    def _serve(
        raw_event: dict[str, Any], _endpoint: Endpoint, _limited: bool, _idempotent: bool, _contract: ContractName
    ) -> Response[Any]:
        """Rate limit, idempotency and the endpoint; errors leave with the rate-limit headers attached."""
        request = ApiRequest.from_event(raw_event, app.lambda_context)
        key_id = request.authorizer.get("key_id")
        account_id = request.authorizer.get("account_id")
        # Per thread: the local server resolves requests on many threads at once (a log line never carries another
        # request's keys); on Lambda the one thread is the invocation.
        logger.thread_safe_append_keys(request_id=request.request_id, key_id=key_id, account_id=account_id)
        rate_headers: dict[str, str] = {}
        if _limited and key_id:
            from earshot.runtime import get_runtime  # not at import: /openapi.json needs no store
            from earshot.services.rate_limit import count_request

            runtime = get_runtime()
            status = count_request(runtime.limiter, str(key_id), limit=runtime.settings.rate_limit_per_minute)
            rate_headers = status.headers()
        try:
            if _idempotent and account_id and key_id:
                from earshot.http.idempotency import run_idempotently  # POST routes only
                from earshot.runtime import get_runtime

                runtime = get_runtime()
                response = run_idempotently(
                    request,
                    _endpoint,
                    store=runtime.idempotency,
                    account_id=str(account_id),
                    raw_query=str(raw_event.get("rawQueryString") or ""),
                    contract=_contract,
                    # The response is stored for replay: only now is it delivered, and its hold final.
                    on_stored=lambda: runtime.store.capture(request.request_id),
                )
            else:
                response = _endpoint(request)
        except EarshotError as error:
            error.headers = {**rate_headers, **error.headers}
            raise
        response.headers.setdefault("X-Request-Id", request.request_id)
        for name, value in rate_headers.items():
            response.headers.setdefault(name, value)
        return response

    for route in routes_for(function):
        endpoint = _load_endpoint(route.endpoint)

        def dispatch(
            _endpoint: Endpoint = endpoint,
            _limited: bool = route.auth,
            _idempotent: bool = route.method == "POST",
            _contract: ContractName = route.errors,
            **_path_params: str,
        ) -> Response[Any]:
            raw_event = app.current_event.raw_event
            query = dict(raw_event.get("queryStringParameters") or {})
            try:
                return _serve(raw_event, _endpoint, _limited, _idempotent, _contract)
            except EarshotError as error:  # answered in this route's own error contract
                logger.info(
                    "request failed", extra={"status": error.status, "code": error.code, "error": error.message}
                )
                return _error_response(error, _request_id(app), _contract, query)
            except Exception:
                logger.exception("unhandled error")
                internal = InternalError("internal error; it has been logged")
                return _error_response(internal, _request_id(app), _contract, query)

        # Powertools writes path parameters as <name>; the manifest uses OpenAPI/API Gateway {name}.
        app.route(re.sub(r"\{(\w+)\}", r"<\1>", route.path), method=route.method)(dispatch)

    @app.exception_handler(EarshotError)  # type: ignore[untyped-decorator]
    def _handle_earshot_error(error: EarshotError) -> Response[str]:
        request_id = _request_id(app)
        logger.info("request failed", extra={"status": error.status, "code": error.code, "error": error.message})
        return _error_response(error, request_id)

    @app.not_found
    def _handle_not_found(_: Exception) -> Response[str]:
        event = app.current_event
        return _error_response(NotFoundError(f"no route {event.http_method} {event.path}"), _request_id(app))

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _handle_unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return _error_response(InternalError("internal error; it has been logged"), _request_id(app))

    return app
