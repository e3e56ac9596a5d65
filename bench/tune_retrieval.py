"""Tune the retrieval settings on SciFact's TRAIN split, then report the chosen setting on TEST.

Never tunes on test: the grid is scored on train (809 queries) only; test (300 queries) is scored
once, with the winner. Candidate lists are computed once per query and fused offline for each
grid point, so the sweep is cheap.

    python bench/tune_retrieval.py [--beir ../shared/data/scifact] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import track

from _common import SHARED, need
from tether import Tether
from tether.evals import load_beir, mrr_at_k, ndcg_at_k, recall_at_k
from tether.evals._beir_run import BEIR_PREFIX, beir_index_path, build_beir_index
from tether.retrieve import convex_fusion, rrf_fusion
from tether.store import ScoredId, SQLiteStore
from tether.text import content_words, words


def doc_ranking(fused: list[ScoredId], paths: dict[int, str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for x in fused:
        d = paths.get(x.chunk_id)
        if d is not None and d not in seen:
            seen.add(d)
            out.append(d)
    return out


def candidates(
    store: SQLiteStore, t: Tether, queries: dict[str, str], title_weights: list[float], n: int
) -> tuple[dict[float, dict[str, list[ScoredId]]], dict[str, list[ScoredId]]]:
    qids = sorted(queries)
    vecs = t.embedder.embed([queries[q] for q in qids])
    lex: dict[float, dict[str, list[ScoredId]]] = {w: {} for w in title_weights}
    den: dict[str, list[ScoredId]] = {}
    for i, q in enumerate(track(qids, description="candidates", transient=True)):
        terms = content_words(queries[q]) or words(queries[q])
        for w in title_weights:
            lex[w][q] = store.lexical_search(terms, n, title_weight=w)
        den[q] = store.dense_search(vecs[i], n)
    return lex, den


def score(
    fused_by_q: dict[str, list[ScoredId]], qrels: dict[str, dict[str, int]], paths: dict[int, str]
) -> dict[str, float]:
    nd, rc, mr = [], [], []
    for q, fused in fused_by_q.items():
        ranked = doc_ranking(fused, paths)
        nd.append(ndcg_at_k(ranked, qrels[q], 10))
        rc.append(recall_at_k(ranked, qrels[q], 100))
        mr.append(mrr_at_k(ranked, qrels[q], 10))
    return {"ndcg@10": float(np.mean(nd)), "recall@100": float(np.mean(rc)), "mrr@10": float(np.mean(mr))}


def grid() -> list[dict[str, object]]:
    points: list[dict[str, object]] = []
    for k in (5, 10, 20, 40, 60, 100):
        points.append({"fusion": "rrf", "rrf_k": float(k)})
    for a in np.round(np.arange(0.2, 0.85, 0.05), 2):
        points.append({"fusion": "convex", "alpha": float(a)})
    return points


def fuse(p: dict[str, object], lex: list[ScoredId], den: list[ScoredId]) -> list[ScoredId]:
    if p["fusion"] == "rrf":
        return rrf_fusion([lex, den], float(p["rrf_k"]))  # type: ignore[arg-type]
    return convex_fusion(lex, den, float(p["alpha"]))  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", type=Path, default=SHARED / "scifact")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    need(args.beir)
    t0 = time.time()
    t = Tether.open(args.config)
    store = build_beir_index(t, args.beir, beir_index_path(t, args.beir))
    paths = {cid: p.removeprefix(BEIR_PREFIX) for cid, p in store.chunk_paths().items()}
    n = t.settings.retrieval.lexical_top_n
    title_weights = [0.5, 1.0, 2.0, 3.0]
    train, test = load_beir(args.beir, "train"), load_beir(args.beir, "test")

    lex, den = candidates(store, t, train.queries, title_weights, n)
    rows = []
    for w, p in itertools.product(title_weights, grid()):
        fused = {q: fuse(p, lex[w][q], den[q]) for q in train.queries}
        rows.append({"title_weight": w, **p, **score(fused, train.qrels, paths)})
    for w in title_weights:
        rows.append({"title_weight": w, "fusion": "lexical only", **score(lex[w], train.qrels, paths)})
    rows.append({"fusion": "dense only", **score(den, train.qrels, paths)})
    hybrid_rows = [r for r in rows if r["fusion"] in ("rrf", "convex")]
    best = max(hybrid_rows, key=lambda r: (r["ndcg@10"], r["recall@100"]))
    best_rrf = max((r for r in hybrid_rows if r["fusion"] == "rrf"), key=lambda r: r["ndcg@10"])
    best_lex_w = max((r for r in rows if r["fusion"] == "lexical only"), key=lambda r: r["ndcg@10"])["title_weight"]

    tlex, tden = candidates(store, t, test.queries, [float(best["title_weight"])], n)  # type: ignore[arg-type]
    bw = float(best["title_weight"])  # type: ignore[arg-type]
    test_rows = {
        "lexical": score(tlex[bw], test.qrels, paths),
        "dense": score(tden, test.qrels, paths),
        "hybrid (train-best)": score({q: fuse(best, tlex[bw][q], tden[q]) for q in test.queries}, test.qrels, paths),
    }
    if best_rrf is not best:
        rw = float(best_rrf["title_weight"])  # type: ignore[arg-type]
        rlex = tlex if rw == bw else candidates(store, t, test.queries, [rw], n)[0]
        test_rows["hybrid rrf (train-best rrf)"] = score(
            {q: fuse(best_rrf, rlex[rw][q], tden[q]) for q in test.queries}, test.qrels, paths
        )
    report = {
        "train_queries": len(train.queries),
        "test_queries": len(test.queries),
        "chosen_on_train": best,
        "best_rrf_on_train": best_rrf,
        "best_lexical_title_weight_on_train": best_lex_w,
        "test": test_rows,
        "train_grid": sorted(rows, key=lambda r: -float(r["ndcg@10"]))[:15],  # type: ignore[arg-type]
        "seconds": round(time.time() - t0, 1),
    }
    store.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(f"train grid (top 15 of {len(rows)}), nDCG@10 / recall@100 / MRR@10:")
    for r in report["train_grid"]:  # type: ignore[union-attr]
        knobs = {k: v for k, v in r.items() if k not in ("ndcg@10", "recall@100", "mrr@10")}
        print(f"  {r['ndcg@10']:.4f} {r['recall@100']:.4f} {r['mrr@10']:.4f}  {knobs}")
    print(f"chosen on train: {best}")
    print(f"test ({len(test.queries)} queries):")
    for name, s in test_rows.items():
        print(f"  {name:28s} nDCG@10 {s['ndcg@10']:.4f}  recall@100 {s['recall@100']:.4f}  MRR@10 {s['mrr@10']:.4f}")


if __name__ == "__main__":
    main()
