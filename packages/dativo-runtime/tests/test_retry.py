"""Retries: backoff grows, jitter stays in range, retry_after is honoured up to max_delay, the budget holds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import ConfigurationError, RateLimitError, TransientError
from dativo_runtime import RetryPolicy
from dativo_runtime._engine._retry import call_with_retry


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay=1, multiplier=2, max_delay=5, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


@given(st.integers(min_value=1, max_value=20), st.floats(min_value=0.01, max_value=10))
def test_jitter_stays_between_half_and_all(attempt: int, initial: float) -> None:
    policy = RetryPolicy(initial_delay=initial, multiplier=2, max_delay=30, jitter=True)
    full = min(30, initial * 2 ** (attempt - 1))
    delay = policy.delay(attempt, rng=random.Random(attempt))
    assert full / 2 <= delay <= full


def test_retry_after_is_a_lower_bound() -> None:
    policy = RetryPolicy(initial_delay=0.01, max_delay=10, jitter=False)
    assert policy.delay(1, RateLimitError("slow down", retry_after=7)) == 7.0


def test_retry_after_is_capped_at_max_delay() -> None:
    policy = RetryPolicy(initial_delay=0.01, max_delay=0.02, jitter=False)
    assert policy.delay(1, RateLimitError("slow down", retry_after=7)) == 0.02
    assert policy.delay(1, TransientError("31 years", retry_after=1e9)) == 0.02


class _Forged(Exception):
    """An error whose ``retry_after`` never went through the SDK's checks."""

    def __init__(self, retry_after: object) -> None:
        super().__init__("forged")
        self.retry_after = retry_after
        self.retryable = True


@pytest.mark.parametrize("retry_after", [float("inf"), float("nan"), 10**400, True, "60", None, -5])
def test_unchecked_retry_after_never_leaves_the_cap(retry_after: object) -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=2, jitter=False)
    assert policy.delay(1, _Forged(retry_after)) in (1.0, 2.0)


@given(
    st.integers(min_value=1, max_value=30),
    st.floats(min_value=0, max_value=1e12, allow_nan=False),
    st.floats(min_value=0, max_value=600, allow_nan=False),
    st.booleans(),
)
def test_no_delay_exceeds_max_delay(attempt: int, retry_after: float, max_delay: float, jitter: bool) -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=max_delay, jitter=jitter)
    delay = policy.delay(attempt, TransientError("busy", retry_after=retry_after), rng=random.Random(0))
    assert 0 <= delay <= max_delay
    assert delay >= min(retry_after, max_delay)


def test_a_huge_retry_after_waits_max_delay_in_call_with_retry() -> None:
    waits: list[float] = []
    calls: list[int] = []

    def throttled() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RateLimitError("come back in 31 years", retry_after=1e9)
        return "ok"

    policy = RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=1.5, jitter=False)
    assert call_with_retry(throttled, policy, what="test", sleep=waits.append) == "ok"
    assert waits == [1.5, 1.5]


def test_retryable_errors_are_retried_within_the_budget() -> None:
    calls: list[int] = []
    waits: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("blip", retry_after=0.5)
        return "ok"

    policy = RetryPolicy(max_attempts=3, initial_delay=0.001, jitter=False)
    assert call_with_retry(flaky, policy, what="test", sleep=waits.append) == "ok"
    assert len(calls) == 3
    assert waits == [0.5, 0.5]


def test_budget_exhausted_reraises_the_last_error() -> None:
    waits: list[float] = []

    def always() -> None:
        raise TransientError("down")

    with pytest.raises(TransientError):
        call_with_retry(always, RetryPolicy(max_attempts=2, initial_delay=0), what="test", sleep=waits.append)
    assert len(waits) == 1


def test_non_retryable_errors_fail_fast() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise ConfigurationError("bad")

    with pytest.raises(ConfigurationError):
        call_with_retry(broken, RetryPolicy(max_attempts=5), what="test", sleep=lambda _: None)
    assert calls == [1]
