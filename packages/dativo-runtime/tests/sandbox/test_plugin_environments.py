"""What a plugin sees of the host: its environment and read-only paths, never the host's site-packages.

A plugin's environment (a ``pip install --target`` folder, built here by hand with ``uv``) is
mounted read-only at its host path under ``process`` and ``docker``, and comes first on the
worker's ``sys.path`` after the standard library; under ``none`` the plugin then runs in a
child worker process. The host's own packages (typer, pydantic, boto3...) stay out of reach
of a sandboxed plugin, which tries to import them here. ``sandbox.read_only_paths`` are
readable at the same path and not writable; the policy refuses them in cloud mode.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import OperatorPolicy, SandboxLimits, _policy, choose_sandbox
from dativo_runtime._sandbox._base import Sandbox, SessionMounts
from dativo_runtime._sandbox._inprocess import InProcessSandbox
from dativo_runtime._worker._main import PLUGIN_ENV_VARIABLE, use_plugin_paths

PROBE = textwrap.dedent(
    """\
    import json
    import os
    import sys

    from dativo_plugin_sdk import BaseReader


    def attempt(action):
        try:
            return action()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"


    def write(path):
        with open(path, "w") as handle:
            handle.write("changed")
        return "written"


    class ProbeReader(BaseReader):
        __version__ = "1.0.0"

        def extract(self, state=None):
            result = {"pid": os.getpid(), "env": os.environ.get("DATIVO_PLUGIN_ENV"), "path": sys.path}
            for name in self.config.get("imports", []):
                result["import " + name] = attempt(lambda: getattr(__import__(name), "__file__", None) or "ok")
            for path in self.config.get("read", []):
                result["read " + path] = attempt(lambda: open(path).read())
            for path in self.config.get("write", []):
                result["write " + path] = attempt(lambda: write(path))
            yield [{"result": json.dumps(result)}]
    """
)
HOST_ONLY = ("typer", "pydantic", "boto3")


def _uv() -> str | None:
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


@pytest.fixture(scope="module")
def six_environment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment holding six 1.16.0 and nothing else, built the way plugin environments are."""
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed")
    folder = tmp_path_factory.mktemp("env") / "six-env"
    command = [uv, "pip", "install", "--target", str(folder), "--python-version", "3.11"]
    command += ["--python-platform", "x86_64-manylinux_2_28", "six==1.16.0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot install six with uv here: {done.stderr.strip()[-500:]}")
    for path in [folder.parent, folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the sandbox's user reads it
    return folder


@pytest.fixture
def probe_ref(tmp_path: Path) -> PluginRef:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "probe.py").write_text(PROBE)
    for path in (tmp_path, plugins):
        path.chmod(0o755)
    (plugins / "probe.py").chmod(0o644)
    return PluginRef.parse(f"{plugins / 'probe.py'}:ProbeReader")


def _probe(
    sandbox: Sandbox,
    ref: PluginRef,
    config: dict[str, Any],
    mounts: SessionMounts = SessionMounts(),  # noqa: B008
) -> dict[str, Any]:
    with sandbox.open_reader(ref, config, limits=SandboxLimits(timeout_s=60), mounts=mounts) as session:
        rows = [row for batch in session.extract() for row in batch.data.to_pylist()]
    (row,) = rows
    return json.loads(row["result"])


def _real_backend(name: str) -> Sandbox:
    from .conftest import make_backend

    return make_backend(name)


