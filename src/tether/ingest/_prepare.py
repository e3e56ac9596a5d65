"""The part of an ingest that needs no store: parse, chunk, MinHash signatures and LSH keys of one document.

It is most of an ingest's own work (the rest is the store's), and each document's is independent of the
others', so :func:`prepare_all` runs it in worker processes when there are enough documents to repay
starting them, and hands the results back in input order (near-duplicate checks depend on the order).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
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
from tether.ingest._dedupe import band_keys, signatures
from tether.ingest.parsers import parse_file

MIN_PARALLEL = 64
"""Fewer documents than this are prepared in this process: starting workers costs ~0.5 s."""
_BATCH = 16  # documents sent to a worker at a time
_AHEAD = 4  # batches in flight per worker (bounds the memory held by documents read but not yet stored)


@dataclass(frozen=True)
class Recipe:
    """How to cut and hash a document (plain values: sent to every worker)."""

    max_tokens: int
    overlap_tokens: int
    num_perm: int
    bands: int
    rows: int


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
    if job.data is None:
        return Prepared()
    t0 = time.perf_counter()
    try:
        parsed = parse_file(job.source, job.data)
        if job.title is not None:
            parsed = parsed.model_copy(update={"title": job.title or job.key})
        chunks = chunk_document(parsed, recipe.max_tokens, recipe.overlap_tokens)
    except IngestError as e:
        return Prepared(error=str(e), parse_seconds=time.perf_counter() - t0)
    t1 = time.perf_counter()
    sigs = signatures([ch.text for ch in chunks], recipe.num_perm)
    keys = [band_keys(sig, recipe.bands, recipe.rows) for sig in sigs]
    return Prepared(
        parsed=parsed,
        chunks=chunks,
        signatures=sigs,
        band_keys=keys,
        parse_seconds=t1 - t0,
        hash_seconds=time.perf_counter() - t1,
    )


def _prepare_batch(jobs: list[Job], recipe: Recipe) -> list[Prepared]:
    return [prepare(job, recipe) for job in jobs]


def default_workers() -> int:
    """Worker processes for ``ingest.workers: auto``: one per core beyond the one the ingest itself runs on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, cores - 1)


def _context() -> multiprocessing.context.BaseContext:
    """Workers start from a clean process (a forkserver where there is one), never as a fork of this one:
    the ingest's process holds onnxruntime's threads and an open SQLite connection."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tether.ingest._prepare"])
        return ctx
    return multiprocessing.get_context("spawn")


def prepare_all(jobs: Iterable[Job], recipe: Recipe, workers: int) -> Iterator[tuple[Job, Prepared]]:
    """Each job with its :class:`Prepared`, in input order; ``jobs`` is read lazily, a bounded way ahead.

    ``workers`` processes do the work (0 or 1 document short of :data:`MIN_PARALLEL`: this process does);
    if a worker dies, the rest is prepared in this process.
    """
    it = iter(jobs)
    head: list[Job] = []
    if workers > 0:
        for job in it:
            head.append(job)
            if len(head) >= MIN_PARALLEL:
                break
    if workers <= 0 or len(head) < MIN_PARALLEL:
        for job in [*head, *it]:
            yield job, prepare(job, recipe)
        return
    yield from _parallel(head, it, recipe, workers)


def _batches(head: list[Job], rest: Iterator[Job]) -> Iterator[list[Job]]:
    batch: list[Job] = []
    for job in head:
        batch.append(job)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    for job in rest:
        batch.append(job)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _parallel(head: list[Job], rest: Iterator[Job], recipe: Recipe, workers: int) -> Iterator[tuple[Job, Prepared]]:
    batches = _batches(head, rest)
    inflight: deque[tuple[list[Job], Future[list[Prepared]] | None]] = deque()
    pool: ProcessPoolExecutor | None = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
    try:
        while True:
            while pool is not None and len(inflight) < workers * _AHEAD:
                batch = next(batches, None)
                if batch is None:
                    break
                try:
                    inflight.append((batch, pool.submit(_prepare_batch, batch, recipe)))
                except BrokenProcessPool:
                    _give_up(pool)
                    pool = None
                    inflight.append((batch, None))
            if not inflight:
                if pool is None:  # the pool died: the rest here, one batch at a time
                    batch = next(batches, None)
                    if batch is None:
                        return
                    inflight.append((batch, None))
                else:
                    return
            batch, fut = inflight.popleft()
            results: list[Prepared] | None = None
            if fut is not None:
                try:
                    results = fut.result()
                except BrokenProcessPool:
                    _give_up(pool)
                    pool = None
            if results is None:
                results = _prepare_batch(batch, recipe)
            yield from zip(batch, results, strict=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _give_up(pool: ProcessPoolExecutor | None) -> None:
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    return None
