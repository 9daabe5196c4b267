"""``python -m patchgate.entrypoints.cli``: the same as the ``patchgate`` command."""

from patchgate.entrypoints.cli.main import main

main()
