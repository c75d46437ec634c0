"""The ``docker`` backend: each plugin run in a locked-down container of the sandbox image.

The container runs the worker as a non-root user with every capability dropped,
``no-new-privileges``, the seccomp profile of :mod:`._seccomp` (never silently weakened:
a daemon without seccomp support, or a worker that reports no filter, fails the run), a
read-only root filesystem, a size-limited tmpfs ``/tmp``, no network unless the job opts
in, memory (without swap), CPU and pids limits, and logging off. The plugin's folder is
bind-mounted read-only and a writer's output folder read-write, at their host paths.
Configuration travels over the attached stdin, never in the container's environment.
Containers carry the label ``io.dativo.sandbox=1`` and are removed afterwards, also
after a failure or a timeout. The docker SDK is imported only when this backend is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, SandboxError
from dativo_runtime._plugin_ref import PluginRef
from dativo_runtime._version import __version__

from ._base import ReaderSession, SandboxLimits, WriterSession
from ._remote import (
    ExitStatus,
    StderrTail,
    WorkerClient,
    WorkerSandbox,
    WorkerTransport,
    cpu_seconds_budget,
    effective_limits,
    open_remote_session,
)
from ._seccomp import docker_profile

__all__ = ["CONTAINER_LABEL", "DEFAULT_IMAGE", "WORKER_DIGEST_LABEL", "DockerSandbox", "worker_digest"]

DEFAULT_IMAGE = f"dativo-sandbox:{__version__}"
"""The image ``dativo-run sandbox build-image`` builds and the backend uses by default."""
CONTAINER_LABEL = "io.dativo.sandbox"
WORKER_DIGEST_LABEL = "io.dativo.sandbox.worker-digest"
_WORKER_FILES = (
    "__init__.py",
    "_version.py",
    "_lazy_exports.py",
    "_sandbox/__init__.py",
    "_plugin_ref.py",
    "_arrow_batches.py",
    "_sandbox/_worker.py",
    "_sandbox/_protocol.py",
    "_observability/__init__.py",
    "_observability/_tracing.py",
)
CONTAINER_USER = "65534:65534"
TMPFS_BYTES = 256 * 1024 * 1024
OPEN_FILES = 1024
_WORKER_ENV = {
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
_STREAM_HEADER = struct.Struct(">BxxxL")
_STDOUT, _STDERR = 1, 2


def worker_digest() -> str:
    """A digest of the code the worker runs, stored as an image label to detect a stale image."""
    digest = hashlib.sha256()
    package = resources.files("dativo_runtime")
    for name in _WORKER_FILES:
        digest.update(name.encode() + b"\0" + (package / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _docker_client(timeout: int = 30) -> Any:
    import docker

    return docker.from_env(timeout=timeout)


def _infrastructure_error(message: str, exc: BaseException) -> SandboxError:
    return SandboxError(
        f"{message}: {exc}",
        retryable=True,
        details={"reason": "startup_failed", "backend": "docker", "infrastructure": True},
    )


class _ContainerTransport(WorkerTransport):
    """A started container: its attach socket (stdin in, multiplexed stdout/stderr out)."""

    def __init__(self, api: Any, container_id: str, attach: Any) -> None:
        self.api = api
        self.container_id = container_id
        self._attach = attach
        self._socket: socket.socket = getattr(attach, "_sock", attach)
        self.stderr = StderrTail()
        self._remaining = 0
        self._status: ExitStatus | None = None
        self._removed = False

    def _recv_exact(self, size: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._socket.recv(size - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def write(self, data: Any) -> None:
        self._socket.sendall(data)

    def flush(self) -> None:
        pass

    def readinto(self, view: memoryview) -> int:
        while self._remaining == 0:
            header = self._recv_exact(_STREAM_HEADER.size)
            if header is None:
                return 0
            stream, size = _STREAM_HEADER.unpack(header)
            if stream == _STDERR:
                data = self._recv_exact(size)
                if data is None:
                    return 0
                self.stderr.feed(data)
                continue
            self._remaining = size
        count = self._socket.recv_into(view, min(len(view), self._remaining))
        self._remaining -= count
        return count

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.api.kill(self.container_id)

    def wait(self, timeout: float) -> ExitStatus | None:
        if self._status is not None:
            return self._status
        try:
            result = self.api.wait(self.container_id, timeout=max(1, int(timeout)))
            state = self.api.inspect_container(self.container_id)["State"]
        except Exception:
            return None
        code = result.get("StatusCode", state.get("ExitCode"))
        self._status = ExitStatus(exit_code=code, oom_killed=bool(state.get("OOMKilled")))
        return self._status

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()
        with contextlib.suppress(Exception):
            self._attach.close()
        if not self._removed:
            with contextlib.suppress(Exception):
                self.api.remove_container(self.container_id, force=True)
            self._removed = True


class DockerSandbox(WorkerSandbox):
    """Runs each plugin in a fresh container of the sandbox image with one long-lived worker.

    Args:
        image: The sandbox image (built by ``dativo-run sandbox build-image``).
        client: A ``docker.DockerClient``; ``docker.from_env()`` by default.
        ceilings: The operator's maximum limits; unset limits default to at most these.
    """

    name = "docker"
    isolated = True

    def __init__(
        self, *, image: str = DEFAULT_IMAGE, client: Any = None, ceilings: SandboxLimits | None = None
    ) -> None:
        self.image = image
        self._client = client
        self.ceilings = ceilings

    @property
    def client(self) -> Any:
        """The docker SDK client (created on first use)."""
        if self._client is None:
            try:
                self._client = _docker_client()
            except Exception as exc:
                raise _infrastructure_error("cannot reach the Docker daemon", exc) from exc
        return self._client

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Tell whether the Docker daemon and the default sandbox image are usable, and why not."""
        return cls.image_availability(None)

    @classmethod
    def image_availability(cls, image: str | None = None) -> tuple[bool, str]:
        """Like :meth:`availability`, for a given image."""
        image = image or DEFAULT_IMAGE
        try:
            import docker
        except ImportError:
            return False, "the docker Python SDK is not installed (pip install docker)"
        client = None
        try:
            client = _docker_client(timeout=5)
            client.ping()
            info = client.info()
        except Exception as exc:
            if client is not None:
                client.close()
            return False, (
                f"the Docker daemon is unreachable ({type(exc).__name__}); start dockerd or set DOCKER_HOST"
            )
        # The probe's connection pool is closed whatever happens, so no socket is left open.
        with contextlib.closing(client):
            return cls._image_status(client, image, info, docker)

    @staticmethod
    def _image_status(client: Any, image: str, info: dict[str, Any], docker: Any) -> tuple[bool, str]:
        security = " ".join(info.get("SecurityOptions") or [])
        if "name=seccomp" not in security:
            return False, "the Docker daemon does not support seccomp, which the docker backend requires"
        try:
            labels = client.images.get(image).labels or {}
        except docker.errors.ImageNotFound:
            return (
                False,
                f"the sandbox image {image} is missing; build it with 'dativo-run sandbox build-image'",
            )
        except Exception as exc:
            return False, f"cannot inspect the sandbox image {image}: {exc}"
        built_for = labels.get(WORKER_DIGEST_LABEL)
        if built_for is not None and built_for != worker_digest():
            return False, (
                f"the sandbox image {image} holds a different version of the worker than this runtime "
                f"(digest {built_for}, runtime {worker_digest()}); rebuild it with "
                "'dativo-run sandbox build-image'"
            )
        return True, f"Docker {info.get('ServerVersion', '?')}, image {image}"

    def container_config(
        self, ref: PluginRef, limits: SandboxLimits, *, output_dir: Path | None = None
    ) -> dict[str, Any]:
        """Return the ``create_container`` arguments for one worker (secrets never appear here)."""
        api = self.client.api
        assert limits.memory_bytes is not None
        assert limits.cpu is not None
        binds: dict[str, dict[str, str]] = {}
        if ref.plugin_dir is not None:
            binds[str(ref.plugin_dir)] = {"bind": str(ref.plugin_dir), "mode": "ro"}
        if output_dir is not None:
            binds[str(output_dir)] = {"bind": str(output_dir), "mode": "rw"}
        from docker.types import LogConfig, Ulimit

        host_config = api.create_host_config(
            binds=binds,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={TMPFS_BYTES}"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true", "seccomp=" + json.dumps(docker_profile())],
            network_mode="bridge" if limits.network else "none",
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            nano_cpus=int(limits.cpu * 1e9),
            pids_limit=limits.pids,
            ipc_mode="private",
            init=True,  # tini as pid 1: the worker gets normal signal semantics, zombies are reaped
            log_config=LogConfig(type="none"),
            ulimits=[
                Ulimit(name="nofile", soft=OPEN_FILES, hard=OPEN_FILES),
                Ulimit(name="core", soft=0, hard=0),
            ],
        )
        return {
            "image": self.image,
            "user": CONTAINER_USER if os.geteuid() == 0 else f"{os.geteuid()}:{os.getegid()}",
            "stdin_open": True,
            "tty": False,
            "environment": dict(_WORKER_ENV),
            "working_dir": "/tmp",
            "hostname": "dativo-sandbox",
            "network_disabled": not limits.network,
            "labels": {CONTAINER_LABEL: "1", f"{CONTAINER_LABEL}.ref": ref.ref[-200:]},
            "host_config": host_config,
            "use_config_proxy": False,
        }

    def _open(
        self,
        role: str,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits,
        schema: Sequence[Column] | None = None,
        output_dir: Path | None = None,
    ) -> ReaderSession | WriterSession:
        import docker

        started_at = time.monotonic()
        limits = effective_limits(limits, self.ceilings)
        available, why = self.image_availability(self.image)
        if not available:
            raise SandboxError(
                f"the docker sandbox cannot run plugin {ref.ref!r}: {why}",
                retryable="unreachable" in why,
                details={"reason": "startup_failed", "backend": self.name, "why": why},
            )
        if output_dir is not None:
            output_dir = Path(output_dir).resolve()
            output_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                uid, gid = (int(part) for part in CONTAINER_USER.split(":"))
                os.chown(output_dir, uid, gid)
        api = self.client.api
        try:
            container = api.create_container(**self.container_config(ref, limits, output_dir=output_dir))
        except docker.errors.APIError as exc:
            raise SandboxError(
                f"Docker refused to create the sandbox container for {ref.ref!r}: {exc.explanation or exc}",
                details={"reason": "startup_failed", "backend": self.name},
            ) from exc
        except docker.errors.DockerException as exc:
            raise _infrastructure_error("cannot reach the Docker daemon", exc) from exc
        container_id = container["Id"]
        try:
            attach = api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            api.start(container_id)
        except Exception as exc:
            with contextlib.suppress(Exception):
                api.remove_container(container_id, force=True)
            explanation = getattr(exc, "explanation", None) or str(exc)
            raise SandboxError(
                f"Docker could not start the sandbox container for {ref.ref!r}: {explanation}",
                details={"reason": "startup_failed", "backend": self.name},
            ) from exc
        transport = _ContainerTransport(api, container_id, attach)
        cpu_seconds = cpu_seconds_budget(limits)
        client = WorkerClient(
            transport,
            backend=self.name,
            ref=ref,
            limits=limits,
            cpu_seconds=cpu_seconds,
            started_at=started_at,
        )
        rlimits = {"cpu": [cpu_seconds, cpu_seconds + 1], "core": 0}
        return open_remote_session(client, role=role, config=config, rlimits=rlimits, schema=schema)
