"""The operator's runtime configuration: the mode, the allowed backends, the ceilings, egress.

Read from the YAML or JSON file named by ``DATIVO_RUNTIME_CONFIG`` (:meth:`OperatorPolicy.load`).
A ``cloud`` mode without ceilings of its own is capped at :data:`CLOUD_DEFAULT_CEILINGS`.
How the policy decides which backend runs a plugin is :mod:`._policy`; how a cloud job's host
paths and servers are held to it is :mod:`dativo_runtime._engine._host_reach`.

One module although near 600 lines: the policy's fields, the file keys that set them and the
rules that read them (ceilings, mode, source builds, combining two policies) change together.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sandbox._limits import check_ceilings
from dativo_runtime._sizes import parse_byte_size

__all__ = [
    "BACKEND_NAMES",
    "CLOUD_DEFAULT_CEILINGS",
    "ISOLATED_BACKENDS",
    "MODES",
    "RUNTIME_CONFIG_ENV",
    "OperatorPolicy",
    "check_mode",
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

ISOLATED_BACKENDS = ("docker", "process")
"""The backends that isolate a plugin, strongest first: what ``auto`` tries, in order."""
_SERVER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
_CEILING_KEYS = ("cpu", "memory", "timeout", "pids", "disk")
_Number = TypeVar("_Number", int, float)


def _backends(value: Any, what: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else list(value or [])
    unknown = [n for n in names if n not in BACKEND_NAMES or n == "auto"]
    if unknown:
        raise ConfigurationError(
            f"operator policy {what} names unknown backend(s) {unknown}; use process, docker or none",
            details={"setting": what, "unknown": unknown},
        )
    return tuple(names)


def _lower(a: _Number | None, b: _Number | None) -> _Number | None:
    """The lower of two ceilings, ``None`` meaning none."""
    return b if a is None else a if b is None else min(a, b)


def check_mode(mode: Any, setting: str, where: str = "") -> str:
    if mode not in MODES:
        raise ConfigurationError(
            f"{where}unknown runtime mode {mode!r} ({setting}); use 'self_hosted' or 'cloud'",
            details={"setting": setting, "value": mode},
        )
    return str(mode)


def _optional_bool(data: Mapping[str, Any], name: str, where: str) -> bool | None:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(
            f"{where}: sandbox.{name} must be true or false, got {value!r}",
            details={"setting": f"sandbox.{name}"},
        )
    return value


def _optional_texts(data: Mapping[str, Any], name: str, where: str) -> tuple[str, ...] | None:
    value = data.get(name)
    if value is None:
        return None
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(item, str) and item for item in value)
    ):
        raise ConfigurationError(
            f"{where}: sandbox.{name} must be a list of non-empty strings, got {value!r}",
            details={"setting": f"sandbox.{name}"},
        )
    return tuple(value)


def _common_roots(sides: Sequence[tuple[Path, ...] | None], base_dir: Path | None) -> tuple[Path, ...] | None:
    """The folders under a root of every side that constrains paths (a side's ``()`` for none).

    ``None`` in ``sides`` is a side without a constraint (self-hosted for this job); a cloud
    side without ``data_roots`` is given as ``(base_dir,)`` by the caller.
    """
    constraining = [side for side in sides if side is not None]
    if not constraining:
        return None
    common = list(constraining[0])
    for side in constraining[1:]:
        inside = [a for a in common if any(a == b or b in a.parents for b in side)]
        inside += [b for b in side if any(b == a or a in b.parents for a in common)]
        common = list(dict.fromkeys(inside))
    if base_dir is not None and common == [base_dir]:
        return None  # the default: the job file's folder
    return tuple(common)  # () when the sides share no folder: every local path is refused


def _common_endpoints(sides: Sequence[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """The servers every constraining side allows (``None`` in ``sides``: no constraint)."""
    constraining = [{e.lower() for e in side} for side in sides if side is not None]
    if not constraining:
        return None
    return tuple(sorted(set.intersection(*constraining)))


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
        allow_read_only_paths: Whether jobs may give their plugins read-only host paths
            (``sandbox.read_only_paths``); ``None`` (unset): yes in ``self_hosted`` mode, no in
            ``cloud`` mode.
        allow_source_builds: Whether plugin environments may build source distributions and
            install requirements that name a URL or a file; ``None`` (unset): yes in
            ``self_hosted`` mode, no in ``cloud`` mode (building runs a package's own code on
            the host, outside any sandbox).
        data_roots: In ``cloud`` mode, the folders under which the runtime's own process may
            read and write a local path a job names (a csv reader's ``path``, a parquet
            target's folder, a sqlite catalog, ``state.uri``, ``quarantine.path``, a sandboxed
            writer's output folder); ``None`` (unset): the job file's own folder.
        allowed_endpoints: In ``cloud`` mode, the servers (``host`` or ``host:port``) the
            runtime's own process may connect to when a job names one (an S3 ``endpoint_url``,
            an Iceberg catalog's ``uri``); ``None`` (unset): none.

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
    allow_read_only_paths: bool | None = None
    allow_source_builds: bool | None = None
    data_roots: tuple[Path, ...] | None = None
    allowed_endpoints: tuple[str, ...] | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_mode(self.mode, "sandbox.mode", f"{self.where}: ")
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
            self.pinned_backend == "none" or not any(name in allowed for name in ISOLATED_BACKENDS)
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
        ``disk``), ``allow_network``, ``allow_read_only_paths``, ``allow_source_builds``,
        ``data_roots``, ``allowed_endpoints``, ``docker_image``.

        Raises:
            ConfigurationError: If a key or value is invalid.
        """
        where = source or "the operator policy"
        known = {
            "mode",
            "allowed_backends",
            "backend",
            "ceilings",
            "allow_network",
            "allow_read_only_paths",
            "allow_source_builds",
            "data_roots",
            "allowed_endpoints",
            "docker_image",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown sandbox setting(s) {unknown}; known: {sorted(known)}",
                details={"unknown": unknown},
            )
        mode = check_mode(data.get("mode", "self_hosted"), "sandbox.mode", f"{where}: ")
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
        allow_read_only_paths = _optional_bool(data, "allow_read_only_paths", where)
        allow_source_builds = _optional_bool(data, "allow_source_builds", where)
        data_roots = _optional_texts(data, "data_roots", where)
        for root in data_roots or ():
            if not Path(root).is_absolute():
                raise ConfigurationError(
                    f"{where}: sandbox.data_roots entries must be absolute folders, got {root!r}",
                    details={"setting": "sandbox.data_roots"},
                )
        allowed_endpoints = _optional_texts(data, "allowed_endpoints", where)
        for entry in allowed_endpoints or ():
            if not _SERVER.fullmatch(entry):
                raise ConfigurationError(
                    f"{where}: sandbox.allowed_endpoints entries are servers as 'host' or 'host:port' "
                    f"(no scheme, no path), got {entry!r}",
                    details={"setting": "sandbox.allowed_endpoints"},
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
                allow_read_only_paths=allow_read_only_paths,
                allow_source_builds=allow_source_builds,
                data_roots=None if data_roots is None else tuple(Path(r) for r in data_roots),
                allowed_endpoints=allowed_endpoints,
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
        check_mode(job_mode, "mode")
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

    def check_read_only_paths(self, paths: Sequence[Path], job_mode: str | None = None) -> None:
        """Refuse ``sandbox.read_only_paths`` where the policy or cloud mode does not allow them.

        Unset, ``allow_read_only_paths`` allows them in ``self_hosted`` mode and refuses them in
        ``cloud`` mode: a tenant's job must not choose which of the operator's files its plugin reads.

        Raises:
            ConfigurationError: Naming ``sandbox.read_only_paths`` and who refuses them.
        """
        if not paths:
            return
        job_mode = job_mode or self.mode
        if self._allows_read_only_paths(self.effective_mode(job_mode)):
            return
        if self.allow_read_only_paths is None:
            who = (
                f"cloud mode refuses them ({self.cloud_reason(job_mode)}; the operator's policy may allow "
                "them with sandbox.allow_read_only_paths: true)"
            )
        else:
            who = f"{self.where} forbids them (sandbox.allow_read_only_paths: false)"
        raise ConfigurationError(
            f"the job asks for read-only host paths for its plugins (sandbox.read_only_paths: "
            f"{', '.join(str(p) for p in paths)}) but {who}; remove sandbox.read_only_paths or ask the "
            "operator to allow them",
            details={"setting": "sandbox.read_only_paths", "mode": self.effective_mode(job_mode)},
        )

    def allows_source_builds(self, job_mode: str | None = None) -> bool:
        """Whether a job whose file says ``job_mode`` may build its plugins' environments from source.

        Unset, ``allow_source_builds`` is yes in ``self_hosted`` mode and no in ``cloud`` mode,
        where environments come from wheels on the operator's index only.
        """
        if self.allow_source_builds is not None:
            return self.allow_source_builds
        return self.effective_mode(job_mode or self.mode) != "cloud"

    def stricter(
        self, other: OperatorPolicy, *, job_mode: str = "self_hosted", base_dir: Path | None = None
    ) -> OperatorPolicy:
        """The policy allowing a job only what both this policy and ``other`` allow it.

        For a run two operators' policies govern (a Dask worker's own and its client's): the
        mode is ``cloud`` when either policy or the job says so; the allowed backends are those
        both allow; each ceiling is the lower of the two as each would apply it to the job
        alone (an unset one is cloud mode's default where that policy puts the job in cloud
        mode, no ceiling otherwise); egress, read-only host paths and source builds are allowed
        only when both allow them; in cloud mode a local path must lie under a data root of
        each (an unset ``data_roots`` is the job file's folder) and a server must be in both
        ``allowed_endpoints``. So the result refuses exactly what either policy refuses.

        Args:
            other: The second policy.
            job_mode: The ``mode`` of the job the result is for (the ceilings depend on it).
            base_dir: The job file's folder (what an unset ``data_roots`` stands for).

        Returns:
            The combined policy (its ``source`` names both files).

        Raises:
            ConfigurationError: If no policy honours both: no backend both allow (no isolated
                one, in cloud mode), different pinned backends or different sandbox images.
        """
        mode = "cloud" if "cloud" in (self.mode, other.mode, check_mode(job_mode, "mode")) else "self_hosted"
        source = ", ".join(s for s in (self.source, other.source) if s) or None
        where = f"the operator's policies ({source})" if source else "the operator's policies"
        allowed = tuple(
            name
            for name in self.allowed_backends
            if name in other.allowed_backends and (mode == "self_hosted" or name != "none")
        )
        pins = sorted({p for p in (self.pinned_backend, other.pinned_backend) if p is not None})
        images = sorted({i for i in (self.docker_image, other.docker_image) if i is not None})
        conflict = (
            f"allow no {'isolated ' if mode == 'cloud' else ''}backend in common "
            f"({list(self.allowed_backends)} and {list(other.allowed_backends)}, in {mode} mode)"
            if not allowed
            else f"pin different backends ({', '.join(pins)})"
            if len(pins) > 1
            else f"name different sandbox images ({', '.join(images)})"
            if len(images) > 1
            else ""
        )
        if conflict:
            raise ConfigurationError(
                f"{where} {conflict}: no run can honour both", details={"setting": "sandbox", "mode": mode}
            )
        mine, theirs = self.ceilings(job_mode), other.ceilings(job_mode)
        return OperatorPolicy(
            allowed_backends=allowed,
            pinned_backend=pins[0] if pins else None,
            max_cpu=_lower(mine.cpu, theirs.cpu),
            max_memory_bytes=_lower(mine.memory_bytes, theirs.memory_bytes),
            max_timeout_s=_lower(mine.timeout_s, theirs.timeout_s),
            max_pids=_lower(mine.pids, theirs.pids),
            allow_network=mine.network and theirs.network,
            docker_image=images[0] if images else None,
            max_disk_bytes=_lower(mine.disk_bytes, theirs.disk_bytes),
            mode=mode,
            allow_read_only_paths=all(
                policy._allows_read_only_paths(policy.effective_mode(job_mode)) for policy in (self, other)
            ),
            allow_source_builds=self.allows_source_builds(job_mode) and other.allows_source_builds(job_mode),
            data_roots=_common_roots([p._roots_for(job_mode, base_dir) for p in (self, other)], base_dir),
            allowed_endpoints=_common_endpoints([p._endpoints_for(job_mode) for p in (self, other)]),
            source=source,
        )

    def _roots_for(self, job_mode: str, base_dir: Path | None) -> tuple[Path, ...] | None:
        if self.effective_mode(job_mode) != "cloud":
            return None
        if self.data_roots is not None:
            return self.data_roots
        return (base_dir,) if base_dir is not None else None

    def _endpoints_for(self, job_mode: str) -> tuple[str, ...] | None:
        if self.effective_mode(job_mode) != "cloud":
            return None
        return self.allowed_endpoints or ()

    def _allows_read_only_paths(self, mode: str) -> bool:
        return (mode != "cloud") if self.allow_read_only_paths is None else self.allow_read_only_paths

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
