"""Storage of documents, chunks, BM25 and vectors behind one ``Store`` protocol."""

from tether.store._protocol import ChunkRow, NewChunk, NewDocument, ScoredId, Store
from tether.store._sqlite import SQLiteStore

__all__ = ["ChunkRow", "NewChunk", "NewDocument", "SQLiteStore", "ScoredId", "Store"]
