"""The packaged MiniLM embedder: unit vectors, meaning-aware, independent of batching."""

from __future__ import annotations

import numpy as np
import pytest

from tether.config import EmbeddingSettings
from tether.errors import ModelError
from tether.models import OnnxEmbedder, load_embedder


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return load_embedder(EmbeddingSettings(batch_size=2))


def test_vectors_are_unit_length_and_384_wide(embedder: OnnxEmbedder) -> None:
    v = embedder.embed(["A cat sat on the mat.", "Quarterly revenue grew by 4%."])
    assert v.shape == (2, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_text(embedder: OnnxEmbedder) -> None:
    a, b, c = embedder.embed(["A man is eating food.", "Someone is having a meal.", "The stock market fell sharply."])
    assert float(a @ b) > float(a @ c) + 0.3


def test_result_does_not_depend_on_batching_or_order(embedder: OnnxEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence about rivers", "mid length text here", "x y z"]
    together = embedder.embed(texts)
    one_by_one = np.vstack([embedder.embed([t]) for t in reversed(texts)])[::-1]
    assert np.allclose(together, one_by_one, atol=1e-4)


def test_encode_gives_the_same_pooled_vectors_and_word_piece_tokens(embedder: OnnxEmbedder) -> None:
    texts = ["When did the Normans conquer England?", "In 1066."]
    pooled, tokens = embedder.encode(texts)
    assert np.allclose(pooled, embedder.embed(texts), atol=1e-5)
    assert tokens[0].tokens[:4] == ["when", "did", "the", "norman"]
    assert "[CLS]" not in tokens[0].tokens and "[SEP]" not in tokens[0].tokens
    assert tokens[0].vectors.shape == (len(tokens[0].tokens), 384)


def test_empty_input_gives_an_empty_matrix(embedder: OnnxEmbedder) -> None:
    assert embedder.embed([]).shape == (0, 384)


def test_a_model_path_without_a_tokenizer_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="embedding.tokenizer"):
        load_embedder(EmbeddingSettings(model="my-model.onnx"))
