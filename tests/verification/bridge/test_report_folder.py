"""``verification.report_folder``: all-or-nothing outputs that never replace what the run did not check (issue 19).

The races are made deterministic: the "other run" publishes its output from inside the staged block,
after this run's :func:`check_out` passed and before it publishes.
"""

from __future__ import annotations

import errno
import os

import pytest

from verification.bridge import report_folder
from verification.bridge.report_folder import OutputError, check_out, staged_file, staged_folder


def dot_entries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def other_run_publishes(out, text="other run"):
    out.mkdir()
    (out / "report.json").write_text(text)


def test_a_folder_that_appears_meanwhile_is_not_replaced(tmp_path):
    """Known-bad: the old ``publish`` swapped any existing folder out, so the other run's report was lost."""
    out = tmp_path / "report"
    check_out(out, force=False)
    with pytest.raises(OutputError, match="appeared while this run was working"):
        with staged_folder(out) as tmp:
            (tmp / "report.json").write_text("this run")
            other_run_publishes(out)
    assert (out / "report.json").read_text() == "other run"
    assert dot_entries(tmp_path) == []


def test_with_force_the_folder_is_replaced_and_an_empty_one_is_taken(tmp_path):
    out = tmp_path / "report"
    other_run_publishes(out)
    with staged_folder(out, force=True) as tmp:
        (tmp / "report.json").write_text("this run")
    assert (out / "report.json").read_text() == "this run"
    empty = tmp_path / "empty"
    empty.mkdir()
    with staged_folder(empty) as tmp:
        (tmp / "a").write_text("x")
    assert (empty / "a").read_text() == "x" and dot_entries(tmp_path) == []


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path):
    out = tmp_path / "mask.safetensors"
    check_out(out, force=False, kind="file")
    with pytest.raises(OutputError, match="appeared while this run was working"):
        with staged_file(out) as tmp:
            tmp.write_text("this run")
            out.write_text("other run")
    assert out.read_text() == "other run" and dot_entries(tmp_path) == []
    with staged_file(out, force=True) as tmp:
        tmp.write_text("this run")
    assert out.read_text() == "this run" and dot_entries(tmp_path) == []


def test_force_onto_a_symlink_replaces_the_link_and_leaves_its_target(tmp_path):
    target = tmp_path / "target"
    other_run_publishes(target)
    link = tmp_path / "link"
    link.symlink_to(target)
    check_out(link, force=True)
    with staged_folder(link, force=True) as tmp:
        (tmp / "report.json").write_text("this run")
    assert not link.is_symlink() and (link / "report.json").read_text() == "this run"
    assert (target / "report.json").read_text() == "other run" and dot_entries(tmp_path) == []


def test_a_failure_removes_the_parents_it_created(tmp_path):
    out = tmp_path / "a" / "b" / "c" / "report"
    with pytest.raises(RuntimeError):
        with staged_folder(out):
            raise RuntimeError("work failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_an_interruption_removes_the_staging_folder(tmp_path, interruption):
    out = tmp_path / "report"
    with pytest.raises(interruption):
        with staged_folder(out) as tmp:
            (tmp / "report.json").write_text("half")
            raise interruption()
    assert list(tmp_path.iterdir()) == []


def test_the_working_directory_and_its_parents_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    for out in (".", str(tmp_path), "..", "x/.."):
        with pytest.raises(OutputError, match="working directory"):
            check_out(out, force=True)
    check_out("x", force=True)  # a sub-folder is fine


def test_kinds_and_occupied_targets(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "f").write_text("x")
    with pytest.raises(OutputError, match="is a directory; name a file"):
        check_out(folder, force=True, kind="file")
    with pytest.raises(OutputError, match="exists and is not empty; use --force"):
        check_out(folder, force=False)
    with pytest.raises(OutputError, match="exists; use --force"):
        check_out(folder / "f", force=False, kind="file")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        check_out(folder / "f", force=True)
    with pytest.raises(OutputError, match="is not a directory"):
        check_out(folder / "f" / "nested" / "report", force=False)


def test_an_unwritable_place_is_found_before_the_work(tmp_path, monkeypatch):
    """A read-only file system (EROFS) or immutable folder (EPERM) fails the probe of ``check_out``."""
    for code in (errno.EROFS, errno.EPERM):
        def refuse(*args, code=code, **kwargs):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(report_folder.tempfile, "mkdtemp", refuse)
        with pytest.raises(OutputError, match=f"cannot write in .*{os.strerror(code)}"):
            check_out(tmp_path / "deep" / "report", force=False)
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_while_writing_the_output_becomes_one_typed_error(tmp_path):
    """Disk full while writing a report: an :class:`OutputError` naming ``--out`` and the file, nothing left.
    An OS error about another file (an input read during the block) keeps its own type."""
    out = tmp_path / "report"
    with pytest.raises(OutputError, match=r"--out .*report.*: cannot write it \(No space left on device: .*fits.json"):
        with staged_folder(out) as tmp:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "fits.json"))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        with staged_folder(out):
            (tmp_path / "missing-input.npz").read_bytes()
    assert list(tmp_path.iterdir()) == []
