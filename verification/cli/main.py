"""The ``mpcert`` command line: one parser, one sub-command per feature module.

This module only parses arguments; each sub-command lives in the module that owns the feature
and exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``func(args) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rmt.errors import MPCertError

#: Feature modules that contribute sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = ("verification.cli.fit", "verification.cli.verify", "verification.cli.certify",
                   "verification.cli.prune", "verification.cli.figures", "verification.cli.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpcert",
        description="Marchenko–Pastur guided pruning with literal, sound certificates.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a feature not built yet must not break the others
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MPCertError as exc:
        print(f"mpcert {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
