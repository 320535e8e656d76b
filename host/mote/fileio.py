"""Writing output files so that nothing is ever left half-written: the bytes go to a
temporary file in the target's folder, are flushed to disk, then renamed over the
target in one step. A reader that has the old file open (a running `mote-linux`
with the blob mapped) keeps the old bytes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mote.model import MoteError


def write_atomically(path: Path, data: bytes, inputs: Iterable[Path] = ()) -> None:
    """Write `data` to `path` by rename; refuse to overwrite any of `inputs`."""
    path = Path(path)
    for source in inputs:
        if source is not None and Path(source).exists() and path.exists() and path.samefile(source):
            raise MoteError(f"{path}: is an input of this command; write the output elsewhere")
    if path.is_dir():
        raise MoteError(f"{path}: is a directory")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise MoteError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        os.unlink(tmp)
        raise MoteError(f"cannot write {path}: {err.strerror or err}") from None
