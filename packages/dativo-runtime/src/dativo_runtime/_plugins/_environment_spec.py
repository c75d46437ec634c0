"""What a plugin environment holds: its normalised requirements and the key they hash to.

An :class:`EnvironmentSpec` is pure data. Its requirements are normalised when it is
made (names canonical, specifiers and extras sorted, duplicates dropped, the list
sorted), so two declarations that mean the same thing share one key, and so one
environment. The key also covers what makes a built folder usable: the runtime's Python
``X.Y``, the wheel platform, the runtime's version and the pins of the packages the runtime
itself provides to the plugin (pyarrow, packaging). Requirements naming ``dativo-plugin-sdk``
or ``dativo-runtime`` are never installed: the runtime provides them, so they are dropped
here once their specifier is checked against the installed version.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._version import __version__ as _RUNTIME_VERSION

__all__ = [
    "PROVIDED_BY_RUNTIME",
    "EnvironmentSpec",
    "normalize_requirement",
    "runtime_constraints",
    "runtime_platform",
    "runtime_python",
]

PROVIDED_BY_RUNTIME = ("dativo-plugin-sdk", "dativo-runtime")
"""Distributions the runtime provides to every plugin; never installed into an environment."""

_PINNED = ("pyarrow",)
"""What a plugin running in the worker shares with it, pinned to the runtime's version.

Only pyarrow: its batches cross into the worker's own pyarrow. ``packaging`` is not
pinned (many packages cap it; the worker imports its own copy before the plugin's).
"""


def runtime_python() -> str:
    """The runtime's Python as ``X.Y`` (environments are built for it)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def runtime_platform() -> str:
    """The wheel platform environments are built for, as uv's ``--python-platform`` names it.

    Returns:
        ``<arch>-manylinux_2_28`` on Linux (the sandbox image is Debian bookworm, glibc 2.36),
        ``<arch>-apple-darwin`` on macOS.

    Raises:
        ConfigurationError: On any other system.
    """
    machine = _platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform.startswith("linux"):
        return f"{arch}-manylinux_2_28"
    if sys.platform == "darwin":
        return f"{arch}-apple-darwin"
    raise ConfigurationError(
        f"plugin environments are built for Linux or macOS; this system is {sys.platform!r}"
    )


def runtime_constraints() -> tuple[str, ...]:
    """Pins of the packages a plugin in the worker shares with the runtime (``pyarrow==X``)."""
    pins = []
    for name in _PINNED:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # pragma: no cover - both are runtime dependencies
            continue
    return tuple(pins)


def normalize_requirement(text: str) -> Requirement:
    """Parse one PEP 508 requirement and return it in canonical spelling.

    Args:
        text: ``name[extras] specifier ; marker`` or ``name @ url``.

    Returns:
        The requirement with its name and extras canonicalised (specifiers come out sorted).

    Raises:
        ValueError: If ``text`` is not a PEP 508 requirement.
    """
    try:
        requirement = Requirement(text.strip())
    except InvalidRequirement as exc:
        raise ValueError(str(exc)) from None
    requirement.name = canonicalize_name(requirement.name)
    requirement.extras = {canonicalize_name(extra) for extra in requirement.extras}
    return requirement


def _provided_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _normalize(requirements: tuple[str, ...], origin: str) -> tuple[str, ...]:
    """Canonical, sorted, de-duplicated requirements without the ones the runtime provides."""
    kept: set[str] = set()
    for text in requirements:
        if not text.strip():
            continue
        try:
            requirement = normalize_requirement(text)
        except ValueError as exc:
            raise ConfigurationError(
                f"{origin}: {text.strip()!r} is not a pip requirement ({exc}); "
                "write one such as 'name==1.2.3'",
                details={"origin": origin, "requirement": text.strip()},
            ) from None
        if requirement.name in PROVIDED_BY_RUNTIME:
            provided = _provided_version(requirement.name)
            if provided is not None and not requirement.specifier.contains(provided, prereleases=True):
                raise ConfigurationError(
                    f"{origin}: requires {text.strip()!r}, but this runtime provides {requirement.name} "
                    f"{provided}, which plugins always use (it is never installed into an environment); "
                    "widen the specifier or use a matching dativo-runtime",
                    details={"origin": origin, "requirement": text.strip(), "provided": provided},
                )
            continue
        kept.add(str(requirement))
    return tuple(sorted(kept))


@dataclass(frozen=True)
class EnvironmentSpec:
    """What one plugin environment is built from; equal specs share one environment.

    Args:
        requirements: PEP 508 requirements (normalised on construction; see the module docstring).
        origin: Where they were declared (a ``requirements.txt`` path, a distribution, a package
            key), for messages and listings; not part of the key.
        python: The Python ``X.Y`` the environment is for (default: the runtime's).
        platform: uv's ``--python-platform`` (default: :func:`runtime_platform`).
        runtime_version: The ``dativo-runtime`` version (default: this one).
        constraints: Pins applied while resolving (default: :func:`runtime_constraints`).

    Raises:
        ConfigurationError: If a requirement is not PEP 508, or excludes the SDK or runtime
            version this runtime provides.
    """

    requirements: tuple[str, ...]
    origin: str
    python: str = field(default_factory=runtime_python)
    platform: str = field(default_factory=runtime_platform)
    runtime_version: str = _RUNTIME_VERSION
    constraints: tuple[str, ...] = field(default_factory=runtime_constraints)

    def __post_init__(self) -> None:
        if isinstance(self.requirements, str):
            raise TypeError("requirements must be a sequence of requirement strings, not one string")
        object.__setattr__(self, "requirements", _normalize(tuple(self.requirements), self.origin))
        object.__setattr__(self, "constraints", tuple(sorted(self.constraints)))

    @property
    def key(self) -> str:
        """16 hex digits of sha256 over requirements, Python ``X.Y``, platform, runtime version and pins."""
        payload = json.dumps(
            {
                "requirements": list(self.requirements),
                "python": self.python,
                "platform": self.platform,
                "runtime_version": self.runtime_version,
                "constraints": list(self.constraints),
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def direct_references(self) -> tuple[str, ...]:
        """The requirements that name a URL or a file (``name @ file:///...``) instead of an index."""
        return tuple(r for r in self.requirements if Requirement(r).url is not None)

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON data (what an environment's marker file records)."""
        return {
            "requirements": list(self.requirements),
            "origin": self.origin,
            "python": self.python,
            "platform": self.platform,
            "runtime_version": self.runtime_version,
            "constraints": list(self.constraints),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvironmentSpec:
        """Rebuild a spec from :meth:`to_dict` output.

        Raises:
            KeyError: If a field is missing.
        """
        return cls(
            requirements=tuple(data["requirements"]),
            origin=str(data["origin"]),
            python=str(data["python"]),
            platform=str(data["platform"]),
            runtime_version=str(data["runtime_version"]),
            constraints=tuple(data.get("constraints", ())),
        )
