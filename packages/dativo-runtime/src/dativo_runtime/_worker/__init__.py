"""Everything that runs inside a sandbox: the worker process and its wire protocol.

A leaf: it imports only the standard library, the plugin SDK and pyarrow (checked by the
``worker-is-a-leaf`` import contract), and the Docker image's digest is a hash over this
folder's files, so any change to code that runs in the sandbox rebuilds the image.
"""
