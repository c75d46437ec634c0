"""Plugin references: what ``plugin:`` in a job file names, and loading the class it names.

A reference is a built-in connector's name (from :mod:`dativo_runtime.connectors`'s
registry), a ``path/to/file.py:Class``, a ``package.module:Class`` or an installed
entry point's name.
"""
