"""The operator's policy decides the mode and the ceilings, whatever a job file says (issue 11, 8 and 9).

Each test runs ``dativo-run run --json`` in a subprocess (the ``run_job`` fixture) with a
policy file named by ``DATIVO_RUNTIME_CONFIG``. The plugin is ``ProbeReader`` asking
``whoami``: run in-process it would report the runtime's own uid and pid, so a refused run
must end before any plugin code runs (exit 2, a ``ConfigurationError`` naming the setting
and the policy file, nothing written).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from .conftest import PLUGINS, HostileRun, require_backend

PROBE = {"plugin": f"{PLUGINS / 'hostile.py'}:ProbeReader", "config": {"attempts": [["whoami", ""]]}}
REFUSED_WITHIN_S = 30.0

RunJob = Callable[..., HostileRun]


def _policy(folder: Path, text: str, name: str = "runtime.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    policy = folder / name
    policy.write_text(text)
    return policy


def _run(run_job: RunJob, tmp_path: Path, policy: Path | None, **job: Any) -> HostileRun:
    env = {} if policy is None else {"DATIVO_RUNTIME_CONFIG": str(policy)}
    return run_job(tmp_path / "job", source=PROBE, env=env, **job)


def _assert_refused(run: HostileRun, setting: str, *fragments: str) -> str:
    """The run stopped with exit 2 and a ConfigurationError about ``setting``; nothing ran or was written."""
    assert run.exit_code == 2, (run.stdout, run.stderr)
    assert run.seconds < REFUSED_WITHIN_S
    error = run.error
    assert error["error_type"] == "ConfigurationError", error
    assert error["details"]["setting"] == setting, error
    message = str(error["message"])
    assert setting in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert run.report["records_read"] == 0
    assert not list((run.job.parent / "out").rglob("*.parquet"))
    assert "Traceback" not in run.stderr
    return message


def _whoami(run: HostileRun) -> dict[str, Any]:
    assert run.exit_code == 0, (run.stdout, run.stderr)
    (file,) = run.report["files"]
    (record,) = pq.read_table(file).to_pylist()
    assert str(record["result"]).startswith("ok: "), record
    seen: dict[str, Any] = json.loads(str(record["result"])[4:])
    return seen


def test_a_cloud_policy_refuses_a_self_hosted_job_asking_for_in_process(run_job, tmp_path):
    policy = _policy(tmp_path, "sandbox: {mode: cloud}\n")
    run = _run(run_job, tmp_path, policy, sandbox={"backend": "none"}, extra={"mode": "self_hosted"})
    _assert_refused(run, "sandbox.backend", str(policy), "sets mode: cloud", "cannot lower")
    assert run.error["details"]["job_mode"] == "self_hosted"
    assert run.error["details"]["mode"] == "cloud"


def test_a_cloud_policy_in_json_refuses_in_process_too(run_job, tmp_path):
    policy = _policy(tmp_path, json.dumps({"sandbox": {"mode": "cloud"}}), name="runtime.json")
    run = _run(run_job, tmp_path, policy, sandbox={"backend": "none"}, extra={"mode": "self_hosted"})
    _assert_refused(run, "sandbox.backend", str(policy))


def test_cloud_mode_denies_egress_unless_the_operator_allows_it(run_job, tmp_path):
    policy = _policy(tmp_path, "sandbox: {mode: cloud}\n")
    run = _run(run_job, tmp_path, policy, sandbox={"network": True}, extra={"mode": "self_hosted"})
    _assert_refused(run, "sandbox.network", str(policy), "allow_network: true")


@pytest.mark.parametrize(
    ("sandbox", "setting", "ceiling"),
    [
        ({"memory": "64g"}, "sandbox.memory", "8 GiB"),
        ({"pids": 100_000}, "sandbox.pids", "1024 processes"),
        ({"timeout": 1e9}, "sandbox.timeout", "86400 seconds"),
        ({"cpu": 64}, "sandbox.cpu", "4 cores"),
        ({"disk": "1t"}, "sandbox.disk", "100 GiB"),
    ],
)
def test_cloud_mode_has_default_ceilings(run_job, tmp_path, sandbox, setting, ceiling):
    policy = _policy(tmp_path, "sandbox: {mode: cloud}\n")
    run = _run(run_job, tmp_path, policy, sandbox=sandbox, extra={"mode": "self_hosted"})
    _assert_refused(run, setting, ceiling, "cloud mode's defaults", str(policy))


def test_sandbox_disk_above_the_operators_ceiling_is_refused(run_job, tmp_path):
    policy = _policy(tmp_path, "sandbox:\n  mode: cloud\n  ceilings: {disk: 1g}\n")
    run = _run(run_job, tmp_path, policy, sandbox={"disk": "2g"})
    _assert_refused(
        run,
        "sandbox.disk",
        "2147483648 bytes (2 GiB)",
        "above the ceiling of 1073741824 bytes (1 GiB)",
        str(policy),
    )


def test_a_misplaced_mode_is_an_error_not_ignored(run_job, tmp_path):
    # A top-level mode: cloud that were silently ignored would leave the deployment self-hosted.
    policy = _policy(tmp_path, "mode: cloud\nsandbox: {}\n")
    run = _run(run_job, tmp_path, policy, sandbox={"backend": "none"}, extra={"mode": "self_hosted"})
    assert run.exit_code == 2, (run.stdout, run.stderr)
    assert "sandbox: {mode: cloud}" in run.error["message"]
    assert not list((run.job.parent / "out").rglob("*.parquet"))


def test_a_cloud_policy_runs_a_self_hosted_job_in_a_sandbox(run_job, tmp_path):
    require_backend("process")
    policy = _policy(tmp_path, "sandbox: {mode: cloud, allowed_backends: [process]}\n")
    run = _run(run_job, tmp_path, policy, sandbox={"backend": "auto"}, extra={"mode": "self_hosted"})
    seen = _whoami(run)
    assert run.report["sandbox"]["source"] == "process"
    assert seen["uid"] != os.getuid()  # the sandbox's own user, not the runtime's


@pytest.mark.parametrize("policy_text", ["sandbox: {mode: self_hosted}\n", None])
def test_self_hosted_may_still_run_a_trusted_plugin_in_process(run_job, tmp_path, policy_text):
    # With a self_hosted policy, or no policy file at all (as before), backend none runs in-process.
    policy = None if policy_text is None else _policy(tmp_path, policy_text)
    run = _run(run_job, tmp_path, policy, sandbox={"backend": "none"}, extra={"mode": "self_hosted"})
    seen = _whoami(run)
    assert run.report["sandbox"] == {"source": "none", "target": "none"}
    assert seen["uid"] == os.getuid()


def test_a_cloud_job_stays_cloud_under_a_self_hosted_policy(run_job, tmp_path):
    policy = _policy(tmp_path, "sandbox: {mode: self_hosted}\n")
    run = _run(run_job, tmp_path, policy, sandbox={"backend": "none"}, extra={"mode": "cloud"})
    _assert_refused(run, "sandbox.backend", "the job sets mode: cloud")
