"""Which backend runs a plugin: the mode, the job's request and the operator's policy."""

from __future__ import annotations

import pytest

from dativo_plugin_sdk import ConfigurationError, SandboxError
from dativo_runtime._plugin_ref import PluginRef
from dativo_runtime._sandbox import (
    BubblewrapSandbox,
    DockerSandbox,
    OperatorPolicy,
    SandboxLimits,
    _policy,
    choose_sandbox,
    should_sandbox_plugin,
)

PLUGIN = PluginRef.parse("/plugins/reader.py:Reader")
BUILTIN = PluginRef.parse("csv")


@pytest.fixture(autouse=True)
def no_operator_config(monkeypatch):
    """The policy tests do not read the machine's runtime configuration."""
    monkeypatch.delenv("DATIVO_RUNTIME_CONFIG", raising=False)


@pytest.fixture
def availability(monkeypatch):
    """Pretend which backends work on this machine."""
    works = {"process": True, "docker": True}

    def fake(name, policy):
        return works.get(name, True), f"{name} {'works' if works.get(name, True) else 'is missing'}"

    monkeypatch.setattr(_policy, "_availability", fake)
    return works


def test_cloud_mode_always_sandboxes_and_refuses_none(availability):
    assert should_sandbox_plugin("cloud", "auto", PLUGIN)
    assert should_sandbox_plugin("cloud", "none", PLUGIN)
    with pytest.raises(ConfigurationError, match="cloud mode always sandboxes plugins"):
        choose_sandbox("cloud", "none", PLUGIN, OperatorPolicy())


def test_auto_picks_the_strongest_available(availability):
    assert isinstance(choose_sandbox("cloud", "auto", PLUGIN, OperatorPolicy()), DockerSandbox)
    availability["docker"] = False
    assert isinstance(choose_sandbox("self_hosted", "auto", PLUGIN, OperatorPolicy()), BubblewrapSandbox)
    availability["process"] = False
    with pytest.raises(SandboxError, match=r"set sandbox\.backend: none in the job") as raised:
        choose_sandbox("self_hosted", "auto", PLUGIN, OperatorPolicy())
    assert raised.value.details["why"] == ["docker: docker is missing", "process: process is missing"]
    with pytest.raises(SandboxError) as raised:
        choose_sandbox("cloud", "auto", PLUGIN, OperatorPolicy())
    assert "sandbox.backend: none" not in str(raised.value)


def test_self_hosted_may_run_trusted_plugins_in_process(availability):
    from dativo_runtime._sandbox._inprocess import InProcessSandbox

    assert not should_sandbox_plugin("self_hosted", "none", PLUGIN)
    assert should_sandbox_plugin("self_hosted", "auto", PLUGIN)
    assert isinstance(choose_sandbox("self_hosted", "none", PLUGIN, OperatorPolicy()), InProcessSandbox)
    # Built-in connectors are the runtime's own code: in-process in every mode.
    assert not should_sandbox_plugin("cloud", "docker", BUILTIN)
    assert isinstance(choose_sandbox("cloud", "docker", BUILTIN, OperatorPolicy()), InProcessSandbox)


def test_explicit_backend_that_does_not_work_is_an_error(availability):
    availability["process"] = False
    with pytest.raises(
        SandboxError, match=r"sandbox backend 'process' requested .* does not work on this machine"
    ):
        choose_sandbox("self_hosted", "process", PLUGIN, OperatorPolicy())


