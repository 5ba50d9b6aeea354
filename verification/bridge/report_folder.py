"""Atomic report folders of the ``mpcert`` commands (``fit``, ``certify``, ...): all or nothing.

A report is built in a temporary sibling directory ``.<name>.tmp-*`` of ``--out`` and renamed into
place when complete (:func:`staged_folder`), so a failure at any step leaves no partial report and
no temporary directory.  An existing non-empty ``--out`` is refused unless ``force`` (then it is
swapped out and removed only after the new folder is in place).
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rmt.errors import InvalidParameterError

__all__ = ["check_out", "publish", "staged_folder"]


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that is a file, or a non-empty folder without ``force`` (InvalidParameterError)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"--out {str(out)!r} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InvalidParameterError(f"--out {str(out)!r} exists and is not empty; use --force to replace it")


def publish(tmp: Path, out: Path) -> None:
    """Move the finished folder ``tmp`` to ``out``; an existing ``out`` is swapped out and removed after."""
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old)


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``out``; publish it on success, delete it on any exception."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
