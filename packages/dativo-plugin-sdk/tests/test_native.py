"""Native library references (``path/libx.so:create_reader``): parsed and turned into a reader class without loading.

Building and running real libraries is in tests/test_native_plugins.py; here no library is
ever loaded successfully (the "library" is a text file, which the dynamic loader refuses).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dativo_plugin_sdk import BaseReader, BaseWriter, ColumnType, ConfigurationError
from dativo_plugin_sdk._loading import PluginRef, load_plugin_class, resolve_plugin
from dativo_plugin_sdk._native import NativeLibraryReader, _columns_of
from dativo_plugin_sdk._plugin_info import plugin_info
from dativo_plugin_sdk._plugin_names import plugin_display_name


@pytest.fixture
def not_a_library(tmp_path: Path) -> Path:
    (tmp_path / "libs").mkdir()
    path = tmp_path / "libs" / "libitems.so"
    path.write_text("not an ELF file: loading it fails, so the tests prove nothing loads it early\n")
    return path


def test_a_library_reference_parses_to_a_native_reference(tmp_path: Path, not_a_library: Path) -> None:
    ref = PluginRef.parse("libs/libitems.so:create_reader", base_dir=tmp_path)
    assert (ref.kind, ref.target, ref.class_name) == ("native", str(not_a_library), "create_reader")
    assert ref.plugin_dir == not_a_library.parent  # what a sandbox mounts
    assert PluginRef.from_dict(ref.to_dict()) == ref
    # Without the native form, 'libitems.so:create_reader' would read as module 'libitems.so'.
    assert PluginRef.parse("libitems.so:create_reader", base_dir=tmp_path).kind == "native"


def test_a_bad_symbol_is_refused_when_parsing() -> None:
    with pytest.raises(ConfigurationError, match="is not the name of a C function"):
        PluginRef.parse("libs/libitems.so:create-reader")


def test_resolving_makes_a_reader_class_without_loading_the_library(
    tmp_path: Path, not_a_library: Path
) -> None:
    ref = PluginRef.parse("libs/libitems.so:create_reader", base_dir=tmp_path)
    cls = load_plugin_class(ref, expected=BaseReader)
    assert issubclass(cls, NativeLibraryReader)
    assert resolve_plugin(ref) is cls  # one class per library and symbol
    assert (cls.library_path, cls.constructor_symbol, cls.reference) == (
        str(not_a_library),
        "create_reader",
        "libs/libitems.so:create_reader",
    )
    info = plugin_info(cls, ref)
    assert (info.role, info.class_name) == ("reader", "libs/libitems.so:create_reader")
    assert {"check_connection", "discover"} <= set(info.capabilities)
    assert plugin_display_name(cls) == "libs/libitems.so:create_reader"
    # Only constructing a reader loads the library.
    with pytest.raises(ConfigurationError, match=r"native library '.*libitems\.so' .* cannot be loaded"):
        cls({"count": 1})


def test_a_native_library_is_never_a_writer(tmp_path: Path, not_a_library: Path) -> None:
    ref = PluginRef.parse("libs/libitems.so:create_reader", base_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="cannot be used as a target"):
        load_plugin_class(ref, expected=BaseWriter)


def test_a_missing_library_names_the_path_and_the_fix(tmp_path: Path) -> None:
    ref = PluginRef.parse("libs/libnone.so:create_reader", base_dir=tmp_path)
    with pytest.raises(ConfigurationError) as raised:
        load_plugin_class(ref)
    assert "libnone.so" in raised.value.message
    assert "does not exist; build it" in raised.value.message


def test_a_config_that_is_not_json_is_refused_before_loading(tmp_path: Path, not_a_library: Path) -> None:
    cls = load_plugin_class(PluginRef.parse("libs/libitems.so:create_reader", base_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="cannot be passed to a native library as JSON"):
        cls({"when": object()})


def test_columns_are_inferred_from_the_first_batch() -> None:
    records = [
        {"id": 1, "name": "a", "price": 1, "active": True, "tags": ["x"], "note": None},
        {"id": 2, "name": "b", "price": 2.5, "active": False, "tags": [], "note": None, "extra": "e"},
    ]
    columns = {c.name: c.type for c in _columns_of(records)}
    assert columns == {
        "id": ColumnType.INTEGER,
        "name": ColumnType.STRING,
        "price": ColumnType.FLOAT,  # 1 then 2.5: JSON writes some floats without a point
        "active": ColumnType.BOOLEAN,
        "tags": ColumnType.JSON,
        "note": ColumnType.STRING,
        "extra": ColumnType.STRING,
    }
