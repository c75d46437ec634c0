"""Metrics of child processes added to the parent's: parsed once, merged by family and labels.

A ``serve`` process (and ``run --job-dir``) runs each job in a child that writes its
metrics as text; :class:`AbsorbedSamples` keeps what the children reported and
:class:`ExpositionView` exposes the parent's own metrics with them, summed where they meet.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["AbsorbedSamples", "ExpositionView"]

_SampleKey = tuple[str, tuple[tuple[str, str], ...]]
_ADDITIVE = ("counter", "histogram", "summary", "gaugehistogram")


class AbsorbedSamples:
    """Samples read from children's expositions, merged by family, sample name and labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, tuple[str, str, dict[_SampleKey, float]]] = {}

    def add(self, text: str, *, skip: frozenset[str]) -> None:
        parsed = list(text_string_to_metric_families(text))
        with self._lock:
            for family in parsed:
                if (
                    family.name in skip
                    or family.name.endswith("_created")
                    or family.name == "dativo_runtime_info"
                ):
                    continue
                _, _, samples = self._families.setdefault(
                    family.name, (family.type, family.documentation, {})
                )
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if family.type in _ADDITIVE:
                        samples[key] = samples.get(key, 0.0) + sample.value
                    else:
                        samples[key] = sample.value

    def snapshot(self) -> dict[str, tuple[str, str, dict[_SampleKey, float]]]:
        with self._lock:
            return {name: (t, d, dict(s)) for name, (t, d, s) in self._families.items()}


class ExpositionView(Collector):
    """Own metrics plus absorbed ones, summed where they meet, without ``_created`` series."""

    def __init__(self, source: CollectorRegistry, absorbed: AbsorbedSamples) -> None:
        self._source = source
        self._absorbed = absorbed

    def collect(self) -> Iterable[Metric]:
        absorbed = self._absorbed.snapshot()
        for family in self._source.collect():
            extra = absorbed.pop(family.name, None)
            merged = Metric(family.name, family.documentation, family.type, family.unit)
            pending = dict(extra[2]) if extra else {}
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                value = sample.value
                if key in pending:
                    other = pending.pop(key)
                    value = value + other if family.type in _ADDITIVE else value
                merged.samples.append(Sample(sample.name, sample.labels, value, sample.timestamp))
            for (name, labels), value in pending.items():
                merged.samples.append(Sample(name, dict(labels), value))
            yield merged
        for name, (kind, documentation, samples) in absorbed.items():
            family = Metric(name, documentation, kind)
            for (sample_name, labels), value in samples.items():
                family.samples.append(Sample(sample_name, dict(labels), value))
            yield family
