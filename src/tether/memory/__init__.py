"""Conversation memory, offline by default: standalone follow-up questions and remembered user facts.

Retrieval needs a question that stands alone. ``rewrite_followup`` builds one with rules only (slot swaps, pronoun
resolution, topic appends) from the last standalone user question; callers keep each user turn's rewritten text in
the history, so chains of follow-ups resolve one step at a time. ``llm_rewrite`` asks a ``Generator`` instead but
rejects an empty, overlong or topic-adding answer and falls back to the rules, so a model cannot steer retrieval.
``extract_facts`` keeps first-person statements ("I work in the Porto office"), precision over recall;
``FactStore`` keeps them per tenant and user in SQLite with their embeddings and recalls them by cosine
similarity, never across tenants or users. Each rewrite says how it was made (``method``, a one-line ``reason``).
"""

from __future__ import annotations

from tether.memory._facts import Fact, FactStore, extract_facts
from tether.memory._rewrite import Rewrite, Turn, llm_rewrite, rewrite_followup

__all__ = ["Fact", "FactStore", "Rewrite", "Turn", "extract_facts", "llm_rewrite", "rewrite_followup"]
