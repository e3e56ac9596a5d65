"""Ingestion: parse -> chunk -> dedupe -> embed -> index, incremental and atomic per document."""

from tether.ingest._pipeline import Ingestor, discover, embedding_text, ingest_paths

__all__ = ["Ingestor", "discover", "embedding_text", "ingest_paths"]
