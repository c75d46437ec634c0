"""``conformance_test_class``: the conformance suite as a pytest test class, one test per check."""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dativo_plugin_sdk import Column
from dativo_plugin_sdk._frames import format_frames

from ._conformance import (
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_HYPOTHESIS_EXAMPLES,
    list_checks,
    plugin_kind,
    run_conformance,
)
from ._report import ConformanceReport
from ._writer_checks import ReadBack

if TYPE_CHECKING:
    import pytest

__all__ = ["conformance_test_class"]

ConfigSource = Mapping[str, Any] | Callable[..., Mapping[str, Any]]


def _resolve(value: ConfigSource, request: pytest.FixtureRequest) -> Mapping[str, Any]:
    """Return a config: a mapping as is, or what a callable returns given the fixtures it names."""
    if isinstance(value, Mapping):
        return value
    names = inspect.signature(value).parameters
    resolved = value(**{name: request.getfixturevalue(name) for name in names})
    if not isinstance(resolved, Mapping):
        raise TypeError(f"a config callable must return a mapping, got {type(resolved).__name__}")
    return resolved


def _resolve_bad(
    value: ConfigSource | Sequence[ConfigSource] | None, request: pytest.FixtureRequest
) -> list[Mapping[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_resolve(item, request) for item in value]
    return [_resolve(value, request)]  # type: ignore[arg-type]


def conformance_test_class(
    plugin_class: type[Any],
    *,
    config: ConfigSource,
    bad_config: ConfigSource | Sequence[ConfigSource] | None = None,
    stream: str | None = None,
    timeout: float | None = None,
    read_back: ReadBack | str | os.PathLike[str] | None = None,
    schema: Sequence[Column] | None = None,
    skip: Collection[str] = (),
    hypothesis_examples: int = DEFAULT_HYPOTHESIS_EXAMPLES,
    sandbox: str | None = None,
) -> type:
    """Build a pytest test class with one test per conformance check of ``plugin_class``.

    Assign the result to a module-level name starting with ``Test``. The first test of
    the class runs the whole suite (:func:`run_conformance`) once; every test then
    reports its own check: passed, failed with the reason, or skipped with why. Tests are
    marked ``dativo_conformance``.

    ``config`` and ``bad_config`` may be callables whose parameters name pytest
    fixtures, resolved when the suite runs: ``config=lambda dativo_mock_api:
    dativo_mock_api.reader_config()``.

    Args:
        plugin_class: The reader or writer class under test.
        config: A valid config, or a callable taking fixtures and returning one.
        bad_config: An invalid config (or callable), a list of them, or ``None``.
        stream: See :func:`run_conformance`.
        timeout: Seconds per check; default ``--dativo-check-timeout``, else 60.
        read_back: See :func:`run_conformance`.
        schema: See :func:`run_conformance`.
        skip: See :func:`run_conformance`.
        hypothesis_examples: See :func:`run_conformance`.
        sandbox: See :func:`run_conformance`; default ``--dativo-sandbox``, else in-process.
            A sandbox loads the class again by its reference (a plugin file or a module).

    Returns:
        A class with a ``test_<check>`` method per check.

    Example:
        >>> from dativo_testkit import MockReader, conformance_test_class
        >>> TestMockReader = conformance_test_class(MockReader, config={"records": 50})
        >>> "test_reader_primary_keys_unique" in dir(TestMockReader)
        True
    """
    import pytest  # imported here so that importing the testkit does not import pytest

    checks = list_checks(plugin_kind(plugin_class))
    cache: dict[str, ConformanceReport] = {}

    def report_for(request: pytest.FixtureRequest) -> ConformanceReport:
        if "report" not in cache:
            option = request.config.getoption("dativo_check_timeout", default=None)
            limit = timeout if timeout is not None else (option or DEFAULT_CHECK_TIMEOUT)
            where = sandbox or request.config.getoption("dativo_sandbox", default=None)
            cache["report"] = run_conformance(
                plugin_class,
                config=_resolve(config, request),
                bad_config=_resolve_bad(bad_config, request),
                stream=stream,
                timeout=float(limit),
                read_back=read_back,
                schema=schema,
                skip=skip,
                hypothesis_examples=hypothesis_examples,
                sandbox=where,
            )
        return cache["report"]

    def make_test(name: str, description: str) -> Callable[..., None]:
        def test(self: Any, request: pytest.FixtureRequest) -> None:
            result = report_for(request).check(name)
            if result.skipped:
                pytest.skip(f"{name}: {result.reason}")
            if result.failed:
                offending = ""
                if result.offending is not None:
                    offending = "\noffending: " + json.dumps(
                        result.offending, ensure_ascii=False, default=str
                    )
                where = "".join(f"\n{line}" for line in format_frames(result.traceback))
                pytest.fail(f"{name}: {result.reason}{offending}{where}", pytrace=False)

        test.__name__ = "test_" + name.replace(".", "_")
        test.__doc__ = description
        marked: Callable[..., None] = pytest.mark.dativo_conformance(test)
        return marked

    class_name = f"TestDativoConformance{plugin_class.__name__}"
    namespace: dict[str, Any] = {
        "__doc__": f"Dativo conformance checks of {plugin_class.__qualname__}.",
        "dativo_plugin_class": plugin_class,
    }
    for check in checks:
        test = make_test(check.name, check.description)
        test.__qualname__ = f"{class_name}.{test.__name__}"
        namespace[test.__name__] = test
    return type(class_name, (), namespace)
