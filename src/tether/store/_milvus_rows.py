"""Tether's records as Milvus rows and back, for :class:`~tether.store._milvus.MilvusStore` (no I/O here).

A chunk row keeps its text when it fits a VARCHAR (65,535 UTF-8 bytes) and is marked ``spilled`` otherwise: its
text is then read from the document's, which is always stored whole (in parts). The BM25 fields hold the words as
:func:`lex_words` makes them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tether.contracts import DocumentMeta
from tether.store._milvus_schema import DUMMY, MAX_VARCHAR
from tether.store._protocol import ChunkRow, NewDocument
from tether.text import stem

DOC_FIELDS = ["id", "path", "tenant", "title", "mtime", "content_hash", "size", "tags", "n_chunks", "n_duplicates"]
ALL_DOC_FIELDS = [*DOC_FIELDS, "n_parts", "ingested_at"]
CHUNK_FIELDS = [
    *("id", "doc_id", "path", "title", "section", "span_start", "span_end"),
    *("text", "spilled", "minhash", "injection"),
]
ID_BATCH = 500
"""Ids per ``in [...]`` expression."""

_WORD_RE = re.compile(r"[^\W_]+")


def lex_words(text: str) -> list[str]:
    """The words BM25 sees, as FTS5's ``porter unicode61 remove_diacritics 2`` tokenizer makes them: runs of
    letters and digits, lowercased, without diacritics, stemmed (Snowball English here, Porter there).

    Stemming happens here, not in Milvus, so that milvus-lite (whose analyzer does not stem) and a Milvus server
    index the same words, and a search stems its terms alike."""
    plain = unicodedata.normalize("NFKD", text.lower())
    if not plain.isascii():
        plain = "".join(c for c in plain if not unicodedata.combining(c))
    return [stem(w) for w in _WORD_RE.findall(plain)]


def lex_field(text: str) -> str:
    """The stemmed words of ``text`` joined by spaces, cut at a word to fit a VARCHAR."""
    joined = " ".join(lex_words(text))
    if len(joined.encode("utf-8")) <= MAX_VARCHAR:
        return joined
    cut = joined.encode("utf-8")[:MAX_VARCHAR].decode("utf-8", errors="ignore")
    return cut.rsplit(" ", 1)[0]


def utf8_parts(text: str, limit: int = MAX_VARCHAR) -> list[str]:
    """``text`` cut into consecutive parts of at most ``limit`` UTF-8 bytes (never inside a character)."""
    parts: list[str] = []
    at = 0
    while at < len(text):
        # a character is at most 4 bytes: limit // 4 characters always fit; grow while the bytes allow
        end = min(len(text), at + limit // 4)
        size = len(text[at:end].encode("utf-8"))
        while end < len(text):
            step = min(len(text) - end, max((limit - size) // 4, 1))
            more = len(text[end : end + step].encode("utf-8"))
            if size + more > limit:
                break
            size += more
            end += step
        parts.append(text[at:end])
        at = end
    return parts or [""]


def id_batches(ids: Iterable[int]) -> Iterator[list[int]]:
    """``ids`` (distinct, ascending) in batches small enough for one expression."""
    items = sorted(set(ids))
    for b in range(0, len(items), ID_BATCH):
        yield items[b : b + ID_BATCH]


def newest(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """path -> the newest (largest id) of the document ``rows``: the version readers see."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        have = out.get(r["path"])
        if have is None or int(r["id"]) > int(have["id"]):
            out[r["path"]] = r
    return out


def document_meta(r: dict[str, Any]) -> DocumentMeta:
    return DocumentMeta(
        doc_id=int(r["id"]),
        path=str(r["path"]),
        title=str(r["title"]),
        mtime=datetime.fromtimestamp(float(r["mtime"]), UTC),
        content_hash=str(r["content_hash"]),
        size=int(r["size"]),
        tags=list(r["tags"] or []),
        n_chunks=int(r["n_chunks"]),
        n_duplicates=int(r["n_duplicates"]),
        tenant=str(r["tenant"]),
    )


