"""reader.partitions: a partitioned reader is driven as dativo-run drives it, and each broken rule is caught."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dativo_plugin_sdk import Partition, State
from dativo_testkit import MockPartitionedReader, MockReader, list_checks, run_conformance
from dativo_testkit._cli import main

CHECK = "reader.partitions"
BROKEN = [
    "DuplicateNamePartitionsReader",
    "DictPartitionsReader",
    "OverlappingPartitionsReader",
    "MissingRecordsPartitionsReader",
    "PartitionIgnoredReader",
    "OtherPartitionsStateReader",
    "StateCrossWritingReader",
    "PartitionResumeIgnoredReader",
]


class FullRefreshPartitionedReader(MockPartitionedReader):
    """Partitions without incremental state."""

    supports_incremental = False


@pytest.mark.parametrize(
    "config",
    [
        {"partitions": 4, "records_per_partition": 30, "batch_size": 7},
        {"partitions": 1, "records_per_partition": 12, "batch_size": 5},
        {"partitions": 5, "records_per_partition": 3, "batch_size": 10, "seed": 4},
    ],
    ids=["four", "one-named-partition", "batches-larger-than-partitions"],
)
def test_the_mock_partitioned_reader_passes_every_check(config: dict[str, Any]) -> None:
    report = run_conformance(MockPartitionedReader, config=config, bad_config={"partitions": 0})
    assert report.passed, report.to_text()
    check = report.check(CHECK)
    assert check.passed, report.to_text()
    assert f"{config['partitions']} partitions" in check.reason
    assert "nothing again from its own final state" in check.reason


def test_a_full_refresh_partitioned_reader_passes_without_the_resume_of_its_own_state() -> None:
    config = {"partitions": 3, "records_per_partition": 10, "incremental": False}
    report = run_conformance(FullRefreshPartitionedReader, config=config)
    assert report.passed, report.to_text()
    assert "everything from an empty state whatever the others' states" in report.check(CHECK).reason
    assert report.check("reader.incremental_final_state").skipped


def test_a_reader_that_does_not_split_is_skipped_saying_so() -> None:
    check = run_conformance(MockReader, config={"records": 20}).check(CHECK)
    assert check.skipped
    assert (
        check.reason
        == "MockReader.partitions() returns the one whole-stream partition: the reader does not split its stream"
    )


def test_the_check_is_listed_after_the_incremental_checks_and_needs_a_full_read() -> None:
    names = [c.name for c in list_checks("reader")]
    assert names.index(CHECK) == names.index("reader.incremental_resume") + 1
    (check,) = [c for c in list_checks("reader") if c.name == CHECK]
    assert check.requires == ("reader.extract_yields_batches",)


def test_the_broken_list_is_complete(broken_partitions: ModuleType) -> None:
    found = [
        name
        for name, obj in vars(broken_partitions).items()
        if inspect.isclass(obj) and obj.__module__ == broken_partitions.__name__ and not name.startswith("_")
    ]
    assert sorted(found) == sorted(BROKEN)


@pytest.mark.parametrize("name", BROKEN)
def test_each_broken_partitioned_reader_is_flagged_by_the_partition_check_alone(
    broken_partitions: ModuleType, name: str
) -> None:
    cls = getattr(broken_partitions, name)
    broken_partitions._SEEN_STATES.clear()
    report = run_conformance(cls, config=cls.CONFIG, bad_config=cls.BAD_CONFIG)
    assert {c.name for c in report.failed} == {CHECK}, report.to_text()
    reason = report.check(CHECK).reason
    for words in cls.SAYS:
        assert words in reason, reason


# The check drives a reader as the runtime does --------------------------------------------

CALLS: list[tuple[int, str, str, dict[str, Any]]] = []


class SpyingPartitionedReader(MockPartitionedReader):
    """Records which instance was asked what, with its partition and partition_states at the time."""

    def partitions(self) -> list[Partition]:
        CALLS.append((id(self), "partitions", self.partition.name, dict(self.partition_states)))
        return super().partitions()

    def extract(self, state: State | None = None) -> Iterator[Any]:
        CALLS.append((id(self), "extract", self.partition.name, dict(self.partition_states)))
        yield from super().extract(state)


def test_each_partition_is_extracted_by_a_new_instance_with_its_partition_set() -> None:
    CALLS.clear()
    instances: list[SpyingPartitionedReader] = []  # kept alive, so id() values are never reused

    class Kept(SpyingPartitionedReader):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            instances.append(self)

    report = run_conformance(Kept, config={"partitions": 3, "records_per_partition": 8}, skip=_others())
    assert report.check(CHECK).passed, report.to_text()
    planners = [call for call in CALLS if call[1] == "partitions"]
    assert len(planners) == 1
    planner, _, planned_as, states_seen = planners[0]
    assert (planned_as, states_seen) == ("*", {})
    extracts = [call for call in CALLS if call[1] == "extract"]
    by_instance: dict[int, list[str]] = {}
    for instance, _, partition, _ in extracts:
        by_instance.setdefault(instance, []).append(partition)
    assert planner not in by_instance, "the planning instance never extracts"
    assert all(len(p) == 1 for p in by_instance.values()), "one extract per instance"
    partitions = [p[0] for p in by_instance.values()]
    named = ["ids:1-8", "ids:9-16", "ids:17-24"]
    # The whole stream once (reader.extract_yields_batches), then each partition three times:
    # from an empty state, from its own final state, and from an empty state among final ones.
    assert sorted(partitions) == sorted(["*"] + named * 3)
    resumed = [states for _, _, partition, states in extracts if partition == "ids:1-8"]
    assert resumed == [
        {},
        {n: {"id": 8 * (k + 1)} for k, n in enumerate(named)},
        {"ids:9-16": {"id": 16}, "ids:17-24": {"id": 24}},
    ]


def _others() -> list[str]:
    return [c.name for c in list_checks("reader") if c.name not in (CHECK, *_NEEDED)]


_NEEDED = (
    "reader.is_concrete_base_reader",
    "reader.constructs",
    "reader.discover",
    "reader.extract_yields_batches",
)


# Every face of the suite runs it ------------------------------------------------------------


def test_the_cli_runs_it_and_names_the_partition_that_broke(
    tmp_path: Path, plugins_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"partitions": 3, "records_per_partition": 20, "batch_size": 6}))
    assert main(["dativo_testkit:MockPartitionedReader", "--config", str(config)]) == 0
    assert "PASS  reader.partitions                        3 partitions" in capsys.readouterr().out
    ref = f"{plugins_dir / 'broken_partitions.py'}:OverlappingPartitionsReader"
    assert main([ref, "--config", str(config), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (failed,) = [c for c in report["checks"] if c["status"] == "failed"]
    assert failed["name"] == CHECK
    assert "partitions 'ids:1-20' and 'ids:21-40' both yielded this record" in failed["reason"]
    assert failed["offending"]["id"] == 21


def test_the_pytest_plugin_gives_it_a_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_partitioned="""
        from dativo_testkit import MockPartitionedReader, conformance_test_class

        class Unsplit(MockPartitionedReader):
            def partitions(self):
                return [p for p in super().partitions()][:1]

        TestPartitioned = conformance_test_class(
            MockPartitionedReader, config={"partitions": 3, "records_per_partition": 10}
        )
        TestUnsplit = conformance_test_class(Unsplit, config={"partitions": 3, "records_per_partition": 10})
        """
    )
    result = pytester.runpytest("--strict-markers", "-rA", "-k", "partitions")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*20 of the 30 records of the unpartitioned read are in no partition (1 listed*"]
    )
    result.stdout.fnmatch_lines(["FAILED *TestUnsplit::test_reader_partitions*"])
