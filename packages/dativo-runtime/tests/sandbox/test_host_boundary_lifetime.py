"""No sandbox outlives its run (issue 11, finding 3).

A worker ends itself when its runtime dies (its protocol stdin hangs up) and at the session's
deadline, so a runtime killed with ``kill -9`` leaves no container and no sandbox process
behind; ordinary runs, successful or failing, leave no container and no ``dativo-sandbox-*``
cgroup; and the first sandbox a runtime starts removes what dead runtimes left (containers
labelled with a dead owner or a passed deadline, empty cgroups named after a dead owner),
never what a live runtime owns.

Each test runs ``dativo-run run`` in a subprocess with the plugins of
``plugins/attack_lifetime.py``, in each real backend.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dativo_runtime._sandbox import _cgroups
from dativo_runtime._sandbox._base import Sandbox
from dativo_runtime._sandbox._cgroups import process_alive, process_start_ticks
from dativo_runtime._sandbox.docker import _backend as _docker
from dativo_runtime._sandbox.docker import _reaper
from dativo_runtime._worker import _main as _worker

PLUGIN = Path(__file__).parent / "plugins" / "attack_lifetime.py"
RUNTIME = [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()"]
TIMEOUT_S = 10
SLACK_S = 8.0
"""Start-up of a runtime and container, and a loaded machine's delays."""
DEADLINE_BOUND_S = TIMEOUT_S + _worker.DEADLINE_GRACE_S + SLACK_S
HANGUP_BOUND_S = _worker.HANGUP_GRACE_S + SLACK_S


def _job(folder: Path, backend: str, plugin: str, config: dict[str, Any], timeout: float = TIMEOUT_S) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.yaml"
    document = {
        "tenant": "acme",
        "name": "lifetime",
        "mode": "cloud",
        "source": {"plugin": f"{PLUGIN}:{plugin}", "config": config},
        "target": {"plugin": "parquet", "config": {"path": "./out"}},
        "sandbox": {"backend": backend, "timeout": timeout, "memory": "512m"},
        "retry": {"max_attempts": 1},
    }
    job.write_text(json.dumps(document))  # JSON is YAML
    return job


