"""Fixtures of the Dask executor's tests (defined in :mod:`tests.dask.cluster`)."""

from tests.dask.cluster import timed_job, two_workers

__all__ = ["timed_job", "two_workers"]
