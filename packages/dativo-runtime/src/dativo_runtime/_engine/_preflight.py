"""The checks a run makes before it moves data, in the order it makes them.

``run`` goes through them at the start of each attempt and stops at the first failure;
``validate`` goes through the same checks, the same functions with the same arguments,
and reports each one, so a job that ``run`` would refuse before moving data fails
``validate`` with the same exit code and message:

1. :meth:`Preflight.check_state`: a cloud job's host paths and servers are within the
   operator's policy (:func:`check_host_reach`), then the job's state store takes its lock
   and reads its state (and a dead run's pending commit);
2. :meth:`Preflight.open_source`: the reader loads where it would run (``requires_sdk``,
   sandbox policy, its folder mountable) and supports what the job asks of it
   (:func:`check_incremental_support`);
3. :meth:`Preflight.resolve_stream`: the stream the job reads exists, and its columns;
4. :meth:`Preflight.open_target`: the writer loads where it would run, with those
   columns, and its output folder is safe to hand it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dativo_plugin_sdk import Column, ConfigurationError, DiscoveredStream
from dativo_runtime._engine._host_reach import check_host_reach
from dativo_runtime._engine._retry import RetryPolicy
from dativo_runtime._engine._sessions import (
    close_quietly,
    open_reader_session,
    open_writer_session,
    resolve_stream,
    writer_columns,
)
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._observability._tracing import Tracing
from dativo_runtime._plugins._ref import PluginInfo
from dativo_runtime._sandbox import ReaderSession, WriterSession
from dativo_runtime._sandbox._policy import OperatorPolicy
from dativo_runtime._storage._locks import Lease
from dativo_runtime._storage._state_store import JobState, PendingCommit, StateStore

__all__ = ["Preflight", "StreamChoice", "check_incremental_support"]


def check_incremental_support(job: JobConfig, info: PluginInfo) -> None:
    """Refuse ``source.incremental`` for a reader that cannot read incrementally.

    Args:
        job: The job.
        info: What the loaded reader declares.

    Raises:
        ConfigurationError: Naming ``source.incremental`` and the reader.
    """
    if job.source.incremental is not None and "incremental" not in info.capabilities:
        raise ConfigurationError(
            f"{job.display_name}: source.incremental is set, but {info.class_name} does not "
            "support incremental reads (supports_incremental is false); remove source.incremental",
            details={"field": "source.incremental", "role": "source"},
        )


@dataclass(frozen=True)
class StreamChoice:
    """The stream a job reads and the columns its records are validated against.

    Attributes:
        name: The stream's name (``None``: the reader's only one).
        columns: The job's schema, else the discovered one, else ``None`` (the data's own types).
        discovered: The discovered stream, when discovery chose it.
    """

    name: str | None
    columns: list[Column] | None
    discovered: DiscoveredStream | None = None


class Preflight:
    """The checks before moving data, shared by ``run`` (each attempt) and ``validate``.

    Args:
        job: The job.
        policy: The operator's sandbox policy.
        retry: The budget for retrying discovery.
        tracing: Where the discovery span goes (the active tracing by default).
        on_retry: Called before each retry of discovery (metrics).
        on_session: Called with each session opened, its backend and the monotonic time
            its opening began (metrics).
    """

    def __init__(
        self,
        job: JobConfig,
        *,
        policy: OperatorPolicy | None = None,
        retry: RetryPolicy | None = None,
        tracing: Tracing | None = None,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
        on_session: Callable[[ReaderSession | WriterSession, str, float], None] | None = None,
    ) -> None:
        self.job = job
        self.policy = policy
        self.retry = retry or RetryPolicy.from_spec(job.retry)
        self.tracing = tracing
        self.on_retry = on_retry
        self.on_session = on_session
        self.store = StateStore(job.state_location(), job.state_storage_options())

    def lock_state(self, owner: str) -> Lease:
        """Take the job's lock: two runs of one job never overlap.

        A cloud job's host paths and servers are checked first (:func:`check_host_reach`):
        the state store is one of them.

        Raises:
            DativoError: If the job reaches outside what cloud mode allows on the host, or the
                lock cannot be created or another run holds it.
        """
        check_host_reach(self.job, self.policy if self.policy is not None else OperatorPolicy.load())
        return self.store.lock(self.job.tenant, self.job.name, owner=owner)

    def load_pending(self) -> PendingCommit | None:
        """Read what a dead run left between its commit and saving its state, if anything."""
        return self.store.load_pending(self.job.tenant, self.job.name)

    def load_state(self) -> JobState:
        """Read the job's last committed state (empty when the job is not incremental)."""
        if self.job.source.incremental is None:
            return JobState()
        return self.store.load(self.job.tenant, self.job.name)

    def check_state(self, owner: str) -> JobState:
        """What a run does with the state store before anything else, undone: lock, read, unlock.

        Returns:
            The saved state (read whether or not the job is incremental).

        Raises:
            DativoError: What ``run`` would fail with (the lock, the pending state, the state).
        """
        lease = self.lock_state(owner)
        try:
            self.load_pending()
            return self.store.load(self.job.tenant, self.job.name)
        finally:
            lease.release()

    def open_source(self) -> tuple[ReaderSession, str]:
        """Start the reader where it runs and check it supports what the job asks.

        Returns:
            The session (the caller closes it) and its backend's name.

        Raises:
            DativoError: Loading, version, sandbox or capability errors, naming ``source``.
        """
        began = time.monotonic()
        reader, backend = open_reader_session(self.job, policy=self.policy)
        try:
            if self.on_session is not None:
                self.on_session(reader, backend, began)
            check_incremental_support(self.job, reader.info)
        except BaseException:
            close_quietly(reader, "source")
            raise
        return reader, backend

    def resolve_stream(self, reader: ReaderSession) -> StreamChoice:
        """Choose the stream and its columns (see :func:`~._sessions.resolve_stream`).

        Raises:
            ConfigurationError: If ``source.stream`` names no stream, or several offer themselves.
        """
        name, columns, discovered = resolve_stream(
            self.job, reader, retry=self.retry, tracing=self.tracing, on_retry=self.on_retry
        )
        return StreamChoice(name, columns, discovered)

    def open_target(
        self, columns: list[Column] | None, *, config: dict[str, Any] | None = None
    ) -> tuple[WriterSession, str]:
        """Start the writer where it runs, for records of ``columns``.

        Args:
            columns: The stream's columns (:attr:`StreamChoice.columns`).
            config: The writer's config; the job's by default.

        Returns:
            The session (the caller closes it) and its backend's name.

        Raises:
            DativoError: Loading, version, sandbox or output-folder errors, naming ``target``.
        """
        began = time.monotonic()
        writer, backend = open_writer_session(
            self.job,
            config=config,
            schema=writer_columns(columns, self.job.validation),
            policy=self.policy,
        )
        if self.on_session is not None:
            self.on_session(writer, backend, began)
        return writer, backend
