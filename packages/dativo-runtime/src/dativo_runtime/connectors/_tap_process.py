"""One run of a Singer tap or an Airbyte source as a child process of the reader.

The reader runs inside the sandbox worker; the tap is its child, started by
:mod:`._tap_launcher` from the plugin's environment (``DATIVO_PLUGIN_ENV``, the folder
``dativo-run`` builds from ``config.package``) with the worker's interpreter in isolated
mode. What this module guarantees:

* **No secrets on disk, none from the host.** The tap's config, catalog and state are
  anonymous memory files (``memfd``) handed over as ``/dev/fd/N``; its environment is a
  fixed, clean one (``HOME`` and ``TMPDIR`` are ``/tmp``), never the worker's.
* **It dies with the worker.** The launcher arms ``PR_SET_PDEATHSIG``; the tap leads its own
  process group, which :meth:`TapProcess.stop` ends (``SIGTERM``, then ``SIGKILL``).
* **Its stderr becomes log lines**, the config's secrets masked, and the last lines are
  kept for the error when it exits non-zero.

Standard library and the SDK only (and :mod:`dativo_runtime._secrets`, which is too).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from packaging.requirements import InvalidRequirement, Requirement

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_runtime._secrets import Redactor, is_secret_key
from dativo_runtime.connectors._tap_launcher import (
    NOT_FOUND_STATUS,
    PARENT_PID_VARIABLE,
    console_scripts,
    pick_script,
)

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "TAP_ENV",
    "TapProcess",
    "distribution_name",
    "plugin_environment",
    "resolve_executable",
    "secret_values",
]

ENVIRONMENT_VARIABLE = "DATIVO_PLUGIN_ENV"
"""Set by the sandbox worker to the plugin's environment folder."""
LAUNCHER = str(Path(__file__).with_name("_tap_launcher.py"))
TAP_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONUNBUFFERED": "1",
    "PYTHONIOENCODING": "utf-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
"""The tap's whole environment (the sandbox worker's, without anything of the host)."""
STDERR_LINES_KEPT = 20
_STOP_GRACE_S = 3.0
_LEVELS = re.compile(r"\b(CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG)\b")
_LEVEL_NUMBERS = {
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}
PIPE_BYTES = 1 << 20
"""Size of the pipe the tap writes its messages to (1 MiB, Linux's default ceiling).

With the default 64 KiB a tap writing 15,000 records a second fills the pipe in a few
milliseconds and then waits while the worker parses a block and sends the batch: the two
would take turns instead of running at once.
"""

_NETWORK_TROUBLE = re.compile(
    r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
    r"nodename nor servname|failed to resolve|Max retries exceeded|Connection refused",
    re.IGNORECASE,
)


def plugin_environment(connector: str) -> str:
    """The plugin environment folder the worker was given.

    Args:
        connector: ``singer`` or ``airbyte``, for the message.

    Raises:
        PluginError: If ``DATIVO_PLUGIN_ENV`` is unset or names no folder.
    """
    path = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if not path:
        raise PluginError(
            f"the {connector} reader runs its tap from a plugin environment, and none was given "
            f"({ENVIRONMENT_VARIABLE} is not set); dativo-run builds it from source.config.package "
            "(dativo-run plugins install --config JOB.yaml builds it ahead of time)",
            details={"reason": "no_plugin_environment", "variable": ENVIRONMENT_VARIABLE},
        )
    if not os.path.isdir(path):
        raise PluginError(
            f"the {connector} reader's plugin environment {path!r} is not a folder; rebuild it with "
            "dativo-run plugins install --config JOB.yaml",
            details={"reason": "no_plugin_environment", "path": path},
        )
    return path


def distribution_name(package: str) -> str:
    """The distribution a pip requirement names (``tap-x==1.2`` -> ``tap-x``).

    Raises:
        ConfigurationError: If ``package`` is not a requirement (``details["field"] == "package"``).
    """
    try:
        return Requirement(package).name
    except InvalidRequirement as exc:
        raise ConfigurationError(
            f"package {package!r} is not a pip requirement ({exc}); write it as tap-something==1.2.3",
            details={"field": "package"},
        ) from None


def resolve_executable(env_dir: str, package: str, executable: str | None) -> str:
    """What the launcher runs: ``executable`` (a console script or a file) or the package's script.

    Checked here, by reading the environment's metadata, so that a wrong name fails before
    any tap starts, with the scripts that exist.

    Raises:
        ConfigurationError: If the environment holds no such script, or the package has none
            (or several, and ``executable`` does not pick one).
    """
    if executable and "/" in executable:
        if not os.path.isfile(executable):
            raise ConfigurationError(
                f"executable {executable!r} is not a file the sandbox can read; give a console script "
                "name, or grant the file's folder with sandbox.read_only_paths",
                details={"field": "executable"},
            )
        return executable
    scripts = console_scripts(env_dir)
    name = executable or distribution_name(package)
    try:
        chosen = pick_script(scripts, name)
    except LookupError as exc:
        raise ConfigurationError(f"{exc} with executable", details={"field": "executable"}) from None
    if chosen is None or (executable and chosen[0] != executable):
        dist = distribution_name(package)
        own = sorted(s for s, (_, d) in scripts.items() if d.lower().replace("_", "-") == dist.lower())
        available = ", ".join(own or sorted(scripts)) or "none"
        what = f"executable {executable!r}" if executable else f"package {dist!r} declares no console script"
        raise ConfigurationError(
            f"{what}: the plugin environment has no such program (console scripts of {dist}: "
            f"{available}); set executable to one of them",
            details={"field": "executable" if executable else "package", "available": available},
        )
    return chosen[0]


