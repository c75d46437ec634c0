"""The hint a sandboxed plugin's connection error gains when its sandbox has no network."""

from __future__ import annotations

import pytest

from dativo_runtime._sandbox.host._network_hints import add_network_hint

REFUSED = {
    "error_type": "ConnectionError",
    "error_code": "CONNECTION_FAILED",
    "message": "cannot reach http://127.0.0.1:8080: [Errno 101] Network is unreachable.",
    "details": {"url": "http://127.0.0.1:8080"},
    "retryable": True,
}


def test_a_connection_error_without_network_names_the_setting() -> None:
    hinted = add_network_hint(REFUSED, "process", network=False)
    assert hinted["message"].startswith(
        "cannot reach http://127.0.0.1:8080: [Errno 101] Network is unreachable. "
    )
    assert "sandbox.network: true" in hinted["message"]
    assert hinted["details"]["url"] == "http://127.0.0.1:8080"
    assert hinted["details"]["hint"] in hinted["message"]
    assert hinted["retryable"] is True


@pytest.mark.parametrize(
    ("error", "backend", "network"),
    [
        (REFUSED, "process", True),  # egress given: a real connection problem
        (REFUSED, "none", False),  # in-process: the host's own network
        ({**REFUSED, "error_type": "AuthenticationError"}, "docker", False),
    ],
)
def test_other_errors_are_unchanged(error: dict[str, object], backend: str, network: bool) -> None:
    assert add_network_hint(error, backend, network=network) is error
