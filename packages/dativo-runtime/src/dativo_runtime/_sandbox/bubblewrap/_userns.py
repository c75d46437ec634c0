"""The host's side of a process sandbox's user namespace: which host user the plugin runs as.

bubblewrap started by root maps the sandbox's user to the bubblewrap's own, root: a plugin
would then create files as the host's root (a ``-rwsr-xr-x root`` file in a writer's output
folder) and no ``RLIMIT_NPROC`` would apply. So a root runtime runs plugins as
:data:`SANDBOX_HOST_ID`, an unprivileged host id that no account uses:

1. bubblewrap still starts as root, so that it can bind-mount what only root can reach (a
   Python under ``/root``, 0700 folders), with ``--userns-block-fd`` and ``--info-fd``: it
   reports its child's pid and waits (:class:`StartGate`).
2. The runtime writes the child's ``uid_map``/``gid_map`` itself (:func:`map_sandbox_ids`):
   sandbox id 65534 is host id :data:`SANDBOX_HOST_ID`; sandbox id 0 is the host's root,
   which only bubblewrap's own set-up runs as. It sets ``user.max_user_namespaces`` to 0 in
   that namespace (:func:`disable_user_namespaces`; what ``bwrap --disable-userns`` does,
   which bubblewrap refuses together with ``--userns-block-fd``), attaches the network
   egress if asked (:mod:`._egress`), and lets bubblewrap go on.
3. bubblewrap keeps ``CAP_SETUID``, ``CAP_SETGID`` and ``CAP_SETPCAP`` only to run
   ``setpriv`` (util-linux; :func:`setpriv_command`), which becomes 65534, drops the
   supplementary groups and every capability (bounding, inheritable, ambient), keeps the
   parent-death signal and runs the worker under bubblewrap's seccomp filter and
   ``no_new_privs``. The plugin never runs as, nor can become, the host's root.

A runtime that is not root needs none of this: bubblewrap maps 65534 to the runtime's own,
unprivileged user, as before.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import stat
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from dativo_runtime._sandbox.bubblewrap._egress import SlirpEgress

__all__ = [
    "SANDBOX_HOST_ID",
    "SETPRIV_CAPS",
    "StartGate",
    "disable_user_namespaces",
    "map_sandbox_ids",
    "missing_tools",
    "setpriv_command",
    "unreachable_paths",
]

SANDBOX_HOST_ID = 2_147_483_646
"""Host uid and gid of every plugin a root runtime runs under ``process`` (2**31 - 2): above
every range that Debian, systemd (users, dynamic users, containers) and ``/etc/subuid``
hand out by default, below 2**31 so that no tool misreads it as negative. Use an id that no
account, file or process on the host has; another one can be given to ``BubblewrapSandbox``."""

SETPRIV_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
"""What bubblewrap keeps for ``setpriv`` alone: changing user and group, dropping the bounding set."""

_TOOL_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
_ACL_XATTRS = ("system.posix_acl_access",)


def missing_tools() -> list[str]:
    """Return the util-linux commands a root runtime needs and this host lacks."""
    return [name for name in ("setpriv", "nsenter") if shutil.which(name, path=_TOOL_PATH) is None]


def setpriv_command(uid: int, gid: int) -> list[str]:
    """Return the prefix that turns bubblewrap's set-up identity into the plugin's, with no capability."""
    setpriv = shutil.which("setpriv", path=_TOOL_PATH) or "/usr/bin/setpriv"
    return [
        setpriv,
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--bounding-set=-all",
        "--pdeathsig=keep",  # A change of user clears bubblewrap's --die-with-parent signal.
        "--",
    ]


def map_sandbox_ids(pid: int, *, sandbox_uid: int, sandbox_gid: int, host_id: int) -> None:
    """Write the user namespace of process ``pid``: ``sandbox_uid``/``gid`` is ``host_id``, 0 is root.

    Raises:
        OSError: If the kernel refuses the map (no ``CAP_SETUID`` over ``host_id``, say).
    """
    for name, inside in (("uid_map", sandbox_uid), ("gid_map", sandbox_gid)):
        try:
            with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as handle:
                handle.write(f"0 0 1\n{inside} {host_id} 1\n")
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"the kernel refused to map the sandbox's user to host id {host_id} ({name}: "
                f"{exc.strerror}); give BubblewrapSandbox a host_id this runtime may map, such as "
                "one of its subordinate ids",
            ) from exc


def disable_user_namespaces(pid: int, *, timeout: float) -> None:
    """Set ``user.max_user_namespaces`` to 0 inside the user namespace of process ``pid``.

    The setting is per user namespace and read from the writer's own, so a short-lived
    ``nsenter`` joins that namespace (as its root, the host's) to write it.

    Raises:
        OSError: If ``nsenter`` fails or the kernel refuses the setting.
    """
    nsenter = shutil.which("nsenter", path=_TOOL_PATH) or "nsenter"
    try:
        done = subprocess.run(
            [
                nsenter,
                f"--user=/proc/{pid}/ns/user",
                "--preserve-credentials",
                "--",
                "/bin/sh",
                "-c",
                "echo 0 > /proc/sys/user/max_user_namespaces",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": _TOOL_PATH, "LANG": "C.UTF-8"},
            cwd="/",
            check=False,
        )
    except subprocess.SubprocessError as exc:
        raise OSError(f"nsenter did not finish: {exc}") from exc
    if done.returncode != 0:
        raise OSError(f"could not disable user namespaces in the sandbox: {done.stderr.strip()[-300:]}")


def _grants(info: os.stat_result, uid: int, gid: int, need: int) -> bool:
    if info.st_uid == uid:
        bits = info.st_mode >> 6
    elif info.st_gid == gid:
        bits = info.st_mode >> 3
    else:
        bits = info.st_mode
    return bits & need == need


def unreachable_paths(paths: Iterable[Path], *, host_id: int) -> list[str]:
    """Return those of ``paths`` (bind-mount roots) that host user ``host_id`` cannot read or enter.

    Only the mode bits of each path itself count (the sandbox creates its parents, searchable
    by all); a path with an ACL is assumed to be reachable.
    """
    unreachable = []
    for path in paths:
        try:
            info = path.stat()
            if any(_has_xattr(path, name) for name in _ACL_XATTRS):
                continue
        except OSError:
            continue
        need = 5 if stat.S_ISDIR(info.st_mode) else 4
        if not _grants(info, host_id, host_id, need):
            unreachable.append(f"{path} (mode {stat.filemode(info.st_mode)}, owner uid {info.st_uid})")
    return unreachable


def _has_xattr(path: Path, name: str) -> bool:
    try:
        return name in os.listxattr(path)
    except OSError:
        return False


class StartGate:
    """Holds bubblewrap between creating the sandbox's namespaces and running the worker.

    bubblewrap writes its child's pid to the info pipe and waits on the hold pipe: with
    ``--userns-block-fd`` (root runtime: the runtime writes the id maps meanwhile) or
    ``--block-fd`` (a runtime that is not root, when only the egress must be attached).

    Args:
        map_ids: Whether the runtime maps the sandbox's ids (a root runtime).
        network: Whether to attach slirp4netns to bubblewrap's network namespace.
    """

    def __init__(self, *, map_ids: bool, network: bool) -> None:
        self.map_ids = map_ids
        self.network = network
        self.active = map_ids or network
        self._info_r = self._info_w = self._hold_r = self._hold_w = -1
        if self.active:
            self._info_r, self._info_w = os.pipe()
            self._hold_r, self._hold_w = os.pipe()

    def bwrap_options(self) -> list[str]:
        """The bubblewrap options that report the child's pid and hold it."""
        if not self.active:
            return []
        hold = "--userns-block-fd" if self.map_ids else "--block-fd"
        return [hold, str(self._hold_r), "--info-fd", str(self._info_w)]

    def child_fds(self) -> list[int]:
        """The descriptors bubblewrap inherits."""
        return [self._hold_r, self._info_w] if self.active else []

    def started(self) -> None:
        """Close the child's ends in the runtime, once bubblewrap has them."""
        for fd in (self._hold_r, self._info_w):
            if fd >= 0:
                os.close(fd)
        self._hold_r = self._info_w = -1

    def open(
        self, bwrap_pid: int, *, host_id: int | None, sandbox_ids: tuple[int, int], ref: str, deadline: float
    ) -> SlirpEgress | None:
        """Set the held sandbox up and let it go on.

        Args:
            bwrap_pid: bubblewrap's own pid (in the egress's network namespace).
            host_id: The host id to map the sandbox's user to (with ``map_ids``).
            sandbox_ids: The sandbox's uid and gid.
            ref: The plugin reference, for messages.
            deadline: ``time.monotonic()`` by which the sandbox must be set up.

        Returns:
            The attached egress, if ``network``.

        Raises:
            OSError: If bubblewrap failed before reporting, or the id maps were refused.
            SandboxError: If the egress could not be attached.
        """
        if not self.active:
            return None
        child = self._child_pid(deadline)
        if self.map_ids:
            assert host_id is not None
            map_sandbox_ids(child, sandbox_uid=sandbox_ids[0], sandbox_gid=sandbox_ids[1], host_id=host_id)
            disable_user_namespaces(child, timeout=max(deadline - time.monotonic(), 1.0))
        egress = None
        if self.network:
            egress = SlirpEgress.attach(bwrap_pid, join_userns=not self.map_ids, ref=ref, deadline=deadline)
        try:
            os.write(self._hold_w, b"1")
        except OSError:
            if egress is not None:
                egress.stop()
            raise
        return egress

    def _child_pid(self, deadline: float) -> int:
        data = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OSError("bubblewrap did not report its sandbox in time")
            readable, _, _ = select.select([self._info_r], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self._info_r, 4096)
            if not chunk:
                break
            data += chunk
            if len(data) > 65536:
                break
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            raise OSError("bubblewrap ended before setting up the sandbox") from None

    def close(self) -> None:
        """Close every descriptor left (idempotent)."""
        for name in ("_info_r", "_info_w", "_hold_r", "_hold_w"):
            fd = getattr(self, name)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, -1)
