"""A Griffe extension that lets the API reference render docstrings written with reStructuredText habits.

The packages' docstrings follow the Google style but keep habits that Markdown would render
badly: Sphinx roles (``:class:`State```), reStructuredText simple tables (rows between
``====  ====`` borders, which Markdown reads as headings), ``::`` before a literal block, and a
singular ``Example:`` heading, which Griffe reads as a plain admonition whose doctest output
(``[1, 2, 3]``) Markdown then takes for a link. This extension rewrites them when Griffe has
loaded a package, before mkdocstrings renders it: a role becomes inline code, linked to the
reference entry when it names something the package exports; a simple table becomes a pipe
table; ``::`` becomes ``:``; ``Example:`` becomes ``Examples:``, the section Griffe renders as
code. The source stays as it is.

mkdocs.yml loads it with ``extensions: [docs/_griffe/rst_to_markdown.py]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import griffe

__all__ = [
    "RstToMarkdown",
    "convert_example_headings",
    "convert_literal_markers",
    "convert_roles",
    "convert_simple_tables",
    "to_markdown",
]

_ROLE = re.compile(r":(?:py:)?(?P<role>[a-z]+):`(?P<body>[^`]+)`")
_TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^<>]+)>$")
_BORDER = re.compile(r"^\s*=+(?: +=+)+\s*$")
_MEMBER_ROLES = ("meth", "attr")

Linker = Callable[[str, str], "str | None"]
"""Given a role and its target, return the reference identifier to link to, or ``None``."""


def convert_roles(text: str, link: Linker | None = None) -> str:
    """Replace Sphinx roles with inline code, linked when ``link`` knows the target.

    Args:
        text: Docstring text.
        link: Returns the identifier of the reference entry for ``(role, target)``, or ``None``.

    Returns:
        The text with ``:class:`~a.b.C``` written as ``[`C`][identifier]`` or ```C```.
    """

    def replace(match: re.Match[str]) -> str:
        body = match.group("body").strip()
        titled = _TITLED.match(body)
        if titled:
            shown, target = titled.group("title"), titled.group("target")
        else:
            target = body.lstrip("~")
            shown = target.rsplit(".", 1)[-1] if body.startswith("~") else target
        identifier = link(match.group("role"), target) if link else None
        return f"[`{shown}`][{identifier}]" if identifier else f"`{shown}`"

    return _ROLE.sub(replace, text)


def _spans(border: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    starts = [start for start, _ in spans]
    cells = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(line)
        cells.append(line[start:end].strip())
    return cells


def _table_rows(lines: list[str], spans: list[tuple[int, int]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        cells = _cells(line, spans)
        if rows and not cells[0]:  # a continuation line: its first column is blank
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def _pipe_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def convert_simple_tables(text: str) -> str:
    """Replace reStructuredText simple tables (``===`` borders, one header row) with pipe tables.

    Args:
        text: Docstring text.

    Returns:
        The text with each complete simple table rewritten; anything else is unchanged.
    """
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        borders = [i for i in range(index, len(lines)) if _BORDER.match(lines[i])][:3]
        if len(borders) < 3 or borders[0] != index:
            out.append(lines[index])
            index += 1
            continue
        top, middle, bottom = borders
        spans = _spans(lines[top])
        header = _table_rows(lines[top + 1 : middle], spans)
        body = _table_rows(lines[middle + 1 : bottom], spans)
        if len(header) != 1:
            out.append(lines[index])
            index += 1
            continue
        if out and out[-1].strip():
            out.append("")
        out.append(_pipe_row(header[0]))
        out.append(_pipe_row(["---"] * len(spans)))
        out.extend(_pipe_row(row) for row in body)
        index = bottom + 1
    return "\n".join(out)


def convert_literal_markers(text: str) -> str:
    """Turn a paragraph's closing ``::`` into ``:`` (the indented block after it is already code).

    Args:
        text: Docstring text.

    Returns:
        The text without reStructuredText literal-block markers.
    """
    text = re.sub(r"(?m)^[ \t]*::[ \t]*$\n?", "", text)
    return re.sub(r"(?m)(\S)::[ \t]*$", r"\1:", text)


def convert_example_headings(text: str) -> str:
    """Turn a Google-style ``Example:`` section heading into ``Examples:``.

    Args:
        text: Docstring text.

    Returns:
        The text with each line that is only ``Example:`` renamed, indentation kept.
    """
    return re.sub(r"(?m)^([ \t]*)Example:[ \t]*$", r"\1Examples:", text)


def to_markdown(text: str, link: Linker | None = None) -> str:
    """Apply every conversion of this module to one docstring.

    Args:
        text: Docstring text.
        link: See :func:`convert_roles`.

    Returns:
        The Markdown text.
    """
    text = convert_example_headings(convert_literal_markers(convert_simple_tables(text)))
    return convert_roles(text, link)


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)  # type: ignore[arg-type]


def _linker(pkg: griffe.Module, owner: griffe.Object) -> Linker:
    exports = set(pkg.exports or ())
    owner_class = None
    if owner.is_class:
        owner_class = owner
    elif owner.parent is not None and owner.parent.is_class:
        owner_class = owner.parent

    def link(role: str, target: str) -> str | None:
        parts = target.removeprefix(f"{pkg.name}.").split(".")
        if role in _MEMBER_ROLES and len(parts) == 1 and owner_class is not None:
            if owner_class.name in exports and parts[0] in owner_class.members:
                return f"{pkg.name}.{owner_class.name}.{parts[0]}"
            return None
        if parts[0] not in exports or len(parts) > 2:
            return None
        if len(parts) == 2:
            exported: Any = pkg.members[parts[0]]
            if parts[1] not in exported.members:
                return None
        return f"{pkg.name}.{'.'.join(parts)}"

    return link


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of a loaded package with :func:`to_markdown`."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Convert the docstrings of ``pkg`` and everything it contains."""
        for obj in _objects(pkg):
            if obj.docstring is not None:
                obj.docstring.value = to_markdown(obj.docstring.value, _linker(pkg, obj))

    # Griffe 1.x calls the same hook by its earlier name; converting twice changes nothing.
    on_package_loaded = on_package
