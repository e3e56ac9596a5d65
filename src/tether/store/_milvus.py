"""MilvusStore: the Store protocol on Milvus (a server, or milvus-lite in a ``*.db`` directory), as SQLiteStore does it.

Collections (``<prefix>_<role>``; every one has a primary key ``id``/``key`` and, where Milvus wants a vector
and Tether has none, a constant 2-d ``v``):

- ``meta``: key -> value (layout version, generation, embedding model, settings, write intents).
- ``documents``: one row per stored document version: path, ``tenant`` (the partition key; '' = the shared
  corpus), title, mtime, hash, size, tags, counts, ``n_parts``.
- ``texts``: the document's canonical text in ``n_parts`` parts of at most 65,535 UTF-8 bytes (Milvus's largest
  VARCHAR), joined back byte for byte on read: citations index into it.
- ``chunks``: one row per chunk: ``doc_id``, copies of the document's ``tenant`` (partition key), ``path`` and
  ``mtime`` (for filters), span, section, text, MinHash signature, injection score, the unit vector ``dense``
  (FLAT index, inner product) and, per field of text, title and section, the stemmed words ``lex_*`` whose
  BM25 sparse vectors ``bm25_*`` Milvus's BM25 function computes.
- ``bands``: the MinHash LSH band keys of each chunk (for near-duplicates, within one tenant).
- ``dups``: which stored chunks a document's dropped near-duplicates matched (so that losing one makes the
  document stale, as SQLiteStore's ``dup_refs``).

Ids are fresh on every write (:class:`~tether.store._milvus_schema.IdAllocator`): a document version gets
``doc_id`` and its chunks the ids after it, so a chunk id names one content forever.

Atomic documents without transactions: a write first records an intent (new id, ids it replaces) in ``meta``,
then writes the text parts, chunks, band keys and duplicate references of the new version, then the document row:
the commit marker. Only then are the replaced versions' rows deleted, and the intent with them. Readers take the
newest document row of a path and ignore every chunk whose ``doc_id`` is not that row: a half-written version has
no row, a replaced one is no longer the newest. Opening the store finishes or undoes what a crashed writer's
intents describe (roll forward where the document row was written, back where it was not).

Searches put every filter into the Milvus expression (see :mod:`tether.store._milvus_filters`: tenant, path, mtime
natively, tags as a list of document ids), then check each hit's document is the live version (and a glob that
LIKE could only approximate); when that check drops hits, the search is asked again for more, so a cut never
starves the results. Lexical search is Milvus's BM25 over words stemmed by Tether (milvus-lite does not stem);
dense search is exact inner product (FLAT).

Row layouts and conversions are in :mod:`tether.store._milvus_rows`, the collections and the connection in
:mod:`tether.store._milvus_schema`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.contracts import DocumentMeta, Hit, SearchFilters, StoreStats
from tether.errors import IndexMismatchError
from tether.store import _milvus_rows as rows_of
from tether.store._milvus_filters import NOTHING, Check, FilterBuilder, Target
from tether.store._milvus_rows import ALL_DOC_FIELDS, CHUNK_FIELDS, DOC_FIELDS, id_batches, lex_words, newest
from tether.store._milvus_schema import (
    DUMMY,
    LAYOUT_VERSION,
    LEX_FIELDS,
    MAX_TOPK,
    Collections,
    IdAllocator,
    connect,
    ints,
    is_server_uri,
    quote,
    strings,
)
from tether.store._protocol import ChunkRow, NewChunk, NewDocument, ScoredId

STALE_INTENT_S = 600.0
"""On a server, an intent older than this is a crashed writer's (a younger one may be a live writer's)."""

_OPEN_STORES: set[str] = set()
"""The writer tokens of the stores open in this process: their intents are in flight, not a crash's leftovers."""


