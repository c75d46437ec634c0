"""The Dativo throughput benchmark harness behind ``nox -s bench`` (see bench/README.md)."""
