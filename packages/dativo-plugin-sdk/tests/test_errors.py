"""The error hierarchy: codes, retry flags, to_dict/from_dict and pickling."""

from __future__ import annotations

import builtins
import json
import math
import pickle
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dativo_plugin_sdk as sdk
from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    DativoError,
    PluginError,
    PluginVersionError,
    RateLimitError,
    SandboxError,
    TransientError,
    ValidationError,
    from_dict,
    get_error_code,
    is_retryable,
)

TABLE = [
    (DativoError, Exception, "DATIVOERROR", False),
    (sdk.ConnectionError, DativoError, "CONNECTION_FAILED", True),
    (AuthenticationError, sdk.ConnectionError, "AUTHENTICATION_FAILED", False),
    (ValidationError, DativoError, "VALIDATION_FAILED", False),
    (ConfigurationError, DativoError, "CONFIGURATION_ERROR", False),
    (TransientError, DativoError, "TRANSIENT_ERROR", True),
    (RateLimitError, TransientError, "RATE_LIMIT_EXCEEDED", True),
    (PluginError, DativoError, "PLUGIN_ERROR", False),
    (PluginVersionError, PluginError, "PLUGIN_VERSION_INCOMPATIBLE", False),
    (SandboxError, PluginError, "SANDBOX_ERROR", False),
]
CLASSES = [row[0] for row in TABLE]


@pytest.mark.parametrize(("cls", "parent", "code", "retryable"), TABLE)
def test_table_of_classes(cls: type[DativoError], parent: type, code: str, retryable: bool) -> None:
    assert issubclass(cls, parent)
    error = cls("boom")
    assert error.error_code == code
    assert error.retryable is retryable
    assert error.message == "boom"
    assert str(error) == "boom"
    assert error.details == {}


def test_user_subclass_without_code_uses_upper_case_class_name() -> None:
    class QuotaExhausted(DativoError):
        pass

    assert QuotaExhausted("x").error_code == "QUOTAEXHAUSTED"


def test_connection_error_is_also_the_builtin() -> None:
    error = sdk.ConnectionError("down")
    assert isinstance(error, builtins.ConnectionError)
    assert isinstance(error, OSError)
    assert sdk.DativoConnectionError is sdk.ConnectionError
    with pytest.raises(builtins.ConnectionError):
        raise AuthenticationError("no")


def test_rate_limit_is_always_retryable() -> None:
    assert RateLimitError("slow", retryable=False).retryable is True


def test_rate_limit_rebuilt_from_data_stays_retryable() -> None:
    data = RateLimitError("slow").to_dict() | {"retryable": False}
    assert from_dict(data).retryable is True


def test_retry_after_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match="retry_after"):
        TransientError("x", retry_after=-1)


NOT_SECONDS = [float("inf"), float("-inf"), float("nan"), -1, -0.5, True, "5", 10**400, [1]]


@pytest.mark.parametrize("cls", [TransientError, RateLimitError])
@pytest.mark.parametrize("retry_after", NOT_SECONDS, ids=repr)
def test_retry_after_must_be_finite_seconds(cls: type[TransientError], retry_after: Any) -> None:
    with pytest.raises(ValueError, match="finite, non-negative"):
        cls("x", retry_after=retry_after)


@pytest.mark.parametrize("retry_after", [0, 0.25, 30, 1e9])
def test_large_finite_retry_after_is_accepted(retry_after: float) -> None:
    # A long wait is the server's to ask for; the runtime caps it at the job's retry.max_delay.
    rebuilt = from_dict(TransientError("x", retry_after=retry_after).to_dict())
    assert isinstance(rebuilt, TransientError)
    assert rebuilt.retry_after == retry_after


@pytest.mark.parametrize("error_type", ["TransientError", "RateLimitError", "DativoError", "PluginError"])
@pytest.mark.parametrize("retry_after", NOT_SECONDS, ids=repr)
def test_from_dict_refuses_retry_after_that_is_not_finite_seconds(error_type: str, retry_after: Any) -> None:
    data = {"error_type": error_type, "error_code": "X", "message": "m", "retry_after": retry_after}
    with pytest.raises(ValueError, match="retry_after"):
        from_dict(data)


def test_from_dict_refuses_infinity_parsed_from_json() -> None:
    # What a worker can send: Python's json reads the Infinity and NaN that JSON does not have.
    for text in (
        '{"error_code": "X", "message": "m", "retry_after": Infinity}',
        '{"error_code": "X", "message": "m", "retry_after": NaN}',
    ):
        with pytest.raises(ValueError, match="retry_after"):
            from_dict(json.loads(text))


def test_from_dict_error_names_a_huge_value_briefly() -> None:
    with pytest.raises(ValueError) as caught:
        from_dict({"error_code": "X", "message": "m", "retry_after": "9" * 100_000})
    assert len(str(caught.value)) < 200


