"""The documentation site is complete and builds: every page is reachable, the API reference covers
every public name, and (where MkDocs is installed) ``mkdocs build --strict`` passes offline.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import dativo_plugin_sdk

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
DIRECTIVE = re.compile(r"^::: (?P<identifier>[\w.]+)[ \t]*\n(?P<options>(?:[ \t]+.*\n?)*)", re.M)
MARKDOWN_LINK = re.compile(r"\]\((?P<target>[^)#\s]+\.md)(?:#[^)]*)?\)")
# Plugins that fetch from the network at build time (social cards, the privacy plugin's downloads).
NETWORK_PLUGINS = {
    "social",
    "privacy",
    "material/social",
    "material/privacy",
    "optimize",
    "material/optimize",
}


class _MkDocsLoader(yaml.SafeLoader):
    """Reads mkdocs.yml, keeping ``!!python/name:...`` and ``!relative`` tags as plain strings."""


_MkDocsLoader.add_multi_constructor(
    "tag:yaml.org,2002:python/name:", lambda loader, suffix, node: f"python/name:{suffix}"
)
_MkDocsLoader.add_constructor("!relative", lambda loader, node: f"!relative {loader.construct_scalar(node)}")


def _config() -> dict[str, Any]:
    config = yaml.load(MKDOCS_YML.read_text(encoding="utf-8"), Loader=_MkDocsLoader)
    assert isinstance(config, dict)
    return config


def _nav_pages(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def _directives(page: str) -> list[tuple[str, dict[str, Any]]]:
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for match in DIRECTIVE.finditer(text):
        options = yaml.safe_load(match.group("options")) if match.group("options").strip() else {}
        found.append((match.group("identifier"), (options or {}).get("options", {})))
    return found


# What the site contains --------------------------------------------------------------------


def test_nav_names_existing_pages() -> None:
    missing = [page for page in _nav_pages(_config()["nav"]) if not (DOCS / page).is_file()]
    assert not missing, f"pages in the mkdocs.yml nav that do not exist under docs/: {missing}"


def test_every_page_is_in_the_nav() -> None:
    in_nav = set(_nav_pages(_config()["nav"]))
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    orphans = sorted(pages - in_nav)
    assert not orphans, f"pages no reader can reach from the navigation; add them to mkdocs.yml: {orphans}"


def test_home_page_links_every_guide() -> None:
    linked = set(MARKDOWN_LINK.findall((DOCS / "index.md").read_text(encoding="utf-8")))
    expected = set(_nav_pages(_config()["nav"])) - {"index.md"}
    assert not expected - linked, f"docs/index.md does not link to {sorted(expected - linked)}"


def test_build_needs_no_network() -> None:
    config = _config()
    assert config["theme"].get("font") is False, "theme.font must be false: Material would link Google Fonts"
    plugins = {next(iter(p)) if isinstance(p, dict) else p for p in config.get("plugins", [])}
    assert not plugins & NETWORK_PLUGINS, (
        f"plugins that need the network at build time: {plugins & NETWORK_PLUGINS}"
    )
    assert config.get("strict") is True


# The API reference -------------------------------------------------------------------------


def test_sdk_reference_documents_every_public_name_once() -> None:
    identifiers = [identifier for identifier, _ in _directives("reference/sdk.md")]
    names = [identifier.removeprefix("dativo_plugin_sdk.") for identifier in identifiers]
    assert all(i.startswith("dativo_plugin_sdk.") for i in identifiers), identifiers
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"documented twice: {duplicates}"
    missing = sorted(set(dativo_plugin_sdk.__all__) - set(names))
    assert not missing, f"public SDK names missing from docs/reference/sdk.md: {missing}"
    unknown = sorted(set(names) - set(dativo_plugin_sdk.__all__))
    assert not unknown, f"docs/reference/sdk.md documents names the SDK does not export: {unknown}"


@pytest.mark.parametrize(
    ("page", "package"),
    [("reference/testkit.md", "dativo_testkit"), ("reference/runtime.md", "dativo_runtime")],
)
def test_package_reference_renders_the_whole_public_surface(page: str, package: str) -> None:
    # The whole package, members taken from its __all__: a new export appears without editing the page.
    directives = dict(_directives(page))
    assert package in directives, f"{page} has no '::: {package}' directive"
    assert "members" not in directives[package], f"{page} restricts the members of {package}"
    assert directives[package].get("filters", "public") == "public"


# The Griffe extension that adapts reStructuredText habits in docstrings ----------------------


@pytest.fixture(scope="module")
def rst_to_markdown() -> ModuleType:
    pytest.importorskip("griffe", reason="griffe comes with mkdocstrings (docs/requirements.txt)")
    spec = importlib.util.spec_from_file_location("rst_to_markdown", DOCS / "_griffe" / "rst_to_markdown.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_roles_become_code_or_links(rst_to_markdown: ModuleType) -> None:
    def link(role: str, target: str) -> str | None:
        return f"pkg.{target}" if target == "State" else None

    text = "Use :class:`State`, :func:`~packaging.specifiers.SpecifierSet` and :meth:`to_dict`."
    assert rst_to_markdown.convert_roles(text, link) == (
        "Use [`State`][pkg.State], `SpecifierSet` and `to_dict`."
    )
    assert rst_to_markdown.convert_roles(":class:`the state <State>`", link) == "[`the state`][pkg.State]"


def test_simple_tables_become_pipe_tables(rst_to_markdown: ModuleType) -> None:
    text = "\n".join(
        [
            "Codes:",
            "",
            "====  =========  ====================",
            "code  name       meaning",
            "====  =========  ====================",
            "0     OK         success",
            "2     USAGE      a usage error (a bad",
            "                 job file)",
            "====  =========  ====================",
            "",
            "After.",
        ]
    )
    assert rst_to_markdown.convert_simple_tables(text).split("\n") == [
        "Codes:",
        "",
        "| code | name | meaning |",
        "| --- | --- | --- |",
        "| 0 | OK | success |",
        "| 2 | USAGE | a usage error (a bad job file) |",
        "",
        "After.",
    ]


def test_literal_markers_and_example_headings(rst_to_markdown: ModuleType) -> None:
    text = "The tree::\n\n    a\n    b\n\nExample:\n    >>> f()\n    [1, 2, 3]\n"
    assert (
        rst_to_markdown.to_markdown(text)
        == "The tree:\n\n    a\n    b\n\nExamples:\n    >>> f()\n    [1, 2, 3]\n"
    )


# The build -----------------------------------------------------------------------------------


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """`mkdocs build --strict` passes, and the built reference has an entry for every public name."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip("mkdocs is not installed here; `nox -s docs` installs docs/requirements.txt and builds")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-5000:]

    for package, page in (
        ("dativo_plugin_sdk", "sdk"),
        ("dativo_testkit", "testkit"),
        ("dativo_runtime", "runtime"),
    ):
        html = (site / "reference" / page / "index.html").read_text(encoding="utf-8")
        exported = [n for n in importlib.import_module(package).__all__ if not n.startswith("__")]
        missing = [n for n in exported if f'id="{package}.{n}"' not in html]
        assert not missing, (
            f"{package} names without an entry in the built reference (a docstring?): {missing}"
        )
        leftovers = sorted(set(re.findall(r":(?:class|func|meth|data|attr|exc|mod):`", html)))
        assert not leftovers, f"unconverted Sphinx roles in reference/{page}: {leftovers}"

    assert '<pre class="mermaid">' in (site / "decision-tree" / "index.html").read_text(encoding="utf-8")
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    first_heading = re.search(r"^# (.+)$", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert first_heading is not None
    assert first_heading.group(1) in changelog
