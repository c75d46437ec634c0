"""The HTTP section's local API and its ceiling: a threaded server of the workload, and a plain httpx loop.

Usage::

    python bench/http_api.py serve --n 200000 --page-size 1000 [--host 0.0.0.0] [--port 0]
    python bench/http_api.py fetch --url http://127.0.0.1:PORT/records --out DIR

``serve`` renders the workload's N records (``created_at`` as ISO 8601 text) into pages of
``--page-size`` once, then answers ``GET /records?cursor=K&limit=P`` from memory with
``{"data": [...], "next_cursor": K2 | null}`` over HTTP/1.1 keep-alive, so the server costs
as little as possible of every candidate's time. It prints ``{"url": ...}`` on its first line.

``fetch`` is the ceiling for this server: an httpx loop that reads every page, decodes it with
``json.loads`` and writes it to one snappy Parquet file with pyarrow, page by page.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent / "plugins"))

import workload  # found through the path set just above


def render_pages(n: int, seed: int, page_size: int) -> list[bytes]:
    """The workload as JSON pages (bodies without ``next_cursor``'s value filled in)."""
    records: list[dict[str, Any]] = []
    for batch in workload.dict_batches(n, seed, 10_000):
        for record in batch:
            record["created_at"] = record["created_at"].isoformat()
            records.append(record)
    pages = []
    for start in range(0, n, page_size):
        following = start + page_size if start + page_size < n else None
        body = {"data": records[start : start + page_size], "next_cursor": following}
        pages.append(json.dumps(body, separators=(",", ":")).encode())
    return pages


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection for every page
    pages: list[bytes] = []
    page_size = 1000

    def do_GET(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        index = int(query.get("cursor") or 0) // self.page_size
        body = self.pages[index] if index < len(self.pages) else b'{"data":[],"next_cursor":null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (stdlib signature)
        """Quiet."""


def serve(n: int, seed: int, page_size: int, host: str, port: int) -> None:
    """Serve the pages until killed."""
    _Handler.pages = render_pages(n, seed, page_size)
    _Handler.page_size = page_size
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


def fetch(url: str, out: Path) -> None:
    """The ceiling: pages -> json.loads -> Arrow -> one Parquet file; prints ``{"rows": N}``."""
    import httpx
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = workload.arrow_schema()
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    cursor: Any = None
    with (
        httpx.Client(timeout=60) as client,
        pq.ParquetWriter(out / "records.parquet", schema, compression="snappy") as writer,
    ):
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor is not None else {})}
            page = json.loads(client.get(url, params=params).content)
            data = page["data"]
            if data:
                columns = {name: [r[name] for r in data] for name in schema.names}
                arrays = [
                    pa.array(columns[f.name], pa.string()).cast(f.type)
                    if pa.types.is_timestamp(f.type)
                    else pa.array(columns[f.name], f.type)
                    for f in schema
                ]
                writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
                rows += len(data)
            cursor = page["next_cursor"]
            if cursor is None:
                break
    print(json.dumps({"rows": rows}))


def main() -> None:
    """Parse the command line and run ``serve`` or ``fetch``."""
    parser = argparse.ArgumentParser(prog="bench/http_api.py")
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("--n", type=int, required=True)
    serving.add_argument("--seed", type=int, default=42)
    serving.add_argument("--page-size", type=int, default=1000)
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=0)
    fetching = commands.add_parser("fetch")
    fetching.add_argument("--url", required=True)
    fetching.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.n, args.seed, args.page_size, args.host, args.port)
    else:
        fetch(args.url, args.out)


if __name__ == "__main__":
    main()
