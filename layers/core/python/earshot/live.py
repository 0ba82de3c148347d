"""Partial results while an engine works: engines report each decoded segment; a listener may take it.

An engine calls ``report_segment`` as soon as a segment is decoded. Nothing listens by default (the call
costs a context-variable lookup); a streaming request or a task's run installs a listener with
``segment_listener`` around the engine call, in the thread that runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from earshot.engines.base import Segment

SegmentListener = Callable[["Segment"], None]
_listener: ContextVar[SegmentListener | None] = ContextVar("earshot_segment_listener", default=None)


def report_segment(segment: Segment) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(segment)


@contextmanager
def segment_listener(listener: SegmentListener) -> Iterator[None]:
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
