"""Which backend runs a plugin: the job's wish, the mode, and the operator's policy.

* ``cloud`` mode sandboxes every plugin that is not a built-in connector: a job may pick
  ``process`` or ``docker`` (or ``auto``, the strongest available), never ``none``.
* ``self_hosted`` mode sandboxes by default too (``auto``); a job may choose ``none`` to
  run a trusted plugin in-process. When ``auto`` finds no working backend the run fails
  with a ``SandboxError`` saying how to install one or opt in to ``none``; it never falls
  back to in-process silently.
* Built-in connectors (``csv``, ``jsonl``, ``parquet``) are the runtime's own, trusted code
  and always run in-process (they may need the runtime's S3 credentials and egress); the
  job's ``sandbox`` block applies to its plugins.
* The operator's runtime configuration (:class:`OperatorPolicy`, read from the YAML or
  JSON file named by ``DATIVO_RUNTIME_CONFIG``) may restrict the allowed backends, pin
  one, cap every limit and forbid network egress. A job asking for more fails with a
  ``ConfigurationError`` naming both numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import ConfigurationError, SandboxError
from dativo_runtime._plugin_ref import PluginRef
from dativo_runtime._sizes import parse_byte_size

from ._base import Sandbox, SandboxLimits
from ._remote import check_ceilings

__all__ = [
    "BACKEND_NAMES",
    "MODES",
    "RUNTIME_CONFIG_ENV",
    "OperatorPolicy",
    "choose_sandbox",
    "should_sandbox_plugin",
]

BACKEND_NAMES = ("auto", "process", "docker", "none")
MODES = ("self_hosted", "cloud")
RUNTIME_CONFIG_ENV = "DATIVO_RUNTIME_CONFIG"
"""Environment variable naming the operator's runtime configuration file (YAML or JSON)."""

_ISOLATED = ("docker", "process")  # strongest first: what ``auto`` tries, in order


