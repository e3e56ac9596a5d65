"""Model protocols and their offline backends."""

from tether.models._embedder import Embedder, OnnxEmbedder, load_embedder

__all__ = ["Embedder", "OnnxEmbedder", "load_embedder"]
