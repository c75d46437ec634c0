"""What a plugin declares, and the key it hashes to (no uv runs here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import PLUGIN_SDK_VERSION, ConfigurationError
from dativo_runtime._plugins._environments import EnvironmentSpec, environment_spec_for
from dativo_runtime._plugins._plugin_requirements import read_requirements_file
from dativo_runtime._plugins._ref import PluginRef

# Each requirement with spellings that mean the same thing.
SPELLINGS = [
    ("six==1.16.0", "Six == 1.16.0", "  six==1.16.0  "),
    (
        "requests[socks,security]>=2,<3",
        "Requests [security, socks] <3 , >=2",
        "requests[SOCKS,security]<3,>=2",
    ),
    (
        'tomli>=1; python_version < "3.11"',
        "tomli >= 1 ; python_version<'3.11'",
        'TOMLI>=1;python_version<"3.11"',
    ),
    ("Foo_Bar.baz==1.0", "foo-bar-baz==1.0", "FOO.BAR_baz == 1.0"),
]


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(len(SPELLINGS))),
    choices=st.lists(st.integers(0, 2), min_size=len(SPELLINGS), max_size=len(SPELLINGS)),
    duplicate=st.booleans(),
)
def test_key_ignores_order_spelling_and_duplicates(
    order: list[int], choices: list[int], duplicate: bool
) -> None:
    reference = EnvironmentSpec(tuple(spellings[0] for spellings in SPELLINGS), origin="a")
    written = [SPELLINGS[i][choices[i]] for i in order]
    if duplicate:
        written.append(SPELLINGS[order[0]][0])
    spec = EnvironmentSpec(tuple(written), origin="somewhere else")
    assert spec.requirements == reference.requirements
    assert spec.key == reference.key
    assert len(spec.key) == 16
    assert spec.requirements == tuple(sorted(spec.requirements))


def test_key_changes_with_requirements_python_platform_runtime_and_pins() -> None:
    spec = EnvironmentSpec(("six==1.16.0",), origin="x")
    variants = [
        EnvironmentSpec(("six==1.17.0",), origin="x"),
        EnvironmentSpec(("six==1.16.0", "tomli==2.0.1"), origin="x"),
        replace(spec, python="3.12"),
        replace(spec, platform="aarch64-manylinux_2_28"),
        replace(spec, runtime_version="99.0.0"),
        replace(spec, constraints=("pyarrow==1.0",)),
    ]
    keys = {spec.key, *(v.key for v in variants)}
    assert len(keys) == len(variants) + 1
    assert replace(spec, origin="elsewhere").key == spec.key


def test_spec_round_trips_through_its_dict() -> None:
    spec = EnvironmentSpec(("Six==1.16.0",), origin="x")
    assert EnvironmentSpec.from_dict(spec.to_dict()) == spec
    assert spec.python.count(".") == 1
    assert any(c.startswith("pyarrow==") for c in spec.constraints)


def test_the_sdk_and_runtime_are_never_installed() -> None:
    spec = EnvironmentSpec(("dativo-plugin-sdk>=1.0,<2", "dativo_runtime", "six==1.16.0"), origin="x")
    assert spec.requirements == ("six==1.16.0",)


def test_a_requirement_excluding_the_provided_sdk_is_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        EnvironmentSpec(("dativo-plugin-sdk<1",), origin="plugins/requirements.txt")
    assert "plugins/requirements.txt" in info.value.message
    assert PLUGIN_SDK_VERSION in info.value.message


def test_a_malformed_requirement_names_its_origin() -> None:
    with pytest.raises(ConfigurationError, match=r"req\.txt: 'six===\s*' is not a pip requirement"):
        EnvironmentSpec(("six=== ",), origin="req.txt")
    with pytest.raises(TypeError):
        EnvironmentSpec("six", origin="x")  # type: ignore[arg-type]


# requirements.txt beside a file plugin -------------------------------------------------


def _file_plugin(folder: Path, requirements: str | None) -> PluginRef:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reader.py").write_text("", encoding="utf-8")
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements, encoding="utf-8")
    return PluginRef.parse("reader.py:Reader", base_dir=folder)


def test_file_plugin_requirements_with_comments_continuations_and_includes(tmp_path: Path) -> None:
    (tmp_path / "p" / "more").mkdir(parents=True)
    (tmp_path / "p" / "more" / "extra.txt").write_text("tomli==2.0.1\n", encoding="utf-8")
    ref = _file_plugin(
        tmp_path / "p",
        "# what the reader needs\n"
        "\n"
        "six==1.16.0   # inline comment\n"
        "attrs \\\n"
        "  ==23.1.0\n"
        "-r more/extra.txt\n"
        "pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl#sha256=abc\n",
    )
    spec = environment_spec_for(ref, {})
    assert spec is not None
    assert spec.requirements == (
        "attrs==23.1.0",
        "pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl#sha256=abc",
        "six==1.16.0",
        "tomli==2.0.1",
    )
    assert spec.origin == str(tmp_path / "p" / "requirements.txt")


def test_file_plugin_without_requirements_needs_no_environment(tmp_path: Path) -> None:
    assert environment_spec_for(_file_plugin(tmp_path / "a", None), {}) is None
    assert (
        environment_spec_for(_file_plugin(tmp_path / "b", "# nothing\n\ndativo-plugin-sdk>=1\n"), {}) is None
    )


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("--index-url https://example.invalid/simple", "--index-url"),
        ("-i https://example.invalid/simple", "-i"),
        ("--extra-index-url https://example.invalid/simple", "--extra-index-url"),
        ("--find-links /wheels", "--find-links"),
        ("-e ./local", "-e"),
        ("-c constraints.txt", "-c"),
        ("six==1.16.0 --hash=sha256:abc", "--hash"),
    ],
)
def test_requirement_file_options_are_refused_with_their_line(tmp_path: Path, line: str, option: str) -> None:
    ref = _file_plugin(tmp_path, f"six==1.16.0\n{line}\n")
    with pytest.raises(ConfigurationError) as info:
        environment_spec_for(ref, {})
    assert f"requirements.txt:2: option {option!r} is not supported" in info.value.message
    assert "UV_INDEX_URL" in info.value.message
    assert info.value.details["line"] == 2


def test_requirement_file_errors_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"(?s)requirements\.txt:1: './local' is not a pip requirement.*file:///"
    ):
        environment_spec_for(_file_plugin(tmp_path / "a", "./local\n"), {})
    with pytest.raises(ConfigurationError, match=r"includes .*missing\.txt.*not a file"):
        environment_spec_for(_file_plugin(tmp_path / "b", "-r missing.txt\n"), {})
    loop = _file_plugin(tmp_path / "c", "-r requirements.txt\n")
    with pytest.raises(ConfigurationError, match="includes itself"):
        environment_spec_for(loop, {})


def test_read_requirements_file_keeps_file_order(tmp_path: Path) -> None:
    path = tmp_path / "requirements.txt"
    path.write_text("b==1\na==2\n", encoding="utf-8")
    assert read_requirements_file(path) == ("b==1", "a==2")


# Installed plugins and the package plugins ---------------------------------------------


def test_installed_plugin_uses_its_distribution_requirements(installed_plugin: Callable[..., None]) -> None:
    installed_plugin(
        name="dativo_fakeplug",
        requires=(
            "six==1.16.0",
            "dativo-plugin-sdk>=1.0,<2",
            'pytest>=7; extra == "test"',
            'colorama; sys_platform == "win32"',
            'tomli>=1; python_version >= "3.0"',
        ),
        entry_point="dativo-fake",
    )
    by_entry_point = environment_spec_for(PluginRef.parse("dativo-fake"), {})
    by_module = environment_spec_for(PluginRef.parse("dativo_fakeplug.mod:Reader"), {})
    assert by_entry_point is not None
    assert by_module is not None
    assert by_entry_point.requirements == ("six==1.16.0", 'tomli>=1; python_version >= "3.0"')
    assert by_entry_point.origin == "dativo_fakeplug 1.0"
    assert by_module.key == by_entry_point.key


def test_installed_plugin_without_requirements_or_distribution(installed_plugin: Callable[..., None]) -> None:
    installed_plugin(name="dativo_bareplug", requires=("dativo-plugin-sdk",), entry_point="dativo-bare")
    assert environment_spec_for(PluginRef.parse("dativo-bare"), {}) is None
    assert environment_spec_for(PluginRef.parse("dativo-no-such-entry-point"), {}) is None
    assert environment_spec_for(PluginRef.parse("json.decoder:JSONDecoder"), {}) is None  # the stdlib
    assert environment_spec_for(PluginRef.parse("dativo_runtime.connectors:CsvReader"), {}) is None


def test_a_plugin_module_of_an_installed_distribution_editable_or_not() -> None:
    # The testkit is installed editable in a development checkout (found through its .pth file)
    # and as a wheel elsewhere: the same distribution either way.
    spec = environment_spec_for(PluginRef.parse("dativo_testkit:MockReader"), {})
    assert spec is not None
    assert spec.origin.startswith("dativo-testkit ")
    assert "pytest>=7" in spec.requirements
    assert not any(r.startswith(("dativo-plugin-sdk", "pyarrow")) for r in spec.requirements)


@pytest.mark.parametrize("name", ["singer", "airbyte"])
def test_singer_and_airbyte_install_their_package(name: str) -> None:
    ref = PluginRef(
        ref=name, kind="builtin", target=f"dativo_runtime.connectors._{name}", class_name="Reader"
    )
    spec = environment_spec_for(ref, {"package": " tap-Example == 1.2.3 ", "config": {}})
    assert spec is not None
    assert spec.requirements == ("tap-example==1.2.3",)
    assert spec.origin == f"{name}: tap-Example == 1.2.3"
    for bad in (None, "", 3, ["a"]):
        with pytest.raises(ConfigurationError, match=r"config\.package must be the pip requirement"):
            environment_spec_for(ref, {"package": bad})


def test_builtin_connectors_and_native_libraries_need_no_environment(tmp_path: Path) -> None:
    assert environment_spec_for(PluginRef.parse("csv"), {"package": "six"}) is None
    assert environment_spec_for(PluginRef.parse("libx.so:create_reader", base_dir=tmp_path), {}) is None
