"""What can be wrong with a job file, and how it is told: the rules across keys, and one error for all.

Every problem is a field path (``source.config.path``), what is wrong with it and the fix;
:func:`render_problems` joins them into one :class:`ConfigurationError` whose message
names the file and whose ``details`` hold the same as data.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._secrets import REDACTOR
from dativo_runtime.connectors._registry import ConnectorSpec, builtin_connector, builtin_names

if TYPE_CHECKING:
    from dativo_runtime._jobs._model import JobConfig

__all__ = ["builtin_of_kind", "consistency_problems", "render_problems", "render_validation_error"]


def consistency_problems(job: JobConfig) -> list[dict[str, str]]:
    """Rules that span several keys, reported with the field to fix.

    The built-in connectors are asked, through the registry, which key names their
    location and which incremental strategies they keep state for.

    Args:
        job: A job whose keys are each valid.

    Returns:
        The problems, as :func:`render_problems` takes them (none for a consistent job).
    """
    problems = []
    source, target = job.source, job.target
    reader = builtin_of_kind(source.plugin, "reader")
    writer = builtin_of_kind(target.plugin, "writer")
    strategy = source.incremental.strategy if source.incremental is not None else None
    if strategy and (reader is None or strategy not in reader.incremental_strategies):
        keeping = _joined(
            builtin_names("reader", where=lambda spec: bool(spec.incremental_strategies)), "and"
        )
        problems.append(
            {
                "field": "source.incremental.strategy",
                "problem": f"applies to the built-in {keeping} readers only, not to {source.plugin!r}",
                "fix": "omit it: the plugin keeps its own state",
            }
        )
    for role, spec, config in (("source", reader, source.config), ("target", writer, target.config)):
        key = spec.location_option if spec is not None else None
        if spec is not None and key is not None and not config.get(key):
            problems.append(
                {
                    "field": f"{role}.config.{key}",
                    "problem": f"is required by the {spec.name} {spec.kind}",
                    "fix": spec.options.location_fix if spec.options is not None else "",
                }
            )
    problems.extend(_read_only_path_problems(job))
    if job.validation == "quarantine" and job.quarantine is None and not _has_location(writer):
        located = _joined(builtin_names("writer", where=_has_location), "or")
        problems.append(
            {
                "field": "quarantine.path",
                "problem": f"is required when validation is 'quarantine' and the target is not {located}",
                "fix": "add quarantine: {path: some/folder}",
            }
        )
    return problems


def _read_only_path_problems(job: JobConfig) -> list[dict[str, str]]:
    """Each ``sandbox.read_only_paths`` entry must be a local path that exists."""
    from dativo_runtime._jobs._model import is_remote_uri

    problems = []
    paths = zip(job.sandbox.read_only_paths, job.read_only_paths(), strict=True)
    for index, (item, path) in enumerate(paths):
        field = f"sandbox.read_only_paths[{index}]"
        if is_remote_uri(item):
            problems.append(
                {"field": field, "problem": f"is a URI ({item!r})", "fix": "name a local file or folder"}
            )
        elif not path.exists():
            problems.append(
                {
                    "field": field,
                    "problem": f"names {item!r}, which does not exist ({str(path)!r})",
                    "fix": "create it, or correct the path (relative paths start at the job file's folder)",
                }
            )
    return problems


def builtin_of_kind(plugin: str, kind: Literal["reader", "writer"]) -> ConnectorSpec | None:
    """The built-in connector a job's ``plugin`` names, if it is one of that kind.

    Args:
        plugin: ``source.plugin`` or ``target.plugin``.
        kind: ``reader`` for a source, ``writer`` for a target.

    Returns:
        Its spec, or ``None`` for a plugin reference or a built-in of the other kind.
    """
    spec = builtin_connector(plugin)
    return spec if spec is not None and spec.kind == kind else None


def _has_location(spec: ConnectorSpec | None) -> bool:
    return spec is not None and spec.location_option is not None


def _joined(names: list[str], word: str) -> str:
    return f"{', '.join(names[:-1])} {word} {names[-1]}" if len(names) > 1 else "".join(names)


def render_problems(problems: list[dict[str, str]], shown: str) -> ConfigurationError:
    """Turn problems (``field``, ``problem``, ``fix``) into one :class:`ConfigurationError`.

    Args:
        problems: What is wrong, one mapping a field.
        shown: The job file, as messages name it.

    Returns:
        The error to raise: one line naming the file, each field, its problem and its fix,
        with the problems as data in ``details["errors"]``.
    """
    sentences = []
    for problem in problems:
        field = problem["field"]
        lead = problem["problem"] if field == "(top level)" else f"`{field}` {problem['problem']}"
        sentences.append(f"{lead}; {problem['fix']}." if problem["fix"] else f"{lead}.")
    count = len(problems)
    header = f"job file {shown!r} is invalid ({count} problem{'s' if count != 1 else ''}): "
    return ConfigurationError(
        header + " ".join(sentences),
        details={"file": shown, "errors": REDACTOR.redact(problems)},
    )


# Pydantic's errors ---------------------------------------------------------------------


def _location(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _unwrap(annotation: Any) -> Any:
    """Return the model class inside ``X | None``, ``list[X]``, ``Annotated[X, ...]``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(root: type[BaseModel], error: Mapping[str, Any]) -> tuple[str, str]:
    kind = error["type"]
    loc = tuple(error["loc"])
    given = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        allowed = _keys_of(parent) if parent else []
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        return (
            "is not a known key",
            f"{hint}remove or rename it; allowed keys here: {', '.join(allowed)}",
        )
    if kind == "missing":
        model = _model_at(root, loc)
        needs = f" (with keys: {', '.join(_keys_of(model))})" if model else ""
        return "is required but missing", f"add it{needs}"
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        return f"is {given!r}", f"use one of {expected}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return (
            f"must be a mapping of keys, got {type(given).__name__} {given!r}",
            "write it as 'key: value' lines",
        )
    if kind == "list_type":
        return f"must be a list, got {type(given).__name__}", "write it as '- item' lines"
    if kind == "string_pattern_mismatch":
        return (
            f"is {given!r}",
            "use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if kind.endswith(("_parsing", "_type")):
        return f"is {given!r}: {message}", "fix the value's type"
    if kind == "value_error":
        return f"is invalid: {message}", ""
    return f"is {given!r}: {message}", "fix the value"


def render_validation_error(
    exc: PydanticValidationError, shown: str, root: type[BaseModel]
) -> ConfigurationError:
    """Turn pydantic's errors into one :class:`ConfigurationError` naming each field and its fix.

    Args:
        exc: What validating the job raised.
        shown: The job file, as messages name it.
        root: The model that was validated (its keys are offered for unknown ones).

    Returns:
        The error to raise.
    """
    problems = []
    for error in exc.errors(include_url=False):
        problem, fix = _describe(root, error)
        problems.append({"field": _location(error["loc"]), "problem": problem, "fix": fix})
    return render_problems(problems, shown)
