"""Messages name a plugin by the reference the user wrote, never by its generated module name.

A plugin file is imported under a hidden module name (``dativo_plugin_<hash>``). Before this
was fixed, ``validate``, ``discover`` and ``plugins inspect`` printed it
(``dativo_plugin_172b07261a26.ItemsReader``), and a class that is not a reader showed as
``<class 'dativo_plugin_7f1….NotAReader'>`` with no fix.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from tests.conftest import require_backend

HIDDEN = re.compile(r"dativo_plugin_[0-9a-f]{12}")

PLUGIN = """\
from dativo_plugin_sdk import BaseReader, Column, ConnectionTestResult, DiscoveredStream, DiscoveryResult


class ItemsReader(BaseReader):
    __version__ = "1.0.0"

    def check_connection(self):
        return ConnectionTestResult(True, "ok")

    def discover(self):
        return DiscoveryResult([DiscoveredStream("items", [Column("id", "integer")])])

    def extract(self, state=None):
        yield [{"id": 1}]


class OldReader(ItemsReader):
    requires_sdk = ">=0.1,<0.2"


class NotAReader:
    pass
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "items.py").write_text(PLUGIN)
    return tmp_path


def _job(project: Path, cls: str, backend: str) -> Path:
    job = project / f"{cls}-{backend}.yaml"
    job.write_text(
        textwrap.dedent(
            f"""\
            tenant: acme
            name: items
            source:
              plugin: plugins/items.py:{cls}
              config: {{}}
            target:
              plugin: parquet
              config: {{path: ./out}}
            sandbox: {{backend: {backend}}}
            """
        )
    )
    return job


def _shown(result) -> str:
    return result.stdout + result.stderr


@pytest.mark.parametrize("backend", ["none", "process"])
def test_validate_and_discover_name_the_reference(project, run_cli, backend):
    require_backend(backend)
    for args in (["validate", "--config"], ["validate", "--json", "--config"]):
        result = run_cli(*args, str(_job(project, "ItemsReader", backend)), cwd=project)
        assert result.returncode == 0, _shown(result)
        assert not HIDDEN.search(_shown(result))
        assert "plugins/items.py:ItemsReader" in result.stdout
    data = json.loads(
        run_cli("validate", "--json", "--config", str(_job(project, "ItemsReader", backend))).stdout
    )
    source = next(step for step in data["steps"] if step["step"] == "source plugin")
    assert source["plugin"]["class_name"] == "plugins/items.py:ItemsReader"
    assert source["message"] == "plugins/items.py:ItemsReader 1.0.0 loads"

    for extra in ([], ["--json"]):
        found = run_cli(
            "discover", "--plugin", "plugins/items.py:ItemsReader", "--sandbox", backend, *extra, cwd=project
        )
        assert found.returncode == 0, _shown(found)
        assert not HIDDEN.search(_shown(found))
        assert "plugins/items.py:ItemsReader" in found.stdout
    human = run_cli("discover", "--plugin", "plugins/items.py:ItemsReader", "--sandbox", backend, cwd=project)
    assert human.stdout.splitlines()[0] == "plugins/items.py:ItemsReader 1.0.0"


@pytest.mark.parametrize("backend", ["none", "process"])
def test_a_class_that_is_not_a_plugin_is_named_with_the_fix(project, run_cli, backend):
    require_backend(backend)
    ref = "plugins/items.py:NotAReader"
    validate = run_cli("validate", "--config", str(_job(project, "NotAReader", backend)), cwd=project)
    discover = run_cli("discover", "--plugin", ref, "--sandbox", backend, cwd=project)
    inspect = run_cli("plugins", "inspect", ref, cwd=project)
    for result in (validate, discover, inspect):
        shown = " ".join(_shown(result).replace("│", " ").split())  # The table wraps long messages.
        assert result.returncode == 2, shown
        assert not HIDDEN.search(shown)
        assert "<class" not in shown
        assert f"'{ref}' names class NotAReader, which is not a subclass of" in shown
        assert "declare it as 'class NotAReader(BaseReader)'" in shown
        assert "Traceback" not in shown


def test_plugins_inspect_names_the_reference(project, run_cli):
    for args in ([], ["--json"]):
        result = run_cli("plugins", "inspect", "plugins/items.py:ItemsReader", *args, cwd=project)
        assert result.returncode == 0, _shown(result)
        assert not HIDDEN.search(_shown(result))
        assert "plugins/items.py:ItemsReader" in result.stdout
    data = json.loads(
        run_cli("plugins", "inspect", "plugins/items.py:ItemsReader", "--json", cwd=project).stdout
    )
    assert data["class_name"] == "plugins/items.py:ItemsReader"

    old = run_cli("plugins", "inspect", "plugins/items.py:OldReader", "--json", cwd=project)
    assert old.returncode == 2
    assert not HIDDEN.search(_shown(old))
    assert json.loads(old.stdout)["incompatibility"].startswith(
        "'plugins/items.py:OldReader' requires dativo-plugin-sdk >=0.1,<0.2"
    )


def test_the_sdk_check_names_a_plugin_file_by_its_file(tmp_path):
    from dativo_plugin_sdk import PluginVersionError, check_compatibility
    from dativo_plugin_sdk._loading import PluginRef, load_plugin_class, resolve_plugin

    (tmp_path / "items.py").write_text(PLUGIN)
    cls = resolve_plugin(PluginRef.parse("items.py:OldReader", base_dir=tmp_path))
    with pytest.raises(PluginVersionError) as raised:
        check_compatibility(cls)
    assert not HIDDEN.search(raised.value.message)
    assert raised.value.message.startswith(f"{tmp_path / 'items.py'}:OldReader requires")
    with pytest.raises(PluginVersionError) as loaded:
        load_plugin_class(PluginRef.parse("items.py:OldReader", base_dir=tmp_path))
    assert loaded.value.message.startswith("'items.py:OldReader' requires")
    assert loaded.value.details["plugin"] == "items.py:OldReader"
