"""Where a run's files and state live: local disk or S3, commit locks and the state store."""
