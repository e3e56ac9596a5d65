from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tether._sqlite import immediate
from tether.contracts import DocumentMeta, Hit, SearchFilters, StoreStats
from tether.errors import IndexMismatchError, IndexMissingError
from tether.store._ann import AnnIndex
from tether.store._lexical import LexicalIndex
from tether.store._protocol import ChunkRow, NewChunk, NewDocument, ScoredId

SCHEMA_VERSION = 4
"""v4 added ``documents.tenant`` (the tenant that owns a document uploaded through the service; '' = the shared
corpus), v3 ``chunks.injection`` (the injection detector's score; NULL = not scanned); v2 and v3 indexes are
upgraded in place on open."""
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    mtime REAL NOT NULL,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    text TEXT NOT NULL,
    n_chunks INTEGER NOT NULL,
    n_duplicates INTEGER NOT NULL DEFAULT 0,
    ingested_at REAL NOT NULL,
    tenant TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    section TEXT NOT NULL,
    section_path TEXT NOT NULL,
    kinds TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL,
    minhash BLOB NOT NULL,
    injection REAL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS lsh (
    band BLOB NOT NULL,
    chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS lsh_band ON lsh(band);
CREATE INDEX IF NOT EXISTS lsh_chunk ON lsh(chunk_id);
CREATE TABLE IF NOT EXISTS dup_refs (
    kept_chunk_id INTEGER NOT NULL,
    doc_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dup_refs_kept ON dup_refs(kept_chunk_id);
CREATE INDEX IF NOT EXISTS dup_refs_doc ON dup_refs(doc_path);
CREATE TRIGGER IF NOT EXISTS chunks_stale_dups AFTER DELETE ON chunks BEGIN
    UPDATE documents SET content_hash = '' WHERE path IN
        (SELECT doc_path FROM dup_refs WHERE kept_chunk_id = old.id) AND id != old.doc_id;
    DELETE FROM dup_refs WHERE kept_chunk_id = old.id;
END;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, title, section, content='chunks', content_rowid='id',
    tokenize='{FTS_TOKENIZE}'
);
-- chunks reach FTS5 from put_document, in one statement per document: FTS5 fed row by row from an insert
-- trigger took 2.5x as long (0.88 vs 0.36 s for SciFact's 11,583 chunks); indexes made before had the trigger
DROP TRIGGER IF EXISTS chunks_ai;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, title, section)
    VALUES ('delete', old.id, old.text, old.title, old.section);
END;
"""


def _aligned(shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    """An uninitialised float32 matrix whose data starts on a 64-byte boundary (full-width SIMD loads)."""
    n = shape[0] * shape[1]
    buf = np.empty(n + 16, dtype=np.float32)
    skip = (-buf.ctypes.data % 64) // 4
    out: npt.NDArray[np.float32] = buf[skip : skip + n].reshape(shape)
    return out


def _section_text(section: list[str]) -> str:
    return " > ".join(section)


def _fts_quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to the index file with the settings every connection needs (the journal mode is the file's)."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SQLiteStore:
    """The embedded default: one SQLite file with FTS5 (BM25) and float32 vectors.

    Dense search is exact (numpy) over a matrix loaded once and reloaded only when the
    index changes. Every document is written in one transaction, so a crash at any moment
    leaves earlier documents intact and no half-written one.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, ann_threshold: int = 50_000) -> None:
        self._batch: list[NewDocument] | None = None  # documents written in the open batch()
        self._batch_cut = False  # a document of the batch is part-written
        self._pending_id: int | None = None  # next chunk id, while a transaction's writes defer their meta
        # One connection per thread: a transaction (a writer's batch, a reader's snapshot) belongs to the thread
        # that opened it, so one thread's statements never run inside, commit or roll back another's.
        self._local = threading.local()
        self._local.conn = conn
        self._conns: list[sqlite3.Connection] = [conn]
        self._conns_lock = threading.Lock()
        self._closed = False
        self.path = path
        self.lock_path = path  # ingests into this index wait for each other on a file beside it
        self.ann_threshold = ann_threshold
        self._ann: AnnIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._cache_lock = threading.RLock()  # derived caches are synced and searched by one thread at a time
        self._count: tuple[int, int] = (-1, 0)  # (generation, chunks)
        self._owned: tuple[int, bool] = (-1, False)  # (generation, whether a tenant owns a document)
        self._matrix: npt.NDArray[np.float32] | None = None
        self._ids: npt.NDArray[np.int64] | None = None
        self._loaded_generation = -1

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, create: bool = False, ann_threshold: int = 50_000) -> SQLiteStore:
        """Open an index. With ``create=False`` a missing file is an :class:`IndexMissingError`."""
        p = Path(path)
        if not p.exists():
            if not create:
                raise IndexMissingError(f"no index at {p}; run `tether ingest PATH` first")
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = _connect(p)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise IndexMismatchError(f"{p} is not a Tether index ({e}); move it away or set index.path") from None
        store = cls(conn, p, ann_threshold=ann_threshold)
        version = store._meta("schema_version")
        if version is None:
            store._set_meta("schema_version", str(SCHEMA_VERSION))
            store._set_meta("generation", "0")
        elif int(version) in (2, 3):
            store._upgrade()
        elif int(version) != SCHEMA_VERSION:
            raise IndexMismatchError(
                f"{p} has index layout v{version}, this Tether reads v{SCHEMA_VERSION}; re-ingest into a new index"
            )
        return store

    def _upgrade(self) -> None:
        """Add the columns of later layouts, in one transaction: ``chunks.injection`` (NULL: chunks ingested before
        the detector are not scanned) and ``documents.tenant`` ('': every stored document is the shared corpus).
        Another process upgrading the same file at once finds the columns there and leaves them."""
        with immediate(self._conn) as c:
            if "injection" not in {r[1] for r in c.execute("PRAGMA table_info(chunks)")}:
                c.execute("ALTER TABLE chunks ADD COLUMN injection REAL")
            if "tenant" not in {r[1] for r in c.execute("PRAGMA table_info(documents)")}:
                c.execute("ALTER TABLE documents ADD COLUMN tenant TEXT NOT NULL DEFAULT ''")
            self._set_meta("schema_version", str(SCHEMA_VERSION))

    @property
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection to the index (opened on a thread's first use; all closed by :meth:`close`)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._conns_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                conn = _connect(self.path)
                self._conns.append(conn)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        if self._lexical is not None:
            self._lexical.close()
            self._lexical = None
        with self._conns_lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def setting(self, key: str) -> str | None:
        """A value the index records about how it was built (such as ``minhash_scheme``), or None."""
        return self._meta(f"setting:{key}")

    def record_setting(self, key: str, value: str) -> None:
        """Record how the index is built, once: a value already recorded is kept."""
        c = self._conn
        c.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (f"setting:{key}", value))

    def check_embedding(self, model_id: str, dim: int) -> None:
        """Record the embedding model on first use; refuse to mix vectors of two models."""
        have = self._meta("embedding_model")
        if have is None:
            self._set_meta("embedding_model", model_id)
            self._set_meta("dim", str(dim))
        elif have != model_id or int(self._meta("dim") or 0) != dim:
            raise IndexMismatchError(
                f"{self.path} was built with embedding model {have}, not {model_id}; "
                "use another index.path or re-ingest from scratch"
            )

    def _generation(self) -> int:
        return int(self._meta("generation") or 0)

    # -- writing ---------------------------------------------------------------
    def document_hash(self, path: str) -> str | None:
        row = self._conn.execute("SELECT content_hash FROM documents WHERE path=?", (path,)).fetchone()
        return None if row is None else str(row[0])

    def add_tags(self, path: str, tags: list[str]) -> bool:
        """Add tags to a stored document (no re-ingest needed); True if anything changed."""
        row = self._conn.execute("SELECT tags FROM documents WHERE path=?", (path,)).fetchone()
        if row is None:
            return False
        have = set(json.loads(row[0]))
        if set(tags) <= have:
            return False
        self._conn.execute("UPDATE documents SET tags=? WHERE path=?", (json.dumps(sorted(have | set(tags))), path))
        return True

    def chunk_ords(self, path: str) -> list[tuple[int, int]]:
        """(chunk id, ord) of a stored document's chunks."""
        return [
            (int(r[0]), int(r[1]))
            for r in self._conn.execute(
                "SELECT c.id, c.ord FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.path=?", (path,)
            )
        ]

    def stale_paths(self) -> list[str]:
        """Documents that lost the kept copy of one of their near-duplicate chunks: re-ingest them."""
        return [str(r[0]) for r in self._conn.execute("SELECT path FROM documents WHERE content_hash = ''")]

    def paths(self) -> list[str]:
        return [str(r[0]) for r in self._conn.execute("SELECT path FROM documents ORDER BY path")]

    def put_document(self, doc: NewDocument) -> int:
        """Insert or replace the document at ``doc.path`` with its chunks, in one transaction.

        Inside :meth:`batch` it joins the batch's transaction (see there for what an error undoes).
        """
        c = self._conn
        if self._batch is not None:
            # no savepoint: FTS5 writes its pending tokens out at every savepoint release, which cost more
            # than the rest of a document's FTS5 work; batch() undoes a document cut short another way
            self._batch_cut = True
            doc_id = self._write_document(doc, defer=True)
            self._batch_cut = False
            self._batch.append(doc)
            return doc_id
        nested = c.in_transaction
        c.execute("SAVEPOINT put_document" if nested else "BEGIN IMMEDIATE")
        try:
            doc_id = self._write_document(doc)
            c.execute("RELEASE put_document" if nested else "COMMIT")
        except BaseException:
            if nested:
                c.execute("ROLLBACK TO put_document")
                c.execute("RELEASE put_document")
            else:
                c.execute("ROLLBACK")
            raise
        return doc_id

    def export_document(self, path: str) -> NewDocument | None:
        """The stored document at ``path`` as :meth:`put_document` takes it (text, chunks with their vectors,
        MinHash signatures and band keys, owner, tags): what `tether store export` writes. None: no such path."""
        c = self._conn
        row = c.execute(
            "SELECT id, title, mtime, content_hash, size, tags, text, n_duplicates, tenant FROM documents WHERE path=?",
            (path,),
        ).fetchone()
        if row is None:
            return None
        chunks = []
        for cid, ord_, start, end, section, kinds, text, vector, minhash, injection in c.execute(
            'SELECT id, ord, start, "end", section_path, kinds, text, vector, minhash, injection FROM chunks'
            " WHERE doc_id=? ORDER BY ord",
            (row[0],),
        ):
            bands = [bytes(b[0]) for b in c.execute("SELECT band FROM lsh WHERE chunk_id=?", (cid,))]
            chunks.append(
                NewChunk(
                    ord=int(ord_),
                    start=int(start),
                    end=int(end),
                    text=str(text),
                    section=list(json.loads(section)),
                    kinds=list(json.loads(kinds)),
                    vector=np.frombuffer(vector, dtype=np.float32).copy(),
                    signature=np.frombuffer(minhash, dtype=np.uint64).copy(),
                    band_keys=bands,
                    injection=None if injection is None else float(injection),
                )
            )
        return NewDocument(
            path=path,
            title=str(row[1]),
            mtime=datetime.fromtimestamp(float(row[2]), UTC),
            content_hash=str(row[3]),
            size=int(row[4]),
            text=str(row[6]),
            chunks=chunks,
            tags=list(json.loads(row[5])),
            n_duplicates=int(row[7]),
            tenant=str(row[8]),
        )

    def _write_document(self, doc: NewDocument, *, defer: bool = False) -> int:
        """The writes of :meth:`put_document`, in the open transaction.

        ``defer``: the index's bookkeeping (next chunk id, generation, last ingest) is written once by
        :meth:`_record_deferred` before the transaction commits, not once per document."""
        c = self._conn
        # chunk ids are allocated here and never reused (SQLite would hand the largest deleted id out
        # again), so the derived indexes (lexical, HNSW) can trust that an id names one content
        if self._pending_id is not None:
            first_id = self._pending_id
        else:
            top = c.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0]
            first_id = max(int(self._meta("next_chunk_id") or 0), int(top) + 1)
        old = c.execute("SELECT tags, tenant FROM documents WHERE path=?", (doc.path,)).fetchone()
        tags = set(doc.tags) | (set(json.loads(old[0])) if old else set())
        tenant = doc.tenant if doc.tenant is not None else (str(old[1]) if old else "")
        if old is not None:
            # only when there is one: a DELETE that could reach FTS5 (through the cascade to chunks and their
            # delete trigger) makes FTS5 write its pending tokens out, even when it deletes nothing (104 us a
            # new document, 0.54 s of SciFact's ingest)
            c.execute("DELETE FROM documents WHERE path=?", (doc.path,))
        c.execute("DELETE FROM dup_refs WHERE doc_path=?", (doc.path,))
        cur = c.execute(
            "INSERT INTO documents(path, title, mtime, content_hash, size, tags, text, n_chunks,"
            " n_duplicates, ingested_at, tenant) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                doc.path,
                doc.title,
                doc.mtime.timestamp(),
                doc.content_hash,
                doc.size,
                json.dumps(sorted(tags)),
                doc.text,
                len(doc.chunks),
                doc.n_duplicates,
                datetime.now(UTC).timestamp(),
                tenant,
            ),
        )
        doc_id = int(cur.lastrowid or 0)
        c.executemany(
            'INSERT INTO chunks(id, doc_id, ord, start, "end", section, section_path, kinds, title, text, vector,'
            " minhash, injection) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    first_id + i,
                    doc_id,
                    ch.ord,
                    ch.start,
                    ch.end,
                    _section_text(ch.section),
                    json.dumps(ch.section),
                    json.dumps(ch.kinds),
                    doc.title,
                    ch.text,
                    np.ascontiguousarray(ch.vector, dtype=np.float32).tobytes(),
                    np.ascontiguousarray(ch.signature, dtype=np.uint64).tobytes(),
                    ch.injection,
                )
                for i, ch in enumerate(doc.chunks)
            ],
        )
        c.executemany(
            "INSERT INTO chunks_fts(rowid, text, title, section) VALUES (?,?,?,?)",
            [(first_id + i, ch.text, doc.title, _section_text(ch.section)) for i, ch in enumerate(doc.chunks)],
        )
        c.executemany(
            "INSERT INTO lsh(band, chunk_id) VALUES (?, ?)",
            [(k, first_id + i) for i, ch in enumerate(doc.chunks) for k in ch.band_keys],
        )
        c.executemany(
            "INSERT INTO dup_refs(kept_chunk_id, doc_path) VALUES (?, ?)",
            [(k, doc.path) for k in sorted(set(doc.duplicate_of))],
        )
        if defer:
            self._pending_id = first_id + len(doc.chunks)
        else:
            self._record_writes(first_id + len(doc.chunks))
        return doc_id

    def _record_writes(self, next_chunk_id: int) -> None:
        """Bookkeeping after documents were written: the next chunk id, a new generation (the derived
        indexes follow it), the time of the last ingest."""
        self._set_meta("next_chunk_id", str(next_chunk_id))
        self._conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
        self._set_meta("last_ingest", str(datetime.now(UTC).timestamp()))

    def _record_deferred(self) -> None:
        """What deferred writes left to record, before their transaction commits."""
        if self._pending_id is not None:
            self._record_writes(self._pending_id)
            self._pending_id = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Write several documents in one transaction, each still all or nothing.

        Committing once for many small documents saves most of the cost of a write (at each commit FTS5
        writes and merges a segment, and SQLite appends every page it touched to the WAL). A crash loses
        the batch, never part of a document. An exception undoes the document it interrupted; the
        documents written before it are committed, as they would have been one by one (a document cut
        short rolls the batch back, and the whole documents before it are written again).
        """
        c = self._conn
        if c.in_transaction:
            yield
            return
        c.execute("BEGIN IMMEDIATE")
        self._batch, self._batch_cut, self._pending_id = [], False, None
        try:
            yield
            self._record_deferred()
        except BaseException:
            done, cut = self._batch, self._batch_cut  # (reset by the finally below)
            if cut:
                c.execute("ROLLBACK")
                self._pending_id = None
                self._rewrite(done)
            else:
                try:
                    self._record_deferred()
                    c.execute("COMMIT")
                except sqlite3.Error:
                    c.execute("ROLLBACK")
            raise
        finally:
            self._batch, self._batch_cut, self._pending_id = None, False, None
        c.execute("COMMIT")

    def _rewrite(self, docs: list[NewDocument]) -> None:
        """Write ``docs`` again in one transaction (after a rollback undid them); on failure, nothing."""
        if not docs:
            return
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            for d in docs:
                self._write_document(d, defer=True)
            self._record_deferred()
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        finally:
            self._pending_id = None

    def delete_document(self, path: str) -> bool:
        with immediate(self._conn) as c:
            top = c.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0]
            self._set_meta("next_chunk_id", str(max(int(self._meta("next_chunk_id") or 0), int(top) + 1)))
            n = c.execute("DELETE FROM documents WHERE path=?", (path,)).rowcount
            c.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
        return n > 0

    def stored_band_keys(self, band_keys: list[bytes], exclude_path: str, tenant: str = "") -> set[bytes]:
        """The keys among ``band_keys`` that a stored chunk outside ``exclude_path`` has (one query for a document),
        among the documents of ``tenant`` ('' = the shared corpus): near-duplicates never cross tenants.

        Only a chunk with one of these can have a stored near-duplicate, so the ingest asks
        :meth:`near_duplicates` for those alone.
        """
        keys = list(dict.fromkeys(band_keys))
        out: set[bytes] = set()
        for b in range(0, len(keys), 500):
            part = keys[b : b + 500]
            marks = ",".join("?" * len(part))
            out.update(
                bytes(r[0])
                for r in self._conn.execute(
                    f"SELECT DISTINCT l.band FROM lsh l JOIN chunks c ON c.id = l.chunk_id"
                    f" JOIN documents d ON d.id = c.doc_id WHERE l.band IN ({marks}) AND d.path != ? AND d.tenant = ?",
                    [*part, exclude_path, tenant],
                )
            )
        return out

    def near_duplicates(
        self,
        band_keys: list[bytes],
        signature: npt.NDArray[np.uint64],
        threshold: float,
        exclude_path: str,
        tenant: str = "",
    ) -> list[int]:
        """Stored chunks (outside ``exclude_path``, of ``tenant``'s documents) whose estimated Jaccard with
        ``signature`` >= threshold."""
        if not band_keys:
            return []
        marks = ",".join("?" * len(band_keys))
        rows = self._conn.execute(
            f"SELECT DISTINCT c.id, c.minhash FROM lsh l JOIN chunks c ON c.id = l.chunk_id"
            f" JOIN documents d ON d.id = c.doc_id WHERE l.band IN ({marks}) AND d.path != ? AND d.tenant = ?",
            [*band_keys, exclude_path, tenant],
        ).fetchall()
        out = []
        for cid, blob in rows:
            other = np.frombuffer(blob, dtype=np.uint64)
            if other.shape == signature.shape and float(np.mean(other == signature)) >= threshold:
                out.append(int(cid))
        return out

    # -- searching -------------------------------------------------------------
    def has_owned_documents(self) -> bool:
        """Whether a tenant owns any stored document (read once a generation)."""
        gen = self.generation
        with self._cache_lock:
            if self._owned[0] != gen:
                row = self._conn.execute("SELECT EXISTS (SELECT 1 FROM documents WHERE tenant != '')").fetchone()
                self._owned = (gen, bool(row[0]))
            return self._owned[1]

    def _filter_sql(self, filters: SearchFilters | None) -> tuple[str, list[Any]]:
        parts: list[str] = []
        args: list[Any] = []
        if filters is None or filters.allow is None:
            # no tenant asks: a tenant's own documents are never in the answer (checked only where there are any)
            if self.has_owned_documents():
                parts.append("d.tenant = ''")
            if filters is None:
                return (" AND " + parts[0]) if parts else "", args
        if filters.path_glob:
            parts.append("d.path GLOB ?")
            args.append(filters.path_glob)
        for tag in filters.tags:
            parts.append("EXISTS (SELECT 1 FROM json_each(d.tags) WHERE value = ?)")
            args.append(tag)
        if filters.modified_after is not None:
            parts.append("d.mtime >= ?")
            args.append(filters.modified_after.timestamp())
        if filters.modified_before is not None:
            parts.append("d.mtime <= ?")
            args.append(filters.modified_before.timestamp())
        if filters.allow is not None:
            allow = filters.allow
            anyof: list[str] = []
            allow_args: list[Any] = [allow.owner or ""]
            for g in allow.paths:
                anyof.append("d.path GLOB ? OR d.path GLOB ?")
                allow_args.extend([g, "*/" + g.lstrip("/")])
            if allow.tags:
                marks = ",".join("?" * len(allow.tags))
                anyof.append(f"EXISTS (SELECT 1 FROM json_each(d.tags) WHERE value IN ({marks}))")
                allow_args.extend(allow.tags)
            shared = "(" + " OR ".join(anyof) + ")" if anyof else "0"  # an empty allowlist allows nothing
            # the tenant's own uploads, and of the shared corpus ('') what its allowlist names; never another's.
            # With no owner ('' ) the first test is the shared corpus itself, still limited by the allowlist below.
            parts.append(f"((d.tenant != '' AND d.tenant = ?) OR (d.tenant = '' AND {shared}))")
            args.extend(allow_args)
        return (" AND " + " AND ".join(parts)) if parts else "", args

    def lexical_search(
        self,
        terms: list[str],
        n: int,
        filters: SearchFilters | None = None,
        *,
        title_weight: float = 1.0,
        section_weight: float = 0.5,
    ) -> list[ScoredId]:
        """BM25 (FTS5's) over chunk text, title and section path; terms are OR-ed. Higher score is better.

        Scored by :class:`LexicalIndex` over FTS5's own tokens, which gives FTS5's bm25() for every
        matching chunk at once (``_fts_lexical_search`` is the same query asked of FTS5).
        """
        if not terms or n <= 0:
            return []
        if self._conn.in_transaction:  # uncommitted writes: the derived indexes must not follow them
            return self._fts_lexical_search(terms, n, filters, title_weight=title_weight, section_weight=section_weight)
        where, args = self._filter_sql(filters)
        with self._cache_lock:
            lex = self._lexical_index()
            allowed = self._allowed_ids(where, args) if where else None
            return lex.search(self._conn, terms, n, weights=(1.0, title_weight, section_weight), allowed=allowed)

    def _fts_lexical_search(
        self,
        terms: list[str],
        n: int,
        filters: SearchFilters | None = None,
        *,
        title_weight: float = 1.0,
        section_weight: float = 0.5,
    ) -> list[ScoredId]:
        """The same search asked of FTS5 directly (one bm25() call per matching row): the reference."""
        if not terms or n <= 0:
            return []
        match = " OR ".join(_fts_quote(t) for t in dict.fromkeys(terms))
        where, args = self._filter_sql(filters)
        join = " JOIN chunks c ON c.id = f.rowid JOIN documents d ON d.id = c.doc_id" if where else ""
        sql = (
            f"SELECT f.rowid, bm25(chunks_fts, 1.0, ?, ?) AS s FROM chunks_fts f{join}"
            f" WHERE chunks_fts MATCH ?{where} ORDER BY s LIMIT ?"
        )
        try:
            rows = self._conn.execute(sql, [title_weight, section_weight, match, *args, n]).fetchall()
        except sqlite3.OperationalError:
            return []
        return [ScoredId(int(r[0]), -float(r[1])) for r in rows]

    def _lexical_index(self) -> LexicalIndex:
        """The lexical index, synced with the chunks table if the index changed since the last search."""
        gen = self._generation()
        if self._lexical is None:
            self._lexical = LexicalIndex(self.path.with_name(self.path.name + ".lexical"), FTS_TOKENIZE)
        if self._lexical.synced_generation != gen:
            self._lexical.sync(self._conn, gen)
        return self._lexical

    def _allowed_ids(self, where: str, args: list[Any]) -> npt.NDArray[np.int64]:
        """Ids of the chunks that pass a filter (``where`` from ``_filter_sql``), ascending."""
        return np.fromiter(
            (
                r[0]
                for r in self._conn.execute(
                    f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE 1{where} ORDER BY c.id", args
                )
            ),
            dtype=np.int64,
        )

    def prepare_search(self) -> None:
        """Bring the derived search structures (lexical index; vector matrix or HNSW index) up to date now,
        so that the first search after an ingest does not pay for it."""
        if self._conn.in_transaction:
            return
        with self._cache_lock:
            self._lexical_index()
            if self.chunk_count() >= self.ann_threshold:
                self._ann_index()
            else:
                self._load_vectors()

    def chunk_count(self) -> int:
        """Chunks stored (counted again only when the index changed: COUNT(*) reads a whole index)."""
        if self._conn.in_transaction:  # uncommitted writes may roll back, generation and all
            return int(self._conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        gen = self._generation()
        if self._count[0] != gen:
            self._count = (gen, int(self._conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]))
        return self._count[1]

    def has_chunks(self) -> bool:
        """Whether any chunk is stored (one row read, where :meth:`chunk_count` reads a whole index)."""
        return bool(self._conn.execute("SELECT EXISTS (SELECT 1 FROM chunks)").fetchone()[0])

    def term_document_counts(self, terms: list[str]) -> dict[str, int]:
        """How many chunks contain each term in their text (FTS5's tokens: stemmed), for IDF weights.

        What ``COUNT(*) ... MATCH 'text : "term"'`` gives (``_fts_term_document_counts``), read from
        the lexical index.
        """
        if self._conn.in_transaction:  # uncommitted writes: the derived indexes must not follow them
            return self._fts_term_document_counts(terms)
        with self._cache_lock:
            return self._lexical_index().column_counts(self._conn, terms, 0)

    def _fts_term_document_counts(self, terms: list[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in dict.fromkeys(terms):
            try:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH ?", ("text : " + _fts_quote(t),)
                ).fetchone()
                out[t] = int(row[0])
            except sqlite3.OperationalError:
                out[t] = 0
        return out

    def chunk_paths(self) -> dict[int, str]:
        """chunk id -> document path, for every chunk (evaluation maps chunks back to documents)."""
        return {
            int(r[0]): str(r[1])
            for r in self._conn.execute("SELECT c.id, d.path FROM chunks c JOIN documents d ON d.id = c.doc_id")
        }

    @property
    def generation(self) -> int:
        """Changes whenever a document is written or deleted (for caches)."""
        return self._generation()

    def _load_vectors(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        gen = self._generation()
        if self._matrix is None or self._ids is None or gen != self._loaded_generation:
            self._ids, self._matrix = self._read_vectors(None)
            self._loaded_generation = gen
        return self._ids, self._matrix

    def _read_vectors(
        self, wanted: npt.NDArray[np.int64] | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(ids, vectors) of the chunks in ``wanted`` (ascending ids; None: every chunk), ascending by id.

        Streamed into one preallocated, 64-byte aligned matrix (a million chunks are 1.5 GB of vectors).
        """
        c = self._conn
        own = not c.in_transaction
        if own:
            c.execute("BEGIN")  # one snapshot: the count and the rows agree
        try:
            dim = int(self._meta("dim") or 0)
            total = self.chunk_count()
            if wanted is not None and len(wanted) < total // 4:
                ids = np.asarray(wanted, dtype=np.int64)
                mat = _aligned((len(ids), dim))
                for b in range(0, len(ids), 500):
                    part = [int(x) for x in ids[b : b + 500]]
                    marks = ",".join("?" * len(part))
                    sql = f"SELECT id, vector FROM chunks WHERE id IN ({marks}) ORDER BY id"
                    rows = c.execute(sql, part).fetchall()
                    if [r[0] for r in rows] != part:
                        raise KeyError("chunks vanished while their vectors were read")
                    mat[b : b + len(rows)] = np.frombuffer(b"".join([r[1] for r in rows]), np.float32).reshape(-1, dim)
                return ids, mat
            n = total if wanted is None else len(wanted)
            ids = np.empty(n, dtype=np.int64)
            mat = _aligned((n, dim))
            i = 0
            cur = c.execute("SELECT id, vector FROM chunks ORDER BY id")
            while rows := cur.fetchmany(8192):
                got = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                keep = np.ones(len(rows), bool) if wanted is None else np.isin(got, wanted, assume_unique=True)
                k = int(keep.sum())
                ids[i : i + k] = got[keep]
                vecs = np.frombuffer(b"".join([r[1] for r in rows]), np.float32).reshape(len(rows), dim)
                mat[i : i + k] = vecs[keep]
                i += k
            if i != n:
                raise KeyError("chunks vanished while their vectors were read")
            return ids, mat
        finally:
            if own:
                c.execute("COMMIT")

    def dense_search(
        self, vector: npt.NDArray[np.float32], n: int, filters: SearchFilters | None = None
    ) -> list[ScoredId]:
        """Cosine search (vectors are unit length) over the chunks that pass the filters.

        Exact (numpy) below ``ann_threshold`` chunks; above it, an HNSW index (usearch) unless filters
        are given, in which case the search stays exact over the filtered chunks. Inside a write
        transaction (``batch``) it is exact and keeps nothing: the derived indexes follow committed data only.
        """
        if n <= 0:
            return []
        where, args = self._filter_sql(filters)
        with self._cache_lock:
            if self._conn.in_transaction:  # uncommitted writes (which may roll back): exact, nothing kept
                ids, mat = self._read_vectors(None)
            elif not where and self.chunk_count() >= self.ann_threshold:
                return self._ann_index().search(vector, n)
            else:
                ids, mat = self._load_vectors()
        if len(ids) == 0:
            return []
        # einsum, not ``mat @ vector``: BLAS spreads a matrix-vector product over a thread pool, which on a
        # busy machine costs ten times the product itself; this loop is single-threaded and vectorised
        scores = np.einsum("ij,j->i", mat, np.asarray(vector, dtype=np.float32))
        if where:
            scores = np.where(np.isin(ids, self._allowed_ids(where, args)), scores, -np.inf)
        k = min(n, len(ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        return list(map(ScoredId._make, zip(ids[top].tolist(), scores[top].tolist(), strict=True)))

    def _vectors_of(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """Vectors of ``ids``, in that order."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        got = self._read_vectors(ids[order])[1]
        if np.array_equal(order, np.arange(len(ids))):
            return got
        out = np.empty_like(got)
        out[order] = got
        return out

    def _ann_index(self) -> AnnIndex:
        """The HNSW index, synced with the chunks table if the index changed since the last search."""
        gen = self._generation()
        if self._ann is None:
            self._ann = AnnIndex(self.path.with_name(self.path.name + ".usearch"), int(self._meta("dim") or 384))
        if self._ann.synced_generation != gen:
            c = self._conn
            own = not c.in_transaction
            if own:
                c.execute("BEGIN")  # the ids and their vectors from one snapshot
            try:
                ids = np.fromiter((r[0] for r in c.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)
                self._ann.sync(ids, self._vectors_of, gen)
            finally:
                if own:
                    c.execute("COMMIT")
        return self._ann

    def chunk_rows(self, ids: list[int]) -> dict[int, ChunkRow]:
        """Chunk rows for ``ids`` that exist, by id (what a search needs to build its hits)."""
        out: dict[int, ChunkRow] = {}
        for b in range(0, len(ids), 500):
            part = ids[b : b + 500]
            marks = ",".join("?" * len(part))
            for r in self._conn.execute(
                f'SELECT c.id, c.doc_id, d.path, c.title, c.section_path, c.start, c."end", c.text, c.minhash,'
                f" c.injection FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id IN ({marks})",
                part,
            ):
                section = [] if r[4] == "[]" else json.loads(r[4])
                out[r[0]] = ChunkRow(r[0], r[1], r[2], r[3], section, r[5], r[6], r[7], r[8], r[9])
        return out

    def hits(self, ids: list[int]) -> dict[int, Hit]:
        """Chunk rows for ``ids`` as hits (score fields zero), new objects on every call."""
        return {i: r.hit(0.0) for i, r in self.chunk_rows(ids).items()}

    def document(self, doc_id: int) -> DocumentMeta | None:
        r = self._conn.execute(
            "SELECT id, path, title, mtime, content_hash, size, tags, n_chunks, n_duplicates, tenant FROM documents"
            " WHERE id=?",
            (doc_id,),
        ).fetchone()
        if r is None:
            return None
        return DocumentMeta(
            doc_id=r[0],
            path=r[1],
            title=r[2],
            mtime=datetime.fromtimestamp(r[3], UTC),
            content_hash=r[4],
            size=r[5],
            tags=json.loads(r[6]),
            n_chunks=r[7],
            n_duplicates=r[8],
            tenant=r[9],
        )

    def documents(
        self, filters: SearchFilters | None = None, limit: int = 1000, offset: int = 0, *, every_owner: bool = False
    ) -> list[DocumentMeta]:
        """Stored documents that ``filters`` allow (a tenant's allowlist and own uploads), by path; without filters
        the shared corpus, or with ``every_owner`` (the operator's view) every document."""
        where, args = ("", []) if every_owner and filters is None else self._filter_sql(filters)
        ids = [
            int(r[0])
            for r in self._conn.execute(
                f"SELECT d.id FROM documents d WHERE 1{where} ORDER BY d.path LIMIT ? OFFSET ?", [*args, limit, offset]
            )
        ]
        return [m for m in (self.document(i) for i in ids) if m is not None]

    def visible(self, doc_id: int, filters: SearchFilters | None) -> bool:
        """Whether the document ``doc_id`` exists and ``filters`` allow it (the same test search applies)."""
        where, args = self._filter_sql(filters)
        row = self._conn.execute(f"SELECT 1 FROM documents d WHERE d.id = ?{where}", [doc_id, *args]).fetchone()
        return row is not None

    def document_path_tenant(self, path: str) -> str | None:
        """The owner of the stored document at ``path`` ('' = shared), or None when there is none."""
        row = self._conn.execute("SELECT tenant FROM documents WHERE path=?", (path,)).fetchone()
        return None if row is None else str(row[0])

    def document_text(self, doc_id: int) -> str:
        r = self._conn.execute("SELECT text FROM documents WHERE id=?", (doc_id,)).fetchone()
        if r is None:
            raise KeyError(doc_id)
        return str(r[0])

    def injection_counts(self, threshold: float) -> tuple[int, int]:
        """(chunks whose injection score is at least ``threshold``, chunks never scanned)."""
        r = self._conn.execute(
            "SELECT COALESCE(SUM(injection >= ?), 0), COALESCE(SUM(injection IS NULL), 0) FROM chunks", (threshold,)
        ).fetchone()
        return int(r[0]), int(r[1])

    def flagged_chunks(self, threshold: float, limit: int = 100) -> list[Hit]:
        """The chunks scored at or above ``threshold`` at ingest, highest first (``score`` = the injection score)."""
        ids = [
            r[0]
            for r in self._conn.execute(
                "SELECT id FROM chunks WHERE injection >= ? ORDER BY injection DESC, id LIMIT ?", (threshold, limit)
            )
        ]
        rows = self.chunk_rows(ids)
        return [rows[i].hit(rows[i].injection or 0.0) for i in ids if i in rows]

    def stats(self) -> StoreStats:
        c = self._conn
        docs, dups, chunks_declared = c.execute(
            "SELECT COUNT(*), COALESCE(SUM(n_duplicates), 0), COALESCE(SUM(n_chunks), 0) FROM documents"
        ).fetchone()
        chunks = c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        last = self._meta("last_ingest")
        dim = self._meta("dim")
        return StoreStats(
            path=str(self.path),
            documents=int(docs),
            chunks=int(chunks),
            duplicates_removed=int(dups),
            bytes_on_disk=size,
            embedding_model=self._meta("embedding_model"),
            dim=int(dim) if dim else None,
            last_ingest=datetime.fromtimestamp(float(last), UTC) if last else None,
        )

    def integrity_problems(self) -> list[str]:
        """Checks used after a crash: SQLite's own check, FTS consistency, chunk counts per document."""
        problems: list[str] = []
        c = self._conn
        res = c.execute("PRAGMA integrity_check").fetchone()[0]
        if res != "ok":
            problems.append(f"sqlite integrity_check: {res}")
        try:
            c.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
        except sqlite3.DatabaseError as e:
            problems.append(f"fts integrity: {e}")
        for path, declared, actual in c.execute(
            "SELECT d.path, d.n_chunks, (SELECT COUNT(*) FROM chunks c WHERE c.doc_id = d.id) FROM documents d"
        ):
            if declared != actual:
                problems.append(f"{path}: {actual} chunks stored, {declared} declared")
        orphans = c.execute("SELECT COUNT(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone()
        if orphans[0]:
            problems.append(f"{orphans[0]} chunks without a document")
        return problems
