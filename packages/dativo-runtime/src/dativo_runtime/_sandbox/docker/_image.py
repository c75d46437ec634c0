"""Build the Docker sandbox image from the Dockerfile the runtime ships, offline if need be.

The build context holds the shipped ``Dockerfile``, a ``requirements.txt`` (the plugins'
declared requirements) and a ``wheels/`` folder. The image installs everything with
``pip install --no-index --find-links /wheels``, so the Docker build itself never
contacts a package index. The wheels come from, in order:

1. ``--wheels DIR``: wheels you provide (used first, and as the only source with ``--offline``);
2. the SDK and runtime *source trees* this Python imports them from (``pip wheel``), when
   they are not installed from wheels;
3. ``pip download`` for the image's Python and platform (e.g. ``cp311`` manylinux), which
   reaches the package index configured for pip on this host, unless ``--offline``.

With ``--base`` naming an image that is already loaded (``docker import`` of a
debootstrapped root, for example) no registry is contacted either; see docs/sandboxing.md.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import SandboxError
from dativo_runtime._sandbox.docker._backend import (
    DEFAULT_IMAGE,
    DOCKERFILE_DIGEST_LABEL,
    WORKER_DIGEST_LABEL,
    dockerfile_digest,
    worker_digest,
)

__all__ = ["DEFAULT_BASE_IMAGE", "ImageBuildError", "build_image", "prepare_build_context"]

DEFAULT_BASE_IMAGE = "python:3.11-slim"
_MANYLINUX_GLIBC = (17, 24, 27, 28, 31, 34, 35, 36)
_OWN_DISTRIBUTIONS = {"dativo-plugin-sdk": "dativo_plugin_sdk", "dativo-runtime": "dativo_runtime"}


class ImageBuildError(SandboxError):
    """Building the sandbox image failed; the message says which step and how to fix it."""


def _python_version_of(base: str) -> str | None:
    match = re.match(r"^(?:[\w.-]+/)*python:(\d+\.\d+)", base)
    return match.group(1) if match else None


def _wheel_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.whl"))


def _has_wheel(folder: Path, distribution: str) -> bool:
    prefix = distribution.replace("-", "_").lower() + "-"
    return any(name.lower().startswith(prefix) for name in _wheel_names(folder))


def _source_tree(distribution: str) -> Path | None:
    """The project folder (with pyproject.toml) a distribution's module is imported from, if any."""
    module = __import__(_OWN_DISTRIBUTIONS[distribution])
    for parent in Path(module.__file__ or "").resolve().parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file():
            if re.search(rf'^name\s*=\s*"{re.escape(distribution)}"', pyproject.read_text(), re.MULTILINE):
                return parent
            return None
    return None


