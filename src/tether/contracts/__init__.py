"""Typed records every stage passes on. Stages talk through these models only."""

from tether.contracts._models import (
    Answer,
    Block,
    BlockKind,
    Chunk,
    Citation,
    DocumentMeta,
    Feedback,
    Hit,
    IngestSummary,
    ParsedDocument,
    SearchFilters,
    SkippedFile,
    SourceAllowlist,
    StoreStats,
    TraceEvent,
)

__all__ = [
    "Answer",
    "Block",
    "BlockKind",
    "Chunk",
    "Citation",
    "DocumentMeta",
    "Feedback",
    "Hit",
    "IngestSummary",
    "ParsedDocument",
    "SearchFilters",
    "SourceAllowlist",
    "SkippedFile",
    "StoreStats",
    "TraceEvent",
]
