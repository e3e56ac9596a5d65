from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
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
    """What every index backend (the embedded SQLite store, Milvus) offers the rest of Tether. Each document is
    written atomically; a search never returns a chunk its filters (tenant, allowlist, path, tags, dates) exclude."""

    path: Path
    lock_path: Path  # ingests into this index wait for each other on ``<lock_path>.ingest-lock``

    def close(self) -> None: ...

    def setting(self, key: str) -> str | None: ...

    def record_setting(self, key: str, value: str) -> None: ...

    def check_embedding(self, model_id: str, dim: int) -> None: ...

    def document_hash(self, path: str) -> str | None: ...

    def add_tags(self, path: str, tags: list[str]) -> bool: ...

    def chunk_ords(self, path: str) -> list[tuple[int, int]]: ...

    def stale_paths(self) -> list[str]: ...

    def paths(self) -> list[str]: ...

    def put_document(self, doc: NewDocument) -> int: ...

    def export_document(self, path: str) -> NewDocument | None: ...

    def batch(self) -> AbstractContextManager[None]: ...

    def delete_document(self, path: str) -> bool: ...

    def stored_band_keys(self, band_keys: list[bytes], exclude_path: str, tenant: str = "") -> set[bytes]: ...

    def near_duplicates(
        self,
        band_keys: list[bytes],
        signature: npt.NDArray[np.uint64],
        threshold: float,
        exclude_path: str,
        tenant: str = "",
    ) -> list[int]: ...

    def has_owned_documents(self) -> bool: ...

    def lexical_search(
        self,
        terms: list[str],
        n: int,
        filters: SearchFilters | None = None,
        *,
        title_weight: float = 1.0,
        section_weight: float = 0.5,
    ) -> list[ScoredId]: ...

    def prepare_search(self) -> None: ...

    def chunk_count(self) -> int: ...

    def has_chunks(self) -> bool: ...

    def term_document_counts(self, terms: list[str]) -> dict[str, int]: ...

    def chunk_paths(self) -> dict[int, str]: ...

    @property
    def generation(self) -> int: ...

    def dense_search(
        self, vector: npt.NDArray[np.float32], n: int, filters: SearchFilters | None = None
    ) -> list[ScoredId]: ...

    def chunk_rows(self, ids: list[int]) -> dict[int, ChunkRow]: ...

    def hits(self, ids: list[int]) -> dict[int, Hit]: ...

    def document(self, doc_id: int) -> DocumentMeta | None: ...

    def documents(
        self, filters: SearchFilters | None = None, limit: int = 1000, offset: int = 0, *, every_owner: bool = False
    ) -> list[DocumentMeta]: ...

    def visible(self, doc_id: int, filters: SearchFilters | None) -> bool: ...

    def document_path_tenant(self, path: str) -> str | None: ...

    def document_text(self, doc_id: int) -> str: ...

    def injection_counts(self, threshold: float) -> tuple[int, int]: ...

    def flagged_chunks(self, threshold: float, limit: int = 100) -> list[Hit]: ...

    def stats(self) -> StoreStats: ...

    def integrity_problems(self) -> list[str]: ...
