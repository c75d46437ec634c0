"""What a sandboxed plugin may see and change: its own folder, read-only paths, and one output folder.

A sandbox mounts a file plugin's folder and the job's ``sandbox.read_only_paths`` read-only
and a target's output folder read-write. The checks here refuse a layout that would let the
plugin read or change the runtime's own files (the job file, its secrets, the state, the
quarantine, ``.dativo``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._jobs._model import JobConfig, is_remote_uri
from dativo_runtime._plugins._ref import PluginRef

__all__ = ["check_plugin_folder", "check_read_only_paths", "writable_output_dir"]

_SECRET_FILE = re.compile(r"(?<!\$)\$\{\s*file:([^}]*)\}")


def check_plugin_folder(job: JobConfig, ref: PluginRef, *, role: str = "source") -> None:
    """Refuse to mount a sandboxed file plugin's folder when it holds the job's own files.

    A sandbox mounts a file plugin's whole folder read-only (so the plugin can import the
    modules beside it). That folder must therefore not hold what the plugin may not read:
    the job file (and, beside it, the files its ``${file:...}`` secrets come from), the
    job's state, its target or quarantine folder, or the runtime's ``.dativo`` folder.

    Args:
        job: The job.
        ref: The plugin about to run in a sandbox.
        role: ``source``, ``target`` (which may see its own output and quarantine) or ``quarantine``.

    Raises:
        ConfigurationError: Naming the folder, what it holds and how to lay the files out.
    """
    folder = ref.plugin_dir
    if folder is None:
        return
    folder = folder.resolve()
    private: list[tuple[str, Path]] = []
    if job.source_file is not None:
        private.append(("the job file", job.source_file))
        private.append(("the runtime's .dativo folder", job.base_dir / ".dativo"))
    state = job.state_location()
    if not is_remote_uri(state):
        private.append(("the job's state", Path(state)))
    output = job.output_dir()
    if output is not None and role != "target":
        private.append(("the target folder", output))
    quarantine = job.quarantine_location()
    if quarantine is not None and not is_remote_uri(quarantine) and role != "target":
        private.append(("the quarantine dataset", Path(quarantine)))
    for what, path in private:
        resolved = path.resolve()
        if _inside(resolved, folder):
            raise ConfigurationError(
                f"plugin {ref.ref!r} would run sandboxed with its whole folder {str(folder)!r} readable, "
                f"and that folder holds {what} ({str(resolved)!r}); move the plugin (and the modules it "
                "imports) into a folder of its own, such as plugins/ beside the job file, and reference "
                "it from there",
                details={"setting": f"{role}.plugin", "plugin_dir": str(folder), "holds": str(resolved)},
            )


def _secret_files(job: JobConfig) -> list[Path]:
    """The files the job file's ``${file:...}`` references read (relative to its folder)."""
    if job.source_file is None:
        return []
    try:
        text = job.source_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    files = []
    for raw in _SECRET_FILE.findall(text):
        path = Path(raw.strip()).expanduser()
        files.append(path if path.is_absolute() else job.base_dir / path)
    return files


def check_read_only_paths(job: JobConfig) -> tuple[Path, ...]:
    """Return the job's ``sandbox.read_only_paths``, refusing one that exposes the runtime's own files.

    A read-only path is readable by the plugin whole, so it may neither hold nor lie inside
    the job file, its ``${file:...}`` secret files, the job's state, the runtime's ``.dativo``
    folder beside the job file, or the operator's runtime configuration.

    Raises:
        ConfigurationError: Naming the path, what it would expose and how to narrow it.
    """
    paths = job.read_only_paths()
    if not paths:
        return ()
    private: list[tuple[str, Path]] = []
    if job.source_file is not None:
        private.append(("the job file", job.source_file))
        private.append(("the runtime's .dativo folder", job.base_dir / ".dativo"))
    private += [("a secret file of the job (${file:...})", file) for file in _secret_files(job)]
    state = job.state_location()
    if not is_remote_uri(state):
        private.append(("the job's state", Path(state)))
    runtime_config = os.environ.get("DATIVO_RUNTIME_CONFIG")
    if runtime_config:
        private.append(("the operator's runtime configuration", Path(runtime_config)))
    for index, path in enumerate(paths):
        for what, protected in private:
            resolved = protected.resolve()
            if _inside(resolved, path) or _inside(path, resolved):
                raise ConfigurationError(
                    f"sandbox.read_only_paths[{index}] ({str(path)!r}) would let the plugin read {what} "
                    f"({str(resolved)!r}); name a narrower folder that holds only the plugin's input, "
                    "such as ./data beside the job file",
                    details={
                        "setting": "sandbox.read_only_paths",
                        "path": str(path),
                        "holds": str(resolved),
                    },
                )
    return paths


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def writable_output_dir(job: JobConfig) -> Path | None:
    """Return the one local folder a sandboxed target plugin may write to.

    A sandboxed writer may change anything in that folder, so it may not hold (or lie
    inside) the runtime's own bookkeeping: the job's state, the quarantine dataset, the
    job file, a ``.dativo`` or ``_dativo`` folder.

    Returns:
        The resolved folder, or ``None`` when the target is remote or names no ``path``.

    Raises:
        ConfigurationError: If the folder overlaps the runtime's bookkeeping; the message
            names both and the setting to change (``details["field"]`` is ``path``).
    """
    folder = job.output_dir()
    if folder is None:
        return None
    folder = folder.resolve()
    protected: list[tuple[str, Path, str]] = []
    state = job.state_location()
    if not is_remote_uri(state):
        protected.append(("the job's state", Path(state), "set state.uri to a folder outside it"))
    quarantine = job.quarantine_location()
    if quarantine is not None and not is_remote_uri(quarantine):
        protected.append(
            ("the quarantine dataset", Path(quarantine), "set quarantine.path to a folder outside it")
        )
    fix = "point target.config.path at a folder of its own"
    if job.source_file is not None:
        protected.append(("the job file", job.source_file, "keep job files outside the output folder"))
        protected.append(("the runtime's .dativo folder", job.base_dir / ".dativo", fix))
    if (folder / "_dativo").exists():
        protected.append(("a parquet target's _dativo folder", folder / "_dativo", fix))
    bookkeeping = next((part for part in folder.parts if part in (".dativo", "_dativo")), None)
    if bookkeeping is not None:
        protected.append((f"the runtime's {bookkeeping} folder", folder, fix))
    for what, path, hint in protected:
        resolved = path.resolve()
        if _inside(resolved, folder) or _inside(folder, resolved):
            raise ConfigurationError(
                f"the sandboxed writer may change everything in its output folder {str(folder)!r}, which "
                f"overlaps {what} ({str(resolved)!r}); {hint}, so that the plugin cannot touch the "
                "runtime's bookkeeping",
                details={"field": "path", "output_dir": str(folder), "protected": str(resolved)},
            )
    return folder
