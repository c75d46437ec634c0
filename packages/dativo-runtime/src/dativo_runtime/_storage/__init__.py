"""Where a run's files and state live: local disk or S3, commit locks and the state store.

``_base`` (the :class:`Storage` interface), ``_local`` and ``_s3`` (the two backends; ``_s3``
also holds the one definition of the S3 options), ``_backends`` (:func:`open_storage` picks
one for a location), ``_locks`` (leases) and ``_state_store`` (incremental state).
"""