@pytest.mark.parametrize("backend_name", ["process", "docker", "none"])
def test_a_plugin_imports_what_only_its_environment_holds(
    backend_name: str, probe_ref: PluginRef, six_environment: Path
) -> None:
    sandbox = InProcessSandbox() if backend_name == "none" else _real_backend(backend_name)
    result = _probe(
        sandbox, probe_ref, {"imports": ["six", "pyarrow"]}, SessionMounts(environment=six_environment)
    )
    assert result["import six"] == str(six_environment / "six.py")
    assert result["env"] == str(six_environment)
    path = result["path"]
    pyarrow_folder = str(Path(result["import pyarrow"]).parent.parent)
    # First after the standard library: before the worker's own packages.
    assert path.index(str(six_environment)) < path.index(pyarrow_folder)
    if backend_name == "none":
        assert result["pid"] != os.getpid()  # a child worker process, never the runtime's own
    assert PLUGIN_ENV_VARIABLE not in os.environ


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_an_environment_under_the_root_users_home_is_reachable(
    backend_name: str, probe_ref: PluginRef, six_environment: Path
) -> None:
    """A root runtime keeps $DATIVO_HOME (and often its Python) under /root, 0700 in most images."""
    if os.geteuid() != 0:
        pytest.skip("only a root runtime keeps its environments under /root")
    home = Path(tempfile.mkdtemp(prefix="dativo-test-", dir=Path.home()))
    try:
        environment = home / "envs" / "six"
        shutil.copytree(six_environment, environment)
        for path in [home, home / "envs"]:
            path.chmod(0o755)
        sandbox = _real_backend(backend_name)
        result = _probe(sandbox, probe_ref, {"imports": ["six"]}, SessionMounts(environment=environment))
        assert result["import six"] == str(environment / "six.py")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_without_an_environment_none_runs_the_plugin_in_process(probe_ref: PluginRef) -> None:
    result = _probe(InProcessSandbox(), probe_ref, {})
    assert result["pid"] == os.getpid()
    assert result["env"] is None


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_the_environment_is_mounted_read_only(
    backend_name: str, probe_ref: PluginRef, six_environment: Path
) -> None:
    target = six_environment / "six.py"
    before = target.read_bytes()
    result = _probe(
        _real_backend(backend_name),
        probe_ref,
        {"write": [str(target), str(six_environment / "new.py")]},
        SessionMounts(environment=six_environment),
    )
    for path in (target, six_environment / "new.py"):
        assert result[f"write {path}"].startswith(("OSError", "PermissionError")), result
        assert (
            "Read-only file system" in result[f"write {path}"]
            or "Permission denied" in result[f"write {path}"]
        )
    assert target.read_bytes() == before
    assert not (six_environment / "new.py").exists()


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_a_sandboxed_plugin_cannot_import_the_hosts_packages(backend_name: str, probe_ref: PluginRef) -> None:
    """A hostile plugin reaching for what the runtime has installed finds only the worker's packages."""
    for name in HOST_ONLY:
        assert importlib.util.find_spec(name) is not None, f"{name} should be installed beside the runtime"
    imports = [*HOST_ONLY, "pyarrow", "packaging", "dativo_plugin_sdk"]
    result = _probe(_real_backend(backend_name), probe_ref, {"imports": imports})
    for name in HOST_ONLY:
        assert result[f"import {name}"] == f"ModuleNotFoundError: No module named '{name}'", result
    for name in ("pyarrow", "packaging", "dativo_plugin_sdk"):
        assert not result[f"import {name}"].startswith("ModuleNotFoundError"), result


def test_the_process_sandbox_lists_only_the_workers_packages(probe_ref: PluginRef) -> None:
    """Not importable, and not visible either: the host's site-packages hold only the worker's files."""
    import site

    sandbox = _real_backend("process")
    folders = [folder for folder in site.getsitepackages() if Path(folder).is_dir()]
    plugin = probe_ref.plugin_dir
    assert plugin is not None
    (plugin / "lister.py").write_text(
        PROBE.replace("class ProbeReader", "class _Unused")
        + textwrap.dedent(
            """\

            class ListingReader(BaseReader):
                __version__ = "1.0.0"

                def extract(self, state=None):
                    yield [{"result": json.dumps({f: sorted(os.listdir(f)) for f in self.config["folders"]})}]
            """
        )
    )
    (plugin / "lister.py").chmod(0o644)
    ref = PluginRef.parse(f"{plugin / 'lister.py'}:ListingReader")
    listing = _probe(sandbox, ref, {"folders": folders})
    seen = {name for names in listing.values() for name in names}
    assert not {"typer", "pydantic", "boto3", "yaml", "docker"} & seen, seen
    assert "pyarrow" in seen


@pytest.mark.parametrize("backend_name", ["process", "docker"])
def test_read_only_paths_are_readable_at_the_same_path_and_not_writable(
    backend_name: str, probe_ref: PluginRef, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "orders.csv").write_text("id\n1\n")
    (data / "orders.csv").chmod(0o644)
    single = tmp_path / "single.txt"
    single.write_text("one file")
    single.chmod(0o644)
    outside = tmp_path / "outside.txt"
    outside.write_text("not granted")
    outside.chmod(0o644)
    result = _probe(
        _real_backend(backend_name),
        probe_ref,
        {
            "read": [str(data / "orders.csv"), str(single), str(outside)],
            "write": [str(data / "orders.csv"), str(data / "new.csv")],
        },
        SessionMounts(read_only_paths=(data, single)),
    )
    assert result[f"read {data / 'orders.csv'}"] == "id\n1\n"
    assert result[f"read {single}"] == "one file"
    assert result[f"read {outside}"].startswith("FileNotFoundError"), result
    for path in (data / "orders.csv", data / "new.csv"):
        assert result[f"write {path}"].startswith(("OSError", "PermissionError")), result
    assert (data / "orders.csv").read_text() == "id\n1\n"
    assert not (data / "new.csv").exists()


def test_a_missing_mount_fails_the_start_naming_it(probe_ref: PluginRef, tmp_path: Path) -> None:
    sandbox = _real_backend("process")
    with pytest.raises(SandboxError, match="does not exist") as raised:
        _probe(sandbox, probe_ref, {}, SessionMounts(environment=tmp_path / "no-such-env"))
    assert raised.value.details["paths"] == [str(tmp_path / "no-such-env")]


