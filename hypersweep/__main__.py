"""``python -m hypersweep``: the same command as ``hypersweep``."""

from hypersweep.cli import main

main()