def _run(command: list[str], what: str, echo: Callable[[str], Any]) -> None:
    echo("$ " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise ImageBuildError(
            f"{what} failed (exit {result.returncode}):\n{tail}",
            details={"reason": "startup_failed", "command": command[:4]},
        )


def prepare_build_context(
    context: Path,
    *,
    python_version: str,
    wheels: Path | None = None,
    requirements: Path | None = None,
    offline: bool = False,
    echo: Callable[[str], Any] = print,
) -> Path:
    """Fill ``context`` with the Dockerfile, ``requirements.txt`` and every wheel the image needs.

    Args:
        context: An empty folder.
        python_version: The image's Python, ``X.Y`` (wheels are fetched for it).
        wheels: A folder of wheels to use first.
        requirements: A pip requirements file with the plugins' declared requirements.
        offline: Use only ``wheels`` and the local source trees; never download.
        echo: Progress output.

    Returns:
        ``context``.

    Raises:
        ImageBuildError: If a wheel cannot be found or built.
    """
    wheel_dir = context / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    dockerfile = resources.files("dativo_runtime._sandbox") / "docker" / "Dockerfile"
    (context / "Dockerfile").write_text(dockerfile.read_text(encoding="utf-8"), encoding="utf-8")
    if requirements is not None:
        try:
            shutil.copyfile(requirements, context / "requirements.txt")
        except OSError as exc:
            raise ImageBuildError(
                f"cannot read requirements file {str(requirements)!r}: {exc.strerror}"
            ) from None
    else:
        (context / "requirements.txt").write_text("")
    if wheels is not None:
        if not wheels.is_dir():
            raise ImageBuildError(f"--wheels {str(wheels)!r} is not a folder")
        for wheel in wheels.glob("*.whl"):
            shutil.copy2(wheel, wheel_dir / wheel.name)
    pip = [sys.executable, "-m", "pip"]
    for distribution in _OWN_DISTRIBUTIONS:
        if _has_wheel(wheel_dir, distribution):
            continue
        source = _source_tree(distribution)
        if source is not None:
            build = [*pip, "wheel", "--quiet", "--no-deps", "-w", str(wheel_dir), str(source)]
            what = f"building the {distribution} wheel from {source}"
            try:
                # Without build isolation the build backend (hatchling) comes from this Python,
                # so nothing is downloaded; with it, pip fetches the backend from the index.
                _run([*build, "--no-build-isolation"], what, echo)
            except ImageBuildError as exc:
                if offline:
                    raise ImageBuildError(
                        f"{exc}\nOffline, the {distribution} wheel is built from its source tree with this "
                        "Python's own build backend: `pip install hatchling`, or put a built wheel in the "
                        "--wheels folder"
                    ) from exc
                _run(build, what, echo)
            continue
        if offline:
            raise ImageBuildError(
                f"no {distribution} wheel in --wheels and no source tree to build one from; put "
                f"{distribution}-{metadata.version(distribution)}-py3-none-any.whl in the --wheels folder"
            )
        _run(
            [*pip, "download", "--quiet", "--no-deps", "-d", str(wheel_dir),
             f"{distribution}=={metadata.version(distribution)}"],
            f"downloading {distribution}",
            echo,
        )  # fmt: skip
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    digits = python_version.replace(".", "")
    target = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    target += ["--abi", f"cp{digits}", "--abi", "abi3", "--abi", "none"]
    for glibc in _MANYLINUX_GLIBC:
        target += ["--platform", f"manylinux_2_{glibc}_{machine}"]
    target += ["--platform", f"manylinux2014_{machine}", "--platform", "any"]
    sources = ["--find-links", str(wheel_dir)]
    if offline:
        sources.append("--no-index")
    needed = [f"pyarrow=={metadata.version('pyarrow')}", "packaging"]
    command = [*pip, "download", "--quiet", "-d", str(wheel_dir), *target, *sources, *needed]
    if (context / "requirements.txt").read_text().strip():
        command += ["-r", str(context / "requirements.txt")]
    _run(command, f"collecting wheels for Python {python_version} ({machine})", echo)
    return context


def build_image(
    *,
    base: str = DEFAULT_BASE_IMAGE,
    tag: str = DEFAULT_IMAGE,
    wheels: Path | None = None,
    requirements: Path | None = None,
    python_version: str | None = None,
    offline: bool = False,
    echo: Callable[[str], Any] = print,
    client: Any = None,
) -> str:
    """Build the sandbox image and return its id.

    Args:
        base: The base image (any Debian-like image with ``python3`` and its ``venv`` module).
        tag: The image tag to build.
        wheels: A folder of wheels to use first (the only source with ``offline``).
        requirements: The plugins' requirements file, installed into the image.
        python_version: The base image's Python ``X.Y``; read from ``python:X.Y-*`` tags, else 3.11.
        offline: Never download wheels.
        echo: Progress output.
        client: A ``docker.DockerClient``.

    Returns:
        The new image's id.

    Raises:
        ImageBuildError: If collecting wheels or the Docker build fails.
    """
    import docker

    version = python_version or _python_version_of(base) or "3.11"
    if client is None:
        try:
            client = docker.from_env(timeout=600)
            client.ping()
        except Exception as exc:
            raise ImageBuildError(
                f"cannot reach the Docker daemon ({exc}); start dockerd or set DOCKER_HOST", retryable=True
            ) from None
    with tempfile.TemporaryDirectory(prefix="dativo-image-") as folder:
        context = prepare_build_context(
            Path(folder),
            python_version=version,
            wheels=wheels,
            requirements=requirements,
            offline=offline,
            echo=echo,
        )
        echo(f"building {tag} from {base} with {len(_wheel_names(context / 'wheels'))} wheels")
        image_id = None
        log: list[str] = []
        try:
            for chunk in client.api.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE_IMAGE": base},
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                labels={
                    "io.dativo.sandbox.image": "1",
                    WORKER_DIGEST_LABEL: worker_digest(),
                    DOCKERFILE_DIGEST_LABEL: dockerfile_digest(),
                },
            ):
                if "error" in chunk:
                    raise ImageBuildError(
                        f"docker build of {tag} failed: {chunk['error'].strip()}\n" + "\n".join(log[-15:]),
                        details={"reason": "startup_failed"},
                    )
                text = str(chunk.get("stream", "")).rstrip()
                if text:
                    log.append(text)
                    echo(text)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = aux["ID"]
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"docker build of {tag} failed: {exc.explanation or exc}") from None
    if image_id is None:
        image_id = client.images.get(tag).id
    return str(image_id)
