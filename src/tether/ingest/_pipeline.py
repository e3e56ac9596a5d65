from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tether.config import IngestSettings
from tether.contracts import Chunk, IngestSummary, SkippedFile
from tether.errors import IndexMismatchError, IngestError
from tether.ingest._dedupe import DEFAULT_SCHEME, LEGACY_SCHEME, Scheme, estimated_jaccard, lsh_params
from tether.ingest._files import Source, reachable, read_regular
from tether.ingest._prepare import Job, Prepared, Recipe, default_workers, prepare, prepare_all
from tether.ingest._progress import Tracker
from tether.models import Embedder
from tether.safety import InjectionDetector, detector_for
from tether.store import NewChunk, NewDocument, Store

Progress = Callable[[int, int, str], None]
"""Called as ``progress(done, total, path)`` after each file is queued (see also :class:`IngestProgress`)."""


def embedding_text(title: str, section: list[str], text: str) -> str:
    """What the embedder reads for a chunk: its title and heading path give the text its context."""
    head = " > ".join([title, *[s for s in section if s != title]])
    return f"{head}\n{text}" if head else text


BATCH_CHUNKS = 512
"""Chunks embedded together and then written in one transaction (each document still all or nothing).
Fewer, larger commits cost less: SciFact's index writes took 1.27-1.64 s at 512 against 1.44-1.85 s at
128, and the lexical index, with fewer FTS5 segments to read, 0.47-0.62 against 0.62-0.75 s; at 2,048 the
workers wait while a batch is written."""

EMBED_STEP = 64
"""Chunks embedded per call while an ingest reports progress (a multiple of ``embedding.batch_size``'s
usual values, so that the model sees the same length-sorted batches as in one call)."""

BIG_FILE_BYTES = 1024 * 1024
"""A file this large takes seconds to cut (a 20 MB one, ten): the documents queued before it are written
first. (With workers, those whose batch of files came back from a worker before the big file's batch.)"""

_MAX_WRITTEN_KEYS = 1_000_000
"""LSH keys an ingest keeps in memory (about 80 MB) before it asks the store which keys are stored."""

_Ref = int | tuple[str, int]
"""A kept chunk: its stored id, or (path, ord) while its document is still queued."""


@dataclass
class _Pending:
    path: str
    title: str
    mtime: datetime
    content_hash: str
    size: int
    text: str
    chunks: list[Chunk]
    signatures: list[npt.NDArray[np.uint64]]
    bands: list[list[bytes]]
    duplicates: list[_Ref]
    existed: bool
    tags: list[str] = field(default_factory=list)


def minhash_scheme(store: Store) -> Scheme:
    """The MinHash scheme of the index's stored signatures: the one it records; else, for an index made
    before schemes were recorded, ``datasketch`` if it holds chunks (their signatures are of that scheme),
    and the default for an empty one. The answer is recorded, so it stays the same."""
    got = store.setting("minhash_scheme")
    if got is None:
        got = LEGACY_SCHEME if store.has_chunks() else DEFAULT_SCHEME
        store.record_setting("minhash_scheme", got)
        got = store.setting("minhash_scheme") or got  # another writer may have recorded it first
    if got not in ("words64", "datasketch"):
        raise IndexMismatchError(f"{store.path} uses MinHash scheme {got!r}, which this Tether does not know")
    return got  # type: ignore[return-value]


