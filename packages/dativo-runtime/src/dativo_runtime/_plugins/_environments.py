"""Plugin environments: folders of a plugin's requirements, built once by uv and shared by every job.

An environment is a ``uv pip install --target`` folder for the runtime's Python ``X.Y`` and
platform (one layout for every sandbox backend), stored at ``<store>/<key>``, where the store is
``$DATIVO_HOME/envs`` (``DATIVO_HOME`` defaults to ``$XDG_CACHE_HOME/dativo``, else
``~/.cache/dativo``) and the key is :attr:`EnvironmentSpec.key`. Beside each folder:

==================  ==================================================================
``<key>.lock``      an ``fcntl`` lock: exclusive while the folder is built or removed,
                    shared while a run uses it (:meth:`PluginEnvironment.in_use`)
``<key>.used``      touched on each use; its mtime is the "last used" of ``plugins envs``
``.tmp-<key>-*``    a build in progress, renamed to ``<key>`` when complete
==================  ==================================================================

A folder is complete only when it holds ``dativo-env.json`` (written last, before the atomic
rename), whose key must match its name; anything else is never used, and a later ensure or
prune removes it. Everything is made world-readable (the sandbox user is another uid). Two
processes that ensure the same spec at once build it once: the second waits on the lock and
then finds the folder complete.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._plugins._environment_files import (
    TRASH_PREFIX,
    disk_usage,
    key_lock,
    make_readable,
    remove_tree,
    touch_used,
    used_file,
)
from dativo_runtime._plugins._environment_spec import EnvironmentSpec
from dativo_runtime._plugins._plugin_requirements import environment_spec_for
from dativo_runtime._plugins._uv import UvInstallError, install_into, uv_version

__all__ = [
    "MARKER_FILE",
    "EnvironmentProgress",
    "EnvironmentSpec",
    "EnvironmentStore",
    "PluginEnvironment",
    "ProgressCallback",
    "PruneReport",
    "dativo_home",
    "ensure_environment",
    "environment_spec_for",
    "find_links_from_env",
    "use_environment",
]

MARKER_FILE = "dativo-env.json"
"""Written last into a complete environment: its spec, uv's version and when it was built."""

FIND_LINKS_VARIABLE = "DATIVO_FIND_LINKS"
_MARKER_FORMAT = 1
_TMP_PREFIX = ".tmp-"
_KEY_LENGTH = 16

Stage = Literal["reused", "waiting", "building", "output", "built", "failed"]


