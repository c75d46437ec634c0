"""``OperatorPolicy.stricter``: two operators' policies over one run allow only what both allow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sandbox._operator_policy import CLOUD_DEFAULT_CEILINGS, OperatorPolicy


def test_cloud_wins_and_an_unset_ceiling_is_cloud_mode_default() -> None:
    worker = OperatorPolicy(max_cpu=16.0, allow_network=True, allow_read_only_paths=True)
    client = OperatorPolicy(mode="cloud", source="client.yaml")
    combined = worker.stricter(client)
    assert combined.mode == "cloud"
    assert set(combined.allowed_backends) == {"process", "docker"}  # Never "none" in cloud mode.
    assert combined.ceilings() == CLOUD_DEFAULT_CEILINGS  # The worker's 16 cores do not raise it.
    assert combined.allow_read_only_paths is False
    assert combined.source == "client.yaml"
    # A worker without a policy keeps a cloud client's own ceilings, raised or not.
    assert OperatorPolicy().stricter(OperatorPolicy(mode="cloud", max_cpu=16.0)).max_cpu == 16.0


def test_backends_intersect_and_each_ceiling_is_the_lower() -> None:
    worker = OperatorPolicy(allowed_backends=("process", "docker", "none"), max_cpu=2.0, max_pids=50)
    client = OperatorPolicy(allowed_backends=("docker", "none"), max_cpu=1.0, max_memory_bytes=1 << 30)
    combined = worker.stricter(client)
    assert combined.mode == "self_hosted"
    assert combined.allowed_backends == ("docker", "none")
    assert (combined.max_cpu, combined.max_pids, combined.max_memory_bytes) == (1.0, 50, 1 << 30)
    assert combined.max_timeout_s is None


def test_a_job_in_cloud_mode_gets_the_cloud_ceilings_each_policy_alone_gives_it() -> None:
    worker, client = OperatorPolicy(max_cpu=8.0), OperatorPolicy()
    assert worker.stricter(client).max_cpu == 8.0
    for_cloud_job = worker.stricter(client, job_mode="cloud")
    assert for_cloud_job.mode == "cloud"
    assert for_cloud_job.ceilings("cloud").cpu == CLOUD_DEFAULT_CEILINGS.cpu == client.ceilings("cloud").cpu


@pytest.mark.parametrize(
    ("worker", "client", "why"),
    [
        (OperatorPolicy(pinned_backend="process"), OperatorPolicy(pinned_backend="docker"), "pin different"),
        (OperatorPolicy(docker_image="a:1"), OperatorPolicy(docker_image="b:2"), "different sandbox images"),
        (OperatorPolicy(allowed_backends=("none",)), OperatorPolicy(mode="cloud"), "no isolated backend"),
        (
            OperatorPolicy(allowed_backends=("process",)),
            OperatorPolicy(allowed_backends=("docker",)),
            "no backend in common",
        ),
        (OperatorPolicy(pinned_backend="none"), OperatorPolicy(mode="cloud"), "pins backend 'none'"),
    ],
)
def test_policies_no_run_can_honour_both_are_refused(
    worker: OperatorPolicy, client: OperatorPolicy, why: str
) -> None:
    with pytest.raises(ConfigurationError, match=why):
        worker.stricter(client)


_optional_flag = st.none() | st.booleans()


@st.composite
def _policies(draw: st.DrawFn) -> OperatorPolicy:
    mode = draw(st.sampled_from(["self_hosted", "cloud"]))
    return OperatorPolicy(
        mode=mode,
        allowed_backends=("process", "docker") if mode == "cloud" else ("process", "docker", "none"),
        max_cpu=draw(st.none() | st.sampled_from([1.0, 4.0, 16.0])),
        max_pids=draw(st.none() | st.sampled_from([10, 1024, 5000])),
        max_timeout_s=draw(st.none() | st.sampled_from([60.0, 86400.0, 1e6])),
        allow_network=draw(_optional_flag),
        allow_read_only_paths=draw(_optional_flag),
    )


def _refuses(policy: OperatorPolicy, limits: SandboxLimits, job_mode: str) -> bool:
    try:
        policy.check_limits(limits, job_mode)
    except ConfigurationError:
        return True
    return False


_limits = st.builds(
    SandboxLimits,
    cpu=st.none() | st.sampled_from([0.5, 2.0, 8.0, 32.0]),
    pids=st.none() | st.sampled_from([5, 100, 2000, 9000]),
    timeout_s=st.none() | st.sampled_from([30.0, 3600.0, 200000.0, 2e6]),
    network=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(a=_policies(), b=_policies(), job_mode=st.sampled_from(["self_hosted", "cloud"]), limits=_limits)
def test_the_stricter_policy_refuses_exactly_what_either_refuses(
    a: OperatorPolicy, b: OperatorPolicy, job_mode: str, limits: SandboxLimits
) -> None:
    combined = a.stricter(b, job_mode=job_mode)
    assert _refuses(combined, limits, job_mode) == (
        _refuses(a, limits, job_mode) or _refuses(b, limits, job_mode)
    )
    cloud = "cloud" in (a.mode, b.mode, job_mode)
    assert combined.effective_mode(job_mode) == ("cloud" if cloud else "self_hosted")
    mine, theirs, both = a.ceilings(job_mode), b.ceilings(job_mode), combined.ceilings(job_mode)
    for name in ("cpu", "pids", "timeout_s"):
        values = [v for v in (getattr(mine, name), getattr(theirs, name)) if v is not None]
        assert getattr(both, name) == (min(values) if values else None), name
    assert both.network == (mine.network and theirs.network)
    read_only = [p._allows_read_only_paths(p.effective_mode(job_mode)) for p in (a, b)]
    assert combined._allows_read_only_paths(combined.effective_mode(job_mode)) == all(read_only)


def test_data_roots_of_both_sides_bind_and_the_default_is_the_jobs_folder(tmp_path):
    job_folder = tmp_path / "jobs"
    client = OperatorPolicy(mode="cloud", allowed_backends=("process",), data_roots=(tmp_path / "data",))
    worker = OperatorPolicy()  # self-hosted, no policy: no constraint of its own
    assert worker.stricter(client, base_dir=job_folder).data_roots == (tmp_path / "data",)
    cloud_worker = OperatorPolicy(mode="cloud", allowed_backends=("process",))  # default: the job's folder
    assert cloud_worker.stricter(client, base_dir=job_folder).data_roots == ()  # nothing in common
    inner = OperatorPolicy(mode="cloud", allowed_backends=("process",), data_roots=(tmp_path / "data" / "a",))
    assert inner.stricter(client, base_dir=job_folder).data_roots == (tmp_path / "data" / "a",)
    assert cloud_worker.stricter(cloud_worker, base_dir=job_folder).data_roots is None  # both the default


def test_endpoints_of_both_sides_bind_and_a_self_hosted_side_adds_no_constraint():
    client = OperatorPolicy(
        mode="cloud", allowed_backends=("process",), allowed_endpoints=("minio:9000", "s3.x")
    )
    assert OperatorPolicy().stricter(client).allowed_endpoints == ("minio:9000", "s3.x")
    other = OperatorPolicy(mode="cloud", allowed_backends=("process",), allowed_endpoints=("S3.X",))
    assert other.stricter(client).allowed_endpoints == ("s3.x",)
    assert (
        OperatorPolicy(mode="cloud", allowed_backends=("process",)).stricter(client).allowed_endpoints == ()
    )


@pytest.mark.parametrize("entry", ["http://minio:9000", "minio:9000/path", "", "minio:port"])
def test_allowed_endpoints_are_servers_without_scheme_or_path(entry):
    with pytest.raises(ConfigurationError, match="allowed_endpoints"):
        OperatorPolicy.from_mapping({"mode": "cloud", "allowed_endpoints": [entry]})
    OperatorPolicy.from_mapping(
        {"mode": "cloud", "allowed_endpoints": ["minio:9000", "s3.local", "[::1]:9000"]}
    )
