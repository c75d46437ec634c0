"""Structured logs: one JSON event per line with the run's ids, human lines on a TTY, no secrets.

Untrusted text costs bounded time, is cut with a marker, and cannot forge a line.
"""

from __future__ import annotations

import io
import json
import logging
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import AuthenticationError
from dativo_runtime._observability import configure_logging, log_context, redact_text
from dativo_runtime._observability._logging import MAX_TEXT_CHARS, _redact_patterns, truncate_text
from dativo_runtime._secrets import MASK, Redactor

pytestmark = pytest.mark.usefixtures("clean_logging")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _events(stream: io.StringIO) -> list[dict]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_json_lines_carry_tenant_job_and_run_ids():
    out = io.StringIO()
    configure_logging(stream=out, fmt="auto")
    log = logging.getLogger("dativo.run")
    with log_context(tenant="acme", job="orders", run_id="run-42"):
        log.info("extracted %d records", 10, extra={"stream": "orders", "batch": 3})
    log.warning("outside a run")
    first, second = _events(out)
    assert first["message"] == "extracted 10 records"
    assert first["level"] == "INFO"
    assert first["logger"] == "dativo.run"
    assert (first["tenant"], first["job"], first["run_id"]) == ("acme", "orders", "run-42")
    assert (first["stream"], first["batch"]) == ("orders", 3)
    assert first["ts"].endswith("+00:00")
    assert "tenant" not in second


def test_json_lines_carry_trace_ids_inside_a_span():
    pytest.importorskip("opentelemetry.sdk", reason="the runtime's 'otel' extra is not installed")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dativo_runtime._observability import configure_tracing

    exporter = InMemorySpanExporter()
    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    tracing = configure_tracing(exporter=exporter)
    with tracing.run(tenant="acme", job="orders", run_id="r1"), tracing.stage("extract"):
        logging.getLogger("x").info("inside")
    [event] = _events(out)
    stage = next(s for s in exporter.get_finished_spans() if s.name == "dativo.stage.extract")
    assert event["trace_id"] == f"{stage.context.trace_id:032x}"
    assert event["span_id"] == f"{stage.context.span_id:016x}"


def test_human_format_on_a_terminal():
    out = _Terminal()
    configure_logging(stream=out, fmt="auto")
    with log_context(tenant="acme", job="orders", run_id="r1"):
        logging.getLogger("x").info("hello", extra={"records": 5})
    line = out.getvalue().strip()
    assert not line.startswith("{")
    assert "INFO" in line
    assert "acme/orders" in line
    assert "[run r1]" in line
    assert "hello" in line
    assert "records=5" in line


def test_configuring_twice_keeps_one_handler():
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first, fmt="json")
    configure_logging(stream=second, fmt="json")
    logging.getLogger("x").info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_secrets_never_reach_the_log(secrets):
    out = io.StringIO()
    extra_secret = "given-only-to-the-filter"
    configure_logging(stream=out, fmt="json", secrets=[extra_secret])
    log = logging.getLogger("dativo.run")
    with log_context(tenant="acme", job="orders", run_id="r"):
        log.info("connecting with %s and %s", secrets[0], extra_secret)
        log.info("config: password=%s api_key: '%s'", "plainpass1", "plainkey22")
        log.info("GET https://bob:urlpassw0rd@api.example.com/v1 with Authorization: Bearer abcdef123456")
        log.info(
            "plugin said",
            extra={
                "output": f"token {secrets[1]} accepted",
                "config": {"password": "nested-pass", "host": "db", "deeper": {"secret_token": "deep-tok"}},
                "aws_secret_access_key": "raw-aws-secret",
                "items": [secrets[2]],
            },
        )
        try:
            raise AuthenticationError(f"credentials {secrets[0]} refused; password=tracebackpass")
        except AuthenticationError:
            log.exception("run failed")
    text = out.getvalue()
    for value in [*secrets, extra_secret, "plainpass1", "plainkey22", "urlpassw0rd", "abcdef123456"]:
        assert value not in text, value
    for value in ["nested-pass", "deep-tok", "raw-aws-secret", "tracebackpass"]:
        assert value not in text, value
    events = _events(out)
    assert events[3]["config"]["host"] == "db"
    assert events[3]["aws_secret_access_key"] == "***"
    error = events[4]["error"]
    assert error["type"] == "AuthenticationError"
    assert error["error_code"] == "AUTHENTICATION_FAILED"
    assert error["retryable"] is False
    assert "Traceback" in error["traceback"]
    assert "credentials *** refused" in error["message"]


