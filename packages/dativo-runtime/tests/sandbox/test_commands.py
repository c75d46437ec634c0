"""`dativo-run sandbox doctor` and `build-image`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dativo_runtime._cli._sandbox import sandbox_app
from dativo_runtime._sandbox._doctor import diagnose
from dativo_runtime._sandbox.docker import _image as _docker_image


def test_doctor_reports_every_backend_as_json():
    result = CliRunner().invoke(sandbox_app, ["doctor", "--json"])
    report = json.loads(result.output)
    backends = {b["name"]: b for b in report["backends"]}
    assert set(backends) == {"process", "docker", "none"}
    for name in ("process", "docker"):
        entry = backends[name]
        assert entry["detail"]
        if entry["available"]:
            assert entry["cold_start_s"] > 0
            assert entry["probe_s"] >= entry["cold_start_s"]
    isolated = backends["process"]["available"] or backends["docker"]["available"]
    assert result.exit_code == (0 if isolated else 1)


def test_doctor_text_says_why_a_backend_is_missing():
    reports = {r.name: r for r in diagnose(measure=False, image="dativo-sandbox:does-not-exist")}
    docker = reports["docker"]
    assert not docker.available
    assert "missing" in docker.detail or "unreachable" in docker.detail
    result = CliRunner().invoke(
        sandbox_app, ["doctor", "--no-measure", "--image", "dativo-sandbox:does-not-exist"]
    )
    assert "no  docker" in result.output


def test_python_version_is_read_from_python_base_tags():
    assert _docker_image._python_version_of("python:3.12-slim") == "3.12"
    assert _docker_image._python_version_of("registry.local/library/python:3.11") == "3.11"
    assert _docker_image._python_version_of("dativo-base:bookworm") is None


def test_offline_build_context_needs_local_wheels(tmp_path):
    with pytest.raises(_docker_image.ImageBuildError, match=r"collecting wheels for Python 3\.11"):
        _docker_image.prepare_build_context(
            tmp_path / "context", python_version="3.11", wheels=tmp_path, offline=True, echo=lambda _: None
        )
    context = tmp_path / "context"
    assert (context / "Dockerfile").read_text().startswith("# The Dativo sandbox image")
    built = sorted(p.name.split("-")[0] for p in (context / "wheels").glob("*.whl"))
    assert built == ["dativo_plugin_sdk", "dativo_runtime"]  # built from the source trees, offline


def test_build_image_errors_exit_without_traceback(tmp_path):
    result = CliRunner().invoke(sandbox_app, ["build-image", "--wheels", str(tmp_path / "nope"), "--offline"])
    assert result.exit_code in (1, 75)
    assert "error:" in result.output
    assert "Traceback" not in result.output
