"""The host boundary of the process backend (issue 11): who a plugin is on the host, its egress, its sockets.

* Finding 4: a root runtime runs plugins as an unprivileged host user
  (:data:`SANDBOX_HOST_ID`), never as root: what a writer leaves is that user's, so no
  ``-rwsr-xr-x root`` file can appear, and the plugin holds no capability.
* Finding 7: ``network: true`` gives the plugin a network namespace of its own behind
  slirp4netns: the outside is reachable, the host's loopback and abstract unix sockets
  are not; without slirp4netns such a job fails, never sharing the host's namespace.
* Finding 10: both backends create only AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE
  sockets; any other family fails with ``EAFNOSUPPORT``.

Every hostile step runs as a plugin inside a sandbox. Network tests use only the host's
loopback and a network namespace the test creates itself (a veth pair on a TEST-NET
range the host does not use); nothing leaves the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dativo_plugin_sdk import Column, ConfigurationError, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import SandboxLimits
from dativo_runtime._sandbox.bubblewrap import _backend as _bubblewrap
from dativo_runtime._sandbox.bubblewrap import _egress
from dativo_runtime._sandbox.bubblewrap._backend import SANDBOX_HOST_ID, BubblewrapSandbox
from dativo_runtime._worker._protocol import WORKER_MODULE

from .conftest import REQUIRE_SANDBOX

PLUGINS = Path(__file__).parent / "plugins"
ATTACKS = PLUGINS / "attack_process.py"
EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "plugins"
TIME_BUDGET_S = 60.0
IS_ROOT = os.geteuid() == 0


def _ref(class_name: str) -> PluginRef:
    return PluginRef.parse(f"{ATTACKS}:{class_name}")


def _records(session) -> list[dict]:
    return [r for batch in session.extract() for r in batch.data.to_pylist()]


def _results(records: list[dict]) -> dict[str, str]:
    return {r["attempt"]: r["result"] for r in records}


def _need(condition: bool, why: str) -> None:
    """Skip when the machine cannot run this test, or fail under DATIVO_REQUIRE_SANDBOX=1."""
    if condition:
        return
    if REQUIRE_SANDBOX:
        pytest.fail(f"DATIVO_REQUIRE_SANDBOX=1 but {why}")
    pytest.skip(why)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _worker_status(session) -> dict[str, str]:
    """The host's view (/proc/PID/status) of the session's worker process."""
    pending = [session.client.transport.process.pid]
    while pending:
        pid = pending.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WORKER_MODULE.encode() in cmdline and b"--" not in cmdline:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            return dict(line.split(":\t", 1) for line in lines if ":\t" in line)
        pending += _children(pid)
    raise AssertionError("the worker process was not found under the sandbox")


# --- finding 4: an unprivileged host user ---------------------------------------------------


def test_the_plugin_runs_as_an_unprivileged_host_user(process_backend, survives):
    began = time.monotonic()
    with process_backend.open_reader(
        _ref("IdentityReader"), {}, limits=SandboxLimits(timeout_s=60)
    ) as session:
        host = _worker_status(session)
        facts = json.loads(_records(session)[0]["facts"])
    uid, gid = process_backend.sandbox_host_ids()
    assert host["Uid"].split() == [str(uid)] * 4, host["Uid"]
    assert host["Gid"].split() == [str(gid)] * 4, host["Gid"]
    assert host["Groups"].split() == []  # no supplementary group (root's 0 least of all)
    if IS_ROOT:
        assert uid == gid == SANDBOX_HOST_ID != 0
        assert f"65534 {SANDBOX_HOST_ID} 1" in " ".join(facts["uid_map"].split())
        assert facts["max_user_namespaces"] == "0"  # what bwrap --disable-userns would set
    assert (facts["uid"], facts["gid"], facts["groups"]) == (65534, 65534, [])
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(facts["status"][key], 16) == 0, (key, facts["status"][key])
    assert facts["status"]["NoNewPrivs"] == "1"
    assert facts["status"]["Seccomp"] == "2"
    assert facts["setuid_root"] == "errno EPERM"
    # Only the path down to the bind-mounted Python installation, if any, shows under /root.
    listing = facts["listdir_root"]
    assert listing.startswith("errno ") or set(json.loads(listing[3:])) <= {".pyenv", ".local"}, listing
    assert facts["read_tmp_mode"] == oct(stat.S_IFDIR | 0o1777)
    assert facts["shm_write"] == "ok"
    assert time.monotonic() - began < TIME_BUDGET_S
    survives(process_backend)


def test_what_a_writer_leaves_belongs_to_the_sandbox_user_not_root(
    privileged_files, process_backend, tmp_path, survives
):
    out = tmp_path / "out"
    schema = [Column("id", "integer", nullable=False)]
    began = time.monotonic()
    with process_backend.open_writer(
        _ref("SetuidWriter"), {"path": str(out)}, schema=schema, output_dir=out
    ) as session:
        metadata = session.write_batch(pa.record_batch({"id": [1, 2, 3]}), 0)
        session.commit_files(metadata)
    assert time.monotonic() - began < TIME_BUDGET_S
    uid, _ = process_backend.sandbox_host_ids()
    for name in ("shell", "group-shell", "part-0.txt"):
        info = (out / name).lstat()
        assert info.st_uid == uid, (name, info.st_uid)
        assert not (info.st_uid == 0 and info.st_mode & stat.S_ISUID), name
    assert json.loads((out / "part-0.txt").read_text()) == {"uid": 65534, "rows": 3}
    assert not [entry for entry in privileged_files(out) if "uid=0" in entry]
    if IS_ROOT:
        assert uid == SANDBOX_HOST_ID
    survives(process_backend)


def test_a_writer_job_leaves_no_root_setuid_file(privileged_files, run_job, tmp_path):
    out = tmp_path / "out"
    run = run_job(
        tmp_path,
        source={"plugin": f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader", "config": {"count": 5}},
        target={"plugin": f"{ATTACKS}:SetuidWriter", "config": {"path": str(out)}},
        sandbox={"backend": "process"},
        extra={"retry": {"max_attempts": 1}},
    )
    assert run.exit_code == 0, run.stderr[-3000:]
    assert run.seconds < TIME_BUDGET_S
    shell = (out / "shell").lstat()
    assert not (shell.st_uid == 0 and shell.st_mode & stat.S_ISUID), stat.filemode(shell.st_mode)
    if IS_ROOT:
        assert shell.st_uid == SANDBOX_HOST_ID
    assert not [entry for entry in privileged_files(out) if "uid=0" in entry]
    good = run_job(
        tmp_path / "good",
        source={"plugin": f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader", "config": {"count": 10}},
        sandbox={"backend": "process"},
    )
    assert good.exit_code == 0, good.stderr[-2000:]


@pytest.fixture
def readable_folder() -> Iterator[Path]:
    """A folder outside pytest's 0700 temporary tree, readable by others."""
    folder = Path(tempfile.mkdtemp(prefix="dativo-plugin-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_plugin_file_the_sandbox_user_cannot_read_is_a_clear_error(
    process_backend, readable_folder, survives
):
    if not IS_ROOT:
        pytest.skip("only a root runtime runs plugins as another user than itself")
    plugin = readable_folder / "secret_plugin.py"
    shutil.copyfile(ATTACKS, plugin)
    plugin.chmod(0o600)  # root's alone: the sandbox's user may not read it
    began = time.monotonic()
    with pytest.raises(ConfigurationError, match="cannot be read: permission denied") as caught:
        process_backend.open_reader(PluginRef.parse(f"{plugin}:IdentityReader"), {})
    assert "unprivileged user" in str(caught.value)
    assert time.monotonic() - began < TIME_BUDGET_S
    survives(process_backend)


def test_a_python_the_sandbox_user_cannot_reach_fails_before_starting(process_backend, monkeypatch, tmp_path):
    if not IS_ROOT:
        pytest.skip("only a root runtime runs plugins as another user than itself")
    hidden = tmp_path / "python"
    hidden.mkdir(mode=0o700)
    monkeypatch.setattr(_bubblewrap, "python_paths", lambda: [hidden])
    with pytest.raises(SandboxError, match=f"host user {SANDBOX_HOST_ID}, which cannot read") as caught:
        process_backend.open_reader(_ref("IdentityReader"), {})
    assert caught.value.details["reason"] == "startup_failed"
    assert "drwx------" in str(caught.value)


def test_the_process_cap_holds_without_a_cgroup(process_backend, read_all, survives):
    # Under a root runtime the plugin used to be the host's root, whom RLIMIT_NPROC spares.
    no_cgroup = BubblewrapSandbox(use_cgroups=False)
    began = time.monotonic()
    records = read_all(
        no_cgroup,
        PluginRef.parse(f"{PLUGINS / 'hostile.py'}:ProbeReader"),
        {"attempts": [["fork", "400"]]},
        limits=SandboxLimits(pids=32, timeout_s=60),
    )
    assert records[0]["result"].startswith("blocked: BlockingIOError"), records
    assert time.monotonic() - began < TIME_BUDGET_S
    survives(process_backend)


def test_host_id_must_be_unprivileged():
    for bad in (0, -1, 2**32 - 1, True, "1000"):
        with pytest.raises(ValueError, match="host_id must be an unprivileged uid"):
            BubblewrapSandbox(host_id=bad)  # type: ignore[arg-type]


# --- finding 7: egress in a network namespace of its own ------------------------------------


def _need_egress() -> None:
    available, why = _egress.egress_availability()
    _need(available, f"the process sandbox has no egress here: {why}")


@pytest.fixture
def host_listeners() -> Iterator[tuple[int, str, list[socket.socket]]]:
    """A TCP listener on the host's 127.0.0.1 and an abstract unix socket, both nonblocking."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    name = f"dativo-test-{uuid.uuid4().hex[:12]}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + name)
    unix.listen(4)
    for listener in (tcp, unix):
        listener.setblocking(False)
    try:
        yield tcp.getsockname()[1], name, [tcp, unix]
    finally:
        tcp.close()
        unix.close()


def _nothing_arrived(listeners: list[socket.socket]) -> None:
    for listener in listeners:
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_egress_never_reaches_the_hosts_loopback_or_abstract_sockets(
    process_backend, host_listeners, survives
):
    _need_egress()
    port, name, listeners = host_listeners
    addresses = [f"127.0.0.1:{port}", f"10.0.2.2:{port}", f"@{name}"]
    began = time.monotonic()
    limits = SandboxLimits(timeout_s=60, network=True)
    with process_backend.open_reader(
        _ref("ConnectReader"), {"addresses": addresses}, limits=limits
    ) as session:
        results = _results(_records(session))
    assert time.monotonic() - began < TIME_BUDGET_S
    # Its own loopback refuses; slirp's gateway does not forward to the host's loopback.
    assert results[f"127.0.0.1:{port}"] == "errno ECONNREFUSED", results
    assert results[f"10.0.2.2:{port}"] in ("errno ENETUNREACH", "errno ECONNREFUSED"), results
    assert results[f"@{name}"] == "errno ECONNREFUSED", results  # no such abstract name there
    _nothing_arrived(listeners)
    survives(process_backend)


TEST_NETS = ("198.51.100", "203.0.113", "192.0.2")  # RFC 5737 documentation ranges


def _free_test_net() -> str | None:
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    addresses = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    for prefix in TEST_NETS:
        if prefix + "." not in routes and prefix + "." not in addresses:
            return prefix
    return None


_SERVER = """
import socket, sys
server = socket.socket()
server.bind((sys.argv[1], 0))
server.listen(4)
server.settimeout(60)
print(server.getsockname()[1], flush=True)
connection, peer = server.accept()
connection.sendall(("hello from the test namespace to " + peer[0]).encode())
connection.close()
"""


@pytest.fixture
def outside_server() -> Iterator[tuple[str, int, str]]:
    """A TCP server in a network namespace of the test's own, reachable from the host over a veth pair.

    Yields the server's address, its port and the host side's address.
    """
    _need(IS_ROOT, "creating a test network namespace needs root")
    _need(shutil.which("ip") is not None, "the 'ip' command (iproute2) is not installed")
    prefix = _free_test_net()
    _need(prefix is not None, "every RFC 5737 range is in use on this host")
    tag = uuid.uuid4().hex[:6]
    netns, host_side, inside = f"dativo-egress-{tag}", f"dtv{tag}h", f"dtv{tag}n"
    host_address, server_address = f"{prefix}.1", f"{prefix}.2"
    server = None

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)

    try:
        ip("netns", "add", netns)
        ip("link", "add", host_side, "type", "veth", "peer", "name", inside, "netns", netns)
        ip("addr", "add", f"{host_address}/24", "dev", host_side)
        ip("link", "set", host_side, "up")
        ip("-n", netns, "addr", "add", f"{server_address}/24", "dev", inside)
        ip("-n", netns, "link", "set", inside, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-I", "-c", _SERVER, server_address],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line.isdigit(), (line, server.stderr.read() if server.poll() is not None else "")
        yield server_address, int(line), host_address
    finally:
        if server is not None:
            server.kill()
            server.communicate()
        subprocess.run(["ip", "link", "del", host_side], capture_output=True, timeout=30, check=False)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30, check=False)


def test_egress_reaches_the_outside_through_slirp(process_backend, outside_server, host_listeners, survives):
    _need_egress()
    server_address, port, host_address = outside_server
    loopback_port, name, listeners = host_listeners
    addresses = [f"{server_address}:{port}", f"127.0.0.1:{loopback_port}", f"@{name}"]
    began = time.monotonic()
    limits = SandboxLimits(timeout_s=60, network=True)
    with process_backend.open_reader(
        _ref("ConnectReader"), {"addresses": addresses}, limits=limits
    ) as session:
        results = _results(_records(session))
    assert time.monotonic() - began < TIME_BUDGET_S
    # The connection leaves from the host's side of the veth (slirp uses the host's sockets).
    assert (
        results[f"{server_address}:{port}"]
        == f"ok connected: hello from the test namespace to {host_address}"
    )
    assert results[f"127.0.0.1:{loopback_port}"] == "errno ECONNREFUSED"
    assert results[f"@{name}"] == "errno ECONNREFUSED"
    _nothing_arrived(listeners)
    assert not [p for p in _slirp_processes() if str(session.client.transport.process.pid) in p]
    survives(process_backend)


def _slirp_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if cmdline.startswith(("slirp4netns ", "/usr/bin/slirp4netns ")):
                found.append(cmdline)
    return found


def test_an_egress_job_reaches_the_outside_and_not_the_host(
    run_job, outside_server, host_listeners, tmp_path
):
    _need_egress()
    server_address, port, host_address = outside_server
    loopback_port, name, listeners = host_listeners
    policy = tmp_path / "runtime.yaml"
    policy.write_text(json.dumps({"sandbox": {"allow_network": True}}))
    addresses = [
        f"{server_address}:{port}",
        f"127.0.0.1:{loopback_port}",
        f"10.0.2.2:{loopback_port}",
        f"@{name}",
    ]
    run = run_job(
        tmp_path / "job",
        source={"plugin": f"{ATTACKS}:ConnectReader", "config": {"addresses": addresses}},
        sandbox={"backend": "process", "network": True},
        extra={"retry": {"max_attempts": 1}},
        env={"DATIVO_RUNTIME_CONFIG": str(policy)},
    )
    assert run.exit_code == 0, run.stderr[-3000:]
    assert run.seconds < TIME_BUDGET_S
    table = pq.read_table(sorted((tmp_path / "job" / "out").rglob("*.parquet")))
    results = _results(table.to_pylist())
    assert (
        results[f"{server_address}:{port}"]
        == f"ok connected: hello from the test namespace to {host_address}"
    )
    assert results[f"127.0.0.1:{loopback_port}"] == "errno ECONNREFUSED"
    assert results[f"10.0.2.2:{loopback_port}"] in ("errno ENETUNREACH", "errno ECONNREFUSED")
    assert results[f"@{name}"] == "errno ECONNREFUSED"
    _nothing_arrived(listeners)


def test_egress_without_slirp4netns_fails_and_never_shares_the_hosts_network(process_backend, monkeypatch):
    monkeypatch.setattr(_egress, "egress_tool", lambda: None)
    began = time.monotonic()
    with pytest.raises(SandboxError, match="apt-get install slirp4netns") as caught:
        process_backend.open_reader(
            _ref("ConnectReader"), {"addresses": []}, limits=SandboxLimits(timeout_s=60, network=True)
        )
    assert caught.value.details["reason"] == "startup_failed"
    assert caught.value.details["backend"] == "process"
    assert "never the host's network" in str(caught.value)
    assert time.monotonic() - began < 5
    with process_backend.open_reader(_ref("ConnectReader"), {"addresses": []}) as session:
        assert _records(session) == []  # a job without egress is unaffected


def test_the_sandbox_resolver_is_never_on_the_hosts_loopback(tmp_path):
    host, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    host.write_text("nameserver 10.9.8.7\n")
    assert _egress.guest_resolv_conf(str(host), str(upstream)).startswith(b"nameserver 10.0.2.3\n")
    host.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.internal\n")
    upstream.write_text("nameserver 10.1.1.1\nnameserver 127.0.0.1\nnameserver fd00::1\n")
    assert _egress.guest_resolv_conf(str(host), str(upstream)) == b"nameserver 10.1.1.1\noptions edns0\n"
    upstream.unlink()
    assert b"127." not in _egress.guest_resolv_conf(str(host), str(upstream))


def test_egress_namespace_gets_slirps_resolver(process_backend):
    _need_egress()
    command = process_backend.command(
        _ref("ConnectReader"),
        SandboxLimits(network=True),
        files=_bubblewrap.SandboxFiles(seccomp=3, passwd=4, group=5, resolv_conf=6, hosts=7),
    )
    # The namespace comes from unshare --net (slirp4netns attaches to it), not from bwrap.
    assert "--unshare-net" not in command
    assert Path(command[0]).name == "unshare"
    assert "--net" in command[: command.index("--")]
    assert "/etc/resolv.conf" in command
    assert command[command.index("/etc/resolv.conf") - 1] == "6"
    assert _egress.guest_resolv_conf().startswith(f"nameserver {_egress.GUEST_DNS}\n".encode())
    plain = process_backend.command(
        _ref("ConnectReader"), SandboxLimits(), files=_bubblewrap.SandboxFiles(seccomp=3, passwd=4, group=5)
    )
    assert "--unshare-net" in plain
    assert "/etc/resolv.conf" not in plain


# --- finding 10: socket families -------------------------------------------------------------

ALLOWED = {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}


def test_only_the_needed_socket_families_can_be_created(backend, survives):
    began = time.monotonic()
    with backend.open_reader(_ref("FamilyProbeReader"), {}, limits=SandboxLimits(timeout_s=60)) as session:
        results = _results(_records(session))
    assert time.monotonic() - began < TIME_BUDGET_S
    for attempt, result in results.items():
        match = re.fullmatch(r"socket (AF_\w+)", attempt)
        if match:
            expected = "ok" if match.group(1) in ALLOWED else "errno EAFNOSUPPORT"
            assert result == expected, (backend.name, attempt, result)
    assert results["socket AF_NETLINK protocol 0"] == "ok"
    assert results["socket AF_NETLINK protocol 9"] == "errno EPROTONOSUPPORT"
    assert results["socket AF_NETLINK protocol 15"] == "errno EPROTONOSUPPORT"
    assert results["socketpair AF_UNIX"] == "ok"
    assert results["socketpair AF_INET"] == "errno EAFNOSUPPORT"
    assert results["socketpair AF_VSOCK"] == "errno EAFNOSUPPORT"
    assert results["bind AF_VSOCK"] == "errno EAFNOSUPPORT"
    assert results["getaddrinfo AI_ADDRCONFIG"] == "ok ['127.0.0.1']", results  # NETLINK_ROUTE suffices
    survives(backend)
