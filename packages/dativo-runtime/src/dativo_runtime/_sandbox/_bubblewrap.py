"""The ``process`` backend: each plugin run in a bubblewrap (``bwrap``) sandbox.

The worker runs with new user, pid, network, ipc, uts, cgroup and mount namespaces, as
uid/gid 65534, in a new session, dying with the runtime. Its filesystem is an empty,
read-only root with read-only bind mounts of ``/usr`` (and the ``/bin``, ``/lib``
links), a few files of ``/etc`` (dynamic linker cache, time zone, CA certificates, a
synthetic ``passwd``), the Python installation and the directories holding the SDK,
pyarrow and the runtime, and the plugin's own folder; ``/tmp`` is a size-limited tmpfs
and a writer's output folder the only writable bind mount. The seccomp filter of
:mod:`._seccomp`, rlimits applied by the worker before the plugin is imported, a cgroup
where one can be created (:mod:`._cgroups`) and the host's wall-clock deadline bound it.
"""

from __future__ import annotations

import fcntl
import functools
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

from dativo_plugin_sdk import Column, SandboxError
from dativo_runtime._plugin_ref import PluginRef

from ._base import ReaderSession, SandboxLimits, WriterSession
from ._cgroups import SandboxCgroup, cgroup_support, join_cgroup_command
from ._protocol import WORKER_MODULE
from ._remote import (
    ExitStatus,
    StderrTail,
    WorkerClient,
    WorkerSandbox,
    WorkerTransport,
    cpu_seconds_budget,
    effective_limits,
    open_remote_session,
)
from ._seccomp import bpf_program

__all__ = ["SANDBOX_GID", "SANDBOX_UID", "BubblewrapSandbox"]

SANDBOX_UID = 65534
SANDBOX_GID = 65534
TMPFS_BYTES = 256 * 1024 * 1024
"""Size of the sandbox's ``/tmp`` (a tmpfs, counted against the memory cgroup where there is one)."""
ADDRESS_SPACE_HEADROOM = 1 << 30
"""Added to the memory limit for ``RLIMIT_AS`` when no memory cgroup exists: shared
libraries (pyarrow, numpy) map far more address space than they use."""
OPEN_FILES = 1024
_BWRAP_OWN_PROCESSES = 2  # bwrap's monitor and its pid-1 reaper count against the pids cap.

_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/mime.types",
)
_NETWORK_ETC_FILES = (
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
)
_ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_WORKER_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
_PASSWD = f"nobody:x:{SANDBOX_UID}:{SANDBOX_GID}:nobody:/tmp:/usr/sbin/nologin\n"
_GROUP = f"nogroup:x:{SANDBOX_GID}:\n"


@functools.lru_cache(maxsize=1)
def _bwrap_features(bwrap: str) -> tuple[str, frozenset[str]]:
    """Return bwrap's version and the options its ``--help`` lists."""
    try:
        version = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        help_text = subprocess.run(
            [bwrap, "--help"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "", frozenset()
    return version.strip(), frozenset(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, re.MULTILINE))


def _module_root(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = __import__(module_name)
        except ImportError:
            return None
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent.parent if file else None


def _python_paths() -> list[Path]:
    """Directories the worker's Python needs: the installation and where the worker's imports live."""
    candidates = [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}]
    for name in ("dativo_plugin_sdk", "dativo_runtime", "pyarrow", "packaging"):
        root = _module_root(name)
        if root is not None:
            candidates.append(root)
    executable = Path(sys.executable)
    candidates.append(executable.resolve().parent)
    paths: list[Path] = []
    for candidate in candidates:
        for path in {candidate, candidate.resolve()}:
            if path.is_dir() and path not in paths:
                paths.append(path)
    usr = Path("/usr")
    kept = [p for p in paths if not (p == usr or usr in p.parents)]
    return sorted(p for p in kept if not any(other in p.parents for other in kept))


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)  # inheritable only through pass_fds
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


PIPE_BYTES = 1 << 20
"""Size asked for the worker's protocol pipes: a whole batch fits, so neither side waits on the other."""


