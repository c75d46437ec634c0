"""The ``docker`` backend: one locked-down container a worker, and the sandbox image it runs."""
