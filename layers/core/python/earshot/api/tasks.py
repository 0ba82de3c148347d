"""``GET /v1/tasks/{task_id}`` (long-poll), ``GET /v1/tasks/{task_id}/events`` (SSE), ``DELETE``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.blob_layout import task_input_key, task_result_key
from earshot.errors import InvalidRequestError
from earshot.http.app import json_response
from earshot.http.request import ApiRequest
from earshot.http.streaming import can_stream, sse, sse_comment, stream_response
from earshot.http.validation import parse_model
from earshot.ports import Task
from earshot.runtime import Runtime, get_runtime
from earshot.schemas import TaskWaitQuery
from earshot.services.task_views import FINAL, owned_task, task_document, wait_for_final

_POLL_SEC = 0.2
# Lambda cannot stream a Python response: there the events route answers with what it has after at most
# this long, and a `retry:` field tells the EventSource to reconnect with Last-Event-ID. Where the invoker
# streams (local mode), the connection stays open until the task ends, with a comment line as heartbeat.
EVENTS_WAIT_SEC = 25.0
RECONNECT_MS = 1000
HEARTBEAT_SEC = 10.0


def get_task(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    runtime = get_runtime()
    query = parse_model(TaskWaitQuery, request.query)
    task = owned_task(runtime, principal, request.path_params.get("task_id", ""))
    wait = min(query.wait, request.deadline_sec(default=query.wait + 1, reserve=2.0))
    task = wait_for_final(runtime, task, wait)
    return json_response(task_document(runtime, task))


def _last_event_id(request: ApiRequest) -> int:
    """The id of the last event the client saw: an event sequence number this stream sent (at most 15 digits).

    Both spellings are checked when both are sent (the header wins); a malformed one is never ignored."""
    sent = [
        ("Last-Event-ID", request.headers.get("last-event-id")),
        ("last_event_id", request.query.get("last_event_id")),
    ]
    given = [(param, raw.strip()) for param, raw in sent if raw is not None]
    for param, raw in given:
        if not re.fullmatch(r"[0-9]{1,15}", raw):
            raise InvalidRequestError(
                "Last-Event-ID must be an event id this stream sent (digits, at most 15)", param=param
            )
    return int(given[0][1]) if given else 0


def task_events(request: ApiRequest) -> Response[str]:
    principal = request.principal()
    runtime = get_runtime()
    task = owned_task(runtime, principal, request.path_params.get("task_id", ""))
    after = _last_event_id(request)
    if can_stream(request):
        return stream_response(request, _live_events(runtime, task, after))
    deadline = time.monotonic() + min(EVENTS_WAIT_SEC, request.deadline_sec(default=EVENTS_WAIT_SEC, reserve=2.0))
    events = runtime.tasks.list_events(task.id, after_seq=after)
    while not events and task.status not in FINAL and time.monotonic() < deadline:
        time.sleep(_POLL_SEC)
        events = runtime.tasks.list_events(task.id, after_seq=after)
        task = runtime.tasks.get_task(task.id) or task
    task = runtime.tasks.get_task(task.id) or task
    lines = [f"retry: {RECONNECT_MS}\n"]
    for event in events:
        lines.append(f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(event.data)}\n")
    if task.status in FINAL and (not events or events[-1].seq >= _last_seq(runtime, task)):
        lines.append(f"event: done\ndata: {json.dumps(task_document(runtime, task))}\n")
    return Response(
        status_code=200,
        content_type="text/event-stream",
        body="\n".join(lines) + "\n",
        headers={"Cache-Control": "no-cache"},
    )


def _live_events(runtime: Runtime, task: Task, after: int) -> Iterator[bytes]:
    """Every event after ``after`` as it is appended, heartbeats while nothing happens, ``done`` at the end."""
    yield sse_comment("connected") + f"retry: {RECONNECT_MS}\n\n".encode()
    last_sent = time.monotonic()
    while True:
        current = runtime.tasks.get_task(task.id)
        for event in runtime.tasks.list_events(task.id, after_seq=after):
            yield sse(event.data, event=event.type, id=event.seq)
            after, last_sent = event.seq, time.monotonic()
        if current is None:  # deleted while followed
            yield sse({"id": task.id, "deleted": True}, event="deleted")
            return
        if current.status in FINAL:
            yield sse(task_document(runtime, current), event="done")
            return
        if time.monotonic() - last_sent >= HEARTBEAT_SEC:
            yield sse_comment()
            last_sent = time.monotonic()
        time.sleep(_POLL_SEC)


def _last_seq(runtime: Runtime, task: Task) -> int:
    events = runtime.tasks.list_events(task.id, after_seq=0)
    return events[-1].seq if events else 0


def delete_task(request: ApiRequest) -> Response[str]:
    """Remove the task's audio and result, and the task itself."""
    principal = request.principal()
    runtime = get_runtime()
    task = owned_task(runtime, principal, request.path_params.get("task_id", ""))
    for key in (task_input_key(task.id), task_result_key(task.id), task.result_blob_key):
        if key:
            runtime.blobs.delete(key)
    runtime.tasks.delete_task(task.id)
    return json_response({"id": task.id, "object": task.object, "deleted": True})
