"""The ``mpcert`` command line (:func:`main`); one module per sub-command, argument parsing only."""

from verification.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
