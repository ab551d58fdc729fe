"""The ``sumlab`` command line: one module per command group, shared options in ``options``."""

from sumlab.cli.app import app, main

__all__ = ["app", "main"]