def _enlarge_pipe(fd: int) -> None:
    """Grow a pipe to :data:`PIPE_BYTES` (Linux ``F_SETPIPE_SZ``); keep the default where refused."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setpipe is None:
        return
    try:
        fcntl.fcntl(fd, setpipe, PIPE_BYTES)
    except OSError:
        pass  # Above /proc/sys/fs/pipe-max-size or the user's pipe quota: the default 64 KiB works too.


class _ProcessTransport(WorkerTransport):
    """A bwrap process: pipes to its stdin/stdout, a thread draining stderr."""

    def __init__(self, process: subprocess.Popen[bytes], cgroup: SandboxCgroup | None) -> None:
        self.process = process
        self.cgroup = cgroup
        self.stderr = StderrTail()
        assert process.stdin is not None
        assert process.stdout is not None
        assert process.stderr is not None
        for pipe in (process.stdin, process.stdout):
            _enlarge_pipe(pipe.fileno())
        self._stdin = io.BufferedWriter(cast(io.RawIOBase, process.stdin), 1 << 16)
        self._stdout = io.BufferedReader(cast(io.RawIOBase, process.stdout), 1 << 16)
        self._stderr_thread = threading.Thread(
            target=self._drain, args=(process.stderr,), name="dativo-sandbox-stderr", daemon=True
        )
        self._stderr_thread.start()
        self._status: ExitStatus | None = None

    def _drain(self, stream: IO[bytes]) -> None:
        while True:
            try:
                chunk = os.read(stream.fileno(), 65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            self.stderr.feed(chunk)

    def write(self, data: Any) -> None:
        self._stdin.write(data)

    def flush(self) -> None:
        self._stdin.flush()

    def readinto(self, view: memoryview) -> int:
        return self._stdout.readinto(view)

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def wait(self, timeout: float) -> ExitStatus | None:
        if self._status is not None:
            return self._status
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        oom = self.cgroup.oom_killed() if self.cgroup is not None else False
        if code < 0:
            self._status = ExitStatus(exit_code=None, signal=-code, oom_killed=oom)
        else:
            self._status = ExitStatus(exit_code=code, oom_killed=oom)
        return self._status

    def cleanup(self) -> None:
        for stream in (self._stdin, self._stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self._stderr_thread.join(timeout=2.0)
        if self.process.stderr is not None:
            self.process.stderr.close()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None


class BubblewrapSandbox(WorkerSandbox):
    """Runs each plugin in a ``bwrap`` sandbox with one long-lived worker process.

    Args:
        bwrap: The ``bwrap`` executable; found on ``PATH`` by default.
        use_cgroups: Create a per-sandbox cgroup (memory, pids) where the host allows it.
        ceilings: The operator's maximum limits; unset limits default to at most these.
    """

    name = "process"
    isolated = True

    def __init__(
        self, *, bwrap: str | None = None, use_cgroups: bool = True, ceilings: SandboxLimits | None = None
    ) -> None:
        self.bwrap = bwrap or shutil.which("bwrap") or "bwrap"
        self.use_cgroups = use_cgroups
        self.ceilings = ceilings

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Tell whether bubblewrap can create the sandbox's namespaces here, and why not."""
        return _availability(shutil.which("bwrap"))

    def command(
        self,
        ref: PluginRef,
        limits: SandboxLimits,
        *,
        seccomp_fd: int,
        passwd_fd: int,
        group_fd: int,
        output_dir: Path | None = None,
    ) -> list[str]:
        """Return the ``bwrap`` command line for one worker (no secrets: config goes over stdin)."""
        _, options = _bwrap_features(self.bwrap)
        argv = [self.bwrap, "--unshare-all", "--unshare-user"]
        if limits.network:
            argv.append("--share-net")
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        argv += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", "dativo-sandbox"]
        if "--disable-userns" in options:
            argv.append("--disable-userns")
        argv.append("--clearenv")
        for key, value in _WORKER_ENV.items():
            argv += ["--setenv", key, value]
        argv += ["--ro-bind", "/usr", "/usr"]
        for link in _ROOT_LINKS:
            path = Path(link)
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), link]
            elif path.is_dir():
                argv += ["--ro-bind", link, link]
        etc = list(_ETC_FILES) + (list(_NETWORK_ETC_FILES) if limits.network else [])
        for item in etc:
            argv += ["--ro-bind-try", item, item]
        argv += [
            "--ro-bind-data",
            str(passwd_fd),
            "/etc/passwd",
            "--ro-bind-data",
            str(group_fd),
            "/etc/group",
        ]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        if "--size" in options:
            argv += ["--size", str(TMPFS_BYTES)]
        argv += ["--tmpfs", "/tmp"]
        for path in _python_paths():
            argv += ["--ro-bind", str(path), str(path)]
        plugin_dir = ref.plugin_dir
        if plugin_dir is not None:
            argv += ["--ro-bind", str(plugin_dir), str(plugin_dir)]
        if output_dir is not None:
            argv += ["--bind", str(output_dir), str(output_dir)]
        argv += ["--remount-ro", "/", "--chdir", "/tmp", "--seccomp", str(seccomp_fd)]
        argv += ["--", sys.executable, "-I", "-B", "-m", WORKER_MODULE]
        return argv

    def _open(
        self,
        role: str,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits,
        schema: Sequence[Column] | None = None,
        output_dir: Path | None = None,
    ) -> ReaderSession | WriterSession:
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
        if ref.plugin_dir is not None and not ref.plugin_dir.is_dir():
            raise SandboxError(
                f"plugin folder {str(ref.plugin_dir)!r} of {ref.ref!r} does not exist",
                details={"reason": "startup_failed", "backend": self.name},
            )
        if output_dir is not None:
            output_dir = Path(output_dir).resolve()
            output_dir.mkdir(parents=True, exist_ok=True)
        cgroup = (
            SandboxCgroup.create(memory_bytes=limits.memory_bytes, pids=limits.pids + _BWRAP_OWN_PROCESSES)
            if self.use_cgroups
            else None
        )
        cpu_seconds = cpu_seconds_budget(limits)
        rlimits: dict[str, Any] = {
            "cpu": [cpu_seconds, cpu_seconds + 1],
            "nofile": OPEN_FILES,
            "nproc": limits.pids,
            "core": 0,
        }
        if cgroup is None or not cgroup.memory_limited:
            rlimits["as"] = limits.memory_bytes + ADDRESS_SPACE_HEADROOM
        fds = [
            _memfd("dativo-seccomp", bpf_program()),
            _memfd("dativo-passwd", _PASSWD.encode()),
            _memfd("dativo-group", _GROUP.encode()),
        ]
        try:
            argv = self.command(
                ref, limits, seccomp_fd=fds[0], passwd_fd=fds[1], group_fd=fds[2], output_dir=output_dir
            )
            argv = join_cgroup_command(cgroup.procs_files if cgroup else [], argv)
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                pass_fds=fds,
                start_new_session=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                cwd="/",
            )
        except OSError as exc:
            if cgroup is not None:
                cgroup.remove()
            raise SandboxError(
                f"could not start bubblewrap for plugin {ref.ref!r}: {exc}",
                details={"reason": "startup_failed", "backend": self.name},
            ) from exc
        finally:
            for fd in fds:
                os.close(fd)
        transport = _ProcessTransport(process, cgroup)
        client = WorkerClient(
            transport,
            backend=self.name,
            ref=ref,
            limits=limits,
            cpu_seconds=cpu_seconds,
            started_at=started_at,
        )
        return open_remote_session(client, role=role, config=config, rlimits=rlimits, schema=schema)


