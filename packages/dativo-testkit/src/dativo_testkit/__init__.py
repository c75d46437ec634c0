"""Dativo testkit: mocks, fault injection and the plugin conformance harness."""

from ._version import __version__

__all__ = ["__version__"]
