"""The ``process`` backend: each plugin run in a bubblewrap (``bwrap``) sandbox.

The worker runs with new user, pid, network, ipc, uts, cgroup and mount namespaces, as
uid/gid 65534 (on the host: :data:`._userns.SANDBOX_HOST_ID` when the runtime is root, the
runtime's own user otherwise; see :mod:`._userns`), in a new session, dying with the
runtime. Its filesystem is an empty, read-only root with read-only bind mounts of ``/usr``
(and the ``/bin``, ``/lib`` links), a few files of ``/etc`` (dynamic linker cache, time
zone, CA certificates, a synthetic ``passwd``), the Python installation with only the
worker's distributions in its ``site-packages`` (the SDK, the runtime, pyarrow, packaging),
the plugin's own folder, its environment and the job's read-only paths; ``/tmp``
and ``/dev/shm`` are size-limited tmpfs and a writer's output folder the only writable bind
mount. A job with network egress gets a network namespace of its own behind slirp4netns
(:mod:`._egress`), never the host's. The seccomp filter of :mod:`._seccomp`, rlimits
applied by the worker before the plugin is imported, a cgroup where one can be created
(:mod:`._cgroups`) and the host's wall-clock deadline bound it.

The sandbox's filesystem and command line are :mod:`._layout`, the worker's pipes
:mod:`._process`; this module starts a worker and tells whether bubblewrap works here.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import ReaderSession, SandboxLimits, SessionMounts, WriterSession
from dativo_runtime._sandbox._cgroups import SandboxCgroup, cgroup_support, join_cgroup_command
from dativo_runtime._sandbox._limits import cpu_seconds_budget, effective_limits
from dativo_runtime._sandbox._worker_environment import OPEN_FILES, SANDBOX_GID, SANDBOX_UID, worker_rlimits
from dativo_runtime._sandbox.bubblewrap._egress import egress_availability, missing_egress_error
from dativo_runtime._sandbox.bubblewrap._layout import (
    SandboxFiles,
    bwrap_features,
    python_paths,
    sandbox_argv,
)
from dativo_runtime._sandbox.bubblewrap._process import ProcessTransport
from dativo_runtime._sandbox.bubblewrap._userns import (
    SANDBOX_HOST_ID,
    StartGate,
    missing_tools,
    unreachable_paths,
)
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._remote import InspectedPlugin, WorkerSandbox, open_remote_session
from dativo_runtime._sandbox.seccomp import bpf_program
from dativo_runtime._worker._protocol import WORKER_MODULE

__all__ = ["SANDBOX_GID", "SANDBOX_HOST_ID", "SANDBOX_UID", "BubblewrapSandbox"]

ADDRESS_SPACE_HEADROOM = 1 << 30
"""Added to the memory limit for ``RLIMIT_AS`` when no memory cgroup exists: shared
libraries (pyarrow, numpy) map far more address space than they use."""
START_TIMEOUT_S = 20.0
"""How long setting up a sandbox's namespaces (id maps, egress) may take before it fails."""
_BWRAP_OWN_PROCESSES = 2  # bwrap's monitor and its pid-1 reaper count against the pids cap.
_ROOT_NEEDS = ("--userns-block-fd", "--info-fd", "--perms", "--cap-add")


