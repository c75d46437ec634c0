"""A fake Airbyte source: its config's ``mode`` picks how it behaves."""

import argparse
import json
import sys

USERS = {
    "type": "object",
    "properties": {
        "id": {"type": "number", "airbyte_type": "integer"},
        "name": {"type": ["null", "string"]},
        "updated_at": {
            "type": ["null", "string"],
            "format": "date-time",
            "airbyte_type": "timestamp_with_timezone",
        },
        "address": {"type": ["null", "object"], "properties": {"city": {"type": "string"}}},
    },
}
SPEC = {
    "documentationUrl": "https://example.com",
    "connectionSpecification": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["count"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "mode": {"type": "string"},
            "api_key": {"type": "string", "airbyte_secret": True},
            "nested": {"$ref": "#/definitions/nested"},
        },
        "definitions": {
            "nested": {"type": "object", "properties": {"token": {"type": "string", "airbyte_secret": True}}}
        },
    },
}


def emit(message):
    print(json.dumps(message, separators=(",", ":")), flush=False)


def log(level, message):
    emit({"type": "LOG", "log": {"level": level, "message": message}})


def trace_error(failure_type, message):
    emit(
        {
            "type": "TRACE",
            "trace": {
                "type": "ERROR",
                "emitted_at": 1.0,
                "error": {"message": message, "internal_message": "inner", "failure_type": failure_type},
            },
        }
    )


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("spec")
    for name in ("check", "discover", "read"):
        command = sub.add_parser(name)
        command.add_argument("--config", required=True)
        if name == "read":
            command.add_argument("--catalog", required=True)
            command.add_argument("--state")
    args = parser.parse_args()
    if args.command == "spec":
        emit({"type": "SPEC", "spec": SPEC})
        return
    with open(args.config) as handle:
        config = json.load(handle)
    mode = config.get("mode", "good")
    log("INFO", f"starting {args.command} in mode {mode} with key {config.get('api_key')}")
    print("a library printed this to stdout")
    if mode in ("config_error", "transient_error", "system_error"):
        trace_error(mode, f"it went wrong: {mode}")
        sys.exit(1)
    if args.command == "check":
        if mode == "check_failed":
            emit(
                {
                    "type": "CONNECTION_STATUS",
                    "connectionStatus": {"status": "FAILED", "message": "bad credentials"},
                }
            )
        else:
            emit({"type": "CONNECTION_STATUS", "connectionStatus": {"status": "SUCCEEDED"}})
        return
    stream = {
        "name": "users",
        "json_schema": USERS,
        "supported_sync_modes": ["full_refresh", "incremental"],
        "source_defined_cursor": True,
        "default_cursor_field": ["updated_at"],
        "source_defined_primary_key": [["id"]],
    }
    if args.command == "discover":
        emit({"type": "CATALOG", "catalog": {"streams": [stream, {**stream, "name": "other"}]}})
        return
    with open(args.catalog) as handle:
        catalog = json.load(handle)
    state = []
    if args.state:
        with open(args.state) as handle:
            state = json.load(handle)
    log("INFO", "catalog " + json.dumps(catalog))
    log("INFO", "state " + json.dumps(state))
    start = 0
    for message in state:
        if message.get("type") == "STREAM":
            start = message["stream"]["stream_state"]["offset"]
    count = int(config["count"])
    for i in range(start + 1, start + count + 1):
        data = {
            "id": i,
            "name": f"user {i}",
            "updated_at": "2024-05-01T10:00:00+00:00",
            "address": {"city": f"c{i}"},
        }
        emit({"type": "RECORD", "record": {"stream": "users", "data": data, "emitted_at": 1}})
        if i % 2 == 0:
            emit(
                {
                    "type": "STATE",
                    "state": {
                        "type": "STREAM",
                        "stream": {"stream_descriptor": {"name": "users"}, "stream_state": {"offset": i}},
                        "sourceStats": {"recordCount": 2.0},
                    },
                }
            )
    if mode == "trace_after_records":
        trace_error("transient_error", "rate limited")
        return
    emit(
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": "users"}, "stream_state": {"offset": start + count}},
            },
        }
    )
    emit(
        {
            "type": "TRACE",
            "trace": {"type": "STREAM_STATUS", "emitted_at": 1.0, "stream_status": {"status": "COMPLETE"}},
        }
    )
