"""docs/observability.md and the Grafana dashboard stay in step with the metrics the code exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from dativo_runtime._observability import RunMetrics
from dativo_runtime._serve import ScheduledJob, Scheduler

DOCS = Path(__file__).resolve().parents[4] / "docs"
SUFFIXES = ("_total", "_bucket", "_count", "_sum")

pytestmark = pytest.mark.skipif(
    not (DOCS / "observability.md").exists(), reason="docs/ is not in this checkout"
)


def _exposed_families() -> dict[str, str]:
    metrics = RunMetrics()
    Scheduler([ScheduledJob(Path("/j.yaml"), "t", "j", "@daily")], runner=None, metrics=metrics)  # type: ignore[arg-type]
    return {family.name: family.type for family in metrics.source_registry.collect()}


def _metric_names(expression: str) -> set[str]:
    # dativo_job is a label, every other dativo_ word a metric.
    return set(re.findall(r"\bdativo_[a-z_]+", expression)) - {"dativo_job"}


def _family_of(name: str, families: dict[str, str]) -> str | None:
    if name in families:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            return name[: -len(suffix)]
    return None


def test_every_exposed_metric_is_documented_with_its_sample_name():
    text = (DOCS / "observability.md").read_text(encoding="utf-8")
    for name, kind in _exposed_families().items():
        shown = f"{name}_total" if kind == "counter" else name
        assert f"| `{shown}` |" in text, f"{shown} is missing from the metric tables of docs/observability.md"


def test_the_dashboard_is_grafana_json_over_real_metrics():
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert dashboard["uid"] == "dativo-ingestion"
    assert dashboard["panels"]
    families = _exposed_families()
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert expressions
    used = {name for expr in expressions for name in _metric_names(expr)}
    unknown = sorted(name for name in used if _family_of(name, families) is None)
    assert not unknown, unknown
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_alert_rules_parse_and_use_real_metrics():
    text = (DOCS / "observability.md").read_text(encoding="utf-8")
    block = re.search(r'```yaml title="dativo-alerts.yaml"\n(.*?)```', text, re.S)
    assert block is not None
    rules = yaml.safe_load(block.group(1))["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {"DativoJobStale", "DativoHighErrorRate", "DativoSandboxOOM"} <= names
    families = _exposed_families()
    for rule in rules:
        for name in _metric_names(rule["expr"]):
            assert _family_of(name, families) is not None, (rule["alert"], name)