def document_row(doc: NewDocument, doc_id: int, tenant: str, tags: list[str], n_parts: int) -> dict[str, Any]:
    """The row that commits a document version (chunk ``i`` of it has id ``doc_id + 1 + i``)."""
    return {
        "id": doc_id,
        "path": doc.path,
        "tenant": tenant,
        "title": doc.title,
        "mtime": doc.mtime.timestamp(),
        "content_hash": doc.content_hash,
        "size": doc.size,
        "tags": tags,
        "n_chunks": len(doc.chunks),
        "n_duplicates": doc.n_duplicates,
        "n_parts": n_parts,
        "ingested_at": datetime.now(UTC).timestamp(),
        "v": DUMMY,
    }


def text_rows(doc_id: int, parts: list[str], first_id: int) -> list[dict[str, Any]]:
    return [{"id": first_id + i, "doc_id": doc_id, "part": i, "text": t, "v": DUMMY} for i, t in enumerate(parts)]


def chunk_rows(doc: NewDocument, doc_id: int, tenant: str) -> list[dict[str, Any]]:
    """The chunk rows of a document version: its path, tenant and mtime copied for the filters."""
    title_words = lex_field(doc.title)
    out = []
    for i, ch in enumerate(doc.chunks):
        spilled = len(ch.text.encode("utf-8")) > MAX_VARCHAR
        out.append(
            {
                "id": doc_id + 1 + i,
                "doc_id": doc_id,
                "tenant": tenant,
                "path": doc.path,
                "mtime": doc.mtime.timestamp(),
                "ord": ch.ord,
                "span_start": ch.start,
                "span_end": ch.end,
                "section": json.dumps(ch.section),
                "kinds": json.dumps(ch.kinds),
                "title": doc.title,
                "text": "" if spilled else ch.text,
                "spilled": spilled,
                "minhash": np.ascontiguousarray(ch.signature, dtype="<u8").tobytes().hex(),
                "injection": ch.injection,
                "lex_text": lex_field(ch.text),
                "lex_title": title_words,
                "lex_section": lex_field(" ".join(ch.section)),
                "dense": np.asarray(ch.vector, dtype=np.float32).tolist(),
            }
        )
    return out


def band_rows(doc: NewDocument, doc_id: int, tenant: str, first_id: int) -> list[dict[str, Any]]:
    """One row per distinct LSH band key of each chunk."""
    keys = [(doc_id + 1 + i, k) for i, ch in enumerate(doc.chunks) for k in dict.fromkeys(ch.band_keys)]
    return [
        {"id": first_id + j, "band": k.hex(), "chunk_id": cid, "doc_id": doc_id, "path": doc.path, "tenant": tenant}
        | {"v": DUMMY}
        for j, (cid, k) in enumerate(keys)
    ]


def n_band_rows(doc: NewDocument) -> int:
    return sum(len(dict.fromkeys(ch.band_keys)) for ch in doc.chunks)


def dup_rows(doc: NewDocument, doc_id: int, first_id: int) -> list[dict[str, Any]]:
    """The stored chunks the document's dropped near-duplicates matched."""
    kept = sorted(set(doc.duplicate_of))
    return [
        {"id": first_id + j, "kept_chunk_id": k, "doc_id": doc_id, "doc_path": doc.path, "v": DUMMY}
        for j, k in enumerate(kept)
    ]


def chunk_row(r: dict[str, Any], text: str) -> ChunkRow:
    """A chunk as the store reads it (``text``: the row's, or the document's span for a spilled one)."""
    injection = r.get("injection")
    return ChunkRow(
        int(r["id"]),
        int(r["doc_id"]),
        str(r["path"]),
        str(r["title"]),
        list(json.loads(r["section"])),
        int(r["span_start"]),
        int(r["span_end"]),
        text,
        bytes.fromhex(r["minhash"]),
        None if injection is None else float(injection),
    )
