"""Every backend checks a plugin's config against its config_schema after loading it and before building it.

In the ``process`` and ``docker`` backends the schema comes from the worker (the host never
imports the plugin); the config is sent only once it passed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import SandboxLimits
from dativo_runtime._sandbox._base import Sandbox
from dativo_runtime._sandbox._inprocess import InProcessSandbox
from dativo_runtime._secrets import REDACTOR

from .conftest import make_backend

SECRET = "tok-SECRET-4242"
LIMITS = SandboxLimits(timeout_s=60)


@pytest.fixture(params=["none", "process", "docker"])
def any_backend(request: pytest.FixtureRequest) -> Sandbox:
    """The in-process backend and each real sandbox."""
    return InProcessSandbox() if request.param == "none" else make_backend(request.param)


@pytest.fixture(autouse=True)
def _forget_secrets() -> Any:
    yield
    REDACTOR.clear()


def _spec_ref(plugin_ref: Callable[[str, str], PluginRef], name: str = "SpecReader") -> PluginRef:
    return plugin_ref("config_specs.py", name)


def test_a_config_that_matches_the_spec_runs(any_backend: Sandbox, plugin_ref: Any) -> None:
    config = {"records": 2, "bearer": SECRET + "-and-long-enough-here", "auth": {"key_material": "abcd"}}
    with any_backend.open_reader(_spec_ref(plugin_ref), config, limits=LIMITS) as session:
        rows = [r for batch in session.extract() for r in batch.data.to_pylist()]
    assert rows == [{"id": 0}, {"id": 1}]


def test_a_bad_config_is_refused_before_the_plugin_is_built(any_backend: Sandbox, plugin_ref: Any) -> None:
    config = {"records": "ten", "page_sise": 5, "bearer": SECRET, "auth": {"key_material": 12345678}}
    with pytest.raises(ConfigurationError) as caught:
        any_backend.open_reader(_spec_ref(plugin_ref), config, limits=LIMITS)
    error = caught.value
    message = REDACTOR.redact_text(error.message)
    # SpecReader raises RuntimeError from __init__ for this config: it was never built.
    assert "was built" not in error.message
    problems = {p["field"]: p["problem"] for p in error.details["problems"]}
    assert problems["page_sise"] == "is not a key this plugin takes; did you mean 'page_size'?"
    assert problems["records"] == "must be an integer, got 'ten' (a string)"
    assert problems["bearer"] == "must be at least 30 character(s) long"
    assert problems["auth.key_material"] == "must be a string, got an integer"
    assert error.details["field"] == "auth.key_material"
    assert "config.page_sise is not a key this plugin takes" in message
    for text in (error.message, str(error.to_dict())):
        assert SECRET not in text
        assert "12345678" not in text
    # The spec's secrets are registered: whatever prints them later prints *** instead.
    assert SECRET in REDACTOR
    assert "12345678" in REDACTOR


def test_an_invalid_config_schema_names_the_plugin(any_backend: Sandbox, plugin_ref: Any) -> None:
    ref = _spec_ref(plugin_ref, "BrokenSpecReader")
    with pytest.raises(PluginError) as caught:
        any_backend.open_reader(ref, {"records": 1}, limits=LIMITS)
    assert caught.value.message.startswith(f"plugin {ref.ref!r} declares an invalid config_schema: at type:")
    assert caught.value.details["reason"] == "invalid_config_schema"


def test_a_config_schema_that_is_not_json_names_the_plugin(any_backend: Sandbox, plugin_ref: Any) -> None:
    ref = _spec_ref(plugin_ref, "NotJsonSpecReader")
    with pytest.raises(PluginError) as caught:
        any_backend.open_reader(ref, {"records": 1}, limits=LIMITS)
    assert (
        f"plugin {ref.ref!r} declares an invalid config_schema: it is not JSON data" in caught.value.message
    )


def test_a_writer_config_is_checked_too(any_backend: Sandbox, plugin_ref: Any, tmp_path: Any) -> None:
    ref = plugin_ref("config_specs.py", "SpecWriter")
    with pytest.raises(ConfigurationError, match="compression must be one of 'none', 'gzip', got 'zip'"):
        any_backend.open_writer(
            ref, {"path": str(tmp_path), "compression": "zip"}, limits=LIMITS, output_dir=tmp_path
        )
    with any_backend.open_writer(ref, {"path": str(tmp_path)}, limits=LIMITS, output_dir=tmp_path) as session:
        assert session.info.role == "writer"
