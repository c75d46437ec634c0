"""The Dativo error hierarchy, shared by plugins, the testkit and the runtime.

Every error a plugin raises on purpose is a :class:`DativoError`. Each carries a
machine-readable ``error_code``, a ``retryable`` flag the runtime's retry loop obeys,
and JSON-serialisable ``details``. Errors survive :meth:`DativoError.to_dict` /
:func:`from_dict` and pickling, because they cross the sandbox boundary.

The tree::

    Exception
    └── DativoError                      <CLASS NAME>               not retryable
        ├── ConnectionError              CONNECTION_FAILED          retryable
        │   └── AuthenticationError      AUTHENTICATION_FAILED      not retryable
        ├── ValidationError              VALIDATION_FAILED          not retryable
        ├── ConfigurationError           CONFIGURATION_ERROR        not retryable
        ├── TransientError               TRANSIENT_ERROR            retryable
        │   └── RateLimitError           RATE_LIMIT_EXCEEDED        always retryable
        └── PluginError                  PLUGIN_ERROR               not retryable
            ├── PluginVersionError       PLUGIN_VERSION_INCOMPATIBLE not retryable
            └── SandboxError             SANDBOX_ERROR              not retryable

``ConnectionError`` deliberately keeps the seed system's name and *also* subclasses the
builtin :class:`builtins.ConnectionError`, so ``except ConnectionError`` catches it
whichever of the two names is in scope. Code that wants to be explicit can import it
as ``DativoConnectionError``.
"""

from __future__ import annotations

import builtins
import math
import reprlib
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionError",
    "DativoConnectionError",
    "DativoError",
    "PluginError",
    "PluginVersionError",
    "RateLimitError",
    "SandboxError",
    "TransientError",
    "ValidationError",
    "from_dict",
    "get_error_code",
    "is_retryable",
]

# Every DativoError subclass, by class name, so from_dict can rebuild the right class.
# Built-in classes are registered first and are never replaced by a same-named subclass.
_REGISTRY: dict[str, type[DativoError]] = {}
_BUILTIN_NAMES: set[str] = set()


def _json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON data, turning what JSON cannot hold into strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    return str(value)


def _is_seconds(value: object) -> bool:
    """Tell whether ``value`` is a finite, non-negative number of seconds (a bool is not one).

    An integer too large for a float (``10**400``, which JSON can carry) is not one either.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        seconds = float(value)
    except OverflowError:
        return False
    return math.isfinite(seconds) and seconds >= 0


def _rebuild(cls: type[DativoError], message: str, state: dict[str, Any]) -> DativoError:
    """Recreate an error without calling a subclass's own ``__init__`` (used by pickle)."""
    error = cls.__new__(cls)
    BaseException.__init__(error, message)
    error.__dict__.update(state)
    return error


