"""Transitional: the homes of names tests outside the engine's files still import from here.

The run is now one module a concept (``_run``, ``_attempt``, ``_commit``, ``_preflight``,
``_sessions``, ``_mounts``, ``_observer``, ``_outcome``); delete this module once
``tests/sandbox/test_output_folder.py``, ``tests/test_plugin_folder.py`` and
``tests/test_import_contracts.py`` name those modules.
"""

from __future__ import annotations

from dativo_runtime._engine._mounts import check_plugin_folder, writable_output_dir

__all__ = ["check_plugin_folder", "writable_output_dir"]
