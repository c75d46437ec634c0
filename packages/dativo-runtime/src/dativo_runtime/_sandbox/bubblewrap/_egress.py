"""Network egress of the ``process`` backend: a network namespace of its own, behind slirp4netns.

A plugin that asks for ``network: true`` never shares the host's network namespace. The
runtime starts bubblewrap in a new, empty network namespace (:func:`netns_command`:
``unshare --net``, and for a runtime that is not root a user namespace of its own around
it) and, before the worker starts, attaches ``slirp4netns`` (:class:`SlirpEgress`): a
user-mode TCP/IP stack that gives the namespace an interface ``tap0`` (10.0.2.100/24,
gateway 10.0.2.2, MTU 65520, DNS forwarder 10.0.2.3, see :func:`guest_resolv_conf`) and
carries its connections out through ordinary sockets of the host. Hence:

* The host's loopback is out of reach: ``127.0.0.1`` in the sandbox is the sandbox's own,
  and ``--disable-host-loopback`` makes slirp refuse every connection that it would
  translate to the host's loopback (the gateway 10.0.2.2, or a loopback DNS server).
* Abstract unix sockets belong to a network namespace: the host's are invisible.
* The namespace is owned by the runtime's user namespace, not by the sandbox's, so the
  plugin (no capabilities anyway) cannot reconfigure it.
* IPv4 only: the sandbox has no IPv6 route.
* Everything else the host can reach, the plugin can: other hosts, the host's own
  non-loopback addresses (services listening on all addresses), the cloud metadata
  endpoint. Restrict destinations with the host's firewall or an egress proxy.

slirp4netns parses the plugin's packets, so it runs with ``--enable-seccomp`` and an empty
environment, and for a root runtime with ``--enable-sandbox`` (a mount namespace of its own,
every capability but ``CAP_NET_BIND_SERVICE`` dropped). A runtime that is not root needs
``/dev/net/tun`` to be usable by its user (mode 0666, as Debian ships it). slirp4netns exits
when the runtime closes its exit pipe (also when the runtime dies) and is stopped with the
sandbox. When it is not installed, a job with ``network: true`` fails with a ``SandboxError``
naming the package: egress never falls back to the host's namespace.
"""

from __future__ import annotations

import functools
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time

from dativo_plugin_sdk import SandboxError

__all__ = [
    "EGRESS_PACKAGE",
    "GUEST_DNS",
    "GUEST_MTU",
    "SlirpEgress",
    "egress_availability",
    "egress_tool",
    "guest_hosts",
    "guest_resolv_conf",
    "missing_egress_error",
    "netns_command",
]

EGRESS_PACKAGE = "slirp4netns"
"""The Debian/Ubuntu package (and the executable) that gives a process sandbox its egress."""
GUEST_DNS = "10.0.2.3"
"""slirp's DNS forwarder, as the sandbox sees it: it answers with the host's resolver."""
GUEST_MTU = 65520
_RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
_TOOL_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
_STOP_GRACE_S = 2.0


def egress_tool() -> str | None:
    """Return the ``slirp4netns`` executable, or ``None`` when it is not installed."""
    return shutil.which(EGRESS_PACKAGE, path=_TOOL_PATH)


