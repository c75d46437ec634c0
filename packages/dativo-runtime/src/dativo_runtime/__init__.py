"""Dativo runtime: the dativo-run CLI and the pipeline behind it."""

from ._version import __version__

__all__ = ["__version__"]
