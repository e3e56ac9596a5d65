"""What :class:`~tether.store._milvus.MilvusStore` stands on: the connection (with Tether's errors in place of
pymilvus's), the collection layouts, :class:`Collections` (the few calls made of them), id allocation and
expression literals.

pymilvus is imported here only, and only when a store is opened (it is an optional dependency).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tether.errors import ConfigError, IndexMissingError, TransientError

LAYOUT_VERSION = "1"
"""The layout of a Tether Milvus index (recorded in the meta collection; another one is refused)."""

MAX_VARCHAR = 65_535
"""Milvus's largest VARCHAR, in UTF-8 bytes: longer document texts are stored in parts of at most this."""
MAX_TOPK = 16_384
"""The most hits (limit + offset) one Milvus search or query returns."""
MAX_TAGS = 1024
LEX_FIELDS = ("text", "title", "section")
"""The BM25 fields of a chunk (``lex_<name>`` holds the stemmed words, ``bm25_<name>`` Milvus's sparse vector)."""
HIT_FIELDS = ["doc_id", "path", "tenant"]
"""What a search returns of each chunk: enough to check that its document version is the live one."""
DUMMY = [1.0, 0.0]
"""The value of the 2-d vector every non-chunk collection carries (Milvus wants a vector field in each)."""


def collection_names(prefix: str) -> dict[str, str]:
    """The collections of one index, by role."""
    return {role: f"{prefix}_{role}" for role in ("meta", "documents", "texts", "chunks", "bands", "dups")}


# -- connecting ----------------------------------------------------------------
def is_server_uri(uri: str) -> bool:
    return uri.split("://", 1)[0].lower() in ("http", "https", "tcp", "unix", "grpc") and "://" in uri


@contextmanager
def quiet_pymilvus() -> Iterator[None]:
    """pymilvus and milvus-lite log every failed call with its traceback at ERROR; Tether raises its own error."""
    logs = [logging.getLogger(name) for name in ("pymilvus", "milvus_lite")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)


def connect(uri: str, *, create: bool, token: str | None, timeout: float) -> Any:
    """A ``MilvusClient`` for ``uri``: a milvus-lite directory (``*.db``, started in this process) or a server URL.

    Raises:
        ConfigError: pymilvus or milvus-lite is not installed, or ``uri`` is neither a ``.db`` path nor a URL.
        IndexMissingError: a milvus-lite path that does not exist, with ``create=False``.
        TransientError: the server cannot be reached (or the milvus-lite data is locked by another process).
    """
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ConfigError(
            "the Milvus store needs pymilvus; install it with `pip install pymilvus milvus-lite`"
        ) from None
    if not is_server_uri(uri):
        if not uri.endswith(".db"):
            raise ConfigError(f"{uri} is not a Milvus URI: give a milvus-lite path ending in .db or an http(s) URL")
        path = Path(uri)
        if not path.exists() and not create:
            raise IndexMissingError(f"no index at {uri}; run `tether ingest PATH` first")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with quiet_pymilvus():
            client = MilvusClient(uri=uri, token=token or "", timeout=timeout)
        if not is_server_uri(uri):
            with _LITE_LOCK:
                key = str(Path(uri).resolve())
                _LITE_USERS[key] = _LITE_USERS.get(key, 0) + 1
        return client
    except Exception as e:  # pymilvus raises MilvusException, grpc errors or milvus-lite's own
        reason = getattr(e, "message", None) or str(e) or type(e).__name__
        if not is_server_uri(uri):
            raise TransientError(
                f"cannot open the milvus-lite index at {uri} ({reason}); is another process using it?"
            ) from None
        raise TransientError(
            f"cannot reach Milvus at {uri} ({reason}); check that the server runs and that the URI and token are right"
        ) from None