@given(st.one_of(st.floats(), st.integers(-(10**6), 10**12), st.booleans(), st.text(max_size=5)))
def test_from_dict_keeps_retry_after_only_when_finite_seconds(retry_after: Any) -> None:
    data = {"error_type": "TransientError", "error_code": "X", "message": "m", "retry_after": retry_after}
    number = isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool)
    if number and math.isfinite(retry_after) and retry_after >= 0:
        rebuilt = from_dict(data)
        assert isinstance(rebuilt, TransientError)
        assert rebuilt.retry_after == retry_after
    else:
        with pytest.raises(ValueError, match="retry_after"):
            from_dict(data)


def test_overrides() -> None:
    error = SandboxError("daemon away", retryable=True, error_code="DOCKER_UNAVAILABLE", details={"a": 1})
    assert error.retryable is True
    assert error.error_code == "DOCKER_UNAVAILABLE"
    assert error.to_dict() == {
        "error_type": "SandboxError",
        "error_code": "DOCKER_UNAVAILABLE",
        "message": "daemon away",
        "details": {"a": 1},
        "retryable": True,
    }


def test_to_dict_has_retry_after_only_when_set() -> None:
    assert "retry_after" not in TransientError("x").to_dict()
    assert RateLimitError("x", retry_after=2.5).to_dict()["retry_after"] == 2.5


def test_to_dict_makes_details_json_safe() -> None:
    import datetime

    error = ValidationError(
        "bad", details={"when": datetime.date(2024, 1, 2), "nan": float("nan"), 3: {1, 2}}
    )
    data = error.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["details"]["when"] == "2024-01-02"


def test_from_dict_unknown_type_falls_back_by_code() -> None:
    data = {
        "error_type": "VendorThrottled",
        "error_code": "RATE_LIMIT_EXCEEDED",
        "message": "m",
        "retryable": True,
    }
    error = from_dict(data)
    assert type(error) is RateLimitError
    assert error.error_code == "RATE_LIMIT_EXCEEDED"
    other = from_dict({"error_type": "Nope", "error_code": "WEIRD", "message": "m"})
    assert type(other) is DativoError
    assert other.error_code == "WEIRD"


def test_from_dict_rejects_non_mappings_and_missing_keys() -> None:
    with pytest.raises(TypeError):
        from_dict(["x"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        from_dict({"error_type": "DativoError"})


def test_subclass_with_own_init_signature_pickles() -> None:
    class HttpError(TransientError):
        def __init__(self, status: int) -> None:
            super().__init__(f"HTTP {status}", details={"status": status})
            self.status = status

    # pickle needs an importable class; exercise the reduce protocol directly.
    func, args = HttpError(503).__reduce__()
    rebuilt = func(*args)
    assert isinstance(rebuilt, HttpError)
    assert rebuilt.status == 503
    assert rebuilt.to_dict() == HttpError(503).to_dict()


def test_is_retryable_and_get_error_code_for_foreign_exceptions() -> None:
    assert is_retryable(builtins.ConnectionError("x")) is True
    assert is_retryable(TimeoutError()) is True
    assert is_retryable(KeyError("x")) is False
    assert is_retryable(TransientError("x")) is True
    assert get_error_code(TimeoutError()) == "TIMEOUT"
    assert get_error_code(ConnectionResetError()) == "CONNECTION_FAILED"
    assert get_error_code(ValueError()) == "UNEXPECTED_ERROR"
    assert get_error_code(AuthenticationError("x")) == "AUTHENTICATION_FAILED"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def errors(draw: st.DrawFn) -> DativoError:
    cls = draw(st.sampled_from(CLASSES))
    kwargs: dict[str, Any] = {
        "details": draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
    }
    if draw(st.booleans()):
        kwargs["error_code"] = draw(st.text(alphabet="ABCDEFGHIJ_", min_size=1, max_size=12))
    if draw(st.booleans()):
        kwargs["retryable"] = draw(st.booleans())
    if issubclass(cls, TransientError) and draw(st.booleans()):
        kwargs["retry_after"] = draw(st.floats(min_value=0, max_value=3600))
    return cls(draw(st.text()), **kwargs)


@given(errors())
def test_to_dict_from_dict_round_trip(error: DativoError) -> None:
    data = error.to_dict()
    json.dumps(data)
    rebuilt = from_dict(json.loads(json.dumps(data)))
    assert type(rebuilt) is type(error)
    assert rebuilt.to_dict() == data
    assert DativoError.from_dict(data).to_dict() == data


@given(errors())
def test_pickle_round_trip(error: DativoError) -> None:
    rebuilt = pickle.loads(pickle.dumps(error))
    assert type(rebuilt) is type(error)
    assert rebuilt.to_dict() == error.to_dict()
    assert str(rebuilt) == str(error)
    assert rebuilt.args == error.args
