"""HTTP failures become the SDK's errors: retries, Retry-After, timeouts, bad bodies and loops."""

from __future__ import annotations

import pytest
from http_configs import http_config, read_ids

from dativo_http import HttpReader, RetryPolicy, parse_retry_after
from dativo_plugin_sdk import (
    ConfigurationError,
    ConnectionError,  # noqa: A004
    PluginError,
    RateLimitError,
    State,
    TransientError,
)
from dativo_testkit import MockApiServer


class Sleeps(list[float]):
    """Records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _reader(config: dict, sleeps: Sleeps | None = None) -> HttpReader:  # type: ignore[type-arg]
    reader = HttpReader(config)
    if sleeps is not None:
        reader._sleep = sleeps
    return reader


@pytest.mark.parametrize("http_date", [False, True])
def test_429_honours_retry_after_in_both_forms(http_date: bool) -> None:
    with MockApiServer(records=60) as api:
        sleeps = Sleeps()
        reader = _reader(http_config(api, schema=[{"name": "id", "type": "integer"}]), sleeps)
        api.rate_limit_next(2, retry_after=7, http_date=http_date)
        assert read_ids(reader) == list(range(1, 61))
        assert len(sleeps) == 2
        for seconds in sleeps:
            assert (5.0 <= seconds <= 7.0) if http_date else seconds == 7.0


def test_503_honours_retry_after_and_other_5xx_back_off_with_jitter() -> None:
    with MockApiServer(records=60) as api:
        sleeps = Sleeps()
        config = http_config(api, schema=[{"name": "id", "type": "integer"}])
        config["retry"] = {"max_retries": 5, "backoff_factor": 1, "max_backoff": 3}
        reader = _reader(config, sleeps)
        api.fail_next(status=503, retry_after=4)
        api.fail_next(4, status=500)
        assert read_ids(reader) == list(range(1, 61))
        assert sleeps[0] == 4
        # The 503 was retry 0; the 500s are retries 1 to 4: 2, 4, 8, 16 capped at 3; each with jitter.
        for seconds, ceiling in zip(sleeps[1:], [2, 3, 3, 3], strict=True):
            assert ceiling / 2 <= seconds <= ceiling


def test_retries_run_out_as_rate_limit_and_transient_errors_with_retry_after() -> None:
    with MockApiServer(records=60) as api:
        reader = _reader(http_config(api, schema=[{"name": "id", "type": "integer"}]), Sleeps())
        api.rate_limit_next(100, retry_after=2)
        with pytest.raises(RateLimitError) as limited:
            read_ids(reader)
        assert limited.value.retry_after == 2
        api.clear_faults()
        api.fail_next(100, status=503, retry_after=3)
        with pytest.raises(TransientError) as failed:
            read_ids(reader)
        assert failed.value.retry_after == 3
        assert failed.value.retryable
        api.clear_faults()
        api.rate_limit_next(1, retry_after=1000)  # longer than max_retry_after: the runtime waits
        with pytest.raises(RateLimitError) as long_wait:
            read_ids(reader)
        assert long_wait.value.retry_after == 1000


def test_timeouts_are_retried_then_raised_as_transient() -> None:
    with MockApiServer(records=30) as api:
        config = http_config(api, schema=[{"name": "id", "type": "integer"}], timeout=0.2)
        config["timeout"] = 0.2
        config["streams"][0].pop("timeout")
        reader = _reader(config, Sleeps())
        api.delay_next(1, seconds=0.6)
        assert read_ids(reader) == list(range(1, 31))
        api.delay_next(10, seconds=0.6)
        with pytest.raises(TransientError, match="did not answer in time"):
            read_ids(reader)
        reader.close()


def test_a_malformed_body_names_the_url_and_offset_with_the_key_masked() -> None:
    with MockApiServer(records=30, auth="api_key_query", token="k3y-in-the-url") as api:
        auth = {"type": "api_key", "key": "k3y-in-the-url", "name": "api_key", "in": "query"}
        reader = _reader(http_config(api, auth=auth, schema=[{"name": "id", "type": "integer"}]))
        api.malformed_next()
        with pytest.raises(PluginError) as caught:
            read_ids(reader)
        reader.close()
        message = str(caught.value)
        assert f"{api.url}/items?" in message
        assert "api_key=***" in message
        assert "at offset" in message
        assert "k3y-in-the-url" not in f"{message} {caught.value.to_dict()}"
        assert isinstance(caught.value.details["offset"], int)


def test_an_empty_api_yields_nothing_and_keeps_the_state() -> None:
    with MockApiServer(records=0) as api:
        reader = _reader(http_config(api))
        state = State({"updated_at": "2024-01-01T00:00:00+00:00"}, stream="items")
        assert list(reader.extract(state=state)) == []
        assert state.to_dict() == {"updated_at": "2024-01-01T00:00:00+00:00"}
        assert reader.discover().objects[0].schema == ()
        api.add_records(MockApiServer.build_records(3))
        assert read_ids(reader) == [1, 2, 3]  # the schema comes from the first page that has records


@pytest.mark.timeout(30)
@pytest.mark.parametrize("paginator", ["cursor", "next_url", "link_header"])
def test_a_cursor_that_does_not_advance_is_detected(paginator: str) -> None:
    kinds = {
        "cursor": {"type": "cursor", "next": "next_cursor", "param": "cursor"},
        "next_url": {"type": "next_url", "next": "next_url"},
        "link_header": {"type": "link_header"},
    }
    with MockApiServer(records=60) as api:
        reader = _reader(
            http_config(api, paginator=kinds[paginator], schema=[{"name": "id", "type": "integer"}])
        )
        api.stall_next(1000)
        with pytest.raises(PluginError, match="does not advance"):
            read_ids(reader)
        reader.close()
        assert len(api.requests) <= 3


def test_check_connection_maps_unreachable_hosts_missing_paths_and_tls() -> None:
    with MockApiServer(records=5) as api:
        port = api.port
        config = http_config(api)
        assert (
            HttpReader(http_config(api, path="/nope")).check_connection().error_code == "CONFIGURATION_ERROR"
        )
        tls = http_config(api)
        tls["base_url"] = api.url.replace("http://", "https://")  # a TLS handshake with a plain-HTTP server
        result = HttpReader(tls).check_connection()
        assert (result.error_code, result.retryable) == ("CONNECTION_FAILED", True)
    closed = dict(config)
    closed["base_url"] = f"http://127.0.0.1:{port}"
    assert HttpReader(closed).check_connection().error_code == "CONNECTION_FAILED"
    dns = dict(config)
    dns["base_url"] = "http://no-such-host.invalid"
    result = HttpReader(dns).check_connection()
    assert result.error_code == "CONNECTION_FAILED"
    with pytest.raises(ConnectionError, match="cannot reach"):
        read_ids(HttpReader(dns))


def test_a_404_while_reading_is_a_configuration_error() -> None:
    with MockApiServer(records=5) as api, pytest.raises(ConfigurationError, match="HTTP 404"):
        read_ids(HttpReader(http_config(api, path="/nope")))


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("inf") is None


def test_retry_policy_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(backoff_factor=1, max_backoff=10)
    for retry in range(70):
        ceiling = min(10, 2**retry)
        assert ceiling / 2 <= policy.backoff(retry) <= ceiling
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)
