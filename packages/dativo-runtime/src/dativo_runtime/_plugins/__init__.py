"""Plugin references: what ``plugin:`` in a job file names, and loading the class it names.

A reference is a built-in connector's name (from :mod:`dativo_runtime.connectors`'s
registry), a ``path/to/file.py:Class``, a ``package.module:Class``, an installed
entry point's name, or a native reader library ``path/to/libx.so:create_reader`` (loaded
only where the reader runs: in the sandbox worker when sandboxed).
"""
