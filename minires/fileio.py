"""``atomic_open``: write a file so that it is never seen half-written.

    with atomic_open("run/metrics.csv", "w") as f:
        f.write(text)

The content goes to a new temporary file beside the target; on a clean exit it is flushed, fsynced and
renamed over the target (``os.replace``, atomic on POSIX and Windows), and the directory is fsynced so the
rename itself survives a crash. On any exception the temporary file is removed and the target is left
as it was. ``mr.save``, the dataset downloads and the training example's logs all write through it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """A file object (``mode`` "w" or "wb", ``kwargs`` as ``open``'s) that replaces ``path`` when the block
    ends without an exception; its ``.name`` is the temporary path, to read back before the rename."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)[:200]}.{uuid.uuid4().hex[:12]}.tmp")
    # O_EXCL: never reuse an existing file; mode 0o666 minus the umask, as open(path, "wb") would give.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    try:
        with open(tmp, mode, **kwargs) as f:  # by name, so that f.name is the temporary path
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
