"""Retries: exponential backoff with jitter for errors whose ``retryable`` is true."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from dativo_plugin_sdk import is_retryable

__all__ = ["RetryPolicy", "call_with_retry"]

T = TypeVar("T")
log = logging.getLogger("dativo.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Args:
        max_attempts: Attempts in total, the first included (1 disables retries).
        initial_delay: Seconds before the first retry.
        max_delay: Cap on every wait, a server's ``retry_after`` included: a plugin
            cannot make a job wait longer than its owner allowed.
        multiplier: Growth of the backoff per attempt.
        jitter: Pick each delay uniformly between half and all of the backoff, so
            that many clients failing together do not retry together.
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    jitter: bool = True

    @classmethod
    def from_spec(cls, spec: Any) -> RetryPolicy:
        """Build a policy from a job file's ``retry`` block (any object with those attributes)."""
        return cls(
            max_attempts=int(spec.max_attempts),
            initial_delay=float(spec.initial_delay),
            max_delay=float(spec.max_delay),
            multiplier=float(spec.multiplier),
            jitter=bool(spec.jitter),
        )

    def delay(
        self, attempt: int, error: BaseException | None = None, *, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: The attempt that just failed.
            error: The error, whose ``retry_after`` (seconds) is a lower bound when set,
                up to ``max_delay``.
            rng: Random source for the jitter.

        Returns:
            ``min(max_delay, initial_delay * multiplier ** (attempt - 1))``, jittered into
            its upper half, raised to the error's ``retry_after`` but never above
            ``max_delay``.

        Example:
            >>> policy = RetryPolicy(initial_delay=1, multiplier=2, max_delay=30, jitter=False)
            >>> policy.delay(3)
            4.0
            >>> from dativo_plugin_sdk import TransientError
            >>> policy.delay(1, TransientError("busy", retry_after=1e9))
            30.0
        """
        backoff = min(self.max_delay, self.initial_delay * self.multiplier ** max(attempt - 1, 0))
        if self.jitter and backoff > 0:
            backoff = (rng or random).uniform(backoff / 2, backoff)
        retry_after = getattr(error, "retry_after", None)
        # A NaN compares false and is ignored; min() before float() keeps a huge int from overflowing.
        if (
            isinstance(retry_after, (int, float))
            and not isinstance(retry_after, bool)
            and retry_after > backoff
        ):
            return float(min(retry_after, self.max_delay))
        return float(backoff)


def call_with_retry(
    function: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``function`` until it succeeds, fails with a non-retryable error, or the budget is spent.

    Args:
        function: What to call (no arguments).
        policy: The retry budget.
        what: Description for log lines ("discovering the source").
        sleep: How to wait (tests pass a fake).
        on_retry: Called with (attempt, error, delay) before each wait.

    Returns:
        What ``function`` returned.

    Raises:
        BaseException: The last error, when it is not retryable or no attempts are left.
    """
    attempt = 1
    while True:
        try:
            return function()
        except Exception as exc:
            if not is_retryable(exc) or attempt >= policy.max_attempts:
                raise
            delay = policy.delay(attempt, exc)
            log.warning(
                "%s failed (attempt %d of %d): %s; retrying in %.2fs",
                what,
                attempt,
                policy.max_attempts,
                exc,
                delay,
                extra={
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                    "error_code": getattr(exc, "error_code", None),
                },
            )
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
            attempt += 1