class Ingestor:
    """parse -> chunk -> dedupe -> embed -> index; each document is written whole or not at all.

    Documents are embedded in batches across files (so small files still fill a batch) and each batch
    is written in one transaction (a savepoint per document), so a crash loses at most the batch in
    flight, never a stored document and never part of one.
    """

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        settings: IngestSettings,
        *,
        batch_size: int = BATCH_CHUNKS,
        detector: InjectionDetector | None = None,
        tenant: str = "",
    ):
        self.store = store
        self.tenant = tenant  # the owner of what this ingest writes ('' = the shared corpus); dedupe stays inside it
        self.embedder = embedder
        # every chunk is scored for prompt injection from the vector it gets anyway (docs/safety.md); a detector
        # fitted on another embedder's vectors cannot score these, and the chunks are stored as not scanned
        self.detector = detector or detector_for(getattr(embedder, "model_id", None))
        self.settings = settings
        self.batch_size = batch_size
        d = settings.dedupe
        self._bands, self._rows = lsh_params(d.threshold, d.num_perm)
        self._recipe = Recipe(
            max_tokens=settings.chunk.max_tokens,
            overlap_tokens=settings.chunk.overlap_tokens,
            num_perm=d.num_perm,
            bands=self._bands,
            rows=self._rows,
            scheme=minhash_scheme(store),
            redact=tuple(settings.redact_pii),
        )
        self.workers = default_workers() if settings.workers == "auto" else settings.workers
        self._pending: list[_Pending] = []
        self._pending_bands: dict[bytes, list[tuple[npt.NDArray[np.uint64], str, int]]] = {}
        # the LSH keys this ingest has written, while it is the only writer of an index that was empty when it
        # began: then no other stored chunk has a key, and asking the store which keys it holds is not needed
        self._written_keys: set[bytes] | None = None if store.has_chunks() else set()
        self._written_generation = store.generation
        self.summary = IngestSummary()
        self.tracker: Tracker | None = None  # told of the work as it is done (set by ingest_paths)

    # -- one file --------------------------------------------------------------
    def _duplicate_of(
        self, sig: npt.NDArray[np.uint64], keys: list[bytes], path: str, stored: set[bytes]
    ) -> _Ref | None:
        """The chunk (stored id, or queued (path, ord)) that this signature nearly duplicates, if any.

        ``stored``: the keys among this document's that stored chunks (of other documents) have; a chunk
        with none of them has no stored near-duplicate, and the store is not asked.
        """
        th = self.settings.dedupe.threshold
        for k in keys:
            for other, opath, oord in self._pending_bands.get(k, ()):
                if estimated_jaccard(sig, other) >= th:
                    return (opath, oord)
        if stored.isdisjoint(keys):
            return None
        found = self.store.near_duplicates(keys, sig, th, exclude_path=path, tenant=self.tenant)
        return found[0] if found else None

    def _file_job(self, source: Source, tags: list[str] | None) -> Job:
        """What the ingest knows of a file before parsing it: read, hashed, and compared with the stored copy."""
        path, key = source.path, source.key
        suffix = path.suffix.lower()
        if source.reason is not None:
            return Job(key=key, source=path, data=None, skip=source.reason)
        if suffix not in self.settings.extensions:
            return Job(key=key, source=path, data=None, skip=f"unsupported file type '{suffix or '(none)'}'")
        try:
            data = read_regular(path, self.settings.max_file_mb, follow=source.link)
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except IngestError as e:
            return Job(key=key, source=path, data=None, skip=str(e))
        except OSError as e:
            return Job(key=key, source=path, data=None, skip=f"unreadable: {e.strerror or e}")
        digest = hashlib.sha256(data).hexdigest()
        owner = self._other_owner(key)
        if owner is not None:
            return Job(key=key, source=path, data=None, skip=owner)
        existing = self.store.document_hash(key)
        if existing == digest:
            return Job(key=key, source=path, data=None, tags=list(tags or []), unchanged=True)
        return Job(
            key=key,
            source=path,
            data=data,
            digest=digest,
            existing=existing,
            size=len(data),
            mtime=mtime,
            tags=list(tags or []),
        )

    def _record_job(self, key: str, title: str, text: str, mtime: datetime | None, tags: list[str] | None) -> Job:
        data = text.encode("utf-8")
        digest = hashlib.sha256(title.encode("utf-8") + b"\0" + data).hexdigest()
        owner = self._other_owner(key)
        if owner is not None:
            return Job(key=key, source=Path(key), data=None, skip=owner)
        existing = self.store.document_hash(key)
        if existing == digest:
            return Job(key=key, source=Path(key), data=None, tags=list(tags or []), unchanged=True)
        return Job(
            key=key,
            source=Path("record.txt"),
            data=data,
            title=title,
            digest=digest,
            existing=existing,
            size=len(data),
            mtime=mtime or datetime.now(UTC),
            tags=list(tags or []),
        )

    def _other_owner(self, key: str) -> str | None:
        """Why the document at ``key`` is not this ingest's to write: another owner holds it (an ingest never moves
        a document between tenants, or between a tenant and the shared corpus). None when it may be written."""
        owner = self.store.document_path_tenant(key)
        if owner is None or owner == self.tenant:
            return None
        held = f"tenant {owner!r}" if owner else "the shared corpus"
        return f"stored for {held}; an ingest never moves a document to another owner"

    def add_file(self, path: Path, tags: list[str] | None = None, *, key: str | None = None) -> None:
        """Parse and queue one file (stored under ``key``, by default its resolved path); skipped files are
        recorded in the summary with their reason. The file is read even if it is a link."""
        job = self._file_job(Source(path, key or str(path.resolve()), link=True), tags)
        self._accept(job, prepare(job, self._recipe))

    def add_record(
        self, key: str, title: str, text: str, *, mtime: datetime | None = None, tags: list[str] | None = None
    ) -> None:
        """Queue a document that is not a file (a database row, a BEIR corpus record) as plain text."""
        job = self._record_job(key, title, text, mtime, tags)
        self._accept(job, prepare(job, self._recipe))

    def add_files(
        self, files: Iterable[Path], tags: list[str] | None = None, *, on_done: Callable[[Path], None] | None = None
    ) -> None:
        """:meth:`add_file` for each file, parsed, chunked and hashed by ``ingest.workers`` processes.

        ``on_done(path)`` is called as each file is queued (in order).
        """
        self.add_sources((Source(f, str(f.resolve()), link=True) for f in files), tags, on_done=on_done)

    def add_sources(
        self, sources: Iterable[Source], tags: list[str] | None = None, *, on_done: Callable[[Path], None] | None = None
    ) -> None:
        """:meth:`add_files` of files found by :func:`~tether.ingest.discover` (each with its key, and the
        reason it is skipped, if any)."""
        jobs = (self._file_job(s, tags) for s in sources)
        with closing(prepare_all(jobs, self._recipe, self.workers, before=self._before_prepare)) as prepared_all:
            for job, prepared in prepared_all:
                self._accept(job, prepared)
                if on_done is not None:
                    on_done(job.source)

    def _before_prepare(self, job: Job) -> None:
        """Write what is queued before a big file is cut (that takes seconds: ten for 20 MB)."""
        if self._pending and job.data is not None and len(job.data) >= BIG_FILE_BYTES:
            self.flush()

    def add_records(
        self,
        records: Iterable[tuple[str, str, str]],
        tags: list[str] | None = None,
        *,
        on_done: Callable[[str], None] | None = None,
    ) -> None:
        """:meth:`add_record` for each ``(key, title, text)``, prepared by ``ingest.workers`` processes.

        ``on_done(key)`` is called as each record is queued (in order).
        """
        jobs = (self._record_job(k, title, text, None, tags) for k, title, text in records)
        with closing(prepare_all(jobs, self._recipe, self.workers)) as prepared_all:
            for job, prepared in prepared_all:
                self._accept(job, prepared)
                if on_done is not None:
                    on_done(job.key)

    def _accept(self, job: Job, prepared: Prepared) -> None:
        """Queue a prepared document (or record why it was skipped, or that it is unchanged)."""
        self.summary.parse_seconds += prepared.parse_seconds
        self.summary.dedupe_seconds += prepared.hash_seconds
        if job.skip is not None:
            self._skip_job(job, job.skip)
            return
        if job.unchanged:
            self.summary.unchanged += 1
            if job.tags:
                self.store.add_tags(job.key, job.tags)
            self._seen(job)
            return
        if prepared.error is not None:
            self._skip_job(job, prepared.error)
            return
        self._queue(job, prepared)

    def _seen(self, job: Job) -> None:
        if self.tracker is not None:
            self.tracker.seen(job.key, 0, finished=True)

    def _queue(self, job: Job, prepared: Prepared) -> None:
        chunks = prepared.chunks
        key = job.key
        if not chunks:
            self._skip_job(job, "no text to index")
            return
        cap = self.settings.max_chunks_per_file
        if len(chunks) > cap:
            self._skip_job(job, f"too many chunks ({len(chunks)} > ingest.max_chunks_per_file {cap})")
            return
        assert prepared.parsed is not None and prepared.signatures is not None
        if self._pending and len(chunks) >= self.batch_size:
            self.flush()  # a document that fills a batch alone: what is queued before it is written first
        t0 = time.perf_counter()
        kept: list[Chunk] = []
        sigs: list[npt.NDArray[np.uint64]] = []
        bands: list[list[bytes]] = []
        dups: list[_Ref] = []
        d = self.settings.dedupe
        all_keys = prepared.band_keys
        stored = self._stored_keys([k for keys in all_keys for k in keys], key) if d.enabled else set()
        for ch, sig, keys in zip(chunks, prepared.signatures, all_keys, strict=True):
            ref = self._duplicate_of(sig, keys, key, stored) if d.enabled else None
            if ref is not None:
                dups.append(ref)
                continue
            for k in keys:
                self._pending_bands.setdefault(k, []).append((sig, key, ch.ord))
            kept.append(ch)
            sigs.append(sig)
            bands.append(keys)
        self.summary.dedupe_seconds += time.perf_counter() - t0
        if self.tracker is not None:
            self.tracker.seen(key, len(kept), finished=False)
        self._pending.append(
            _Pending(
                path=key,
                title=prepared.parsed.title,
                mtime=job.mtime or datetime.now(UTC),
                content_hash=job.digest,
                size=job.size,
                text=prepared.parsed.text,
                chunks=kept,
                signatures=sigs,
                bands=bands,
                duplicates=dups,
                existed=job.existing is not None,
                tags=job.tags,
            )
        )
        if sum(len(p.chunks) for p in self._pending) >= self.batch_size:
            self.flush()

    def _stored_keys(self, keys: list[bytes], path: str) -> set[bytes]:
        """Those of ``keys`` that stored chunks may have (a superset: :meth:`SQLiteStore.near_duplicates` checks
        each candidate). The keys this ingest wrote, while nothing else has written to the index since it began
        empty (its generation is the one this ingest's last batch left); otherwise the store is asked."""
        if self._written_keys is not None and self.store.generation == self._written_generation:
            return self._written_keys.intersection(keys)
        self._written_keys = None
        return self.store.stored_band_keys(keys, path, self.tenant)

    def _skip_job(self, job: Job, reason: str) -> None:
        """Record a skipped document under the name its caller gave it (a file's path, a record's key)."""
        self._skip(job.source if job.title is None else Path(job.key), reason)
        self._seen(job)

    def _skip(self, path: Path, reason: str) -> None:
        self.summary.skipped.append(SkippedFile(path=str(path), reason=reason))

    def flush(self) -> None:
        """Embed every queued chunk in batches, then write the queued documents in one transaction."""
        if not self._pending:
            return
        texts = [embedding_text(p.title, c.section, c.text) for p in self._pending for c in p.chunks]
        t0 = time.perf_counter()
        vectors = self._embed(texts)
        t1 = time.perf_counter()
        self.summary.embed_seconds += t1 - t0
        self.store.check_embedding(self.embedder.model_id, self.embedder.dim)
        written: dict[tuple[str, int], int] = {}
        before = self.store.generation
        try:
            with self.store.batch():
                self._write_pending(vectors, written)
        except BaseException:
            self._written_keys = None  # part of the batch may be stored: the store is asked from now on
            raise
        self._remember_keys(before)
        self.summary.index_seconds += time.perf_counter() - t1
        if self.tracker is not None:
            self.tracker.written(len(self._pending))
        self._pending.clear()
        self._pending_bands.clear()

    def _embed(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """The texts' vectors; with a tracker, :data:`EMBED_STEP` at a time in length order (the order the
        embedder batches them in), reporting each step."""
        if not texts:
            return np.zeros((0, self.embedder.dim), np.float32)
        if self.tracker is None:
            return self.embedder.embed(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.embedder.dim), np.float32)
        for at in range(0, len(order), EMBED_STEP):
            idx = order[at : at + EMBED_STEP]
            out[idx] = self.embedder.embed([texts[i] for i in idx])
            self.tracker.embedded(len(idx))
        return out

    def _remember_keys(self, before: int) -> None:
        """Add the written batch's keys to those this ingest wrote, if its commit is the only one since
        ``before`` (the generation before it) and the set stays under :data:`_MAX_WRITTEN_KEYS`."""
        known = self._written_keys
        if known is None:
            return
        after = self.store.generation
        if before != self._written_generation or after - before > 1:
            self._written_keys = None  # another writer came in between
            return
        for p in self._pending:
            for keys in p.bands:
                known.update(keys)
        self._written_generation = after
        if len(known) > _MAX_WRITTEN_KEYS:
            self._written_keys = None

    def _write_pending(self, vectors: npt.NDArray[np.float32], written: dict[tuple[str, int], int]) -> None:
        i = 0
        for p in self._pending:
            if self.store.document_hash(p.path) == p.content_hash:
                # another ingest stored this very content since it was read: nothing to write or count twice
                self.summary.unchanged += 1
                for cid, ordinal in self.store.chunk_ords(p.path):
                    written[(p.path, ordinal)] = cid
                i += len(p.chunks)
                continue
            new_chunks = []
            scores: list[float | None] = [None] * len(p.chunks)
            if self.detector is not None and p.chunks:
                scores = list(
                    self.detector.chunk_scores(
                        [ch.text for ch in p.chunks], vectors[i : i + len(p.chunks)], self.embedder.embed
                    )
                )
            for ch, sig, keys, score in zip(p.chunks, p.signatures, p.bands, scores, strict=True):
                new_chunks.append(
                    NewChunk(
                        ord=ch.ord,
                        start=ch.start,
                        end=ch.end,
                        text=ch.text,
                        section=ch.section,
                        kinds=list(ch.kinds),
                        vector=vectors[i],
                        signature=sig,
                        band_keys=keys,
                        injection=score,
                    )
                )
                i += 1
            self.store.put_document(
                NewDocument(
                    path=p.path,
                    title=p.title,
                    mtime=p.mtime,
                    content_hash=p.content_hash,
                    size=p.size,
                    text=p.text,
                    chunks=new_chunks,
                    tags=p.tags,
                    tenant=self.tenant,
                    n_duplicates=len(p.duplicates),
                    duplicate_of=[
                        r if isinstance(r, int) else written[r]
                        for r in p.duplicates
                        if r in written or isinstance(r, int)
                    ],
                )
            )
            for cid, ordinal in self.store.chunk_ords(p.path):
                written[(p.path, ordinal)] = cid
            if p.existed:
                self.summary.updated += 1
            else:
                self.summary.added += 1
            self.summary.chunks += len(new_chunks)
            self.summary.duplicates_removed += len(p.duplicates)

    def remove_missing(self, roots: list[Path], seen: set[str]) -> None:
        """Delete the stored documents under a folder root that this ingest did not find: their file is
        gone, is no longer a regular file, or is reached through a link it may not follow."""
        prefixes = [os.path.realpath(r) + os.sep for r in roots if r.is_dir()]
        if not prefixes:
            return
        follow = self.settings.follow_symlinks
        for stored in self.store.paths():
            if (
                stored not in seen
                and any(stored.startswith(px) for px in prefixes)
                and not reachable(stored, follow_symlinks=follow)
                and self.store.delete_document(stored)
            ):
                self.summary.removed += 1

    def refresh_stale(self, rounds: int = 3) -> None:
        """Re-ingest files whose near-duplicate chunks lost their kept copy (it was edited or deleted)."""
        follow = self.settings.follow_symlinks
        for _ in range(rounds):
            stale = [p for p in self.store.stale_paths() if reachable(p, follow_symlinks=follow)]
            if not stale:
                return
            mine, self._written_keys = self.tenant, None  # keys written for one owner say nothing of another's
            by_owner: dict[str, list[str]] = {}
            for p in stale:
                by_owner.setdefault(self.store.document_path_tenant(p) or "", []).append(p)
            try:
                for owner, paths in sorted(by_owner.items()):
                    self.tenant = owner  # a document keeps its owner, and its near-duplicates are its owner's
                    for p in paths:
                        self.add_file(Path(p), key=p)
                    self.flush()
            finally:
                self.tenant = mine
