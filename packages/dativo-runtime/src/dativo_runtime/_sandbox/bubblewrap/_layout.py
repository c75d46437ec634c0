"""The sandbox's filesystem and command line: what bubblewrap mounts, and the files it synthesises.

An empty, read-only root with read-only bind mounts of ``/usr`` (and the ``/bin``,
``/lib`` links), a few files of ``/etc`` (dynamic linker cache, time zone, CA
certificates, a synthetic ``passwd`` and ``group``; with egress the resolver's files),
the Python installation with its ``site-packages`` hidden but for the worker's own
distributions (:mod:`._python_view`), the plugin's own folder, its environment and the
job's read-only paths (:class:`~dativo_runtime._sandbox._base.SessionMounts`, each at its
host path); ``/tmp`` and ``/dev/shm`` are size-limited tmpfs and a writer's output folder
the only writable bind mount.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from dativo_runtime._sandbox._base import SandboxLimits, SessionMounts
from dativo_runtime._sandbox._worker_environment import (
    SANDBOX_GID,
    SANDBOX_HOSTNAME,
    SANDBOX_UID,
    WORKER_ENV,
    scratch_bytes,
)
from dativo_runtime._sandbox.bubblewrap._egress import guest_hosts, guest_resolv_conf, netns_command
from dativo_runtime._sandbox.bubblewrap._python_view import python_view
from dativo_runtime._sandbox.bubblewrap._userns import SETPRIV_CAPS, StartGate, setpriv_command
from dativo_runtime._sandbox.seccomp import bpf_program

__all__ = ["SHM_BYTES", "SandboxFiles", "bwrap_features", "python_paths", "sandbox_argv"]

SHM_BYTES = 64 * 1024 * 1024
"""Size of the sandbox's ``/dev/shm`` (a tmpfs, like Docker's default ``--shm-size``)."""
_PATH = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
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
_HIDDEN_BYTES = 1 << 20  # a hidden site-packages folder holds only the mount points of what is bound back
_PASSWD = f"nobody:x:{SANDBOX_UID}:{SANDBOX_GID}:nobody:/tmp:/usr/sbin/nologin\n"
_GROUP = f"nogroup:x:{SANDBOX_GID}:\n"


@functools.lru_cache(maxsize=1)
def bwrap_features(bwrap: str) -> tuple[str, frozenset[str]]:
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


def python_paths() -> list[Path]:
    """Folders the sandbox's user must be able to read: the Python installation and the worker's sources."""
    return python_view().readable_paths()


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, 0)  # inheritable only through pass_fds
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


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
            hosts=_memfd("dativo-hosts", guest_hosts(SANDBOX_HOSTNAME)) if network else None,
        )

    def fds(self) -> list[int]:
        """Every descriptor, for ``pass_fds`` and closing."""
        values = (self.seccomp, self.passwd, self.group, self.resolv_conf, self.hosts)
        return [fd for fd in values if fd is not None]


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

    def tmpfs(self, dest: str, size: int, options: frozenset[str], mode: str = "1777") -> None:
        if self.perms:
            self.argv += ["--perms", mode]
        if "--size" in options:
            self.argv += ["--size", str(size)]
        self.argv += ["--tmpfs", dest]
        self._made.add(Path(dest))


def _bind_python(build: _ArgvBuilder, options: frozenset[str], packages: tuple[Path, ...]) -> None:
    """Bind the Python installation, its site-packages hidden but for the worker's distributions.

    ``packages`` (an installed plugin's own) are bound before the hidden folders become
    read-only: a mount point inside one must be created first.
    """
    view = python_view()
    for path in view.installation:
        build.bind("--ro-bind", str(path), str(path))
    for folder in view.hidden:
        build.tmpfs(str(folder), _HIDDEN_BYTES, options, mode="0755")
    for path in [*view.entries, *view.sources, *packages]:
        build.bind("--ro-bind", str(path), str(path))
    for folder in view.hidden:
        build.add("--remount-ro", str(folder))


def sandbox_argv(
    bwrap: str,
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
    """Return the bwrap command line running ``program`` in the sandbox (no secrets: config goes over stdin).

    Args:
        bwrap: The ``bwrap`` executable.
        limits: The session's effective limits (``network`` and ``disk_bytes`` shape the sandbox).
        files: The synthetic files' descriptors.
        gate: The start gate (id maps, egress) of a root runtime or an egress job, if any.
        program: What to run inside.
        plugin_dir: The plugin's folder, bound read-only.
        output_dir: A writer's folder, bound read-write.
        python: Bind the Python installation and the worker's imports.
        mounts: The plugin's environment, package folders and read-only paths, bound read-only
            at their host paths.

    Returns:
        The argv, starting with ``unshare`` for egress, else ``bwrap``.
    """
    _, options = bwrap_features(bwrap)
    map_ids = gate is not None and gate.map_ids
    argv = netns_command(as_root=os.geteuid() == 0) if limits.network else []
    argv += [bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts"]
    argv += ["--unshare-cgroup-try"]
    if not limits.network:
        argv.append("--unshare-net")  # with egress, the namespace comes from netns_command
    argv += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if map_ids:
        for cap in SETPRIV_CAPS:
            argv += ["--cap-add", cap]
    if gate is not None:
        argv += gate.bwrap_options()
    argv += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--hostname", SANDBOX_HOSTNAME]
    if not map_ids and "--disable-userns" in options:
        argv.append("--disable-userns")  # a root runtime sets the same limit itself (see _userns)
    argv.append("--clearenv")
    for key, value in {**WORKER_ENV, **_PATH}.items():
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
    build.tmpfs("/tmp", scratch_bytes(limits), options)
    if python:
        _bind_python(build, options, mounts.packages)
    if plugin_dir is not None:
        build.bind("--ro-bind", str(plugin_dir), str(plugin_dir))
    extra = [mounts.environment] if mounts.environment is not None else []
    for path in [*extra, *([] if python else mounts.packages), *mounts.read_only_paths]:
        build.bind("--ro-bind", str(path), str(path))
    if output_dir is not None:
        build.bind("--bind", str(output_dir), str(output_dir))
    build.add("--remount-ro", "/", "--chdir", "/tmp", "--seccomp", str(files.seccomp), "--")
    if map_ids:
        argv += setpriv_command(SANDBOX_UID, SANDBOX_GID)
    return argv + program
