"""The reading model's data rules (bench/train_reader.py): what may and may not reach the default's training set.

A leak here would inflate every figure measured on the SQuAD measured split, or ship a model trained on data whose
licence forbids it; these run on the real shared data and skip on a clone without it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "train_reader.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_reader_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


tr = _load()
SHARED: Path = tr.SHARED
NEEDED = ("squad_v2_dev_half", "qnli", "selqa", "wikiqa")
pytestmark = pytest.mark.skipif(
    not all((SHARED / n).exists() for n in NEEDED),
    reason=f"{SHARED} lacks {', '.join(NEEDED)} (the data lives in ../shared/data; fresh clone without it)",
)


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return dict(tr.build(SHARED))


@pytest.fixture(scope="module")
def squad_measured() -> tuple[set[str], set[str], set[str]]:
    """Measured paragraph ids (paragraphs 324-646 in file order), their normalised sentences and questions."""
    rows = [json.loads(x) for x in (SHARED / "squad_v2_dev_half" / "paragraphs.jsonl").open(encoding="utf-8")]
    measured = rows[len(rows) // 2 :]
    assert measured[0]["_id"] == rows[323]["_id"]  # paragraph 324, counted from 1
    ids = {p["_id"] for p in measured}
    sents = {tr.norm(p["text"][s:e]) for p in measured for s, e in tr._sentences(p["text"])}
    qs = {
        tr.norm(json.loads(x)["question"])
        for x in (SHARED / "squad_v2_dev_half" / "questions.jsonl").open(encoding="utf-8")
        if json.loads(x)["paragraph_id"] in ids
    }
    return ids, {s for s in sents if len(s) > 40}, qs


def test_no_measured_paragraph_reaches_train_or_dev(built: dict[str, Any], squad_measured: Any) -> None:
    ids, sents, questions = squad_measured
    squad = [p for p in built["train"] + built["dev"] if p.src == "squad"]
    assert squad and not {p.unit for p in squad} & ids
    # and not by text either: no measured sentence or question under any source (QNLI shares SQuAD's articles)
    for p in built["train"]:
        assert tr.norm(p.sentence) not in sents, (p.src, p.sentence)
        assert tr.norm(p.question) not in questions, (p.src, p.question)


def test_train_shares_no_article_with_the_measured_split(built: dict[str, Any]) -> None:
    rows, _, measured = tr.squad_split(SHARED)
    title = {p["_id"]: p["title"] for p in rows}
    measured_articles = {title[i] for i in measured}
    assert "Yuan_dynasty" in measured_articles or "Yuan dynasty" in measured_articles  # the one split article
    train_articles = {p.context for p in built["train"] if p.src == "squad"}
    assert train_articles and not train_articles & measured_articles
    dev_articles = {p.context for p in built["dev"] if p.src == "squad"}
    assert measured_articles & dev_articles  # its calibration paragraphs went to dev instead


def test_no_non_commercial_source_in_the_default_training_set(built: dict[str, Any]) -> None:
    srcs = {p.src for p in built["train"]}
    assert srcs == {"squad", "qnli", "selqa"}
    assert all(tr.SOURCES[s][1] for s in srcs)
    assert not tr.SOURCES["wikiqa"][1]
    wiki = tr.wikiqa_pairs(SHARED, "test")
    train_q = {tr.norm(p.question) for p in built["train"]}
    assert not [p for p in wiki if tr.norm(p.question) in train_q]  # WikiQA's Bing queries never reach training
    # Both SelQA and WikiQA quote Wikipedia: a handful of WikiQA test sentences are also SelQA candidates (19 here,
    # 4 questions); they are SelQA's own text, and no more than that may ever appear.
    wiki_s = {tr.norm(p.sentence) for p in wiki}
    shared = [p for p in built["train"] if tr.norm(p.sentence) in wiki_s]
    assert all(p.src == "selqa" for p in shared) and len(shared) <= 40


def test_a_forbidden_source_fails_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tr.SOURCES, "selqa", ("pretend research-only", False))
    with pytest.raises(ValueError, match="selqa"):
        tr.build(SHARED)


def test_qnli_rows_sharing_squad_articles_are_dropped(built: dict[str, Any]) -> None:
    text, questions = tr.squad_fingerprints(SHARED)
    qnli = [p for p in built["train"] + built["dev"] if p.src == "qnli"]
    assert len(qnli) > 3000
    for p in qnli:
        assert tr.norm(p.question) not in questions
        assert tr.norm(p.sentence) not in text
    assert built["sizes"]["qnli_rows_dropped_shared_article"] >= 1443  # at least the word-for-word shared questions
    # the keyword rule catches rows of a shared article whose paragraph is not in the half
    assert tr.qnli_shares_article("Who led the Mongol army?", "Kublai Khan founded it.", text, questions)
    assert not tr.qnli_shares_article("What is the capital of Peru?", "Lima is the capital.", text, questions)


def test_splits_are_disjoint_by_unit_and_seeded(built: dict[str, Any]) -> None:
    for src in ("squad", "selqa", "qnli"):
        tr_units = {p.unit for p in built["train"] if p.src == src}
        dev_units = {p.unit for p in built["dev"] if p.src == src}
        assert tr_units and dev_units and not tr_units & dev_units, src
    again = tr.build(SHARED)
    assert [p.group for p in again["dev"]] == [p.group for p in built["dev"]]


def test_squad_labels_follow_the_answer_span(built: dict[str, Any]) -> None:
    squad = [p for p in built["train"] if p.src == "squad"]
    by: dict[str, list[Any]] = {}
    for p in squad:
        by.setdefault(p.group, []).append(p)
    for rows in by.values():
        if rows[0].answerable:
            assert sum(p.label for p in rows) >= 1
        else:
            assert all(p.label == 0 for p in rows)  # unanswerables give negatives only
