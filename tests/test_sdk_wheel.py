"""The built SDK wheel installs alone (only `packaging` beside it) and runs the example plugins."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "packages" / "dativo-plugin-sdk"
EXAMPLES = ROOT / "examples" / "plugins"

ITEMS = [
    {
        "id": i,
        "name": f"n{i}",
        "email": f"u{i}@x.io",
        "amount": i * 1.5,
        "updated_at": f"2024-01-{i + 1:02d}T00:00:00+00:00",
    }
    for i in range(7)
]


class _Api(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer secret-token":
            self.send_response(401)
            self.end_headers()
            return
        query = parse_qs(urlparse(self.path).query)
        limit = int(query["limit"][0])
        offset = int(query.get("cursor", ["0"])[0])
        since = query.get("updated_since", [""])[0]
        rows = [r for r in ITEMS if r["updated_at"] > since]
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        body = json.dumps({"data": page, "next_cursor": str(offset + limit) if more else None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(SDK)],
        check=True,
    )
    (wheel,) = dist.glob("dativo_plugin_sdk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "dativo_plugin_sdk/py.typed" in names
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True)
    return python


def test_only_packaging_is_installed_beside_the_sdk(sdk_venv: Path) -> None:
    listing = subprocess.run(
        [str(sdk_venv), "-m", "pip", "list", "--format=json"], check=True, capture_output=True, text=True
    ).stdout
    names = {p["name"].lower() for p in json.loads(listing)} - {"pip", "setuptools", "wheel"}
    assert names == {"dativo-plugin-sdk", "packaging"}


def test_example_plugins_run_against_the_installed_wheel(
    sdk_venv: Path, api_url: str, tmp_path: Path
) -> None:
    script = f"""
import importlib.util, json, sys
sys.path.insert(0, {str(EXAMPLES)!r})
assert "pyarrow" not in sys.modules
from json_api_reader import JsonApiReader
from jsonl_writer import JsonlWriter
from dativo_plugin_sdk import State, check_compatibility, AuthenticationError

for cls in (JsonApiReader, JsonlWriter):
    check_compatibility(cls)
reader = JsonApiReader({{"base_url": {api_url!r}, "token": "secret-token", "page_size": 3}})
assert reader.check_connection().success
stream = reader.discover().objects[0]
state = State(stream=stream.name)
writer = JsonlWriter({{"path": {str(tmp_path / "out")!r}}}, schema=stream.schema)
meta = []
for n, batch in enumerate(reader.extract(state)):
    meta += writer.write_batch(batch, n)
writer.commit_files(meta)
again = [r for b in JsonApiReader(reader.config).extract(State(state.to_dict())) for r in b]
bad = JsonApiReader({{"base_url": {api_url!r}, "token": "wrong"}}).check_connection()
print(json.dumps({{"files": len(meta), "state": state.to_dict(), "again": len(again), "bad": bad.error_code,
                   "pyarrow": "pyarrow" in sys.modules}}))
"""
    out = subprocess.run([str(sdk_venv), "-c", script], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    assert result == {
        "files": 3,
        "state": {"updated_at": "2024-01-07T00:00:00+00:00"},
        "again": 0,
        "bad": "AUTHENTICATION_FAILED",
        "pyarrow": False,
    }
    written = [
        json.loads(line)
        for f in sorted((tmp_path / "out").glob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    assert written == ITEMS
    assert not (tmp_path / "out" / "_staging").exists() or not any(
        (tmp_path / "out" / "_staging").rglob("*.jsonl")
    )
