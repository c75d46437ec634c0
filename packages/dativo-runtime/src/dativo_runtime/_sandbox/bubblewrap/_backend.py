"""The ``process`` backend: each plugin run in a bubblewrap (``bwrap``) sandbox.

The worker runs with new user, pid, network, ipc, uts, cgroup and mount namespaces, as
uid/gid 65534 (on the host: :data:`._userns.SANDBOX_HOST_ID` when the runtime is root, the
runtime's own user otherwise; see :mod:`._userns`), in a new session, dying with the
runtime. Its filesystem is an empty, read-only root with read-only bind mounts of ``/usr``
(and the ``/bin``, ``/lib`` links), a few files of ``/etc`` (dynamic linker cache, time
zone, CA certificates, a synthetic ``passwd``), the Python installation and the
directories holding the SDK, pyarrow and the runtime, and the plugin's own folder; ``/tmp``
and ``/dev/shm`` are size-limited tmpfs and a writer's output folder the only writable bind
mount. A job with network egress gets a network namespace of its own behind slirp4netns
(:mod:`._egress`), never the host's. The seccomp filter of :mod:`._seccomp`, rlimits
applied by the worker before the plugin is imported, a cgroup where one can be created
(:mod:`._cgroups`) and the host's wall-clock deadline bound it.

One module, past the usual size: the command line, the start (descriptors, the start gate
of :mod:`._userns`) and the transport share the sandbox's layout, and change together.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from dativo_plugin_sdk import Column, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import ReaderSession, SandboxLimits, WriterSession
from dativo_runtime._sandbox._cgroups import SandboxCgroup, cgroup_support, join_cgroup_command
from dativo_runtime._sandbox._limits import cpu_seconds_budget, effective_limits
from dativo_runtime._sandbox._seccomp import bpf_program
from dativo_runtime._sandbox.bubblewrap._egress import (
    SlirpEgress,
    egress_availability,
    guest_hosts,
    guest_resolv_conf,
    missing_egress_error,
    netns_command,
)
from dativo_runtime._sandbox.bubblewrap._userns import (
    SANDBOX_HOST_ID,
    SETPRIV_CAPS,
    StartGate,
    missing_tools,
    setpriv_command,
    unreachable_paths,
)
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._remote import WorkerSandbox, open_remote_session
from dativo_runtime._sandbox.host._transport import ExitStatus, StderrTail, WorkerTransport
from dativo_runtime._worker._protocol import WORKER_MODULE

__all__ = ["SANDBOX_GID", "SANDBOX_HOST_ID", "SANDBOX_UID", "BubblewrapSandbox"]

SANDBOX_UID = 65534
SANDBOX_GID = 65534
HOSTNAME = "dativo-sandbox"
TMPFS_BYTES = 256 * 1024 * 1024
"""Size of the sandbox's ``/tmp`` (a tmpfs, counted against the memory cgroup where there is one),
or the disk limit if smaller."""
SHM_BYTES = 64 * 1024 * 1024
"""Size of the sandbox's ``/dev/shm`` (a tmpfs, like Docker's default ``--shm-size``)."""
ADDRESS_SPACE_HEADROOM = 1 << 30
"""Added to the memory limit for ``RLIMIT_AS`` when no memory cgroup exists: shared
libraries (pyarrow, numpy) map far more address space than they use."""
OPEN_FILES = 1024
START_TIMEOUT_S = 20.0
"""How long setting up a sandbox's namespaces (id maps, egress) may take before it fails."""
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
_NETWORK_ETC_FILES = ("/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf")
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
_ROOT_NEEDS = ("--userns-block-fd", "--info-fd", "--perms", "--cap-add")


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


