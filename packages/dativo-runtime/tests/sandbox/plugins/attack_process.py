"""Hostile plugins for the host-boundary tests of the process backend (issue 11, findings 4, 7, 10).

Loaded by path inside a sandbox by test_host_boundary_process.py; never imported as a test module.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import BaseReader, BaseWriter, State

# Linux address family numbers; some are missing from Python's socket module on some builds.
FAMILIES = {
    "AF_UNIX": 1,
    "AF_INET": 2,
    "AF_AX25": 3,
    "AF_IPX": 4,
    "AF_APPLETALK": 5,
    "AF_INET6": 10,
    "AF_KEY": 15,
    "AF_NETLINK": 16,
    "AF_PACKET": 17,
    "AF_RDS": 21,
    "AF_CAN": 29,
    "AF_TIPC": 30,
    "AF_BLUETOOTH": 31,
    "AF_ALG": 38,
    "AF_VSOCK": 40,
    "AF_XDP": 44,
    "AF_MCTP": 45,
}
# A socket type each family accepts, so that only the family decides.
_TYPES = {
    "AF_NETLINK": socket.SOCK_RAW,
    "AF_PACKET": socket.SOCK_RAW,
    "AF_CAN": socket.SOCK_RAW,
    "AF_KEY": socket.SOCK_RAW,
    "AF_ALG": socket.SOCK_SEQPACKET,
    "AF_RDS": socket.SOCK_SEQPACKET,
    "AF_XDP": socket.SOCK_RAW,
    "AF_BLUETOOTH": socket.SOCK_STREAM,
}


def _outcome(call: Any, *args: Any) -> str:
    try:
        result = call(*args)
    except OSError as exc:
        return f"errno {errno.errorcode.get(exc.errno or 0, exc.errno)}"
    return f"ok {result}" if result is not None else "ok"


def _open_socket(family: int, kind: int, proto: int = 0) -> None:
    handle = socket.socket(family, kind, proto)
    handle.close()


def _socketpair(family: int) -> None:
    for handle in socket.socketpair(family):
        handle.close()


def _vsock_bind() -> str:
    handle = socket.socket(FAMILIES["AF_VSOCK"], socket.SOCK_STREAM)
    try:
        handle.bind((0xFFFFFFFF, 5000))  # VMADDR_CID_ANY
        return "bound"
    finally:
        handle.close()


def _connect(address: str) -> str:
    if address.startswith("@"):
        handle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        handle.settimeout(3)
        try:
            handle.connect("\0" + address[1:])
            return "connected"
        finally:
            handle.close()
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.settimeout(5)
        return "connected: " + connection.recv(200).decode("utf-8", "replace")


class FamilyProbeReader(BaseReader):
    """Creates a socket of every family in ``FAMILIES`` (and a few socketpairs); one record each."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        records = []
        for name, family in FAMILIES.items():
            kind = _TYPES.get(name, socket.SOCK_DGRAM if name != "AF_UNIX" else socket.SOCK_STREAM)
            records.append({"attempt": f"socket {name}", "result": _outcome(_open_socket, family, kind)})
        for protocol in (0, 9, 15):  # NETLINK_ROUTE, NETLINK_AUDIT, NETLINK_KOBJECT_UEVENT
            records.append(
                {
                    "attempt": f"socket AF_NETLINK protocol {protocol}",
                    "result": _outcome(_open_socket, 16, socket.SOCK_RAW, protocol),
                }
            )
        for name in ("AF_UNIX", "AF_INET", "AF_VSOCK"):
            records.append({"attempt": f"socketpair {name}", "result": _outcome(_socketpair, FAMILIES[name])})
        records.append({"attempt": "bind AF_VSOCK", "result": _outcome(_vsock_bind)})
        records.append({"attempt": "getaddrinfo AI_ADDRCONFIG", "result": _outcome(self._resolve)})
        yield records

    @staticmethod
    def _resolve() -> str:
        # AI_ADDRCONFIG makes the C library list the interfaces' addresses over NETLINK_ROUTE.
        found = socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG)
        return str(sorted({info[4][0] for info in found}))


class ConnectReader(BaseReader):
    """Tries each address of ``config['addresses']`` (``host:port`` or ``@abstract``); one record each."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        records = []
        for address in self.config["addresses"]:
            records.append({"attempt": address, "result": _outcome(_connect, address)})
        yield records


class IdentityReader(BaseReader):
    """Reports who the plugin is and what it may do: ids, capabilities, user namespace limits."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        status = {}
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.startswith(("Uid", "Gid", "Groups", "Cap", "NoNewPrivs", "Seccomp")):
                    status[key] = value.strip()
        facts = {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "groups": os.getgroups(),
            "status": status,
            "uid_map": _read("/proc/self/uid_map"),
            "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
            "setuid_root": _outcome(lambda: os.setuid(0)),
            "listdir_root": _outcome(lambda: json.dumps(sorted(os.listdir("/root")))),
            "read_tmp_mode": oct(os.stat("/tmp").st_mode),
            "shm_write": _outcome(lambda: _write("/dev/shm/probe")),
        }
        yield [{"facts": json.dumps(facts)}]


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def _write(path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("x")


class SetuidWriter(BaseWriter):
    """Leaves a copy of its Python, ``chmod 4755`` (setuid) and ``2755`` (setgid), in its output folder."""

    __version__ = "1.0.0"

    def write_batch(self, records: Any, file_counter: int) -> list[dict[str, Any]]:
        folder = self.config["path"]
        binary = os.path.join(folder, "shell")
        shutil.copyfile(sys.executable, binary)
        os.chmod(binary, 0o4755)
        group_binary = os.path.join(folder, "group-shell")
        shutil.copyfile(sys.executable, group_binary)
        os.chmod(group_binary, 0o2755)
        marker = os.path.join(folder, f"part-{file_counter}.txt")
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"uid": os.getuid(), "rows": records.num_rows}))
        return [{"path": marker, "record_count": records.num_rows}]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        return {"files_committed": len(file_metadata)}
