"""The state store: committed state, pending commits and the job lock, locally and on S3."""

from __future__ import annotations

from pathlib import Path

import pytest

from dativo_plugin_sdk import TransientError
from dativo_runtime import JobState, StateStore
from dativo_runtime._storage._state_store import PendingCommit


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "local":
        return StateStore(str(tmp_path / "state"))
    bucket, _ = request.getfixturevalue("s3_bucket")
    return StateStore(f"s3://{bucket}/state", {"endpoint_url": request.getfixturevalue("moto_endpoint")})


def test_state_round_trip_and_reset(store: StateStore) -> None:
    assert store.load("t", "j") == JobState()
    store.save("t", "j", JobState({"s": {"cursor": 5}}, run_id="r1", updated_at="now"))
    loaded = store.load("t", "j")
    assert (loaded.streams, loaded.run_id) == ({"s": {"cursor": 5}}, "r1")
    assert store.uri("t", "j").endswith("t/j.json")
    store.reset("t", "j")
    assert store.load("t", "j").streams == {}


def test_pending_commit_round_trip(store: StateStore) -> None:
    assert store.load_pending("t", "j") is None
    pending = PendingCommit("run", "writer-run", "/out", JobState({"s": {"n": 1}}))
    store.save_pending("t", "j", pending)
    again = store.load_pending("t", "j")
    assert again is not None
    assert (again.writer_run_id, again.state.streams) == ("writer-run", {"s": {"n": 1}})
    store.clear_pending("t", "j")
    assert store.load_pending("t", "j") is None


def test_job_lock_is_exclusive(store: StateStore) -> None:
    lease = store.lock("t", "j", owner="first")
    with pytest.raises(TransientError, match="already running as run first"):
        store.lock("t", "j", owner="second")
    lease.release()
    store.lock("t", "j", owner="second").release()


def test_state_values_keep_their_json_types(tmp_path: Path) -> None:
    store = StateStore(str(tmp_path))
    values = {"int": 1, "float": 1.5, "text": "a", "list": [1, "b"], "none": None, "nested": {"k": True}}
    store.save("t", "j", JobState({"s": values}))
    assert store.load("t", "j").streams["s"] == values


def test_a_state_with_nan_is_refused_before_anything_is_saved(tmp_path):
    import math

    import pytest

    from dativo_plugin_sdk import ConfigurationError, PluginError
    from dativo_runtime._storage._state_store import JobState, StateStore

    store = StateStore(str(tmp_path))
    with pytest.raises(PluginError, match="NaN"):
        store.save("acme", "job", JobState(streams={"s": {"cursor": math.nan}}))
    assert not list(tmp_path.rglob("*.json"))
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "job.json").write_text('{"streams": {"s": {"cursor": NaN}}}')
    with pytest.raises(ConfigurationError, match="state reset"):
        store.load("acme", "job")
