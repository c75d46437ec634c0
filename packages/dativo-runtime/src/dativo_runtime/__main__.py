"""``python -m dativo_runtime ...``: the ``dativo-run`` command without its console script.

``serve`` and the parallel runner start each run this way (``sys.executable -m
dativo_runtime run ...``), so the child uses the same interpreter and installation.
"""

from dativo_runtime._cli._app import main

if __name__ == "__main__":
    main()
