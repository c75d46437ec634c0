"""Which backend runs a plugin: the mode, the job's request and the operator's policy (its mode and ceilings)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import ConfigurationError, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import (
    BubblewrapSandbox,
    DockerSandbox,
    OperatorPolicy,
    SandboxLimits,
    _policy,
    choose_sandbox,
    should_sandbox_plugin,
)
from dativo_runtime._sandbox._policy import CLOUD_DEFAULT_CEILINGS, MODES
from dativo_runtime._sandbox.host._remote import effective_limits

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
    # The operator set no disk ceiling: a cloud-mode job gets cloud mode's default one.
    assert backend.ceilings == SandboxLimits(
        cpu=2, memory_bytes=1 << 30, timeout_s=600, pids=64, network=False, disk_bytes=100 << 30
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
        ("sandbox: {ceilings: {swap: 1}}", "unknown ceiling"),
        ("sandbox: {ceilings: {memory: lots}}", "memory"),
        ("sandbox: {colour: blue}", "unknown sandbox setting"),
        ("- a list", "must be a mapping"),
        ("sandbox: [unclosed", "not valid YAML"),
        ("sandbox: {allow_source_builds: sometimes}", "allow_source_builds must be true or false"),
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


# The operator's mode (issue 11, finding 8) and the disk ceiling (finding 9) ----------------------


@pytest.mark.parametrize(
    ("policy_mode", "job_mode", "expected"),
    [
        ("self_hosted", "self_hosted", "self_hosted"),
        ("self_hosted", "cloud", "cloud"),
        ("cloud", "self_hosted", "cloud"),
        ("cloud", "cloud", "cloud"),
    ],
)
def test_the_stricter_mode_wins(policy_mode, job_mode, expected):
    assert OperatorPolicy(mode=policy_mode).effective_mode(job_mode) == expected


@pytest.mark.parametrize(
    ("text", "job_mode", "expected"),
    [
        ("sandbox: {}", "self_hosted", True),
        ("sandbox: {}", "cloud", False),
        ("sandbox: {mode: cloud}", "self_hosted", False),
        ("sandbox: {mode: cloud, allow_source_builds: true}", "cloud", True),
        ("sandbox: {allow_source_builds: false}", "self_hosted", False),
    ],
)
def test_source_builds_are_off_in_cloud_mode_unless_allowed(tmp_path, text, job_mode, expected):
    config = tmp_path / "runtime.yaml"
    config.write_text(text)
    assert OperatorPolicy.load(config).allows_source_builds(job_mode) is expected


def test_without_a_policy_file_the_jobs_mode_decides():
    policy = OperatorPolicy.load()
    assert policy.mode == "self_hosted"
    assert policy.effective_mode("self_hosted") == "self_hosted"
    assert policy.ceilings() == SandboxLimits(network=True)  # no ceilings, egress allowed: as before


def test_a_cloud_policy_overrides_a_self_hosted_job(availability):
    policy = OperatorPolicy(mode="cloud", source="/etc/dativo/runtime.yaml")
    assert should_sandbox_plugin("self_hosted", "none", PLUGIN, policy)
    with pytest.raises(ConfigurationError) as refused:
        choose_sandbox("self_hosted", "none", PLUGIN, policy)
    message = refused.value.message
    assert "cloud mode always sandboxes plugins" in message
    assert "the operator's policy (/etc/dativo/runtime.yaml) sets mode: cloud" in message
    assert "cannot lower" in message
    assert refused.value.details["setting"] == "sandbox.backend"
    assert refused.value.details["policy"] == "/etc/dativo/runtime.yaml"
    # The job still gets a sandbox when it asks for one (or for auto).
    assert isinstance(choose_sandbox("self_hosted", "auto", PLUGIN, policy), DockerSandbox)
    assert isinstance(choose_sandbox("self_hosted", "process", PLUGIN, policy), BubblewrapSandbox)
    # Built-in connectors are the runtime's own code and stay in-process.
    assert not should_sandbox_plugin("self_hosted", "none", BUILTIN, policy)


def test_a_cloud_job_stays_cloud_under_a_self_hosted_policy(availability):
    policy = OperatorPolicy(mode="self_hosted")
    with pytest.raises(ConfigurationError, match="the job sets mode: cloud"):
        choose_sandbox("cloud", "none", PLUGIN, policy)
    pinned = OperatorPolicy(pinned_backend="none")
    assert should_sandbox_plugin("cloud", "auto", PLUGIN, pinned)
    with pytest.raises(ConfigurationError, match="pins every plugin to 'none'"):
        choose_sandbox("cloud", "auto", PLUGIN, pinned)


def test_a_cloud_policy_pins_like_any_other(availability):
    policy = OperatorPolicy(mode="cloud", allowed_backends=("process", "docker"), pinned_backend="process")
    assert isinstance(choose_sandbox("self_hosted", "auto", PLUGIN, policy), BubblewrapSandbox)
    with pytest.raises(ConfigurationError, match="pins every plugin to 'process'"):
        choose_sandbox("self_hosted", "none", PLUGIN, policy)


def test_cloud_mode_denies_egress_unless_the_operator_allows_it(availability):
    egress = SandboxLimits(network=True)
    for policy, job_mode in ((OperatorPolicy(mode="cloud"), "self_hosted"), (OperatorPolicy(), "cloud")):
        with pytest.raises(ConfigurationError, match="allow_network: true") as refused:
            choose_sandbox(job_mode, "auto", PLUGIN, policy, limits=egress)
        assert refused.value.details["setting"] == "sandbox.network"
        assert policy.ceilings(job_mode).network is False
    allowed = OperatorPolicy(mode="cloud", allow_network=True)
    backend = choose_sandbox("self_hosted", "auto", PLUGIN, allowed, limits=egress)
    assert backend.ceilings is not None
    assert backend.ceilings.network
    # Self-hosted: egress is allowed unless the operator forbids it, as before.
    assert isinstance(
        choose_sandbox("self_hosted", "auto", PLUGIN, OperatorPolicy(), limits=egress), DockerSandbox
    )
    with pytest.raises(ConfigurationError, match="forbids it"):
        choose_sandbox("self_hosted", "auto", PLUGIN, OperatorPolicy(allow_network=False), limits=egress)


def test_cloud_mode_has_default_ceilings(availability):
    stated = SandboxLimits(
        cpu=4, memory_bytes=8 << 30, timeout_s=86400, pids=1024, network=False, disk_bytes=100 << 30
    )
    assert stated == CLOUD_DEFAULT_CEILINGS  # as docs/sandboxing.md states them
    policy = OperatorPolicy(mode="cloud", source="runtime.yaml")
    assert policy.ceilings() == CLOUD_DEFAULT_CEILINGS
    backend = choose_sandbox("self_hosted", "auto", PLUGIN, policy)
    assert backend.ceilings == CLOUD_DEFAULT_CEILINGS
    for limits, setting in [
        (SandboxLimits(memory_bytes=64 << 30), "sandbox.memory"),
        (SandboxLimits(pids=100_000), "sandbox.pids"),
        (SandboxLimits(timeout_s=1e9), "sandbox.timeout"),
        (SandboxLimits(cpu=5), "sandbox.cpu"),
        (SandboxLimits(disk_bytes=1 << 40), "sandbox.disk"),
    ]:
        with pytest.raises(ConfigurationError, match="cloud mode's defaults") as refused:
            choose_sandbox("self_hosted", "auto", PLUGIN, policy, limits=limits)
        assert refused.value.details["setting"] == setting
        assert "the operator's policy (runtime.yaml) sets mode: cloud" in refused.value.message
    # At the ceilings exactly is fine.
    choose_sandbox("cloud", "auto", PLUGIN, policy, limits=CLOUD_DEFAULT_CEILINGS)


def test_the_operators_ceilings_replace_cloud_modes_defaults(availability):
    policy = OperatorPolicy(mode="cloud", max_memory_bytes=64 << 30, max_pids=32, source="runtime.yaml")
    assert policy.ceilings() == SandboxLimits(
        cpu=4, memory_bytes=64 << 30, timeout_s=86400, pids=32, network=False, disk_bytes=100 << 30
    )
    choose_sandbox("cloud", "auto", PLUGIN, policy, limits=SandboxLimits(memory_bytes=64 << 30))
    with pytest.raises(ConfigurationError, match=r"set by the operator's policy \(runtime.yaml\)"):
        choose_sandbox("cloud", "auto", PLUGIN, policy, limits=SandboxLimits(pids=33))


def test_self_hosted_mode_keeps_no_default_ceilings(availability):
    huge = SandboxLimits(memory_bytes=64 << 30, pids=100_000, timeout_s=1e9, disk_bytes=1 << 40)
    assert isinstance(
        choose_sandbox("self_hosted", "auto", PLUGIN, OperatorPolicy(), limits=huge), DockerSandbox
    )


def test_a_disk_ceiling(availability):
    policy = OperatorPolicy(max_disk_bytes=1 << 30, source="runtime.yaml")
    with pytest.raises(
        ConfigurationError,
        match=r"sandbox.disk is 2147483648 bytes \(2 GiB\), above the ceiling of 1073741824 bytes \(1 GiB\)",
    ) as refused:
        choose_sandbox("self_hosted", "auto", PLUGIN, policy, limits=SandboxLimits(disk_bytes=2 << 30))
    assert refused.value.details["setting"] == "sandbox.disk"
    backend = choose_sandbox("self_hosted", "auto", PLUGIN, policy, limits=SandboxLimits(disk_bytes=1 << 30))
    assert backend.ceilings == SandboxLimits(network=True, disk_bytes=1 << 30)
    # Unset, a job's disk limit is the backends' default (10 GiB), capped by the ceiling.
    assert effective_limits(SandboxLimits(), backend.ceilings).disk_bytes == 1 << 30
    assert effective_limits(SandboxLimits(), OperatorPolicy(mode="cloud").ceilings()).disk_bytes == 10 << 30


def test_mode_and_disk_from_a_policy_file(tmp_path, monkeypatch, availability):
    config = tmp_path / "runtime.yaml"
    config.write_text("sandbox:\n  mode: cloud\n  allowed_backends: [process]\n  ceilings: {disk: 20g}\n")
    monkeypatch.setenv("DATIVO_RUNTIME_CONFIG", str(config))
    policy = OperatorPolicy.load()
    assert policy == OperatorPolicy(mode="cloud", allowed_backends=("process",), max_disk_bytes=20 << 30)
    assert policy.ceilings().disk_bytes == 20 << 30
    with pytest.raises(ConfigurationError, match=str(config)) as refused:
        choose_sandbox("self_hosted", "none", PLUGIN)  # the policy comes from DATIVO_RUNTIME_CONFIG
    assert refused.value.details["setting"] == "sandbox.backend"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("sandbox: {mode: saas}", r"unknown runtime mode 'saas'"),
        ("mode: cloud\nsandbox: {}", r"move it into the sandbox mapping"),
        ("sandbox: {mode: cloud, allowed_backends: [process, none]}", "remove none from allowed_backends"),
        ("sandbox: {mode: cloud, allowed_backends: [none], backend: none}", "remove none"),
        ("sandbox: {allow_network: 'no'}", "must be true or false"),
        ("sandbox: {ceilings: {cpu: 0}}", "positive"),
        ("sandbox: {ceilings: {timeout: .nan}}", "positive"),
        ("sandbox: {ceilings: {pids: 1.5}}", "whole number"),
        ("sandbox: {ceilings: {disk: lots}}", "disk"),
        ("sandbox: {ceilings: [1]}", "must be a mapping"),
    ],
)
def test_invalid_mode_and_ceilings_in_policy_files(tmp_path, text, error):
    config = tmp_path / "runtime.yaml"
    config.write_text(text)
    with pytest.raises(ConfigurationError, match=error):
        OperatorPolicy.load(config)


def test_a_cloud_policy_cannot_pin_or_allow_only_in_process():
    with pytest.raises(ConfigurationError, match="cannot pin 'none'"):
        OperatorPolicy(mode="cloud", pinned_backend="none")
    with pytest.raises(ConfigurationError, match="needs process or docker"):
        OperatorPolicy(mode="cloud", allowed_backends=("none",))
    with pytest.raises(ConfigurationError, match="unknown runtime mode"):
        OperatorPolicy(mode="edge")


_limits = st.builds(
    SandboxLimits,
    cpu=st.none() | st.floats(min_value=0.1, max_value=16),
    memory_bytes=st.none() | st.integers(min_value=1, max_value=32 << 30),
    timeout_s=st.none() | st.floats(min_value=1, max_value=200_000),
    pids=st.none() | st.integers(min_value=1, max_value=4096),
    network=st.booleans(),
    disk_bytes=st.none() | st.integers(min_value=1, max_value=400 << 30),
)


@given(
    limits=_limits,
    policy_mode=st.sampled_from(MODES),
    job_mode=st.sampled_from(MODES),
    allow_network=st.none() | st.booleans(),
    max_memory=st.none() | st.integers(min_value=1, max_value=32 << 30),
)
def test_check_limits_refuses_exactly_what_exceeds_the_ceilings(
    limits, policy_mode, job_mode, allow_network, max_memory
):
    policy = OperatorPolicy(mode=policy_mode, allow_network=allow_network, max_memory_bytes=max_memory)
    top = policy.ceilings(job_mode)
    pairs = [
        (limits.cpu, top.cpu),
        (limits.memory_bytes, top.memory_bytes),
        (limits.timeout_s, top.timeout_s),
        (limits.pids, top.pids),
        (limits.disk_bytes, top.disk_bytes),
    ]
    over = any(v is not None and c is not None and v > c for v, c in pairs) or (
        limits.network and not top.network
    )
    try:
        policy.check_limits(limits, job_mode)
    except ConfigurationError:
        assert over
    else:
        assert not over