def secret_values(
    config: Any, secret_paths: Sequence[Sequence[str]] = (), _path: tuple[str, ...] = ()
) -> set[str]:
    """The string values of a tap's config to mask: under secret-looking keys or the given paths."""
    found: set[str] = set()
    if isinstance(config, Mapping):
        for key, value in config.items():
            path = (*_path, str(key))
            if isinstance(value, str) and (
                is_secret_key(str(key)) or path in {tuple(p) for p in secret_paths}
            ):
                found.add(value)
            else:
                found |= secret_values(value, secret_paths, path)
    elif isinstance(config, list):
        for item in config:
            found |= secret_values(item, secret_paths, _path)
    return found


def _memory_file(name: str, data: Any) -> int:
    fd = os.memfd_create(f"dativo-{name}", 0)  # Not close-on-exec: pass_fds hands it to the tap.
    payload = json.dumps(data).encode()
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class TapProcess:
    """The tap's process: start it, read its stdout lines, log its stderr, stop it.

    Args:
        env_dir: The plugin environment.
        program: What the launcher runs (:func:`resolve_executable`).
        arguments: The tap's arguments; a mapping value stands for a JSON file (``--config``).
        logger: Where its stderr lines go.
        secrets: Values masked in its stderr and in errors.
        describe: How messages name it (``tap 'tap-x'``).
    """

    def __init__(
        self,
        env_dir: str,
        program: str,
        arguments: Sequence[str | tuple[str, Any]],
        *,
        logger: logging.Logger,
        secrets: set[str] | frozenset[str] = frozenset(),
        describe: str,
    ) -> None:
        self.describe = describe
        self.logger = logger
        self.redactor = Redactor()
        for value in secrets:
            self.redactor.add(value)
        self.last_stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._fds: list[int] = []
        argv = [sys.executable, "-I", "-S", "-B", LAUNCHER, env_dir, program]
        try:
            for argument in arguments:
                if isinstance(argument, tuple):
                    fd = _memory_file(argument[0], argument[1])
                    self._fds.append(fd)
                    argv.append(f"/dev/fd/{fd}")
                else:
                    argv.append(argument)
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**TAP_ENV, PARENT_PID_VARIABLE: str(os.getpid())},
                pass_fds=self._fds,
                start_new_session=True,
                bufsize=1 << 16,
            )
        finally:
            self._close_files()
        assert self.process.stdout is not None
        with contextlib.suppress(OSError):  # A lower system limit: the default 64 KiB still works.
            fcntl.fcntl(self.process.stdout.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._stderr = threading.Thread(target=self._pump_stderr, name="dativo-tap-stderr", daemon=True)
        self._stderr.start()

    def _close_files(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def mask(self, text: str) -> str:
        """``text`` with the config's secrets masked."""
        return self.redactor.redact_text(text)

    def _pump_stderr(self) -> None:
        stream: IO[bytes] | None = self.process.stderr
        if stream is None:
            return
        try:
            for raw in stream:
                line = self.mask(raw.decode("utf-8", "backslashreplace").rstrip())
                if not line:
                    continue
                self.last_stderr.append(line[:2000])
                self.logger.log(self._level(line), "%s", line[:10_000])
        except (OSError, ValueError):
            pass  # The stream was closed by stop().

    @staticmethod
    def _level(line: str) -> int:
        if "METRIC" in line[:120]:
            return logging.DEBUG  # Singer SDK metrics: one per batch of records; too many for INFO.
        found = _LEVELS.search(line[:80])
        return _LEVEL_NUMBERS[found.group(1)] if found else logging.INFO

    def lines(self) -> Iterator[bytes]:
        """The tap's stdout, line by line (each ending with a newline but maybe the last)."""
        stream = self.process.stdout
        assert stream is not None
        yield from stream

    def wait(self) -> int:
        """Wait for the tap to exit (its stderr fully logged) and return its status."""
        status = self.process.wait()
        self._stderr.join(timeout=5)
        return status

    def failure(self, status: int, *, during: str) -> PluginError | ConfigurationError:
        """The error for a tap that exited with ``status`` (the last stderr lines included)."""
        tail = "\n".join(self.last_stderr)
        if status == NOT_FOUND_STATUS and "dativo-tap-launcher:" in tail:
            return ConfigurationError(
                f"{self.describe} could not start: {tail.split('dativo-tap-launcher:', 1)[1].strip()}",
                details={"field": "executable"},
            )
        how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
        hint = ""
        if _NETWORK_TROUBLE.search(tail):
            hint = (
                " It looks like the tap could not reach the network: a sandboxed plugin has none unless "
                "the job sets sandbox.network: true."
            )
        shown = f"; its last lines on stderr:\n{tail}" if tail else " and wrote nothing to stderr"
        return PluginError(
            f"{self.describe} {how} during {during}{shown}{hint}",
            details={"exit_status": status, "stderr": tail[-4000:], "during": during},
        )

    def stop(self) -> None:
        """End the tap and everything it started (its process group), then reap it."""
        process = self.process
        if process.poll() is None:
            for sig, grace in ((signal.SIGTERM, _STOP_GRACE_S), (signal.SIGKILL, _STOP_GRACE_S)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # Children it left behind.
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.join(timeout=1)

    def __enter__(self) -> TapProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
