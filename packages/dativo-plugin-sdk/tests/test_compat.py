"""Version rules: PEP 440 specifiers, the semver major cap, pre-releases, refused spellings."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import (
    DEFAULT_REQUIRES_SDK,
    PLUGIN_SDK_VERSION,
    BaseReader,
    PluginVersionError,
    check_compatibility,
    is_compatible,
    parse_requires_sdk,
)


def make_plugin(requires_sdk: Any = None, version: Any = "1.0.0") -> type[BaseReader]:
    attrs: dict[str, Any] = {"extract": lambda self, state=None: iter(())}
    if requires_sdk is not None:
        attrs["requires_sdk"] = requires_sdk
    if version is not None:
        attrs["__version__"] = version
    return type("SomePlugin", (BaseReader,), attrs)


def test_default_range_accepts_installed_sdk() -> None:
    check_compatibility(make_plugin())
    assert str(parse_requires_sdk(None)) == str(parse_requires_sdk(DEFAULT_REQUIRES_SDK))


def test_seed_plugin_with_only_version_works() -> None:
    plugin = make_plugin(version="0.3.1")
    assert is_compatible(plugin)
    assert not is_compatible(plugin, "2.0.0")


@pytest.mark.parametrize(
    ("spec", "sdk", "ok"),
    [
        (">=1.0,<2", "1.9.9", True),
        (">=1.0,<2", "2.0.0", False),
        (">=1.2", "1.5.0", True),
        (">=1.2", "2.0.0", False),  # open-ended: capped at the next major
        (">=1.2,<3", "2.4.0", True),  # explicit upper bound is honoured
        ("~=1.2", "1.9.0", True),
        ("~=1.2.0", "1.3.0", False),
        ("==1.*", "1.7.2", True),
        ("==1.*", "2.0.0", False),
        (">=1.1", "1.0.5", False),
        (">=1.0,<2", "1.1.0rc1", False),  # pre-release only when asked for
        (">=1.1.0rc1,<2", "1.1.0rc1", True),  # ... or named in the specifier
    ],
)
def test_specifier_rules(spec: str, sdk: str, ok: bool) -> None:
    assert is_compatible(make_plugin(spec), sdk) is ok


def test_prereleases_when_asked() -> None:
    plugin = make_plugin(">=1.0,<2")
    assert not is_compatible(plugin, "1.1.0rc1")
    assert is_compatible(plugin, "1.1.0rc1", allow_prereleases=True)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("^1.2", "npm-style"),
        ("~1.2", "npm-style"),
        ("1.2", "bare version"),
        (">=1.*", "not a valid PEP 440"),
        ("latest", "not a valid PEP 440"),
        ("", "non-empty"),
        (3, "non-empty"),
    ],
)
def test_refused_spellings(spec: Any, fragment: str) -> None:
    with pytest.raises(PluginVersionError, match=fragment) as info:
        check_compatibility(make_plugin(spec))
    assert "SomePlugin" in info.value.message


def test_invalid_plugin_version() -> None:
    with pytest.raises(PluginVersionError, match="not a valid version"):
        check_compatibility(make_plugin(version="one.two"))


def test_incompatible_message_names_plugin_requirement_installed_and_fix() -> None:
    with pytest.raises(PluginVersionError) as info:
        check_compatibility(make_plugin(">=1.5,<2"), "1.0.0")
    message = info.value.message
    assert "SomePlugin" in message
    assert ">=1.5,<2" in message
    assert "1.0.0 is installed" in message
    assert "pip install" in message
    assert info.value.details["sdk_version"] == "1.0.0"
    assert info.value.error_code == "PLUGIN_VERSION_INCOMPATIBLE"


def test_invalid_sdk_version_argument_is_a_usage_error() -> None:
    with pytest.raises(ValueError, match="not a valid version"):
        check_compatibility(make_plugin(), "banana")


versions = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))


@given(installed=versions, lower=versions)
def test_open_lower_bound_never_admits_another_major(
    installed: tuple[int, int, int], lower: tuple[int, int, int]
) -> None:
    plugin = make_plugin(">={}.{}.{}".format(*lower))
    ok = is_compatible(plugin, "{}.{}.{}".format(*installed))
    assert ok == (installed >= lower and installed[0] == lower[0])


@given(major=st.integers(1, 20), minor=st.integers(0, 50), patch=st.integers(0, 50))
def test_default_range_is_exactly_major_one(major: int, minor: int, patch: int) -> None:
    assert is_compatible(make_plugin(), f"{major}.{minor}.{patch}") == (major == 1)


@given(
    st.tuples(st.integers(1, 30), st.integers(0, 30), st.integers(0, 30)),
    st.sampled_from(["a1", "b2", "rc1", ".dev3"]),
)
def test_prereleases_never_satisfy_unless_asked(base: tuple[int, int, int], pre: str) -> None:
    sdk = "{}.{}.{}{}".format(*base, pre)
    plugin = make_plugin(">=0.0,<100")
    assert not is_compatible(plugin, sdk)
    assert is_compatible(plugin, sdk, allow_prereleases=True) == (base[0] < 100)


def test_installed_sdk_satisfies_default() -> None:
    assert is_compatible(make_plugin(), PLUGIN_SDK_VERSION)
