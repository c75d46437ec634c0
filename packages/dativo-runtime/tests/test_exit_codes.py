"""Exit codes: the documented numbers and which error maps to which."""

from __future__ import annotations

import builtins

import pytest

from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    DativoConnectionError,
    DativoError,
    PluginError,
    PluginVersionError,
    RateLimitError,
    SandboxError,
    TransientError,
    ValidationError,
)
from dativo_runtime import ExitCode, exit_code_for
from dativo_runtime._exit_codes import exit_code_for_code, worst_exit_code


def test_documented_numbers() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "FAILURE": 1,
        "USAGE": 2,
        "DATA_INVALID": 65,
        "RETRYABLE": 75,
        "AUTHENTICATION": 77,
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigurationError("x"), 2),
        (PluginVersionError("x"), 2),
        (ValidationError("x"), 65),
        (AuthenticationError("x"), 77),
        (DativoConnectionError("x"), 75),
        (TransientError("x"), 75),
        (RateLimitError("x"), 75),
        (PluginError("x"), 1),
        (PluginError("x", retryable=True), 75),
        (SandboxError("x"), 1),
        (DativoError("x"), 1),
        (builtins.ConnectionRefusedError(), 75),
        (RuntimeError("x"), 1),
    ],
)
def test_errors_map_to_codes(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code


def test_check_result_codes() -> None:
    assert exit_code_for_code("AUTHENTICATION_FAILED") == 77
    assert exit_code_for_code("CONNECTION_FAILED", retryable=True) == 75
    assert exit_code_for_code("SOMETHING") == 1


def test_worst_code_prefers_what_needs_a_human() -> None:
    assert worst_exit_code([0, 0]) == 0
    assert worst_exit_code([0, 75, 1]) == 1
    assert worst_exit_code([75, 77]) == 77
    assert worst_exit_code([65, 2]) == 2
