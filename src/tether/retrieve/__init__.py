"""Hybrid retrieval: lexical top-N + dense top-N, fused, filtered, near-duplicates collapsed."""

from tether.retrieve._fusion import convex_fusion, rrf_fusion
from tether.retrieve._hybrid import Mode, Retriever

__all__ = ["Mode", "Retriever", "convex_fusion", "rrf_fusion"]
