"""Retrieval metrics and the BEIR evaluation command, on a tiny real BEIR-format folder."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tether import Tether
from tether.config import Settings
from tether.errors import DataError
from tether.evals import load_beir, mrr_at_k, ndcg_at_k, recall_at_k
from tether.evals._beir_run import build_beir_index, default_pipeline

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_ndcg_is_one_for_a_perfect_ranking_and_discounts_lower_ranks() -> None:
    rel = {"a": 1, "b": 1}
    assert ndcg_at_k(["a", "b", "c"], rel, 10) == pytest.approx(1.0)
    one_late = ndcg_at_k(["c", "a"], {"a": 1}, 10)
    assert one_late == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x", "y"], rel, 10) == 0.0


def test_recall_and_mrr_count_only_relevant_documents_within_k() -> None:
    rel = {"a": 1, "b": 1, "z": 0}
    assert recall_at_k(["a", "x", "b"], rel, 2) == pytest.approx(0.5)
    assert recall_at_k(["a", "x", "b"], rel, 3) == pytest.approx(1.0)
    assert mrr_at_k(["x", "z", "b"], rel, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "b"], rel, 2) == 0.0


def _tiny_beir(root: Path) -> Path:
    docs = {
        "d1": ("Photosynthesis", "Plants convert sunlight, water and carbon dioxide into glucose and oxygen."),
        "d2": ("Volcanoes", "Magma rising through the crust erupts as lava, ash and volcanic gases."),
        "d3": ("Tides", "The gravitational pull of the moon causes the ocean tides to rise and fall."),
        "d4": ("Insulin", "The pancreas secretes insulin, which lowers the concentration of blood glucose."),
    }
    queries = {
        "q1": "how do plants make glucose from sunlight",
        "q2": "what makes the ocean tide",
        "q3": "hormone that lowers blood sugar",
    }
    qrels = {"q1": "d1", "q2": "d3", "q3": "d4"}
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as f:
        for i, (title, text) in docs.items():
            f.write(json.dumps({"_id": i, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for i, text in queries.items():
            f.write(json.dumps({"_id": i, "text": text}) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels.items())
    )
    return root


def test_load_beir_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"qrels/dev\.tsv is missing"):
        load_beir(_tiny_beir(tmp_path / "b"), "dev")


def test_eval_retrieval_command_scores_every_mode_on_a_real_index(tmp_path: Path) -> None:
    beir = _tiny_beir(tmp_path / "tiny")
    proc = subprocess.run(
        [sys.executable, "-m", "tether", "eval", "retrieval", "--beir", str(beir), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    modes = {m["mode"]: m for m in report["modes"]}
    assert set(modes) == {"lexical", "dense", "hybrid", "default"}  # the default pipeline is measured by default
    assert modes["hybrid"]["label"] == "hybrid (no rerank)"
    assert "tether search" in modes["default"]["label"] and "rerank by learned" in modes["default"]["label"]
    # three distinctive queries over four documents: every mode must put the right one first
    for m in modes.values():
        assert m["queries"] == 3
        assert m["mrr_at_10"] == pytest.approx(1.0)
        assert m["ndcg_at_10"] == pytest.approx(1.0)
    assert list((tmp_path / ".tether" / "beir").glob("tiny-*.db")), "the corpus index is cached"


def test_the_default_mode_is_exactly_what_tether_search_returns(tmp_path: Path) -> None:
    beir = _tiny_beir(tmp_path / "tiny")
    t = Tether(Settings().with_root(tmp_path))
    index = tmp_path / "beir.db"
    store = build_beir_index(t, beir, index)
    _, pipeline = default_pipeline(t, store)
    assert "rerank by learned" in pipeline.label
    same = Tether(Settings.model_validate({"index": {"path": str(index)}}).with_root(tmp_path))
    for q in ("how do plants make glucose", "ocean tide moon", "lava and ash", "blood sugar hormone"):
        want = [h.chunk_id for h in same.search(q, 10)]  # the public call, embedding the query itself
        assert pipeline.search(q, t.embedder.embed([q])[0]) == want
    same.close()
    off = Tether(Settings.model_validate({"rerank": {"enabled": False}}).with_root(tmp_path))
    off._embedder = t.embedder
    assert "rerank is off" in default_pipeline(off, store)[1].label
    store.close()


@pytest.mark.skipif(not (SHARED / "scifact").exists(), reason="../shared/data/scifact is absent (fresh clone)")
def test_scifact_splits_have_the_published_sizes() -> None:
    train = load_beir(SHARED / "scifact", "train")
    test = load_beir(SHARED / "scifact", "test")
    assert len(train.queries) == 809
    assert len(test.queries) == 300
    assert not set(train.queries) & set(test.queries)
