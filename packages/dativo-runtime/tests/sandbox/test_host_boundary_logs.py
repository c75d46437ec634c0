"""The host's time is not the plugin's to spend: slow-to-redact text and endless waits (issue 11, finding 5).

Each test runs a hostile plugin (``plugins/attack_host_cpu.py``) through ``dativo-run run
--json`` in a subprocess, in each real backend, and checks that the run ends within a bound
time with the documented exit code and a typed error, that no internal error escapes, and
that a good job runs afterwards. Before the fix, one of these log lines cost the host 11 s of
CPU, the exception hung it for minutes, and ``retry_after=1e9`` slept for 31 years.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import BACKENDS, PLUGINS, HostileRun, require_backend

ATTACKS = PLUGINS / "attack_host_cpu.py"
TIME_BUDGET_S = 30.0
"""A run ends within this, whatever the plugin logs or asks the host to wait."""
RETRY = {"max_attempts": 2, "initial_delay": 0.1, "max_delay": 1}
MAX_TEXT = 16 * 1024 + 200
"""The longest text a log line or an error carries from a plugin (16 KiB and a marker)."""
CUT = re.compile(r"\[(truncated \d+ chars|\d+ more characters)\]")
"""The marker of a text cut by the host (by the log filter, or at the protocol boundary)."""

RunJob = Callable[..., HostileRun]


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each real sandbox backend's name in turn (skipped where it does not work)."""
    require_backend(request.param)
    return str(request.param)


def _attack(run_job: RunJob, folder: Path, backend: str, plugin: str, **config: Any) -> HostileRun:
    return run_job(
        folder,
        source={"plugin": f"{ATTACKS}:{plugin}", "config": config},
        sandbox={"backend": backend},
        extra={"retry": RETRY},
        timeout=120,
    )


def _log_events(run: HostileRun) -> list[dict[str, Any]]:
    events = []
    for line in run.stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _assert_ended(run: HostileRun, exit_code: int) -> None:
    assert run.exit_code == exit_code, (run.exit_code, run.stdout[-2000:], run.stderr[-3000:])
    assert run.seconds < TIME_BUDGET_S, run.seconds
    assert "OverflowError" not in run.stderr + run.stdout
    assert "INTERNAL_ERROR" not in run.stdout
    assert not list((run.job.parent / "out").rglob("*.parquet")), "a failed run committed files"


@pytest.mark.parametrize("how", ["value", "plugin"])
def test_slow_log_lines_and_a_huge_error_end_the_run_fast(
    good_run_afterwards, run_job, backend_name, tmp_path, how
):
    run = _attack(run_job, tmp_path, backend_name, "LogFloodReader", **{"raise": how})
    _assert_ended(run, exit_code=1)
    error = run.error
    assert error["error_type"] == "PluginError", error
    assert error["error_code"] == "PLUGIN_ERROR"
    events = _log_events(run)
    plugin_lines = [e for e in events if e.get("logger") == "dativo.plugin"]
    assert len(plugin_lines) == 7, [e.get("message", "")[:80] for e in events]
    for event in events:
        assert len(event.get("message", "")) <= MAX_TEXT, event.get("message", "")[:200]
        error_text = event.get("error", {})
        assert len(error_text.get("message", "")) <= MAX_TEXT
        assert len(error_text.get("traceback", "")) <= MAX_TEXT
    # The 1 MB line and the 30,000-character message show cut, with a marker that says so.
    assert any(CUT.search(e["message"]) for e in plugin_lines)
    failed = [e for e in events if str(e.get("message", "")).startswith("run failed")]
    assert failed
    assert all(CUT.search(e["message"]) for e in failed)
    assert len(error["message"]) <= MAX_TEXT
    assert CUT.search(error["message"])
    good_run_afterwards(tmp_path, backend_name)


def test_plugin_text_cannot_forge_a_text_log_line(good_run_afterwards, run_job, backend_name, tmp_path):
    run = run_job(
        tmp_path,
        source={"plugin": f"{ATTACKS}:LogFloodReader", "config": {"raise": "value"}},
        sandbox={"backend": backend_name},
        extra={"retry": RETRY},
        env={"DATIVO_LOG_FORMAT": "text"},
        timeout=120,
    )
    _assert_ended(run, exit_code=1)
    assert "\x1b" not in run.stderr
    assert "\r" not in run.stderr
    # The forged line only ever shows escaped, inside the plugin's own line.
    assert not any(line.startswith("12:00:00 INFO") for line in run.stderr.splitlines())
    assert r"\n12:00:00 INFO" in run.stderr
    good_run_afterwards(tmp_path, backend_name)


def test_a_31_year_retry_after_waits_max_delay_then_fails_retryable(
    good_run_afterwards, run_job, backend_name, tmp_path
):
    run = _attack(run_job, tmp_path, backend_name, "WaitForeverReader", wire="1e9")
    _assert_ended(run, exit_code=75)
    assert "Traceback" not in run.stderr
    error = run.error
    assert error["error_type"] == "TransientError", error
    assert error["retryable"] is True
    assert run.report["attempts"] == RETRY["max_attempts"]
    waits = [e["delay_s"] for e in _log_events(run) if "delay_s" in e]
    assert waits, run.stderr[-2000:]
    assert all(0 <= wait <= RETRY["max_delay"] for wait in waits), waits
    good_run_afterwards(tmp_path, backend_name)


@pytest.mark.parametrize("wire", ["1e999", "Infinity", "-1"])
def test_a_retry_after_that_is_not_finite_seconds_is_a_protocol_error(
    good_run_afterwards, run_job, backend_name, tmp_path, wire
):
    run = _attack(run_job, tmp_path, backend_name, "WaitForeverReader", wire=wire)
    _assert_ended(run, exit_code=1)
    assert "Traceback" not in run.stderr
    error = run.error
    assert error["error_type"] == "SandboxError", error
    assert error["retryable"] is False
    assert run.report["attempts"] == 1
    good_run_afterwards(tmp_path, backend_name)
