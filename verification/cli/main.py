"""The ``mpcert`` command line: one parser, one sub-command per feature module.

This module only parses arguments; each sub-command lives in the module that owns the feature
and exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``func(args) -> int`` (the exit status).

:func:`main` is the one place that decides how errors reach the user: a typed
:class:`rmt.errors.MPCertError` is printed as one line ``mpcert COMMAND: error: ...`` (exit status 2);
``SIGINT`` (Ctrl-C) and ``SIGTERM`` become a :class:`Interrupted` exception, so every staged output
(:mod:`verification.report_folder`) is removed on the way out, and print one line (exit status
``128 + signal``: 130, 143).  Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

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


class Interrupted(BaseException):
    """``SIGINT`` or ``SIGTERM`` arrived: unwinds like ``KeyboardInterrupt`` (cleaning staged outputs)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum: int, frame) -> None:
    for stop in _STOP_SIGNALS:  # a second signal must not cut the clean-up short
        signal.signal(stop, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Within the block ``SIGINT`` / ``SIGTERM`` raise :class:`Interrupted`; the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {stop: signal.signal(stop, _interrupt) for stop in _STOP_SIGNALS}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _signals_raise():
            return int(args.func(args) or 0)
    except MPCertError as exc:
        print(f"mpcert {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        print(f"mpcert {args.command}: interrupted by {stop}; no partial output was left", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
