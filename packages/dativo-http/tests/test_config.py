"""The http reader's config: its spec, and clear messages that never show a secret."""

from __future__ import annotations

import jsonschema
import pytest

from dativo_http import CONFIG_SCHEMA, HttpReader
from dativo_plugin_sdk import ConfigurationError

BASE = {"base_url": "https://api.example.com/v1", "streams": [{"name": "orders", "path": "/orders"}]}


def _problems(config: dict) -> list[str]:  # type: ignore[type-arg]
    with pytest.raises(ConfigurationError) as caught:
        HttpReader(config)
    assert caught.value.message.startswith("the http reader's config does not fit its spec")
    return list(caught.value.details["problems"])


def test_the_config_spec_is_a_valid_json_schema_marking_secrets() -> None:
    jsonschema.Draft202012Validator.check_schema(CONFIG_SCHEMA)
    auth = CONFIG_SCHEMA["properties"]["auth"]["properties"]
    assert {k for k, v in auth.items() if v.get("secret")} == {"token", "password", "key", "client_secret"}


def test_the_issue_example_config_is_accepted() -> None:
    config = {
        "base_url": "https://api.example.com/v1",
        "auth": {"type": "bearer", "token": "t0k3n"},
        "headers": {"Accept": "application/json"},
        "rate_limit": {"requests_per_second": 5},
        "streams": [
            {
                "name": "orders",
                "path": "/orders",
                "params": {"limit": 100},
                "records_path": "data",
                "primary_key": ["id"],
                "cursor": {"field": "updated_at", "param": "updated_since"},
                "paginator": {"type": "cursor", "next": "meta.next_cursor", "param": "cursor"},
                "schema": [{"name": "id", "type": "integer", "nullable": False}],
            }
        ],
    }
    reader = HttpReader(config)
    assert [s.name for s in reader.rest_streams()] == ["orders"]
    assert reader.rate_limiter() is not None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"base_url": "ftp://x"}, "config.base_url breaks the 'pattern' rule"),
        ({"streams": []}, "config.streams breaks the 'minItems' rule"),
        ({"streams": [{"name": "o"}]}, "config.streams[0] needs 'path'"),
        ({"base_uri": "https://x"}, "config has unknown key(s) 'base_uri'"),
        ({"auth": {"type": "bearer"}}, "config.auth needs 'token'"),
        ({"auth": {"type": "digest"}}, "config.auth.type must be one of"),
        ({"auth": {"type": "oauth2", "client_id": "a"}}, "config.auth needs 'token_url'"),
        (
            {"streams": [{"name": "o", "path": "/o", "paginator": {"type": "cursor", "param": "c"}}]},
            "config.streams[0].paginator needs exactly one of next or last_record",
        ),
        (
            {"streams": [{"name": "o", "path": "/o", "paginator": {"type": "offset"}}]},
            "config.streams[0].paginator needs 'limit'",
        ),
        (
            {"streams": [{"name": "o", "path": "/o", "schema": [{"name": "id", "type": "int"}]}]},
            "config.streams[0].schema[0].type must be one of",
        ),
        ({"rate_limit": {"requests_per_second": 0}}, "config.rate_limit.requests_per_second breaks"),
    ],
)
def test_bad_configs_are_refused_by_key_path(change: dict, expected: str) -> None:  # type: ignore[type-arg]
    problems = _problems({**BASE, **change})
    assert any(p.startswith(expected) for p in problems), problems


def test_a_secret_of_the_wrong_type_is_refused_without_its_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        HttpReader({**BASE, "auth": {"type": "bearer", "token": 123456789}})
    assert "123456789" not in str(caught.value.to_dict())


def test_streams_need_distinct_names() -> None:
    with pytest.raises(ConfigurationError, match="distinct names; 'o' appears more than once"):
        HttpReader({**BASE, "streams": [{"name": "o", "path": "/a"}, {"name": "o", "path": "/b"}]})


def test_several_streams_need_the_one_to_read() -> None:
    reader = HttpReader({**BASE, "streams": [{"name": "a", "path": "/a"}, {"name": "b", "path": "/b"}]})
    with pytest.raises(ConfigurationError, match=r"has 2 streams \(a, b\)"):
        next(iter(reader.extract()))
    from dativo_plugin_sdk import State

    with pytest.raises(ConfigurationError, match="has no stream 'c'"):
        next(iter(reader.extract(state=State(stream="c"))))
