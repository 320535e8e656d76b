"""Output files are written by rename: a failure leaves the old file (or none), never
half of a new one, and an input is never overwritten."""

from __future__ import annotations

import errno
import os

import pytest

from mote.fileio import write_atomically
from mote.model import MoteError


def test_writes_and_replaces(tmp_path):
    out = tmp_path / "sub" / "m.mote"
    write_atomically(out, b"one")
    write_atomically(out, b"two")
    assert out.read_bytes() == b"two"
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.mote"]


def test_a_reader_keeps_the_old_bytes(tmp_path):
    out = tmp_path / "m.mote"
    write_atomically(out, b"old bytes")
    with open(out, "rb") as held:
        write_atomically(out, b"new")
        assert held.read() == b"old bytes"


def test_refuses_to_overwrite_an_input(tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    with pytest.raises(MoteError, match="is an input"):
        write_atomically(source, b"blob", inputs=(source, None))
    assert source.read_bytes() == b"weights"


@pytest.mark.parametrize("where", ["directory", "under a file"])
def test_unwritable_targets_are_one_error(tmp_path, where):
    target = tmp_path if where == "directory" else tmp_path / "file" / "m.mote"
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(MoteError, match="directory|cannot write"):
        write_atomically(target, b"blob")


def test_a_full_disk_leaves_nothing_behind(tmp_path, monkeypatch):
    out = tmp_path / "m.mote"
    write_atomically(out, b"old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(MoteError, match="No space left"):
        write_atomically(out, b"new" * 1000)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.mote"]