def test_session_mounts_take_absolute_paths_only() -> None:
    with pytest.raises(ValueError, match="absolute"):
        SessionMounts(environment=Path("relative/env"))
    with pytest.raises(TypeError, match="sequence of paths"):
        SessionMounts(read_only_paths=Path("/data"))  # type: ignore[arg-type]
    mounts = SessionMounts(read_only_paths=[Path("/data")], packages=[Path("/site/acme"), Path("/site/x.py")])
    assert mounts.read_only_paths == (Path("/data"),)
    assert mounts.hello() == {"environment": None, "environment_on_path": True, "paths": ["/site"]}
    tool = SessionMounts(environment=Path("/envs/tap"), tool_environment=True)
    assert tool.hello() == {"environment": "/envs/tap", "environment_on_path": False, "paths": []}


# The worker's side: the environment on sys.path -----------------------------------------


def test_the_worker_adds_the_environment_like_a_site_folder_after_the_stdlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / "env"
    (env / "extra").mkdir(parents=True)
    (env / "extra.pth").write_text("extra\n")  # .pth files apply, as in a site-packages folder
    stdlib = [p for p in sys.path if "site-packages" not in p and p]
    rest = [p for p in sys.path if p not in stdlib]
    monkeypatch.setattr(sys, "path", [*stdlib, *rest])
    monkeypatch.delenv(PLUGIN_ENV_VARIABLE, raising=False)
    use_plugin_paths(str(env), ["/opt/acme"])
    assert os.environ[PLUGIN_ENV_VARIABLE] == str(env)
    monkeypatch.delenv(PLUGIN_ENV_VARIABLE)
    added = [str(env), str(env / "extra"), "/opt/acme"]
    position = max(i for i, p in enumerate(stdlib) if "lib-dynload" in p or p.endswith("python3.11")) + 1
    assert sys.path[position : position + 3] == added
    assert sys.path[:position] == stdlib[:position]


def test_a_tool_environment_is_named_but_never_imported_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Singer tap's or Airbyte source's environment (an old numpy, say) must not shadow the worker's.
    env = tmp_path / "env"
    env.mkdir()
    (env / "extra.pth").write_text("extra\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = list(sys.path)
    monkeypatch.delenv(PLUGIN_ENV_VARIABLE, raising=False)
    use_plugin_paths(str(env), [], on_path=False)
    assert os.environ[PLUGIN_ENV_VARIABLE] == str(env)
    monkeypatch.delenv(PLUGIN_ENV_VARIABLE)
    assert sys.path == before


@pytest.mark.parametrize(("environment", "paths"), [(3, None), (None, "x"), (None, [1])])
def test_the_worker_refuses_a_malformed_hello(environment: Any, paths: Any) -> None:
    from dativo_runtime._worker._protocol import ProtocolError

    with pytest.raises(ProtocolError):
        use_plugin_paths(environment, paths)
    with pytest.raises(ProtocolError):
        use_plugin_paths(None, [], on_path="yes")


# The policy ---------------------------------------------------------------------------


@pytest.fixture
def any_backend_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATIVO_RUNTIME_CONFIG", raising=False)
    monkeypatch.setattr(_policy, "_availability", lambda name, policy: (True, "works"))


PLUGIN = PluginRef.parse("/plugins/reader.py:Reader")
DATA = (Path("/srv/data"),)


@pytest.mark.usefixtures("any_backend_works")
def test_read_only_paths_are_refused_in_cloud_mode_unless_the_policy_allows_them() -> None:
    with pytest.raises(ConfigurationError, match="cloud mode refuses them") as raised:
        choose_sandbox("cloud", "auto", PLUGIN, OperatorPolicy(), read_only_paths=DATA)
    assert raised.value.details["setting"] == "sandbox.read_only_paths"
    assert "sandbox.allow_read_only_paths: true" in raised.value.message
    cloud_policy = OperatorPolicy(mode="cloud", allowed_backends=("process", "docker"))
    with pytest.raises(ConfigurationError, match="which the job's mode: self_hosted cannot lower"):
        choose_sandbox("self_hosted", "auto", PLUGIN, cloud_policy, read_only_paths=DATA)
    allowed = OperatorPolicy(mode="cloud", allowed_backends=("process",), allow_read_only_paths=True)
    assert choose_sandbox("cloud", "auto", PLUGIN, allowed, read_only_paths=DATA).name == "process"
    # Self-hosted: allowed unless the operator says no.
    assert choose_sandbox("self_hosted", "process", PLUGIN, OperatorPolicy(), read_only_paths=DATA)
    forbidding = OperatorPolicy(allow_read_only_paths=False)
    with pytest.raises(ConfigurationError, match=r"forbids them \(sandbox.allow_read_only_paths: false\)"):
        choose_sandbox("self_hosted", "process", PLUGIN, forbidding, read_only_paths=DATA)
    assert choose_sandbox("cloud", "auto", PLUGIN, OperatorPolicy(), read_only_paths=()).name


def test_the_policy_file_takes_allow_read_only_paths() -> None:
    policy = OperatorPolicy.from_mapping({"mode": "cloud", "allow_read_only_paths": True})
    assert policy.allow_read_only_paths is True
    with pytest.raises(ConfigurationError, match="allow_read_only_paths must be true or false"):
        OperatorPolicy.from_mapping({"allow_read_only_paths": "yes"})
