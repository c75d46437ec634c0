"""Building, reusing, sharing and pruning plugin environments with the real uv."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._exit_codes import ExitCode, exit_code_for
from dativo_runtime._plugins._environment_files import key_lock
from dativo_runtime._plugins._environments import (
    MARKER_FILE,
    EnvironmentProgress,
    EnvironmentSpec,
    EnvironmentStore,
    dativo_home,
    ensure_environment,
    use_environment,
)

SIX = EnvironmentSpec(("six==1.16.0",), origin="test: six")


def _import_from(environment: Path, module: str) -> str:
    """Import ``module`` in an isolated interpreter that sees only the stdlib and the environment."""
    code = f"import sys; sys.path.insert(0, {str(environment)!r}); import {module} as m; print(m.__file__)"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_dativo_home_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATIVO_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dativo_home() == tmp_path / "xdg" / "dativo"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert dativo_home() == Path.home() / ".cache" / "dativo"
    monkeypatch.setenv("DATIVO_HOME", str(tmp_path / "home"))
    assert EnvironmentStore().root == tmp_path / "home" / "envs"


def test_builds_once_then_reuses(store: EnvironmentStore) -> None:
    events: list[EnvironmentProgress] = []
    built = ensure_environment(SIX, progress=events.append)
    assert built.built
    assert built.key == SIX.key
    assert built.path == store.root / SIX.key
    assert _import_from(built.path, "six") == str(built.path / "six.py")
    assert next(e.stage for e in events) == "building"
    assert events[-1].stage == "built"
    assert any(e.stage == "output" and "six==1.16.0" in e.line for e in events)
    marker = json.loads((built.path / MARKER_FILE).read_text())
    assert marker["key"] == SIX.key
    assert marker["spec"]["requirements"] == ["six==1.16.0"]
    assert not (built.path / ".lock").exists()

    events.clear()
    again = ensure_environment(
        EnvironmentSpec((" Six == 1.16.0",), origin="another job"), progress=events.append
    )
    assert not again.built
    assert again.path == built.path
    assert again.created == built.created
    assert [e.stage for e in events] == ["reused"]
    assert again.spec.origin == "test: six"  # the first builder's
    assert [e.key for e in store.list()] == [SIX.key]


def test_everything_is_world_readable(store: EnvironmentStore) -> None:
    old = os.umask(0o077)  # the sandbox user (another uid) must still read the environment
    try:
        environment = ensure_environment(SIX)
    finally:
        os.umask(old)
    for folder, dirs, files in os.walk(environment.path):
        for name in [*dirs, *files]:
            mode = os.lstat(os.path.join(folder, name)).st_mode
            assert mode & 0o004, f"{name} is not world-readable"
            if stat.S_ISDIR(mode):
                assert mode & 0o001
    assert store.root.stat().st_mode & 0o005 == 0o005


def test_last_use_and_in_use(store: EnvironmentStore) -> None:
    environment = ensure_environment(SIX)
    used = store.root / f"{SIX.key}.used"
    os.utime(used, (0, 0))
    assert environment.last_used == datetime.fromtimestamp(0, tz=timezone.utc)
    with environment.in_use():
        assert environment.last_used > datetime.now(timezone.utc) - timedelta(minutes=1)
    assert environment.size_bytes() > 30_000


def test_unknown_package_is_a_configuration_error_with_uvs_message(store: EnvironmentStore) -> None:
    spec = EnvironmentSpec(("dativo-no-such-package-xyz==1.0",), origin="plugins/requirements.txt")
    events: list[EnvironmentProgress] = []
    with pytest.raises(ConfigurationError) as info:
        ensure_environment(spec, progress=events.append)
    error = info.value
    assert exit_code_for(error) is ExitCode.USAGE
    assert "plugins/requirements.txt (dativo-no-such-package-xyz==1.0)" in error.message
    assert "error: No solution found when resolving dependencies" in error.message
    assert "cause: Because dativo-no-such-package-xyz was not found" in error.message
    assert error.details["uv_exit_code"] == 1
    assert "dativo-no-such-package-xyz" in error.details["uv_output"]
    assert events[-1].stage == "failed"
    assert "No solution" in events[-1].line
    assert store.get(spec.key) is None
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]


def test_no_such_version(store: EnvironmentStore) -> None:
    with pytest.raises(
        ConfigurationError, match=r"(?s)six==0\.0\.1.*error: .*there is no version of six==0\.0\.1"
    ):
        ensure_environment(EnvironmentSpec(("six==0.0.1",), origin="x"))


def test_offline_install_from_a_wheel_folder(store: EnvironmentStore, wheelhouse: Path) -> None:
    spec = EnvironmentSpec(("dativo-envtest-app==1.0",), origin="offline")
    environment = ensure_environment(spec, find_links=wheelhouse)
    assert environment.built
    names = sorted(p.name for p in environment.path.glob("*.dist-info"))
    assert names == ["dativo_envtest_app-1.0.dist-info", "dativo_envtest_base-1.0.dist-info"]
    code = f"import sys; sys.path.insert(0, {str(environment.path)!r}); import dativo_envtest_app as a; print(a.BASE)"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.0"


def test_offline_install_from_dativo_find_links(
    store: EnvironmentStore, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATIVO_FIND_LINKS", str(wheelhouse))
    assert ensure_environment(EnvironmentSpec(("dativo-envtest-base>=2",), origin="x")).built
    with pytest.raises(ConfigurationError) as info:
        ensure_environment(EnvironmentSpec(("six==1.16.0",), origin="x"))
    assert f"from {wheelhouse} (--no-index)" in info.value.message
    assert (
        "hint:" in info.value.message or "not found in the provided package locations" in info.value.message
    )
    assert info.value.details["find_links"] == [str(wheelhouse)]
    monkeypatch.setenv("DATIVO_FIND_LINKS", str(wheelhouse / "missing"))
    with pytest.raises(ConfigurationError, match="is not a folder"):
        ensure_environment(EnvironmentSpec(("six==1.16.0",), origin="x"))


def test_a_dependency_on_the_sdk_is_left_to_the_runtime(store: EnvironmentStore, wheelhouse: Path) -> None:
    environment = ensure_environment(
        EnvironmentSpec(("dativo-envtest-plugin==1.0",), origin="x"), find_links=wheelhouse
    )
    names = sorted(p.name for p in environment.path.glob("*.dist-info"))
    assert names == ["dativo_envtest_base-2.0.dist-info", "dativo_envtest_plugin-1.0.dist-info"]


def test_an_unreachable_index_is_a_configuration_error(
    store: EnvironmentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on the discard port
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    with pytest.raises(ConfigurationError) as info:
        ensure_environment(EnvironmentSpec(("six==1.16.0",), origin="x"))
    assert exit_code_for(info.value) is ExitCode.USAGE
    assert info.value.details["uv_exit_code"] == 2
    assert "127.0.0.1:9" in info.value.message
    assert "Connection refused" in info.value.message


def test_an_empty_spec_builds_an_empty_environment_without_uv(store: EnvironmentStore) -> None:
    environment = ensure_environment(EnvironmentSpec((), origin="nothing"))
    assert sorted(p.name for p in environment.path.iterdir()) == [MARKER_FILE]


def test_a_folder_without_marker_is_never_used(store: EnvironmentStore, wheelhouse: Path) -> None:
    spec = EnvironmentSpec(("dativo-envtest-base==1.0",), origin="x")
    broken = store.root / spec.key
    broken.mkdir(parents=True)
    (broken / "half-written.py").write_text("", encoding="utf-8")
    assert store.get(spec.key) is None
    assert store.list() == []
    environment = ensure_environment(spec, find_links=wheelhouse)
    assert environment.built
    assert not (environment.path / "half-written.py").exists()
    (environment.path / MARKER_FILE).write_text("{not json", encoding="utf-8")
    assert store.get(spec.key) is None


_CONCURRENT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import dativo_runtime._plugins._environments as environments

    install = environments.install_into

    def slow_install(*args, **kwargs):
        time.sleep(1.5)  # hold the lock long enough for the other process to wait on it
        install(*args, **kwargs)

    environments.install_into = slow_install
    Path(sys.argv[2]).touch()
    while not Path(sys.argv[3]).exists():
        time.sleep(0.01)
    stages = []
    spec = environments.EnvironmentSpec(("dativo-envtest-app==1.0",), origin=sys.argv[1])
    env = environments.ensure_environment(
        spec, find_links=Path(sys.argv[4]), progress=lambda e: stages.append(e.stage)
    )
    print(json.dumps({"built": env.built, "path": str(env.path), "created": env.created.isoformat(),
                      "stages": stages}))
    """
)


