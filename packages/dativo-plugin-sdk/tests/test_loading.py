"""The shared plugin loader: references parse the same everywhere and bad ones fail as configuration errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from dativo_plugin_sdk import BaseReader, ConfigurationError, PluginError
from dativo_plugin_sdk._loading import (
    FILE_MODULE_PREFIX,
    PluginRef,
    load_plugin_class,
    plugin_file,
    resolve_plugin,
)
from dativo_plugin_sdk._plugin_info import PluginInfo, plugin_info

READER = (
    "from dativo_plugin_sdk import BaseReader\n\n"
    "class Reader(BaseReader):\n"
    "    def extract(self, state=None):\n"
    "        yield []\n"
)
BUILTINS = {"mock": "dativo_plugin_sdk:BaseReader"}


def _plugin(folder: Path, text: str = READER, name: str = "plugin.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "kind", "target", "class_name"),
    [
        ("mock", "builtin", "dativo_plugin_sdk", "BaseReader"),
        ("pkg.mod:Outer.Inner", "module", "pkg.mod", "Outer.Inner"),
        ("acme-numbers", "entry_point", "acme-numbers", ""),
    ],
)
def test_the_four_forms(text: str, kind: str, target: str, class_name: str) -> None:
    ref = PluginRef.parse(text, builtins=BUILTINS)
    assert (ref.kind, ref.target, ref.class_name) == (kind, target, class_name)
    assert PluginRef.from_dict(ref.to_dict()) == ref


def test_a_file_reference_is_relative_to_the_base_folder(tmp_path: Path) -> None:
    ref = PluginRef.parse("plugins/r.py:Reader", base_dir=tmp_path)
    assert ref.kind == "file"
    assert ref.target == str((tmp_path / "plugins" / "r.py").resolve())
    assert ref.plugin_dir == (tmp_path / "plugins").resolve()


def test_a_built_in_name_needs_the_callers_mapping() -> None:
    assert PluginRef.parse("mock").kind == "entry_point"


@pytest.mark.parametrize("text", ["", "  ", "a b", "x.py:not a class"])
def test_malformed_references(text: str) -> None:
    with pytest.raises(ConfigurationError):
        PluginRef.parse(text)


def test_a_file_plugin_imports_its_siblings_and_loads_once(tmp_path: Path) -> None:
    folder = tmp_path / "my_plugin"
    _plugin(folder, "VALUE = 7\n", name="sdk_loading_helpers_xyz.py")
    path = _plugin(folder, "from sdk_loading_helpers_xyz import VALUE\n" + READER)
    ref = PluginRef.parse(f"{path}:Reader")
    cls = load_plugin_class(ref)
    assert load_plugin_class(ref) is cls
    assert cls.__module__.startswith(FILE_MODULE_PREFIX)
    assert plugin_file(cls) == str(path.resolve())
    assert plugin_file(BaseReader) is None


def _message(ref: PluginRef) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        load_plugin_class(ref)
    assert not re.search(FILE_MODULE_PREFIX + "[0-9a-f]{12}", raised.value.message)
    return raised.value


def test_a_missing_file(tmp_path: Path) -> None:
    error = _message(PluginRef.parse(f"{tmp_path}/nope.py:Reader"))
    assert "does not exist; fix the path" in error.message
    assert error.details["file"] == str(tmp_path / "nope.py")


def test_an_unknown_class_lists_the_plugin_classes_there(tmp_path: Path) -> None:
    path = _plugin(tmp_path)
    error = _message(PluginRef.parse(f"{path}:Raeder"))
    assert f"file {str(path)!r} has no class 'Raeder'; plugin classes it defines: Reader" in error.message


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = _plugin(tmp_path, READER + "\ndef broken(:\n")
    error = _message(PluginRef.parse(f"{path}:Reader"))
    assert error.message.endswith(f"at {path}, line 7; fix the syntax error")
    assert (error.details["file"], error.details["line"]) == (str(path), 7)


def test_an_error_at_import_names_the_plugins_own_line(tmp_path: Path) -> None:
    _plugin(tmp_path, "raise ImportError('the driver is missing')\n", name="sdk_loading_driver_xyz.py")
    path = _plugin(tmp_path, "import os\nimport sdk_loading_driver_xyz\n" + READER)
    error = _message(PluginRef.parse(f"{path}:Reader"))
    assert "ImportError: the driver is missing" in error.message
    assert f"at {path}, line 2;" in error.message
    assert error.details["exception_type"] == "ImportError"


def test_a_name_error_at_import_never_shows_the_hidden_module_name(tmp_path: Path) -> None:
    path = _plugin(tmp_path, "import sys\nsys.modules[__name__].missing\n")
    error = _message(PluginRef.parse(f"{path}:Reader"))
    assert "module 'plugin.py' has no attribute 'missing'" in error.message


def test_a_module_that_is_not_installed() -> None:
    error = _message(PluginRef.parse("no_such_package_xyz.readers:Reader"))
    assert "is not installed or not importable" in error.message


def test_an_unknown_entry_point_lists_the_known_names() -> None:
    error = _message(PluginRef.parse("no-such-plugin-xyz"))
    assert "no plugin named 'no-such-plugin-xyz'" in error.message
    with pytest.raises(ConfigurationError, match=r"Known plugins: .*mock"):
        load_plugin_class(PluginRef.parse("no-such-plugin-xyz"), builtins=BUILTINS)


def test_what_is_not_a_plugin_class(tmp_path: Path) -> None:
    path = _plugin(tmp_path, READER + "NUMBER = 3\nclass Abstract(BaseReader):\n    pass\n")
    assert resolve_plugin(PluginRef.parse(f"{path}:NUMBER")) == 3
    with pytest.raises(ConfigurationError, match="not a subclass"):
        load_plugin_class(PluginRef.parse(f"{path}:NUMBER"))
    with pytest.raises(PluginError, match="is abstract: implement extract"):
        load_plugin_class(PluginRef.parse(f"{path}:Abstract"))


def test_plugin_info_round_trips(tmp_path: Path) -> None:
    ref = PluginRef.parse(f"{_plugin(tmp_path)}:Reader")
    info = plugin_info(load_plugin_class(ref), ref)
    assert info.role == "reader"
    assert PluginInfo.from_dict(info.to_dict()) == info


@pytest.fixture(autouse=True)
def _forget_sibling_modules() -> object:
    before = set(sys.modules)
    path = list(sys.path)
    yield None
    for name in set(sys.modules) - before:
        if name.startswith(("sdk_loading_", FILE_MODULE_PREFIX)):
            del sys.modules[name]
    sys.path[:] = path
