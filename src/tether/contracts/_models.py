from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

BlockKind = Literal["heading", "paragraph", "table", "code", "list"]


class Block(BaseModel):
    """A structural unit of a parsed document: ``text[start:end]`` of the document."""

    start: int
    end: int
    kind: BlockKind
    section: list[str] = Field(default_factory=list, description="heading path above this block")


class ParsedDocument(BaseModel):
    """What a parser returns: the canonical text (citations point into it) and its blocks."""

    text: str
    title: str
    blocks: list[Block]


class DocumentMeta(BaseModel):
    """Source metadata of one stored document."""

    doc_id: int
    path: str
    title: str
    mtime: datetime
    content_hash: str
    size: int
    tags: list[str] = Field(default_factory=list)
    n_chunks: int = 0
    n_duplicates: int = 0
    tenant: str = Field("", description="the tenant that owns the document ('' = the shared corpus)")


class Chunk(BaseModel):
    """A retrievable span ``document.text[start:end]``."""

    ord: int
    start: int
    end: int
    text: str
    section: list[str] = Field(default_factory=list)
    kinds: list[BlockKind] = Field(default_factory=list)


class Hit(BaseModel):
    """One retrieved chunk with the scores that ranked it."""

    chunk_id: int
    doc_id: int
    path: str
    title: str
    section: list[str]
    start: int
    end: int
    text: str
    score: float
    lexical_rank: int | None = None
    dense_rank: int | None = None
    lexical_score: float | None = None
    dense_score: float | None = None
    rerank_score: float | None = None
    injection: float | None = Field(
        None, description="p(prompt injection) of the chunk, scored at ingest; None = not scanned (see safety:)"
    )


class SourceAllowlist(BaseModel):
    """The documents a tenant may be answered from: its own (uploaded through the service, ``owner``) and, of the
    shared corpus, a path matching one of ``paths`` (globs, matched against the stored path and any trailing part
    of it) or carrying one of ``tags``. Empty lists allow none of the shared corpus. A document another tenant
    owns is never allowed."""

    paths: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    owner: str | None = Field(None, description="the tenant whose own documents are allowed")


class SearchFilters(BaseModel):
    """Metadata filters applied to both lexical and dense search."""

    path_glob: str | None = None
    tags: list[str] = Field(default_factory=list, description="a document must carry all of these")
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    allow: SourceAllowlist | None = Field(None, description="the tenant's source allowlist (applied in the store)")


class Citation(BaseModel):
    """An exact quoted span: ``document.text[start:end] == quote``."""

    n: int
    doc_id: int
    path: str
    title: str
    section: list[str]
    start: int
    end: int
    quote: str
    redacted: bool = Field(
        False, description="PII in the quote was replaced by <KIND> for this caller (safety.pii.answers)"
    )


class TraceEvent(BaseModel):
    stage: str
    detail: dict[str, object] = Field(default_factory=dict)
    ms: float = 0.0


class Answer(BaseModel):
    """The result of ``Tether.ask``: cited text, or an honest abstention."""

    question: str
    text: str
    abstained: bool
    citations: list[Citation] = Field(default_factory=list)
    support: float = Field(description="calibrated probability that the cited text answers the question")
    threshold: float
    reason: str = ""
    nearest: Citation | None = Field(
        None, description="on abstention: the closest evidence found, for orientation only (not an answer)"
    )
    config_hash: str
    trace: list[TraceEvent] = Field(default_factory=list)
    trace_id: str = Field("", description="the request's trace (`tether trace show ID`); empty when tracing is off")
    warnings: list[str] = Field(
        default_factory=list,
        description="what a reader should know about the evidence, e.g. a citation from a chunk flagged as a "
        "possible prompt injection (safety.injection.action: warn)",
    )


class SkippedFile(BaseModel):
    path: str
    reason: str


class IngestSummary(BaseModel):
    """What one ``tether ingest`` did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: list[SkippedFile] = Field(default_factory=list)
    chunks: int = 0
    duplicates_removed: int = 0
    seconds: float = 0.0
    parse_seconds: float = 0.0
    dedupe_seconds: float = 0.0
    embed_seconds: float = 0.0
    index_seconds: float = 0.0


class StoreStats(BaseModel):
    path: str
    documents: int
    chunks: int
    duplicates_removed: int
    bytes_on_disk: int
    embedding_model: str | None
    dim: int | None
    last_ingest: datetime | None
    injection_threshold: float | None = Field(None, description="the detector's flag threshold (safety.injection)")
    injection_flagged: int = Field(0, description="chunks scored at or above it at ingest (`tether stats --flagged`)")
    injection_unscanned: int = Field(0, description="chunks stored before the detector (re-ingest to scan them)")


class Feedback(BaseModel):
    """A user's verdict on one answer (collected by the service; turned into draft eval cases)."""

    question: str
    answer: str = Field(description="the answer text that was given")
    rating: Literal["up", "down"]
    reason: str = ""
    correction: str | None = Field(None, description="what the answer should have said, if the user knows")
    expected_abstain: bool | None = Field(None, description="the user says the documents do not answer this")
    config_hash: str = ""
    cited_paths: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
