"""rnadiff.io.atomic: complete files or the old ones, never a partial file or a stray temporary."""
from __future__ import annotations

import pytest

from rnadiff.errors import OutputError
from rnadiff.io.atomic import atomic_write, atomic_write_bytes, atomic_write_dir, atomic_write_text


def test_writes_replace_whole_files(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "b.bin", "sub"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")

    def half_then_fail(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with pytest.raises(OutputError, match="missing/x.txt: cannot write it"):
        atomic_write_text(tmp_path / "missing" / "x.txt", "x", make_parents=False)


def test_directory_write_replaces_whole_or_keeps_the_old(tmp_path):
    from rnadiff.io.atomic import atomic_write_dir

    target = tmp_path / "out"
    atomic_write_dir(target, lambda d: (d / "a.txt").write_text("old"))
    assert (target / "a.txt").read_text() == "old" and oct(target.stat().st_mode & 0o777) == "0o755"

    def failing(d):
        (d / "a.txt").write_text("half")
        raise RuntimeError("writer failed")

    import pytest

    with pytest.raises(RuntimeError):
        atomic_write_dir(target, failing)
    assert (target / "a.txt").read_text() == "old"
    atomic_write_dir(target, lambda d: (d / "b.txt").write_text("new"))
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporaries left beside it


def test_atomic_writes_name_the_target_they_cannot_write(tmp_path):
    """The one atomic writer turns an operating-system failure into an OutputError naming the
    target (the CLI's one-line error), for files and folders alike."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="a_file/out.json: cannot write"):
        atomic_write_text(blocker / "out.json", "{}")
    with pytest.raises(OutputError, match="a_file/samples: cannot write"):
        atomic_write_dir(blocker / "samples", lambda tmp: None)
    assert blocker.read_text() == "x"
