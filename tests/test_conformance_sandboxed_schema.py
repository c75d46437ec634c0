"""``dativo-conformance --sandbox`` with a plugin whose ``config_schema`` is exponential to apply.

The schema comes from the sandbox worker; before the fix the harness applied it in a thread
of its own process, which the check's time limit abandoned but could not stop. Now each
spec check applies it in a child process killed at a deadline, and every session the
checks open is refused by the runtime's static bounds. The plugin
(``RefBombReader`` of the runtime's hostile-plugin fixtures) runs in a
``dativo-conformance`` subprocess's sandbox worker: never in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_backend

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ROOT / "packages" / "dativo-runtime" / "tests" / "sandbox" / "plugins" / "attack_config_schema.py"


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_a_schema_that_fans_out_through_ref_fails_the_spec_checks_in_bounded_time(
    backend: str, tmp_path: Path
) -> None:
    require_backend(backend)
    (tmp_path / "config.json").write_text(json.dumps({"a": 1}))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    command = [sys.executable, "-m", "dativo_testkit._cli", f"{ATTACKS}:RefBombReader"]
    began = time.monotonic()
    result = subprocess.run(
        [*command, "--config", "config.json", "--sandbox", backend, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env=environment,
    )
    seconds = time.monotonic() - began
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    spec = checks["reader.config_spec_accepts_valid_config"]
    assert spec["status"] == "failed"
    assert "RefBombReader.config_schema takes more than 10 s" in spec["reason"]
    # Each session the checks open is refused at once by the runtime, naming the schema.
    constructs = checks["reader.constructs"]
    assert constructs["status"] == "failed"
    assert "declares a config_schema too large to apply" in constructs["reason"]
    assert seconds < 240, f"the harness took {seconds:.0f} s"
