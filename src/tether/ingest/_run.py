"""One ingest of files and folders: check the paths, take the index's ingest lock, find, ingest, tidy up."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tether.config import IngestSettings
from tether.contracts import IngestSummary
from tether.errors import IngestError
from tether.ingest._files import discover, missing
from tether.ingest._lock import ingest_lock
from tether.ingest._pipeline import BATCH_CHUNKS, Ingestor, Progress
from tether.ingest._progress import Listener, Tracker
from tether.models import Embedder
from tether.store import Store


def ingest_paths(
    paths: list[Path],
    store: Store,
    embedder: Embedder,
    settings: IngestSettings,
    *,
    tags: list[str] | None = None,
    batch_size: int = BATCH_CHUNKS,
    progress: Progress | None = None,
    on_progress: Listener | None = None,
    tenant: str = "",
) -> IngestSummary:
    """Ingest files and folders into ``store`` incrementally; returns what was done and what was skipped.

    A path that does not exist is an :class:`IngestError` before anything is done. One ingest at a time
    writes an index: another one waits (``on_progress`` hears of it) and then finds the first one's work
    done. ``progress(done, total, path)`` is called as each file is queued; ``on_progress`` gets an
    :class:`~tether.ingest.IngestProgress` after each step (files read, chunks embedded, batches written).
    ``tenant``: the owner of the documents written ('' = the shared corpus every tenant's allowlist reads from).
    """
    gone = missing(paths)
    if gone:
        names = ", ".join(str(p) for p in gone)
        raise IngestError(f"{names}: no such file or folder (nothing was ingested)")
    tracker = Tracker(on_progress)
    with ingest_lock(store.lock_path, tracker.waiting):
        t0 = time.perf_counter()
        ing = Ingestor(store, embedder, settings, batch_size=batch_size, tenant=tenant)
        sources = list(discover(paths, follow_symlinks=settings.follow_symlinks))
        tracker.start(len(sources), {s.key: _size(s.path) for s in sources if s.reason is None})
        ing.tracker = tracker
        done = 0

        def on_done(f: Path) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(sources), str(f))

        ing.add_sources(sources, tags, on_done=on_done)
        ing.flush()
        ing.remove_missing(paths, {s.key for s in sources if s.reason is None})
        ing.tracker = None  # documents refreshed for their near-duplicates are not part of the count
        ing.refresh_stale()
        ing.summary.seconds = time.perf_counter() - t0
        tracker.emit("done")
        return ing.summary


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
