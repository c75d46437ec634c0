"""The SDK's example plugins pass the whole conformance suite.

JsonApiReader and ItemsRestReader (on dativo-http) read from the testkit's mock API
server, ArrowNumbersReader yields Arrow batches, JsonlWriter is read back from its output
folder. The examples are loaded by path, the way
``dativo-conformance path/to/file.py:ClassName`` loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import DativoError, RateLimitError, TransientError
from dativo_testkit import (
    MockApiServer,
    conformance_test_class,
    list_checks,
    load_plugin_class,
    read_output_folder,
    run_conformance,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "plugins"

JsonApiReader = load_plugin_class(f"{EXAMPLES / 'json_api_reader.py'}:JsonApiReader")
ArrowNumbersReader = load_plugin_class(f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader")
JsonlWriter = load_plugin_class(f"{EXAMPLES / 'jsonl_writer.py'}:JsonlWriter")
ItemsRestReader = load_plugin_class(f"{EXAMPLES / 'items_rest_reader.py'}:ItemsRestReader")


@pytest.fixture
def api() -> Iterator[MockApiServer]:
    with MockApiServer(records=230) as server:
        yield server


def _assert_every_check_passed(report: Any, *, http: bool = False) -> None:
    """Every check passed; the mock-API fault checks run only for a reader of the mock API.

    The examples do not split their stream, so ``reader.partitions`` is skipped, saying so.
    """
    assert [c.name for c in report.checks] == [c.name for c in list_checks(report.kind)]
    not_passed = [f"{c.name}: {c.status.value}: {c.reason}" for c in report.checks if not c.passed]
    unsplit = "reader.partitions: skipped: "
    assert all(not t.startswith(unsplit) or t.endswith("does not split its stream") for t in not_passed)
    not_passed = [text for text in not_passed if not text.startswith(unsplit)]
    if not http:
        not_passed = [text for text in not_passed if not text.startswith("reader.mock_api_")]
    assert not_passed == [], report.to_text()


def test_json_api_reader_passes_every_check(api: MockApiServer) -> None:
    report = run_conformance(
        JsonApiReader,
        config=api.reader_config(page_size=25),
        bad_config=api.reader_config(token="not-the-token"),
    )
    _assert_every_check_passed(report, http=True)
    assert {r.authorization for r in api.requests} == {"valid", "invalid"}
    # the fault checks drove 401/403, 429 and 5xx answers
    assert {r.status for r in api.requests} == {200, 401, 403, 429, 500, 503}


def _raised(call: Callable[[], object]) -> tuple[type[Exception], float | None]:
    """Return the class and ``retry_after`` of the DativoError ``call`` raises, keeping no reference to it.

    JsonApiReader raises its errors while handling urllib's HTTPError, which holds the
    response's socket; holding the exception (as ``pytest.raises`` does) would keep that
    socket open until a garbage collection warns about it.
    """
    try:
        call()
    except DativoError as exc:
        return type(exc), getattr(exc, "retry_after", None)
    raise AssertionError("no DativoError was raised")


def test_json_api_reader_maps_api_faults_to_dativo_errors(api: MockApiServer) -> None:
    reader = JsonApiReader(config=api.reader_config(page_size=50))
    api.rate_limit_next(retry_after=7)
    assert _raised(lambda: list(reader.extract())) == (RateLimitError, 7.0)
    api.fail_next(2, status=503)
    assert [_raised(lambda: list(reader.extract()))[0] for _ in range(2)] == [TransientError, TransientError]
    assert sum(len(batch) for batch in reader.extract()) == 230


def test_items_rest_reader_passes_every_check(api: MockApiServer) -> None:
    report = run_conformance(
        ItemsRestReader,
        config=api.reader_config(),
        bad_config=[api.reader_config(token="not-the-token"), {"base_url": api.url}],
    )
    _assert_every_check_passed(report, http=True)


def test_arrow_numbers_reader_passes_every_check() -> None:
    report = run_conformance(
        ArrowNumbersReader, config={"count": 250, "batch_size": 40}, bad_config={"count": "many"}
    )
    _assert_every_check_passed(report)


def test_jsonl_writer_passes_every_check(tmp_path: Path) -> None:
    output = tmp_path / "out"
    report = run_conformance(JsonlWriter, config={"path": str(output)}, bad_config={}, read_back=output)
    _assert_every_check_passed(report)
    assert read_output_folder(output), "the round trips committed JSON-lines files"


# The same suite as a plugin author runs it: one pytest test per check.
TestJsonApiReaderConformance = conformance_test_class(
    JsonApiReader,
    config=lambda dativo_mock_api: dativo_mock_api.reader_config(page_size=20),
    bad_config=lambda dativo_mock_api: dativo_mock_api.reader_config(token="wrong"),
)

TestJsonlWriterConformance = conformance_test_class(
    JsonlWriter,
    config=lambda tmp_path: {"path": str(tmp_path / "jsonl")},
    bad_config={"path": ""},
    read_back=lambda config: read_output_folder(config["path"]),
)
