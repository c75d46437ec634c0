"""The dativo-testkit pytest plugin (``pytest11`` entry point): options, markers and fixtures.

Kept thin: the mock server and the conformance engine are imported only when a fixture
or a conformance test class uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._mock_api import MockApiServer
    from ._mock_writer import MockTarget


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--dativo-*`` options."""
    group = parser.getgroup("dativo", "Dativo plugin conformance (dativo-testkit)")
    group.addoption(
        "--dativo-check-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time limit of each conformance check in conformance_test_class tests (default 60)",
    )
    group.addoption(
        "--dativo-sandbox",
        choices=("none", "process", "docker"),
        default=None,
        help=(
            "run the plugins of conformance_test_class tests in a dativo-run sandbox worker (process, "
            "docker; needs dativo-runtime) unless the class names its own sandbox (default none: in-process)"
        ),
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``dativo_*`` markers."""
    config.addinivalue_line(
        "markers", "dativo_conformance: a Dativo plugin conformance check (dativo-testkit)"
    )
    config.addinivalue_line(
        "markers",
        "dativo_mock_api(**kwargs): arguments for the dativo_mock_api fixture's MockApiServer "
        "(records, resource, token, seed, default_page_size, max_page_size)",
    )


@pytest.fixture
def dativo_mock_api(request: pytest.FixtureRequest) -> Iterator[MockApiServer]:
    """A running :class:`~dativo_testkit.MockApiServer` on loopback, stopped after the test.

    Configure it with ``@pytest.mark.dativo_mock_api(records=500, token="secret")``.
    """
    from ._mock_api import MockApiServer

    marker = request.node.get_closest_marker("dativo_mock_api")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    with MockApiServer(**kwargs) as server:
        yield server


@pytest.fixture
def dativo_mock_target() -> MockTarget:
    """An empty :class:`~dativo_testkit.MockTarget` to pass as a ``MockWriter`` config's ``target``."""
    from ._mock_writer import MockTarget

    return MockTarget()
