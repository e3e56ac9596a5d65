"""How far an ingest is, counted in chunks embedded (the work that takes the time), with an ETA.

Files differ in size by orders of magnitude (one log file can hold more chunks than a thousand notes),
so progress by files stalls on a big one and then jumps. An ingest reports :class:`IngestProgress`
events: the chunks embedded so far, against those of the files chunked so far plus an estimate for the
files not yet read (their bytes at the rate of chunks per byte seen so far), and the ETA from the time
per chunk so far.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict

Stage = Literal["waiting", "reading", "embedding", "writing", "done"]


class IngestProgress(BaseModel):
    """One progress event of an ingest (``--progress json`` prints these, one per line)."""

    model_config = ConfigDict(frozen=True)

    stage: Stage
    files_done: int  # files finished: written, unchanged or skipped
    files_total: int
    chunks_done: int  # chunks embedded
    chunks_total: int  # chunks of the files chunked so far, plus the estimate for the rest
    estimated: bool  # chunks_total includes an estimate for files not yet chunked
    elapsed_s: float
    eta_s: float | None  # None until there is a rate to go by
    path: str = ""  # the file last worked on
    message: str = ""  # for stage "waiting": what is waited for

    def line(self) -> str:
        """``ingest: 1200/17648 chunks, 3 of 5 files, ETA 0:04:10`` (``~`` marks an estimated total)."""
        if self.stage == "waiting":
            return f"ingest: {self.message}"
        total = str(self.chunks_total)
        if self.estimated:
            total = f"~{total}" if self.chunks_total else "?"
        eta = "?" if self.eta_s is None else str(timedelta(seconds=round(self.eta_s)))
        if self.stage == "done":
            return (
                f"ingest: {self.chunks_done} chunks embedded, {self.files_done} of {self.files_total} files, "
                f"done in {timedelta(seconds=round(self.elapsed_s))}"
            )
        return f"ingest: {self.chunks_done}/{total} chunks, {self.files_done} of {self.files_total} files, ETA {eta}"


Listener = Callable[[IngestProgress], None]


class Tracker:
    """Counts an ingest's work and tells ``listener`` after each step."""

    def __init__(self, listener: Listener | None) -> None:
        self.listener = listener
        self.files_total = 0
        self.files_done = 0
        self.chunks_done = 0
        self.chunks_queued = 0  # chunks of the files chunked so far, to be embedded
        self.bytes_total = 0
        self.bytes_seen = 0  # of files read, chunked or found unchanged
        self._bytes_chunked = 0  # of the files that had chunks to embed
        self._sizes: dict[str, int] = {}
        self._t0 = time.monotonic()
        self._path = ""

    def start(self, files_total: int, sizes: dict[str, int]) -> None:
        """The files are known: ``files_total`` of them, ``sizes`` in bytes by key (of those to be read)."""
        self.files_total = files_total
        self._sizes = sizes
        self.bytes_total = sum(sizes.values())
        self._t0 = time.monotonic()

    def seen(self, key: str, chunks: int, *, finished: bool) -> None:
        """A file was prepared: ``chunks`` of it will be embedded (``finished``: nothing more to do for it)."""
        size = self._sizes.pop(key, 0)  # once per file
        self.bytes_seen += size
        self.chunks_queued += chunks
        if chunks:
            self._bytes_chunked += size
        if finished:
            self.files_done += 1
        self._path = key
        self.emit("reading")

    def embedded(self, n: int) -> None:
        self.chunks_done += n
        self.emit("embedding")

    def written(self, files: int) -> None:
        self.files_done += files
        self.emit("writing")

    def waiting(self, message: str) -> None:
        self.emit("waiting", message)

    def snapshot(self, stage: Stage, message: str = "") -> IngestProgress:
        elapsed = time.monotonic() - self._t0
        rest = max(0, self.bytes_total - self.bytes_seen)
        estimate = 0
        if rest and self._bytes_chunked:
            estimate = round(rest * self.chunks_queued / self._bytes_chunked)
        total = max(self.chunks_queued + estimate, self.chunks_done)
        eta: float | None = None
        if stage == "done":
            eta = 0.0
        elif self.chunks_done and elapsed > 0:
            eta = (total - self.chunks_done) * elapsed / self.chunks_done
        elif total == 0 and self.files_total and self.files_done == self.files_total:
            eta = 0.0
        return IngestProgress(
            stage=stage,
            files_done=self.files_done,
            files_total=self.files_total,
            chunks_done=self.chunks_done,
            chunks_total=total,
            estimated=rest > 0 and stage != "done",
            elapsed_s=round(elapsed, 3),
            eta_s=None if eta is None else round(eta, 1),
            path=self._path,
            message=message,
        )

    def emit(self, stage: Stage, message: str = "") -> None:
        if self.listener is not None:
            self.listener(self.snapshot(stage, message))


class ProgressPrinter:
    """Progress as lines on a stream that is not a terminal: ``plain`` (a line every ``interval`` seconds,
    the first at once) or ``json`` (one object per line, at most every ``interval`` seconds). The first
    event, a wait and the end are always printed."""

    def __init__(self, stream: TextIO, mode: Literal["plain", "json"], interval: float) -> None:
        self.stream = stream
        self.mode = mode
        self.interval = interval
        self._last: float | None = None

    def __call__(self, p: IngestProgress) -> None:
        now = time.monotonic()
        always = p.stage in ("waiting", "done") or self._last is None
        if not always and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        text = json.dumps(p.model_dump(mode="json")) if self.mode == "json" else p.line()
        self.stream.write(text + "\n")
        self.stream.flush()
