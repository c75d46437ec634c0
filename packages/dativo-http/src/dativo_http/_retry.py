"""When to try a request again, and how long to wait: ``RetryPolicy`` and ``Retry-After`` parsing."""

from __future__ import annotations

import email.utils
import math
import random
import time
from dataclasses import dataclass, field

__all__ = ["RetryPolicy", "parse_retry_after"]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks for, or ``None`` if absent or unreadable.

    Args:
        value: The header: delay seconds (``120``, ``0.5``) or an HTTP date
            (``Wed, 21 Oct 2026 07:28:00 GMT``).
        now: The current time (``time.time()``), for an HTTP date.

    Returns:
        Non-negative seconds (a date in the past is 0), or ``None``.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


@dataclass(frozen=True)
class RetryPolicy:
    """How a request is retried: 429 and 503 after ``Retry-After``, 5xx and timeouts with backoff.

    The n-th retry (from 0) after a failure without ``Retry-After`` waits a random time
    between half and all of ``min(max_backoff, backoff_factor * 2**n)`` seconds (capped
    exponential backoff with jitter). An answer with ``Retry-After`` waits what it asks,
    unless that is more than ``max_retry_after``: then the error is raised at once, with
    its ``retry_after``, for the runtime to wait instead.

    Args:
        max_retries: Retries after the first attempt (0: never retry).
        backoff_factor: Seconds of the first backoff.
        max_backoff: The cap of a backoff, in seconds.
        max_retry_after: The longest ``Retry-After`` waited for here, in seconds.
        statuses: The HTTP statuses retried.

    Raises:
        ValueError: If a number is negative.
    """

    max_retries: int = 5
    backoff_factor: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0
    statuses: frozenset[int] = field(default=frozenset({429, 500, 502, 503, 504}))

    def __post_init__(self) -> None:
        if (
            self.max_retries < 0
            or self.backoff_factor < 0
            or self.max_backoff < 0
            or self.max_retry_after < 0
        ):
            raise ValueError("RetryPolicy's numbers must be non-negative")
        object.__setattr__(self, "statuses", frozenset(self.statuses))

    def backoff(self, retry: int) -> float:
        """Return the seconds to wait before retry number ``retry`` (from 0), with jitter.

        Args:
            retry: How many retries were made before this one.

        Returns:
            Seconds, at most ``max_backoff``.
        """
        ceiling = min(self.max_backoff, self.backoff_factor * (2 ** min(retry, 62)))
        return random.uniform(ceiling / 2, ceiling)
