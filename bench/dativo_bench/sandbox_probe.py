"""Time ``open_reader`` + ``close`` on one sandbox backend, directly through the runtime's API.

Run by the bench as a fresh process::

    python bench/dativo_bench/sandbox_probe.py --backend process --plugin /abs/dict_reader.py:BenchDictReader

Prints one JSON line: ``{"backend": ..., "seconds": [first, second, ...]}`` (the first is
the cold start this process pays, the rest repeat it with warm caches), or
``{"error": "..."}`` when the runtime does not offer what the probe needs. It uses
private runtime names (``dativo_runtime._sandbox.choose_sandbox``,
``dativo_runtime._plugins._ref.PluginRef``): the bench falls back on timing ``dativo-run``
when they move.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    """Open and close a reader session ``--repeat`` times and print the timings."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True)
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        from dativo_runtime._plugins._ref import PluginRef
        from dativo_runtime._sandbox import choose_sandbox
    except ImportError as exc:
        print(json.dumps({"error": f"the runtime does not expose the sandbox API the probe uses: {exc}"}))
        return 0
    config = {"n": 1, "seed": 0, "batch_size": 1}
    try:
        ref = PluginRef.parse(args.plugin)
        sandbox = choose_sandbox("self_hosted", args.backend, ref)
        name = getattr(sandbox, "name", None)
        if name != args.backend:
            print(json.dumps({"error": f"choose_sandbox gave backend {name!r}, not {args.backend!r}"}))
            return 0
        seconds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            session = sandbox.open_reader(ref, config)
            # Reading the handshake's plugin info makes sure the worker answered.
            _ = session.info
            session.close()
            seconds.append(time.perf_counter() - start)
    except Exception as exc:
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(json.dumps({"error": message[:300]}))
        return 0
    print(json.dumps({"backend": args.backend, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
