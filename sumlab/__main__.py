"""``python -m sumlab``: the same as the ``sumlab`` command (used by accelerate launch and torchrun)."""

from sumlab.cli.app import main

main()
