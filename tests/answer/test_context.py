"""Context assembly: diversity, edge ordering, the token budget."""

from __future__ import annotations

from tether.answer._context import assemble, edges_first, mmr
from tether.contracts import Hit


def hit(i: int, text: str, score: float) -> Hit:
    return Hit(
        chunk_id=i, doc_id=i, path=f"d{i}.md", title="t", section=[], start=0, end=len(text), text=text, score=score
    )


def test_mmr_prefers_a_different_passage_over_a_near_copy() -> None:
    a = hit(1, "the ferry leaves the north pier at seven every morning", 1.0)
    a_copy = hit(2, "the ferry leaves the north pier at seven every single morning", 0.95)
    other = hit(3, "tickets are sold at the harbour office next to the pier", 0.6)
    assert [h.chunk_id for h in mmr([a, a_copy, other], 2)] == [1, 3]


def test_strongest_evidence_goes_to_the_edges() -> None:
    ranked = [hit(i, f"text {i}", 1.0 - i / 10) for i in range(1, 6)]
    assert [h.chunk_id for h in edges_first(ranked)] == [1, 3, 5, 4, 2]


def test_the_budget_is_respected_and_exact_duplicates_are_dropped() -> None:
    long = " ".join(["word"] * 400)
    hits = [
        hit(1, "short and relevant", 1.0),
        hit(2, long, 0.9),
        hit(3, "short and relevant", 0.8),
        hit(4, "another short one", 0.5),
    ]
    out = assemble(hits, k=4, budget_tokens=100)
    assert {h.chunk_id for h in out} == {1, 4}