@dataclass(frozen=True)
class SandboxFiles:
    """Descriptors bubblewrap reads the sandbox's synthetic files from (memfds; no secrets).

    Args:
        seccomp: The BPF program of :func:`._seccomp.bpf_program`.
        passwd: ``/etc/passwd``.
        group: ``/etc/group``.
        resolv_conf: ``/etc/resolv.conf`` (with egress only).
        hosts: ``/etc/hosts`` (with egress only).
    """

    seccomp: int
    passwd: int
    group: int
    resolv_conf: int | None = None
    hosts: int | None = None

    @classmethod
    def create(cls, *, network: bool) -> SandboxFiles:
        """Write the files into new memfds (the caller closes them, see :meth:`fds`)."""
        return cls(
            seccomp=_memfd("dativo-seccomp", bpf_program()),
            passwd=_memfd("dativo-passwd", _PASSWD.encode()),
            group=_memfd("dativo-group", _GROUP.encode()),
            resolv_conf=_memfd("dativo-resolv", guest_resolv_conf()) if network else None,
            hosts=_memfd("dativo-hosts", guest_hosts(HOSTNAME)) if network else None,
        )

    def fds(self) -> list[int]:
        """Every descriptor, for ``pass_fds`` and closing."""
        values = (self.seccomp, self.passwd, self.group, self.resolv_conf, self.hosts)
        return [fd for fd in values if fd is not None]


class _ProcessTransport(WorkerTransport):
    """A bwrap process: pipes to its stdin/stdout, a thread draining stderr, its egress if any."""

    def __init__(self, process: subprocess.Popen[bytes], cgroup: SandboxCgroup | None) -> None:
        self.process = process
        self.cgroup = cgroup
        self.egress: SlirpEgress | None = None
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
        if self.egress is not None:
            self.egress.stop()

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
        if self.egress is not None:
            self.egress.stop()
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None


