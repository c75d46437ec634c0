"""The config-spec checks: a declared config_schema is a valid JSON Schema, the valid config satisfies it, each bad one breaks it."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dativo_testkit import CheckStatus, MockReader, list_checks, run_conformance
from dativo_testkit._checks import CheckFailedError
from dativo_testkit._spec_child import spec_problems_in_child

SPEC_CHECKS = ("config_spec_valid", "config_spec_accepts_valid_config", "config_spec_rejects_bad_configs")


def _spec_fixtures(module: ModuleType, kind: str) -> list[Any]:
    return [
        obj
        for _, obj in sorted(vars(module).items())
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and getattr(obj, "FLAGGED_BY", "").startswith(f"{kind}.")
    ]


def _run(cls: Any, tmp_path: Path) -> Any:
    if hasattr(cls, "CONFIG"):
        return run_conformance(cls, config=cls.CONFIG, bad_config=cls.BAD_CONFIG)
    return run_conformance(
        cls, config={"folder": str(tmp_path)}, bad_config=cls.BAD_CONFIG, read_back=tmp_path
    )


def test_the_spec_checks_are_listed_for_both_kinds() -> None:
    for kind in ("reader", "writer"):
        names = [c.name for c in list_checks(kind)]  # type: ignore[arg-type]
        assert [n for n in names if "config_spec" in n] == [f"{kind}.{n}" for n in SPEC_CHECKS]


@pytest.mark.parametrize("name", ["SpecReader", "SpecWriter"])
def test_a_good_spec_passes_every_check(broken_specs: ModuleType, name: str, tmp_path: Path) -> None:
    report = _run(getattr(broken_specs, name), tmp_path)
    not_passed = [
        c.name
        for c in report.checks
        if not c.passed and ".mock_api_" not in c.name and c.name != "reader.partitions"
    ]
    assert not_passed == [], report.to_text()
    kind = "reader" if name == "SpecReader" else "writer"
    assert "valid JSON Schema (draft 2020-12) with" in report.check(f"{kind}.config_spec_valid").reason


@pytest.mark.parametrize(
    "name",
    [
        "InvalidSpecReader",
        "NotJsonSpecReader",
        "SpecRefusesValidConfigReader",
        "SpecAcceptsBadConfigReader",
        "InvalidSpecWriter",
        "SpecRefusesValidConfigWriter",
        "SpecAcceptsBadConfigWriter",
    ],
)
def test_a_broken_spec_is_flagged_by_exactly_its_check(
    broken_specs: ModuleType, name: str, tmp_path: Path
) -> None:
    cls = getattr(broken_specs, name)
    report = _run(cls, tmp_path)
    assert {c.name for c in report.failed} == {cls.FLAGGED_BY}, report.to_text()


def test_every_broken_spec_fixture_is_tested(broken_specs: ModuleType) -> None:
    names = {
        c.__name__ for c in _spec_fixtures(broken_specs, "reader") + _spec_fixtures(broken_specs, "writer")
    }
    assert names == {
        "InvalidSpecReader",
        "NotJsonSpecReader",
        "SpecRefusesValidConfigReader",
        "SpecAcceptsBadConfigReader",
        "InvalidSpecWriter",
        "SpecRefusesValidConfigWriter",
        "SpecAcceptsBadConfigWriter",
    }


def test_the_failures_say_where_and_what(broken_specs: ModuleType) -> None:
    invalid = run_conformance(broken_specs.InvalidSpecReader, config={"records": 5}).check(
        "reader.config_spec_valid"
    )
    assert "not a valid JSON Schema (draft 2020-12): at type:" in invalid.reason
    not_json = run_conformance(broken_specs.NotJsonSpecReader, config={"records": 5}).check(
        "reader.config_spec_valid"
    )
    assert "is not JSON data" in not_json.reason
    refused = run_conformance(
        broken_specs.SpecRefusesValidConfigReader, config={"records": 5, "batch_size": 2}
    ).check("reader.config_spec_accepts_valid_config")
    assert "(the config): the 'additionalProperties' rule (false)" in refused.reason
    assert "dativo-run would refuse it" in refused.reason
    loose = run_conformance(
        broken_specs.SpecAcceptsBadConfigReader, config={"records": 5}, bad_config={"records": -1}
    ).check("reader.config_spec_rejects_bad_configs")
    assert loose.reason.startswith("bad config #1 of 1 satisfies")


def test_no_value_of_the_config_appears_in_a_report(broken_specs: ModuleType) -> None:
    """A refused valid config is described by key path and rule only: a secret never shows."""
    report = run_conformance(
        broken_specs.SpecReader,
        config={"records": 5, "batch_size": 2, "token": 12345678, "extra": "s3cr3t-value"},
    )
    failure = report.check("reader.config_spec_accepts_valid_config")
    assert failure.status is CheckStatus.FAILED
    assert "token: the 'type' rule" in failure.reason
    text = json.dumps(report.to_dict()) + report.to_text()
    assert "12345678" not in text
    assert "s3cr3t-value" not in text


def test_a_plugin_without_a_spec_skips_the_spec_checks_saying_why() -> None:
    report = run_conformance(MockReader, config={"records": 5})
    skipped = report.check("reader.config_spec_valid")
    assert skipped.status is CheckStatus.SKIPPED
    assert "declares no config_schema" in skipped.reason
    assert report.check("reader.config_spec_accepts_valid_config").reason == (
        "needs reader.config_spec_valid to pass, and it skipped"
    )


def test_without_a_bad_config_the_bad_config_check_skips(broken_specs: ModuleType) -> None:
    report = run_conformance(broken_specs.SpecReader, config={"records": 5})
    check = report.check("reader.config_spec_rejects_bad_configs")
    assert check.status is CheckStatus.SKIPPED
    assert "no bad config was given" in check.reason


class _TokenSpecReader(MockReader):
    """A spec under which a refused token is well-formed: the plugin builds, then fails to connect."""

    config_schema = {
        "type": "object",
        "properties": {
            "records": {"type": "integer", "minimum": 0},
            "check_connection_error": {"enum": ["authentication", "connection"]},
        },
        "additionalProperties": False,
    }


def test_a_well_formed_bad_config_may_satisfy_the_spec() -> None:
    """A bad config the plugin builds with (wrong only where it connects) is no gap in the spec."""
    report = run_conformance(
        _TokenSpecReader,
        config={"records": 5},
        bad_config={"check_connection_error": "authentication"},
    )
    check = report.check("reader.config_spec_rejects_bad_configs")
    assert check.status is CheckStatus.PASSED, report.to_text()
    assert "#1 satisfy it but are well-formed" in check.reason
    malformed = run_conformance(_TokenSpecReader, config={"records": 5}, bad_config={"records": -1})
    assert malformed.check("reader.config_spec_rejects_bad_configs").status is CheckStatus.PASSED
    # records: -1 breaks "minimum": 0; with a looser spec the same config is a gap, as SpecAcceptsBadConfigReader shows.


def _ref_bomb(levels: int = 40) -> dict[str, Any]:
    """Levels of ``anyOf`` of two ``$ref`` to the next level: 2**levels steps to apply (3 KB)."""
    defs: dict[str, Any] = {f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(levels)}
    defs[f"d{levels}"] = {"type": "integer"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


class RefBombSpecReader(MockReader):
    """Declares a valid JSON Schema that takes 2**40 steps to apply to any config."""

    config_schema = _ref_bomb()


def test_a_spec_too_slow_to_apply_fails_its_checks_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from dativo_testkit import _spec_child

    monkeypatch.setattr(_spec_child, "SPEC_CHECK_TIMEOUT_S", 1.0)
    began = time.monotonic()
    report = run_conformance(RefBombSpecReader, config={"records": 3}, bad_config={"records": "x"})
    assert time.monotonic() - began < 60
    failed = {c.name: c.reason for c in report.failed}
    assert set(failed) == {
        "reader.config_spec_accepts_valid_config",
        "reader.config_spec_rejects_bad_configs",
    }
    for reason in failed.values():
        assert "against RefBombSpecReader.config_schema takes more than 1 s" in reason
        assert "a $ref in an anyOf, oneOf or allOf multiplies" in reason


def test_the_child_checks_the_schema_and_each_config() -> None:
    schema = {"type": "object", "properties": {"records": {"type": "integer"}}, "required": ["records"]}
    assert spec_problems_in_child("R", schema, [{"records": 1}, {"records": "x"}, {}]) == [
        [],
        ["records: the 'type' rule (\"integer\")"],
        ["(the config): the 'required' rule ([\"records\"])"],
    ]
    with pytest.raises(
        CheckFailedError, match=r"R.config_schema is not a valid JSON Schema \(draft 2020-12\)"
    ):
        spec_problems_in_child("R", {"type": "obj"}, [])