def test_operator_restricts_and_pins_backends(availability):
    only_process = OperatorPolicy(allowed_backends=("process",))
    with pytest.raises(ConfigurationError, match="does not allow sandbox backend 'docker'"):
        choose_sandbox("cloud", "docker", PLUGIN, only_process)
    with pytest.raises(ConfigurationError, match="does not allow running plugins in-process"):
        choose_sandbox("self_hosted", "none", PLUGIN, only_process)
    assert isinstance(choose_sandbox("cloud", "auto", PLUGIN, only_process), BubblewrapSandbox)
    pinned = OperatorPolicy(pinned_backend="docker")
    assert isinstance(choose_sandbox("self_hosted", "auto", PLUGIN, pinned), DockerSandbox)
    assert should_sandbox_plugin("self_hosted", "none", PLUGIN, pinned)
    with pytest.raises(ConfigurationError, match="pins every plugin to 'docker'"):
        choose_sandbox("self_hosted", "process", PLUGIN, pinned)
    with pytest.raises(ConfigurationError, match="pins backend 'docker' but allows only"):
        OperatorPolicy(allowed_backends=("process",), pinned_backend="docker")


def test_limits_above_ceilings_name_both_numbers(availability):
    policy = OperatorPolicy(
        max_memory_bytes=1 << 30, max_timeout_s=600, max_cpu=2, max_pids=64, allow_network=False
    )
    with pytest.raises(
        ConfigurationError, match=r"sandbox.timeout is 900 seconds, above the ceiling of 600 seconds"
    ):
        choose_sandbox("cloud", "auto", PLUGIN, policy, limits=SandboxLimits(timeout_s=900))
    with pytest.raises(
        ConfigurationError, match=r"2147483648 bytes \(2 GiB\), above the ceiling of 1073741824"
    ):
        choose_sandbox("cloud", "auto", PLUGIN, policy, limits=SandboxLimits(memory_bytes=2 << 30))
    with pytest.raises(ConfigurationError, match="forbids it"):
        choose_sandbox("cloud", "auto", PLUGIN, policy, limits=SandboxLimits(network=True))
    backend = choose_sandbox("cloud", "auto", PLUGIN, policy, limits=SandboxLimits(cpu=2, pids=64))
    assert backend.ceilings == SandboxLimits(
        cpu=2, memory_bytes=1 << 30, timeout_s=600, pids=64, network=False
    )


def test_policy_file_from_the_environment(tmp_path, monkeypatch, availability):
    config = tmp_path / "runtime.yaml"
    config.write_text(
        "sandbox:\n"
        "  allowed_backends: [process, docker]\n"
        "  backend: process\n"
        "  ceilings: {cpu: 1.5, memory: 512m, timeout: 120, pids: 32}\n"
        "  allow_network: false\n"
        "  docker_image: registry.local/dativo-sandbox:1\n"
    )
    monkeypatch.setenv("DATIVO_RUNTIME_CONFIG", str(config))
    policy = OperatorPolicy.load()
    assert policy == OperatorPolicy(
        allowed_backends=("process", "docker"),
        pinned_backend="process",
        max_cpu=1.5,
        max_memory_bytes=512 << 20,
        max_timeout_s=120,
        max_pids=32,
        allow_network=False,
        docker_image="registry.local/dativo-sandbox:1",
    )
    with pytest.raises(ConfigurationError, match=str(config)):
        choose_sandbox("self_hosted", "none", PLUGIN)  # the policy comes from DATIVO_RUNTIME_CONFIG


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("sandbox: {backend: podman}", "unknown backend"),
        ("sandbox: {ceilings: {disk: 1}}", "unknown ceiling"),
        ("sandbox: {ceilings: {memory: lots}}", "memory"),
        ("sandbox: {colour: blue}", "unknown sandbox setting"),
        ("- a list", "must be a mapping"),
        ("sandbox: [unclosed", "not valid YAML"),
    ],
)
def test_invalid_policy_files(tmp_path, text, error):
    config = tmp_path / "runtime.yaml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=error):
        OperatorPolicy.load(config)


def test_missing_policy_file(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot be read"):
        OperatorPolicy.load(tmp_path / "absent.yaml")


def test_unknown_mode_or_backend():
    with pytest.raises(ConfigurationError, match="unknown runtime mode"):
        should_sandbox_plugin("edge", "auto", PLUGIN)
    with pytest.raises(ConfigurationError, match=r"unknown sandbox\.backend 'podman'"):
        choose_sandbox("cloud", "podman", PLUGIN, OperatorPolicy())