def dativo_home() -> Path:
    """Dativo's cache folder: ``$DATIVO_HOME``, else ``$XDG_CACHE_HOME/dativo``, else ``~/.cache/dativo``."""
    if os.environ.get("DATIVO_HOME"):
        return Path(os.environ["DATIVO_HOME"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "dativo"
    return Path.home() / ".cache" / "dativo"


def find_links_from_env() -> tuple[Path, ...]:
    """The wheel folders ``DATIVO_FIND_LINKS`` names (``os.pathsep``-separated), or none."""
    value = os.environ.get(FIND_LINKS_VARIABLE, "")
    return tuple(Path(part).expanduser() for part in value.split(os.pathsep) if part.strip())


def _check_find_links(folders: tuple[Path, ...]) -> tuple[Path, ...]:
    for folder in folders:
        if not folder.is_dir():
            raise ConfigurationError(
                f"--find-links / {FIND_LINKS_VARIABLE}: {str(folder)!r} is not a folder; name a folder of "
                "wheels (.whl files)",
                details={"option": "--find-links", "path": str(folder)},
            )
    return tuple(folder.resolve() for folder in folders)


@dataclass(frozen=True)
class EnvironmentProgress:
    """One step of ensuring an environment, for a progress display.

    Args:
        key: The environment's key.
        origin: Where its requirements were declared.
        stage: ``reused`` (it existed), ``waiting`` (another process is building it),
            ``building``, ``output`` (a line uv printed, in ``line``), ``built`` or ``failed``.
        line: uv's line for ``output``; the error summary for ``failed``.
        elapsed_s: Seconds since the build started (``built``/``failed``).
    """

    key: str
    origin: str
    stage: Stage
    line: str = ""
    elapsed_s: float = 0.0


ProgressCallback = Callable[[EnvironmentProgress], None]


@dataclass(frozen=True)
class PluginEnvironment:
    """A complete environment folder.

    Args:
        key: Its key (the folder's name).
        path: The folder: put it on ``sys.path`` (``site.addsitedir``) to use it.
        spec: What it was built from (``origin`` is the first builder's).
        created: When it was built (UTC).
        uv_version: The uv that built it.
        built: ``True`` when this call built it, ``False`` when it existed.
    """

    key: str
    path: Path
    spec: EnvironmentSpec
    created: datetime
    uv_version: str = "unknown"
    built: bool = field(default=False, compare=False)

    @property
    def last_used(self) -> datetime:
        """When a run last used it (the ``<key>.used`` file's mtime), else when it was built."""
        try:
            return datetime.fromtimestamp(used_file(self.path).stat().st_mtime, tz=timezone.utc)
        except OSError:
            return self.created

    def size_bytes(self) -> int:
        """Disk usage of the folder, as ``du`` counts it (hard links once)."""
        return disk_usage(self.path)

    @contextlib.contextmanager
    def in_use(self) -> Iterator[PluginEnvironment]:
        """Hold a shared lock on the environment so that ``prune`` leaves it alone meanwhile.

        Raises:
            FileNotFoundError: If the environment was removed before the lock was taken.
        """
        with key_lock(self.path.parent, self.key, shared=True):
            if _read_marker(self.path) is None:
                raise FileNotFoundError(errno.ENOENT, "the plugin environment was removed", str(self.path))
            touch_used(self.path)
            yield self

    def to_dict(self) -> dict[str, Any]:
        """JSON data of the environment (without its size, which takes a walk of the folder)."""
        return {
            "env_key": self.key,
            "path": str(self.path),
            "requirements": list(self.spec.requirements),
            "origin": self.spec.origin,
            "python": self.spec.python,
            "platform": self.spec.platform,
            "runtime_version": self.spec.runtime_version,
            "uv_version": self.uv_version,
            "created": self.created.isoformat(),
            "last_used": self.last_used.isoformat(),
        }


@dataclass
class PruneReport:
    """What :meth:`EnvironmentStore.prune` removed (or would remove, with ``dry_run``).

    Args:
        removed: The environments removed.
        in_use: Keys left because another process holds their lock (building or running).
        kept: Keys left because they are needed or were used recently.
        leftovers: Names of abandoned half-built or broken folders removed.
        freed_bytes: Disk space given back.
        dry_run: Nothing was removed; the report says what would be.
    """

    removed: list[PluginEnvironment] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON data of the prune (what ``plugins envs --prune --json`` prints)."""
        return {
            "ok": True,
            "dry_run": self.dry_run,
            "removed": [env.to_dict() for env in self.removed],
            "freed_bytes": self.freed_bytes,
            "in_use": list(self.in_use),
            "kept": list(self.kept),
            "leftovers": list(self.leftovers),
        }


def _read_marker(path: Path) -> dict[str, Any] | None:
    """The marker of a complete environment whose key matches its folder's name, else ``None``."""
    try:
        data = json.loads((path / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != path.name or data.get("format") != _MARKER_FORMAT:
        return None
    return data


def _environment(path: Path, data: dict[str, Any], *, built: bool = False) -> PluginEnvironment | None:
    try:
        spec = EnvironmentSpec.from_dict(data["spec"])
        created = datetime.fromisoformat(data["created"])
    except (KeyError, TypeError, ValueError, ConfigurationError):
        return None
    if spec.key != path.name:
        return None  # Built by a runtime that normalised differently: not this key's environment.
    return PluginEnvironment(
        key=path.name,
        path=path,
        spec=spec,
        created=created,
        uv_version=str(data.get("uv_version")),
        built=built,
    )


# The store -----------------------------------------------------------------------------


class EnvironmentStore:
    """The folder of plugin environments (``$DATIVO_HOME/envs`` by default).

    Args:
        root: The folder; created on first build.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root if root is not None else dativo_home() / "envs").expanduser().absolute()

    def __repr__(self) -> str:
        return f"EnvironmentStore({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """The folder an environment with this key has (or would have)."""
        return self.root / key

    def get(self, key: str) -> PluginEnvironment | None:
        """The complete environment with this key, or ``None`` (missing or half-built)."""
        path = self.path_for(key)
        data = _read_marker(path)
        return None if data is None else _environment(path, data)

    def list(self) -> list[PluginEnvironment]:
        """Every complete environment, oldest first (half-built folders are left out)."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue
            environment = self.get(path.name)
            if environment is not None:
                found.append(environment)
        return sorted(found, key=lambda e: (e.created, e.key))

    def ensure(
        self,
        spec: EnvironmentSpec,
        *,
        find_links: Collection[Path] | None = None,
        progress: ProgressCallback | None = None,
        wheels_only: bool = False,
    ) -> PluginEnvironment:
        """Return the environment of ``spec``, building it first when it is missing.

        Args:
            spec: What to install.
            find_links: Wheel folders to install from instead of the index (default:
                ``DATIVO_FIND_LINKS``).
            progress: Called with each :class:`EnvironmentProgress`.
            wheels_only: The requirements are a tenant's (cloud mode): install wheels only and
                refuse requirements that name a URL or a file, so that installing them runs none
                of their code on the host and reads none of its files.

        Returns:
            The environment; its last use is now.

        Raises:
            ConfigurationError: If the install fails (the message names the requirements and
                shows uv's ``error:``/``cause:``/``hint:`` lines; ``details["uv_output"]`` holds
                the tail of uv's output), a ``find_links`` folder is missing, or (``wheels_only``)
                a requirement names a URL or a file.
        """
        key = spec.key
        if wheels_only:
            _check_index_only(spec)

        def tell(stage: Stage, line: str = "", elapsed_s: float = 0.0) -> None:
            if progress is not None:
                progress(EnvironmentProgress(key, spec.origin, stage, line, elapsed_s))

        existing = self.get(key)
        if existing is not None:
            touch_used(existing.path)
            tell("reused")
            return existing
        links = _check_find_links(tuple(find_links) if find_links is not None else find_links_from_env())
        self._make_root()
        with key_lock(self.root, key, wait=False) as locked:
            if locked:
                return self._build_locked(spec, links, tell, wheels_only)
        tell("waiting", "another process is building this environment")
        with key_lock(self.root, key):
            return self._build_locked(spec, links, tell, wheels_only)

    def _make_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.root, stat.S_IMODE(self.root.stat().st_mode) | 0o755)

    def _build_locked(
        self,
        spec: EnvironmentSpec,
        find_links: tuple[Path, ...],
        tell: Callable[..., None],
        wheels_only: bool,
    ) -> PluginEnvironment:
        """Build under the key's exclusive lock (unless another process just did)."""
        key = spec.key
        final = self.path_for(key)
        existing = self.get(key)
        if existing is not None:
            touch_used(final)
            tell("reused")
            return existing
        remove_tree(final)  # A folder without a valid marker is never used.
        tell("building")
        started = time.monotonic()
        scratch = self.root / f"{_TMP_PREFIX}{key}-{secrets.token_hex(4)}"
        try:
            if spec.requirements:
                install_into(
                    scratch,
                    spec,
                    find_links=find_links,
                    on_line=lambda line: tell("output", line),
                    wheels_only=wheels_only,
                )
            scratch.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                (scratch / ".lock").unlink()  # uv's own lock of the target folder
            marker = {
                "format": _MARKER_FORMAT,
                "key": key,
                "spec": spec.to_dict(),
                "uv_version": uv_version() if spec.requirements else "unused",
                "created": datetime.now(timezone.utc).isoformat(),
            }
            (scratch / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            make_readable(scratch)
            scratch.rename(final)
        except UvInstallError as exc:
            tell("failed", exc.summary, time.monotonic() - started)
            raise _install_error(spec, exc, find_links, wheels_only) from None
        except BaseException:
            tell("failed", "", time.monotonic() - started)
            raise
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
        touch_used(final)
        tell("built", "", time.monotonic() - started)
        data = _read_marker(final)
        environment = None if data is None else _environment(final, data, built=True)
        if environment is None:  # pragma: no cover - written a moment ago
            raise ConfigurationError(f"plugin environment {final} is unreadable right after its build")
        return environment

    def prune(
        self,
        *,
        keep: Collection[str] = (),
        older_than: timedelta | None = timedelta(days=30),
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> PruneReport:
        """Remove environments not in ``keep`` whose last use is older than ``older_than``.

        Environments another process holds (being built, or in use by a run that took
        :meth:`PluginEnvironment.in_use`) are never removed. Abandoned half-built folders
        and lock/use files of removed environments are cleaned up too.

        Args:
            keep: Keys to keep whatever their age (those the current jobs need).
            older_than: Remove only environments unused for this long; ``None`` or zero:
                whatever their last use.
            dry_run: Report what would be removed; remove nothing.
            now: The current time (tests).

        Returns:
            What was removed, left in use, and kept.
        """
        report = PruneReport(dry_run=dry_run)
        if not self.root.is_dir():
            return report
        now = now or datetime.now(timezone.utc)
        keep = set(keep)
        for environment in self.list():
            too_recent = older_than is not None and environment.last_used > now - older_than
            if environment.key in keep or too_recent:
                report.kept.append(environment.key)
                continue
            with key_lock(self.root, environment.key, wait=False) as locked:
                if not locked:
                    report.in_use.append(environment.key)
                    continue
                report.removed.append(environment)
                report.freed_bytes += environment.size_bytes()
                if not dry_run:
                    remove_tree(environment.path)
                    self._forget(environment.key)
        if not dry_run:
            report.leftovers = self._remove_leftovers()
        return report

    def _forget(self, key: str) -> None:
        """Remove a gone environment's use and lock files (its lock held by the caller)."""
        for suffix in (".used", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                (self.root / f"{key}{suffix}").unlink()

    def _remove_leftovers(self) -> builtins.list[str]:
        """Remove half-built, broken and trashed folders and orphan files whose key nobody holds."""
        removed = []
        for path in sorted(self.root.iterdir()):
            name = path.name
            if name.startswith(TRASH_PREFIX):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
                continue
            if name.startswith(_TMP_PREFIX):
                key = name[len(_TMP_PREFIX) : len(_TMP_PREFIX) + _KEY_LENGTH]
            elif name.endswith((".used", ".lock")):
                key = name.rsplit(".", 1)[0]
                if self.path_for(key).exists():
                    continue
            elif path.is_dir() and _read_marker(path) is None:
                key = name
            else:
                continue
            if not path.exists():
                continue  # Removed with an earlier leftover of the same key.
            with key_lock(self.root, key, wait=False) as locked:
                if not locked:
                    continue
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
                if not self.path_for(key).exists():
                    self._forget(key)
        return removed


_WHEELS_ONLY_HINT = (
    "in cloud mode plugin environments are installed from wheels only, since building a source "
    "distribution runs the package's own code on the host: publish a wheel to the index (or a "
    "DATIVO_FIND_LINKS folder), or ask the operator to set sandbox.allow_source_builds: true"
)


def _check_index_only(spec: EnvironmentSpec) -> None:
    """Refuse a tenant's requirement that names a URL or a file instead of the operator's index."""
    direct = spec.direct_references()
    if direct:
        raise ConfigurationError(
            f"{spec.origin}: {', '.join(repr(r) for r in direct)} names a URL or a file instead of a "
            "package on the index; in cloud mode a plugin's requirements come from the operator's index "
            "(or DATIVO_FIND_LINKS) only: write 'name==version', or ask the operator to set "
            "sandbox.allow_source_builds: true",
            details={
                "origin": spec.origin,
                "requirements": list(direct),
                "setting": "sandbox.allow_source_builds",
            },
        )


def _install_error(
    spec: EnvironmentSpec, exc: UvInstallError, find_links: tuple[Path, ...], wheels_only: bool
) -> ConfigurationError:
    where = f" from {', '.join(map(str, find_links))} (--no-index)" if find_links else ""
    hint = f"\n({_WHEELS_ONLY_HINT})" if wheels_only else ""
    return ConfigurationError(
        f"cannot install the plugin environment of {spec.origin} "
        f"({', '.join(spec.requirements)}){where}; uv said:\n{exc.summary}{hint}",
        details={
            "origin": spec.origin,
            "requirements": list(spec.requirements),
            "key": spec.key,
            "find_links": [str(f) for f in find_links],
            "uv_exit_code": exc.exit_code,
            "wheels_only": wheels_only,
            "uv_output": exc.output,
        },
    )


def ensure_environment(
    spec: EnvironmentSpec,
    *,
    find_links: Path | Collection[Path] | None = None,
    progress: ProgressCallback | None = None,
    store: EnvironmentStore | None = None,
    wheels_only: bool = False,
) -> PluginEnvironment:
    """Return the environment of ``spec`` from the store, building it when missing.

    Args:
        spec: What to install (from :func:`environment_spec_for`).
        find_links: A wheel folder (or several) to install from with ``--no-index``;
            default: ``DATIVO_FIND_LINKS``.
        progress: Called with each :class:`EnvironmentProgress`.
        store: The store (default: ``$DATIVO_HOME/envs``).
        wheels_only: Wheels from the index only, no URL or file requirements (cloud mode; see
            :meth:`EnvironmentStore.ensure`).

    Returns:
        The complete environment; its last use is now.

    Raises:
        ConfigurationError: If the install fails (uv's message in it), a wheel folder is missing,
            or (``wheels_only``) a requirement names a URL or a file.
    """
    links = [find_links] if isinstance(find_links, Path) else find_links
    return (store or EnvironmentStore()).ensure(
        spec, find_links=links, progress=progress, wheels_only=wheels_only
    )


@contextlib.contextmanager
def use_environment(
    spec: EnvironmentSpec,
    *,
    find_links: Path | Collection[Path] | None = None,
    progress: ProgressCallback | None = None,
    store: EnvironmentStore | None = None,
) -> Iterator[PluginEnvironment]:
    """Ensure the environment of ``spec`` and hold it in use (safe from ``prune``) inside the block.

    Args:
        spec: What to install.
        find_links: As for :func:`ensure_environment`.
        progress: As for :func:`ensure_environment`.
        store: As for :func:`ensure_environment`.

    Yields:
        The complete environment.

    Raises:
        ConfigurationError: As :func:`ensure_environment`.
    """
    store = store or EnvironmentStore()
    for _ in range(5):
        environment = ensure_environment(spec, find_links=find_links, progress=progress, store=store)
        with key_lock(store.root, environment.key, shared=True):
            if _read_marker(environment.path) is None:
                continue  # Pruned between the ensure and the lock: build it again.
            touch_used(environment.path)
            yield environment
            return
    raise ConfigurationError(f"plugin environment {spec.key} keeps disappearing while it is ensured")