def _backends(value: Any, what: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else list(value or [])
    unknown = [n for n in names if n not in BACKEND_NAMES or n == "auto"]
    if unknown:
        raise ConfigurationError(
            f"operator policy {what} names unknown backend(s) {unknown}; use process, docker or none",
            details={"setting": what, "unknown": unknown},
        )
    return tuple(names)


@dataclass(frozen=True)
class OperatorPolicy:
    """What the operator allows, whatever job files ask for.

    Args:
        allowed_backends: Backends jobs may use (``none`` only matters in ``self_hosted`` mode).
        pinned_backend: When set, every sandboxed plugin runs on this backend.
        max_cpu: Ceiling for ``sandbox.cpu`` (cores).
        max_memory_bytes: Ceiling for ``sandbox.memory``.
        max_timeout_s: Ceiling for ``sandbox.timeout``.
        max_pids: Ceiling for ``sandbox.pids``.
        allow_network: Whether jobs may opt in to network egress.
        docker_image: The sandbox image for the Docker backend (default ``dativo-sandbox:<version>``).
    """

    allowed_backends: tuple[str, ...] = ("process", "docker", "none")
    pinned_backend: str | None = None
    max_cpu: float | None = None
    max_memory_bytes: int | None = None
    max_timeout_s: float | None = None
    max_pids: int | None = None
    allow_network: bool = True
    docker_image: str | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        allowed = _backends(self.allowed_backends, "allowed_backends")
        object.__setattr__(self, "allowed_backends", allowed)
        if self.pinned_backend is not None:
            (pinned,) = _backends(self.pinned_backend, "backend")
            if pinned not in allowed:
                raise ConfigurationError(
                    f"operator policy pins backend {pinned!r} but allows only {list(allowed)}",
                    details={"backend": pinned, "allowed_backends": list(allowed)},
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> OperatorPolicy:
        """Build a policy from the ``sandbox`` section of a runtime configuration file.

        Accepted keys: ``allowed_backends``, ``backend`` (pin), ``ceilings`` (``cpu``,
        ``memory``, ``timeout``, ``pids``), ``allow_network``, ``docker_image``.

        Raises:
            ConfigurationError: If a key or value is invalid.
        """
        where = source or "the operator policy"
        known = {"allowed_backends", "backend", "ceilings", "allow_network", "docker_image"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown sandbox setting(s) {unknown}; known: {sorted(known)}",
                details={"unknown": unknown},
            )
        ceilings = dict(data.get("ceilings") or {})
        bad = sorted(set(ceilings) - {"cpu", "memory", "timeout", "pids"})
        if bad:
            raise ConfigurationError(
                f"{where}: unknown ceiling(s) {bad}; use cpu, memory, timeout, pids", details={"unknown": bad}
            )
        try:
            memory = ceilings.get("memory")
            return cls(
                allowed_backends=tuple(data.get("allowed_backends") or ("process", "docker", "none")),
                pinned_backend=data.get("backend"),
                max_cpu=None if ceilings.get("cpu") is None else float(ceilings["cpu"]),
                max_memory_bytes=None if memory is None else parse_byte_size(memory, what="ceilings.memory"),
                max_timeout_s=None if ceilings.get("timeout") is None else float(ceilings["timeout"]),
                max_pids=None if ceilings.get("pids") is None else int(ceilings["pids"]),
                allow_network=bool(data.get("allow_network", True)),
                docker_image=data.get("docker_image"),
                source=source,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> OperatorPolicy:
        """Read the operator policy from ``path`` or the file named by ``DATIVO_RUNTIME_CONFIG``.

        The file is YAML or JSON with a top-level ``sandbox`` mapping. No file means the
        default policy (every backend allowed, no ceilings beyond the backends' defaults).

        Raises:
            ConfigurationError: If the file is missing, unreadable or invalid.
        """
        location = path if path is not None else os.environ.get(RUNTIME_CONFIG_ENV)
        if not location:
            return cls()
        file = Path(location)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"runtime configuration {str(file)!r} (from {RUNTIME_CONFIG_ENV}) cannot be read: "
                f"{exc.strerror}",
                details={"path": str(file)},
            ) from None
        import yaml

        try:
            data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            kind = "JSON" if file.suffix.lower() == ".json" else "YAML"
            raise ConfigurationError(
                f"runtime configuration {str(file)!r} is not valid {kind}: {exc}", details={"path": str(file)}
            ) from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping) or not isinstance(data.get("sandbox", {}), Mapping):
            raise ConfigurationError(
                f"runtime configuration {str(file)!r} must be a mapping with a 'sandbox' mapping",
                details={"path": str(file)},
            )
        return cls.from_mapping(data.get("sandbox") or {}, source=str(file))

    def ceilings(self) -> SandboxLimits:
        """The policy's maxima as limits (``None``: no ceiling; ``network``: whether egress is allowed)."""
        return SandboxLimits(
            cpu=self.max_cpu,
            memory_bytes=self.max_memory_bytes,
            timeout_s=self.max_timeout_s,
            pids=self.max_pids,
            network=self.allow_network,
        )

    def check_limits(self, limits: SandboxLimits) -> None:
        """Refuse limits above the operator's ceilings.

        Raises:
            ConfigurationError: Naming the job's value and the ceiling.
        """
        where = f"the operator's policy ({self.source})" if self.source else "the operator's policy"
        check_ceilings(limits, self.ceilings(), where=where)


def _check_mode_and_request(mode: str, requested: str) -> None:
    if mode not in MODES:
        raise ConfigurationError(f"unknown runtime mode {mode!r}; use 'self_hosted' or 'cloud'")
    if requested not in BACKEND_NAMES:
        raise ConfigurationError(
            f"unknown sandbox.backend {requested!r}; use one of {', '.join(BACKEND_NAMES)}",
            details={"setting": "sandbox.backend", "value": requested},
        )


def should_sandbox_plugin(
    mode: str,
    requested: str,
    ref: PluginRef,
    policy: OperatorPolicy | None = None,
) -> bool:
    """Tell whether the plugin must run outside the host process.

    Args:
        mode: ``self_hosted`` or ``cloud``.
        requested: The job's ``sandbox.backend``.
        ref: The plugin reference.
        policy: The operator's policy (a pinned backend forces a sandbox);
            :meth:`OperatorPolicy.load` when omitted.

    Returns:
        ``True`` when the plugin must be sandboxed.

    Raises:
        ConfigurationError: If the mode or backend name is unknown.
    """
    _check_mode_and_request(mode, requested)
    if ref.kind == "builtin":
        return False
    policy = policy if policy is not None else OperatorPolicy.load()
    if policy.pinned_backend is not None:
        return policy.pinned_backend != "none"
    if mode == "cloud":
        return True
    return requested != "none"


def _backend_class(name: str) -> type[Sandbox]:
    if name == "process":
        from ._bubblewrap import BubblewrapSandbox

        return BubblewrapSandbox
    if name == "docker":
        from ._docker import DockerSandbox

        return DockerSandbox
    from ._inprocess import InProcessSandbox

    return InProcessSandbox


def _instantiate(name: str, policy: OperatorPolicy) -> Sandbox:
    if name == "docker":
        from ._docker import DEFAULT_IMAGE, DockerSandbox

        return DockerSandbox(image=policy.docker_image or DEFAULT_IMAGE, ceilings=policy.ceilings())
    if name == "process":
        from ._bubblewrap import BubblewrapSandbox

        return BubblewrapSandbox(ceilings=policy.ceilings())
    return _backend_class(name)()


def _availability(name: str, policy: OperatorPolicy) -> tuple[bool, str]:
    if name == "docker":
        from ._docker import DockerSandbox

        return DockerSandbox.image_availability(policy.docker_image)
    return _backend_class(name).availability()


def choose_sandbox(
    mode: str,
    requested: str,
    ref: PluginRef,
    policy: OperatorPolicy | None = None,
    *,
    limits: SandboxLimits | None = None,
) -> Sandbox:
    """Return the backend that will run ``ref``.

    Args:
        mode: ``self_hosted`` or ``cloud``.
        requested: The job's ``sandbox.backend`` (``auto``, ``process``, ``docker``, ``none``).
        ref: The plugin reference.
        policy: The operator's policy; :meth:`OperatorPolicy.load` (``DATIVO_RUNTIME_CONFIG``) when omitted.
        limits: The job's limits, checked against the policy's ceilings.

    Returns:
        A backend instance; call its ``open_reader``/``open_writer``.

    Raises:
        ConfigurationError: If the job asks for something the mode or the operator forbids
            (``none`` in cloud mode, a backend not allowed, a limit above a ceiling).
        SandboxError: If the backend it must use does not work on this machine (the
            message says why and how to fix it).
    """
    _check_mode_and_request(mode, requested)
    policy = policy if policy is not None else OperatorPolicy.load()
    if limits is not None:
        policy.check_limits(limits)
    where = f" ({policy.source})" if policy.source else ""
    if ref.kind == "builtin":
        return _instantiate("none", policy)
    if policy.pinned_backend is not None:
        pinned = policy.pinned_backend
        if requested not in ("auto", pinned):
            raise ConfigurationError(
                f"the job asks for sandbox.backend {requested!r}, but the operator's policy{where} pins "
                f"every plugin to {pinned!r}; remove sandbox.backend or set it to 'auto' or {pinned!r}",
                details={"requested": requested, "pinned": pinned},
            )
        if pinned == "none" and mode == "cloud":
            raise ConfigurationError(
                "cloud mode never runs plugins in-process; the operator cannot pin 'none'"
            )
        requested = pinned
    if requested == "none":
        if mode == "cloud":
            raise ConfigurationError(
                f"cloud mode always sandboxes plugins, so sandbox.backend 'none' is not allowed for "
                f"{ref.ref!r}; use 'auto', 'process' or 'docker'",
                details={"setting": "sandbox.backend", "mode": mode},
            )
        if "none" not in policy.allowed_backends:
            raise ConfigurationError(
                f"the operator's policy{where} does not allow running plugins in-process (sandbox.backend "
                f"'none'); allowed: {', '.join(policy.allowed_backends)}",
                details={"requested": "none", "allowed_backends": list(policy.allowed_backends)},
            )
        return _instantiate("none", policy)
    if requested != "auto":
        if requested not in policy.allowed_backends:
            raise ConfigurationError(
                f"the operator's policy{where} does not allow sandbox backend {requested!r}; allowed: "
                f"{', '.join(policy.allowed_backends)}",
                details={"requested": requested, "allowed_backends": list(policy.allowed_backends)},
            )
        available, why = _availability(requested, policy)
        if not available:
            raise SandboxError(
                f"sandbox backend {requested!r} requested for {ref.ref!r} does not work on this machine: "
                f"{why}. "
                "Run 'dativo-run sandbox doctor' for details.",
                details={"reason": "startup_failed", "backend": requested, "why": why},
            )
        return _instantiate(requested, policy)
    reasons: list[str] = []
    for name in _ISOLATED:
        if name not in policy.allowed_backends:
            reasons.append(f"{name}: not allowed by the operator's policy")
            continue
        available, why = _availability(name, policy)
        if available:
            return _instantiate(name, policy)
        reasons.append(f"{name}: {why}")
    opt_in = (
        " For a trusted plugin, set sandbox.backend: none in the job to run it in-process."
        if mode == "self_hosted" and "none" in policy.allowed_backends
        else ""
    )
    raise SandboxError(
        f"no sandbox backend works on this machine, so plugin {ref.ref!r} cannot run in {mode} mode "
        f"({'; '.join(reasons)}). Install bubblewrap, or start Docker and run 'dativo-run sandbox "
        f"build-image'; 'dativo-run sandbox doctor' shows what is missing.{opt_in}",
        details={"reason": "startup_failed", "backend": "auto", "why": reasons},
    )
