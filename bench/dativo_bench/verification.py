"""Read a candidate's Parquet output back with pyarrow and check it holds exactly the workload.

The harness never imports pyarrow (nor the workload, which needs it): on Linux a child's
``ru_maxrss`` starts from the RSS of the process that spawned it, so the harness stays
small and asks an :class:`OutputChecker` (this module run as ``--serve``, one process for
the whole bench) to read the files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["OutputCheck", "OutputChecker", "check_parquet_output", "committed_parquet_files"]


@dataclass(frozen=True)
class OutputCheck:
    """The verdict on one run's output.

    Args:
        rows: Rows found in the committed files.
        files: How many files were read.
        problem: Why the output is wrong, or ``None`` when it holds exactly the workload.
    """

    rows: int
    files: int
    problem: str | None

    @property
    def ok(self) -> bool:
        """Whether the output holds exactly the expected rows."""
        return self.problem is None


def committed_parquet_files(root: Path, pattern: str = "**/*.parquet") -> list[Path]:
    """Return the Parquet files under ``root`` matching ``pattern``, staging areas excluded.

    A path with any segment (below ``root``) starting with ``_`` is a staging area or
    bookkeeping (``_staging``, ``_dlt_loads``...), not committed output.
    """
    return sorted(
        path
        for path in root.glob(pattern)
        if path.is_file() and not any(part.startswith("_") for part in path.relative_to(root).parts)
    )


def check_parquet_output(
    root: Path, expected_rows: int, fields: tuple[str, ...], pattern: str
) -> OutputCheck:
    """Check that the committed Parquet files under ``root`` hold exactly the workload.

    Every file is read back with pyarrow: the row count must be ``expected_rows``, every
    workload field must be a column, and ``id`` must hold each of ``0 .. expected_rows-1``
    once (so no row is lost or duplicated).

    Args:
        root: The candidate's output folder.
        expected_rows: N.
        fields: The workload's field names.
        pattern: Glob (relative to ``root``) of the files that hold the records.

    Returns:
        The :class:`OutputCheck`.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = committed_parquet_files(root, pattern)
    if not files:
        return OutputCheck(0, 0, f"no committed Parquet file under {root} matches {pattern!r}")
    ids: list[pa.ChunkedArray[Any]] = []
    rows = 0
    for path in files:
        parquet = pq.ParquetFile(path)
        missing = [name for name in fields if name not in parquet.schema_arrow.names]
        if missing:
            return OutputCheck(rows, len(files), f"{path.name} lacks the column(s) {', '.join(missing)}")
        table = parquet.read(columns=["id"])
        rows += table.num_rows
        ids.append(table.column("id"))
    if rows != expected_rows:
        return OutputCheck(rows, len(files), f"wrote {rows:,} rows, expected {expected_rows:,}")
    if rows:
        all_ids = pa.chunked_array([chunk for column in ids for chunk in column.chunks], type=pa.int64())
        low, high = pc.min_max(all_ids).values()
        distinct = pc.count_distinct(all_ids).as_py()
        if (low.as_py(), high.as_py(), distinct) != (0, expected_rows - 1, expected_rows):
            return OutputCheck(rows, len(files), "the ids are not exactly 0..N-1 (rows lost or duplicated)")
    return OutputCheck(rows, len(files), None)


class OutputChecker:
    """A long-lived process that runs :func:`check_parquet_output` for the harness.

    It checks for the ten fields of the workload (``plugins/workload.py``).
    """

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def check(self, root: Path, expected_rows: int, pattern: str) -> OutputCheck:
        """Check the output under ``root`` (see :func:`check_parquet_output`)."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        request = {"root": str(root), "expected_rows": expected_rows, "pattern": pattern}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            return OutputCheck(0, 0, "the output checker process died; run the bench again")
        return OutputCheck(**json.loads(answer))

    def close(self) -> None:
        """Stop the checker process."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=30)


def _serve(requests: IO[str], answers: IO[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import workload

    for line in requests:
        request: dict[str, Any] = json.loads(line)
        try:
            check = check_parquet_output(
                Path(request["root"]), request["expected_rows"], workload.FIELD_NAMES, request["pattern"]
            )
        except Exception as exc:  # a broken file is a verdict, not a crash of the checker
            check = OutputCheck(0, 0, f"reading the output failed: {type(exc).__name__}: {exc}")
        answers.write(json.dumps(asdict(check)) + "\n")
        answers.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve(sys.stdin, sys.stdout)
