"""The default chain answers exactly as `Tether.ask` / `Tether.search` did in one method before the pipeline.

The old code path is written out here from the same parts (retriever, reranker, answerer), as it stood in
`_api.py` before the pipeline, and compared field by field on the demo corpus (Python's reference manual).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tether._api import Tether
from tether._demo import export_python_topics
from tether.config import default_yaml
from tether.contracts import Answer, Hit, TraceEvent
from tether.rerank import search_and_rerank

QUESTIONS = [
    "What does the break statement do in a loop?",
    "When is the else clause of a try statement executed?",
    "What does the global statement declare?",
    "How do I bake sourdough bread?",
    "What is augmented assignment?",
    "Who won the 1998 football world cup?",
    "What does pass do?",
    "How is the Ellipsis object written?",
]


def old_ask(t: Tether, question: str) -> Answer:
    qvec = t.retriever().embed_query(question)
    hits, events = search_and_rerank(
        t.retriever(), t.reranker(), t.settings.rerank, question, t.settings.retrieval.top_k, query_vector=qvec
    )
    trace = [
        TraceEvent(stage="config", detail={"config_hash": t.settings.config_hash}),
        *events,
        TraceEvent(
            stage="hits", detail={"chunks": [{"path": h.path, "section": h.section, "score": h.score} for h in hits]}
        ),
    ]
    return t.answerer().answer(question, hits, qvec, config_hash=t.settings.config_hash, trace=trace)


def old_search(t: Tether, query: str, k: int, mode: str) -> list[Hit]:
    reranker = t.reranker() if mode == "hybrid" else None
    return search_and_rerank(t.retriever(), reranker, t.settings.rerank, query, k, mode=mode)[0]  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tether]:
    root = tmp_path_factory.mktemp("demo")
    export_python_topics(root / "corpus")
    (root / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "corpus"])
    yield t
    t.close()


def _timeless(value: object) -> object:
    """A trace detail without its timings (they differ from run to run)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if not (k == "ms" or k.endswith("_ms"))}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _same_trace(a: list[TraceEvent], b: list[TraceEvent]) -> None:
    assert [e.stage for e in a] == [e.stage for e in b]
    for x, y in zip(a, b, strict=True):
        assert _timeless(x.detail) == _timeless(y.detail), x.stage


@pytest.mark.parametrize("question", QUESTIONS)
def test_ask_through_the_pipeline_equals_the_old_ask(demo: Tether, question: str) -> None:
    new = demo.ask(question)
    old = old_ask(demo, question)
    assert new.text == old.text and new.abstained == old.abstained and new.reason == old.reason
    assert new.support == old.support and new.threshold == old.threshold
    assert new.citations == old.citations and new.nearest == old.nearest
    assert new.trace[-1].stage == "total"
    _same_trace(new.trace[:-1], old.trace)


@pytest.mark.parametrize("mode", ["hybrid", "lexical", "dense"])
def test_search_through_the_pipeline_equals_the_old_search(demo: Tether, mode: str) -> None:
    for q in QUESTIONS[:4]:
        for k in (1, 5, 12):
            new = demo.search(q, k, mode=mode)  # type: ignore[arg-type]
            old = old_search(demo, q, k, mode)
            assert [h.model_dump() for h in new] == [h.model_dump() for h in old]
