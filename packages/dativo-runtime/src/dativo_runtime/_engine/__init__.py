"""One run of one job: preflight, the attempt loop, validation, the two-phase commit, the result.

Also the single-job operations (``check``, ``discover``, ``validate``, ``estimate``) that
share the run's preflight. Uses the job model, the connectors, the sandboxes and the
storage below it; knows nothing of the CLI, ``serve`` or the parallel runner above it.
"""
