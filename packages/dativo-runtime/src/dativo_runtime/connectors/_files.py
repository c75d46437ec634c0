"""What the file readers share: finding files (local or S3), incremental state, discovery."""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import decimal
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from dativo_plugin_sdk import (
    WHOLE_STREAM,
    BaseReader,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    State,
    ValidationError,
)
from dativo_plugin_sdk._arrow import column_type_for_arrow
from dativo_runtime._storage._backends import Storage, match_glob, open_storage
from dativo_runtime._storage._s3 import S3Uri, is_s3_uri
from dativo_runtime.connectors._check_results import result_from_error
from dativo_runtime.connectors._options import FileReaderOptions

__all__ = ["FileReader", "SourceFile"]

log = logging.getLogger("dativo.files")

_GLOB_CHARS = re.compile(r"[*?\[]")
_COMPRESSION_BY_SUFFIX = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}


@dataclass(frozen=True)
class SourceFile:
    """One input file.

    Args:
        path: Path relative to the storage root.
        location: Full path or ``s3://`` URI.
        size: Size in bytes.
        mtime_ns: Modification time in nanoseconds.
    """

    path: str
    location: str
    size: int
    mtime_ns: int


class _FileSet:
    """The files a ``path`` config names: one file, a folder, a glob, local or on S3."""

    def __init__(self, path: str, options: Mapping[str, Any]) -> None:
        self.path = path
        self.is_glob = bool(_GLOB_CHARS.search(path))
        if is_s3_uri(path):
            uri = S3Uri.parse(path)
            parts = uri.key.split("/")
            fixed = []
            for part in parts:
                if _GLOB_CHARS.search(part):
                    break
                fixed.append(part)
            root_key = "/".join(fixed[:-1] if not self.is_glob else fixed)
            if not self.is_glob:
                root_key = "/".join(parts[:-1])
            self.pattern = uri.key[len(root_key) :].lstrip("/") or "*"
            self.storage: Storage = open_storage(f"s3://{uri.bucket}/{root_key}", options)
        else:
            absolute = os.path.abspath(os.path.expanduser(path))
            if self.is_glob:
                head = absolute
                while _GLOB_CHARS.search(head):
                    head = os.path.dirname(head)
                root = head
            elif os.path.isdir(absolute):
                root = absolute
            else:
                root = os.path.dirname(absolute)
            self.pattern = os.path.relpath(absolute, root) if absolute != root else "*"
            if self.pattern == ".":
                self.pattern = "*"
            self.storage = open_storage(root)

    @property
    def names_one_file(self) -> bool:
        """Whether ``path`` names one file (not a folder or a glob)."""
        return not self.is_glob and self.pattern != "*"

    def list(self) -> list[SourceFile]:
        files = []
        single = self.names_one_file
        prefix = "" if not single else self.pattern
        for info in self.storage.list_files(prefix):
            name = info.path.rsplit("/", 1)[-1]
            if name.startswith((".", "_")) and not single:
                continue
            if single and info.path != self.pattern:
                continue
            if not single and not match_glob(self.pattern, info.path):
                continue
            files.append(SourceFile(info.path, self.storage.location(info.path), info.size, info.mtime_ns))
        if single and not files:
            raise ConfigurationError(
                f"source file {self.path!r} does not exist; check source.config.path",
                details={"field": "path", "path": self.path},
            )
        return sorted(files, key=lambda f: f.path)

    def open(self, file: SourceFile) -> Any:
        raw: IO[bytes] = self.storage.open_input(file.path)
        stream: Any = pa.PythonFile(raw, mode="r") if not hasattr(raw, "fileno") else raw  # type: ignore[arg-type]
        for suffix, codec in _COMPRESSION_BY_SUFFIX.items():
            if file.path.endswith(suffix):
                return pa.CompressedInputStream(stream, codec)  # type: ignore[arg-type]
        return stream


