"""The ``docker`` backend: each plugin run in a locked-down container of the sandbox image.

The container runs the worker as a non-root user with every capability dropped,
``no-new-privileges``, the seccomp profile of :mod:`._seccomp` (never silently weakened:
a daemon without seccomp support, or a worker that reports no filter, fails the run), a
read-only root filesystem, a size-limited tmpfs ``/tmp``, no network unless the job opts
in, memory (without swap), CPU and pids limits, and logging off. The plugin's folder is
bind-mounted read-only and a writer's output folder read-write, at their host paths, and so
are the plugin's environment (put first on the worker's ``sys.path``, before the image's
own packages) and the job's read-only paths, read-only.
Configuration travels over the attached stdin, never in the container's environment.
The docker SDK is imported only when this backend is used.

No container outlives its run: containers are started with ``auto_remove`` (the daemon
removes one as soon as it stops; :mod:`._container` learns how it ended from the daemon's
events), the worker ends itself at the session's deadline and when its stdin hangs up
(the daemon closes it when the runtime's attach connection ends), and each container is
labelled with its owner and deadline, so a later runtime reaps what an earlier one left
(:mod:`._reaper`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import ReaderSession, SandboxLimits, SessionMounts, WriterSession
from dativo_runtime._sandbox._limits import cpu_seconds_budget, effective_limits
from dativo_runtime._sandbox._worker_environment import (
    OPEN_FILES,
    SANDBOX_GID,
    SANDBOX_HOSTNAME,
    SANDBOX_UID,
    WORKER_ENV,
    scratch_bytes,
    worker_rlimits,
)
from dativo_runtime._sandbox.docker._container import ContainerEvents, ContainerTransport
from dativo_runtime._sandbox.docker._reaper import (
    CONTAINER_LABEL,
    DEADLINE_LABEL,
    DEADLINE_MARGIN_S,
    RuntimeIdentity,
    reap_leftover_containers,
    reap_once,
)
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._remote import InspectedPlugin, WorkerSandbox, open_remote_session
from dativo_runtime._sandbox.seccomp import docker_profile
from dativo_runtime._version import __version__
from dativo_runtime._worker._digest import worker_digest

__all__ = [
    "CONTAINER_LABEL",
    "DEFAULT_IMAGE",
    "DOCKERFILE_DIGEST_LABEL",
    "WORKER_DIGEST_LABEL",
    "DockerSandbox",
    "dockerfile_digest",
    "reap_leftover_containers",
    "worker_digest",
]

DEFAULT_IMAGE = f"dativo-sandbox:{__version__}"
"""The image ``dativo-run sandbox build-image`` builds and the backend uses by default."""
WORKER_DIGEST_LABEL = "io.dativo.sandbox.worker-digest"


DOCKERFILE_DIGEST_LABEL = "io.dativo.sandbox.dockerfile-digest"


def dockerfile_digest() -> str:
    """A hash of the Dockerfile this runtime builds its image from (an image built from another is stale).

    Returns:
        16 hex digits.
    """
    dockerfile = resources.files("dativo_runtime._sandbox") / "docker" / "Dockerfile"
    return hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:16]


CONTAINER_USER = f"{SANDBOX_UID}:{SANDBOX_GID}"


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
        built_from = labels.get(DOCKERFILE_DIGEST_LABEL)
        if built_for is not None and built_from != dockerfile_digest():
            return False, (
                f"the sandbox image {image} was built from an older Dockerfile than this runtime's "
                f"(digest {built_from}, runtime {dockerfile_digest()}); rebuild it with "
                "'dativo-run sandbox build-image'"
            )
        return True, f"Docker {info.get('ServerVersion', '?')}, image {image}"

    def container_config(
        self,
        ref: PluginRef,
        limits: SandboxLimits,
        *,
        output_dir: Path | None = None,
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> dict[str, Any]:
        """Return the ``create_container`` arguments for one worker (secrets never appear here)."""
        api = self.client.api
        assert limits.memory_bytes is not None
        assert limits.cpu is not None
        scratch = scratch_bytes(limits)  # /tmp counts against disk
        binds: dict[str, dict[str, str]] = {}
        if ref.plugin_dir is not None:
            binds[str(ref.plugin_dir)] = {"bind": str(ref.plugin_dir), "mode": "ro"}
        environment = [mounts.environment] if mounts.environment is not None else []
        for path in [*environment, *mounts.packages, *mounts.read_only_paths]:
            binds[str(path)] = {"bind": str(path), "mode": "ro"}
        if output_dir is not None:
            binds[str(output_dir)] = {"bind": str(output_dir), "mode": "rw"}
        from docker.types import LogConfig, Ulimit

        host_config = api.create_host_config(
            auto_remove=True,  # removed by the daemon as soon as it stops, even if this runtime is gone
            binds=binds,
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={scratch}"},
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
            **RuntimeIdentity.current().labels(),
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
            "environment": dict(WORKER_ENV),
            "working_dir": "/tmp",
            "hostname": SANDBOX_HOSTNAME,
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
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> ReaderSession | WriterSession | InspectedPlugin:
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
        mounts = mounts.resolved(ref.ref, self.name)
        if output_dir is not None:
            output_dir = Path(output_dir).resolve()
            output_dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(output_dir, SANDBOX_UID, SANDBOX_GID)
        api = self.client.api
        reap_once(api)
        try:
            container = api.create_container(
                **self.container_config(ref, limits, output_dir=output_dir, mounts=mounts)
            )
        except docker.errors.APIError as exc:
            raise SandboxError(
                f"Docker refused to create the sandbox container for {ref.ref!r}: {exc.explanation or exc}",
                details={"reason": "startup_failed", "backend": self.name},
            ) from exc
        except docker.errors.DockerException as exc:
            raise _infrastructure_error("cannot reach the Docker daemon", exc) from exc
        container_id = container["Id"]
        events: ContainerEvents | None = None
        try:
            events = ContainerEvents(api, container_id)
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
        transport = ContainerTransport(api, container_id, attach, events)
        cpu_seconds = cpu_seconds_budget(limits)
        client = WorkerClient(
            transport,
            backend=self.name,
            ref=ref,
            limits=limits,
            cpu_seconds=cpu_seconds,
            started_at=started_at,
        )
        rlimits = worker_rlimits(cpu_seconds)
        return open_remote_session(
            client, role=role, config=config, rlimits=rlimits, schema=schema, mounts=mounts
        )
