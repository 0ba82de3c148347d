"""Per-key rate limits in fixed one-minute windows, counted atomically in the store."""

from __future__ import annotations

import time
from dataclasses import dataclass

from earshot.errors import RateLimitedError
from earshot.ports import RateLimiter

WINDOW_SEC = 60


@dataclass(frozen=True)
class RateStatus:
    limit: int
    remaining: int
    reset_sec: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_sec),
        }


def count_request(limiter: RateLimiter, key_id: str, *, limit: int, now: float | None = None) -> RateStatus:
    """Count this request; raise ``RateLimitedError`` (with ``Retry-After``) once ``limit`` is passed."""
    now = time.time() if now is None else now
    window_start = int(now) - int(now) % WINDOW_SEC
    count = limiter.hit(key_id, window_start=window_start, window_sec=WINDOW_SEC)
    reset = max(1, window_start + WINDOW_SEC - int(now))
    status = RateStatus(limit=limit, remaining=max(0, limit - count), reset_sec=reset)
    if count > limit:
        error = RateLimitedError(
            f"rate limit of {limit} requests per minute reached; retry in {reset} s", retry_after=reset
        )
        error.headers = status.headers()
        raise error
    return status
