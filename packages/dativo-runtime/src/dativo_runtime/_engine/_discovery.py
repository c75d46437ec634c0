"""``discover``: a source's streams and schemas, from a job or from a plugin reference and config."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import DativoError, DiscoveryResult
from dativo_runtime._engine._checks import close_session
from dativo_runtime._engine._host_reach import check_connector_reach
from dativo_runtime._engine._retry import RetryPolicy, call_with_retry
from dativo_runtime._engine._sessions import open_reader_session, plugin_mounts, resolve_stream
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import choose_sandbox
from dativo_runtime._sandbox._policy import OperatorPolicy

__all__ = ["discover_job", "discover_plugin"]


def discover_job(job: JobConfig, *, policy: OperatorPolicy | None = None) -> dict[str, Any]:
    """Discover the job's source: its streams and schemas, and which one the job reads.

    Raises:
        DativoError: Loading, discovery or stream-selection errors.
    """
    reader, backend = open_reader_session(job, policy=policy)
    try:
        retry = RetryPolicy.from_spec(job.retry)
        discovery = call_with_retry(reader.discover, retry, what="discovering the source")
        selected = None
        if discovery.objects:
            with contextlib.suppress(DativoError):
                selected, _, _ = resolve_stream(
                    job.model_copy(update={"schema_columns": None}), reader, retry=retry
                )
        return {
            "plugin": reader.info.to_dict(),
            "sandbox": backend,
            "selected_stream": selected,
            **discovery.to_dict(),
        }
    finally:
        close_session(reader)


def discover_plugin(
    ref_text: str,
    config: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    mode: str = "self_hosted",
    backend: str = "auto",
    policy: OperatorPolicy | None = None,
) -> dict[str, Any]:
    """Discover a source given by reference and config, without a job file.

    Args:
        ref_text: A built-in name or plugin reference.
        config: The reader's configuration (``--set key=value`` pairs).
        base_dir: Folder relative file references are resolved against.
        mode: ``self_hosted`` or ``cloud``.
        backend: The sandbox backend to ask for.
        policy: The operator's sandbox policy.

    Returns:
        The plugin's info and its :class:`DiscoveryResult` as JSON data.
    """
    ref = PluginRef.parse(ref_text, base_dir=base_dir)
    policy = policy if policy is not None else OperatorPolicy.load()
    check_connector_reach(ref, config, base_dir=base_dir or Path.cwd(), mode=mode, policy=policy)
    sandbox = choose_sandbox(mode, backend, ref, policy)
    mounts = plugin_mounts(ref, config, sandbox, wheels_only=not policy.allows_source_builds(mode))
    reader = sandbox.open_reader(ref, dict(config), mounts=mounts)
    try:
        result: DiscoveryResult = reader.discover()
        return {"plugin": reader.info.to_dict(), "sandbox": sandbox.name, **result.to_dict()}
    finally:
        close_session(reader)
