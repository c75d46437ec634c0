"""Storage and leases, on local disk and on S3 over HTTP (moto)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import AuthenticationError, ConfigurationError, DativoConnectionError
from dativo_runtime._storage._backends import LocalStorage, S3Storage, Storage, match_glob, open_storage
from dativo_runtime._storage._locks import acquire_lease, read_lease


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    bucket, _ = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3Storage(f"s3://{bucket}/prefix", {"endpoint_url": endpoint})


def test_round_trip_and_listing(storage: Storage) -> None:
    assert storage.read_bytes("a/b.json") is None
    storage.write_bytes("a/b.json", b"one")
    storage.write_bytes("a/c/d.json", b"two")
    storage.write_bytes("z.txt", b"three")
    assert storage.read_bytes("a/b.json") == b"one"
    assert [f.path for f in storage.list_files("a")] == ["a/b.json", "a/c/d.json"]
    assert [f.path for f in storage.list_files()] == ["a/b.json", "a/c/d.json", "z.txt"]
    assert storage.list_dirs("a") == ["c"]
    info = storage.stat("z.txt")
    assert info is not None
    assert info.size == 5
    storage.move("z.txt", "moved/z.txt")
    assert storage.stat("z.txt") is None
    assert storage.read_bytes("moved/z.txt") == b"three"
    storage.delete_tree("a")
    assert list(storage.list_files("a")) == []
    storage.delete("never-existed")


def test_exclusive_create_and_compare_and_swap(storage: Storage) -> None:
    assert storage.create_exclusive("lock", b"first")
    assert not storage.create_exclusive("lock", b"second")
    info = storage.stat("lock")
    assert info is not None
    assert storage.replace_if_unchanged("lock", b"third", info.token)
    assert not storage.replace_if_unchanged("lock", b"fourth", info.token)
    assert storage.read_bytes("lock") == b"third"


def test_lease_excludes_a_second_holder(storage: Storage) -> None:
    lease = acquire_lease(storage, "job.lock", owner="run-1", ttl=30)
    assert lease is not None
    assert acquire_lease(storage, "job.lock", owner="run-2", ttl=30) is None
    holder = read_lease(storage, "job.lock")
    assert holder is not None
    assert holder["owner"] == "run-1"
    lease.release()
    again = acquire_lease(storage, "job.lock", owner="run-2", ttl=30)
    assert again is not None
    again.release()


def test_expired_s3_lease_is_taken_over(s3_bucket: tuple[str, Any], moto_endpoint: str) -> None:
    bucket, _ = s3_bucket
    storage = S3Storage(f"s3://{bucket}/p", {"endpoint_url": moto_endpoint})
    expired = {"owner": "dead-run", "expires_at": time.time() - 1}
    storage.write_bytes("job.lock", json.dumps(expired).encode())
    lease = acquire_lease(storage, "job.lock", owner="new-run", ttl=30)
    assert lease is not None
    assert read_lease(storage, "job.lock")["owner"] == "new-run"  # type: ignore[index]
    lease.release()


def test_s3_lease_is_renewed_while_held(s3_bucket: tuple[str, Any], moto_endpoint: str) -> None:
    bucket, _ = s3_bucket
    storage = S3Storage(f"s3://{bucket}/p", {"endpoint_url": moto_endpoint})
    lease = acquire_lease(storage, "job.lock", owner="run", ttl=0.3)
    assert lease is not None
    first = read_lease(storage, "job.lock")["expires_at"]  # type: ignore[index]
    deadline = time.monotonic() + 10
    while read_lease(storage, "job.lock")["expires_at"] == first:  # type: ignore[index]
        assert time.monotonic() < deadline, "the lease was never renewed"
        time.sleep(0.05)
    assert not lease.lost
    lease.release()
    assert storage.stat("job.lock") is None


HOLD_LOCK = """
import sys, time
from pathlib import Path
from dativo_runtime._storage._locks import acquire_lease
from dativo_runtime._storage._backends import LocalStorage
lease = acquire_lease(LocalStorage(sys.argv[1]), "x.lock", owner="child")
assert lease is not None
Path(sys.argv[1], "ready").write_text("yes")
time.sleep(120)
"""


def test_local_lease_is_freed_when_its_process_is_killed(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert child.poll() is None, "the child died before taking the lease"
            assert time.monotonic() < deadline, "the child never took the lease"
            time.sleep(0.02)
        assert acquire_lease(LocalStorage(tmp_path), "x.lock", owner="me") is None
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    lease = acquire_lease(LocalStorage(tmp_path), "x.lock", owner="me")
    assert lease is not None
    lease.release()


def test_s3_errors_are_mapped(moto_endpoint: str, aws_env: None) -> None:
    missing = S3Storage("s3://no-such-bucket-here/x", {"endpoint_url": moto_endpoint})
    with pytest.raises(ConfigurationError, match="does not exist"):
        missing.check_bucket()
    closed = S3Storage(
        "s3://b/x", {"endpoint_url": "http://127.0.0.1:9", "max_attempts": 1, "connect_timeout": 1}
    )
    with pytest.raises(DativoConnectionError) as caught:
        closed.read_bytes("k")
    assert caught.value.retryable
    assert not isinstance(caught.value, AuthenticationError)


def test_open_storage_rejects_other_schemes() -> None:
    with pytest.raises(ConfigurationError, match="only local folders and s3://"):
        open_storage("gs://bucket/x")


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.csv", "a.csv", True),
        ("*.csv", "d/a.csv", False),
        ("**/*.csv", "a.csv", True),
        ("**/*.csv", "d/e/a.csv", True),
        ("d/[ab].csv", "d/b.csv", True),
        ("d/[!ab].csv", "d/b.csv", False),
        ("2024-??/*.jsonl", "2024-01/x.jsonl", True),
    ],
)
def test_glob_matching(pattern: str, path: str, matches: bool) -> None:
    assert match_glob(pattern, path) is matches
