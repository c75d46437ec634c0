"""The ``process`` backend: bubblewrap namespaces, an unprivileged host uid and optional egress."""
