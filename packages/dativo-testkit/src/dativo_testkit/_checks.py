"""What a conformance check is, how one reports, and the checks shared by readers and writers."""

from __future__ import annotations

import inspect
import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from packaging.version import InvalidVersion, Version

from dativo_plugin_sdk import (
    PLUGIN_SDK_VERSION,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    PluginVersionError,
    check_compatibility,
)

from ._json_values import to_json_safe
from ._plugin_names import plugin_name
from ._resources import Leaks, ResourceSnapshot, wait_for_leaks

__all__ = [
    "CheckFailedError",
    "CheckSkippedError",
    "ConformanceCheck",
    "PluginSession",
    "RegisteredCheck",
    "bad_configs_of",
    "describe_exception",
    "error_round_trip_problem",
    "plugin_name",
]

Kind = Literal["reader", "writer"]


@dataclass(frozen=True)
class ConformanceCheck:
    """A named conformance check.

    Attributes:
        name: Stable name, e.g. ``reader.primary_keys_unique``.
        kind: ``"reader"`` or ``"writer"``.
        description: One line on what the check verifies.
        requires: Checks that must pass first; when one did not, this one is skipped.
    """

    name: str
    kind: Kind
    description: str
    requires: tuple[str, ...] = ()


class CheckFailedError(Exception):
    """Raised inside a check to fail it: ``reason`` says what is wrong and how to fix it."""

    def __init__(self, reason: str, offending: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offending = None if offending is None else to_json_safe(offending)


class CheckSkippedError(Exception):
    """Raised inside a check to skip it: ``reason`` says why it cannot run."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def bad_configs_of(bad_config: Any) -> tuple[Any, ...]:
    """Return the bad configs given: ``None`` none, a mapping one, a list or tuple each of its items."""
    if bad_config is None:
        return ()
    if isinstance(bad_config, (list, tuple)):
        return tuple(bad_config)
    return (bad_config,)


def describe_exception(exc: BaseException) -> str:
    """Return ``TypeName: message`` (just the type name when the message is empty)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def error_round_trip_problem(error: DativoError) -> str | None:
    """Say why ``error`` would not cross the sandbox boundary intact, or return ``None``.

    It must give a ``to_dict()`` that ``json.dumps`` accepts, and survive pickling.
    """
    try:
        json.dumps(error.to_dict(), allow_nan=False)
    except Exception as exc:
        return f"{type(error).__name__}.to_dict() is not JSON-serialisable ({describe_exception(exc)})"
    try:
        pickle.loads(pickle.dumps(error))
    except Exception as exc:
        return f"{type(error).__name__} does not survive pickling ({describe_exception(exc)})"
    return None


S = TypeVar("S", bound="PluginSession")


@dataclass(frozen=True)
class RegisteredCheck(Generic[S]):
    """A check and the function that runs it against a session."""

    check: ConformanceCheck
    run: Callable[[S], str]


class PluginSession:
    """What every check of one conformance run shares: the class, the configs, errors seen.

    Args:
        plugin_class: The class under test.
        config: A valid config.
        bad_config: An invalid config, a sequence of them (each must be rejected), or ``None``.
        timeout: Each check's time limit in seconds.
    """

    base_class: type[Any] = object

    def __init__(self, plugin_class: type[Any], config: Any, bad_config: Any, timeout: float) -> None:
        self.plugin_class = plugin_class
        self.config = config
        self.bad_configs = bad_configs_of(bad_config)
        self.bad_config = self.bad_configs[0] if self.bad_configs else None
        self.timeout = timeout
        self.observed_errors: list[DativoError] = []

    @property
    def name(self) -> str:
        """The class name, for messages."""
        return getattr(self.plugin_class, "__name__", repr(self.plugin_class))

    def observe(self, exc: BaseException) -> None:
        """Remember a Dativo error the plugin raised, for the error round-trip check.

        A pickled copy is kept when it can be made: it has the class, code, message and
        details but no traceback or chained exception, so the report does not keep the
        plugin's frames, and what they hold (an HTTP error's open socket), alive.
        """
        if not isinstance(exc, DativoError):
            return
        try:
            copy = pickle.loads(pickle.dumps(exc))
        except Exception:
            copy = exc  # error_round_trip_problem reports why it does not pickle
        self.observed_errors.append(copy)

    def construct(self, config: Any) -> Any:
        """Build an instance with ``config``; errors are remembered and re-raised."""
        try:
            return self.plugin_class(config=config)
        except Exception as exc:
            self.observe(exc)
            raise

    def exercise_then_close(
        self, instance: Any, calls: Sequence[Callable[[], object]], before: ResourceSnapshot
    ) -> Leaks:
        """Run ``calls`` (their errors are observed), close ``instance``, and return what leaked.

        Raises:
            CheckFailedError: If ``close()`` raises.
        """
        try:
            for call in calls:
                try:
                    call()
                except Exception as exc:
                    self.observe(exc)
        finally:
            try:
                instance.close()
            except Exception as exc:
                self.observe(exc)
                raise CheckFailedError(
                    f"close() raised {describe_exception(exc)}; release what you can and do not raise"
                ) from None
        return wait_for_leaks(before, grace_seconds=min(2.0, self.timeout / 4))

    def close_quietly(self, instance: Any) -> None:
        """Call ``close()``, ignoring what it raises (the close check judges that)."""
        try:
            instance.close()
        except Exception as exc:
            self.observe(exc)

    # Checks shared by readers and writers ---------------------------------------------

    def check_is_concrete(self) -> str:
        base = self.base_class.__name__
        cls = self.plugin_class
        if not isinstance(cls, type) or not issubclass(cls, self.base_class):
            raise CheckFailedError(
                f"{plugin_name(cls)} is not a subclass of dativo_plugin_sdk.{base}; "
                f"declare it as 'class {self.name}({base})'"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            raise CheckFailedError(f"{self.name} is abstract: implement {missing}")
        return f"{self.name} is a concrete {base}"

    def check_version(self) -> str:
        version = getattr(self.plugin_class, "__version__", None)
        if version is None:
            raise CheckFailedError(
                f"{self.name} declares no __version__; add a class attribute such as __version__ = '1.0.0'"
            )
        if not isinstance(version, str):
            raise CheckFailedError(
                f"{self.name}.__version__ must be a string such as '1.0.0', got {type(version).__name__}",
                version,
            )
        try:
            Version(version)
        except InvalidVersion:
            raise CheckFailedError(
                f"{self.name}.__version__ = {version!r} is not a valid version; use semver such as '1.0.0'",
                version,
            ) from None
        return f"__version__ = {version!r}"

    def check_sdk_compatible(self) -> str:
        try:
            check_compatibility(self.plugin_class)
        except PluginVersionError as exc:
            raise CheckFailedError(exc.message, getattr(self.plugin_class, "requires_sdk", None)) from None
        declared = getattr(self.plugin_class, "requires_sdk", None)
        wanted = f"requires_sdk {declared!r}" if declared else "the default requirement >=1.0,<2"
        return f"{wanted} includes the installed SDK {PLUGIN_SDK_VERSION}"

    def check_constructs(self) -> str:
        try:
            instance = self.construct(self.config)
        except Exception as exc:
            raise CheckFailedError(
                f"constructing {self.name} with the valid config raised {describe_exception(exc)}"
            ) from None
        self.close_quietly(instance)
        return "constructed with the valid config"

    def check_rejects_bad_config(self) -> str:
        if not self.bad_configs:
            raise CheckSkippedError("no bad config was given (bad_config=..., or --bad-config)")
        outcomes = []
        for index, bad_config in enumerate(self.bad_configs, start=1):
            outcomes.append(self._reject_one(bad_config, self.bad_config_label(index)))
        if len(outcomes) == 1:
            return outcomes[0]
        return f"all {len(outcomes)} bad configs were rejected: " + "; ".join(
            f"{i}: {o}" for i, o in enumerate(outcomes, start=1)
        )

    def bad_config_label(self, index: int) -> str:
        """Name bad config ``index`` (1-based) in messages: ``the bad config`` or ``bad config 2 of 3``."""
        count = len(self.bad_configs)
        return "the bad config" if count == 1 else f"bad config {index} of {count}"

    def _reject_one(self, bad_config: Any, which: str) -> str:
        try:
            instance = self.construct(bad_config)
        except ConfigurationError as exc:
            return f"constructing raised ConfigurationError: {exc.message}"
        except DativoError as exc:
            raise CheckFailedError(
                f"constructing with {which} raised {describe_exception(exc)}; a config problem found "
                "in __init__ must be a ConfigurationError (leave connecting to check_connection)"
            ) from None
        except Exception as exc:
            raise CheckFailedError(
                f"constructing with {which} raised the untyped {describe_exception(exc)}; raise "
                "ConfigurationError naming the setting to fix"
            ) from None
        try:
            try:
                result = instance.check_connection()
            except ConfigurationError as exc:
                self.observe(exc)
                return f"check_connection raised ConfigurationError: {exc.message}"
            except Exception as exc:
                self.observe(exc)
                raise CheckFailedError(
                    f"with {which}, check_connection raised {describe_exception(exc)}; return "
                    "ConnectionTestResult(success=False, error_code=...) instead"
                ) from None
            if not isinstance(result, ConnectionTestResult):
                raise CheckFailedError(
                    f"with {which}, check_connection returned a {type(result).__name__}, "
                    "not a ConnectionTestResult",
                    result,
                )
            if result.success:
                raise CheckFailedError(
                    f"{which} was accepted: the constructor did not raise ConfigurationError and "
                    f"check_connection reported success ({result.message!r})"
                )
            if not result.error_code:
                raise CheckFailedError(
                    f"with {which}, check_connection reported success=False without an error_code; "
                    "set error_code (e.g. 'AUTHENTICATION_FAILED')",
                    result.to_dict(),
                )
            return f"check_connection reported success=False ({result.error_code}): {result.message}"
        finally:
            self.close_quietly(instance)

    def check_connection(self) -> str:
        instance = self.construct(self.config)
        try:
            try:
                result = instance.check_connection()
            except DativoError as exc:
                self.observe(exc)
                raise CheckFailedError(
                    f"check_connection raised {describe_exception(exc)} with the valid config; report a "
                    "failed check as ConnectionTestResult(success=False, error_code=...) instead"
                ) from None
            except Exception as exc:
                raise CheckFailedError(
                    f"check_connection raised the untyped {describe_exception(exc)}; it must return a "
                    "ConnectionTestResult and never raise anything but a DativoError"
                ) from None
            if not isinstance(result, ConnectionTestResult):
                raise CheckFailedError(
                    f"check_connection returned a {type(result).__name__}, not a ConnectionTestResult", result
                )
            if result.success is not True:
                raise CheckFailedError(
                    f"check_connection reported success={result.success!r} with the valid config: "
                    f"{result.message} ({result.error_code}); fix the plugin or the config given to "
                    "the harness",
                    result.to_dict(),
                )
            if not isinstance(result.message, str):
                raise CheckFailedError("check_connection's result needs a message string", result.to_dict())
            return f"check_connection succeeded: {result.message}"
        finally:
            self.close_quietly(instance)
