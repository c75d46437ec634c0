"""ConcurrencyLimits: the one rule `serve` and `run --parallel` start runs by."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_runtime._batch._concurrency import ConcurrencyLimits

TENANTS = st.sampled_from(["a", "b", "c"])
LIMIT = st.one_of(st.none(), st.integers(min_value=1, max_value=4))


@given(
    waiting=st.lists(TENANTS, max_size=12),
    running=st.lists(TENANTS, max_size=6),
    max_parallel=LIMIT,
    per_tenant=LIMIT,
    override=st.integers(min_value=1, max_value=3),
)
def test_started_runs_stay_within_every_limit_and_take_the_first_that_fit(
    waiting, running, max_parallel, per_tenant, override
):
    limits = ConcurrencyLimits(max_parallel, per_tenant, {"c": override})
    items = list(enumerate(waiting))
    chosen = limits.startable(items, running_tenants=running, tenant_of=lambda item: item[1])
    assert chosen == sorted(chosen), "the waiting order is kept"
    after = collections.Counter(running) + collections.Counter(tenant for _, tenant in chosen)
    started = collections.Counter(tenant for _, tenant in chosen)
    if max_parallel is not None and chosen:
        assert sum(after.values()) <= max(max_parallel, len(running))
    for tenant in started:
        limit = limits.limit_for(tenant)
        if limit is not None:
            assert after[tenant] <= limit
    # Nothing that fits was left waiting: each skipped item's tenant (or the total) is at its limit.
    for item in items:
        if item in chosen:
            continue
        tenant_full = limits.limit_for(item[1]) is not None and after[item[1]] >= limits.limit_for(item[1])
        total_full = max_parallel is not None and sum(after.values()) >= max_parallel
        assert tenant_full or total_full


def test_tenant_limits_override_the_default_and_a_full_tenant_does_not_block_others():
    limits = ConcurrencyLimits(max_parallel=None, max_per_tenant=1, tenant_limits={"big": 3})
    waiting = ["big", "big", "small", "small", "big", "big", "other"]
    chosen = limits.startable(waiting, running_tenants=["small"], tenant_of=str)
    assert chosen == ["big", "big", "big", "other"]


@pytest.mark.parametrize("bad", [{"max_parallel": 0}, {"max_per_tenant": 0}, {"tenant_limits": {"a": 0}}])
def test_limits_below_one_are_refused(bad):
    with pytest.raises(ValueError, match="at least 1"):
        ConcurrencyLimits(**bad)