def test_two_processes_build_one_spec_once(store: EnvironmentStore, wheelhouse: Path, tmp_path: Path) -> None:
    script = tmp_path / "ensure.py"
    script.write_text(_CONCURRENT, encoding="utf-8")
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), f"job-{i}", str(tmp_path / f"ready-{i}"), str(go), str(wheelhouse)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes]
        time.sleep(0.01)
    go.touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["built"] for r in results) == [False, True]
    assert len({r["path"] for r in results}) == 1
    assert len({r["created"] for r in results}) == 1
    waiter = next(r for r in results if not r["built"])
    assert waiter["stages"] == ["waiting", "reused"]
    builder = next(r for r in results if r["built"])
    assert builder["stages"].count("building") == 1


def test_use_environment_holds_it_against_prune(store: EnvironmentStore, wheelhouse: Path) -> None:
    spec = EnvironmentSpec(("dativo-envtest-base==1.0",), origin="x")
    with use_environment(spec, find_links=wheelhouse) as environment:
        report = store.prune(older_than=None)
        assert report.in_use == [spec.key]
        assert report.removed == []
        assert environment.path.is_dir()
    assert [e.key for e in store.prune(older_than=None).removed] == [spec.key]
    assert not environment.path.exists()
    assert sorted(p.name for p in store.root.iterdir()) == []


