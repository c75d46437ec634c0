"""Tasks for the Dativo monorepo: `nox -s tests`, `lint`, `typecheck`, `build`, `demo`."""

from __future__ import annotations

import pathlib
import shutil
import sys

import nox

ROOT = pathlib.Path(__file__).parent
PACKAGES = ROOT / "packages"
SDK = PACKAGES / "dativo-plugin-sdk"
TESTKIT = PACKAGES / "dativo-testkit"
RUNTIME = PACKAGES / "dativo-runtime"
HTTP = PACKAGES / "dativo-http"
ALL_PACKAGES = (SDK, TESTKIT, RUNTIME, HTTP)
# pip and hatchling: tests build the SDK wheel and the offline sandbox image from the source trees.
TEST_DEPS = (
    "pip",
    "hatchling>=1.27",
    "pytest>=8",
    "hypothesis>=6.80",
    "moto[server]>=5",
    "duckdb>=1.0",
    "pytest-timeout>=2.3",
    "numpy",  # optional read-back paths of the testkit are tested too
    "import-linter>=2",  # tests/test_import_contracts.py breaks the contracts on purpose
)

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


def _install_workspace(session: nox.Session) -> None:
    # The docs requirements let the strict MkDocs build test in tests/ run instead of skipping.
    session.install(*TEST_DEPS, "-r", str(ROOT / "docs" / "requirements.txt"))
    # [dask]: the Dask executor's tests run against real schedulers and workers; [iceberg]: the
    # iceberg writer's tests run against pyiceberg's sql catalog; [postgres]: the postgres reader's
    # tests read a real server through the ADBC driver. dativo-http: the `http` plugin (httpx).
    runtime = f"{RUNTIME}[otel,dask,iceberg,postgres]"
    session.install("-e", str(SDK), "-e", f"{TESTKIT}[arrow]", "-e", runtime, "-e", str(HTTP))


@nox.session
def tests(session: nox.Session) -> None:
    """Run every package's tests, then the cross-package tests in tests/."""
    _install_workspace(session)
    args = session.posargs
    failed = []
    # Each suite runs with its own rootdir and configuration; all run even when one fails.
    for suite in [package / "tests" for package in ALL_PACKAGES] + [ROOT / "tests"]:
        try:
            session.run("pytest", str(suite), *args, success_codes=[0, 5])
        except nox.command.CommandFailed:
            failed.append(str(suite.relative_to(ROOT)))
    if failed:
        session.error(f"test suites failed: {', '.join(failed)}")


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over the whole repository, then the import contracts (.importlinter)."""
    session.install("ruff>=0.6", "import-linter>=2")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    sources = [str(package / "src") for package in ALL_PACKAGES]
    session.run("lint-imports", "--no-cache", env={"PYTHONPATH": ":".join(sources)})


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy: --strict for the SDK, the testkit and dativo-http (see mypy.ini), default for the runtime."""
    session.install("mypy>=1.10", "types-PyYAML", "types-croniter", "pyarrow-stubs")
    _install_workspace(session)
    session.run("mypy", str(SDK / "src"))
    session.run("mypy", str(TESTKIT / "src"))
    session.run("mypy", str(RUNTIME / "src"))
    session.run("mypy", str(HTTP / "src"))


@nox.session
def build(session: nox.Session) -> None:
    """Build every package, twine-check it, and install each wheel into a fresh virtualenv."""
    session.install("hatchling>=1.27", "twine")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for package in ALL_PACKAGES:
        with session.chdir(package):
            # hatchling is hatch's build backend; its CLI builds without hatch's own environments.
            session.run("hatchling", "build", "-d", str(dist))
    session.run("twine", "check", "--strict", *[str(p) for p in sorted(dist.iterdir())])
    _check_wheels_install(session, dist)


def _check_wheels_install(session: nox.Session, dist: pathlib.Path) -> None:
    venv = ROOT / ".nox" / "_wheel_check"
    wheels = {p.name.split("-")[0]: p for p in dist.glob("*.whl")}
    for name, module in (
        ("dativo_plugin_sdk", "dativo_plugin_sdk"),
        ("dativo_testkit", "dativo_testkit"),
        ("dativo_runtime", "dativo_runtime"),
        ("dativo_http", "dativo_http"),
    ):
        shutil.rmtree(venv, ignore_errors=True)
        session.run(sys.executable, "-m", "venv", str(venv), external=True)
        python = str(venv / "bin" / "python")
        install = [str(wheels["dativo_plugin_sdk"])]
        if name != "dativo_plugin_sdk":
            install.append(str(wheels[name]))
        session.run(python, "-m", "pip", "install", "-q", *install, external=True)
        session.run(python, "-c", f"import {module}; print({module}.__name__, 'imports')", external=True)
    shutil.rmtree(venv, ignore_errors=True)


@nox.session
def demo(session: nox.Session) -> None:
    """Install the runtime and run the example jobs: CSV to Parquet, then CSV to an Iceberg table."""
    session.install("-e", str(SDK), "-e", f"{RUNTIME}[iceberg]", "duckdb")
    jobs = ROOT / "examples" / "jobs"
    session.run("dativo-run", "run", "--config", str(jobs / "orders_csv_to_parquet.yaml"))
    # The second demo: the same orders into an Iceberg table on the embedded sqlite catalog.
    iceberg_job = jobs / "orders_csv_to_iceberg.yaml"
    session.run("dativo-run", "run", "--config", str(iceberg_job))
    query = ROOT / "examples" / "query_iceberg.py"
    session.run("python", str(query))
    session.log(
        "query the Iceberg table demo.orders (catalog examples/output/warehouse/catalog.db) with "
        f"`python {query.relative_to(ROOT)}`; `dativo-run files --config {iceberg_job.relative_to(ROOT)}` "
        "lists its data files for DuckDB or any Parquet reader"
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput benchmark against pyarrow, dlt and Singer (`-- --quick` for a one-minute run)."""
    session.install("-r", str(ROOT / "bench" / "requirements.txt"))
    # [postgres] and [iceberg]: the reader and the writer that the issue 16 sections measure;
    # dativo-http: the http section's reader (issue 17).
    session.install("-e", str(SDK), "-e", f"{RUNTIME}[dask,postgres,iceberg]", "-e", str(HTTP))
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with MkDocs in strict mode (broken links fail)."""
    session.install("-r", str(ROOT / "docs" / "requirements.txt"))
    session.install("-e", str(SDK), "-e", f"{TESTKIT}[arrow]", "-e", str(RUNTIME), "-e", str(HTTP))
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))
