"""The hint a sandboxed plugin's ModuleNotFoundError gets: the module, and how to make it available."""

from __future__ import annotations

import pytest

from dativo_plugin_sdk import ConfigurationError, PluginError, ValidationError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox.host._import_hints import add_import_hint, import_hint, missing_module

# What the SDK's loader raises when a plugin file's import fails (worker side, at hello).
LOAD_ERROR = ConfigurationError(
    "plugin file '/p/x.py' (from reference 'x.py:X') cannot be imported: ModuleNotFoundError: No module "
    "named 'requests_oauthlib.oauth2' at /p/x.py, line 3; install what it imports or fix the code that raised",
    details={"ref": "x.py:X", "file": "/p/x.py", "line": 3, "exception_type": "ModuleNotFoundError"},
).to_dict()
# What the worker sends when a plugin method imports lazily and fails.
METHOD_ERROR = PluginError(
    "plugin 'x.py:X' raised ModuleNotFoundError in write_batch(): No module named 'dativo_testkit'",
    details={
        "ref": "x.py:X",
        "method": "write_batch",
        "exception_type": "ModuleNotFoundError",
        "exception": "No module named 'dativo_testkit'",
    },
).to_dict()
# A module reference whose package the sandbox does not have.
MODULE_ERROR = ConfigurationError(
    "plugin module 'acme_plugins.reader' (from reference 'acme_plugins.reader:Reader') is not installed "
    "or not importable; install the package that provides it or fix the reference",
    details={"ref": "acme_plugins.reader:Reader"},
).to_dict()


def test_the_missing_module_is_found_in_each_kind_of_error() -> None:
    assert missing_module(LOAD_ERROR) == "requests_oauthlib.oauth2"
    assert missing_module(METHOD_ERROR) == "dativo_testkit"
    assert missing_module(MODULE_ERROR) == "acme_plugins.reader"
    other = PluginError("plugin 'x' raised KeyError in extract(): 'No module named'").to_dict()
    assert missing_module(other) is None
    assert missing_module(ValidationError("bad row").to_dict()) is None


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_the_error_names_the_module_and_the_fix_for_its_backend(backend: str) -> None:
    ref = PluginRef.parse("/p/x.py:X")
    hinted = add_import_hint(LOAD_ERROR, backend, ref=ref)
    message = hinted["message"]
    assert message.startswith(LOAD_ERROR["message"])
    assert f"Module 'requests_oauthlib.oauth2' is not available in the {backend} sandbox" in message
    assert "the standard library, the plugin SDK, pyarrow, packaging, the plugin's own folder" in message
    assert "Add the package that provides 'requests_oauthlib' to /p/requirements.txt" in message
    assert "vendor it: copy requests_oauthlib into the plugin's own folder" in message
    assert "build-image" not in message
    assert hinted["details"]["missing_module"] == "requests_oauthlib.oauth2"
    assert hinted["details"]["hint"] == import_hint("requests_oauthlib.oauth2", backend, ref=ref)
    assert hinted["details"]["line"] == 3  # what the worker said is kept
    assert hinted["error_type"] == "ConfigurationError"


@pytest.mark.parametrize("ref", ["acme_plugins.reader:Reader", "acme-reader"])
def test_an_installed_plugin_is_told_to_declare_the_dependency_in_its_package(ref: str) -> None:
    message = add_import_hint(MODULE_ERROR, "process", ref=PluginRef.parse(ref))["message"]
    assert "Module 'acme_plugins.reader' is not available in the process sandbox" in message
    assert "to the plugin package's dependencies (pyproject.toml [project] dependencies)" in message
    assert "requirements.txt" not in message


def test_the_none_backend_names_the_plugins_process() -> None:
    message = add_import_hint(LOAD_ERROR, "none", ref=PluginRef.parse("/p/x.py:X"))["message"]
    assert "Module 'requests_oauthlib.oauth2' is not available in the process running the plugin" in message


def test_the_testkit_at_run_time_is_called_a_mistake() -> None:
    message = add_import_hint(METHOD_ERROR, "docker")["message"]
    assert "dativo_testkit is a test-time package, which a plugin must not depend on at run time" in message
    assert "build-image" not in message


def test_other_errors_are_left_alone() -> None:
    error = ValidationError("bad row", details={"row": 1}).to_dict()
    assert add_import_hint(error, "process") is error
