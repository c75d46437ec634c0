"""A sandboxed plugin's ``config_schema`` cannot hold the host: the run ends, typed, well within its timeout.

Each test runs a hostile plugin (``plugins/attack_config_schema.py``) through ``dativo-run
run --json`` in a subprocess, in each real backend. Before the fix the host applied the
worker's schema in its own process with no deadline: a 3 KB schema hung a job whose
``sandbox.timeout`` was 10 s for more than two minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import PLUGINS, HostileRun

ATTACKS = PLUGINS / "attack_config_schema.py"
SANDBOX_TIMEOUT_S = 60
TIME_BUDGET_S = 25.0
"""A run ends within this: the child applying the schema is killed after 5 s."""


@pytest.mark.parametrize(
    ("plugin", "words"),
    [
        ("RefBombReader", "too large to apply"),  # the static bounds, at once
        ("IdRefBombReader", "takes more than 5 s"),  # the deadline of the child applying it
    ],
)
def test_a_schema_that_fans_out_through_ref_is_the_plugins_error(
    run_job: Callable[..., HostileRun],
    backend_name: str,
    good_run_afterwards: Callable[[Path, str], None],
    tmp_path: Path,
    *,
    plugin: str,
    words: str,
) -> None:
    run = run_job(
        tmp_path / "attack",
        source={"plugin": f"{ATTACKS}:{plugin}", "config": {"a": 1}},
        sandbox={"backend": backend_name, "timeout": SANDBOX_TIMEOUT_S},
        timeout=120,
    )
    assert run.seconds < TIME_BUDGET_S, f"the host took {run.seconds:.1f} s"
    assert run.exit_code == 1, run.stderr[-2000:]
    assert run.error["error_code"] == "PLUGIN_ERROR", run.error
    assert "config_schema" in run.error["message"], run.error
    assert words in run.error["message"], run.error
    assert run.error["details"]["reason"] == "invalid_config_schema"
    good_run_afterwards(tmp_path, backend_name)
