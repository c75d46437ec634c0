"""Loading plugin classes from references and configs from files, with clear errors."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_testkit import MockReader, load_config_file, load_plugin_class, load_schema_file


def test_module_reference() -> None:
    assert load_plugin_class("dativo_testkit:MockReader") is MockReader


def test_file_reference_loads_once(plugins_dir: Path) -> None:
    ref = f"{plugins_dir / 'broken_readers.py'}:BufferedReader"
    cls = load_plugin_class(ref)
    assert cls.__name__ == "BufferedReader"
    assert load_plugin_class(ref) is cls
    assert load_plugin_class(f"{plugins_dir / 'broken_readers.py'}:NotAReader").__module__ == cls.__module__


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("dativo_testkit.MockReader", "must look like"),
        ("dativo_testkit:", "must look like"),
        ("dativo_testkit:NoSuchReader", "has no attribute 'NoSuchReader'"),
        ("dativo_testkit:__version__", "is a str, not a class"),
        ("no_such_package_xyz.mod:Reader", "cannot import module"),
        ("missing/plugin.py:Reader", "no such file"),
    ],
)
def test_bad_references(ref: str, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        load_plugin_class(ref)


def test_a_file_that_fails_to_import(tmp_path: Path) -> None:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text("import no_such_module_xyz\n")
    with pytest.raises(PluginError, match="ModuleNotFoundError"):
        load_plugin_class(f"{broken}:Reader")
    assert not [name for name in sys.modules if "broken_plugin" in name]


def test_json_and_yaml_configs(tmp_path: Path) -> None:
    pytest.importorskip("yaml", reason="PyYAML (optional: dativo-testkit[yaml]) is not installed")
    (tmp_path / "c.json").write_text('{"records": 5}')
    (tmp_path / "c.yaml").write_text("records: 5\n")
    assert load_config_file(tmp_path / "c.json") == load_config_file(tmp_path / "c.yaml") == {"records": 5}


def test_yaml_without_pyyaml_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    (tmp_path / "c.yml").write_text("records: 5\n")
    with pytest.raises(ConfigurationError, match="PyYAML is not installed: pip install pyyaml"):
        load_config_file(tmp_path / "c.yml")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.json", '{"records": 5,}', "is not valid JSON (line 1, column 15"),
        ("c.json", "[1]", "must hold a mapping"),
        pytest.param(
            "c.yaml",
            "a: [",
            "is not valid YAML",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("yaml") is None, reason="PyYAML (optional) is not installed"
            ),
        ),
        ("missing.json", None, "cannot read config file"),
    ],
)
def test_bad_config_files(tmp_path: Path, name: str, text: str | None, message: str) -> None:
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        load_config_file(tmp_path / name)
    assert message in raised.value.message


def test_schema_files(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"columns": [{"name": "id", "type": "integer", "nullable": false}]}')
    (schema,) = load_schema_file(tmp_path / "s.json")
    assert schema.name == "id"
    assert not schema.nullable
    (tmp_path / "bad.json").write_text('[{"name": "id", "type": "uuid"}]')
    with pytest.raises(ConfigurationError, match="unknown column type 'uuid'"):
        load_schema_file(tmp_path / "bad.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(ConfigurationError, match="non-empty list"):
        load_schema_file(tmp_path / "empty.json")
