"""How a person sees the plugin list and one plugin's description."""

from __future__ import annotations

from typing import Any

from dativo_runtime._cli._render._console import console

__all__ = ["render_plugin", "render_plugins"]


def render_plugins(plugins: list[dict[str, Any]]) -> None:
    """Print one row per plugin: name, kind, target, distribution."""
    from rich.table import Table

    table = Table(title="plugins", title_justify="left")
    for column in ("name", "kind", "target", "distribution"):
        table.add_column(column)
    for entry in plugins:
        table.add_row(entry["name"], entry["kind"], entry["target"], entry.get("distribution") or "")
    console().print(table)


def render_plugin(data: dict[str, Any]) -> None:
    """Print a plugin's version, ``requires_sdk``, capabilities and compatibility with this SDK."""
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    compat = "[green]yes[/green]" if data["compatible"] else f"[red]no[/red]: {data['incompatibility']}"
    rows = [
        ("plugin", data["class_name"]),
        ("role", data["role"]),
        ("version", data.get("plugin_version") or "(not declared)"),
        ("requires_sdk", data.get("requires_sdk") or ">=1.0,<2 (default)"),
        ("installed SDK", data["sdk_version"]),
        ("capabilities", ", ".join(data["capabilities"]) or "(defaults only)"),
    ]
    for key, value in rows:
        table.add_row(key, Text(str(value)))
    table.add_row("compatible", compat)
    console().print(table)
