"""The transport of a bubblewrap worker: pipes to its stdin and stdout, a thread draining its stderr."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import subprocess
import threading
from typing import IO, Any, cast

from dativo_runtime._sandbox._cgroups import SandboxCgroup
from dativo_runtime._sandbox.bubblewrap._egress import SlirpEgress
from dativo_runtime._sandbox.host._transport import ExitStatus, StderrTail, WorkerTransport

__all__ = ["PIPE_BYTES", "ProcessTransport"]

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


class ProcessTransport(WorkerTransport):
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
