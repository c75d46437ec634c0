"""`dativo-testkit mock-api`: serves the mock API from a JSON-lines file, tails it, queues faults, stops cleanly."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dativo_testkit._testkit_cli import FaultSpec, main, parse_fault

COMMAND = [sys.executable, "-c", "import sys; from dativo_testkit._testkit_cli import main; sys.exit(main())"]


def _record(i: int) -> str:
    return json.dumps({"id": i, "updated_at": f"2024-01-{i:02d}T00:00:00Z", "name": f"n{i}"}) + "\n"


class Served:
    """A running ``dativo-testkit mock-api`` process and the URL it printed."""

    def __init__(self, process: subprocess.Popen[str], url: str, banner: str) -> None:
        self.process = process
        self.url = url
        self.banner = banner

    def get(self, token: str = "test-token", query: str = "limit=100") -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(
            f"{self.url}/items?{query}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers), json.loads(exc.read())

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> Served:
        process = subprocess.Popen(
            [*COMMAND, "mock-api", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"at (http://\S+) ", line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        return Served(process, match.group(1), line)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_serves_the_file_and_picks_up_appended_lines(tmp_path: Path, serve: Any) -> None:
    records = tmp_path / "orders.jsonl"
    records.write_text(_record(1) + _record(2) + "\n")
    served = serve("--records", str(records), "--port", "0")
    status, _, page = served.get()
    assert status == 200
    assert [r["id"] for r in page["data"]] == [1, 2]
    with records.open("a") as handle:
        handle.write(
            _record(3) + "this is not json\n" + json.dumps({"id": 4, "updated_at": "2024-01-04T00:00:00Z"})
        )
    deadline = time.monotonic() + 10
    while [r["id"] for r in served.get()[2]["data"]] != [1, 2, 3, 4]:
        assert time.monotonic() < deadline, "appended records were not served"
        time.sleep(0.1)
    # incremental readers see only what is new
    _, _, newer = served.get(query="limit=10&updated_since=2024-01-02T00:00:00Z")
    assert [r["id"] for r in newer["data"]] == [3, 4]
    code, out, err = served.stop()
    assert code == 0
    assert out.endswith("dativo-testkit mock-api: stopped\n")
    assert f"{records}, line 5: not valid JSON" in err
    assert "Traceback" not in err


def test_faults_are_answered_in_order_then_pages(serve: Any) -> None:
    served = serve(
        "--generate", "5", "--fault", "401", "--fault", "403", "--fault", "429:2x2", "--fault", "503"
    )
    answers = [served.get() for _ in range(6)]
    assert [status for status, _, _ in answers] == [401, 403, 429, 429, 503, 200]
    assert answers[2][1]["Retry-After"] == "2"
    assert len(answers[5][2]["data"]) == 5
    assert served.get(token="wrong")[0] == 403
    code, _, _ = served.stop(signal.SIGINT)
    assert code == 0


def test_it_prints_its_url_and_never_the_token(serve: Any) -> None:
    served = serve("--token", "s3cr3t-value", "--resource", "orders")
    assert served.url.startswith("http://127.0.0.1:")
    code, out, err = served.stop()
    assert code == 0
    assert "s3cr3t-value" not in served.banner + out + err
    assert served.banner.startswith("dativo-testkit mock-api: serving 100 records (generated) at http://")
    assert "(GET /orders, bearer token from --token); Ctrl-C stops" in served.banner


def _busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--records", "{dir}/missing.jsonl"], "cannot read records file"),
        (
            ["--records", "{bad}"],
            "line 2: a record needs an integer 'id' and an ISO 8601 'updated_at' string",
        ),
        (["--records", "{bad_time}"], "line 1: 'updated_at' 'yesterday' is not an ISO 8601 timestamp"),
        (["--port", "{busy}"], "cannot listen on 127.0.0.1:{busy}"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "bad.jsonl").write_text(_record(1) + '{"id": "two"}\n')
    (tmp_path / "bad_time.jsonl").write_text('{"id": 1, "updated_at": "yesterday"}\n')
    for port in _busy_port():
        values = {
            "dir": tmp_path,
            "bad": tmp_path / "bad.jsonl",
            "bad_time": tmp_path / "bad_time.jsonl",
            "busy": port,
        }
        run = subprocess.run(
            [*COMMAND, "mock-api", *[a.format(**values) for a in args]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 2
        assert run.stdout == ""
        assert run.stderr.startswith("dativo-testkit mock-api: error: ")
        assert message.format(**values) in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("401", FaultSpec(401)),
        ("403x2", FaultSpec(403, 2)),
        ("429", FaultSpec(429)),
        ("429:2.5x3", FaultSpec(429, 3, 2.5)),
        ("500", FaultSpec(500)),
        ("599x10", FaultSpec(599, 10)),
    ],
)
def test_fault_forms(text: str, fault: FaultSpec) -> None:
    assert parse_fault(text) == fault


@pytest.mark.parametrize("text", ["404", "200", "503:2", "429x0", "x3", "429:", "five"])
def test_bad_fault_forms_are_usage_errors(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mock-api", "--fault", text]) == 2
    assert "--fault" in capsys.readouterr().err


def test_the_console_script_is_installed() -> None:
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["dativo-testkit"] == "dativo_testkit._testkit_cli:main"
    assert scripts["dativo-conformance"] == "dativo_testkit._cli:main"


@pytest.mark.parametrize(
    ("reader", "expected"),
    [("HttpReader", (0, "PASS")), ("BareExceptionReader", (1, "FAIL"))],
)
def test_conformance_in_another_process_drives_the_servers_faults(
    tmp_path: Path, serve: Any, plugins_dir: Path, reader: str, expected: tuple[int, str]
) -> None:
    code, outcome = expected
    served = serve("--generate", "120")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"base_url": served.url, "token": "test-token", "page_size": 20}))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "dativo_testkit._cli",
            f"{plugins_dir / 'http_readers.py'}:{reader}",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == code, run.stdout + run.stderr
    lines = {
        line.split()[1]: line.split()[0]
        for line in run.stdout.splitlines()
        if line[:4] in ("PASS", "FAIL", "SKIP")
    }
    names = ["authentication", "rate_limit", "server_errors", "unreachable"]
    assert [lines[f"reader.mock_api_{n}"] for n in names] == [outcome] * 4, run.stdout
    # the server is left without queued faults, answering normally
    assert served.get()[0] == 200


def test_the_control_endpoint_is_for_loopback_clients(serve: Any) -> None:
    served = serve("--host", "0.0.0.0", "--generate", "3")  # every address
    port = served.url.rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_dativo/mock-api", timeout=10) as response:
        identity = json.loads(response.read())
    assert identity == {"dativo_mock_api": 1, "resource": "items", "requests": 0}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))  # picks a route; sends nothing
            address = probe.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("this host has no address outside loopback")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{address}:{port}/_dativo/mock-api", timeout=10)
    assert refused.value.code == 403
    refused.value.close()
