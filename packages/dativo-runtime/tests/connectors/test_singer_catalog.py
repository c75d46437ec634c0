"""A Singer catalog as Dativo streams, and the catalog that selects one stream."""

from __future__ import annotations

from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime.connectors._singer_catalog import discovered_stream, find_stream, select_stream

SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}},
}


def entry(name: str, **extra: Any) -> dict[str, Any]:
    return {"tap_stream_id": name, "stream": name, "schema": SCHEMA, **extra}


def test_key_properties_and_replication_key_become_primary_key_and_cursor() -> None:
    stream = discovered_stream(entry("a", key_properties=["id"], replication_key="at"))
    assert stream.primary_key == ("id",)
    assert stream.cursor_field == "at"
    assert stream.column("id").nullable is False


def test_metadata_stands_in_for_missing_top_level_keys() -> None:
    metadata = [
        {"breadcrumb": [], "metadata": {"table-key-properties": ["id"], "valid-replication-keys": ["at"]}}
    ]
    stream = discovered_stream(entry("a", metadata=metadata))
    assert stream.primary_key == ("id",)
    assert stream.cursor_field == "at"


def test_keys_the_schema_does_not_list_are_left_out() -> None:
    stream = discovered_stream(entry("a", key_properties=["nope"], replication_key="gone"))
    assert stream.primary_key == ()
    assert stream.cursor_field is None


def test_find_stream_by_id_or_the_only_one() -> None:
    streams = [entry("a"), entry("b")]
    assert find_stream(streams, "b")["stream"] == "b"
    assert find_stream([entry("a")], None)["stream"] == "a"
    with pytest.raises(ConfigurationError, match="offers 2 streams"):
        find_stream(streams, None)
    with pytest.raises(ConfigurationError, match="no stream 'c'; its streams: a, b"):
        find_stream(streams, "c")


def _metadata(stream: dict[str, Any], breadcrumb: list[str]) -> dict[str, Any]:
    return next(m["metadata"] for m in stream["metadata"] if m["breadcrumb"] == breadcrumb)


def test_select_one_stream_and_its_fields_and_nothing_else() -> None:
    unsupported = [{"breadcrumb": ["properties", "at"], "metadata": {"inclusion": "unsupported"}}]
    catalog = {
        "streams": [
            entry("a", replication_key="at", metadata=[{"breadcrumb": [], "metadata": {"selected": True}}]),
            entry("b", metadata=unsupported),
        ]
    }
    chosen = select_stream(catalog, "b", incremental=True)
    a, b = chosen["streams"]
    assert _metadata(a, [])["selected"] is False
    assert a["selected"] is False
    assert _metadata(b, [])["selected"] is True
    assert b["selected"] is True
    assert _metadata(b, ["properties", "id"]) == {"selected": True}
    assert _metadata(b, ["properties", "at"])["selected"] is False
    # b has no replication key: read whole even though the job is incremental.
    assert _metadata(b, [])["replication-method"] == "FULL_TABLE"
    assert catalog["streams"][0]["metadata"][0]["metadata"] == {"selected": True}  # the input is untouched


@pytest.mark.parametrize(("incremental", "method"), [(True, "INCREMENTAL"), (False, "FULL_TABLE")])
def test_replication_method_follows_the_job(incremental: bool, method: str) -> None:
    chosen = select_stream({"streams": [entry("a", replication_key="at")]}, "a", incremental=incremental)
    stream = chosen["streams"][0]
    assert _metadata(stream, [])["replication-method"] == method == stream["replication_method"]
    if incremental:
        assert _metadata(stream, [])["replication-key"] == "at" == stream["replication_key"]
