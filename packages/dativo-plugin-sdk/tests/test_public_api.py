"""The exported surface of dativo_plugin_sdk is deliberate: changing it must change this test."""

import subprocess
import sys

import dativo_plugin_sdk

EXPECTED = [
    "DEFAULT_REQUIRES_SDK",
    "PLUGIN_SDK_VERSION",
    "WHOLE_STREAM",
    "ArrowBatch",
    "AuthenticationError",
    "BaseReader",
    "BaseWriter",
    "Batch",
    "Column",
    "ColumnType",
    "ConfigurationError",
    "ConnectionError",
    "ConnectionTestResult",
    "DativoConnectionError",
    "DativoError",
    "DiscoveredStream",
    "DiscoveryResult",
    "Partition",
    "PluginError",
    "PluginVersionError",
    "RateLimitError",
    "Record",
    "SandboxError",
    "State",
    "TransientError",
    "ValidationError",
    "check_compatibility",
    "from_dict",
    "get_error_code",
    "is_arrow_batch",
    "is_compatible",
    "is_retryable",
    "parse_requires_sdk",
    "records_from_batch",
]


def test_all_is_exactly_the_expected_surface() -> None:
    assert dativo_plugin_sdk.__all__ == EXPECTED


def test_all_is_sorted_like_isort_does() -> None:
    constants = [n for n in EXPECTED if n.isupper()]
    rest = [n for n in EXPECTED if not n.isupper()]
    assert constants == sorted(constants)
    assert [n for n in rest if n[0].isupper()] == sorted(n for n in rest if n[0].isupper())
    assert [n for n in rest if n[0].islower()] == sorted(n for n in rest if n[0].islower())


def test_every_exported_name_exists() -> None:
    for name in dativo_plugin_sdk.__all__:
        assert hasattr(dativo_plugin_sdk, name), name


def test_version_is_the_package_version() -> None:
    from importlib.metadata import version

    assert dativo_plugin_sdk.PLUGIN_SDK_VERSION == "1.1.0"
    assert dativo_plugin_sdk.__version__ == dativo_plugin_sdk.PLUGIN_SDK_VERSION
    assert version("dativo-plugin-sdk") == dativo_plugin_sdk.PLUGIN_SDK_VERSION


def test_importing_the_sdk_does_not_import_pyarrow() -> None:
    code = "import sys, dativo_plugin_sdk; assert 'pyarrow' not in sys.modules, 'pyarrow imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_callables_have_docstrings() -> None:
    for name in dativo_plugin_sdk.__all__:
        obj = getattr(dativo_plugin_sdk, name)
        if callable(obj) and not isinstance(obj, str) and name not in ("Batch", "Record"):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_shared_loader_and_arrow_mapping_do_not_import_pyarrow() -> None:
    code = (
        "import sys\n"
        "import dativo_plugin_sdk._arrow, dativo_plugin_sdk._loading\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported'\n"
        "from dativo_plugin_sdk._loading import PluginRef\n"
        "PluginRef.parse('pkg.mod:Reader')\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow imported by parsing'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_shared_modules_stay_private() -> None:
    for name in ("PluginRef", "load_plugin_class", "batch_to_arrow", "arrow_type_for"):
        assert name not in dativo_plugin_sdk.__all__


def test_the_sdk_depends_on_packaging_alone() -> None:
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["packaging>=22"]
    assert "optional-dependencies" not in project
