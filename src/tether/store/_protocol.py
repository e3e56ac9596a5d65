from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from tether.contracts import DocumentMeta, Hit, SearchFilters, StoreStats


class ScoredId(NamedTuple):
    chunk_id: int
    score: float


class ChunkRow(NamedTuple):
    """A stored chunk as :meth:`SQLiteStore.chunk_rows` reads it: a :class:`~tether.contracts.Hit` without scores,
    and its MinHash signature as stored (``minhash``: little-endian uint64 values)."""

    chunk_id: int
    doc_id: int
    path: str
    title: str
    section: list[str]
    start: int
    end: int
    text: str
    minhash: bytes
    injection: float | None = None

    def hit(
        self,
        score: float,
        lexical_rank: int | None = None,
        dense_rank: int | None = None,
        lexical_score: float | None = None,
        dense_score: float | None = None,
    ) -> Hit:
        """This chunk as a :class:`~tether.contracts.Hit` with the given scores."""
        return Hit(
            chunk_id=self.chunk_id,
            doc_id=self.doc_id,
            path=self.path,
            title=self.title,
            section=self.section,
            start=self.start,
            end=self.end,
            text=self.text,
            score=score,
            lexical_rank=lexical_rank,
            dense_rank=dense_rank,
            lexical_score=lexical_score,
            dense_score=dense_score,
            injection=self.injection,
        )


@dataclass
class NewChunk:
    ord: int
    start: int
    end: int
    text: str
    section: list[str]
    kinds: list[str]
    vector: npt.NDArray[np.float32]
    signature: npt.NDArray[np.uint64]
    band_keys: list[bytes]
    injection: float | None = None
    """The injection detector's score of the chunk (None: not scanned)."""


@dataclass
class NewDocument:
    path: str
    title: str
    mtime: datetime
    content_hash: str
    size: int
    text: str
    chunks: list[NewChunk]
    tags: list[str] = field(default_factory=list)
    n_duplicates: int = 0
    duplicate_of: list[int] = field(default_factory=list)
    """Stored chunk ids that this document's dropped near-duplicates matched."""
    tenant: str | None = None
    """The tenant that owns the document ('' = the shared corpus); None keeps the stored document's owner."""


class Store(Protocol):
    """What every backend (embedded SQLite, Milvus) must do. Each document is written atomically."""

    def document_hash(self, path: str) -> str | None: ...

    def paths(self) -> list[str]: ...

    def put_document(self, doc: NewDocument) -> int: ...

    def delete_document(self, path: str) -> bool: ...

    def near_duplicates(
        self, band_keys: list[bytes], signature: npt.NDArray[np.uint64], threshold: float, exclude_path: str
    ) -> list[int]: ...

    def lexical_search(self, terms: list[str], n: int, filters: SearchFilters | None = None) -> list[ScoredId]: ...

    def dense_search(
        self, vector: npt.NDArray[np.float32], n: int, filters: SearchFilters | None = None
    ) -> list[ScoredId]: ...

    def hits(self, ids: list[int]) -> dict[int, Hit]: ...

    def document(self, doc_id: int) -> DocumentMeta | None: ...

    def document_text(self, doc_id: int) -> str: ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...
