"""ConformanceReport renders as text and JSON and answers which checks failed."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from dativo_testkit import CheckResult, CheckStatus, ConformanceReport


def _report() -> ConformanceReport:
    return ConformanceReport(
        plugin="pkg.Reader",
        kind="reader",
        checks=(
            CheckResult("reader.a", CheckStatus.PASSED, "fine", description="A holds."),
            CheckResult(
                "reader.bb", CheckStatus.FAILED, "broken: fix it", offending={"at": datetime(2024, 1, 1)}
            ),
            CheckResult("reader.c", CheckStatus.SKIPPED, "no bad config"),
        ),
        sdk_version="1.0.0",
        testkit_version="0.1.0",
    )


def test_passed_is_false_when_any_check_failed() -> None:
    report = _report()
    assert not report.passed
    assert [c.name for c in report.failed] == ["reader.bb"]
    assert [c.name for c in report.skipped] == ["reader.c"]
    assert report.counts() == {"passed": 1, "failed": 1, "skipped": 1}
    assert ConformanceReport("p", "reader", report.checks[::2], "1.0.0", "0.1.0").passed
    with pytest.raises(KeyError):
        report.check("reader.zzz")


def test_text_has_a_line_per_check_with_reasons_and_offending_values() -> None:
    text = _report().to_text()
    assert text.splitlines()[0] == "Dativo conformance of pkg.Reader (reader): FAILED"
    assert "1 passed, 1 failed, 1 skipped" in text
    assert "PASS  reader.a   fine" in text
    assert "FAIL  reader.bb  broken: fix it" in text
    assert '      offending: {"at": "2024-01-01T00:00:00"}' in text
    assert "SKIP  reader.c   no bad config" in text


def test_json_round_trips() -> None:
    data = json.loads(_report().to_json())
    assert data["passed"] is False
    assert data["checks"][1] == {
        "name": "reader.bb",
        "status": "failed",
        "reason": "broken: fix it",
        "offending": {"at": "2024-01-01T00:00:00"},
        "description": "",
        "duration_seconds": 0.0,
        "traceback": [],
    }
    assert str(CheckStatus.SKIPPED) == "skipped"