class _ArgvBuilder:
    """Collects bwrap options; creates each bind mount's parent folders searchable by everyone.

    bubblewrap 0.8 creates missing parents of a bind mount with mode 0700, owned by the
    user that sets the sandbox up (the host's root): the plugin's unprivileged user could
    not reach ``/root/.pyenv/...`` or a folder under pytest's temporary directory.
    """

    def __init__(self, argv: list[str], options: frozenset[str]) -> None:
        self.argv = argv
        self.perms = "--perms" in options
        self._made: set[Path] = {Path("/")}

    def add(self, *args: str) -> None:
        self.argv.extend(args)

    def folder(self, path: Path) -> None:
        """Create ``path`` (and its parents) with mode 0755 unless done already."""
        if path in self._made:
            return
        if self.perms:
            self.argv += ["--perms", "0755", "--dir", str(path)]
        self._made.update([path, *path.parents])

    def bind(self, option: str, source: str, dest: str) -> None:
        self.folder(Path(dest).parent)
        self.argv += [option, source, dest]

    def data(self, fd: int, dest: str) -> None:
        """Bind a memfd read-only at ``dest``, readable by the plugin's user."""
        self.folder(Path(dest).parent)
        if self.perms:
            self.argv += ["--perms", "0444"]
        self.argv += ["--ro-bind-data", str(fd), dest]

    def tmpfs(self, dest: str, size: int, options: frozenset[str]) -> None:
        if self.perms:
            self.argv += ["--perms", "1777"]
        if "--size" in options:
            self.argv += ["--size", str(size)]
        self.argv += ["--tmpfs", dest]


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
    ) -> list[str]:
        """Return the command line for one worker (no secrets: config goes over stdin)."""
        program = [sys.executable, "-I", "-B", "-m", WORKER_MODULE]
        return self._argv(
            limits, files=files, gate=gate, plugin_dir=ref.plugin_dir, output_dir=output_dir, program=program
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
    ) -> list[str]:
        _, options = _bwrap_features(self.bwrap)
        map_ids = gate is not None and gate.map_ids
        argv = netns_command(as_root=os.geteuid() == 0) if limits.network else []
        argv += [self.bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts"]
        argv += ["--unshare-cgroup-try"]
        if not limits.network:
            argv.append("--unshare-net")  # with egress, the namespace comes from netns_command
        argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if map_ids:
            for cap in SETPRIV_CAPS:
                argv += ["--cap-add", cap]
        if gate is not None:
            argv += gate.bwrap_options()
        argv += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", HOSTNAME]
        if not map_ids and "--disable-userns" in options:
            argv.append("--disable-userns")  # a root runtime sets the same limit itself (see _userns)
        argv.append("--clearenv")
        for key, value in _WORKER_ENV.items():
            argv += ["--setenv", key, value]
        build = _ArgvBuilder(argv, options)
        build.folder(Path("/etc"))
        build.bind("--ro-bind", "/usr", "/usr")
        for link in _ROOT_LINKS:
            path = Path(link)
            if path.is_symlink():
                build.add("--symlink", os.readlink(path), link)
            elif path.is_dir():
                build.bind("--ro-bind", link, link)
        for item in list(_ETC_FILES) + (list(_NETWORK_ETC_FILES) if limits.network else []):
            build.bind("--ro-bind-try", item, item)
        build.data(files.passwd, "/etc/passwd")
        build.data(files.group, "/etc/group")
        if files.resolv_conf is not None:
            build.data(files.resolv_conf, "/etc/resolv.conf")
        if files.hosts is not None:
            build.data(files.hosts, "/etc/hosts")
        build.add("--proc", "/proc", "--dev", "/dev")
        build.tmpfs("/dev/shm", SHM_BYTES, options)
        build.tmpfs("/tmp", min(TMPFS_BYTES, limits.disk_bytes or TMPFS_BYTES), options)
        for path in _python_paths() if python else []:
            build.bind("--ro-bind", str(path), str(path))
        if plugin_dir is not None:
            build.bind("--ro-bind", str(plugin_dir), str(plugin_dir))
        if output_dir is not None:
            build.bind("--bind", str(output_dir), str(output_dir))
        build.add("--remount-ro", "/", "--chdir", "/tmp", "--seccomp", str(files.seccomp), "--")
        if map_ids:
            argv += setpriv_command(SANDBOX_UID, SANDBOX_GID)
        return argv + program

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
        if limits.network:
            missing = missing_egress_error(ref.ref)
            if missing is not None:
                raise missing
        if ref.plugin_dir is not None and not ref.plugin_dir.is_dir():
            raise SandboxError(
                f"plugin folder {str(ref.plugin_dir)!r} of {ref.ref!r} does not exist",
                details={"reason": "startup_failed", "backend": self.name},
            )
        as_root = os.geteuid() == 0
        if as_root:
            self._check_reachable(ref)
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
        rlimits: dict[str, Any] = {
            "cpu": [cpu_seconds, cpu_seconds + 1],
            "nofile": OPEN_FILES,
            "nproc": limits.pids,
            "core": 0,
        }
        if cgroup is None or not cgroup.memory_limited:
            rlimits["as"] = limits.memory_bytes + ADDRESS_SPACE_HEADROOM
        if limits.disk_bytes:
            rlimits["fsize"] = limits.disk_bytes  # the largest file; the host's quota bounds the total
        files = SandboxFiles.create(network=limits.network)
        gate = StartGate(map_ids=as_root, network=limits.network)
        try:
            argv = self.command(ref, limits, files=files, gate=gate, output_dir=output_dir)
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
        transport = _ProcessTransport(process, cgroup)
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
        return open_remote_session(client, role=role, config=config, rlimits=rlimits, schema=schema)

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

    def _check_reachable(self, ref: PluginRef) -> None:
        """Refuse to start when the plugin's user could not even run Python (root runtime only)."""
        blocked = unreachable_paths(_python_paths(), host_id=self.host_id)
        if blocked:
            raise SandboxError(
                f"the process sandbox cannot run plugin {ref.ref!r}: plugins run as the unprivileged "
                f"host user {self.host_id}, which cannot read {', '.join(blocked)}; make the Python "
                "installation readable by others (chmod o+rx on its folders, o+r on its files)",
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
    version, options = _bwrap_features(bwrap)
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