@functools.lru_cache(maxsize=4)
def _availability(bwrap: str | None) -> tuple[bool, str]:
    if bwrap is None:
        return False, "bwrap is not installed (install the 'bubblewrap' package: apt-get install bubblewrap)"
    try:
        bpf_program()
    except ValueError as exc:
        return False, str(exc)
    version, options = _bwrap_features(bwrap)
    argv = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_GID),
    ]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in _ROOT_LINKS:
        if Path(link).is_symlink():
            argv += ["--symlink", os.readlink(link), link]
        elif Path(link).is_dir():
            argv += ["--ro-bind", link, link]
    argv += ["--proc", "/proc", "--dev", "/dev", "--", "/bin/sh", "-c", "exit 0"]
    try:
        probe = subprocess.run(
            argv, capture_output=True, text=True, timeout=20, env={"PATH": "/usr/bin:/bin"}, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"running {bwrap} failed: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
        hint = ""
        if "namespace" in detail.lower() or "permission" in detail.lower():
            hint = (
                "; unprivileged user namespaces look disabled: enable them (sysctl "
                "kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0, or on Ubuntu "
                "kernel.apparmor_restrict_unprivileged_userns=0) or run the runtime as root"
            )
        return False, f"bubblewrap cannot create the sandbox namespaces: {detail}{hint}"
    _, cgroup_note = cgroup_support()
    size_note = "" if "--size" in options else "; this bwrap has no --size, so /tmp is bounded only by memory"
    return True, f"{version or 'bubblewrap'}; {cgroup_note}{size_note}"
