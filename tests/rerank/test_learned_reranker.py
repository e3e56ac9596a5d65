"""The learned reranker: a permutation of the hits, best first, and wired into search when enabled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether import Tether
from tether.contracts import Hit
from tether.errors import ModelError
from tether.rerank import LearnedReranker, Reranker, load_rerank_model


def _hit(i: int, text: str, title: str = "", score: float = 0.5) -> Hit:
    return Hit(
        chunk_id=i,
        doc_id=i,
        path=f"d{i}.md",
        title=title,
        section=[],
        start=0,
        end=len(text),
        text=text,
        score=score,
        lexical_rank=i,
        dense_rank=i,
        lexical_score=score,
        dense_score=score,
    )


def test_rerank_is_a_scored_permutation() -> None:
    r = LearnedReranker()
    assert isinstance(r, Reranker)
    hits = [_hit(1, "alpha beta"), _hit(2, "gamma delta"), _hit(3, "epsilon")]
    out = r.rerank("gamma", hits)
    assert sorted(h.chunk_id for h in out) == [1, 2, 3]
    scores = [h.rerank_score for h in out]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)  # type: ignore[type-var]


def test_a_chunk_that_covers_the_query_outranks_an_equal_one_that_does_not() -> None:
    r = LearnedReranker()
    a = _hit(1, "The weather in spring is mild and often rainy.")
    b = _hit(1, "Vitamin D deficiency raises the risk of rickets in children.")
    b = b.model_copy(update={"chunk_id": 2})
    out = r.rerank("vitamin D deficiency rickets risk", [a, b])
    assert out[0].chunk_id == 2


def test_empty_input() -> None:
    assert LearnedReranker().rerank("q", []) == []


def test_model_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="missing.json"):
        load_rerank_model(tmp_path / "missing.json")
    data = json.loads(load_rerank_model().model_dump_json())
    data["model"]["features"] = ["x"] * len(data["model"]["features"])
    (tmp_path / "m.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="other features"):
        load_rerank_model(tmp_path / "m.json")


def test_search_reranks_when_enabled_and_says_so_in_the_trace(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Garden\n\nTomatoes need sun and regular watering in summer.\n")
    (tmp_path / "docs" / "b.md").write_text("# Kitchen\n\nTomato sauce simmers for an hour with garlic.\n")
    (tmp_path / "docs" / "c.md").write_text("# Car\n\nChange the oil every ten thousand kilometres.\n")
    (tmp_path / "tether.yaml").write_text("rerank: {enabled: true, depth: 3}\n")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    hits = t.search("how often to water tomatoes", k=2)
    assert len(hits) == 2 and all(h.rerank_score is not None for h in hits)
    assert hits[0].path.endswith("a.md")
    a = t.ask("how often to water tomatoes")
    ev = next(e for e in a.trace if e.stage == "rerank")
    assert ev.detail["depth"] == 5 and ev.detail["model"].startswith("learned:")  # depth >= top_k (5)

    (tmp_path / "tether.yaml").write_text("rerank: {enabled: false}\n")
    off = Tether.open(tmp_path / "tether.yaml")
    assert all(h.rerank_score is None for h in off.search("tomatoes", k=2))


def test_the_packaged_reranker_is_trained_on_permissive_data_only() -> None:
    from tether.rerank import load_rerank_model

    m = load_rerank_model()
    assert "CC BY-SA" in m.trained_on and "Apache" in m.trained_on
    assert "scifact" not in m.trained_on.lower() and "scifact" not in m.name.lower()
    assert len(LearnedReranker(m).name) <= 40  # a short tag in traces; the file keeps the full provenance
