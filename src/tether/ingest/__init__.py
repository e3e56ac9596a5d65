"""Ingestion: parse -> chunk -> dedupe -> embed -> index, incremental and atomic per document."""

from tether.ingest._files import Source, discover
from tether.ingest._pipeline import Ingestor, embedding_text
from tether.ingest._progress import IngestProgress, ProgressPrinter
from tether.ingest._run import ingest_paths

__all__ = ["IngestProgress", "Ingestor", "ProgressPrinter", "Source", "discover", "embedding_text", "ingest_paths"]
