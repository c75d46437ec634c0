"""What a cloud job makes the runtime's own process touch on the host, held to the operator's policy.

The built-in connectors that run in the runtime's process (``csv``, ``jsonl``, ``parquet``,
``iceberg``), the state store and the quarantine writer read and write what the job file
names, with the runtime's own rights, outside any sandbox; so does the output folder a
sandboxed writer is given. In ``cloud`` mode a tenant writes that job file, so:

* every local path must lie under one of the policy's ``data_roots`` (unset: the job file's
  own folder), after symlinks are resolved;
* every server a job names for the runtime to connect to (an S3 ``endpoint_url``, an Iceberg
  catalog's ``uri``) must be one of the policy's ``allowed_endpoints`` (unset: none).

Plugins, and the ``postgres`` reader in cloud mode, run in the sandbox, where the sandbox's
own mounts and egress rules apply instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._jobs._model import JobConfig, is_remote_uri
from dativo_runtime._plugins._ref import PluginRef, is_trusted_builtin
from dativo_runtime._sandbox._policy import OperatorPolicy
from dativo_runtime.connectors._options import HostReach
from dativo_runtime.connectors._registry import builtin_connector

__all__ = ["check_connector_reach", "check_host_reach"]

_GLOB = re.compile(r"[*?\[]")


def check_host_reach(job: JobConfig, policy: OperatorPolicy) -> None:
    """Refuse a cloud job that names host paths outside the data roots, or servers not allowed.

    Args:
        job: The job.
        policy: The operator's policy (its mode, ``data_roots`` and ``allowed_endpoints``).

    Raises:
        ConfigurationError: Naming the setting, the path or server, and the policy key that
            would allow it; nothing of the job has been touched.
    """
    if policy.effective_mode(job.mode) != "cloud":
        return
    paths: list[tuple[str, str]] = []
    endpoints: list[tuple[str, str]] = []
    for role, ref, config in (
        ("source", job.source_ref(), job.source_config()),
        ("target", job.target_ref(), job.target_config()),
    ):
        reach = _connector_reach(ref, config)
        _check_code(job.display_name, role, reach)
        paths += [(f"{role}.config.{key}", path) for key, path in reach.paths]
        endpoints += [(f"{role}.config.{key}", url) for key, url in reach.endpoints]
    output = job.output_dir()
    if output is not None:
        paths.append(("target.config.path", str(output)))
    quarantine = job.quarantine_location()
    if quarantine is not None and not is_remote_uri(quarantine):
        paths.append(("quarantine.path", quarantine))
    state = job.state_location()
    if not is_remote_uri(state):
        paths.append(("state.uri", state))
    state_endpoint = job.state_storage_options().get("endpoint_url")
    if state_endpoint:
        endpoints.append(("state.endpoint_url", str(state_endpoint)))
    _check_paths(job.display_name, job.base_dir, policy, paths)
    _check_endpoints(job.display_name, policy, endpoints)


def check_connector_reach(
    ref: PluginRef, config: Mapping[str, Any], *, base_dir: Path, mode: str, policy: OperatorPolicy
) -> None:
    """Hold one built-in connector run without a job file (``discover --plugin``) to the same rules.

    Args:
        ref: The connector's reference.
        config: Its config, relative paths resolved against ``base_dir``.
        base_dir: The folder that stands for the job file's (the current folder).
        mode: The mode asked for (the policy's may be stricter).
        policy: The operator's policy.

    Raises:
        ConfigurationError: As :func:`check_host_reach`.
    """
    if policy.effective_mode(mode) != "cloud":
        return
    reach = _connector_reach(ref, config)
    _check_code(ref.ref, "source", reach)
    _check_paths(ref.ref, base_dir, policy, [(f"config.{k}", p) for k, p in reach.paths])
    _check_endpoints(ref.ref, policy, [(f"config.{k}", u) for k, u in reach.endpoints])


def _connector_reach(ref: PluginRef, config: Mapping[str, Any]) -> HostReach:
    spec = builtin_connector(ref.ref) if ref.kind == "builtin" else None
    if spec is None or spec.options is None or not is_trusted_builtin(ref, cloud=True):
        return HostReach()  # a plugin, or a built-in that runs in the sandbox (postgres, singer, airbyte)
    return spec.options.from_config(config).host_reach()


def _check_code(name: str, role: str, reach: HostReach) -> None:
    if reach.code:
        raise ConfigurationError(
            f"{name}: {', '.join(f'{role}.config.{key}' for key in reach.code)} names a class for the "
            "runtime to load in its own process, which a cloud job may not choose; remove it",
            details={"settings": [f"{role}.config.{key}" for key in reach.code]},
        )


def _real(path: str, base: Path) -> Path:
    """The folder or file a (possibly globbed) path names, symlinks resolved, against ``base``."""
    fixed = _GLOB.split(path, maxsplit=1)[0]
    return Path(os.path.realpath(base / fixed))


def _check_paths(name: str, base_dir: Path, policy: OperatorPolicy, paths: Sequence[tuple[str, str]]) -> None:
    roots = policy.data_roots if policy.data_roots is not None else (base_dir,)
    real_roots = [Path(os.path.realpath(root)) for root in roots]
    for setting, path in paths:
        real = _real(path, base_dir)
        if any(real == root or root in real.parents for root in real_roots):
            continue
        where = (
            f"the data roots of {policy.where} ({', '.join(map(str, roots))})"
            if policy.data_roots is not None
            else f"the job file's folder ({base_dir}); the operator's policy may name other "
            "folders with sandbox.data_roots"
        )
        raise ConfigurationError(
            f"{name}: {setting} is {path!r}, outside what a cloud job may touch on the host: "
            f"the runtime reads and writes local paths of a cloud job only under {where}. Use a path "
            "inside them, or an s3:// location",
            details={"setting": setting, "path": path, "data_roots": [str(r) for r in roots]},
        )


def _server(url: str) -> tuple[str, str]:
    """``(host, host:port)`` of a URL (never its user or password)."""
    parts = urlsplit(url if "://" in url else f"//{url}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return host, f"{host}:{port}" if port is not None else host


def _check_endpoints(name: str, policy: OperatorPolicy, endpoints: Sequence[tuple[str, str]]) -> None:
    allowed = {entry.lower() for entry in policy.allowed_endpoints or ()}
    for setting, url in endpoints:
        host, server = _server(url)
        if host and (host in allowed or server in allowed):
            continue
        raise ConfigurationError(
            f"{name}: {setting} names the server {server or url!r}, which the runtime "
            "would connect to from its own process; in cloud mode it connects only to the servers "
            f"the operator's policy lists in sandbox.allowed_endpoints (now: "
            f"{sorted(allowed) if allowed else 'none'}). Remove the setting to use the default "
            "endpoint, or ask the operator to allow that server",
            details={"setting": setting, "server": server, "allowed_endpoints": sorted(allowed)},
        )