def test_prune_by_age_and_by_the_jobs_kept(store: EnvironmentStore, wheelhouse: Path) -> None:
    old = ensure_environment(
        EnvironmentSpec(("dativo-envtest-base==1.0",), origin="old"), find_links=wheelhouse
    )
    kept_old = ensure_environment(
        EnvironmentSpec(("dativo-envtest-base==2.0",), origin="kept"), find_links=wheelhouse
    )
    recent = ensure_environment(
        EnvironmentSpec(("dativo-envtest-app==1.0",), origin="recent"), find_links=wheelhouse
    )
    long_ago = (datetime.now(timezone.utc) - timedelta(days=40)).timestamp()
    for environment in (old, kept_old):
        os.utime(store.root / f"{environment.key}.used", (long_ago, long_ago))

    dry = store.prune(keep={kept_old.key}, dry_run=True)
    assert [e.key for e in dry.removed] == [old.key]
    assert dry.dry_run
    assert old.path.exists()

    report = store.prune(keep={kept_old.key})
    assert [e.key for e in report.removed] == [old.key]
    assert sorted(report.kept) == sorted([kept_old.key, recent.key])
    assert report.freed_bytes > 0
    assert not old.path.exists()
    assert not (store.root / f"{old.key}.used").exists()
    assert {e.key for e in store.list()} == {kept_old.key, recent.key}

    everything_else = store.prune(keep={recent.key}, older_than=None)
    assert [e.key for e in everything_else.removed] == [kept_old.key]


def test_prune_cleans_abandoned_builds_but_not_one_in_progress(store: EnvironmentStore) -> None:
    store.root.mkdir(parents=True)
    abandoned = store.root / ".tmp-0123456789abcdef-dead"
    abandoned.mkdir()
    building = store.root / ".tmp-fedcba9876543210-live"
    building.mkdir()
    broken = store.root / "00112233445566aa"
    broken.mkdir()
    (store.root / "99887766554433bb.lock").touch()
    with key_lock(store.root, "fedcba9876543210") as locked:
        assert locked
        report = store.prune()
    assert sorted(report.leftovers) == sorted(
        [".tmp-0123456789abcdef-dead", "00112233445566aa", "99887766554433bb.lock"]
    )
    assert building.exists()
    assert not abandoned.exists()
    assert not broken.exists()
