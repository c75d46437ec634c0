"""A fake Singer tap: its config's ``mode`` picks how it behaves (good, or one way of failing)."""

import argparse
import json
import os
import sys
import time

ORDERS = {
    "type": ["object"],
    "properties": {
        "id": {"type": ["integer"]},
        "name": {"type": ["null", "string"]},
        "amount": {"type": ["null", "number"]},
        "updated_at": {"type": ["null", "string"], "format": "date-time"},
        "day": {"type": ["null", "string"], "format": "date"},
        "tags": {"type": ["null", "array"], "items": {"type": "string"}},
    },
    "required": ["id"],
}
CUSTOMERS = {"type": "object", "properties": {"cid": {"type": "integer"}, "email": {"type": "string"}}}


def catalog():
    def stream(name, schema, keys, replication_key):
        metadata = {"selected": True, "table-key-properties": keys}
        if replication_key:
            metadata["valid-replication-keys"] = [replication_key]
        return {
            "tap_stream_id": name,
            "stream": name,
            "schema": schema,
            "key_properties": keys,
            "metadata": [{"breadcrumb": [], "metadata": metadata}],
        }

    return {
        "streams": [
            stream("orders", ORDERS, ["id"], "updated_at"),
            stream("customers", CUSTOMERS, ["cid"], None),
        ]
    }


def emit(message):
    sys.stdout.write(json.dumps(message) + "\n")


def order(i):
    return {
        "id": i,
        "name": f"order {i}",
        "amount": i * 1.5,
        "updated_at": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}+00:00",
        "day": "2024-05-01",
        "tags": ["a", str(i)],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--catalog")
    parser.add_argument("--state")
    parser.add_argument("--discover", action="store_true")
    args = parser.parse_args()
    with open(args.config) as handle:
        config = json.load(handle)
    mode = config.get("mode", "good")
    print(f"INFO starting in mode {mode} with password {config.get('password')}", file=sys.stderr)
    if mode == "environment":
        print("ENV " + json.dumps(dict(os.environ)), file=sys.stderr)
        print("ARGV " + json.dumps(sys.argv), file=sys.stderr)
    if mode == "fail":
        print("ERROR cannot reach the database", file=sys.stderr)
        print(f"ERROR with password {config.get('password')}", file=sys.stderr)
        sys.exit(1)
    if args.discover:
        print(json.dumps(catalog(), indent=2))
        return
    if mode == "network":  # Only ever run in a sandbox without network: no packet can leave it.
        import urllib.request

        urllib.request.urlopen("https://api.example.com/v1/orders", timeout=5)
    with open(args.catalog) as handle:
        selected = json.load(handle)
    if mode == "environment":
        print("CATALOG " + json.dumps(selected), file=sys.stderr)
    state = {}
    if args.state:
        with open(args.state) as handle:
            state = json.load(handle)
    count = int(config.get("count", 5))
    every = int(config.get("state_every", 2))
    if mode == "garbage":
        print("hello, this is not JSON")
        return
    if mode == "record_first":
        emit({"type": "RECORD", "stream": "orders", "record": order(1)})
        return
    emit({"type": "SCHEMA", "stream": "customers", "schema": CUSTOMERS, "key_properties": ["cid"]})
    emit({"type": "RECORD", "stream": "customers", "record": {"cid": 1, "email": "x@example.com"}})
    emit({"type": "SCHEMA", "stream": "orders", "schema": ORDERS, "key_properties": ["id"]})
    start = state.get("bookmarks", {}).get("orders", {}).get("last_id", 0)
    emit({"type": "ACTIVATE_VERSION", "stream": "orders", "version": 1})
    for i in range(start + 1, start + count + 1):
        record = order(i)
        if mode == "mismatch" and i == 2:
            record["id"] = "two"
        if mode == "schema_change" and i == 3:
            changed = json.loads(json.dumps(ORDERS))
            changed["properties"]["extra"] = {"type": ["null", "integer"]}
            emit({"type": "SCHEMA", "stream": "orders", "schema": changed, "key_properties": ["id"]})
        if mode == "schema_change" and i >= 3:
            record["extra"] = i * 10
        emit(
            {"type": "RECORD", "stream": "orders", "record": record, "time_extracted": "2024-05-01T00:00:00Z"}
        )
        if i % every == 0:
            emit({"type": "STATE", "value": {"bookmarks": {"orders": {"last_id": i}}}})
        if float(config.get("delay") or 0):  # a slow tap, for runs killed part-way
            sys.stdout.flush()
            time.sleep(float(config["delay"]))
        if mode == "hang" and i == 1:
            sys.stdout.flush()
            time.sleep(3600)
    if mode == "batch":
        emit({"type": "BATCH", "stream": "orders", "encoding": {"format": "jsonl"}, "manifest": []})
    emit({"type": "STATE", "value": {"bookmarks": {"orders": {"last_id": start + count}}}})
