"""Which files an ingest reads, and how it reads them.

Only regular files are opened: a named pipe, a socket or a device would block the ingest or read
something that is not a document, so each is skipped with a reason and never opened. An ingest stays
inside the folders it was given: a symbolic link whose target lies outside them (a file, or a folder
that would be entered) is skipped unless ``ingest.follow_symlinks`` is true.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from tether.errors import IngestError

SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".tether", "__pycache__", "node_modules", ".venv", "venv"})

OUTSIDE = "symbolic link to outside the ingested folder (set ingest.follow_symlinks: true to follow it)"


class Source(NamedTuple):
    """One file an ingest found: where to read it, the key its document is stored under, and why it is
    skipped (None: it is read). ``link``: the path is a symbolic link (else it is opened without following
    one, so a file swapped for a link after it was found is not read)."""

    path: Path
    key: str
    reason: str | None = None
    link: bool = False


def kind(mode: int) -> str | None:
    """What a file of this ``st_mode`` is when it is not a regular file (None when it is one)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _not_regular(what: str) -> str:
    return f"not a regular file ({what})"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def missing(paths: Iterable[Path]) -> list[Path]:
    """The paths that do not exist (a dangling link counts as missing)."""
    return [p for p in paths if not p.exists()]


def discover(paths: Iterable[Path], *, follow_symlinks: bool = False) -> Iterator[Source]:
    """Every file under ``paths`` in a stable order (hidden files and folders, and tool folders such as
    ``.git`` and ``node_modules``, are not entered). A path named directly is read even if it is a link."""
    for root in paths:
        try:
            st = os.stat(root)
        except FileNotFoundError:
            yield Source(root, str(root), "does not exist")
            continue
        except OSError as e:
            yield Source(root, str(root), f"unreadable: {e.strerror or e}")
            continue
        real = os.path.realpath(root)
        if not stat.S_ISDIR(st.st_mode):
            what = kind(st.st_mode)
            yield Source(root, real, None if what is None else _not_regular(what), link=root.is_symlink())
            continue
        yield from _walk(Path(real), real, follow_symlinks, {(st.st_dev, st.st_ino)})


def _walk(folder: Path, root: str, follow: bool, entered: set[tuple[int, int]]) -> Iterator[Source]:
    """The files of ``folder`` (sorted), then its sub-folders' one by one; ``entered``: folders already
    walked (by device and inode), so that a link loop is not walked twice."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError:
        yield Source(folder, str(folder), "unreadable folder: permission denied")
        return
    except OSError as e:
        yield Source(folder, str(folder), f"unreadable folder: {e.strerror or e}")
        return
    subdirs: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        try:
            if entry.is_symlink():
                got = _link(path, root, follow, entered)
                if isinstance(got, Source):
                    yield got
                elif got is not None:
                    subdirs.append(got)
            elif entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS:
                    st = entry.stat(follow_symlinks=False)
                    entered.add((st.st_dev, st.st_ino))
                    subdirs.append(path)
            else:
                what = kind(entry.stat(follow_symlinks=False).st_mode)
                yield Source(path, str(path), None if what is None else _not_regular(what))
        except OSError as e:
            yield Source(path, str(path), f"unreadable: {e.strerror or e}")
    for sub in subdirs:
        yield from _walk(sub, root, follow, entered)


def _link(path: Path, root: str, follow: bool, entered: set[tuple[int, int]]) -> Source | Path | None:
    """A link found in a walk: the file to read (or skip, with the reason), a folder to enter, or None
    (a folder already walked, or one inside the root that the walk reaches where it really is)."""
    target = os.path.realpath(path)
    try:
        st = os.stat(path)
    except OSError:
        return Source(path, str(path), "broken symbolic link")
    inside = _inside(target, root)
    if not inside and not follow:
        return Source(path, str(path), OUTSIDE)
    if stat.S_ISDIR(st.st_mode):
        if inside or (st.st_dev, st.st_ino) in entered or path.name in SKIP_DIRS:
            return None
        entered.add((st.st_dev, st.st_ino))
        return path
    what = kind(st.st_mode)
    # a link to a file inside the folder is that file's document; one followed out of it is stored
    # under the link's own path, so that it is removed when the link goes
    return Source(path, target if inside else str(path), None if what is None else _not_regular(what), link=True)


def reachable(key: str, *, follow_symlinks: bool) -> bool:
    """Whether a stored document's file (its key) can still be read as it was stored: a regular file,
    reached through no link (unless links are followed)."""
    return os.path.isfile(key) and (follow_symlinks or os.path.realpath(key) == key)


def read_regular(path: Path, max_mb: float, *, follow: bool = True) -> bytes:
    """The bytes of a regular file of at most ``max_mb`` megabytes; anything else raises :class:`IngestError`.

    It is checked before it is opened (a device is never opened) and again once it is open, without
    blocking (a named pipe put in its place in between is not read).
    """
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except PermissionError:
        raise IngestError("unreadable: permission denied") from None
    except OSError as e:
        raise IngestError(f"unreadable: {e.strerror or e}") from None
    _check(st, max_mb)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise IngestError("unreadable: permission denied") from None
    except OSError as e:
        raise IngestError(f"unreadable: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        _check(os.fstat(fd), max_mb)
        try:
            return f.read()
        except OSError as e:
            raise IngestError(f"unreadable: {e.strerror or e}") from None


def _check(st: os.stat_result, max_mb: float) -> None:
    what = kind(st.st_mode)
    if what is not None:
        raise IngestError(_not_regular(what))
    if st.st_size > int(max_mb * 1024 * 1024):
        raise IngestError(f"too large ({st.st_size / 1024 / 1024:.1f} MB > ingest.max_file_mb {max_mb:g})")
