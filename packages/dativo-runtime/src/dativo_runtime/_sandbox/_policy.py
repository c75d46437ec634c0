"""Which backend runs a plugin: the job's wish, the mode, and the operator's policy.

* The mode a job runs in is the stricter of two: ``cloud`` when the operator's policy
  (``sandbox.mode``) or the job (``mode``) says ``cloud``, else ``self_hosted``. A job file
  cannot lower the operator's ``cloud``; a job may ask for ``cloud`` for itself under a
  ``self_hosted`` policy. Without a policy file (or without ``mode`` in it) the policy's mode
  is ``self_hosted``, so the job's ``mode`` decides, as before. An operator who runs other
  people's plugins must set ``mode: cloud`` in the policy: the job's ``mode`` is written by
  the tenant.
* ``cloud`` mode sandboxes every plugin that is not a built-in connector: a job may pick
  ``process`` or ``docker`` (or ``auto``, the strongest available), never ``none``. It
  denies network egress unless the operator's policy says ``allow_network: true``, and
  caps every limit: at the policy's ceilings, else at :data:`CLOUD_DEFAULT_CEILINGS`.
* ``self_hosted`` mode sandboxes by default too (``auto``); a job may choose ``none`` to
  run a trusted plugin in-process. When ``auto`` finds no working backend the run fails
  with a ``SandboxError`` saying how to install one or opt in to ``none``; it never falls
  back to in-process silently. Limits have no ceilings beyond the policy's, and egress is
  allowed unless the policy says ``allow_network: false``.
* Built-in connectors (``csv``, ``jsonl``, ``parquet``) are the runtime's own, trusted code
  and always run in-process (they may need the runtime's S3 credentials and egress); the
  job's ``sandbox`` block applies to its plugins.
* The operator's runtime configuration (:class:`OperatorPolicy`, read from the YAML or
  JSON file named by ``DATIVO_RUNTIME_CONFIG``) sets the mode and may restrict the allowed
  backends, pin one, cap every limit and forbid network egress. A job asking for more
  fails with a ``ConfigurationError`` naming the setting and both numbers.

The policy and the choice it governs are one concept read together (every rule of the
choice is a rule of the policy), which is why this module passes 500 lines; the policy
file's parsing would be the part to move out first.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import ConfigurationError, DativoError, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import Sandbox, SandboxLimits
from dativo_runtime._sandbox._limits import check_ceilings
from dativo_runtime._sizes import parse_byte_size

__all__ = [
    "BACKEND_NAMES",
    "CLOUD_DEFAULT_CEILINGS",
    "MODES",
    "RUNTIME_CONFIG_ENV",
    "OperatorPolicy",
    "choose_sandbox",
    "run_mode",
    "should_sandbox_plugin",
]

BACKEND_NAMES = ("auto", "process", "docker", "none")
MODES = ("self_hosted", "cloud")
RUNTIME_CONFIG_ENV = "DATIVO_RUNTIME_CONFIG"
"""Environment variable naming the operator's runtime configuration file (YAML or JSON)."""

CLOUD_DEFAULT_CEILINGS = SandboxLimits(
    cpu=4.0,
    memory_bytes=8 << 30,
    timeout_s=86400.0,
    pids=1024,
    network=False,
    disk_bytes=100 << 30,
)
"""The ceilings of ``cloud`` mode where the operator's policy sets none: 4 cores, 8 GiB of
memory, 24 hours, 1024 processes, 100 GiB of disk, and no egress unless ``allow_network: true``."""

_ISOLATED = ("docker", "process")  # strongest first: what ``auto`` tries, in order
_CEILING_KEYS = ("cpu", "memory", "timeout", "pids", "disk")