def _start(job: Path, stdout: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    environment["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [*RUNTIME, "run", "--config", str(job), "--json"],
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=environment,
        cwd=job.parent,
    )


def _run(job: Path) -> tuple[int, int]:
    """Run ``job`` to its end; return the runtime's pid and exit code."""
    process = _start(job)
    return process.pid, process.wait(timeout=120)


def _wait_until(condition: Any, bound: float, what: str) -> None:
    """Poll ``condition`` until it is true, failing with ``what`` after ``bound`` seconds."""
    began = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - began
        assert elapsed < bound, f"{what} (waited {elapsed:.1f} s)"
        time.sleep(0.1)


@functools.cache
def _docker_client() -> Any:
    import docker

    return docker.from_env(timeout=30)


def _containers_of(pid: int) -> list[dict[str, Any]]:
    """The sandbox containers (``docker ps`` summaries) the runtime ``pid`` of this machine owns."""
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    labels = [f"{_reaper.OWNER_LABELS['pid']}={pid}", f"{_reaper.OWNER_LABELS['boot_id']}={boot_id}"]
    # Summaries only: containers.list() inspects each one and fails on one removed meanwhile.
    return list(_docker_client().api.containers(all=True, filters={"label": labels}))


def _descendants(pid: int) -> set[tuple[int, int]]:
    """``(pid, start)`` of every process below ``pid`` (bwrap, its init and the worker)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {(p, s) for p in found if (s := process_start_ticks(p)) is not None}


def _cgroup_bases() -> list[Path]:
    v2 = _cgroups._v2_base()
    return [v2] if v2 is not None else list(_cgroups._v1_bases().values())


def _cgroups_of(pid: int) -> list[Path]:
    """The sandbox cgroups named after the runtime ``pid``."""
    return [p for base in _cgroup_bases() for p in base.glob(f"dativo-sandbox-*-{pid}-*")]


def _wait_for_worker(process: subprocess.Popen[bytes], backend: str) -> None:
    """Wait until the runtime's sandbox runs, then a little more, so the plugin is inside extract."""

    def started() -> bool:
        assert process.poll() is None, f"the run ended early with exit code {process.returncode}"
        if backend == "docker":
            return any(c["State"] == "running" for c in _containers_of(process.pid))
        return len(_descendants(process.pid)) >= 3

    _wait_until(started, 60, "the sandbox did not start")
    time.sleep(2.0)
    assert process.poll() is None


@pytest.fixture
def made_containers() -> Iterator[list[Any]]:
    """Containers a test makes, removed afterwards whatever happened to them."""
    containers: list[Any] = []
    yield containers
    import docker

    for container in containers:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.mark.parametrize(
    ("mode", "timeout", "bound"),
    [("sleep", TIMEOUT_S, DEADLINE_BOUND_S), ("fork", 600, HANGUP_BOUND_S)],
    ids=["sleeping-10s-timeout", "forked-child-long-timeout"],
)
def test_a_killed_runtime_leaves_no_sandbox_running(
    backend: Sandbox, tmp_path: Path, timeout: float, bound: float, mode: str
) -> None:
    process = _start(_job(tmp_path, backend.name, "LingeringReader", {"mode": mode}, timeout=timeout))
    try:
        _wait_for_worker(process, backend.name)
        sandbox_processes = _descendants(process.pid)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    if backend.name == "docker":
        _wait_until(lambda: not _containers_of(process.pid), bound, "the container outlived its runtime")
    else:
        _wait_until(
            lambda: not [p for p in sandbox_processes if process_alive(*p)],
            bound,
            "a sandbox process outlived its runtime",
        )
    # The dead runtime's empty cgroups go with the next runtime's first sandbox.
    if backend.name == "process" and _cgroup_bases():
        _, code = _run(_job(tmp_path / "next", "process", "QuickReader", {}))
        assert code == 0
        assert not _cgroups_of(process.pid)


@pytest.mark.parametrize("fail", [False, True], ids=["succeeding", "failing"])
def test_ordinary_runs_leave_no_container_and_no_cgroup(backend: Sandbox, tmp_path: Path, fail: bool) -> None:
    pid, code = _run(_job(tmp_path, backend.name, "QuickReader", {"fail": fail}))
    assert code == (1 if fail else 0)
    if backend.name == "docker":
        assert not _containers_of(pid)
    else:
        assert not _cgroups_of(pid)


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_a_frozen_runtime_still_loses_its_sandbox_at_the_deadline(
    backend_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.getfixturevalue(f"{backend_name}_backend")  # skips when the backend is unavailable
    # The plugin also forks a child that ignores SIGTERM and SIGHUP: it goes with the worker.
    job = _job(tmp_path, backend_name, "LingeringReader", {"mode": "fork"})
    with (tmp_path / "stdout.json").open("w+b") as stdout:
        process = _start(job, stdout=stdout)
        try:
            _wait_for_worker(process, backend_name)
            sandbox_processes = _descendants(process.pid)
            process.send_signal(signal.SIGSTOP)  # alive, holding the protocol open, but never acting
            if backend_name == "docker":
                _wait_until(lambda: not _containers_of(process.pid), DEADLINE_BOUND_S, "container survived")
            else:
                # Outer bwrap is the runtime's child: it stays a zombie until the runtime reaps it.
                _wait_until(
                    lambda: not [p for p in sandbox_processes if process_alive(*p)],
                    DEADLINE_BOUND_S,
                    "the sandbox survived its deadline",
                )
        finally:
            process.send_signal(signal.SIGCONT)
            code = process.wait(timeout=60)
        stdout.seek(0)
        report = json.loads(stdout.read())
    # The runtime wakes up past its own deadline: its timer reports the timeout, or it first
    # reads that the worker ended itself at the deadline (exit status 87): a timeout too.
    assert code == 1
    details = report["error"]["details"]
    assert details["reason"] == "timeout", details
    assert report["error"]["error_type"] == "SandboxError"


def _dead_process() -> tuple[int, int]:
    """The ``(pid, start)`` of a process that has ended."""
    child = subprocess.Popen(["/bin/sh", "-c", "sleep 0.2"])
    start = process_start_ticks(child.pid)
    child.wait()
    assert start is not None
    return child.pid, start


def _runtime_labels(pid: int, start: int, *, deadline: float | None = None) -> dict[str, str]:
    me = _reaper.RuntimeIdentity.current()
    labels = {_docker.CONTAINER_LABEL: "1", f"{_docker.CONTAINER_LABEL}.ref": "test:leftover"}
    labels.update(_reaper.RuntimeIdentity(me.host, me.boot_id, me.pid_ns, pid, start).labels())
    if deadline is not None:
        labels[_reaper.DEADLINE_LABEL] = str(int(deadline))
    return labels


def test_leftover_containers_of_dead_runtimes_are_reaped_and_live_ones_kept(
    docker_backend: Sandbox, tmp_path: Path, made_containers: list[Any]
) -> None:
    client = _docker_client()
    own = (os.getpid(), process_start_ticks(os.getpid()) or 0)
    image = _docker.DEFAULT_IMAGE
    made = {
        "dead owner": _runtime_labels(*_dead_process()),
        "live owner": _runtime_labels(*own),
        "live owner past its deadline": _runtime_labels(*own, deadline=time.time() - 5),
        "live owner running": _runtime_labels(*own),
    }
    containers = {}
    for what, labels in made.items():
        running = what == "live owner running"
        command = ["/bin/sleep", "300"] if running else ["/bin/true"]
        container = client.containers.create(image, entrypoint=command, labels=labels, network_disabled=True)
        made_containers.append(container)
        # The dead owner's is created and never started (the runtime died right after creating it).
        if what != "dead owner":
            container.start()
        containers[what] = container
    _wait_until(
        lambda: containers["live owner"].reload() or containers["live owner"].status == "exited",
        30,
        "the stopped container did not stop",
    )
    _, code = _run(_job(tmp_path, "docker", "QuickReader", {}))
    assert code == 0

    def exists(container: Any) -> bool:
        return bool(client.api.containers(all=True, filters={"id": container.id}))

    assert not exists(containers["dead owner"])
    assert not exists(containers["live owner past its deadline"])
    assert exists(containers["live owner"])
    assert exists(containers["live owner running"])


def test_leftover_cgroups_of_dead_runtimes_are_reaped_and_live_ones_kept(
    process_backend: Sandbox, tmp_path: Path
) -> None:
    bases = _cgroup_bases()
    if not bases:
        pytest.skip("no writable cgroup here: the process backend creates none")
    names = {
        "dead owner": _cgroups.cgroup_name(*_dead_process()),
        "live owner": _cgroups.cgroup_name(os.getpid(), process_start_ticks(os.getpid()) or 0),
        "dead owner, a process inside": _cgroups.cgroup_name(*_dead_process()),
        # Named by an older runtime, or by one in another pid namespace: their owner cannot be
        # checked from here, so only the time they have been there tells they are abandoned.
        "older runtime, new": f"dativo-sandbox-{uuid.uuid4().hex[:12]}",
        "older runtime, old": f"dativo-sandbox-{uuid.uuid4().hex[:12]}",
        "other pid namespace, new": f"dativo-sandbox-1-1-1-{uuid.uuid4().hex[:12]}",
        "other pid namespace, old": f"dativo-sandbox-1-1-1-{uuid.uuid4().hex[:12]}",
    }
    long_ago = time.time() - _cgroups.UNCHECKED_MIN_AGE_S - 60
    sleeper = subprocess.Popen(["/bin/sleep", "120"])
    try:
        for base in bases:
            for what, name in names.items():
                (base / name).mkdir()
                if what.endswith(", old"):
                    os.utime(base / name, (long_ago, long_ago))
            (base / names["dead owner, a process inside"] / "cgroup.procs").write_text(str(sleeper.pid))
        _, code = _run(_job(tmp_path, "process", "QuickReader", {}))
        assert code == 0
        for base in bases:
            kept = {what for what, name in names.items() if (base / name).is_dir()}
            assert kept == {
                "live owner",
                "dead owner, a process inside",
                "older runtime, new",
                "other pid namespace, new",
            }, base
    finally:
        sleeper.kill()
        sleeper.wait()
        for base in bases:
            for name in names.values():
                for _ in range(100):
                    try:
                        (base / name).rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)


def test_containers_carry_their_owner_and_deadline(docker_backend: Any, plugin_ref: Any) -> None:
    ref = plugin_ref("attack_lifetime.py", "QuickReader")
    from dativo_runtime._sandbox import SandboxLimits

    with docker_backend.open_reader(ref, {}, limits=SandboxLimits(timeout_s=30)) as session:
        details = docker_backend.client.api.inspect_container(session.client.transport.container_id)
    labels = details["Config"]["Labels"]
    assert details["HostConfig"]["AutoRemove"] is True
    assert details["Config"]["StdinOnce"] is True  # the daemon closes the worker's stdin with our attach
    assert labels[_reaper.OWNER_LABELS["pid"]] == str(os.getpid())
    assert labels[_reaper.OWNER_LABELS["start"]] == str(process_start_ticks(os.getpid()))
    assert 30 < float(labels[_reaper.DEADLINE_LABEL]) - time.time() <= 30 + _reaper.DEADLINE_MARGIN_S
    assert not _containers_of(os.getpid())


def test_abandoned_decides_from_owner_and_deadline() -> None:
    me = _reaper.RuntimeIdentity.current()
    now = time.time()
    own = _runtime_labels(os.getpid(), process_start_ticks(os.getpid()) or 0)
    dead = _runtime_labels(*_dead_process())
    foreign = {**dead, _reaper.OWNER_LABELS["boot_id"]: "another-machine"}
    legacy = {_docker.CONTAINER_LABEL: "1"}

    def abandoned(labels: dict[str, str], state: str = "running", age: float = 0) -> str | None:
        return _reaper.abandoned_because({"Labels": labels, "State": state, "Created": now - age}, me, now)

    assert abandoned(own) is None
    assert abandoned({**own, _reaper.DEADLINE_LABEL: str(int(now - 1))}) == "its deadline has passed"
    assert abandoned({**own, _reaper.DEADLINE_LABEL: str(int(now + 60))}) is None
    assert abandoned(dead, state="exited") is not None
    assert abandoned(dead, state="running") is not None
    assert abandoned(foreign) is None  # another machine's runtime: only its deadline says
    assert abandoned({**foreign, _reaper.DEADLINE_LABEL: str(int(now - 1))}) is not None
    assert abandoned(legacy, state="running", age=3600) is None
    assert abandoned(legacy, state="exited", age=30) is None
    assert abandoned(legacy, state="exited", age=3600) is not None
