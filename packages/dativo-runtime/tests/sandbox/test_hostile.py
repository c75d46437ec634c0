"""The hostile-plugin suite: every escape attempt is blocked, and the runtime survives it.

Each test runs in both real backends (``process`` = bubblewrap, ``docker``). Attempts that
the sandbox answers with an ``OSError`` inside the plugin are reported by the plugin as a
record (``blocked: ...``); attempts that end the worker surface as ``SandboxError`` with the
right ``details["reason"]``; after each of those a normal run still works.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from dativo_plugin_sdk import SandboxError
from dativo_runtime._sandbox import SandboxLimits

REPO = Path(__file__).resolve().parents[4]


def _results(records: list[dict[str, str]]) -> dict[str, str]:
    return {r["attempt"]: r["result"] for r in records}


def test_host_files_are_invisible(backend, read_all, tmp_path, monkeypatch, plugin_ref):
    runtime_config = tmp_path / "runtime.yaml"
    runtime_config.write_text("sandbox: {allowed_backends: [process]}\n")
    other_tenant = tmp_path / "tenant-b" / "output"
    other_tenant.mkdir(parents=True)
    (other_tenant / "part-0.parquet").write_text("tenant b's data")
    home = Path.home()
    home_files = sorted(p for p in home.iterdir() if p.is_file()) if home.is_dir() else []
    paths = [
        "/etc/shadow",
        str(runtime_config),
        str(other_tenant / "part-0.parquet"),
        str(REPO / "noxfile.py"),
    ]
    paths += [str(p) for p in home_files[:3]]
    attempts = [["read", p] for p in paths] + [["list", str(other_tenant)], ["list", str(home)]]
    results = _results(read_all(backend, plugin_ref("hostile.py", "ProbeReader"), {"attempts": attempts}))
    for path in paths:
        assert results[f"read {path}"].startswith("blocked: "), (path, results[f"read {path}"])
    assert results[f"list {other_tenant}"].startswith("blocked: FileNotFoundError")
    listing = results[f"list {home}"]
    if listing.startswith("ok: "):
        # Only the path down to the bind-mounted Python installation may show, never the home's files.
        visible = set(json.loads(listing[4:]))
        assert not visible & {p.name for p in home_files}
        assert all((home / name).is_dir() for name in visible)


def test_host_environment_is_not_inherited(backend, read_all, monkeypatch, plugin_ref):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-do-not-leak-1234")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE")
    records = read_all(backend, plugin_ref("hostile.py", "ProbeReader"), {"attempts": [["env", ""]]})
    environment = json.loads(records[0]["result"][4:])
    assert not [k for k in environment if k.startswith("AWS_")]
    assert "fake-secret-do-not-leak-1234" not in json.dumps(environment)
    assert set(environment) <= {
        "PATH", "HOME", "TMPDIR", "LANG", "ARROW_DEFAULT_MEMORY_POOL", "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS", "MALLOC_ARENA_MAX", "HOSTNAME", "LC_CTYPE", "PWD",
    }  # fmt: skip


def test_network_is_unreachable(backend, read_all, plugin_ref):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        attempts = [["connect", f"127.0.0.1:{port}"], ["connect", "1.1.1.1:80"]]
        results = _results(read_all(backend, plugin_ref("hostile.py", "ProbeReader"), {"attempts": attempts}))
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the host's loopback
    finally:
        listener.close()
    assert results[f"connect 127.0.0.1:{port}"].startswith("blocked: ConnectionRefusedError")
    # No network namespace route: fails at once with "Network is unreachable", no packet leaves.
    assert results["connect 1.1.1.1:80"].startswith("blocked: OSError: [Errno 101]")


def test_writes_outside_tmp_and_output_fail(backend, read_all, tmp_path, plugin_ref):
    escape = tmp_path / "escaped.txt"
    plugin_dir_file = plugin_ref("hostile.py", "ProbeReader").plugin_dir / "escaped.txt"
    targets = ["/etc/escaped", "/usr/escaped", "/escaped", str(plugin_dir_file), str(escape)]
    attempts = [["write", t] for t in targets] + [["write", "/tmp/inside.txt"], ["setuid", ""]]
    results = _results(read_all(backend, plugin_ref("hostile.py", "ProbeReader"), {"attempts": attempts}))
    for target in targets:
        assert results[f"write {target}"].startswith("blocked: "), (target, results[f"write {target}"])
    assert not escape.exists()
    assert not plugin_dir_file.exists()
    assert results["write /tmp/inside.txt"] == "ok: written"  # its own /tmp, gone afterwards
    # EPERM (no CAP_SETUID) or EINVAL (uid 0 is not even mapped in the user namespace).
    assert results["setuid "].startswith(("blocked: PermissionError", "blocked: OSError: [Errno 22]"))


def test_fork_bomb_is_contained(backend, read_all, survives, plugin_ref):
    records = read_all(
        backend,
        plugin_ref("hostile.py", "ProbeReader"),
        {"attempts": [["fork", "400"]]},
        limits=SandboxLimits(pids=32, timeout_s=60),
    )
    assert records[0]["result"].startswith("blocked: BlockingIOError"), records
    survives(backend)


@pytest.mark.usefixtures("no_leftover_containers")
@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("mount", ("syscall_blocked", "blocked system call (seccomp)")),
        ("ptrace", ("syscall_blocked", "SIGSYS")),
        ("unshare", ("syscall_blocked", "SIGSYS")),
        ("segfault", ("signal", "signal 11 (SIGSEGV)")),
        ("sigkill", ("signal", "signal 9 (SIGKILL)")),
        ("exit", ("crash", "exited unexpectedly with status 3")),
    ],
)
def test_forbidden_actions_end_the_run(backend, action, expected, survives, plugin_ref):
    reason, words = expected
    with backend.open_reader(plugin_ref("hostile.py", "KillerReader"), {"action": action}) as session:
        batches = session.extract()
        assert next(batches).data.to_pylist() == [{"step": "before"}]
        with pytest.raises(SandboxError) as raised:
            next(batches)
    error = raised.value
    assert error.details["reason"] == reason, error
    assert words in str(error)
    assert error.retryable is False
    assert isinstance(error.details["stderr_tail"], list)
    survives(backend)


@pytest.mark.usefixtures("no_leftover_containers")
def test_memory_limit_ends_the_run_as_oom(backend, survives, plugin_ref):
    limits = SandboxLimits(memory_bytes=256 << 20, timeout_s=60)
    with (
        backend.open_reader(
            plugin_ref("hostile.py", "KillerReader"), {"action": "memory"}, limits=limits
        ) as session,
        pytest.raises(SandboxError) as raised,
    ):
        list(session.extract())
    assert raised.value.details["reason"] == "oom"
    assert "exceeded the memory limit 256 MiB (OOM)" in str(raised.value)
    survives(backend)


@pytest.mark.usefixtures("no_leftover_containers")
def test_wall_clock_timeout_ends_the_run(backend, survives, plugin_ref):
    limits = SandboxLimits(timeout_s=2)
    with (
        backend.open_reader(
            plugin_ref("hostile.py", "KillerReader"), {"action": "spin"}, limits=limits
        ) as session,
        pytest.raises(SandboxError) as raised,
    ):
        list(session.extract())
    assert raised.value.details["reason"] == "timeout"
    assert "exceeded the wall-clock timeout of 2 s" in str(raised.value)
    survives(backend)


def test_cpu_time_budget_ends_the_run(process_backend, survives, plugin_ref):
    # 0.2 core x 10 s wall clock = 2 CPU seconds: the spinning plugin hits RLIMIT_CPU long
    # before the wall-clock deadline, even on a busy machine.
    limits = SandboxLimits(cpu=0.2, timeout_s=10)
    session = process_backend.open_reader(
        plugin_ref("hostile.py", "KillerReader"), {"action": "spin"}, limits=limits
    )
    with session, pytest.raises(SandboxError) as raised:
        list(session.extract())
    assert raised.value.details["reason"] == "timeout"
    assert raised.value.details["limit"] == "cpu_time", raised.value
    survives(process_backend)


def test_process_sandbox_identity(process_backend, read_all, plugin_ref):
    records = read_all(
        process_backend, plugin_ref("hostile.py", "ProbeReader"), {"attempts": [["whoami", ""]]}
    )
    identity = json.loads(records[0]["result"][4:])
    assert identity["uid"] == 65534
    assert identity["gid"] == 65534
    assert identity["pid"] < 10  # its own pid namespace
    assert os.getpid() != identity["pid"]
