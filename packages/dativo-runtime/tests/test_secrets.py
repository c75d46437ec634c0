"""Secrets: which keys are secret, interpolation forms, redaction of text and data."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._secrets import (
    _REFERENCE,
    MASK,
    RedactingStream,
    Redactor,
    _substitute_references,
    interpolate,
    is_secret_key,
)


@pytest.mark.parametrize(
    "key",
    ["password", "db_password", "token", "api_key", "apiKey", "aws_secret_access_key", "credentials", "key"],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["path", "partition_by", "cursor_field", "endpoint_url", "compression", "name"]
)
def test_plain_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_values_under_secret_keys_and_known_values_are_masked() -> None:
    redactor = Redactor()
    redactor.add("hunter2-long")
    data = {
        "password": "anything",
        "nested": {"note": "the value is hunter2-long!"},
        "list": ["hunter2-long"],
        "n": 1,
    }
    assert redactor.redact(data) == {
        "password": MASK,
        "nested": {"note": f"the value is {MASK}!"},
        "list": [MASK],
        "n": 1,
    }


def test_short_values_are_not_remembered() -> None:
    redactor = Redactor()
    redactor.add("abc")
    assert redactor.redact_text("abc") == "abc"


def test_longest_secret_is_masked_first() -> None:
    redactor = Redactor()
    redactor.add("secret")
    redactor.add("secret-and-more")
    assert redactor.redact_text("x secret-and-more y") == f"x {MASK} y"


@given(st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s and s), st.text(max_size=40))
def test_a_secret_never_survives_redaction(secret: str, around: str) -> None:
    redactor = Redactor()
    redactor.add(secret)
    assert secret not in redactor.redact_text(around + secret + around).replace(MASK, "\x00")


def test_interpolation_registers_secret_env_names_and_files(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-a-file\n")
    redactor = Redactor()
    result = interpolate(
        {"a": "${API_TOKEN}", "b": "${HOME_DIR}", "c": "${file:pw}", "d": "${env:HOME_DIR}/x"},
        environ={"API_TOKEN": "tok-123456", "HOME_DIR": "/home/me"},
        base_dir=tmp_path,
        redactor=redactor,
    )
    assert result == {"a": "tok-123456", "b": "/home/me", "c": "from-a-file", "d": "/home/me/x"}
    assert "tok-123456" in redactor
    assert "from-a-file" in redactor
    assert "/home/me" not in redactor


@pytest.mark.parametrize("text", ["${}", "${1BAD}", "${file:}"])
def test_malformed_references(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigurationError):
        interpolate({"x": text}, environ={}, base_dir=tmp_path, redactor=Redactor())


def test_redacting_stream() -> None:
    redactor = Redactor()
    redactor.add("topsecret")
    buffer = io.StringIO()
    stream = RedactingStream(buffer, redactor)
    stream.write("value=topsecret\n")
    assert buffer.getvalue() == f"value={MASK}\n"


def _reference(match: re.Match[str]) -> str:
    return "${" if match.group(0) == "$${" else f"<{match.group(1)}>"


@given(st.lists(st.sampled_from(["$", "{", "}", "$${", "${", "A", "B:-x", " "]), max_size=30).map("".join))
def test_reference_substitution_matches_the_plain_pattern(text: str) -> None:
    assert _substitute_references(text, _reference) == _REFERENCE.sub(_reference, text)


@pytest.mark.parametrize("unit", ["${", "$${", "${A:-", "$"])
def test_a_megabyte_of_unclosed_references_interpolates_in_linear_time(tmp_path: Path, unit: str) -> None:
    text = unit * ((1 << 20) // len(unit))
    began = time.perf_counter()
    result = interpolate({"x": text}, environ={}, base_dir=tmp_path, redactor=Redactor())
    assert time.perf_counter() - began < 0.5
    assert result["x"] == text.replace("$${", "${")