def _json_scalar(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


class FileReader(BaseReader, abc.ABC):
    """Base of the built-in file readers (``csv``, ``jsonl``).

    Config: ``path`` (a file, a folder, a glob with ``*``/``**``, or an ``s3://`` URI of any of
    those), ``stream`` (stream name; default the file or folder name), ``incremental``
    (``{strategy: mtime}``, the default, or ``{strategy: cursor, cursor_field: col}``), ``block_size``
    (bytes read per batch, default ``1m``), and for S3 ``endpoint_url``, ``region`` and
    credentials; :class:`~._options.FileReaderOptions` checks them.
    """

    supports_incremental = True
    options_class: ClassVar[type[FileReaderOptions]] = FileReaderOptions
    extensions: ClassVar[tuple[str, ...]] = ()

    @property
    def format_name(self) -> str:
        """The format's name (``csv``, ``jsonl``), as its options class declares it."""
        return self.options_class.format_name

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.options = self.options_class.from_config(config)
        self.path = self.options.path
        self.strategy = self.options.strategy
        self.cursor_field = self.options.cursor_field
        self.block_size = self.options.block_size
        self.storage_options = dict(self.options.storage_options)
        self._files: _FileSet | None = None
        self._inferred: pa.Schema | None = None

    # Format-specific parts -----------------------------------------------------------

    @abc.abstractmethod
    def infer_schema(self, stream: Any, file: SourceFile) -> pa.Schema:
        """Infer the Arrow schema of a file from its first block."""

    @abc.abstractmethod
    def read_batches(self, stream: Any, file: SourceFile) -> Iterator[pa.RecordBatch]:
        """Yield a file's records as Arrow batches of about ``block_size`` bytes."""

    # Shared --------------------------------------------------------------------------

    @property
    def files(self) -> _FileSet:
        """The file set ``path`` names."""
        if self._files is None:
            self._files = _FileSet(self.path, self.storage_options)
        return self._files

    @property
    def stream_name(self) -> str:
        """The stream's name: ``stream`` from the config, else the file or folder name."""
        if self.options.stream:
            return self.options.stream
        parts = [p for p in re.split(r"[/\\]", self.path.rstrip("/")) if p and not _GLOB_CHARS.search(p)]
        if not parts or parts[-1].lower().startswith("s3:"):
            return self.format_name
        name = parts[-1]
        if not self.files.is_glob:
            for suffix in (*_COMPRESSION_BY_SUFFIX, *self.extensions):
                name = name.removesuffix(suffix)
        return name or self.format_name

    def _open(self, file: SourceFile) -> Any:
        return self.files.open(file)

    def _schema_of(self, file: SourceFile) -> pa.Schema:
        stream = self._open(file)
        try:
            return self.infer_schema(stream, file)
        finally:
            with contextlib.suppress(Exception):
                stream.close()

    def check_connection(self) -> ConnectionTestResult:
        """Check the path can be listed and its first file opened."""
        try:
            files = self.files.list()
            if files:
                stream = self._open(files[0])
                stream.read(1)
                stream.close()
        except Exception as exc:
            return result_from_error(exc, prefix=f"{self.path}: ")
        if not files:
            return ConnectionTestResult(
                True, f"{self.path} is reachable but matches no files yet", details={"files": 0}
            )
        return ConnectionTestResult(
            True, f"{self.path}: {len(files)} file(s) readable", details={"files": len(files)}
        )

    def discover(self) -> DiscoveryResult:
        """Describe the one stream: its columns inferred from the first file's first block."""
        files = self.files.list()
        metadata: dict[str, Any] = {"files": len(files), "format": self.format_name}
        columns: list[Column] = []
        if files:
            schema = self._schema_of(files[0])
            self._inferred = schema
            columns = [Column(f.name, column_type_for_arrow(f.type)) for f in schema]
            metadata["inferred_from"] = files[0].location
        cursor = self.cursor_field if any(c.name == self.cursor_field for c in columns) else None
        stream = DiscoveredStream(
            name=self.stream_name, schema=tuple(columns), type="file", cursor_field=cursor
        )
        return DiscoveryResult(objects=[stream], metadata=metadata)

    def _select(self, files: list[SourceFile], state: State | None) -> list[SourceFile]:
        if self.strategy != "mtime" or state is None:
            return files
        high = state.get("mtime_ns")
        seen = set(state.get("paths_at_mtime") or [])
        if high is None:
            chosen = files
        else:
            chosen = [
                f for f in files if f.mtime_ns > high or (f.mtime_ns == high and f.location not in seen)
            ]
        return sorted(chosen, key=lambda f: (f.mtime_ns, f.location))

    def _cursor_type(self, files: list[SourceFile]) -> pa.DataType:
        if self._inferred is None:
            self._inferred = self._schema_of(files[0])
        if self.cursor_field not in self._inferred.names:
            raise ConfigurationError(
                f"cursor_field {self.cursor_field!r} is not a column of {files[0].location} "
                f"(columns: {', '.join(self._inferred.names)})",
                details={"field": "incremental.cursor_field"},
            )
        cursor_type: pa.DataType = self._inferred.field(self.cursor_field).type
        return cursor_type

    @staticmethod
    def _cursor_scalar(value: Any, cursor_type: pa.DataType) -> pa.Scalar[Any]:
        if isinstance(value, str) and not pa.types.is_string(cursor_type):
            return pc.cast(pa.array([value]), cursor_type, safe=True)[0]
        return pa.scalar(value, type=cursor_type)

    def _filter_cursor(
        self, batch: pa.RecordBatch, cursor_type: pa.DataType, last: pa.Scalar[Any] | None, file: SourceFile
    ) -> tuple[pa.RecordBatch, pa.Scalar[Any] | None]:
        if self.cursor_field not in batch.schema.names:
            raise ValidationError(
                f"{file.location} has no column {self.cursor_field!r} (the cursor_field)",
                details={"file": file.location, "column": self.cursor_field},
            )
        column = batch.column(self.cursor_field)
        try:
            typed = column if column.type == cursor_type else pc.cast(column, cursor_type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValidationError(
                f"cursor column {self.cursor_field!r} in {file.location} has values that are not "
                f"{cursor_type}: {exc}; the cursor column must be clean",
                details={"file": file.location, "column": self.cursor_field},
            ) from None
        if last is not None:
            mask = pc.greater(typed, last)
            batch = batch.filter(mask, null_selection_behavior="drop")
            typed = typed.filter(mask, null_selection_behavior="drop")
        newest = pc.max(typed) if len(typed) else None
        return batch, newest if newest is not None and newest.is_valid else None

    def partitions(self) -> list[Partition]:
        """One partition per file of a folder or glob, named by its path under it.

        A file's partition keeps its own state: with ``mtime`` the file is read again only
        once it changes; with ``cursor`` only its rows past its own maximum are read. A file
        read before the reader partitioned resumes from the stream's state. A ``path`` naming
        one file is read whole, as one stream.
        """
        if self.files.names_one_file:
            return [Partition(WHOLE_STREAM)]
        return [
            Partition(
                f.path,
                {"path": f.path, "location": f.location, "size": f.size, "mtime_ns": f.mtime_ns},
            )
            for f in self.files.list()
        ]

    def _partition_files(self) -> list[SourceFile]:
        """The files this instance reads: its partition's one file, or every file."""
        if self.partition.is_whole_stream:
            return self.files.list()
        params = self.partition.params
        return [SourceFile(params["path"], params["location"], int(params["size"]), int(params["mtime_ns"]))]

    def extract(self, state: State | None = None) -> Iterator[pa.RecordBatch]:
        """Yield every selected file's records (or the partition's file's) as Arrow batches.

        With ``incremental.strategy: mtime`` only files that are new or modified since the
        saved state are read; with ``cursor`` every file is read and only rows whose
        ``cursor_field`` exceeds the saved maximum are yielded. State is updated after the
        batch it covers is yielded.
        """
        files = self._select(self._partition_files(), state)
        cursor_type = self._cursor_type(files) if self.strategy == "cursor" and files else None
        last: pa.Scalar[Any] | None = None
        if cursor_type is not None and state is not None and state.get("cursor") is not None:
            last = self._cursor_scalar(state.get("cursor"), cursor_type)
        for file in files:
            stream = self._open(file)
            try:
                for raw in self.read_batches(stream, file):
                    newest = None
                    batch = raw
                    if cursor_type is not None:
                        batch, newest = self._filter_cursor(raw, cursor_type, last, file)
                    if batch.num_rows:
                        yield batch
                    if newest is not None and (last is None or pc.greater(newest, last).as_py()):
                        last = newest
                        if state is not None:
                            state.set("cursor", _json_scalar(newest.as_py()))
            finally:
                with contextlib.suppress(Exception):
                    stream.close()
            if state is not None and self.strategy == "mtime":
                high = state.get("mtime_ns")
                if high is None or file.mtime_ns > high:
                    state.set("mtime_ns", file.mtime_ns)
                    state.set("paths_at_mtime", [file.location])
                elif file.mtime_ns == high:
                    state.set("paths_at_mtime", [*state.get("paths_at_mtime", []), file.location])
