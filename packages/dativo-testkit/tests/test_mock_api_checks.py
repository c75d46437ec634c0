"""The reader.mock_api_* checks: pointed at a MockApiServer, the suite drives its faults."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dativo_testkit import MockApiServer, MockReader, run_conformance

MOCK_CHECKS = (
    "reader.mock_api_authentication",
    "reader.mock_api_rate_limit",
    "reader.mock_api_server_errors",
    "reader.mock_api_unreachable",
)


@pytest.fixture
def api() -> Iterator[MockApiServer]:
    with MockApiServer(records=230) as server:
        yield server


def _flagged(module: ModuleType) -> list[str]:
    return [
        name
        for name, obj in vars(module).items()
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and hasattr(obj, "FLAGGED_BY")
    ]


def test_a_well_behaved_reader_passes_every_check(http_readers: ModuleType, api: MockApiServer) -> None:
    report = run_conformance(
        http_readers.HttpReader,
        config=api.reader_config(page_size=20),
        bad_config=api.reader_config(token="x"),
    )
    assert report.passed, report.to_text()
    # It does not split its stream, so the partition check is the one that does not apply.
    assert [c.name for c in report.skipped] == ["reader.partitions"], report.to_text()
    assert (
        report.check("reader.mock_api_authentication").reason == "HTTP 401 and 403 raised AuthenticationError"
    )
    assert report.check("reader.mock_api_rate_limit").reason == (
        "HTTP 429 raised RateLimitError with retry_after=1"
    )
    assert report.check("reader.mock_api_server_errors").reason == (
        "a burst of 3 HTTP 503 was retried: extract read every record; endless HTTP 500 raised TransientError"
    )
    assert report.check("reader.mock_api_unreachable").reason == "an unreachable API raised ConnectionError"
    statuses = {r.status for r in api.requests}
    assert {200, 401, 403, 429, 500, 503} <= statuses
    assert not api._faults, "the checks clear the faults they queued"


def test_a_reader_raising_bare_exceptions_fails_each_fault_check(
    http_readers: ModuleType, api: MockApiServer
) -> None:
    report = run_conformance(http_readers.BareExceptionReader, config=api.reader_config(page_size=20))
    assert {c.name for c in report.failed} == set(MOCK_CHECKS), report.to_text()
    reasons = {name: report.check(name).reason for name in MOCK_CHECKS}
    assert reasons["reader.mock_api_authentication"].startswith(
        "when the API answered HTTP 401 to every request, extract raised Exception: HTTP 401. Raise "
        "dativo_plugin_sdk.AuthenticationError on 401 and 403"
    )
    assert reasons["reader.mock_api_rate_limit"].startswith(
        "when the API answered HTTP 429 with 'Retry-After: 1' to every request, extract raised Exception: "
        "HTTP 429. Raise dativo_plugin_sdk.RateLimitError(..., retry_after=seconds)"
    )
    assert reasons["reader.mock_api_server_errors"].startswith(
        "after a burst of 3 HTTP 503 answers, extract raised Exception: HTTP 503. Raise "
        "dativo_plugin_sdk.TransientError on 5xx"
    )
    assert (
        "where nothing listens, extract raised Exception: cannot connect"
        in reasons["reader.mock_api_unreachable"]
    )
    assert "raise dativo_plugin_sdk.ConnectionError" in reasons["reader.mock_api_unreachable"]


@pytest.mark.parametrize(
    "name",
    ["AuthAsTransientReader", "NoRetryAfterReader", "SwallowsServerErrorsReader", "UncaughtUrlErrorReader"],
)
def test_each_broken_http_reader_is_flagged_by_exactly_its_check(
    http_readers: ModuleType, api: MockApiServer, name: str
) -> None:
    cls = getattr(http_readers, name)
    report = run_conformance(
        cls, config=api.reader_config(page_size=20), bad_config=api.reader_config(token="wrong")
    )
    assert {c.name for c in report.failed} == {cls.FLAGGED_BY}, report.to_text()


def test_the_broken_http_readers_are_all_listed(http_readers: ModuleType) -> None:
    assert sorted(_flagged(http_readers)) == sorted(
        [
            "AuthAsTransientReader",
            "NoRetryAfterReader",
            "SwallowsServerErrorsReader",
            "UncaughtUrlErrorReader",
        ]
    )


def test_swallowed_and_dropped_errors_are_explained(http_readers: ModuleType, api: MockApiServer) -> None:
    config = api.reader_config(page_size=20)
    swallowed = run_conformance(http_readers.SwallowsServerErrorsReader, config=config)
    assert "extract ended without raising (" in swallowed.check("reader.mock_api_server_errors").reason
    dropped = run_conformance(http_readers.NoRetryAfterReader, config=config)
    assert "raised RateLimitError without retry_after" in dropped.check("reader.mock_api_rate_limit").reason


def test_without_a_mock_api_the_fault_checks_are_skipped_and_say_how_to_run_them() -> None:
    report = run_conformance(MockReader, config={"records": 40})
    for name in MOCK_CHECKS:
        result = report.check(name)
        assert result.skipped
        assert "does not point at a running MockApiServer" in result.reason
        assert "MockApiServer.reader_config()" in result.reason


def test_a_stopped_server_is_not_recognised(http_readers: ModuleType) -> None:
    with MockApiServer(records=50) as server:
        config = server.reader_config(page_size=20)
    report = run_conformance(http_readers.HttpReader, config=config, skip=["reader.check_connection"])
    assert report.check("reader.mock_api_authentication").skipped


def test_a_localhost_url_and_a_nested_url_are_recognised(
    http_readers: ModuleType, api: MockApiServer
) -> None:
    from dativo_testkit._mock_api_checks import mock_api_of

    def found(config: dict[str, object]) -> object:
        target = mock_api_of(config)
        return getattr(target, "api", None)

    assert found({"base_url": api.url.replace("127.0.0.1", "localhost") + "/"}) is api
    assert found({"http": {"endpoints": [f"{api.url}/items"]}}) is api
    assert mock_api_of({"base_url": f"{api.url}0"}) is None


def test_the_fault_checks_run_in_the_pytest_factory_with_the_fixture(pytester: pytest.Pytester) -> None:
    plugin = Path(__file__).parent / "plugins" / "http_readers.py"
    pytester.makepyfile(
        test_http=f"""
        from dativo_testkit import conformance_test_class, load_plugin_class

        Reader = load_plugin_class({str(plugin)!r} + ":BareExceptionReader")
        TestReader = conformance_test_class(
            Reader, config=lambda dativo_mock_api: dativo_mock_api.reader_config(page_size=20)
        )
        """
    )
    result = pytester.runpytest("-k", "mock_api")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["*reader.mock_api_rate_limit: when the API answered HTTP 429*"])
