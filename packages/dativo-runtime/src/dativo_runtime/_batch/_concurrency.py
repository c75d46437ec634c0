"""How many runs may go on at once, in total and per tenant: shared by ``serve`` and ``run --parallel``."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

__all__ = ["ConcurrencyLimits"]

T = TypeVar("T")


class ConcurrencyLimits:
    """At most ``max_parallel`` runs at once, and at most a tenant's limit per tenant.

    Args:
        max_parallel: Runs at once in total; ``None`` for no limit.
        max_per_tenant: Runs at once per tenant, unless ``tenant_limits`` says; ``None``
            for no limit.
        tenant_limits: Per-tenant overrides of ``max_per_tenant``.

    Raises:
        ValueError: If a limit is below 1.

    Example:
        >>> limits = ConcurrencyLimits(max_parallel=3, max_per_tenant=1)
        >>> limits.startable(["a1", "a2", "b1"], running_tenants=["b"], tenant_of=lambda job: job[0])
        ['a1']
    """

    def __init__(
        self,
        max_parallel: int | None = None,
        max_per_tenant: int | None = None,
        tenant_limits: Mapping[str, int] | None = None,
    ) -> None:
        limits = [max_parallel, max_per_tenant, *(tenant_limits or {}).values()]
        if any(limit is not None and limit < 1 for limit in limits):
            raise ValueError("concurrency limits must be at least 1")
        self.max_parallel = max_parallel
        self.max_per_tenant = max_per_tenant
        self.tenant_limits = dict(tenant_limits or {})

    def limit_for(self, tenant: str) -> int | None:
        """The number of runs ``tenant`` may have at once (``None``: no per-tenant limit)."""
        return self.tenant_limits.get(tenant, self.max_per_tenant)

    def startable(
        self, waiting: Iterable[T], *, running_tenants: Iterable[str], tenant_of: Callable[[T], str]
    ) -> list[T]:
        """Pick, in order, the waiting items that may start now.

        Args:
            waiting: Items waiting for a slot, in the order they should start.
            running_tenants: The tenant of each run going on now.
            tenant_of: Returns an item's tenant.

        Returns:
            The items to start now, in ``waiting`` order; an item whose tenant is at its
            limit is passed over, so other tenants' items behind it still start.
        """
        per_tenant = collections.Counter(running_tenants)
        total = sum(per_tenant.values())
        chosen: list[T] = []
        for item in waiting:
            if self.max_parallel is not None and total >= self.max_parallel:
                break
            tenant = tenant_of(item)
            limit = self.limit_for(tenant)
            if limit is not None and per_tenant[tenant] >= limit:
                continue
            chosen.append(item)
            per_tenant[tenant] += 1
            total += 1
        return chosen