class MilvusStore:
    """Documents, chunks, BM25 and vectors in Milvus collections (see the module docstring for the layout)."""

    def __init__(self, db: Collections, uri: str) -> None:
        self._db = db
        self.uri = uri
        self.path = Path(uri)
        # where ingests into this index wait for each other: beside a milvus-lite directory; for a server, a file
        # per server and prefix on this machine (writers on other machines are not serialised by it)
        digest = hashlib.sha256(f"{uri}|{db.prefix}".encode()).hexdigest()[:16]
        self.lock_path = self.path if db.lite else Path(tempfile.gettempdir()) / f"tether-milvus-{digest}"
        self.prefix = db.prefix
        self._lite = db.lite
        self._ids = IdAllocator()
        self._write_lock = threading.RLock()
        self._batch_depth = 0
        self._batch_wrote = False
        self._writes = 0  # this process's writes: with the generation, what caches are keyed on
        self._cache: dict[str, tuple[tuple[int, int], Any]] = {}
        self._token = uuid.uuid4().hex  # names this store's intents
        _OPEN_STORES.add(self._token)

    # -- opening ---------------------------------------------------------------
    @classmethod
    def open(
        cls,
        uri: str | Path,
        *,
        create: bool = False,
        token: str | None = None,
        prefix: str = "tether",
        timeout: float = 10.0,
    ) -> MilvusStore:
        """Open the index in ``uri``: a milvus-lite directory ``*.db`` (served from this process) or a Milvus URL.

        Args:
            uri: ``path/index.db`` or ``http(s)://host:19530``.
            create: create the collections if they are missing (else a missing index is an IndexMissingError).
            token: the server's token (``user:password`` or an API key).
            prefix: the collections' name prefix (several indexes can share one server).
            timeout: seconds to wait for the server.

        Raises:
            IndexMissingError: no index there and ``create`` is false.
            IndexMismatchError: the collections hold another layout.
            TransientError: the server cannot be reached.
            ConfigError: ``uri`` is not a Milvus URI, or pymilvus is not installed.

        Example:
            >>> store = MilvusStore.open(tmp_path / "index.db", create=True)  # doctest: +SKIP
        """
        text = str(uri)
        client = connect(text, create=create, token=token, timeout=timeout)
        store = cls(Collections(client, prefix, lite=not is_server_uri(text), uri=text), text)
        try:
            store._db.prepare(text, create=create)
            store._check_layout()
            store._recover()
        except BaseException:
            store.close()
            raise
        return store

    def _check_layout(self) -> None:
        """Refuse another layout; start the id allocator above every id written before (the clock may go back)."""
        self._ids.seed(int(self._db.get_meta("next_id") or 0))
        version = self._db.get_meta("layout_version")
        if version is None:
            self._db.set_meta("layout_version", LAYOUT_VERSION)
            self._db.set_meta("generation", "0")
        elif version != LAYOUT_VERSION:
            raise IndexMismatchError(
                f"{self.uri} has Milvus index layout v{version}, this Tether reads v{LAYOUT_VERSION}; "
                "re-ingest into another prefix"
            )

    def close(self) -> None:
        _OPEN_STORES.discard(self._token)
        self._db.close()

    def __enter__(self) -> MilvusStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta and caches ---------------------------------------------------------
    def setting(self, key: str) -> str | None:
        """A value the index records about how it was built (such as ``minhash_scheme``), or None."""
        return self._db.get_meta(f"setting:{key}")

    def record_setting(self, key: str, value: str) -> None:
        """Record how the index is built, once: a value already recorded is kept."""
        if self.setting(key) is None:
            self._db.set_meta(f"setting:{key}", value)

    def check_embedding(self, model_id: str, dim: int) -> None:
        """Record the embedding model on first use; refuse to mix vectors of two models."""
        have = self._db.get_meta("embedding_model")
        if have is None:
            self._db.set_meta("dim", str(dim))
            self._db.set_meta("embedding_model", model_id)
        elif have != model_id or int(self._db.get_meta("dim") or 0) != dim:
            raise IndexMismatchError(
                f"{self.uri} was built with embedding model {have}, not {model_id}; "
                "use another index or re-ingest from scratch"
            )
        self._db.ensure_chunks(dim)

    @property
    def generation(self) -> int:
        """Changes whenever a document is written or deleted (for caches)."""
        return int(self._db.get_meta("generation") or 0)

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()``, kept until the index's generation or this process's own writes move (a batch moves the
        generation once, at its end)."""
        version = (self.generation, self._writes)
        hit = self._cache.get(key)
        if hit is None or hit[0] != version:
            hit = (version, make())
            self._cache[key] = hit
        return hit[1]

    def _changed(self) -> None:
        """After a write: a new generation (once per batch) and the time of the last ingest."""
        self._writes += 1
        if self._batch_depth:
            self._batch_wrote = True
            return
        self._db.set_meta("generation", str(self.generation + 1))
        self._db.set_meta("last_ingest", str(datetime.now(UTC).timestamp()))
        self._db.set_meta("next_id", str(self._ids.last + 1))

    # -- document rows ---------------------------------------------------------
    def _rows_at(self, path: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
        """Every document row at ``path``, newest first (more than one only while a version is replaced)."""
        found = self._db.query("documents", f"path == {quote(path)}", fields or DOC_FIELDS, limit=100)
        return sorted(found, key=lambda r: -int(r["id"]))

    def _live(self, pairs: Iterable[tuple[int, str]]) -> set[int]:
        """Those of the (doc id, path) pairs whose doc id is the newest document row of its path."""
        by_path: dict[str, set[int]] = {}
        for doc_id, path in pairs:
            by_path.setdefault(path, set()).add(int(doc_id))
        paths = list(by_path)
        latest: dict[str, int] = {}
        for b in range(0, len(paths), 500):
            found = self._db.query("documents", f"path in {strings(paths[b : b + 500])}", ["id", "path"], MAX_TOPK)
            latest.update((p, int(r["id"])) for p, r in newest(found).items())
        return {latest[p] for p, ids in by_path.items() if latest.get(p) in ids}

    def _live_documents(self) -> dict[str, dict[str, Any]]:
        """path -> newest document row, of every document (read once per index version)."""
        result: dict[str, dict[str, Any]] = self._cached(
            "documents", lambda: newest(self._db.query("documents", "", DOC_FIELDS))
        )
        return result

    def document_hash(self, path: str) -> str | None:
        found = self._rows_at(path, ["id", "content_hash"])
        return str(found[0]["content_hash"]) if found else None

    def add_tags(self, path: str, tags: list[str]) -> bool:
        """Add tags to a stored document (no re-ingest needed); True if anything changed."""
        with self._write_lock:
            found = self._rows_at(path, ALL_DOC_FIELDS)
            if not found:
                return False
            have = set(found[0]["tags"] or [])
            if set(tags) <= have:
                return False
            self._db.upsert("documents", [{**found[0], "tags": sorted(have | set(tags)), "v": DUMMY}])
            self._changed()
            return True

    def chunk_ords(self, path: str) -> list[tuple[int, int]]:
        """(chunk id, ord) of a stored document's chunks."""
        found = self._rows_at(path, ["id"])
        if not found:
            return []
        got = self._db.query("chunks", f"doc_id == {int(found[0]['id'])}", ["id", "ord"])
        return sorted((int(r["id"]), int(r["ord"])) for r in got)

    def stale_paths(self) -> list[str]:
        """Documents that lost the kept copy of one of their near-duplicate chunks: re-ingest them."""
        return sorted(p for p, r in self._live_documents().items() if r["content_hash"] == "")

    def paths(self) -> list[str]:
        return sorted(self._live_documents())

    # -- writing ---------------------------------------------------------------
    def put_document(self, doc: NewDocument) -> int:
        """Insert or replace the document at ``doc.path`` with its chunks: all of it is seen, or none of it.

        The new version is written in full before the document row that commits it; the replaced version is
        deleted after. An exception part-way removes what was written of the new version."""
        with self._write_lock:
            old = self._rows_at(doc.path)
            tags = sorted(set(doc.tags) | set((old[0]["tags"] or []) if old else []))
            tenant = doc.tenant if doc.tenant is not None else (str(old[0]["tenant"]) if old else "")
            if doc.chunks:
                self._db.ensure_chunks(len(doc.chunks[0].vector))
            doc_id = self._ids.block(1 + len(doc.chunks))
            intent = self._begin(doc_id, [int(r["id"]) for r in old], doc.path)
            try:
                n_parts = self._write_version(doc, doc_id, tenant)
                self._commit(doc, doc_id, tenant, tags, n_parts)
            except BaseException:
                self._drop_versions([doc_id])
                self._end(intent)
                raise
            self._retire([int(r["id"]) for r in old], doc.path)
            self._end(intent)
            self._changed()
            return doc_id

    def export_document(self, path: str) -> NewDocument | None:
        """The live document at ``path`` as :meth:`put_document` takes it (text, chunks with vectors, signatures
        and band keys, owner, tags): what `tether store export` writes. None: no such path."""
        found = self._rows_at(path, ALL_DOC_FIELDS)
        if not found:
            return None
        d = found[0]
        doc_id = int(d["id"])
        text = self.document_text(doc_id)
        fields = ["id", "ord", "span_start", "span_end", "section", "kinds", "text", "spilled", "minhash"]
        rows = self._db.query("chunks", f"doc_id == {doc_id}", [*fields, "injection", "dense"])
        bands: dict[int, list[bytes]] = {}
        for r in self._db.query("bands", f"doc_id == {doc_id}", ["chunk_id", "band"]):
            bands.setdefault(int(r["chunk_id"]), []).append(bytes.fromhex(str(r["band"])))
        chunks = []
        for r in sorted(rows, key=lambda r: int(r["ord"])):
            start, end = int(r["span_start"]), int(r["span_end"])
            injection = r.get("injection")
            chunks.append(
                NewChunk(
                    ord=int(r["ord"]),
                    start=start,
                    end=end,
                    text=text[start:end] if r["spilled"] else str(r["text"]),
                    section=list(json.loads(r["section"])),
                    kinds=list(json.loads(r["kinds"])),
                    vector=np.asarray(r["dense"], dtype=np.float32),
                    signature=np.frombuffer(bytes.fromhex(str(r["minhash"])), dtype="<u8").astype(np.uint64),
                    band_keys=sorted(bands.get(int(r["id"]), [])),
                    injection=None if injection is None else float(injection),
                )
            )
        return NewDocument(
            path=path,
            title=str(d["title"]),
            mtime=datetime.fromtimestamp(float(d["mtime"]), UTC),
            content_hash=str(d["content_hash"]),
            size=int(d["size"]),
            text=text,
            chunks=chunks,
            tags=list(d["tags"] or []),
            n_duplicates=int(d["n_duplicates"]),
            tenant=str(d["tenant"]),
        )

    def _begin(self, new: int, old: list[int], path: str) -> str:
        """Record a write's intent (what :meth:`_recover` finishes or undoes if the writer dies); its key."""
        key = f"intent:{new or self._ids.block(1)}"
        intent = {"new": new, "old": old, "path": path, "at": time.time(), "writer": self._token}
        self._db.set_meta(key, json.dumps(intent))
        return key

    def _end(self, key: str) -> None:
        self._db.delete_ids("meta", [key])

    def _write_version(self, doc: NewDocument, doc_id: int, tenant: str) -> int:
        """Everything of a new version but its document row; the number of text parts."""
        parts = rows_of.utf8_parts(doc.text)
        self._db.insert("texts", rows_of.text_rows(doc_id, parts, self._ids.block(len(parts))))
        self._db.insert("chunks", rows_of.chunk_rows(doc, doc_id, tenant))
        self._db.insert("bands", rows_of.band_rows(doc, doc_id, tenant, self._ids.block(rows_of.n_band_rows(doc))))
        self._db.insert("dups", rows_of.dup_rows(doc, doc_id, self._ids.block(len(doc.duplicate_of))))
        return len(parts)

    def _commit(self, doc: NewDocument, doc_id: int, tenant: str, tags: list[str], n_parts: int) -> None:
        """Write the document row: from here on readers see the new version."""
        self._db.insert("documents", [rows_of.document_row(doc, doc_id, tenant, tags, n_parts)])

    def _retire(self, doc_ids: list[int], path: str) -> None:
        """Delete replaced or deleted versions: their document rows first (readers stop seeing them), then the rest.

        Documents whose dropped near-duplicates matched one of their chunks become stale (as in SQLiteStore)."""
        if not doc_ids:
            return
        self._db.delete_ids("documents", doc_ids)
        gone: set[int] = set()
        for part in id_batches(doc_ids):
            gone.update(int(r["id"]) for r in self._db.query("chunks", f"doc_id in {ints(part)}", ["id"]))
        self._drop_versions(doc_ids)
        self._mark_stale(gone, path)

    def _drop_versions(self, doc_ids: list[int]) -> None:
        """Delete what versions ``doc_ids`` wrote besides their document rows."""
        for part in id_batches(doc_ids):
            for role in ("chunks", "bands", "dups", "texts"):
                self._db.delete(role, f"doc_id in {ints(part)}")

    def _mark_stale(self, chunk_ids: set[int], path: str) -> None:
        """Empty the hash of other documents whose dropped near-duplicates matched one of ``chunk_ids``."""
        refs: list[dict[str, Any]] = []
        for part in id_batches(chunk_ids):
            refs.extend(self._db.query("dups", f"kept_chunk_id in {ints(part)}", ["id", "doc_path"]))
        for p in sorted({str(r["doc_path"]) for r in refs} - {path}):
            found = self._rows_at(p, ALL_DOC_FIELDS)
            if found and found[0]["content_hash"] != "":
                self._db.upsert("documents", [{**found[0], "content_hash": "", "v": DUMMY}])
        self._db.delete_ids("dups", [int(r["id"]) for r in refs])

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Write several documents with one generation change (and, on milvus-lite, one flush). Each document is
        still all or nothing, and one that an exception interrupts is undone; those written before it stay (as
        with SQLiteStore)."""
        with self._write_lock:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
                if not self._batch_depth and self._batch_wrote:
                    self._batch_wrote = False
                    self._changed()
                    self._db.flush()

    def delete_document(self, path: str) -> bool:
        with self._write_lock:
            doc_ids = [int(r["id"]) for r in self._rows_at(path, ["id"])]
            if not doc_ids:
                return False
            intent = self._begin(0, doc_ids, path)
            self._retire(doc_ids, path)
            self._end(intent)
            self._changed()
            return True

    def _recover(self) -> None:
        """Finish or undo the writes that crashed writers left (their intents): a version whose document row was
        written replaces the older ones; one without is deleted, and the older version stays; a deletion that
        began is completed.

        An intent of a store open in this process is a write in flight, and is left alone. milvus-lite serves one
        process, so any other intent is a dead writer's; on a server, another process may be writing: only an
        intent older than :data:`STALE_INTENT_S` is taken for a crash."""
        now = time.time()
        for r in self._db.query("meta", 'key like "intent:%"', ["key", "value"]):
            intent = json.loads(r["value"])
            if intent.get("writer") in _OPEN_STORES or (not self._lite and now - float(intent["at"]) < STALE_INTENT_S):
                continue
            new, old, path = int(intent["new"]), [int(x) for x in intent["old"]], str(intent["path"])
            if new == 0 or self._db.query("documents", f"id == {new}", ["id"], 1):
                self._retire(old, path)
            else:
                self._drop_versions([new])
            self._end(str(r["key"]))
            self._changed()

    # -- near duplicates ---------------------------------------------------------
    def _band_rows(self, band_keys: list[bytes], exclude_path: str, tenant: str) -> list[dict[str, Any]]:
        """Band rows of live chunks with one of ``band_keys``, outside ``exclude_path``, of ``tenant``'s documents."""
        keys = [k.hex() for k in dict.fromkeys(band_keys)]
        found: list[dict[str, Any]] = []
        scope = f"tenant == {quote(tenant)} and path != {quote(exclude_path)}"
        for b in range(0, len(keys), 500):
            expr = f"band in {strings(keys[b : b + 500])} and {scope}"
            found.extend(self._db.query("bands", expr, ["band", "chunk_id", "doc_id", "path"]))
        live = self._live((int(r["doc_id"]), str(r["path"])) for r in found)
        return [r for r in found if int(r["doc_id"]) in live]

    def stored_band_keys(self, band_keys: list[bytes], exclude_path: str, tenant: str = "") -> set[bytes]:
        """The keys among ``band_keys`` that a stored chunk outside ``exclude_path`` has, among the documents of
        ``tenant`` ('' = the shared corpus): near-duplicates never cross tenants."""
        return {bytes.fromhex(r["band"]) for r in self._band_rows(band_keys, exclude_path, tenant)}

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
        out = []
        for part in id_batches(int(r["chunk_id"]) for r in self._band_rows(band_keys, exclude_path, tenant)):
            for r in self._db.query("chunks", f"id in {ints(part)}", ["id", "minhash"], MAX_TOPK):
                other = np.frombuffer(bytes.fromhex(r["minhash"]), dtype="<u8")
                if other.shape == signature.shape and float(np.mean(other == signature)) >= threshold:
                    out.append(int(r["id"]))
        return sorted(out)

    # -- searching -------------------------------------------------------------
    def has_owned_documents(self) -> bool:
        """Whether a tenant owns any stored document (read once per index version)."""
        owned: bool = self._cached("owned", lambda: bool(self._db.query("documents", 'tenant != ""', ["id"], 1)))
        return owned

    def _expression(self, filters: SearchFilters | None, target: Target) -> tuple[str | None, Check | None]:
        """The Milvus expression of ``filters`` on collection ``target``, and the check its hits must pass too."""

        def ids_where(expr: str) -> set[int]:
            return {int(r["id"]) for r in self._db.query("documents", expr, ["id"])}

        builder = FilterBuilder(target, ids_where)
        return builder.expression(filters, has_owned=self.has_owned_documents()), builder.check

    def _ranked(self, run: Callable[[int], list[dict[str, Any]]], n: int, check: Check | None) -> list[ScoredId]:
        """The best ``n`` hits of ``run(limit)`` (Milvus hits, best first) whose chunks belong to the newest
        version of their document and pass ``check``; asked again for more while these tests drop some."""
        limit = min(n, MAX_TOPK)
        while True:
            raw = run(limit)
            live = self._live((int(h["entity"]["doc_id"]), str(h["entity"]["path"])) for h in raw)
            out = [
                ScoredId(int(h["id"]), float(h["score"]))
                for h in raw
                if int(h["entity"]["doc_id"]) in live
                and (check is None or check(int(h["entity"]["doc_id"]), h["entity"]["path"], h["entity"]["tenant"]))
            ]
            if len(out) >= n or len(raw) < limit or limit >= MAX_TOPK:
                return out[:n]
            limit = min(limit * 2 + n, MAX_TOPK)

    def lexical_search(
        self,
        terms: list[str],
        n: int,
        filters: SearchFilters | None = None,
        *,
        title_weight: float = 1.0,
        section_weight: float = 0.5,
    ) -> list[ScoredId]:
        """BM25 (Milvus's) over chunk text, title and section path; terms are OR-ed. Higher score is better.

        Each field has its own BM25 index; a chunk scores the weighted sum of its fields' scores (Milvus adds
        them up over each field's best hits)."""
        words = list(dict.fromkeys(w for t in terms for w in lex_words(t)))
        if not words or n <= 0 or not self._db.chunks_ready():
            return []
        expr, check = self._expression(filters, "chunks")
        if expr is NOTHING:
            return []
        weighted = [(f, w) for f, w in zip(LEX_FIELDS, (1.0, title_weight, section_weight), strict=True) if w > 0]
        query = " ".join(words)
        return self._ranked(lambda limit: self._db.bm25(query, weighted, limit, expr), n, check)

    def dense_search(
        self, vector: npt.NDArray[np.float32], n: int, filters: SearchFilters | None = None
    ) -> list[ScoredId]:
        """Inner product (cosine: vectors are unit length) over the chunks that pass the filters, exact (FLAT)."""
        if n <= 0 or not self._db.chunks_ready():
            return []
        expr, check = self._expression(filters, "chunks")
        if expr is NOTHING:
            return []
        data = np.asarray(vector, dtype=np.float32).tolist()

        def run(limit: int) -> list[dict[str, Any]]:
            return [{**h, "score": float(h["distance"])} for h in self._db.search("dense", data, limit, expr, "IP")]

        return self._ranked(run, n, check)

    def prepare_search(self) -> None:
        """Have what was written indexed now (milvus-lite: sealed), so that the first searches are fast."""
        self._db.flush()

    def chunk_count(self) -> int:
        """Chunks stored (counted again only when the index changed)."""
        count: int = self._cached("count", lambda: self._db.count("chunks"))
        return count

    def has_chunks(self) -> bool:
        """Whether any chunk is stored."""
        return bool(self._db.query("chunks", "", ["id"], 1))

    def term_document_counts(self, terms: list[str]) -> dict[str, int]:
        """How many chunks contain each term in their text (stemmed as the BM25 fields are), for IDF weights.

        A term of several words (``covid-19``) counts the chunks that hold all of them."""
        out: dict[str, int] = {}
        for t in dict.fromkeys(terms):
            words = list(dict.fromkeys(lex_words(t)))
            expr = " and ".join(f"text_match(lex_text, {quote(w)})" for w in words)
            out[t] = self._db.count("chunks", expr) if words else 0
        return out

    def chunk_paths(self) -> dict[int, str]:
        """chunk id -> document path, for every chunk (evaluation maps chunks back to documents)."""
        live = {int(r["id"]) for r in self._live_documents().values()}
        found = self._db.query("chunks", "", ["id", "doc_id", "path"])
        return {int(r["id"]): str(r["path"]) for r in found if int(r["doc_id"]) in live}

    # -- reading ---------------------------------------------------------------
    def chunk_rows(self, ids: list[int]) -> dict[int, ChunkRow]:
        """Chunk rows for ``ids`` that exist, by id (what a search needs to build its hits)."""
        found: list[dict[str, Any]] = []
        for part in id_batches(ids):
            found.extend(self._db.query("chunks", f"id in {ints(part)}", CHUNK_FIELDS, MAX_TOPK))
        live = self._live((int(r["doc_id"]), str(r["path"])) for r in found)
        texts: dict[int, str] = {}
        out: dict[int, ChunkRow] = {}
        for r in found:
            doc_id = int(r["doc_id"])
            if doc_id not in live:
                continue
            text = str(r["text"])
            if r["spilled"]:  # too long for a VARCHAR: the document's span
                if doc_id not in texts:
                    texts[doc_id] = self.document_text(doc_id)
                text = texts[doc_id][int(r["span_start"]) : int(r["span_end"])]
            out[int(r["id"])] = rows_of.chunk_row(r, text)
        return out

    def hits(self, ids: list[int]) -> dict[int, Hit]:
        """Chunk rows for ``ids`` as hits (score fields zero), new objects on every call."""
        return {i: r.hit(0.0) for i, r in self.chunk_rows(ids).items()}

    def document(self, doc_id: int) -> DocumentMeta | None:
        found = self._db.query("documents", f"id == {int(doc_id)}", DOC_FIELDS, 1)
        return rows_of.document_meta(found[0]) if found else None

    def documents(
        self, filters: SearchFilters | None = None, limit: int = 1000, offset: int = 0, *, every_owner: bool = False
    ) -> list[DocumentMeta]:
        """Stored documents that ``filters`` allow (a tenant's allowlist and own uploads), by path; without filters
        the shared corpus, or with ``every_owner`` (the operator's view) every document."""
        expr, check = ("", None) if every_owner and filters is None else self._expression(filters, "documents")
        if expr is NOTHING:
            return []
        ids = {int(r["id"]) for r in self._db.query("documents", expr, ["id"])}
        docs = [
            r
            for r in self._live_documents().values()
            if int(r["id"]) in ids and (check is None or check(int(r["id"]), r["path"], r["tenant"]))
        ]
        docs.sort(key=lambda r: str(r["path"]))
        return [rows_of.document_meta(r) for r in docs[offset : offset + limit]]

    def visible(self, doc_id: int, filters: SearchFilters | None) -> bool:
        """Whether the document ``doc_id`` exists and ``filters`` allow it (the same test search applies)."""
        expr, check = self._expression(filters, "documents")
        if expr is NOTHING:
            return False
        test = f"id == {int(doc_id)}" + (f" and ({expr})" if expr else "")
        found = self._db.query("documents", test, ["id", "path", "tenant"], 1)
        return bool(found) and (check is None or check(int(doc_id), found[0]["path"], found[0]["tenant"]))

    def document_path_tenant(self, path: str) -> str | None:
        """The owner of the stored document at ``path`` ('' = shared), or None when there is none."""
        found = self._rows_at(path, ["id", "tenant"])
        return str(found[0]["tenant"]) if found else None

    def document_text(self, doc_id: int) -> str:
        """The document's canonical text, exactly as it was put (its parts joined)."""
        found = self._db.query("documents", f"id == {int(doc_id)}", ["id", "n_parts"], 1)
        if not found:
            raise KeyError(doc_id)
        parts = self._db.query("texts", f"doc_id == {int(doc_id)}", ["part", "text"])
        if len(parts) != int(found[0]["n_parts"]):
            raise KeyError(doc_id)  # deleted while it was read
        return "".join(str(p["text"]) for p in sorted(parts, key=lambda p: int(p["part"])))

    def injection_counts(self, threshold: float) -> tuple[int, int]:
        """(chunks whose injection score is at least ``threshold``, chunks never scanned)."""
        flagged = self._db.count("chunks", f"injection >= {float(threshold)!r}")
        return flagged, self._db.count("chunks", "injection is null")

    def flagged_chunks(self, threshold: float, limit: int = 100) -> list[Hit]:
        """The chunks scored at or above ``threshold`` at ingest, highest first (``score`` = the injection score)."""
        got = self._db.query("chunks", f"injection >= {float(threshold)!r}", ["id", "injection"])
        got.sort(key=lambda r: (-float(r["injection"]), int(r["id"])))
        ids = [int(r["id"]) for r in got]
        found = self.chunk_rows(ids)
        return [found[i].hit(found[i].injection or 0.0) for i in ids if i in found][:limit]

    def stats(self) -> StoreStats:
        docs = self._live_documents().values()
        last = self._db.get_meta("last_ingest")
        dim = self._db.get_meta("dim")
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file()) if self._lite else 0
        return StoreStats(
            path=self.uri,
            documents=len(docs),
            chunks=self.chunk_count(),
            duplicates_removed=sum(int(r["n_duplicates"]) for r in docs),
            bytes_on_disk=size,
            embedding_model=self._db.get_meta("embedding_model"),
            dim=int(dim) if dim else None,
            last_ingest=datetime.fromtimestamp(float(last), UTC) if last else None,
        )

    def integrity_problems(self) -> list[str]:
        """Checks used after a crash: chunk and text-part counts per document, rows of no document, open intents."""
        problems: list[str] = []
        docs = self._db.query("documents", "", ["id", "path", "n_chunks", "n_parts"])
        if len(newest(docs)) != len(docs):
            problems.append(f"{len(docs) - len(newest(docs))} replaced document versions still stored")
        ids = {int(r["id"]) for r in docs}
        for role, declared in (("chunks", "n_chunks"), ("texts", "n_parts")):
            have: dict[int, int] = {}
            for r in self._db.query(role, "", ["doc_id"]):
                have[int(r["doc_id"])] = have.get(int(r["doc_id"]), 0) + 1
            for r in docs:
                if have.get(int(r["id"]), 0) != int(r[declared]):
                    problems.append(f"{r['path']}: {have.get(int(r['id']), 0)} {role} stored, {r[declared]} declared")
            orphans = sum(n for d, n in have.items() if d not in ids)
            if orphans:
                problems.append(f"{orphans} {role} without a document")
        intents = self._db.query("meta", 'key like "intent:%"', ["key"])
        if intents:
            problems.append(f"{len(intents)} unfinished writes")
        return problems
