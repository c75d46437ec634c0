"""Incremental reads: the cursor advances after each batch, and a resumed read misses and repeats nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from http_configs import http_config, read_ids

from dativo_http import HttpReader
from dativo_plugin_sdk import State, records_from_batch
from dativo_testkit import MockApiServer


def test_state_advances_after_each_page_and_a_rerun_reads_only_new_records() -> None:
    with MockApiServer(records=100) as api:
        reader = HttpReader(http_config(api))
        state = State(stream="items")
        seen = []
        for _batch in reader.extract(state=state):
            seen.append(state.get("updated_at"))  # not yet moved past this batch
        assert seen[0] is None
        assert state.get("updated_at") == api.records[-1]["updated_at"]
        assert len(seen) == 5
        later = datetime(2030, 1, 1, tzinfo=timezone.utc)
        api.add_records(
            [{"id": 1000 + i, "updated_at": (later + timedelta(minutes=i)).isoformat()} for i in range(3)]
        )
        assert read_ids(reader, State(state.to_dict(), stream="items")) == [1000, 1001, 1002]
        assert read_ids(reader, State(state.to_dict(), stream="items")) == [
            1000,
            1001,
            1002,
        ]  # state not shared
        reader.close()
        assert api.requests[-1].query["updated_since"] == api.records[-4]["updated_at"]


def test_a_read_stopped_midway_resumes_after_the_last_batch_the_state_covers() -> None:
    with MockApiServer(records=100) as api:
        reader = HttpReader(http_config(api))
        state = State(stream="items")
        batches = reader.extract(state=state)
        first = [r["id"] for r in records_from_batch(next(batches))]
        second = [r["id"] for r in records_from_batch(next(batches))]
        # The snapshot the runtime takes as the second batch arrives covers the first one only
        # (state is set after each yield), so a crash now re-reads the second batch, never skips it.
        saved = state.to_dict()
        batches.close()  # the run dies here
        rest = read_ids(HttpReader(http_config(api)), State(saved, stream="items"))
        assert first + rest == list(range(1, 101))
        assert rest[: len(second)] == second


def test_the_cursor_start_is_sent_on_the_first_run_only() -> None:
    with MockApiServer(records=30) as api:
        start = api.records[9]["updated_at"]
        config = http_config(api, cursor={"field": "updated_at", "param": "updated_since", "start": start})
        state = State(stream="items")
        assert read_ids(HttpReader(config), state) == list(range(11, 31))
        assert state.get("updated_at") == api.records[-1]["updated_at"]


def test_cursor_values_compare_as_instants_and_keep_the_api_spelling() -> None:
    records = [
        {"id": 1, "updated_at": "2024-01-01T10:00:00+02:00"},  # 08:00 UTC
        {"id": 2, "updated_at": "2024-01-01T09:00:00Z"},  # 09:00 UTC: the latest
        {"id": 3, "updated_at": "2024-01-01T08:30:00+00:00"},
    ]
    with MockApiServer(records=records) as api:
        state = State(stream="items")
        read_ids(HttpReader(http_config(api)), state)
        assert state.get("updated_at") == "2024-01-01T09:00:00Z"
