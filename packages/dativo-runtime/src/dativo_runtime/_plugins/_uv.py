"""Running ``uv pip install --target`` for a plugin environment, and turning its failures into errors.

uv comes from the ``uv`` wheel (a runtime dependency; :func:`uv_binary`), else from ``PATH``.
It runs with colours, progress bars, user/system ``uv.toml`` files and managed-Python
downloads off; everything else the operator set (``UV_CACHE_DIR``, ``UV_INDEX_URL``,
``UV_DEFAULT_INDEX``, ``UV_EXCLUDE_NEWER``, proxies...) applies as is. uv exits 1 when the
resolution fails and 2 when it cannot reach the index; either way its ``error:``,
``cause:`` and ``hint:`` lines are what a person needs, so :class:`UvInstallError` keeps them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._plugins._environment_spec import PROVIDED_BY_RUNTIME, EnvironmentSpec

__all__ = ["UV_ENVIRONMENT", "UvInstallError", "install_into", "uv_binary", "uv_version"]

UV_ENVIRONMENT = {
    "NO_COLOR": "1",
    "UV_NO_CONFIG": "1",
    "UV_PYTHON_DOWNLOADS": "never",
    "UV_NO_PROGRESS": "1",
}
"""Set for every uv run: plain output, no config files, never download a Python."""

_TAIL_LINES = 200
_MESSAGE_LINES = 30


class UvInstallError(Exception):
    """uv could not install the requirements (resolution, download or build failed).

    Args:
        exit_code: uv's exit code.
        summary: uv's ``error:`` line and what follows it (``cause:``, ``hint:``).
        output: The tail of uv's output.
        command: The command line.
    """

    def __init__(self, exit_code: int, summary: str, output: str, command: Sequence[str]) -> None:
        super().__init__(summary)
        self.exit_code = exit_code
        self.summary = summary
        self.output = output
        self.command = list(command)


@functools.lru_cache(maxsize=1)
def uv_binary() -> str:
    """The uv executable: the one the ``uv`` wheel installed, else ``uv`` on ``PATH``.

    Raises:
        ConfigurationError: If neither exists.
    """
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise ConfigurationError(
        "plugin environments need uv, which was not found: install dativo-runtime with its dependencies "
        "(pip install dativo-runtime pulls in uv) or put uv on PATH"
    )


@functools.lru_cache(maxsize=1)
def uv_version() -> str:
    """uv's version (``0.13.9``), or ``unknown``."""
    try:
        out = subprocess.run(
            [uv_binary(), "--version"], capture_output=True, text=True, env=_uv_env(), timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    parts = out.stdout.split()
    return parts[1] if len(parts) > 1 else "unknown"


def _uv_env() -> dict[str, str]:
    return {**os.environ, **UV_ENVIRONMENT}


def _summary(lines: Sequence[str]) -> str:
    """uv's error block (``error:`` and the ``cause:``/``hint:`` lines after it), else its last lines."""
    for index, line in enumerate(lines):
        if line.lstrip().startswith("error:"):
            block = [line.rstrip() for line in lines[index:] if line.strip()]
            return "\n".join(block[:_MESSAGE_LINES])
    return "\n".join(line.rstrip() for line in list(lines)[-10:] if line.strip())


def install_into(
    target: Path,
    spec: EnvironmentSpec,
    *,
    find_links: Sequence[Path] = (),
    on_line: Callable[[str], None] | None = None,
    wheels_only: bool = False,
) -> None:
    """Install ``spec``'s requirements into the folder ``target`` (``uv pip install --target``).

    Args:
        target: The folder to install into (created by uv).
        spec: The requirements, Python version, platform and pins.
        find_links: Wheel folders; when given, the index is not used (``--no-index``).
        on_line: Called with each line uv prints.
        wheels_only: Install wheels only (``--no-build``): building a source distribution runs
            its build backend, which is the package's own code, on the host.

    Raises:
        UvInstallError: If uv fails.
        ConfigurationError: If uv cannot be found or started.
    """
    with tempfile.TemporaryDirectory(prefix="dativo-uv-") as scratch:
        folder = Path(scratch)
        requirements = folder / "requirements.txt"
        requirements.write_text("".join(f"{r}\n" for r in spec.requirements), encoding="utf-8")
        constraints = folder / "constraints.txt"
        constraints.write_text("".join(f"{c}\n" for c in spec.constraints), encoding="utf-8")
        excludes = folder / "excludes.txt"
        excludes.write_text("".join(f"{name}\n" for name in PROVIDED_BY_RUNTIME), encoding="utf-8")
        command = [
            uv_binary(),
            "pip",
            "install",
            "--target",
            str(target),
            "--python",
            sys.executable,
            "--python-version",
            spec.python,
            "--python-platform",
            spec.platform,
            "--compile-bytecode",
            "--constraints",
            str(constraints),
            # The runtime provides these: a requirement that pulls them in transitively must not
            # install a second copy that would shadow the worker's.
            "--excludes",
            str(excludes),
            "-r",
            str(requirements),
        ]
        if wheels_only:
            command.append("--no-build")
        if find_links:
            command.append("--no-index")
            for folder_of_wheels in find_links:
                command += ["--find-links", str(folder_of_wheels)]
        _run(command, on_line)


def _run(command: list[str], on_line: Callable[[str], None] | None) -> None:
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=_uv_env(),
        )
    except OSError as exc:
        raise ConfigurationError(f"cannot start uv ({command[0]}): {exc}") from None
    with process:  # closes the pipe and reaps uv, also when a callback or Ctrl-C interrupts
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                tail.append(line)
                if on_line is not None and line.strip():
                    on_line(line)
        except BaseException:
            process.kill()
            raise
    if process.returncode != 0:
        raise UvInstallError(process.returncode, _summary(list(tail)), "\n".join(tail), command)
