"""The conformance report: one result per named check, rendered as text or JSON."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from dativo_plugin_sdk._frames import format_frames

from ._json_values import to_json_safe

__all__ = ["CheckResult", "CheckStatus", "ConformanceReport"]


class CheckStatus(str, enum.Enum):
    """Outcome of one check."""

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one named check.

    Attributes:
        name: The check's stable name, e.g. ``reader.primary_keys_unique``.
        status: Passed, failed or skipped.
        reason: What was verified (passed), what is wrong and how to fix it (failed), or
            why the check did not run (skipped).
        offending: The record or value that failed the check, as JSON data, or ``None``.
        description: One line on what the check verifies.
        duration_seconds: How long the check ran.
        traceback: Where the plugin raised the exception that failed the check: its own
            frames (``file`` relative to the plugin's folder, ``line``, ``function``,
            ``code``), innermost first; empty when the failure was not an exception
            raised in plugin code.
    """

    name: str
    status: CheckStatus
    reason: str
    offending: Any = None
    description: str = ""
    duration_seconds: float = 0.0
    traceback: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        """Whether the check passed."""
        return self.status is CheckStatus.PASSED

    @property
    def failed(self) -> bool:
        """Whether the check failed."""
        return self.status is CheckStatus.FAILED

    @property
    def skipped(self) -> bool:
        """Whether the check was skipped."""
        return self.status is CheckStatus.SKIPPED

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable data."""
        return {
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "offending": to_json_safe(self.offending),
            "description": self.description,
            "duration_seconds": round(self.duration_seconds, 4),
            "traceback": [dict(frame) for frame in self.traceback],
        }


_LABELS = {CheckStatus.PASSED: "PASS", CheckStatus.FAILED: "FAIL", CheckStatus.SKIPPED: "SKIP"}


@dataclass(frozen=True)
class ConformanceReport:
    """Every check's result for one plugin class.

    Attributes:
        plugin: The plugin class, as ``module.QualifiedName``.
        kind: ``"reader"`` or ``"writer"``.
        checks: The results, in the order the checks ran.
        sdk_version: The installed ``dativo-plugin-sdk`` version.
        testkit_version: The ``dativo-testkit`` version that ran the checks.
        sandbox: The ``dativo-run`` sandbox the plugin ran in (``process``, ``docker``), or
            ``None`` when it ran in the test process; ``plugin`` is then the reference.
    """

    plugin: str
    kind: str
    checks: tuple[CheckResult, ...]
    sdk_version: str
    testkit_version: str
    sandbox: str | None = None

    @property
    def passed(self) -> bool:
        """``True`` when no check failed (skipped checks do not fail a report)."""
        return not any(c.failed for c in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        """The failed checks."""
        return tuple(c for c in self.checks if c.failed)

    @property
    def skipped(self) -> tuple[CheckResult, ...]:
        """The skipped checks."""
        return tuple(c for c in self.checks if c.skipped)

    def check(self, name: str) -> CheckResult:
        """Return the result of the check called ``name``.

        Raises:
            KeyError: If the report has no such check.
        """
        for result in self.checks:
            if result.name == name:
                return result
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        """Return how many checks passed, failed and were skipped."""
        return {status.value: sum(1 for c in self.checks if c.status is status) for status in CheckStatus}

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-serialisable data."""
        return {
            "plugin": self.plugin,
            "kind": self.kind,
            "passed": self.passed,
            "counts": self.counts(),
            "sdk_version": self.sdk_version,
            "testkit_version": self.testkit_version,
            "sandbox": self.sandbox,
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """Return the report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_text(self) -> str:
        """Return the report for a human: one line per check, reasons indented below."""
        counts = self.counts()
        verdict = "PASSED" if self.passed else "FAILED"
        where = f", in the {self.sandbox} sandbox" if self.sandbox else ""
        lines = [
            f"Dativo conformance of {self.plugin} ({self.kind}{where}): {verdict}",
            f"  {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
            f"(dativo-plugin-sdk {self.sdk_version}, dativo-testkit {self.testkit_version})",
            "",
        ]
        width = max((len(c.name) for c in self.checks), default=0)
        for result in self.checks:
            lines.append(f"{_LABELS[result.status]}  {result.name.ljust(width)}  {result.reason}")
            if result.offending is not None:
                offending = json.dumps(to_json_safe(result.offending), ensure_ascii=False)
                lines.append(f"      offending: {offending}")
            lines.extend(format_frames(result.traceback, indent="      "))
        return "\n".join(lines) + "\n"
