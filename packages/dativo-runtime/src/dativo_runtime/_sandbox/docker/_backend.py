"""The ``docker`` backend: each plugin run in a locked-down container of the sandbox image.

The container runs the worker as a non-root user with every capability dropped,
``no-new-privileges``, the seccomp profile of :mod:`._seccomp` (never silently weakened:
a daemon without seccomp support, or a worker that reports no filter, fails the run), a
read-only root filesystem, a size-limited tmpfs ``/tmp``, no network unless the job opts
in, memory (without swap), CPU and pids limits, and logging off. The plugin's folder is
bind-mounted read-only and a writer's output folder read-write, at their host paths.
Configuration travels over the attached stdin, never in the container's environment.
The docker SDK is imported only when this backend is used.

No container outlives its run: containers are started with ``auto_remove`` (the daemon
removes one as soon as it stops; how it ended, exit status and OOM kill, is learnt from
the daemon's event stream, subscribed before the start), the worker ends itself at the
session's deadline and when its stdin hangs up (the daemon closes it when the runtime's
attach connection ends), and each container is labelled ``io.dativo.sandbox=1`` with its
owner (boot id, pid namespace, pid and start time of the runtime) and its deadline. The
first time a process uses the backend it removes the labelled containers whose owner is
gone or whose deadline has passed (:func:`reap_leftover_containers`); a live runtime's
containers are kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import ReaderSession, SandboxLimits, WriterSession
from dativo_runtime._sandbox._cgroups import process_alive, process_start_ticks
from dativo_runtime._sandbox._limits import cpu_seconds_budget, effective_limits
from dativo_runtime._sandbox._seccomp import docker_profile
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._remote import WorkerSandbox, open_remote_session
from dativo_runtime._sandbox.host._transport import ExitStatus, StderrTail, WorkerTransport
from dativo_runtime._version import __version__
from dativo_runtime._worker._digest import worker_digest

__all__ = [
    "CONTAINER_LABEL",
    "DEFAULT_IMAGE",
    "WORKER_DIGEST_LABEL",
    "DockerSandbox",
    "reap_leftover_containers",
    "worker_digest",
]

DEFAULT_IMAGE = f"dativo-sandbox:{__version__}"
"""The image ``dativo-run sandbox build-image`` builds and the backend uses by default."""
CONTAINER_LABEL = "io.dativo.sandbox"
WORKER_DIGEST_LABEL = "io.dativo.sandbox.worker-digest"
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
OWNER_LABELS = {
    "host": f"{CONTAINER_LABEL}.owner.host",
    "boot_id": f"{CONTAINER_LABEL}.owner.boot-id",
    "pid_ns": f"{CONTAINER_LABEL}.owner.pid-ns",
    "pid": f"{CONTAINER_LABEL}.owner.pid",
    "start": f"{CONTAINER_LABEL}.owner.start",
}
"""Labels naming the runtime that owns a container (pid and start time in the owner's pid namespace)."""
DEADLINE_LABEL = f"{CONTAINER_LABEL}.deadline"
"""Label: the Unix time after which a container is surely abandoned, whoever owns it."""
DEADLINE_MARGIN_S = 60.0
"""Added to the session's timeout in the deadline label: start-up, close and removal take time too."""
_LEGACY_MIN_AGE_S = 600.0
"""A stopped container without owner labels (older runtimes) is removed once this old."""
_LATE_EVENT_S = 1.0
_REMOVAL_WAIT_S = 10.0
_reaped_daemons: set[str] = set()
_reap_lock = threading.Lock()
_logger = logging.getLogger("dativo.sandbox")


@dataclass(frozen=True)
class _Runtime:
    """Who a runtime process is, as far as another runtime on the same machine can tell."""

    host: str
    boot_id: str | None
    pid_ns: str | None
    pid: int
    start: int | None

    @classmethod
    def current(cls) -> _Runtime:
        try:
            boot_id: str | None = Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
        except OSError:
            boot_id = None
        try:
            pid_ns: str | None = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            pid_ns = None
        pid = os.getpid()
        return cls(socket.gethostname(), boot_id, pid_ns, pid, process_start_ticks(pid))

    def labels(self) -> dict[str, str]:
        values = {"host": self.host, "boot_id": self.boot_id, "pid_ns": self.pid_ns}
        values.update(pid=str(self.pid), start=None if self.start is None else str(self.start))
        return {OWNER_LABELS[key]: value for key, value in values.items() if value is not None}


def _abandoned(summary: Mapping[str, Any], me: _Runtime, now: float) -> str | None:
    """Why a labelled container (a ``docker ps`` summary) is left over, or ``None`` to keep it."""
    labels = summary.get("Labels") or {}
    try:
        deadline = float(labels[DEADLINE_LABEL])
    except (KeyError, TypeError, ValueError):
        deadline = None
    if deadline is not None and now > deadline:
        return "its deadline has passed"
    boot_id, pid_ns = labels.get(OWNER_LABELS["boot_id"]), labels.get(OWNER_LABELS["pid_ns"])
    pid, start = labels.get(OWNER_LABELS["pid"]), labels.get(OWNER_LABELS["start"])
    if pid is None or start is None:
        # Left by an older runtime that did not say who owns it: only an old, stopped one is surely abandoned.
        stopped = summary.get("State") in ("created", "exited", "dead")
        created = summary.get("Created")
        old = isinstance(created, (int, float)) and now - created > _LEGACY_MIN_AGE_S
        return "it was left stopped by an older runtime" if stopped and old else None
    if me.boot_id is None or me.pid_ns is None or (boot_id, pid_ns) != (me.boot_id, me.pid_ns):
        # Owned by a runtime on another machine or in another pid namespace: its deadline decides.
        return None
    try:
        alive = process_alive(int(pid), int(start))
    except ValueError:
        return None
    return None if alive else f"its runtime (pid {pid}) is gone"


def reap_leftover_containers(api: Any, *, now: float | None = None) -> list[str]:
    """Remove the sandbox containers whose owning runtime is gone or whose deadline has passed.

    A container whose owner runs on this machine (same boot and pid namespace) is removed when
    that process has ended; any container is removed once the deadline in its label has
    passed. A live runtime's containers (a sibling of ``--parallel``) are kept.

    Args:
        api: A ``docker.APIClient`` (``DockerClient.api``).
        now: The current Unix time (for tests).

    Returns:
        The ids of the removed containers.
    """
    me = _Runtime.current()
    now = time.time() if now is None else now
    try:
        summaries = api.containers(all=True, filters={"label": f"{CONTAINER_LABEL}=1"})
    except Exception as exc:
        _logger.warning("could not list leftover sandbox containers: %s", exc)
        return []
    removed: list[str] = []
    for summary in summaries:
        why = _abandoned(summary, me, now)
        if why is None:
            continue
        try:
            api.remove_container(summary["Id"], force=True)
        except Exception:
            continue  # Already gone, or being removed by the daemon (auto_remove) or its owner.
        removed.append(str(summary["Id"]))
        _logger.info("removed the leftover sandbox container %s: %s", str(summary["Id"])[:12], why)
    return removed


def _reap_once(api: Any) -> None:
    """Reap leftover containers the first time this process uses a given Docker daemon."""
    key = str(getattr(api, "base_url", ""))
    with _reap_lock:
        if key in _reaped_daemons:
            return
        _reaped_daemons.add(key)
    reap_leftover_containers(api)


def _docker_client(timeout: int = 30) -> Any:
    """A Docker client speaking the daemon's API version, or the daemon's error.

    ``docker.from_env()`` asks the daemon for its version while it builds the client; when
    the daemon is unreachable it raises and leaves that client's socket open (a
    ``ResourceWarning`` at best). So the version is asked by a client of the oldest API,
    which makes no connection until used and is closed whatever happens.

    Raises:
        Exception: Whatever the Docker SDK raises when the daemon cannot be reached.
    """
    import docker
    from docker.constants import DEFAULT_UNIX_SOCKET, MINIMUM_DOCKER_API_VERSION
    from docker.utils import kwargs_from_env

    base_url = kwargs_from_env().get("base_url") or DEFAULT_UNIX_SOCKET
    if base_url.startswith(("unix://", "http+unix://")):
        # The SDK leaks the socket of a failed unix connection: try it here first, closed either way.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
            unix.settimeout(timeout)
            unix.connect(base_url.split("://", 1)[1])
    probe = docker.from_env(version=MINIMUM_DOCKER_API_VERSION, timeout=timeout)
    try:
        version = probe.api.version(api_version=False)["ApiVersion"]
    finally:
        probe.close()
    return docker.from_env(version=version, timeout=timeout)


def _infrastructure_error(message: str, exc: BaseException) -> SandboxError:
    return SandboxError(
        f"{message}: {exc}",
        retryable=True,
        details={"reason": "startup_failed", "backend": "docker", "infrastructure": True},
    )


class _ContainerEvents:
    """The daemon's events for one container, read on a thread: how it ended and when it was removed.

    Subscribed before the container starts (and replaying the daemon's recent events), so no
    event is missed: with ``auto_remove`` the container may be gone before anyone could
    inspect it.
    """

    def __init__(self, api: Any, container_id: str) -> None:
        # since=1 replays the daemon's buffered events of this container: none is lost to the
        # moment between the daemon answering this request and subscribing it.
        self._stream = api.events(
            filters={"type": "container", "container": container_id}, since=1, decode=True
        )
        self.exit_code: int | None = None
        self.oom_killed = False
        self.died = threading.Event()
        """Set when the container died, or when the stream ended without saying so."""
        self.removed = threading.Event()
        """Set when the daemon removed the container, or when the stream ended."""
        self.saw_removal = False
        self._thread = threading.Thread(target=self._read, name="dativo-docker-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                action = event.get("Action") or event.get("status")
                if action == "oom":
                    self.oom_killed = True
                elif action == "die":
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    with contextlib.suppress(KeyError, TypeError, ValueError):
                        self.exit_code = int(attributes["exitCode"])
                    self.died.set()
                elif action == "destroy":
                    self.saw_removal = True
                    return
        except Exception:
            pass  # The stream was closed (cleanup) or broke off; wait() falls back to inspecting.
        finally:
            self.died.set()
            self.removed.set()
            # The stream's generator never closes its HTTP response: close it (and its socket) here.
            response = getattr(self._stream, "_response", None)
            with contextlib.suppress(Exception):
                if response is not None:
                    response.close()

    def close(self) -> None:
        """Stop reading events (unblocking the thread) and release the connection."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._stream.close()
        self._thread.join(timeout=2.0)


class _ContainerTransport(WorkerTransport):
    """A started container: its attach socket (stdin in, multiplexed stdout/stderr out)."""

    def __init__(self, api: Any, container_id: str, attach: Any, events: _ContainerEvents) -> None:
        self.api = api
        self.container_id = container_id
        self._attach = attach
        self._socket: socket.socket = getattr(attach, "_sock", attach)
        self._events = events
        self.stderr = StderrTail()
        self._remaining = 0
        self._status: ExitStatus | None = None
        self._cleaned = False

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
        events = self._events
        if not events.died.wait(timeout):
            return None
        if events.exit_code is None:
            return self._inspected_status()
        # The daemon reports an OOM kill before the death; waiting for the removal (which
        # follows at once) lets a late report still count.
        events.removed.wait(_LATE_EVENT_S)
        self._status = ExitStatus(exit_code=events.exit_code, oom_killed=events.oom_killed)
        return self._status

    def _inspected_status(self) -> ExitStatus | None:
        """How the container ended, asked of the daemon (when the event stream broke off)."""
        try:
            result = self.api.wait(self.container_id, timeout=10)
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
        if self._cleaned:
            return
        self._cleaned = True
        if not self._events.saw_removal:
            # auto_remove normally did it; this covers a container that never stopped or a
            # daemon that failed to remove it. The container is gone when its destroy event
            # arrives (also when the daemon's own removal was in progress).
            with contextlib.suppress(Exception):
                self.api.remove_container(self.container_id, force=True)
            self._events.removed.wait(_REMOVAL_WAIT_S)
        self._events.close()


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
        scratch_bytes = min(TMPFS_BYTES, limits.disk_bytes or TMPFS_BYTES)  # /tmp counts against disk
        binds: dict[str, dict[str, str]] = {}
        if ref.plugin_dir is not None:
            binds[str(ref.plugin_dir)] = {"bind": str(ref.plugin_dir), "mode": "ro"}
        if output_dir is not None:
            binds[str(output_dir)] = {"bind": str(output_dir), "mode": "rw"}
        from docker.types import LogConfig, Ulimit

        host_config = api.create_host_config(
            auto_remove=True,  # removed by the daemon as soon as it stops, even if this runtime is gone
            binds=binds,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={scratch_bytes}"},
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
        labels = {
            CONTAINER_LABEL: "1",
            f"{CONTAINER_LABEL}.ref": ref.ref[-200:],
            **_Runtime.current().labels(),
        }
        if limits.timeout_s is not None:
            labels[DEADLINE_LABEL] = str(int(time.time() + limits.timeout_s + DEADLINE_MARGIN_S))
        return {
            "image": self.image,
            "user": CONTAINER_USER if os.geteuid() == 0 else f"{os.geteuid()}:{os.getegid()}",
            # With detach=False (the default) an open stdin is also StdinOnce: the daemon closes
            # the worker's stdin when this runtime's attach connection ends, so the worker sees
            # its host go away.
            "stdin_open": True,
            "tty": False,
            "environment": dict(_WORKER_ENV),
            "working_dir": "/tmp",
            "hostname": "dativo-sandbox",
            "network_disabled": not limits.network,
            "labels": labels,
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
        _reap_once(api)
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
        events: _ContainerEvents | None = None
        try:
            events = _ContainerEvents(api, container_id)
            attach = api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            api.start(container_id)
        except Exception as exc:
            with contextlib.suppress(Exception):
                api.remove_container(container_id, force=True)
            if events is not None:
                events.close()
            explanation = getattr(exc, "explanation", None) or str(exc)
            raise SandboxError(
                f"Docker could not start the sandbox container for {ref.ref!r}: {explanation}",
                details={"reason": "startup_failed", "backend": self.name},
            ) from exc
        transport = _ContainerTransport(api, container_id, attach, events)
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
