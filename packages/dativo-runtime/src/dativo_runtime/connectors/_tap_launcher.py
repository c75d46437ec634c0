"""Start a Singer tap or an Airbyte source from a plugin environment.

Usage: ``python -I -S -B _tap_launcher.py ENV NAME ARGS...``.

Run as a script, by path, never imported by the runtime: the ``singer`` and ``airbyte``
readers start it as the tap's process with the interpreter the worker runs on, in isolated
mode (``-I``: no ``PYTHON*`` variables, no script folder or user site on ``sys.path``) and
without ``site`` (``-S``: not even the interpreter's own site-packages). It then makes
``ENV`` (a ``uv pip install --target`` folder) importable with :func:`site.addsitedir`, so
``.pth`` files work, and runs ``NAME``:

* a path (it holds ``/``): that Python file, as ``__main__``;
* else the console script called ``NAME`` of a distribution installed in ``ENV``;
* else the distribution called ``NAME``'s console script (its only one, or the one whose
  name ends its distribution's name: ``source-faker`` for ``airbyte-source-faker``).

Never the ``ENV/bin`` scripts (their shebang names the host's interpreter), never the
host's site-packages. If ``DATIVO_TAP_PARENT_PID`` is set, the process asks the kernel to
kill it when its parent (the worker) dies, and exits at once if that already happened.

Standard library only. Exit status 127 with a ``dativo-tap-launcher:`` line on stderr means
the launcher found nothing to run.
"""

from __future__ import annotations

import os
import sys
from typing import Any

NOT_FOUND_STATUS = 127
"""The exit status when ``NAME`` names nothing the environment holds."""
PARENT_PID_VARIABLE = "DATIVO_TAP_PARENT_PID"
"""The variable holding the worker's pid: the tap dies with it."""
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


def _die_with_parent() -> None:
    expected = os.environ.pop(PARENT_PID_VARIABLE, "")
    if not expected.isdigit():
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # Not Linux: the reader still stops the tap when it closes.
    if os.getppid() != int(expected):
        os._exit(1)  # The parent died before the signal was armed.


def _fail(message: str) -> None:
    sys.stderr.write(f"dativo-tap-launcher: {message}\n")
    sys.stderr.flush()
    raise SystemExit(NOT_FOUND_STATUS)


def _normalized(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def console_scripts(env_dir: str) -> dict[str, tuple[str, str]]:
    """Every console script of the distributions in ``env_dir``: name -> (entry point, distribution)."""
    from importlib.metadata import distributions

    scripts: dict[str, tuple[str, str]] = {}
    for dist in distributions(path=[env_dir]):
        dist_name = dist.metadata["Name"] or ""
        for entry in dist.entry_points:
            if entry.group == "console_scripts":
                scripts.setdefault(entry.name, (entry.value, dist_name))
    return scripts


def pick_script(scripts: dict[str, tuple[str, str]], name: str) -> tuple[str, str] | None:
    """The ``(script, entry point)`` that ``name`` (a script or a distribution) stands for, or ``None``.

    Raises:
        LookupError: If ``name`` is a distribution with several console scripts and none
            whose name ends the distribution's name; the message lists them.
    """
    if name in scripts:
        return name, scripts[name][0]
    wanted = _normalized(name)
    own = sorted(script for script, (_, dist) in scripts.items() if _normalized(dist) == wanted)
    if not own:
        return None
    if len(own) == 1:
        return own[0], scripts[own[0]][0]
    matching = [script for script in own if wanted.endswith(_normalized(script))]
    if len(matching) == 1:
        return matching[0], scripts[matching[0]][0]
    raise LookupError(f"distribution {name!r} has several console scripts ({', '.join(own)}); pick one")


def _run_entry_point(script: str, value: str, args: list[str]) -> None:
    import importlib

    module_name, _, attribute = value.partition(":")
    target: Any = importlib.import_module(module_name.strip())
    for part in attribute.strip().split(".") if attribute.strip() else []:
        target = getattr(target, part)
    sys.argv = [script, *args]
    if not callable(target):
        _fail(f"console script {script!r} points at {value!r}, which is not callable")
    raise SystemExit(target())


def main(argv: list[str]) -> None:
    """Run ``argv = [ENV, NAME, *ARGS]`` as described in the module docstring."""
    _die_with_parent()
    if len(argv) < 2:
        _fail("usage: _tap_launcher.py ENV_DIR NAME [ARGS...]")
    env_dir, name, args = argv[0], argv[1], argv[2:]
    if not os.path.isdir(env_dir):
        _fail(f"the environment folder {env_dir!r} does not exist")
    import site

    site.addsitedir(env_dir)
    if "/" in name:
        import runpy

        sys.argv = [name, *args]
        runpy.run_path(name, run_name="__main__")
        return
    try:
        chosen = pick_script(console_scripts(env_dir), name)
    except LookupError as exc:
        _fail(str(exc))
        return
    if chosen is None:
        _fail(f"no console script or distribution called {name!r} in {env_dir}")
        return
    _run_entry_point(chosen[0], chosen[1], args)


if __name__ == "__main__":
    main(sys.argv[1:])
