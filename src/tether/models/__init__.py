"""Model protocols and their offline backends."""

from tether.models._embedder import Embedder, OnnxEmbedder, TokenVectors, load_embedder

__all__ = ["Embedder", "OnnxEmbedder", "TokenVectors", "load_embedder"]
