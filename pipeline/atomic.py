"""Output files written whole or not at all: temp files beside them, fsync, then rename."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import PipelineError


class OutputError(PipelineError):
    """An output file (a report, its tables) cannot be written: the files there are unchanged."""

    exit_code = 3


def write_files(contents: Mapping[Path, bytes]) -> None:
    """Write every file of `contents`, or none of them.

    Each is written to a temporary file in its own folder (so that the rename does not cross
    file systems), flushed to disk, and only when all are written are they renamed over their
    targets: a full disk or a missing permission leaves every existing file as it was. A
    missing folder is created, as `--out reports/week.html` is expected to work."""
    written: list[tuple[Path, Path]] = []
    target = next(iter(contents), Path())
    try:
        for target, data in contents.items():
            written.append((_write_beside(target, data), target))
        for temporary, target in written:
            os.replace(temporary, target)
    except BaseException as exc:  # a stop too: no temporary file is left behind
        for temporary, _ in written:
            temporary.unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        raise OutputError(
            f"cannot write {target}: {exc.strerror or exc}; files already there are unchanged"
        ) from None


def _write_beside(path: Path, data: bytes) -> Path:
    """`data` in a new temporary file in `path`'s folder, on disk when this returns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if path.exists() and not path.is_file():
        # A device, a pipe or a socket (`--out /dev/null`): the rename would replace it.
        raise OSError(errno.EINVAL, "not a regular file, which a report would replace", str(path))
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file owner-only; an output is as readable as any file the user
        # creates.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)