class DativoError(Exception):
    """Root of every Dativo error.

    Args:
        message: One paragraph saying what went wrong and what to fix.
        error_code: Machine-readable code; defaults to the class's ``default_code``.
        retryable: Whether retrying may succeed; defaults to the class's ``default_retryable``.
        details: JSON-serialisable context (never secrets).

    Attributes:
        message: The human message.
        error_code: The machine-readable code.
        retryable: Whether the runtime may retry the operation.
        details: Extra context as plain JSON data.
    """

    default_code: ClassVar[str | None] = None
    default_retryable: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__ not in _BUILTIN_NAMES:
            _REGISTRY.setdefault(cls.__name__, cls)

    def __init__(
        self,
        message: str = "",
        *,
        error_code: str | None = None,
        retryable: bool | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = str(message)
        cls = type(self)
        self.error_code = error_code or cls.default_code or cls.__name__.upper()
        self.retryable = cls.default_retryable if retryable is None else bool(retryable)
        self.details: dict[str, Any] = dict(details) if details else {}

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def to_dict(self) -> dict[str, Any]:
        """Return the error as JSON-serialisable data.

        Returns:
            A dict with ``error_type``, ``error_code``, ``message``, ``details`` and
            ``retryable``, plus ``retry_after`` when the error carries one.
        """
        data: dict[str, Any] = {
            "error_type": type(self).__name__,
            "error_code": self.error_code,
            "message": self.message,
            "details": _json_safe(self.details),
            "retryable": self.retryable,
        }
        retry_after = getattr(self, "retry_after", None)
        if retry_after is not None:
            data["retry_after"] = retry_after
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DativoError:
        """Rebuild an error from :meth:`to_dict` output; same as the module's :func:`from_dict`."""
        return from_dict(data)


class ConnectionError(DativoError, builtins.ConnectionError):  # noqa: A001
    """The source or target could not be reached; retrying may help."""

    default_code = "CONNECTION_FAILED"
    default_retryable = True


DativoConnectionError = ConnectionError


class AuthenticationError(ConnectionError):
    """Credentials were refused; retrying with the same ones will not help."""

    default_code = "AUTHENTICATION_FAILED"
    default_retryable = False


class ValidationError(DativoError):
    """Data does not match the expected schema or constraints."""

    default_code = "VALIDATION_FAILED"


class ConfigurationError(DativoError):
    """The plugin or job configuration is missing or invalid."""

    default_code = "CONFIGURATION_ERROR"


class TransientError(DativoError):
    """A temporary failure; retry, after ``retry_after`` seconds when given.

    The runtime waits at most its job's ``retry.max_delay``, whatever ``retry_after`` says.

    Args:
        message: What failed.
        retry_after: Seconds to wait before retrying, when the server said so.
        **kwargs: ``error_code``, ``retryable`` and ``details`` as for :class:`DativoError`.

    Raises:
        ValueError: If ``retry_after`` is not a finite, non-negative number.
    """

    default_code = "TRANSIENT_ERROR"
    default_retryable = True

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if retry_after is not None and not _is_seconds(retry_after):
            raise ValueError(
                f"retry_after must be a finite, non-negative number of seconds, got {retry_after!r}"
            )
        self.retry_after = retry_after


class RateLimitError(TransientError):
    """The remote side is throttling requests; always retryable."""

    default_code = "RATE_LIMIT_EXCEEDED"

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        kwargs["retryable"] = True
        super().__init__(message, retry_after=retry_after, **kwargs)


class PluginError(DativoError):
    """The plugin itself misbehaved or could not be loaded."""

    default_code = "PLUGIN_ERROR"


class PluginVersionError(PluginError):
    """The plugin's declared version or SDK requirement is invalid or unmet."""

    default_code = "PLUGIN_VERSION_INCOMPATIBLE"


class SandboxError(PluginError):
    """The sandbox stopped the plugin (OOM, timeout, signal, blocked syscall) or failed to start.

    Not retryable by default: a plugin that ran out of memory or time will do so again.
    A backend sets ``retryable=True`` on an instance for infrastructure hiccups (a
    container daemon briefly unreachable) where a retry can succeed.
    """

    default_code = "SANDBOX_ERROR"


for _cls in (
    DativoError,
    ConnectionError,
    AuthenticationError,
    ValidationError,
    ConfigurationError,
    TransientError,
    RateLimitError,
    PluginError,
    PluginVersionError,
    SandboxError,
):
    _REGISTRY[_cls.__name__] = _cls
    _BUILTIN_NAMES.add(_cls.__name__)

_BY_CODE: dict[str, type[DativoError]] = {
    c.default_code: c for c in _REGISTRY.values() if c.default_code is not None
}


def from_dict(data: Mapping[str, Any]) -> DativoError:
    """Rebuild the right :class:`DativoError` subclass from :meth:`DativoError.to_dict` output.

    An ``error_type`` this process does not know (a plugin's own subclass) falls back to
    the built-in class with the same ``error_code``, else to :class:`DativoError`; code,
    message, details and ``retryable`` are kept either way.

    Args:
        data: A mapping as produced by ``to_dict()``.

    Returns:
        The rebuilt error.

    Raises:
        TypeError: If ``data`` is not a mapping.
        ValueError: If ``data`` has no ``message`` or ``error_code``, or a ``retry_after``
            that is not a finite, non-negative number (``inf``, ``NaN``, ``-1``, ``"5"``).
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"from_dict expects a mapping, got {type(data).__name__}")
    if "message" not in data or "error_code" not in data:
        raise ValueError("error data needs at least 'message' and 'error_code'")
    retry_after = data.get("retry_after")
    if retry_after is not None and not _is_seconds(retry_after):
        raise ValueError(
            "error data's retry_after must be a finite, non-negative number of seconds, "
            f"got {reprlib.repr(retry_after)}"
        )
    error_type = str(data.get("error_type", ""))
    code = str(data["error_code"])
    cls = _REGISTRY.get(error_type) or _BY_CODE.get(code) or DativoError
    state: dict[str, Any] = {
        "message": str(data["message"]),
        "error_code": code,
        # A rate limit is retryable whatever the data says, as its constructor guarantees.
        "retryable": True
        if issubclass(cls, RateLimitError)
        else bool(data.get("retryable", cls.default_retryable)),
        "details": dict(data.get("details") or {}),
    }
    if issubclass(cls, TransientError) or retry_after is not None:
        state["retry_after"] = retry_after
    return _rebuild(cls, state["message"], state)


def is_retryable(exc: BaseException) -> bool:
    """Tell whether retrying the failed operation may succeed.

    Args:
        exc: Any exception.

    Returns:
        ``exc.retryable`` for a :class:`DativoError`; ``True`` for the builtin
        ``ConnectionError`` and ``TimeoutError`` families; ``False`` otherwise.
    """
    if isinstance(exc, DativoError):
        return exc.retryable
    return isinstance(exc, (builtins.ConnectionError, TimeoutError))


def get_error_code(exc: BaseException) -> str:
    """Return a machine-readable code for any exception.

    Args:
        exc: Any exception.

    Returns:
        ``exc.error_code`` for a :class:`DativoError`; ``CONNECTION_FAILED`` or
        ``TIMEOUT`` for the builtin network errors; ``UNEXPECTED_ERROR`` otherwise.
    """
    if isinstance(exc, DativoError):
        return exc.error_code
    if isinstance(exc, TimeoutError):
        return "TIMEOUT"
    if isinstance(exc, builtins.ConnectionError):
        return "CONNECTION_FAILED"
    return "UNEXPECTED_ERROR"
