"""The conformance engine: run every check of a reader or writer class, each under a time limit."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from dativo_plugin_sdk import PLUGIN_SDK_VERSION, BaseWriter, Column
from dativo_plugin_sdk._frames import PluginScope, check_frames, exception_chain, with_frames

from ._checks import (
    CheckFailedError,
    CheckSkippedError,
    ConformanceCheck,
    PluginSession,
    RegisteredCheck,
    bad_configs_of,
    describe_exception,
    plugin_name,
)
from ._plugin_loading import load_plugin_class
from ._plugin_names import hide_module_names
from ._reader_checks import READER_CHECKS, ReaderSession
from ._records import ALL_TYPES_SCHEMA
from ._report import CheckResult, CheckStatus, ConformanceReport
from ._sandboxed import IN_PROCESS_ONLY, plugin_reference, sandbox_backend, sandboxed_plugin
from ._spec_checks import READER_SPEC_CHECKS, WRITER_SPEC_CHECKS
from ._time_limit import CheckTimeoutError, call_with_time_limit
from ._version import __version__
from ._writer_checks import WRITER_CHECKS, ReadBack, WriterSession, read_back_hook

__all__ = ["DEFAULT_CHECK_TIMEOUT", "list_checks", "plugin_kind", "run_conformance"]

DEFAULT_CHECK_TIMEOUT = 60.0
"""Seconds each check may run before it fails as timed out."""

DEFAULT_HYPOTHESIS_EXAMPLES = 20


def plugin_kind(plugin_class: Any) -> Literal["reader", "writer"]:
    """Return ``"writer"`` for a ``BaseWriter`` subclass, else ``"reader"``."""
    return "writer" if isinstance(plugin_class, type) and issubclass(plugin_class, BaseWriter) else "reader"


def list_checks(kind: Literal["reader", "writer"]) -> tuple[ConformanceCheck, ...]:
    """Return the checks run for a reader or a writer, in the order they run.

    Args:
        kind: ``"reader"`` or ``"writer"``.

    Returns:
        The checks: name, description and the checks each requires.

    Raises:
        ValueError: For another ``kind``.
    """
    if kind == "reader":
        return tuple(c.check for c in READER_CHECKS + READER_SPEC_CHECKS)
    if kind == "writer":
        return tuple(c.check for c in WRITER_CHECKS + WRITER_SPEC_CHECKS)
    raise ValueError(f"kind must be 'reader' or 'writer', got {kind!r}")


def _plugin_frames(failure: BaseException, session: PluginSession) -> tuple[dict[str, Any], ...]:
    """Where the plugin raised the exception behind ``failure`` (itself, its cause or its context).

    The frames are read from the tracebacks when the plugin ran in this process; a plugin
    that ran elsewhere (a sandbox worker) sent them as its error's ``details.traceback``.
    """
    try:
        scope = PluginScope.of_class(session.plugin_class) if isinstance(session.plugin_class, type) else None
        frames = with_frames({}, failure, scope, plugin_only=True).get("traceback", [])
        if not frames:
            carried = (getattr(e, "details", None) for e in exception_chain(failure))
            frames = next(
                (
                    check_frames(d["traceback"])
                    for d in carried
                    if isinstance(d, Mapping) and check_frames(d.get("traceback"))
                ),
                [],
            )
    except Exception:  # Where a failure came from must never fail the report.
        return ()
    return tuple(frames)


def _run_one(registered: RegisteredCheck[Any], session: PluginSession, timeout: float) -> CheckResult:
    check = registered.check
    started = time.monotonic()
    offending: Any = None
    frames: tuple[dict[str, Any], ...] = ()
    try:
        reason = call_with_time_limit(lambda: registered.run(session), timeout, name=check.name)
        status = CheckStatus.PASSED
    except CheckFailedError as failure:
        status, reason, offending = CheckStatus.FAILED, failure.reason, failure.offending
        frames = _plugin_frames(failure, session)
    except CheckSkippedError as skipped:
        status, reason = CheckStatus.SKIPPED, skipped.reason
    except CheckTimeoutError:
        status = CheckStatus.FAILED
        reason = (
            f"timed out after {timeout:g}s: a plugin call did not return. Give every network or file "
            "operation a timeout; give the harness a smaller source, or a longer timeout"
        )
    except Exception as exc:
        status = CheckStatus.FAILED
        reason = f"the plugin raised {describe_exception(exc)} during the check"
        frames = _plugin_frames(exc, session)
    return CheckResult(
        name=check.name,
        status=status,
        reason=hide_module_names(reason),
        offending=hide_module_names(offending),
        description=check.description,
        duration_seconds=time.monotonic() - started,
        traceback=frames,
    )


def run_conformance(
    plugin_class: type[Any] | str,
    *,
    config: Mapping[str, Any],
    bad_config: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    stream: str | None = None,
    timeout: float = DEFAULT_CHECK_TIMEOUT,
    read_back: ReadBack | str | os.PathLike[str] | None = None,
    schema: Sequence[Column] | None = None,
    skip: Collection[str] = (),
    hypothesis_examples: int = DEFAULT_HYPOTHESIS_EXAMPLES,
    sandbox: str | None = None,
    sandbox_network: bool = False,
) -> ConformanceReport:
    """Run every conformance check on a reader or writer class and report each one.

    A ``BaseWriter`` subclass gets the writer checks; anything else the reader checks
    (so a class that is not a plugin fails ``reader.is_concrete_base_reader``). By default
    the plugin runs in this process; each check runs in a worker thread and fails when it
    exceeds ``timeout``. A check whose prerequisite did not pass is skipped, saying so.

    With ``sandbox="process"`` or ``"docker"`` the plugin runs in a ``dativo-run`` sandbox
    worker instead (``dativo-runtime`` must be installed): it is imported there, with what
    that sandbox can import, and never in this process, so a plugin that imports something
    only this environment has fails here rather than in production. The checks are the
    same; the few that measure this process are skipped, saying why.

    Args:
        plugin_class: The class under test, or a reference to it (``path/to/file.py:Class``,
            ``package.module:Class``); a sandbox loads a class again by its reference.
        config: A valid config (its source should hold a few hundred records at most,
            in several batches).
        bad_config: An invalid config, or a list of them (each must be rejected), for
            ``*.rejects_bad_config`` and ``reader.errors_are_dativo_errors``; those are
            skipped or reduced without one.
        stream: Readers: the stream to check; the first discovered one by default.
        timeout: Seconds each check may run.
        read_back: Writers: a hook ``(config) -> records`` returning everything committed
            to the target, or the output folder of a file writer (JSON-lines and Parquet
            files are read, ``_``/``.`` prefixed paths skipped). Without it the round-trip
            checks are skipped.
        schema: Writers: the columns written; :data:`ALL_TYPES_SCHEMA` by default.
        skip: Names of checks not to run (reported as skipped).
        hypothesis_examples: Writers: generated batches in ``writer.hypothesis_round_trip``.
        sandbox: ``None`` or ``"none"`` (in this process), ``"process"`` or ``"docker"``.
        sandbox_network: Let a sandboxed plugin open network connections (a job's
            ``sandbox.network``; off by default, as in a job).

    Returns:
        The report; ``report.passed`` is ``True`` when no check failed.

    Raises:
        TypeError: If ``config`` is not a mapping, or ``bad_config`` is neither a mapping
            nor a list of mappings.
        ValueError: If ``timeout`` or ``hypothesis_examples`` is not positive, ``skip``
            names an unknown check, ``sandbox`` is unknown, or a class to sandbox cannot
            be found again by reference.
        ConfigurationError: If a reference cannot be loaded, or ``dativo-runtime`` is not
            installed for a sandbox.
        DativoError: From the runtime when the sandbox does not work here (``SandboxError``).
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping, got {type(config).__name__}")
    bad_configs = bad_configs_of(bad_config)
    for item in bad_configs:
        if not isinstance(item, Mapping):
            raise TypeError(
                "bad_config must be a mapping, a list of mappings or None, got "
                f"{type(bad_config if bad_config is item else item).__name__}"
                + ("" if bad_config is item else " in the list")
            )
    if timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if hypothesis_examples <= 0:
        raise ValueError(f"hypothesis_examples must be positive, got {hypothesis_examples!r}")
    backend = sandbox_backend(sandbox)
    run = functools.partial(
        _run_checks,
        config=config,
        bad_configs=bad_configs,
        stream=stream,
        timeout=timeout,
        read_back=read_back,
        schema=schema,
        skip=skip,
        hypothesis_examples=hypothesis_examples,
    )
    if backend is None:
        if isinstance(plugin_class, str):
            plugin_class = load_plugin_class(plugin_class)
        return run(plugin_class)
    ref = plugin_class if isinstance(plugin_class, str) else plugin_reference(plugin_class)
    folder = read_back if isinstance(read_back, (str, os.PathLike)) else None
    with sandboxed_plugin(
        ref, backend=backend, output_dir=folder, network=sandbox_network, timeout=timeout
    ) as sandboxed_class:
        report = run(sandboxed_class, in_process_only=IN_PROCESS_ONLY)
    return dataclasses.replace(report, plugin=ref, sandbox=backend)