# -- collections ---------------------------------------------------------------
def _index(client: Any, name: str, schema: Any, indexes: list[tuple[str, str, str]]) -> None:
    """Create collection ``name``, its indexes ``(field, index type, metric)`` and load it.

    The indexes are created without waiting on each (pymilvus polls every 0.5 s, even for an empty collection);
    loading waits until they are usable."""
    client.create_collection(name, schema=schema, consistency_level="Strong")
    params = client.prepare_index_params()
    for field, kind, metric in indexes:
        params.add_index(field, index_type=kind, metric_type=metric)
    client.create_index(name, params, sync=False)
    client.load_collection(name)


def _base(client: Any, key_type: str = "INT64") -> Any:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    if key_type == "VARCHAR":
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
    else:
        schema.add_field("id", DataType.INT64, is_primary=True)
    return schema


def create_meta(client: Any, name: str) -> None:
    from pymilvus import DataType

    s = _base(client, "VARCHAR")
    s.add_field("value", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    _index(client, name, s, [("v", "FLAT", "IP")])


def create_documents(client: Any, name: str) -> None:
    from pymilvus import DataType

    s = _base(client)
    s.add_field("path", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("tenant", DataType.VARCHAR, max_length=512, is_partition_key=True)
    s.add_field("title", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("mtime", DataType.DOUBLE)
    s.add_field("content_hash", DataType.VARCHAR, max_length=256)
    s.add_field("size", DataType.INT64)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_TAGS, max_length=512)
    s.add_field("n_chunks", DataType.INT64)
    s.add_field("n_duplicates", DataType.INT64)
    s.add_field("n_parts", DataType.INT64)
    s.add_field("ingested_at", DataType.DOUBLE)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    _index(client, name, s, [("v", "FLAT", "IP")])


def create_texts(client: Any, name: str) -> None:
    from pymilvus import DataType

    s = _base(client)
    s.add_field("doc_id", DataType.INT64)
    s.add_field("part", DataType.INT64)
    s.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    _index(client, name, s, [("v", "FLAT", "IP")])


def create_chunks(client: Any, name: str, dim: int) -> None:
    from pymilvus import DataType, Function, FunctionType

    s = _base(client)
    s.add_field("doc_id", DataType.INT64)
    s.add_field("tenant", DataType.VARCHAR, max_length=512, is_partition_key=True)
    s.add_field("path", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("mtime", DataType.DOUBLE)
    s.add_field("ord", DataType.INT64)
    s.add_field("span_start", DataType.INT64)
    s.add_field("span_end", DataType.INT64)
    s.add_field("section", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("kinds", DataType.VARCHAR, max_length=1024)
    s.add_field("title", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("spilled", DataType.BOOL)
    s.add_field("minhash", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("injection", DataType.FLOAT, nullable=True)
    indexes: list[tuple[str, str, str]] = [("dense", "FLAT", "IP")]
    for f in LEX_FIELDS:
        s.add_field(f"lex_{f}", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, enable_match=True)
        s.add_field(f"bm25_{f}", DataType.SPARSE_FLOAT_VECTOR)
        s.add_function(
            Function(
                name=f"bm25_{f}",
                function_type=FunctionType.BM25,
                input_field_names=[f"lex_{f}"],
                output_field_names=[f"bm25_{f}"],
            )
        )
        indexes.append((f"bm25_{f}", "SPARSE_INVERTED_INDEX", "BM25"))
    s.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    _index(client, name, s, indexes)


def create_bands(client: Any, name: str) -> None:
    from pymilvus import DataType

    s = _base(client)
    s.add_field("band", DataType.VARCHAR, max_length=512)
    s.add_field("chunk_id", DataType.INT64)
    s.add_field("doc_id", DataType.INT64)
    s.add_field("path", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("tenant", DataType.VARCHAR, max_length=512, is_partition_key=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    _index(client, name, s, [("v", "FLAT", "IP")])


def create_dups(client: Any, name: str) -> None:
    from pymilvus import DataType

    s = _base(client)
    s.add_field("kept_chunk_id", DataType.INT64)
    s.add_field("doc_id", DataType.INT64)
    s.add_field("doc_path", DataType.VARCHAR, max_length=MAX_VARCHAR)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    _index(client, name, s, [("v", "FLAT", "IP")])


# -- ids -----------------------------------------------------------------------
class IdAllocator:
    """Ids that are never reused: microseconds since the epoch, strictly increasing within a process.

    Below 2**53 (until the year 2255), so they survive a JSON round trip through JavaScript. A block of ``n``
    consecutive ids may run ahead of the clock; the next block starts after it. Two processes writing the same
    index at the same microseconds could draw the same ids: one writer per index (as milvus-lite enforces).
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        """The largest id handed out (or seeded)."""
        return self._last

    def seed(self, next_id: int) -> None:
        """Never hand out an id below ``next_id`` (the index's high-water mark)."""
        with self._lock:
            self._last = max(self._last, next_id - 1)

    def block(self, n: int) -> int:
        """The first of ``n`` fresh consecutive ids."""
        with self._lock:
            first = max(self._last + 1, time.time_ns() // 1000)
            self._last = first + max(n, 1) - 1
            return first


# -- expressions -----------------------------------------------------------------
def quote(value: str) -> str:
    """``value`` as a Milvus expression string literal (Milvus knows no ``\\u`` escapes: other characters stay)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


def strings(values: list[str]) -> str:
    return "[" + ", ".join(quote(v) for v in values) + "]"


def ints(values: list[int] | set[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in sorted(values)) + "]"


# -- the collections of one index -----------------------------------------------------
class Collections:
    """The collections of one index (``<prefix>_<role>``) behind the few calls the store makes of them."""

    def __init__(self, client: Any, prefix: str, *, lite: bool, uri: str = "") -> None:
        self.client = client
        self.lite = lite
        self.uri = uri
        self.prefix = prefix
        self.names = collection_names(prefix)
        self._chunks = False  # whether the chunks collection exists (made at the first write)

    def prepare(self, uri: str, *, create: bool) -> None:
        """Create what is missing (with ``create``; else a missing index is an IndexMissingError) and load the rest."""
        have = set(self.client.list_collections())
        if self.names["meta"] not in have:
            if not create:
                raise IndexMissingError(f"no index at {uri} (prefix {self.prefix!r}); run `tether ingest PATH` first")
            create_meta(self.client, self.names["meta"])
        makers = {"documents": create_documents, "texts": create_texts, "bands": create_bands, "dups": create_dups}
        for role, make in makers.items():
            if self.names[role] not in have:
                make(self.client, self.names[role])
        self._chunks = self.names["chunks"] in have
        self.load(role for role in self.names if self.names[role] in have)

    def load(self, roles: Iterable[str]) -> None:
        """Load the collections that are not (a restarted milvus-lite, or a server, may have released them)."""
        from pymilvus.client.types import LoadState

        for role in roles:
            if self.client.get_load_state(self.names[role]).get("state") != LoadState.Loaded:
                self.client.load_collection(self.names[role])

    def chunks_ready(self) -> bool:
        """Whether the chunks collection exists (another process may have made it since)."""
        if not self._chunks and self.client.has_collection(self.names["chunks"]):
            self.load(["chunks"])
            self._chunks = True
        return self._chunks

    def ensure_chunks(self, dim: int) -> None:
        """The chunks collection, made on the first write (its vector width is the embedder's)."""
        if not self.chunks_ready():
            create_chunks(self.client, self.names["chunks"], dim)
            self._chunks = True

    def query(self, role: str, expr: str, fields: list[str], limit: int | None = None) -> list[dict[str, Any]]:
        """Rows of collection ``role`` that pass ``expr`` (at most ``limit``; all of them when None)."""
        if role == "chunks" and not self.chunks_ready():
            return []
        name = self.names[role]
        if limit is not None:
            return list(self.client.query(name, filter=expr, output_fields=fields, limit=limit))
        out: list[dict[str, Any]] = []
        with quiet_pymilvus():  # the iterator warns that milvus-lite has no MVCC timestamp to give it
            it = self.client.query_iterator(name, batch_size=4096, filter=expr, output_fields=fields)
            try:
                while batch := it.next():
                    out.extend(batch)
            finally:
                it.close()
        return out

    def count(self, role: str, expr: str = "") -> int:
        if role == "chunks" and not self.chunks_ready():
            return 0
        rows = self.client.query(self.names[role], filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def insert(self, role: str, rows: list[dict[str, Any]]) -> None:
        for b in range(0, len(rows), 1000):
            self.client.insert(self.names[role], rows[b : b + 1000])

    def upsert(self, role: str, rows: list[dict[str, Any]]) -> None:
        self.client.upsert(self.names[role], rows)

    def delete(self, role: str, expr: str) -> None:
        if role != "chunks" or self.chunks_ready():
            self.client.delete(self.names[role], filter=expr)

    def delete_ids(self, role: str, ids: list[int] | list[str]) -> None:
        if ids:
            self.client.delete(self.names[role], ids=ids)

    def flush(self) -> None:
        """Seal what was written into indexed segments. milvus-lite searches unsealed rows by brute force, in
        Python (20 times slower after an ingest); a server seals and indexes on its own, so it is not asked."""
        if self.lite:
            for role in ("chunks", "documents", "bands"):
                if role != "chunks" or self.chunks_ready():
                    self.client.flush(self.names[role])

    def get_meta(self, key: str) -> str | None:
        rows = self.client.get(self.names["meta"], ids=[key], output_fields=["value"])
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.client.upsert(self.names["meta"], [{"key": key, "value": value, "v": DUMMY}])

    def search(self, field: str, data: Any, limit: int, expr: str, metric: str) -> list[dict[str, Any]]:
        """The best ``limit`` chunks by ``field`` (a vector, or query text for a BM25 field), best first."""
        res = self.client.search(
            self.names["chunks"],
            data=[data],
            anns_field=field,
            limit=limit,
            filter=expr,
            search_params={"metric_type": metric},
            output_fields=HIT_FIELDS,
        )
        return list(res[0])

    def bm25(self, query: str, weighted: list[tuple[str, float]], limit: int, expr: str) -> list[dict[str, Any]]:
        """The best ``limit`` chunks by the weighted sum of BM25 over the fields ``weighted`` (score: ``score``).

        One field is one search (milvus-lite gives its BM25 as a negative distance, a server as a positive
        score: the magnitude is the score); several are a hybrid search whose WeightedRanker adds the raw scores."""
        from pymilvus import AnnSearchRequest, WeightedRanker

        if len(weighted) == 1:
            field, weight = weighted[0]
            hits = self.search(f"bm25_{field}", query, limit, expr, "BM25")
            return [{**h, "score": abs(float(h["distance"])) * weight} for h in hits]
        reqs = [
            AnnSearchRequest(
                data=[query], anns_field=f"bm25_{f}", param={"metric_type": "BM25"}, limit=limit, expr=expr
            )
            for f, _ in weighted
        ]
        ranker = WeightedRanker(*(w for _, w in weighted), norm_score=False)
        res = self.client.hybrid_search(self.names["chunks"], reqs, ranker, limit=limit, output_fields=HIT_FIELDS)
        return [{**h, "score": abs(float(h["distance"]))} for h in res[0]]

    def close(self) -> None:
        self.client.close()
        if self.lite:
            release_lite(self.uri)


_LITE_LOCK = threading.Lock()
_LITE_USERS: dict[str, int] = {}


def release_lite(uri: str) -> None:
    """Stop this process's milvus-lite server of ``uri`` once no open store uses it: the data directory is locked
    to the process that serves it, and another process (an export after an import) must be able to open it."""
    key = str(Path(uri).resolve())
    with _LITE_LOCK:
        users = _LITE_USERS.get(key, 0) - 1
        if users > 0:
            _LITE_USERS[key] = users
            return
        _LITE_USERS.pop(key, None)
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(uri)
