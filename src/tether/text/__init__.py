"""Text utilities shared by ingestion and retrieval: sentences, words, token estimates."""

from tether.text._idf import idf_value
from tether.text._sentences import split_sentences
from tether.text._stem import stem
from tether.text._tokens import STOPWORDS, content_words, estimate_tokens, words

__all__ = ["STOPWORDS", "content_words", "estimate_tokens", "idf_value", "split_sentences", "stem", "words"]