def _run_checks(
    plugin_class: type[Any],
    *,
    config: Mapping[str, Any],
    bad_configs: Sequence[Mapping[str, Any]],
    stream: str | None,
    timeout: float,
    read_back: ReadBack | str | os.PathLike[str] | None,
    schema: Sequence[Column] | None,
    skip: Collection[str],
    hypothesis_examples: int,
    in_process_only: Mapping[str, str] | None = None,
) -> ConformanceReport:
    kind = plugin_kind(plugin_class)
    registry: Sequence[RegisteredCheck[Any]] = (
        WRITER_CHECKS + WRITER_SPEC_CHECKS if kind == "writer" else READER_CHECKS + READER_SPEC_CHECKS
    )
    known = {r.check.name for r in registry}
    unknown = sorted(set(skip) - known)
    if unknown:
        raise ValueError(
            f"skip names unknown {kind} check(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    session: PluginSession
    if kind == "writer":
        session = WriterSession(
            plugin_class,
            config,
            bad_configs,
            schema=schema if schema is not None else ALL_TYPES_SCHEMA,
            read_back=read_back_hook(read_back),
            timeout=timeout,
            hypothesis_examples=hypothesis_examples,
        )
    else:
        session = ReaderSession(plugin_class, config, bad_configs, stream, timeout)
    results: dict[str, CheckResult] = {}
    for registered in registry:
        check = registered.check
        unmet = [name for name in check.requires if not results[name].passed]
        if check.name in skip:
            results[check.name] = CheckResult(
                check.name, CheckStatus.SKIPPED, "skipped on request", None, check.description
            )
        elif in_process_only and check.name in in_process_only:
            results[check.name] = CheckResult(
                check.name, CheckStatus.SKIPPED, in_process_only[check.name], None, check.description
            )
        elif unmet:
            first = results[unmet[0]]
            results[check.name] = CheckResult(
                check.name,
                CheckStatus.SKIPPED,
                f"needs {first.name} to pass, and it {first.status.value}",
                None,
                check.description,
            )
        else:
            results[check.name] = _run_one(registered, session, timeout)
    return ConformanceReport(
        plugin=plugin_name(plugin_class),
        kind=kind,
        checks=tuple(results.values()),
        sdk_version=PLUGIN_SDK_VERSION,
        testkit_version=__version__,
    )
