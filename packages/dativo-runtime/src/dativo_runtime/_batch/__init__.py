"""Several jobs at once: the parallel runner of ``run --job-dir`` and the child-process runner.

Each job runs in its own ``dativo-run`` child process (see :mod:`._child`), so one job's
crash never takes another's down; :mod:`._runner` schedules them under the concurrency
limits of :mod:`._concurrency`. ``serve`` builds on this layer.
"""
