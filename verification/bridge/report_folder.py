"""Atomic ``--out`` of the ``mpcert`` commands (report folders of ``fit``, ``certify``, ``demo``; the mask
file of ``prune``): all or nothing, and never a replacement the run did not check.

* :func:`check_out` runs before any work: it refuses a file where a folder is expected (and the
  reverse), a non-empty target without ``force``, a target that is or holds the working directory
  (``--out .``), and a place that cannot be written (read-only file system, immutable or foreign
  folder: probed by creating and removing a staging entry in the nearest existing ancestor).
* :func:`staged_folder` / :func:`staged_file` build the output as a temporary sibling
  ``.<name>.tmp-*`` and publish it by ``rename``.  Without ``force`` the rename itself is the check:
  ``rename(2)`` replaces at most an empty folder, so a target that appeared meanwhile (a concurrent run
  to the same ``--out``) makes the run fail with :class:`OutputError` instead of replacing it.  With
  ``force`` an existing target is swapped out and removed only after the new one is in place
  (a symlink target is replaced by the folder; the link's destination is not touched).
* On any exception — a typed error, a write error, ``KeyboardInterrupt`` or the ``SIGTERM`` that
  :mod:`verification.cli` turns into an exception — the staging entry and any parent folders the run
  created are removed.  ``SIGINT`` / ``SIGTERM`` are deferred while the staging entry is created and
  while the target is swapped.  An ``OSError`` about the output itself (disk full, a file system turned
  read-only) becomes :class:`OutputError`, so the command prints it as one line.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ContextManager, Iterator

from rmt.errors import InvalidParameterError

__all__ = ["OutputError", "check_out", "publish", "staged_folder", "staged_file"]

#: ``rename(2)`` failures meaning "the target exists and is not replaceable without --force".
_TARGET_EXISTS = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR)


class OutputError(InvalidParameterError):
    """``--out`` cannot be written: wrong kind, not empty without ``--force``, unwritable, or taken meanwhile."""


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def _check_writable(out: Path, argument: str) -> None:
    """Create and remove a staging entry where the output will be staged (the nearest existing ancestor)."""
    parent = _nearest_existing(out.parent)
    if not parent.is_dir():
        raise OutputError(f"{argument} {str(out)!r}: {str(parent)!r} is not a directory")
    try:
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=parent)
        os.rmdir(probe)
    except OSError as exc:
        raise OutputError(f"{argument} {str(out)!r}: cannot write in {str(parent)!r} ({exc.strerror})") from exc


def check_out(out: Path, force: bool, *, kind: str = "directory", argument: str = "--out") -> None:
    """Refuse an unusable ``out`` before any work (module docstring); ``kind``: ``"directory"`` or ``"file"``."""
    out = Path(out)
    resolved, cwd = out.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise OutputError(f"{argument} {str(out)!r} is the working directory or holds it; name a new folder")
    if kind == "directory" and out.exists() and not out.is_dir():
        raise OutputError(f"{argument} {str(out)!r} exists and is not a directory")
    if kind == "file" and out.is_dir():
        raise OutputError(f"{argument} {str(out)!r} is a directory; name a file")
    occupied = out.is_dir() and any(out.iterdir()) if kind == "directory" else out.exists() or out.is_symlink()
    if occupied and not force:
        what = "exists and is not empty" if kind == "directory" else "exists"
        raise OutputError(f"{argument} {str(out)!r} {what}; use --force to replace it")
    _check_writable(out, argument)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold back ``SIGINT`` / ``SIGTERM`` (delivered on exit) so a swap is not cut in half."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def publish(tmp: Path, out: Path, force: bool = False, argument: str = "--out") -> None:
    """Rename the finished ``tmp`` to ``out``: without ``force`` only onto nothing or an empty folder
    (:class:`OutputError` when ``out`` appeared meanwhile); with ``force`` an existing ``out`` is swapped
    out and removed after."""
    tmp, out = Path(tmp), Path(out)
    try:
        tmp.rename(out)
        return
    except OSError as exc:
        if exc.errno not in _TARGET_EXISTS:
            raise
        if not force:
            raise _appeared(out, argument) from exc
    with _signals_deferred():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
        try:
            tmp.rename(out)
        except BaseException:
            old.rename(out)
            raise
        _remove(old)


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; return the folders created, deepest last."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
    return missing[::-1]


def _remove_created(created: list[Path]) -> None:
    for path in reversed(created):
        try:
            path.rmdir()
        except OSError:
            return


def _appeared(out: Path, argument: str) -> OutputError:
    return OutputError(f"{argument} {str(out)!r} appeared while this run was working (another run?); it was not "
                       "replaced: use --force to replace it")


def _link_into_place(tmp: Path, out: Path, argument: str) -> None:
    """Publish the file ``tmp`` as ``out`` by a hard link (fails if ``out`` exists), then drop ``tmp``."""
    try:
        os.link(tmp, out)
    except FileExistsError as exc:
        raise _appeared(out, argument) from exc
    tmp.unlink()


@contextmanager
def _staged(out: Path, make: Callable[[Path], Path], place: Callable[[Path, Path], None],
            argument: str) -> Iterator[Path]:
    """Create the staging entry ``make(out)`` (and missing parents), yield it, ``place(tmp, out)`` on success;
    on any exception remove the staging entry and the parents created here.  Signals are deferred while
    the entry is created, so an interruption never finds it made but not yet known."""
    out = Path(out)
    created: list[Path] = []
    tmp: Path | None = None
    try:
        with _signals_deferred():
            created = _make_parents(out.parent)
            tmp = make(out)
        yield tmp
        place(tmp, out)
    except BaseException as exc:
        if tmp is not None and tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp is not None:
            tmp.unlink(missing_ok=True)
        _remove_created(created)
        if isinstance(exc, OSError) and _concerns_output(exc, out, tmp):
            raise OutputError(f"{argument} {str(out)!r}: cannot write it ({exc.strerror or exc}: "
                              f"{exc.filename}); nothing was written") from exc
        raise


def _concerns_output(exc: OSError, out: Path, tmp: Path | None) -> bool:
    """Whether the OS error is about ``out``, its staging entry or a file inside it (not, say, an input file)."""
    names = [Path(os.path.abspath(name)) for name in (exc.filename, exc.filename2) if isinstance(name, (str, Path))]
    roots = [Path(os.path.abspath(out))] + ([Path(os.path.abspath(tmp))] if tmp is not None else [])
    return any(name == root or root in name.parents for name in names for root in roots)


def _temporary_folder(out: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))


def _temporary_file(out: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{out.name}.tmp-", suffix=out.suffix, dir=out.parent)
    os.close(handle)
    return Path(name)


def staged_folder(out: Path, force: bool = False, argument: str = "--out") -> ContextManager[Path]:
    """Yield an empty temporary sibling folder of ``out``; publish it on success (:func:`publish`), delete
    it and the parents this call created on any exception."""
    return _staged(out, _temporary_folder, lambda tmp, target: publish(tmp, target, force, argument), argument)


def staged_file(out: Path, force: bool = False, argument: str = "--out") -> ContextManager[Path]:
    """Yield a temporary sibling file path of ``out``; publish it on success — without ``force`` by a hard
    link, which fails if ``out`` appeared meanwhile; with ``force`` by :func:`publish` — and delete it on
    any exception."""
    if force:
        return _staged(out, _temporary_file, lambda tmp, target: publish(tmp, target, True, argument), argument)
    return _staged(out, _temporary_file, lambda tmp, target: _link_into_place(tmp, target, argument), argument)
