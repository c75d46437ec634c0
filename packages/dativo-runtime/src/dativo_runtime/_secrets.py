"""Secrets in job files: ``${VAR}`` and ``${file:PATH}`` interpolation, and redaction.

Interpolation forms, in any string value of a job file:

* ``${NAME}`` or ``${env:NAME}``: the environment variable ``NAME`` (an error when unset);
* ``${NAME:-default}``: the variable, or ``default`` when it is unset or empty;
* ``${file:PATH}``: the contents of a file, trailing newlines removed (Docker and
  Kubernetes secrets); a relative ``PATH`` is relative to the job file's folder;
* ``$${...}``: a literal ``${...}``.

A value is a *secret* when it comes from a file, when it comes from an environment
variable whose name looks secret (``..._TOKEN``, ``..._PASSWORD``...), or when it sits
under a key that looks secret (``password``, ``token``, ``aws_secret_access_key``...).
Secrets are registered with the process-wide :data:`REDACTOR`, which every log line,
error message and ``--json`` document passes through before it is written.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import ConfigurationError

__all__ = [
    "MASK",
    "REDACTOR",
    "RedactingStream",
    "Redactor",
    "interpolate",
    "is_secret_key",
]

MASK = "***"
"""What a secret is replaced with."""

_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "api_key",
    "private_key",
    "access_key",
    "secret_key",
    "signature",
    "authorization",
)
_MIN_SECRET_LENGTH = 4
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_secret_key(name: str) -> bool:
    """Tell whether a configuration key names a secret.

    Args:
        name: A key such as ``password``, ``api_key`` or ``aws_secret_access_key``.

    Returns:
        ``True`` for keys holding credentials; ``pwd`` and ``key`` count when they are the
        whole key.

    Example:
        >>> is_secret_key("aws_secret_access_key"), is_secret_key("path")
        (True, False)
    """
    lowered = str(name).lower().replace("-", "_")
    if lowered in ("pwd", "key", "auth"):
        return True
    compact = lowered.replace("_", "")
    return any(word in lowered or word.replace("_", "") in compact for word in _SECRET_WORDS)


class Redactor:
    """Remembers secret values and masks them in text and data.

    Values shorter than four characters are not remembered: masking every ``1`` or ``ab``
    would garble output without protecting anything real.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: tuple[str, ...] = ()

    def add(self, value: Any) -> None:
        """Remember ``value`` (its string form) as a secret."""
        text = "" if value is None else str(value)
        candidates = {text, text.strip()}
        with self._lock:
            for candidate in candidates:
                if len(candidate) >= _MIN_SECRET_LENGTH:
                    self._secrets.add(candidate)
            self._ordered = tuple(sorted(self._secrets, key=len, reverse=True))

    def clear(self) -> None:
        """Forget every secret (tests use this)."""
        with self._lock:
            self._secrets.clear()
            self._ordered = ()

    def __contains__(self, value: object) -> bool:
        return value in self._secrets

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every known secret replaced by ``***``."""
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def redact(self, value: Any, *, key: str | None = None) -> Any:
        """Return a copy of JSON-like data with secrets masked.

        Values under secret-looking keys are masked whole; every string is searched for
        known secrets.

        Args:
            value: Any JSON-like value (dicts, lists, strings, numbers).
            key: The key ``value`` sits under, if any.

        Returns:
            The redacted copy.
        """
        if (
            key is not None
            and is_secret_key(key)
            and value is not None
            and value != ""
            and not isinstance(value, (Mapping, list, tuple))
        ):
            return MASK
        if isinstance(value, Mapping):
            return {k: self.redact(v, key=str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        if isinstance(value, str):
            return self.redact_text(value)
        return value


REDACTOR = Redactor()
"""The process-wide redactor every output of the runtime goes through."""


def _field_name(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _last_key(path: tuple[str | int, ...]) -> str | None:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return None


def _substitute_references(text: str, replace: Callable[[re.Match[str]], str]) -> str:
    """``_REFERENCE.sub(replace, text)`` in time linear in ``text``.

    From each ``${`` with no ``}`` after it, the pattern would scan to the end of the text:
    quadratic in a job file full of them. Past the last ``}`` only the ``$${`` escape can
    match, and no match spans that point, so the rest is a plain replacement.
    """
    end = text.rfind("}") + 1
    return _REFERENCE.sub(replace, text[:end]) + text[end:].replace("$${", "${")


class _Interpolator:
    def __init__(self, environ: Mapping[str, str], base_dir: Path, redactor: Redactor) -> None:
        self.environ = environ
        self.base_dir = base_dir
        self.redactor = redactor

    def value(self, value: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(value, Mapping):
            return {k: self.value(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str):
            return self.string(value, path)
        key = _last_key(path)
        if key is not None and is_secret_key(key) and value is not None and not isinstance(value, bool):
            self.redactor.add(value)
        return value

    def string(self, text: str, path: tuple[str | int, ...]) -> str:
        key = _last_key(path)
        secret_key = key is not None and is_secret_key(key)

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            resolved, secret = self.reference(match.group(1), path)
            if secret or secret_key:
                self.redactor.add(resolved)
            return resolved

        result = _substitute_references(text, replace)
        if secret_key:
            self.redactor.add(result)
        return result

    def reference(self, body: str, path: tuple[str | int, ...]) -> tuple[str, bool]:
        field = _field_name(path)
        if body.startswith("file:"):
            return self.file(body[len("file:") :].strip(), field), True
        name, has_default, default = body.partition(":-")
        name = name.strip()
        if name.startswith("env:"):
            name = name[len("env:") :].strip()
        if not _ENV_NAME.match(name):
            raise ConfigurationError(
                f"{field}: '${{{body}}}' is not a valid reference; write ${{NAME}} or ${{env:NAME}} for an "
                "environment variable, ${NAME:-default} for one with a default, or ${file:/path} for a "
                "secret file (use $${...} for a literal '${')",
                details={"field": field},
            )
        value = self.environ.get(name)
        if value is None or (has_default and value == ""):
            if has_default:
                return default, False
            raise ConfigurationError(
                f"{field}: environment variable {name} is not set; export {name}=... before running, "
                f"or give a default with ${{{name}:-value}}",
                details={"field": field, "variable": name},
            )
        return value, is_secret_key(name)

    def file(self, raw: str, field: str) -> str:
        if not raw:
            raise ConfigurationError(f"{field}: ${{file:}} needs a path", details={"field": field})
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ConfigurationError(
                f"{field}: cannot read secret file {str(path)!r} ({reason}); check the path in "
                "${file:...} and that this user may read it",
                details={"field": field, "file": str(path)},
            ) from None


def interpolate(
    data: Any,
    *,
    environ: Mapping[str, str],
    base_dir: Path,
    redactor: Redactor = REDACTOR,
    path: tuple[str | int, ...] = (),
) -> Any:
    """Resolve ``${...}`` references in every string of ``data`` and register secrets.

    Args:
        data: Parsed YAML (dicts, lists, scalars).
        environ: The environment variables to read (usually ``os.environ``).
        base_dir: Folder that relative ``${file:...}`` paths are relative to.
        redactor: Where secret values are registered.
        path: The field path of ``data`` within the job file, for error messages.

    Returns:
        A copy of ``data`` with references resolved. Values stay strings: typed job
        fields convert them (``"10"`` to ``10``) during validation.

    Raises:
        ConfigurationError: If a variable is unset, a secret file cannot be read, or a
            reference is malformed; the message names the field.
    """
    return _Interpolator(environ, base_dir, redactor).value(data, path)


class RedactingStream:
    """A text stream wrapper that masks known secrets in everything written through it.

    Args:
        inner: The stream to write to (``sys.stdout``, ``sys.stderr``...).
        redactor: The redactor to apply.
    """

    def __init__(self, inner: Any, redactor: Redactor = REDACTOR) -> None:
        self._inner = inner
        self._redactor = redactor

    def write(self, text: str) -> int:
        """Write ``text`` with secrets masked."""
        self._inner.write(self._redactor.redact_text(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