def test_redaction_keeps_ordinary_text():
    text = "wrote key=orders/2024/part-0.parquet (12 rows) in 0.5s; error: connection refused"
    assert redact_text(text, Redactor()) == text


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=40))
def test_any_registered_secret_is_masked_wherever_it_appears(secret):
    redactor = Redactor()
    redactor.add(secret)
    assert secret not in redact_text(f"before {secret} after ({secret})", redactor)


# Untrusted text: bounded redaction time, truncation, no forged lines.

MEGABYTE = 1 << 20
# Pieces the patterns look for, so that repeating them makes the worst inputs for a backtracking regex.
_HOSTILE_PIECES = [
    "password",
    "a",
    "=",
    ": ",
    "'",
    '"',
    " ",
    "://",
    "u:",
    "@",
    "Bearer ",
    ".",
    "api_key",
    "\n",
    "${",
    "token",
    "-",
]
hostile_chunks = st.lists(st.sampled_from(_HOSTILE_PIECES), min_size=1, max_size=12).map("".join)


def _timed(function, *args, **kwargs):
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - began


@settings(max_examples=25, deadline=None)
@given(hostile_chunks)
def test_redacting_a_megabyte_message_takes_well_under_a_second(chunk):
    text = (chunk * (MEGABYTE // len(chunk) + 1))[:MEGABYTE]
    redacted, seconds = _timed(redact_text, text, Redactor())
    assert seconds < 0.5
    assert len(redacted) < MAX_TEXT_CHARS * 2
    assert "[truncated " in redacted


@pytest.mark.parametrize(
    "chunk",
    ["password", "password=", "password= ", 'password="', "a= ", "a://b:", "a.", "Bearer ", "x-token: 'v' "],
)
def test_the_patterns_alone_are_linear(chunk):
    # Without the cut: 128 KiB of what made the old pattern take minutes on 10,000 characters.
    text = chunk * ((128 << 10) // len(chunk))
    _, seconds = _timed(_redact_patterns, text)
    assert seconds < 0.5


def test_long_text_is_cut_with_a_visible_marker():
    text = "word " * 10_000
    cut = truncate_text(text)
    assert len(cut) <= MAX_TEXT_CHARS + 40
    assert cut.endswith(f"... [truncated {len(text) - len(cut.split('...')[0])} chars]")
    assert truncate_text("short") == "short"


def test_a_cut_keeps_the_start_and_end_of_a_traceback():
    text = "Traceback (most recent call last):\n" + "  frame\n" * 10_000 + "ValueError: the cause"
    cut = truncate_text(text, 1000, keep_end=True)
    assert cut.startswith("Traceback")
    assert cut.endswith("ValueError: the cause")
    assert "[truncated " in cut
    assert len(cut) < 1100


@given(st.text(min_size=0, max_size=300), st.integers(min_value=1, max_value=200), st.booleans())
def test_truncation_counts_what_it_cut(text, limit, keep_end):
    cut = truncate_text(text, limit, keep_end=keep_end)
    if len(text) <= limit:
        assert cut == text
        return
    count = int(cut.split("[truncated ")[1].split(" chars]")[0])
    kept = len(cut) - len(f"... [truncated {count} chars]") - (len("\n ...\n") if keep_end else 0)
    assert kept + count == len(text)
    assert kept <= limit


@given(
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="xy*"),
        min_size=4,
        max_size=40,
    )
)
def test_a_known_secret_cut_in_half_is_still_masked(secret):
    redactor = Redactor()
    redactor.add(secret)
    for offset in range(1, len(secret)):
        text = "x" * (MAX_TEXT_CHARS - offset) + secret + "y" * 100
        kept = redact_text(text, redactor).split("... [truncated ")[0]
        assert set(kept) <= {"x", "y", "*"}  # Padding and (part of) the mask, nothing of the secret.


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("password=" + "s" * (3 * MAX_TEXT_CHARS), "sss"),
        ('"api_key": "' + "k" * (3 * MAX_TEXT_CHARS) + '"', "kkk"),
        ("login https://bob:" + "p" * 200 + "@db.example.com/x", "ppp"),
        ("Authorization: Bearer " + "t" * 300, "ttt"),
    ],
    ids=["key=value", "quoted", "url", "bearer"],
)
def test_secret_patterns_still_mask_long_values(text, hidden):
    redacted = redact_text(text, Redactor())
    assert hidden not in redacted
    assert MASK in redacted


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("config: password=plainpass1, host=db", "config: password=***, host=db"),
        ("api_key: 'plainkey22'", "api_key: '***'"),
        ('{"db_password": "p w d", "port": 5432}', '{"db_password": "***", "port": 5432}'),
        ('token="unterminated and more\nnext line', 'token="***\nnext line'),
        ("spark.hadoop.fs.s3a.secret.key=abc123", "spark.hadoop.fs.s3a.secret.key=***"),
        ("--db-password=hunter22 --host=db", "--db-password=*** --host=db"),
        ("GET /x?access_token=abc&page=2", "GET /x?access_token=***&page=2"),
        ("wrote key=orders/2024/part-0.parquet", "wrote key=orders/2024/part-0.parquet"),
        ("monkey=banana author=me", "monkey=banana author=me"),
    ],
)
def test_secret_looking_pairs(text, expected):
    assert redact_text(text, Redactor()) == expected


