"""Loading plugin classes from references and configs from files, with clear errors."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from dativo_plugin_sdk import ConfigurationError
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
        ("dativo_testkit.MockReader", "no plugin named 'dativo_testkit.MockReader'"),
        ("dativo_testkit:", "is not understood"),
        ("dativo_testkit:NoSuchReader", "has no class 'NoSuchReader'"),
        ("dativo_testkit:__version__", "names a str, not a class"),
        ("no_such_package_xyz.mod:Reader", "is not installed or not importable"),
        ("missing/plugin.py:Reader", "does not exist"),
    ],
)
def test_bad_references_are_configuration_errors(ref: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_plugin_class(ref)


def test_a_file_that_fails_to_import_names_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken_plugin.py"
    broken.write_text('"""A plugin."""\nimport no_such_module_xyz\n')
    with pytest.raises(ConfigurationError) as raised:
        load_plugin_class(f"{broken}:Reader")
    assert "ModuleNotFoundError: No module named 'no_such_module_xyz'" in raised.value.message
    assert f"at {broken}, line 2" in raised.value.message
    assert raised.value.details["line"] == 2
    assert not re.search("dativo_plugin_[0-9a-f]{12}", raised.value.message)
    assert not [name for name in sys.modules if "broken_plugin" in name]


def test_a_file_with_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "syntax_plugin.py"
    broken.write_text("x = 1\ndef oops(:\n")
    with pytest.raises(ConfigurationError) as raised:
        load_plugin_class(f"{broken}:Reader")
    assert "SyntaxError: " in raised.value.message
    assert raised.value.message.endswith(f"at {broken}, line 2; fix the syntax error")


def test_a_file_plugin_imports_modules_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / "my_plugin"
    folder.mkdir()
    (folder / "helpers_for_testkit_xyz.py").write_text("ROWS = [{'id': 1}]\n")
    (folder / "plugin.py").write_text(
        "from dativo_plugin_sdk import BaseReader\n"
        "from helpers_for_testkit_xyz import ROWS\n"
        "class Reader(BaseReader):\n"
        "    def extract(self, state=None):\n"
        "        yield list(ROWS)\n"
    )
    assert load_plugin_class("my_plugin/plugin.py:Reader", base_dir=tmp_path).__name__ == "Reader"


def test_built_in_names_come_from_published_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "dativo_testkit._plugin_loading.published_builtins", lambda: {"mock": "dativo_testkit:MockReader"}
    )
    assert load_plugin_class("mock") is MockReader


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
