"""The /readyz checks of `dativo-run serve`: job files, sandbox backends, state stores, targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from dativo_runtime._sandbox import OperatorPolicy
from dativo_runtime._serve import NotReadyError, job_readiness_checks, load_scheduled_jobs

PLUGINS = Path(__file__).resolve().parents[1] / "data" / "plugins.py"


def _job(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.yaml").write_text(f"name: {name}\nschedule: '@hourly'\n{body}")


def _run(checks: list) -> dict[str, str | None]:
    outcome = {}
    for check in checks:
        try:
            check.check()
            outcome[check.name] = None
        except NotReadyError as exc:
            outcome[check.name] = str(exc)
    return outcome


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (tmp_path / "in.csv").write_text("id\n1\n")
    _job(
        jobs,
        "good",
        "source: {plugin: csv, config: {path: ../in.csv}}\ntarget: {plugin: parquet, config: {path: ../out}}\n",
    )
    return jobs


def test_a_healthy_folder_is_ready(folder: Path) -> None:
    outcome = _run(job_readiness_checks(load_scheduled_jobs(folder)))
    assert outcome == {"job-files": None, "sandbox": None, "state-store": None, "targets": None}
    assert not list((folder.parent / "out").rglob("*ready-probe*")), "the probes clean up after themselves"


def test_each_check_names_the_jobs_that_fail_it(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    _job(folder, "invalid", "source: {plugin: csv, config: {path: x.csv}}\ntarget: {plugin: parquet}\n")
    _job(
        folder,
        "stateless",
        "source: {plugin: csv, config: {path: ../in.csv}}\ntarget: {plugin: parquet, config: {path: ../out2}}\n"
        "state: {uri: ../a-file/state}\n",
    )
    _job(
        folder,
        "docker",
        f"source: {{plugin: '{PLUGINS}:NumbersReader'}}\ntarget: {{plugin: parquet, config: {{path: ../a-file/x}}}}\n"
        "sandbox: {backend: docker}\n",
    )
    policy = OperatorPolicy(allowed_backends=("process",))
    outcome = _run(job_readiness_checks(load_scheduled_jobs(folder), policy=policy))
    assert "default/invalid" in outcome["job-files"]
    assert "target.config.path" in outcome["job-files"]
    assert "default/docker (source)" in outcome["sandbox"]
    assert "does not allow sandbox backend 'docker'" in outcome["sandbox"]
    assert "default/stateless" in outcome["state-store"]
    assert "default/good" not in outcome["state-store"]
    assert "default/docker" in outcome["targets"]
    assert "default/good" not in outcome["targets"]


def test_an_unreachable_s3_target_is_not_ready(folder: Path, moto_endpoint: str, aws_env: None) -> None:
    _job(
        folder,
        "lake",
        "source: {plugin: csv, config: {path: ../in.csv}}\n"
        f"target: {{plugin: parquet, config: {{path: 's3://no-such-bucket/x', endpoint_url: '{moto_endpoint}'}}}}\n",
    )
    outcome = _run(job_readiness_checks(load_scheduled_jobs(folder)))
    assert "default/lake" in outcome["targets"]
    assert "no-such-bucket" in outcome["targets"]
