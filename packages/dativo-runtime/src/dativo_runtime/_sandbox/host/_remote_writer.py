"""The host's side of a sandboxed writer: batches sent in frames, its output folder guarded.

What a writer leaves is checked by :mod:`._output_guard` (special files, symlinks out, setuid
bits, the disk quota, entries and depth) before and after ``commit_files``; any failure stops
the writer and removes what it added. A batch larger than the writer's frames is sent in row
slices (:mod:`._batch_frames`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import ConnectionTestResult, SandboxError
from dativo_runtime._plugins._ref import PluginInfo
from dativo_runtime._sandbox._base import WriterSession
from dativo_runtime._sandbox.host._batch_frames import ipc_slices, slice_counter
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._output_guard import DiskQuota, sanitize_output
from dativo_runtime._sandbox.host._worker_messages import check_file_metadata
from dativo_runtime._worker._protocol import FrameTooLargeError, ProtocolError

__all__ = ["RemoteWriterSession"]


class RemoteWriterSession(WriterSession):
    """A target plugin running in a sandbox worker.

    When the writer has a local output folder (:meth:`guard_output`), the host checks what
    it leaves there (see :mod:`._output_guard`): the disk quota after every request and
    while the plugin works, setuid/setgid bits and special files before and after the
    commit and at the end, and the file metadata the plugin returns. Whatever check fails
    stops the writer and removes everything it added: nothing of it is committed.

    A batch larger than the writer's data frame limit is sent in slices (see
    :mod:`._batch_frames`).
    """

    concurrent_writes = True

    def __init__(self, client: WorkerClient, info: PluginInfo) -> None:
        self.client = client
        self.info = info
        self.output_dir: Path | None = None
        self.quota: DiskQuota | None = None

    @property
    def startup_seconds(self) -> float | None:
        """Seconds from starting the sandbox to the worker's handshake (cold start)."""
        return self.client.startup_seconds

    def guard_output(self, folder: Path | None) -> None:
        """Watch ``folder``, the writer's one writable folder, for the rest of the session."""
        self.output_dir = folder
        if folder is not None:
            disk = self.client.limits.disk_bytes or None
            self.quota = DiskQuota(folder, disk, self._on_exceeded).start()

    def _on_exceeded(self) -> None:
        """The quota's watcher saw the writer go over: stop it (the request in flight then fails)."""
        assert self.quota is not None
        self.client.exceed_disk(self.quota.exceeded_by or 0)

    def _check_disk(self) -> None:
        if self.quota is not None and self.quota.over():
            self.client.exceed_disk(self.quota.exceeded_by or 0)
            raise self._guard_failure(self.client._dead())

    def _guard_failure(self, error: SandboxError) -> SandboxError:
        """Stop the writer, remove what it added, and return the error the run fails with."""
        described = self.quota.describe() if self.quota is not None else ""
        if described:
            client = self.client
            error = SandboxError(
                f"plugin {client.ref.ref!r} in the {client.backend} sandbox {described}; the host "
                "stopped it and removed what it added. Nothing was committed.",
                details={**error.details, "reason": "disk", "limit": self.quota and self.quota.problem},
            )
        self.client.refuse(error)
        self._discard_added()
        return error

    def _discard_added(self) -> None:
        """Remove what the stopped writer added (its partial output); nothing of it is committed."""
        if self.quota is not None:
            self.quota.stop()
            self.client.transport.kill()
            self.client.transport.wait(10.0)
            self.quota.remove_added()

    def _sanitize(self, *, before_commit: bool) -> None:
        if self.output_dir is not None:
            sanitize_output(
                self.output_dir,
                ref=self.client.ref.ref,
                backend=self.client.backend,
                refuse_special=before_commit,
            )

    def _too_large(self, exc: FrameTooLargeError, what: str) -> SandboxError:
        """A frame the host could not send: the worker's stream may be cut, so it is stopped."""
        client = self.client
        error = SandboxError(
            f"the host cannot send {what} to plugin {client.ref.ref!r} in the {client.backend} "
            f"sandbox: {exc}",
            details={
                "reason": "crash",
                "backend": client.backend,
                "ref": client.ref.ref,
                "limit": "frame_bytes",
            },
        )
        client.refuse(error)
        return error

    def check_connection(self) -> ConnectionTestResult:
        """Run the plugin's ``check_connection`` in the worker."""
        return ConnectionTestResult.from_dict(self.client.request("check_connection"))

    def write_batch(self, data: pa.RecordBatch | pa.Table, file_counter: int) -> list[dict[str, Any]]:
        """Send one Arrow batch to the plugin's ``write_batch``; return its file metadata.

        A batch larger than the writer's data frame limit goes in slices, one ``write_batch``
        each, slice ``k`` with ``file_counter + k * 2**32`` (file names stay unique).
        """
        client = self.client
        metadata: list[dict[str, Any]] = []
        frames = ipc_slices(data, client.data_limit, ref=client.ref.ref, backend=client.backend)
        for number, frame in enumerate(frames):
            metadata += self._write_frame(frame, slice_counter(int(file_counter), number))
        return metadata

    def _write_frame(self, frame: pa.Buffer, file_counter: int) -> list[dict[str, Any]]:
        try:
            self.client.send({"op": "write_batch", "file_counter": file_counter}, frame)
        except FrameTooLargeError as exc:
            raise self._too_large(exc, "a batch") from None
        try:
            value = self.client.result()
        except SandboxError as exc:
            if exc.details.get("reason") == "disk":
                raise self._guard_failure(exc) from None
            raise
        self._check_disk()
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.client._dead(ProtocolError("write_batch result is not a list of objects"))
        for entry in value:
            check_file_metadata(entry, self.output_dir, ref=self.client.ref.ref)
        return value

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """Run the plugin's ``commit_files`` in the worker, once its folder passed the host's checks."""
        self._check_disk()
        try:
            self._sanitize(before_commit=True)
        except SandboxError as exc:
            raise self._guard_failure(exc) from None
        try:
            value = self.client.request("commit_files", file_metadata=list(file_metadata))
        except FrameTooLargeError as exc:
            raise self._too_large(exc, "the file metadata of commit_files") from None
        except SandboxError as exc:
            if exc.details.get("reason") == "disk":
                raise self._guard_failure(exc) from None
            raise
        self._check_disk()
        self._sanitize(before_commit=False)
        if not isinstance(value, dict):
            raise self.client._dead(ProtocolError("commit_files result is not an object"))
        return value

    def abort(self) -> None:
        """Run the plugin's ``abort`` in the worker (nothing to abort once the worker is gone)."""
        if self.client.failure is not None or self.client.closed:
            return
        self.client.request("abort")

    def close(self) -> None:
        """Close the plugin and stop the worker, then clean what it left in its folder."""
        try:
            self.client.close()
        finally:
            if self.quota is not None:
                self.quota.stop()
                if self.quota.exceeded_by is not None:
                    self.quota.remove_added()
            self._sanitize(before_commit=False)
