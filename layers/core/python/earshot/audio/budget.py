"""How much audio the current request paid for: every decoder stops there. Light (no av, no numpy) on purpose."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_BUDGET: ContextVar[float | None] = ContextVar("earshot_decode_budget", default=None)


@contextmanager
def decode_budget(seconds: float) -> Iterator[None]:
    """Within this block, ``earshot.audio.decode.within_budget`` (every engine's decoder) yields at most ``seconds``.

    The metered length is what was billed; a file whose frames would decode to more (a header that misleads a
    decoder, a decompression bomb) is fed to the engine only up to that length, bounding memory and time.
    """
    token = _BUDGET.set(seconds)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def current_budget() -> float | None:
    return _BUDGET.get()