def _backends(value: Any, what: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else list(value or [])
    unknown = [n for n in names if n not in BACKEND_NAMES or n == "auto"]
    if unknown:
        raise ConfigurationError(
            f"operator policy {what} names unknown backend(s) {unknown}; use process, docker or none",
            details={"setting": what, "unknown": unknown},
        )
    return tuple(names)


def _check_mode(mode: Any, setting: str, where: str = "") -> str:
    if mode not in MODES:
        raise ConfigurationError(
            f"{where}unknown runtime mode {mode!r} ({setting}); use 'self_hosted' or 'cloud'",
            details={"setting": setting, "value": mode},
        )
    return str(mode)


def _positive_number(ceilings: Mapping[str, Any], name: str) -> float | None:
    value = ceilings.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"ceilings.{name} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"ceilings.{name} must be a positive number, got {value!r}")
    return number


def _positive_count(ceilings: Mapping[str, Any], name: str) -> int | None:
    number = _positive_number(ceilings, name)
    if number is None:
        return None
    if not number.is_integer():
        raise ValueError(f"ceilings.{name} must be a whole number, got {ceilings[name]!r}")
    return int(number)


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
        allow_network: Whether jobs may opt in to network egress; ``None`` (unset): yes in
            ``self_hosted`` mode, no in ``cloud`` mode.
        docker_image: The sandbox image for the Docker backend (default ``dativo-sandbox:<version>``).
        max_disk_bytes: Ceiling for ``sandbox.disk``.
        mode: ``cloud`` runs every job in cloud mode, whatever its job file says;
            ``self_hosted`` (the default) lets each job's ``mode`` decide.

    In ``cloud`` mode an unset ceiling is the one of :data:`CLOUD_DEFAULT_CEILINGS`; in
    ``self_hosted`` mode it is no ceiling.

    Raises:
        ConfigurationError: If the settings contradict each other (a pinned backend that is not
            allowed, ``none`` pinned in cloud mode, an unknown mode).
    """

    allowed_backends: tuple[str, ...] = ("process", "docker", "none")
    pinned_backend: str | None = None
    max_cpu: float | None = None
    max_memory_bytes: int | None = None
    max_timeout_s: float | None = None
    max_pids: int | None = None
    allow_network: bool | None = None
    docker_image: str | None = None
    max_disk_bytes: int | None = None
    mode: str = "self_hosted"
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_mode(self.mode, "sandbox.mode", f"{self.where}: ")
        allowed = _backends(self.allowed_backends, "allowed_backends")
        object.__setattr__(self, "allowed_backends", allowed)
        if self.pinned_backend is not None:
            (pinned,) = _backends(self.pinned_backend, "backend")
            if pinned not in allowed:
                raise ConfigurationError(
                    f"operator policy pins backend {pinned!r} but allows only {list(allowed)}",
                    details={"backend": pinned, "allowed_backends": list(allowed)},
                )
        if self.mode == "cloud" and (
            self.pinned_backend == "none" or not any(name in allowed for name in _ISOLATED)
        ):
            raise ConfigurationError(
                f"{self.where}: mode cloud never runs plugins in-process, so it needs process or docker "
                f"in allowed_backends and cannot pin 'none' (allowed: {list(allowed)}, pinned: "
                f"{self.pinned_backend})",
                details={"setting": "sandbox.mode", "allowed_backends": list(allowed)},
            )

    @property
    def where(self) -> str:
        """The policy as messages name it: ``the operator's policy (/etc/dativo/runtime.yaml)``."""
        return f"the operator's policy ({self.source})" if self.source else "the operator's policy"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> OperatorPolicy:
        """Build a policy from the ``sandbox`` section of a runtime configuration file.

        Accepted keys: ``mode`` (``cloud`` or ``self_hosted``), ``allowed_backends``,
        ``backend`` (pin), ``ceilings`` (``cpu``, ``memory``, ``timeout``, ``pids``,
        ``disk``), ``allow_network``, ``docker_image``.

        Raises:
            ConfigurationError: If a key or value is invalid.
        """
        where = source or "the operator policy"
        known = {"mode", "allowed_backends", "backend", "ceilings", "allow_network", "docker_image"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown sandbox setting(s) {unknown}; known: {sorted(known)}",
                details={"unknown": unknown},
            )
        mode = _check_mode(data.get("mode", "self_hosted"), "sandbox.mode", f"{where}: ")
        allowed = data.get("allowed_backends") or ("process", "docker", "none")
        if (
            mode == "cloud"
            and "allowed_backends" in data
            and "none" in _backends(allowed, "allowed_backends")
        ):
            raise ConfigurationError(
                f"{where}: sandbox.mode is cloud, which never runs plugins in-process; remove none from "
                "allowed_backends",
                details={"setting": "sandbox.allowed_backends", "mode": mode},
            )
        allow_network = data.get("allow_network")
        if allow_network is not None and not isinstance(allow_network, bool):
            raise ConfigurationError(
                f"{where}: sandbox.allow_network must be true or false, got {allow_network!r}",
                details={"setting": "sandbox.allow_network"},
            )
        ceilings = data.get("ceilings") or {}
        if not isinstance(ceilings, Mapping):
            raise ConfigurationError(
                f"{where}: sandbox.ceilings must be a mapping of {', '.join(_CEILING_KEYS)}",
                details={"setting": "sandbox.ceilings"},
            )
        bad = sorted(set(ceilings) - set(_CEILING_KEYS))
        if bad:
            raise ConfigurationError(
                f"{where}: unknown ceiling(s) {bad}; use {', '.join(_CEILING_KEYS)}", details={"unknown": bad}
            )
        try:
            memory, disk = ceilings.get("memory"), ceilings.get("disk")
            return cls(
                mode=mode,
                allowed_backends=tuple(allowed),
                pinned_backend=data.get("backend"),
                max_cpu=_positive_number(ceilings, "cpu"),
                max_memory_bytes=None if memory is None else parse_byte_size(memory, what="ceilings.memory"),
                max_timeout_s=_positive_number(ceilings, "timeout"),
                max_pids=_positive_count(ceilings, "pids"),
                max_disk_bytes=None if disk is None else parse_byte_size(disk, what="ceilings.disk"),
                allow_network=allow_network,
                docker_image=data.get("docker_image"),
                source=source,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{where}: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> OperatorPolicy:
        """Read the operator policy from ``path`` or the file named by ``DATIVO_RUNTIME_CONFIG``.

        The file is YAML or JSON with a top-level ``sandbox`` mapping. No file means the
        default policy: mode ``self_hosted`` (each job's ``mode`` decides), every backend
        allowed, no ceilings beyond the backends' defaults (and cloud mode's, for a job in
        cloud mode).

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
        if "mode" in data:
            # Ignoring a misplaced mode would silently leave a cloud deployment self-hosted.
            raise ConfigurationError(
                f"runtime configuration {str(file)!r} sets mode at the top level; move it into the "
                "sandbox mapping (sandbox: {mode: cloud})",
                details={"path": str(file), "setting": "sandbox.mode"},
            )
        return cls.from_mapping(data.get("sandbox") or {}, source=str(file))

    def effective_mode(self, job_mode: str) -> str:
        """The mode a job runs in: ``cloud`` when the policy or the job says so (the stricter wins).

        Raises:
            ConfigurationError: If ``job_mode`` is not a mode.
        """
        _check_mode(job_mode, "mode")
        return "cloud" if "cloud" in (self.mode, job_mode) else "self_hosted"

    def ceilings(self, job_mode: str | None = None) -> SandboxLimits:
        """The maxima for a job whose file says ``job_mode`` (default: the policy's own mode).

        ``None`` means no ceiling; ``network`` whether egress is allowed. In cloud mode
        unset ceilings come from :data:`CLOUD_DEFAULT_CEILINGS`.
        """
        cloud = self.effective_mode(job_mode or self.mode) == "cloud"
        own = self._own_ceilings()
        fallback = CLOUD_DEFAULT_CEILINGS if cloud else SandboxLimits()
        return SandboxLimits(
            cpu=fallback.cpu if own.cpu is None else own.cpu,
            memory_bytes=fallback.memory_bytes if own.memory_bytes is None else own.memory_bytes,
            timeout_s=fallback.timeout_s if own.timeout_s is None else own.timeout_s,
            pids=fallback.pids if own.pids is None else own.pids,
            network=(not cloud) if self.allow_network is None else self.allow_network,
            disk_bytes=fallback.disk_bytes if own.disk_bytes is None else own.disk_bytes,
        )

    def check_limits(self, limits: SandboxLimits, job_mode: str | None = None) -> None:
        """Refuse limits above the ceilings of a job whose file says ``job_mode`` (default: the policy's).

        Raises:
            ConfigurationError: Naming the setting, the job's value and the ceiling, and who set
                it (the operator's policy, or cloud mode's defaults).
        """
        job_mode = job_mode or self.mode
        check_ceilings(limits, self._own_ceilings(), where=self.where)
        if self.effective_mode(job_mode) == "cloud":
            defaults = CLOUD_DEFAULT_CEILINGS
            unset = SandboxLimits(
                cpu=defaults.cpu if self.max_cpu is None else None,
                memory_bytes=defaults.memory_bytes if self.max_memory_bytes is None else None,
                timeout_s=defaults.timeout_s if self.max_timeout_s is None else None,
                pids=defaults.pids if self.max_pids is None else None,
                network=self.allow_network is not None,
                disk_bytes=defaults.disk_bytes if self.max_disk_bytes is None else None,
            )
            where = (
                f"cloud mode's defaults ({self.cloud_reason(job_mode)}; the operator's policy may change "
                "them with sandbox.ceilings and allow egress with sandbox.allow_network: true)"
            )
            check_ceilings(limits, unset, where=where)

    def cloud_reason(self, job_mode: str) -> str:
        """Why a job in ``job_mode`` runs in cloud mode, for messages."""
        if self.mode == "cloud":
            lowered = ", which the job's mode: self_hosted cannot lower" if job_mode == "self_hosted" else ""
            return f"{self.where} sets mode: cloud{lowered}"
        return "the job sets mode: cloud"

    def _own_ceilings(self) -> SandboxLimits:
        return SandboxLimits(
            cpu=self.max_cpu,
            memory_bytes=self.max_memory_bytes,
            timeout_s=self.max_timeout_s,
            pids=self.max_pids,
            network=self.allow_network is not False,
            disk_bytes=self.max_disk_bytes,
        )


def _check_request(requested: str) -> None:
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
        mode: The job's ``mode`` (``self_hosted`` or ``cloud``); the policy's ``cloud`` overrides it.
        requested: The job's ``sandbox.backend``.
        ref: The plugin reference.
        policy: The operator's policy (its mode and a pinned backend may force a sandbox);
            :meth:`OperatorPolicy.load` when omitted.

    Returns:
        ``True`` when the plugin must be sandboxed.

    Raises:
        ConfigurationError: If the mode or backend name is unknown.
    """
    _check_mode(mode, "mode")
    _check_request(requested)
    if ref.kind == "builtin":
        return False
    policy = policy if policy is not None else OperatorPolicy.load()
    if policy.effective_mode(mode) == "cloud":
        return True
    if policy.pinned_backend is not None:
        return policy.pinned_backend != "none"
    return requested != "none"


def _backend_class(name: str) -> type[Sandbox]:
    if name == "process":
        from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox

        return BubblewrapSandbox
    if name == "docker":
        from dativo_runtime._sandbox.docker._backend import DockerSandbox

        return DockerSandbox
    from dativo_runtime._sandbox._inprocess import InProcessSandbox

    return InProcessSandbox


def _instantiate(name: str, policy: OperatorPolicy, ceilings: SandboxLimits) -> Sandbox:
    if name == "docker":
        from dativo_runtime._sandbox.docker._backend import DEFAULT_IMAGE, DockerSandbox

        return DockerSandbox(image=policy.docker_image or DEFAULT_IMAGE, ceilings=ceilings)
    if name == "process":
        from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox

        return BubblewrapSandbox(ceilings=ceilings)
    return _backend_class(name)()


def _availability(name: str, policy: OperatorPolicy) -> tuple[bool, str]:
    if name == "docker":
        from dativo_runtime._sandbox.docker._backend import DockerSandbox

        return DockerSandbox.image_availability(policy.docker_image)
    return _backend_class(name).availability()


def run_mode(job_mode: str, policy: OperatorPolicy | None = None) -> str:
    """The mode a job runs in, for reports: the stricter of the policy's and the job's.

    A policy that cannot be loaded yields the job's own mode; the run or the check that uses
    the policy reports that error.
    """
    try:
        return (policy if policy is not None else OperatorPolicy.load()).effective_mode(job_mode)
    except DativoError:
        return job_mode


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
        mode: The job's ``mode`` (``self_hosted`` or ``cloud``); the job runs in ``cloud``
            mode when either it or the policy says so (:meth:`OperatorPolicy.effective_mode`).
        requested: The job's ``sandbox.backend`` (``auto``, ``process``, ``docker``, ``none``).
        ref: The plugin reference.
        policy: The operator's policy; :meth:`OperatorPolicy.load` (``DATIVO_RUNTIME_CONFIG``) when omitted.
        limits: The job's limits, checked against the ceilings of its mode.

    Returns:
        A backend instance; call its ``open_reader``/``open_writer``.

    Raises:
        ConfigurationError: If the job asks for something the mode or the operator forbids
            (``none`` in cloud mode, a backend not allowed, a limit above a ceiling, egress
            that is not allowed).
        SandboxError: If the backend it must use does not work on this machine (the
            message says why and how to fix it).
    """
    _check_mode(mode, "mode")
    _check_request(requested)
    policy = policy if policy is not None else OperatorPolicy.load()
    job_mode, mode = mode, policy.effective_mode(mode)
    if limits is not None:
        policy.check_limits(limits, job_mode)
    ceilings = policy.ceilings(mode)
    where = f" ({policy.source})" if policy.source else ""
    if ref.kind == "builtin":
        return _instantiate("none", policy, ceilings)
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
                f"cloud mode never runs plugins in-process ({policy.cloud_reason(job_mode)}), but "
                f"the operator's policy{where} pins every plugin to 'none'; the job cannot run here",
                details={"setting": "mode", "mode": mode, "pinned": pinned},
            )
        requested = pinned
    if requested == "none":
        if mode == "cloud":
            raise ConfigurationError(
                f"cloud mode always sandboxes plugins ({policy.cloud_reason(job_mode)}), so "
                f"sandbox.backend 'none' is not allowed for {ref.ref!r}; use 'auto', 'process' or 'docker'",
                details={
                    "setting": "sandbox.backend",
                    "mode": mode,
                    "job_mode": job_mode,
                    "policy_mode": policy.mode,
                    "policy": policy.source,
                },
            )
        if "none" not in policy.allowed_backends:
            raise ConfigurationError(
                f"the operator's policy{where} does not allow running plugins in-process (sandbox.backend "
                f"'none'); allowed: {', '.join(policy.allowed_backends)}",
                details={"requested": "none", "allowed_backends": list(policy.allowed_backends)},
            )
        return _instantiate("none", policy, ceilings)
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
        return _instantiate(requested, policy, ceilings)
    reasons: list[str] = []
    for name in _ISOLATED:
        if name not in policy.allowed_backends:
            reasons.append(f"{name}: not allowed by the operator's policy")
            continue
        available, why = _availability(name, policy)
        if available:
            return _instantiate(name, policy, ceilings)
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
