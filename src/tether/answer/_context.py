"""Context assembly for a prompt: dedupe, diversify (MMR), order against lost-in-the-middle, fit a budget."""

from __future__ import annotations

from tether.contracts import Hit
from tether.text import estimate_tokens, words


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def mmr(hits: list[Hit], k: int, lambda_: float = 0.5) -> list[Hit]:
    """Maximal marginal relevance over word sets: relevant, and unlike what is already chosen."""
    if not hits:
        return []
    top = max(h.score for h in hits) or 1.0
    rel = {h.chunk_id: h.score / top for h in hits}
    sets = {h.chunk_id: set(words(h.text)) for h in hits}
    chosen: list[Hit] = []
    rest = list(hits)
    while rest and len(chosen) < k:
        best = max(
            rest,
            key=lambda h: (
                lambda_ * rel[h.chunk_id]
                - (1 - lambda_) * max((_jaccard(sets[h.chunk_id], sets[c.chunk_id]) for c in chosen), default=0.0)
            ),
        )
        chosen.append(best)
        rest.remove(best)
    return chosen


def edges_first(ranked: list[Hit]) -> list[Hit]:
    """Strongest evidence at the edges of the prompt: ranks 1, 3, 5, ... then ..., 4, 2."""
    return ranked[0::2] + ranked[1::2][::-1]


def assemble(hits: list[Hit], *, k: int = 6, budget_tokens: int = 1500, lambda_: float = 0.5) -> list[Hit]:
    """The sources a prompt gets: deduplicated, diversified, within the token budget, edges first."""
    seen: set[str] = set()
    unique = []
    for h in hits:
        key = " ".join(h.text.split())
        if key not in seen:
            seen.add(key)
            unique.append(h)
    picked = mmr(unique, k, lambda_)
    fitted: list[Hit] = []
    used = 0
    for h in picked:  # keep the most relevant that fit
        cost = estimate_tokens(h.text) + 12
        if used + cost > budget_tokens:
            continue
        fitted.append(h)
        used += cost
    return edges_first(fitted)