class BubblewrapSandbox(WorkerSandbox):
    """Runs each plugin in a ``bwrap`` sandbox with one long-lived worker process.

    Args:
        bwrap: The ``bwrap`` executable; found on ``PATH`` by default.
        use_cgroups: Create a per-sandbox cgroup (memory, pids) where the host allows it.
        ceilings: The operator's maximum limits; unset limits default to at most these.
        host_id: The unprivileged host uid and gid plugins run as when the runtime is root
            (:data:`SANDBOX_HOST_ID` by default); unused otherwise, when plugins run as the
            runtime's own user.

    Raises:
        ValueError: If ``host_id`` is root's or not a valid id.
    """

    name = "process"
    isolated = True

    def __init__(
        self,
        *,
        bwrap: str | None = None,
        use_cgroups: bool = True,
        ceilings: SandboxLimits | None = None,
        host_id: int = SANDBOX_HOST_ID,
    ) -> None:
        if isinstance(host_id, bool) or not isinstance(host_id, int) or not 0 < host_id < 2**32 - 1:
            raise ValueError(f"host_id must be an unprivileged uid (1 to 4294967294), not {host_id!r}")
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"
        self.use_cgroups = use_cgroups
        self.ceilings = ceilings
        self.host_id = host_id

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Tell whether bubblewrap can create the sandbox's namespaces here, and why not."""
        return _availability(shutil.which("bwrap"))

    def sandbox_host_ids(self) -> tuple[int, int]:
        """Return the host uid and gid the plugin runs as: :attr:`host_id`, or the runtime's own."""
        if os.geteuid() == 0:
            return self.host_id, self.host_id
        return os.geteuid(), os.getegid()

    def command(
        self,
        ref: PluginRef,
        limits: SandboxLimits,
        *,
        files: SandboxFiles,
        gate: StartGate | None = None,
        output_dir: Path | None = None,
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> list[str]:
        """Return the command line for one worker (no secrets: config goes over stdin)."""
        program = [sys.executable, "-I", "-B", "-m", WORKER_MODULE]
        return self._argv(
            limits,
            files=files,
            gate=gate,
            plugin_dir=ref.plugin_dir,
            output_dir=output_dir,
            program=program,
            mounts=mounts,
        )

    def _argv(
        self,
        limits: SandboxLimits,
        *,
        files: SandboxFiles,
        gate: StartGate | None,
        program: list[str],
        plugin_dir: Path | None = None,
        output_dir: Path | None = None,
        python: bool = True,
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> list[str]:
        return sandbox_argv(
            self.bwrap,
            limits,
            files=files,
            gate=gate,
            program=program,
            plugin_dir=plugin_dir,
            output_dir=output_dir,
            python=python,
            mounts=mounts,
        )

    def _spawn(
        self,
        argv: list[str],
        *,
        files: SandboxFiles,
        gate: StartGate,
        cgroup: SandboxCgroup | None,
    ) -> subprocess.Popen[bytes]:
        """Start bwrap (root: with no supplementary group, so the sandbox inherits none)."""
        argv = join_cgroup_command(cgroup.procs_files if cgroup else [], argv)
        extra: dict[str, Any] = {"extra_groups": []} if os.geteuid() == 0 else {}
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            pass_fds=[*files.fds(), *gate.child_fds()],
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            **extra,
        )
        gate.started()
        return process

    def _open(
        self,
        role: str,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits,
        schema: Sequence[Column] | None = None,
        output_dir: Path | None = None,
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> ReaderSession | WriterSession | InspectedPlugin:
        available, why = self.availability() if self.bwrap == shutil.which("bwrap") else (True, "")
        if not available:
            raise SandboxError(
                f"the process sandbox cannot run plugin {ref.ref!r}: {why}",
                details={"reason": "startup_failed", "backend": self.name},
            )
        started_at = time.monotonic()
        limits = effective_limits(limits, self.ceilings)
        assert limits.memory_bytes is not None
        assert limits.pids is not None
        if limits.network:
            missing = missing_egress_error(ref.ref)
            if missing is not None:
                raise missing
        if ref.plugin_dir is not None and not ref.plugin_dir.is_dir():
            raise SandboxError(
                f"plugin folder {str(ref.plugin_dir)!r} of {ref.ref!r} does not exist",
                details={"reason": "startup_failed", "backend": self.name},
            )
        mounts = mounts.resolved(ref.ref, self.name)
        as_root = os.geteuid() == 0
        if as_root:
            self._check_reachable(ref, mounts)
        if output_dir is not None:
            output_dir = Path(output_dir).resolve()
            output_dir.mkdir(parents=True, exist_ok=True)
            if as_root:
                self._hand_over(output_dir, ref)
        cgroup = (
            SandboxCgroup.create(memory_bytes=limits.memory_bytes, pids=limits.pids + _BWRAP_OWN_PROCESSES)
            if self.use_cgroups
            else None
        )
        cpu_seconds = cpu_seconds_budget(limits)
        rlimits = {**worker_rlimits(cpu_seconds), "nofile": OPEN_FILES, "nproc": limits.pids}
        if cgroup is None or not cgroup.memory_limited:
            rlimits["as"] = limits.memory_bytes + ADDRESS_SPACE_HEADROOM
        if limits.disk_bytes:
            rlimits["fsize"] = limits.disk_bytes  # the largest file; the host's quota bounds the total
        files = SandboxFiles.create(network=limits.network)
        gate = StartGate(map_ids=as_root, network=limits.network)
        try:
            argv = self.command(ref, limits, files=files, gate=gate, output_dir=output_dir, mounts=mounts)
            process = self._spawn(argv, files=files, gate=gate, cgroup=cgroup)
        except OSError as exc:
            gate.close()
            if cgroup is not None:
                cgroup.remove()
            raise SandboxError(
                f"could not start bubblewrap for plugin {ref.ref!r}: {exc}",
                details={"reason": "startup_failed", "backend": self.name},
            ) from exc
        finally:
            for fd in files.fds():
                os.close(fd)
        transport = ProcessTransport(process, cgroup)
        try:
            transport.egress = gate.open(
                process.pid,
                host_id=self.host_id,
                sandbox_ids=(SANDBOX_UID, SANDBOX_GID),
                ref=ref.ref,
                deadline=started_at + START_TIMEOUT_S,
            )
        except (OSError, SandboxError) as exc:
            transport.kill()
            transport.wait(5.0)
            transport.cleanup()
            if isinstance(exc, SandboxError):
                raise
            tail = transport.stderr.lines()[-3:]
            raise SandboxError(
                f"the process sandbox could not start plugin {ref.ref!r}: {exc}"
                + (f"; bubblewrap said: {' / '.join(tail)}" if tail else ""),
                details={"reason": "startup_failed", "backend": self.name, "stderr_tail": tail},
            ) from exc
        finally:
            gate.close()
        client = WorkerClient(
            transport,
            backend=self.name,
            ref=ref,
            limits=limits,
            cpu_seconds=cpu_seconds,
            started_at=started_at,
        )
        return open_remote_session(
            client, role=role, config=config, rlimits=rlimits, schema=schema, mounts=mounts
        )

    def _hand_over(self, folder: Path, ref: PluginRef) -> None:
        """Give the writer's folder (not what it holds) to the plugin's host user, as under Docker."""
        try:
            os.chown(folder, self.host_id, self.host_id)
        except OSError as exc:
            raise SandboxError(
                f"the process sandbox cannot run plugin {ref.ref!r}: its output folder {str(folder)!r} "
                f"cannot be given to the sandbox's host user {self.host_id}: {exc.strerror}",
                details={"reason": "startup_failed", "backend": self.name, "output_dir": str(folder)},
            ) from exc

    def _check_reachable(self, ref: PluginRef, mounts: SessionMounts) -> None:
        """Refuse to start when the plugin's user could not even run Python (root runtime only)."""
        blocked = unreachable_paths(python_paths(), host_id=self.host_id)
        what = "the Python installation"
        if not blocked:
            environment = [mounts.environment] if mounts.environment is not None else []
            blocked = unreachable_paths([*environment, *mounts.packages], host_id=self.host_id)
            what = "the plugin's environment"
        if not blocked:
            blocked = unreachable_paths(mounts.read_only_paths, host_id=self.host_id)
            what = "the job's sandbox.read_only_paths"
        if blocked:
            raise SandboxError(
                f"the process sandbox cannot run plugin {ref.ref!r}: plugins run as the unprivileged "
                f"host user {self.host_id}, which cannot read {', '.join(blocked)}; make {what} "
                "readable by others (chmod o+rx on its folders, o+r on its files)",
                details={"reason": "startup_failed", "backend": self.name, "paths": blocked},
            )


@functools.lru_cache(maxsize=4)
def _availability(bwrap: str | None) -> tuple[bool, str]:
    if bwrap is None:
        return False, "bwrap is not installed (install the 'bubblewrap' package: apt-get install bubblewrap)"
    try:
        bpf_program()
    except ValueError as exc:
        return False, str(exc)
    version, options = bwrap_features(bwrap)
    as_root = os.geteuid() == 0
    if as_root:
        lacking = [option for option in _ROOT_NEEDS if option not in options]
        if lacking:
            return False, (
                f"{version or bwrap} lacks {', '.join(lacking)}, which a root runtime needs to run "
                "plugins as an unprivileged host user: install bubblewrap 0.5 or later"
            )
        tools = missing_tools()
        if tools:
            return False, f"{', '.join(tools)} missing: install util-linux"
    problem = _probe(bwrap, as_root=as_root)
    if problem is not None:
        hint = ""
        if "namespace" in problem.lower() or "permission" in problem.lower():
            hint = (
                "; unprivileged user namespaces look disabled: enable them (sysctl "
                "kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, or on Ubuntu "
                "kernel.apparmor_restrict_unprivileged_userns=0) or run the runtime as root"
            )
        return False, f"bubblewrap cannot create the sandbox namespaces: {problem}{hint}"
    _, cgroup_note = cgroup_support()
    size_note = "" if "--size" in options else "; this bwrap has no --size, so /tmp is bounded only by memory"
    user_note = f"; plugins run as host uid {SANDBOX_HOST_ID}" if as_root else ""
    _, egress_note = egress_availability()
    return True, f"{version or 'bubblewrap'}; {cgroup_note}{size_note}{user_note}; {egress_note}"


def _probe(bwrap: str, *, as_root: bool) -> str | None:
    """Start a sandbox the way a worker is started, running ``/bin/sh -c 'exit 0'``; say what failed."""
    sandbox = BubblewrapSandbox(bwrap=bwrap, use_cgroups=False)
    files = SandboxFiles.create(network=False)
    gate = StartGate(map_ids=as_root, network=False)
    try:
        argv = sandbox._argv(
            SandboxLimits(), files=files, gate=gate, program=["/bin/sh", "-c", "exit 0"], python=False
        )
        process = sandbox._spawn(argv, files=files, gate=gate, cgroup=None)
    except OSError as exc:
        gate.close()
        return f"running {bwrap} failed: {exc}"
    finally:
        for fd in files.fds():
            os.close(fd)
    problem = None
    try:
        gate.open(
            process.pid,
            host_id=SANDBOX_HOST_ID,
            sandbox_ids=(SANDBOX_UID, SANDBOX_GID),
            ref="probe",
            deadline=time.monotonic() + START_TIMEOUT_S,
        )
    except OSError as exc:
        problem = str(exc)
    finally:
        gate.close()
    try:
        _, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    if process.returncode != 0:
        text = stderr.decode("utf-8", "replace").strip()
        problem = text.splitlines()[-1] if text else problem or f"exit {process.returncode}"
    return problem
