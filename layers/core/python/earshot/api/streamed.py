"""A synchronous run whose partial results stream to the caller (``stream=true`` on transcriptions).

The run happens in a worker thread; the route answers only once the audio is metered and the price
debited, so every refusal (bad audio, 402, unsupported option) is still an ordinary error response with
its status. From then on, each segment the engine decodes is a ``transcript.text.delta`` event, and the
run's end is a ``transcript.text.done`` event carrying the usage and the bill. An engine failure after
the debit is refunded (``services.charging``) and arrives as an ``error`` event with the envelope.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Response

from earshot.engines.base import Segment, Transcript
from earshot.errors import EarshotError, InternalError
from earshot.http.contracts.openai import body as error_body
from earshot.http.request import ApiRequest
from earshot.http.streaming import sse, sse_comment, stream_response
from earshot.kinds import prepare
from earshot.kinds.billing import billing_block
from earshot.live import segment_listener
from earshot.metering import MeteredAudio
from earshot.observability import logger
from earshot.runtime import get_runtime
from earshot.schemas import DurationUsage
from earshot.services.accounts import audio_account
from earshot.services.charged_run import AudioPayload, ChargedRun, deliver_charged, run_charged

KEEPALIVE_SEC = 10.0
_CHARGED, _SEGMENT, _DONE, _FAILED = "charged", "segment", "done", "failed"


def stream_transcription(
    request: ApiRequest, *, kind: str, options: dict[str, Any], audio: Callable[[float], AudioPayload]
) -> Response[Any]:
    """Run ``kind`` (transcription or translation) now, streaming OpenAI's transcription events."""
    principal = request.principal()
    runtime = get_runtime()
    audio_account(runtime.store, principal)
    deadline = request.deadline_sec(default=runtime.settings.request_timeout_sec)
    prepared = prepare(runtime, kind, options, deadline_sec=deadline)  # refusals happen here, before any charge
    updates: queue.Queue[tuple[str, Any]] = queue.Queue()
    work = prepared.plan.work

    def reporting_work(path: Path, metered: MeteredAudio) -> Any:
        updates.put((_CHARGED, None))  # the plan's work runs only once the price is debited
        with segment_listener(lambda segment: updates.put((_SEGMENT, segment))):
            return work(path, metered)

    plan = replace(prepared.plan, work=reporting_work)

    def run() -> None:
        try:
            deadline_at = time.monotonic() + deadline
            outcome = run_charged(
                runtime, principal, request.request_id, plan, audio(deadline), deadline_at=deadline_at
            )
            updates.put((_DONE, deliver_charged(runtime, outcome, lambda run: run)))  # captures the hold
        except EarshotError as error:
            updates.put((_FAILED, error))
        except Exception:  # a bug, not the engine (run_metered wraps engine failures): never a hung stream
            logger.exception("streamed run failed")
            updates.put((_FAILED, InternalError("internal error; it has been logged")))

    threading.Thread(target=run, name=f"stream-{request.request_id}", daemon=True).start()
    first, value = updates.get()
    if first == _FAILED:
        raise value  # not charged (or refunded already): an ordinary error answer
    if first == _DONE:  # cannot happen (work reports first) but keeps the stream total
        updates.put((first, value))
    return stream_response(request, _events(updates, request.request_id))


def _events(updates: queue.Queue[tuple[str, Any]], request_id: str) -> Iterator[bytes]:
    text = ""
    live_segments = 0
    while True:
        try:
            kind, value = updates.get(timeout=KEEPALIVE_SEC)
        except queue.Empty:
            yield sse_comment()
            continue
        if kind == _SEGMENT:
            delta = _delta(text, value)
            text += delta
            live_segments += 1
            if delta:
                yield sse({"type": "transcript.text.delta", "delta": delta})
        elif kind == _DONE:
            outcome: ChargedRun[Transcript] = value
            for segment in outcome.result.segments[live_segments:]:  # engines that do not report as they go
                delta = _delta(text, segment)
                text += delta
                if delta:
                    yield sse({"type": "transcript.text.delta", "delta": delta})
            yield sse(_done_event(outcome))
            return
        elif kind == _FAILED:
            envelope = json.loads(error_body(value, request_id))
            yield sse({"type": "error", **envelope})
            return


def _delta(so_far: str, segment: Segment) -> str:
    piece = segment.text.strip()
    if not piece:
        return ""
    return piece if not so_far else f" {piece}"


def _done_event(outcome: ChargedRun[Transcript]) -> dict[str, Any]:
    bill = billing_block(outcome)
    return {
        "type": "transcript.text.done",
        "text": outcome.result.text,
        "model": outcome.model.sku,
        "usage": DurationUsage(seconds=bill.duration_sec).model_dump(),
        "billing": bill.model_dump(),
    }