@functools.lru_cache(maxsize=1)
def _tool_version(tool: str) -> str:
    try:
        output = subprocess.run(
            [tool, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return output.splitlines()[0].strip() if output.strip() else ""


def egress_availability() -> tuple[bool, str]:
    """Tell whether ``network: true`` can be given here, in words for ``sandbox doctor``."""
    tool = egress_tool()
    if tool is None:
        return False, f"no network egress: jobs with network: true fail until {EGRESS_PACKAGE} is installed"
    if shutil.which("unshare", path=_TOOL_PATH) is None:
        return False, "no network egress: the 'unshare' command (util-linux) is missing"
    return True, f"egress through {_tool_version(tool) or EGRESS_PACKAGE}"


def missing_egress_error(ref: str) -> SandboxError | None:
    """Return the error a job with ``network: true`` fails with when egress is unavailable here."""
    available, why = egress_availability()
    if available:
        return None
    return SandboxError(
        f"plugin {ref!r} asks for network egress (network: true), which the process sandbox gives "
        f"through a network namespace of its own and {EGRESS_PACKAGE}, never the host's network: "
        f"{why.removeprefix('no network egress: ')} (Debian/Ubuntu: apt-get install {EGRESS_PACKAGE})",
        details={"reason": "startup_failed", "backend": "process", "package": EGRESS_PACKAGE},
    )


def netns_command(*, as_root: bool) -> list[str]:
    """Return the prefix that starts a command in a new, empty network namespace.

    Args:
        as_root: Whether the runtime is root; otherwise the namespace comes with a user
            namespace that maps the runtime's user to root, the only way to get one unprivileged.
    """
    unshare = shutil.which("unshare", path=_TOOL_PATH) or "unshare"
    if as_root:
        return [unshare, "--net", "--"]
    return [unshare, "--user", "--map-root-user", "--net", "--"]


def _nameservers(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            words = [line.split() for line in handle]
    except OSError:
        return []
    return [w[1] for w in words if len(w) >= 2 and w[0] == "nameserver"]


def _usable(address: str) -> bool:
    """An IPv4 resolver slirp may forward to: not on the host's loopback, which it refuses."""
    parts = address.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts) and parts[0] != "127"


def guest_resolv_conf(host_conf: str = "/etc/resolv.conf", upstream_conf: str = _RESOLVED_UPSTREAM) -> bytes:
    """The sandbox's ``/etc/resolv.conf``: slirp's forwarder, never the host's file.

    slirp's 10.0.2.3 forwards to the host's resolver, unless that one listens on the host's
    loopback (systemd-resolved's 127.0.0.53), which ``--disable-host-loopback`` refuses. Then
    the sandbox asks the resolver's upstream servers (``/run/systemd/resolve/resolv.conf``)
    itself, through slirp like any other egress.
    """
    servers = [GUEST_DNS]
    if not any(_usable(a) for a in _nameservers(host_conf)):
        upstream = [a for a in _nameservers(upstream_conf) if _usable(a)][:3]
        servers = upstream or servers
    return "".join(f"nameserver {a}\n" for a in servers).encode() + b"options edns0\n"


def guest_hosts(hostname: str) -> bytes:
    """The sandbox's ``/etc/hosts``: loopback names and its own hostname, nothing of the host's."""
    return (
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    ).encode()


class SlirpEgress:
    """A running ``slirp4netns`` attached to one sandbox's network namespace.

    Use :meth:`attach`; :meth:`stop` ends it (idempotent, thread-safe).
    """

    def __init__(self, process: subprocess.Popen[bytes], exit_fd: int) -> None:
        self.process = process
        self._exit_fd: int | None = exit_fd
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, pid: int, *, join_userns: bool, ref: str, deadline: float) -> SlirpEgress:
        """Attach slirp4netns to the network namespace of process ``pid`` and wait until it is configured.

        Args:
            pid: A process in the namespace (bubblewrap's own, started by :func:`netns_command`).
            join_userns: Join that process's user namespace first (a runtime that is not root).
            ref: The plugin reference, for messages.
            deadline: ``time.monotonic()`` by which the network must be up.

        Raises:
            SandboxError: ``startup_failed`` if slirp4netns is missing, fails or is too slow.
        """
        tool = egress_tool()
        if tool is None:
            error = missing_egress_error(ref)
            assert error is not None
            raise error
        ready_r, ready_w = os.pipe()
        exit_r, exit_w = os.pipe()
        argv = [
            tool,
            "--configure",
            f"--mtu={GUEST_MTU}",
            "--disable-host-loopback",
            "--enable-seccomp",
            f"--ready-fd={ready_w}",
            f"--exit-fd={exit_r}",
            "--netns-type=path",
        ]
        if os.geteuid() == 0:
            argv.append("--enable-sandbox")  # it needs root (it drops root's capabilities)
        if join_userns:
            argv.append(f"--userns-path=/proc/{pid}/ns/user")
        argv += [f"/proc/{pid}/ns/net", "tap0"]
        log = tempfile.TemporaryFile()  # noqa: SIM115  (closed on every path below)
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(ready_w, exit_r),
                start_new_session=True,
                env={"PATH": _TOOL_PATH, "LANG": "C.UTF-8"},
                cwd="/",
            )
        except OSError as exc:
            for fd in (ready_r, exit_w):
                os.close(fd)
            log.close()
            raise _failed(ref, f"could not start {tool}: {exc}") from exc
        finally:
            for fd in (ready_w, exit_r):  # slirp4netns's ends
                os.close(fd)
        egress = cls(process, exit_w)
        try:
            ready = _wait_ready(ready_r, deadline)
        finally:
            os.close(ready_r)
        if not ready:
            egress.stop()
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
            log.close()
            status = process.poll()
            detail = " / ".join(lines[-3:]) if lines else "no answer within the start-up deadline"
            if not lines and status is not None:
                detail = f"it exited with status {status}"
            raise _failed(ref, f"{EGRESS_PACKAGE} could not set up the sandbox's network: {detail}")
        log.close()
        return egress

    def stop(self) -> None:
        """End slirp4netns: close its exit pipe, then kill it if it lingers."""
        with self._lock:
            if self._exit_fd is not None:
                os.close(self._exit_fd)
                self._exit_fd = None
            try:
                self.process.wait(_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_ready(fd: int, deadline: float) -> bool:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            return os.read(fd, 1) == b"1"


def _failed(ref: str, why: str) -> SandboxError:
    return SandboxError(
        f"the process sandbox could not give plugin {ref!r} its network egress: {why}",
        details={"reason": "startup_failed", "backend": "process", "package": EGRESS_PACKAGE},
    )
