"""Train Tether's learned reranker on SciFact TRAIN queries; report nDCG@10 with and without it on TEST.

For every query the default hybrid retriever gives its candidates (chunks); a chunk is relevant when
its abstract is in the qrels. A logistic model over :data:`tether.rerank.RERANK_FEATURES` is fitted on
train; the rerank depth is chosen on train (5-fold cross-validated scores) under a latency budget.
Test (300 queries) is scored once with the chosen model and depth.

    python bench/train_reranker.py            # writes src/tether/data/rerank_model.json
    python bench/train_reranker.py --json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from _common import ROOT, SHARED, need
from tether import Tether
from tether.contracts import Hit
from tether.evals import load_beir, ndcg_at_k, recall_at_k
from tether.evals._beir_run import BEIR_PREFIX, beir_index_path, build_beir_index
from tether.judge import StoreIdf
from tether.models._linear import Logistic
from tether.rerank import RERANK_FEATURES, LearnedReranker, QueryProfile, RerankModel, rerank_features
from tether.retrieve import Retriever
from tether.text import words

MODEL_OUT = ROOT / "src" / "tether" / "data" / "rerank_model.json"
POOL = 100  # candidates kept per query (recall@100 is measured on the documents they cover)
DEPTHS = (10, 20, 30, 50, 100)


def doc_ranking(hits: list[Hit]) -> list[str]:
    seen: set[str] = set()
    out = []
    for h in hits:
        d = h.path.removeprefix(BEIR_PREFIX)
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def pools(t: Tether, retriever: Retriever, queries: dict[str, str]) -> dict[str, list[Hit]]:
    qids = sorted(queries)
    vecs = t.embedder.embed([queries[q] for q in qids])
    return {
        q: retriever.search(queries[q], POOL, query_vector=vecs[i], collapse=False)
        for i, q in enumerate(track(qids, description="candidates", transient=True))
    }


def reorder(hits: list[Hit], scores: list[float], depth: int) -> list[Hit]:
    head = sorted(range(min(depth, len(hits))), key=lambda i: (-scores[i], i))
    return [hits[i] for i in head] + hits[depth:]


def evaluate(ranked: dict[str, list[Hit]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    nd = [ndcg_at_k(doc_ranking(h), qrels[q], 10) for q, h in ranked.items()]
    rc = [recall_at_k(doc_ranking(h), qrels[q], 100) for q, h in ranked.items()]
    return {"ndcg_at_10": round(float(np.mean(nd)), 4), "recall_at_100": round(float(np.mean(rc)), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--beir", default=str(SHARED / "scifact"))
    ap.add_argument("--budget-ms", type=float, default=20.0, help="rerank latency budget per query (p50)")
    ap.add_argument("--out", default=str(MODEL_OUT))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = need(Path(args.beir))
    t = Tether.open(None)
    store = build_beir_index(t, root, beir_index_path(t, root))
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    idf = StoreIdf(store)
    train, test = load_beir(root, "train"), load_beir(root, "test")
    tr_pool, te_pool = pools(t, retriever, train.queries), pools(t, retriever, test.queries)

    def feats(queries: dict[str, str], pool: dict[str, list[Hit]]) -> dict[str, np.ndarray]:
        out = {}
        for q, hits in pool.items():
            i, m = idf.idf(words(queries[q]))
            out[q] = np.array(rerank_features(QueryProfile(queries[q], i, m), hits))
        return out

    tr_x = feats(train.queries, tr_pool)
    qids = sorted(tr_pool)
    X = np.concatenate([tr_x[q] for q in qids])
    y = np.concatenate([[h.path.removeprefix(BEIR_PREFIX) in train.qrels[q] for h in tr_pool[q]] for q in qids])
    groups = np.concatenate([[n] * len(tr_pool[q]) for n, q in enumerate(qids)])
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    # 5-fold cross-validated scores on train, split by query, to pick the depth without touching test.
    cv = np.zeros(len(y))
    for fit_idx, val_idx in GroupKFold(5).split(Z, y, groups):
        m = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced").fit(Z[fit_idx], y[fit_idx])
        cv[val_idx] = m.predict_proba(Z[val_idx])[:, 1]
    offsets = np.cumsum([0] + [len(tr_pool[q]) for q in qids])
    cv_by_q = {q: list(cv[offsets[n] : offsets[n + 1]]) for n, q in enumerate(qids)}
    lr = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced").fit(Z, y)
    model = Logistic(
        features=list(RERANK_FEATURES),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=lr.coef_[0].tolist(),
        intercept=float(lr.intercept_[0]),
    )

    # Latency per depth: features + model for the head of the list, one query at a time.
    reranker = LearnedReranker(RerankModel(model=model, depth=POOL), idf)
    latency = {}
    for d in DEPTHS:
        lat = []
        for q in sorted(te_pool)[:100]:
            t0 = time.perf_counter()
            reranker.rerank(test.queries[q], te_pool[q][:d])
            lat.append((time.perf_counter() - t0) * 1000)
        latency[d] = round(float(np.percentile(lat, 50)), 2)
    train_by_depth = {d: evaluate({q: reorder(tr_pool[q], cv_by_q[q], d) for q in qids}, train.qrels) for d in DEPTHS}
    allowed = [d for d in DEPTHS if latency[d] <= args.budget_ms] or [DEPTHS[0]]
    depth = max(allowed, key=lambda d: (train_by_depth[d]["ndcg_at_10"], -d))

    te_scores = {q: reranker.scores(test.queries[q], te_pool[q][:depth]) for q in te_pool}
    before = evaluate(te_pool, test.qrels)
    after = evaluate({q: reorder(te_pool[q], te_scores[q], depth) for q in te_pool}, test.qrels)
    result = {
        "train_queries": len(qids),
        "test_queries": len(te_pool),
        "train_cv_by_depth": {str(d): v for d, v in train_by_depth.items()},
        "train_without_rerank": evaluate(tr_pool, train.qrels),
        "rerank_p50_ms_by_depth": {str(d): v for d, v in latency.items()},
        "chosen_depth": depth,
        "test_without_rerank": before,
        "test_with_rerank": after,
        "coefficients": dict(zip(RERANK_FEATURES, [round(c, 3) for c in lr.coef_[0]], strict=True)),
    }
    RerankModel(
        model=model,
        depth=depth,
        trained_on="scifact-train",
        metrics={
            "test_ndcg_at_10_without": before["ndcg_at_10"],
            "test_ndcg_at_10_with": after["ndcg_at_10"],
            "rerank_p50_ms": latency[depth],
        },
    ).save(Path(args.out))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k, v in result.items():
        print(f"{k}: {v}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
