"""One ingest at a time per index: a second one waits for the first, then finds its work done.

Two ingests of the same folder would otherwise both read, embed and write everything (and both report
it as added). The lock is an exclusive ``flock`` on a file beside the index, so the kernel releases it
when its holder exits, however it exits (kill -9 included): no stale lock to clean up.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tether.errors import IngestError

try:
    import fcntl
except ImportError:  # Windows: no flock; the per-document hash check before each write still holds
    fcntl = None  # type: ignore[assignment]


def lock_path(index: Path) -> Path:
    return index.with_name(index.name + ".ingest-lock")


@contextmanager
def ingest_lock(index: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the ingest lock of ``index`` for the block; ``on_wait(message)`` is called once if another
    ingest holds it (this one then waits for it)."""
    if fcntl is None:
        yield
        return
    path = lock_path(index)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as e:
        raise IngestError(f"cannot lock {path} for this ingest: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            if on_wait is not None:
                on_wait(f"waiting for another ingest into {index} (pid {holder}) to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
