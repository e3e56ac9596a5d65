"""The part of an ingest that needs no store: parse, chunk, MinHash signatures and LSH keys of one document.

It is most of an ingest's own work (the rest is the store's), and each document's is independent of the
others', so :func:`prepare_all` runs it in worker processes when there are enough documents to repay
starting them, and hands the results back in input order (near-duplicate checks depend on the order).
"""

from __future__ import annotations

import ctypes
import fnmatch
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tether.contracts import Chunk, ParsedDocument
from tether.errors import IngestError
from tether.ingest._chunk import chunk_document
from tether.ingest._dedupe import DEFAULT_SCHEME, Scheme, band_keys, signatures
from tether.ingest.parsers import parse_file
from tether.safety._pii import redact_parsed

MIN_PARALLEL = 64
"""Fewer documents than this are prepared in this process (workers would cost more than they save)."""
_BATCH = 16  # documents sent to a worker at a time
_AHEAD = 16  # batches in flight per worker, so that workers keep going while this process writes
_AHEAD_BYTES = 64 * 1024 * 1024  # and at most this much document content read but not yet prepared


@dataclass(frozen=True)
class Recipe:
    """How to cut and hash a document (plain values: sent to every worker)."""

    max_tokens: int
    overlap_tokens: int
    num_perm: int
    bands: int
    rows: int
    scheme: Scheme = DEFAULT_SCHEME  # the index's MinHash scheme
    redact: tuple[str, ...] = ()  # ingest.redact_pii: glob patterns of sources stored with PII redacted

    def redacts(self, key: str) -> bool:
        """Whether the source ``key`` (a path as given) matches one of the ``redact`` globs (its name or its path)."""
        name = Path(key).name
        return any(
            fnmatch.fnmatch(key, g) or fnmatch.fnmatch(key, f"*/{g}") or fnmatch.fnmatch(name, g) for g in self.redact
        )


@dataclass
class Job:
    """One document to prepare, with what the ingest already knows of it.

    ``data`` is None for a document that is not to be parsed (skipped, or unchanged since it was stored);
    it still passes through :func:`prepare_all`, so that results come back in the order of the input.
    """

    key: str
    source: Path  # what picks the parser (a file's path, or "record.txt" for a record)
    data: bytes | None
    title: str | None = None  # a record's title; a file's comes from its parser
    digest: str = ""
    existing: str | None = None
    size: int = 0
    mtime: datetime | None = None
    tags: list[str] = field(default_factory=list)
    skip: str | None = None  # the reason, for a document not to be ingested
    unchanged: bool = False


@dataclass
class Prepared:
    """What :func:`prepare` made of a job: a parsed and chunked document, or the reason it was skipped."""

    parsed: ParsedDocument | None = None
    chunks: list[Chunk] = field(default_factory=list)
    signatures: npt.NDArray[np.uint64] | None = None
    band_keys: list[list[bytes]] = field(default_factory=list)
    error: str | None = None
    parse_seconds: float = 0.0
    hash_seconds: float = 0.0


def prepare(job: Job, recipe: Recipe) -> Prepared:
    """Parse and chunk ``job``'s document, and compute its chunks' MinHash signatures and LSH keys."""
    return _prepare_batch([job], recipe)[0]


def _cut(job: Job, recipe: Recipe) -> Prepared:
    """Parse and chunk (no hashing yet)."""
    if job.data is None:
        return Prepared()
    t0 = time.perf_counter()
    try:
        parsed = parse_file(job.source, job.data)
        if job.title is not None:
            parsed = parsed.model_copy(update={"title": job.title or job.key})
        if recipe.redact and recipe.redacts(job.key):
            parsed, _ = redact_parsed(parsed)
        chunks = chunk_document(parsed, recipe.max_tokens, recipe.overlap_tokens)
    except IngestError as e:
        return Prepared(error=str(e), parse_seconds=time.perf_counter() - t0)
    return Prepared(parsed=parsed, chunks=chunks, parse_seconds=time.perf_counter() - t0)


def _prepare_batch(jobs: list[Job], recipe: Recipe) -> list[Prepared]:
    """:func:`prepare` of each job; the chunks of all of them are hashed together (numpy work per call)."""
    out = [_cut(job, recipe) for job in jobs]
    todo = [p for p in out if p.parsed is not None]
    texts = [ch.text for p in todo for ch in p.chunks]
    t0 = time.perf_counter()
    sigs = signatures(texts, recipe.num_perm, recipe.scheme)
    keys = [band_keys(sig, recipe.bands, recipe.rows) for sig in sigs]
    per_chunk = (time.perf_counter() - t0) / max(1, len(texts))
    at = 0
    for p in todo:
        n = len(p.chunks)
        p.signatures, p.band_keys = sigs[at : at + n], keys[at : at + n]
        p.hash_seconds = per_chunk * n
        at += n
    return out


def default_workers() -> int:
    """Worker processes for ``ingest.workers: auto``: one per core beyond the one the ingest itself runs on,
    on Linux; elsewhere none (workers would be spawned, and a spawned worker re-runs the caller's main
    module, which a script without an ``if __name__ == "__main__"`` guard does not survive)."""
    if not sys.platform.startswith("linux"):
        return 0
    return max(0, len(os.sched_getaffinity(0)) - 1)