def test_a_megabyte_log_line_is_cut_and_redacted_in_the_log(secrets):
    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    log = logging.getLogger("dativo.plugin")
    began = time.perf_counter()
    log.warning("[plugin] x: %s", f"password={secrets[0]} " + "password" * (MEGABYTE // 8))
    try:
        raise ValueError("y" * MEGABYTE)
    except ValueError:
        log.exception("failed", extra={"output": "z" * MEGABYTE})
    assert time.perf_counter() - began < 0.5
    first, second = _events(out)
    assert "[truncated " in first["message"]
    assert len(first["message"]) < MAX_TEXT_CHARS + 100
    assert secrets[0] not in out.getvalue()
    assert "password=***" in first["message"]
    assert len(second["output"]) < MAX_TEXT_CHARS + 100
    assert len(second["error"]["message"]) < MAX_TEXT_CHARS + 100
    assert len(second["error"]["traceback"]) < MAX_TEXT_CHARS + 100
    assert second["error"]["traceback"].startswith("Traceback")


FORGERY = "done\n12:00:00 INFO  dativo_runtime.pipeline run succeeded\r\x1b[2K\x1b]0;owned\x07\x9b31m\x7f\u2028\u202e"


def test_text_logs_escape_control_characters():
    out = _Terminal()
    configure_logging(stream=out, fmt="text")
    logging.getLogger("dativo.plugin").warning("[plugin] x: %s", FORGERY, extra={"note": "a\nb"})
    text = out.getvalue()
    assert text.count("\n") == 1
    assert text.endswith("\n")
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text[:-1])
    assert r"done\n12:00:00 INFO" in text
    assert r"\r\x1b[2K\x1b]0;owned\x07\x9b31m\x7f\u2028\u202e" in text
    assert r"note=a\nb" in text


def test_text_log_tracebacks_are_indented_and_escaped():
    out = _Terminal()
    configure_logging(stream=out, fmt="text")
    try:
        raise ValueError(FORGERY)
    except ValueError:
        logging.getLogger("x").exception("failed")
    first, *rest = out.getvalue().rstrip("\n").split("\n")
    assert "failed" in first
    assert rest
    assert all(line.startswith("  | ") for line in rest)
    assert any(line.startswith("  | Traceback") for line in rest)
    assert "\x1b" not in out.getvalue()


@given(st.text(max_size=200))
def test_any_message_is_one_text_line(message):
    out = _Terminal()
    configure_logging(stream=out, fmt="text")
    logging.getLogger("x").warning("%s", message)
    line = out.getvalue()
    assert line.count("\n") == 1
    assert line.endswith("\n")
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in line[:-1])


@given(st.text(max_size=200))
def test_json_logs_escape_every_control_character_and_round_trip(message):
    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    logging.getLogger("x").warning("%s", message)
    line = out.getvalue()
    assert line.count("\n") == 1
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in line[:-1])
    assert json.loads(line)["message"] == redact_text(message, Redactor())
