"""Hostile test plugins: each tries to escape the sandbox and reports (or dies) doing so.

Loaded by path by the sandbox tests; never imported as a test module.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import BaseReader, ConnectionTestResult, RateLimitError, State

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _libc_call(result: int) -> str:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return "call succeeded"


def _read(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read(200).decode("utf-8", "replace")


def _list(path: str) -> str:
    return json.dumps(sorted(os.listdir(path)))


def _write(path: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("escaped")
    return "written"


def _connect(address: str) -> str:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=3):
        return "connected"


def _fork_bomb(limit: str) -> str:
    children = []
    try:
        for _ in range(int(limit)):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    finally:
        for pid in children:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
    return f"forked {len(children)} children"


ATTEMPTS = {
    "read": _read,
    "list": _list,
    "write": _write,
    "connect": _connect,
    "fork": _fork_bomb,
    "env": lambda _: json.dumps(dict(os.environ)),
    "setuid": lambda _: (os.setuid(0), "setuid(0) succeeded")[1],
    "whoami": lambda _: json.dumps({"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}),
}


class ProbeReader(BaseReader):
    """Runs each ``[kind, argument]`` of ``config['attempts']``; yields what happened, one record each."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        for kind, argument in self.config["attempts"]:
            try:
                result = "ok: " + ATTEMPTS[kind](argument)
            except OSError as exc:
                result = f"blocked: {type(exc).__name__}: {exc}"
            yield [{"attempt": f"{kind} {argument}", "result": result[:2000]}]


class KillerReader(BaseReader):
    """Does one thing the sandbox must stop by ending the worker (``config['action']``)."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"step": "before"}]
        action = self.config["action"]
        if action == "mount":
            _libc_call(_LIBC.mount(b"none", b"/tmp", b"tmpfs", 0, None))
        elif action == "ptrace":
            _libc_call(_LIBC.ptrace(0, 0, None, None))  # PTRACE_TRACEME
        elif action == "unshare":
            _libc_call(_LIBC.unshare(0x10000000))  # CLONE_NEWUSER
        elif action == "memory":
            hoard = []
            for _ in range(128):  # up to 4 GiB, far above any limit used in the tests
                hoard.append(b"\x01" * (32 << 20))
        elif action == "spin":
            while True:
                pass
        elif action == "segfault":
            ctypes.string_at(0)
        elif action == "exit":
            os._exit(3)
        elif action == "sigkill":
            os.kill(os.getpid(), 9)
        yield [{"step": "after"}]


class FailingReader(BaseReader):
    """Yields one batch, then raises what ``config['raise']`` names."""

    __version__ = "1.0.0"
    supports_incremental = True

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(
            success=True, message=f"token has {len(self.config.get('token', ''))} chars"
        )

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"n": 1}]
        if state is not None:
            state.set("n", 1)
        if self.config["raise"] == "rate_limit":
            raise RateLimitError("slow down", retry_after=2, details={"endpoint": "/items", "attempt": 3})
        if self.config["raise"] == "value":
            raise ValueError("bad value 42")
        yield [{"n": 2}]


class ChattyReader(BaseReader):
    """Prints to stdout, writes to fd 1, logs and tries to read stdin while yielding records."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        import logging
        import sys

        for n in range(int(self.config.get("count", 5))):
            print(f"noise {n}" * 50)
            os.write(1, b"\x01\x00\x00\x00\x05junk\n")
            logging.getLogger("chatty").warning("batch %d", n)
            yield [{"n": n, "stdin": sys.stdin.read(10)}]