def _context() -> multiprocessing.context.BaseContext:
    """Forked workers on Linux: they run only the pure functions above on what they are sent, and leave
    through ``os._exit``, so the SQLite connection and onnxruntime threads they inherit are never touched.
    Elsewhere (``ingest.workers`` set explicitly) they are spawned."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """A worker's initializer: the worker goes when the ingest that started it goes, however it goes
    (kill -9 included), instead of living on as an orphan.

    On Linux the kernel sends it SIGKILL when its parent dies (``PR_SET_PDEATHSIG``); the parent may have
    died before that was set, so the worker then checks that its parent is still the one that started it.
    Elsewhere a thread watches for the parent to change. Ctrl-C is the parent's to handle: a worker
    ignores SIGINT (the terminal sends it to the whole process group) and is ended with its pool.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            set_ok = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            set_ok = False
        if os.getppid() != parent:
            os._exit(1)
        if set_ok:
            return
    threading.Thread(target=_watch_parent, args=(parent,), name="tether-watch-parent", daemon=True).start()


def _watch_parent(parent: int, every: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes that die with this one."""
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_die_with_parent, initargs=(os.getpid(),)
    )


def _submit(pool: ProcessPoolExecutor, batch: list[Job], recipe: Recipe) -> Future[list[Prepared]]:
    with warnings.catch_warnings():
        # Python 3.12+ warns when a process with threads forks; the workers use nothing those threads hold
        warnings.simplefilter("ignore", DeprecationWarning)
        return pool.submit(_prepare_batch, batch, recipe)


def prepare_all(
    jobs: Iterable[Job], recipe: Recipe, workers: int, *, before: Callable[[Job], None] | None = None
) -> Generator[tuple[Job, Prepared], None, None]:
    """Each job with its :class:`Prepared`, in input order; ``jobs`` is read lazily, a bounded way ahead.

    ``workers`` processes do the work (with 0 workers, or fewer documents than :data:`MIN_PARALLEL`, this
    process does it); if a worker dies, the rest is prepared in this process. ``before(job)`` is called
    before this process prepares a job or waits for a worker to (with each job of the batch waited for).
    """
    it = iter(jobs)
    head: list[Job] = []
    if workers > 0:
        for job in it:
            head.append(job)
            if len(head) >= MIN_PARALLEL:
                break
    if workers <= 0 or len(head) < MIN_PARALLEL:
        for job in itertools.chain(head, it):  # lazily: a job holds its document's content
            if before is not None:
                before(job)
            yield job, prepare(job, recipe)
        return
    yield from _parallel(itertools.chain(head, it), recipe, workers, before)


def _batches(jobs: Iterator[Job]) -> Iterator[list[Job]]:
    while batch := list(itertools.islice(jobs, _BATCH)):
        yield batch


_SUBMITTED = 8  # batches per worker handed to the pool at a time; the rest of the lookahead waits here


@dataclass
class _Flight:
    """A batch read ahead: waiting here (neither field set), sent to the pool (``future``), or prepared here."""

    batch: list[Job]
    future: Future[list[Prepared]] | None = None
    results: list[Prepared] | None = None

    @property
    def waiting(self) -> bool:
        return self.future is None and self.results is None


def _steal(inflight: deque[_Flight], recipe: Recipe) -> bool:
    """Prepare here the newest batch no worker has been sent; whether there was one.

    The writer would otherwise wait for the oldest batch while the workers are behind. Only a few batches
    are handed to the pool at a time, so the rest of the lookahead can still be taken back (a cancelled
    future of a pool that breaks later upsets the pool's own thread on Python 3.11, so none is cancelled)."""
    for flight in reversed(inflight):
        if flight.waiting:
            flight.results = _prepare_batch(flight.batch, recipe)
            return True
    return False


def _parallel(
    jobs: Iterator[Job], recipe: Recipe, workers: int, before: Callable[[Job], None] | None
) -> Iterator[tuple[Job, Prepared]]:
    batches = _batches(jobs)
    inflight: deque[_Flight] = deque()
    pool: ProcessPoolExecutor | None = _pool(workers)
    held = 0  # bytes of document content read ahead

    def send() -> None:
        """The oldest waiting batches go to the pool, a few per worker."""
        nonlocal pool
        if pool is None:
            return
        sent = sum(1 for f in inflight if f.future is not None and not f.future.done())
        for flight in inflight:
            if sent >= workers * _SUBMITTED:
                return
            if flight.waiting:
                try:
                    flight.future = _submit(pool, flight.batch, recipe)
                except BrokenProcessPool:
                    _give_up(pool)
                    pool = None
                    return
                sent += 1

    try:
        while True:
            while len(inflight) < workers * _AHEAD and (not inflight or held < _AHEAD_BYTES):
                batch = next(batches, None)
                if batch is None:
                    break
                held += _size(batch)
                inflight.append(_Flight(batch))
                send()  # as they are read: the workers start on the first batches at once
            if not inflight:
                return
            send()
            head = inflight[0]
            if before is not None and head.results is None:
                for job in head.batch:
                    before(job)
            while head.future is not None and not head.future.done() and _steal(inflight, recipe):
                pass
            inflight.popleft()
            held -= _size(head.batch)
            results = head.results
            if results is None and head.future is not None:
                try:
                    results = head.future.result()
                except BrokenProcessPool:
                    _give_up(pool)
                    pool = None
            if results is None:  # never sent (the pool is gone), or the pool broke: prepared here
                results = _prepare_batch(head.batch, recipe)
            yield from zip(head.batch, results, strict=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _size(batch: list[Job]) -> int:
    return sum(len(j.data) for j in batch if j.data is not None)


def _give_up(pool: ProcessPoolExecutor | None) -> None:
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    return None
