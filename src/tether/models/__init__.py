"""Model protocols and their offline backends."""

from tether.models._embedder import Embedder, OnnxEmbedder, TokenVectors, load_embedder
from tether.models._generator import Completion, Generator, Message, OpenAICompatGenerator, generator_from_settings

__all__ = [
    "Completion",
    "Embedder",
    "Generator",
    "Message",
    "OnnxEmbedder",
    "OpenAICompatGenerator",
    "TokenVectors",
    "generator_from_settings",
    "load_embedder",
]
