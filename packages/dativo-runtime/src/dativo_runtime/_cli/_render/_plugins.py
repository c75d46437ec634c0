"""How a person sees the plugin list and one plugin's description."""

from __future__ import annotations

import json
from typing import Any

from dativo_runtime._cli._render._console import console, escaped_text

__all__ = ["render_plugin", "render_plugins"]


def render_plugins(plugins: list[dict[str, Any]]) -> None:
    """Print one row per plugin: name, kind, target, distribution."""
    from rich.table import Table

    table = Table(title="plugins", title_justify="left")
    for column in ("name", "kind", "target", "distribution"):
        table.add_column(column)
    for entry in plugins:
        table.add_row(
            escaped_text(entry["name"]),
            escaped_text(entry["kind"]),
            escaped_text(entry["target"]),
            escaped_text(entry.get("distribution") or ""),
        )
    console().print(table)


def render_plugin(data: dict[str, Any]) -> None:
    """Print a plugin's version, ``requires_sdk``, capabilities and compatibility with this SDK."""
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if data["compatible"]:
        compat = escaped_text("yes", style="green")
    else:
        compat = Text.assemble(escaped_text("no", style="red"), escaped_text(f": {data['incompatibility']}"))
    rows = [
        ("plugin", data["class_name"]),
        ("role", data["role"]),
        ("version", data.get("plugin_version") or "(not declared)"),
        ("requires_sdk", data.get("requires_sdk") or ">=1.0,<2 (default)"),
        ("installed SDK", data["sdk_version"]),
        ("capabilities", ", ".join(data["capabilities"]) or "(defaults only)"),
    ]
    for key, value in rows:
        table.add_row(key, escaped_text(value))
    table.add_row("compatible", compat)
    console().print(table)
    _render_config_spec(data.get("config_schema"), data.get("secrets") or [])


def _type_of(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if "enum" in schema and isinstance(schema["enum"], list):
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    return str(kind or ("$ref" if "$ref" in schema else ""))


def _render_config_spec(config_schema: dict[str, Any] | None, secrets: list[str]) -> None:
    """Print the plugin's config keys: type, required, secret, default, description."""
    from rich.table import Table

    out = console()
    if config_schema is None:
        out.print(escaped_text("config spec: none declared (config_schema); the config is passed as is"))
        return
    declared = config_schema.get("properties")
    properties: dict[str, Any] = declared if isinstance(declared, dict) else {}
    required = set(config_schema.get("required") or [])
    closed = config_schema.get("additionalProperties") is False
    title = "config spec (config_schema)" + ("; no other keys" if closed else "; other keys allowed")
    table = Table(title=title, title_justify="left")
    for column in ("key", "type", "required", "secret", "default", "description"):
        table.add_column(column)
    for key, schema in properties.items():
        sub = schema if isinstance(schema, dict) else {}
        table.add_row(
            escaped_text(key),
            escaped_text(_type_of(sub)),
            "yes" if key in required else "",
            "yes" if key in secrets else "",
            escaped_text("" if "default" not in sub or key in secrets else json.dumps(sub["default"])),
            escaped_text(sub.get("description") or ""),
        )
    out.print(table)
    nested = [path for path in secrets if path not in properties]
    if nested:
        out.print(escaped_text(f"nested secrets: {', '.join(nested)}"))
    out.print(escaped_text("the whole JSON Schema: dativo-run plugins inspect REF --json"))
