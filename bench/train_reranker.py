"""Train Tether's learned reranker on SciFact TRAIN queries; report nDCG@10 with and without it on TEST.

For every query the default hybrid retriever gives its candidates (chunks); a chunk is relevant when
its abstract is in the qrels. A logistic model over :data:`tether.rerank.RERANK_FEATURES` is fitted on
train with a pairwise objective (relevant minus irrelevant candidates of the same query); the rerank
depth is chosen on train (5-fold cross-validation by query) under a latency budget, and
``helps_on_train`` says whether reranking beat the plain hybrid order there (it decides the default of
``rerank.enabled``). Test (300 queries) is scored once with the chosen model and depth.

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
    labels = {q: [h.path.removeprefix(BEIR_PREFIX) in train.qrels[q] for h in tr_pool[q]] for q in qids}

    def pairs(qs: list[str], depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Pairwise examples (relevant minus irrelevant, and the reverse) within each query's head."""
        rows, ys = [], []
        for q in qs:
            f, lab = tr_x[q][:depth], labels[q][:depth]
            pos = [i for i, v in enumerate(lab) if v]
            neg = [i for i, v in enumerate(lab) if not v]
            for a in pos:
                for b in neg:
                    rows += [f[a] - f[b], f[b] - f[a]]
                    ys += [1, 0]
        return np.array(rows), np.array(ys)

    def fit(qs: list[str], depth: int) -> Logistic:
        X, y = pairs(qs, depth)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        lr = LogisticRegression(C=1.0, max_iter=5000, fit_intercept=False).fit(X / scale, y)
        n = len(RERANK_FEATURES)
        return Logistic(
            features=list(RERANK_FEATURES),
            mean=[0.0] * n,
            scale=scale.tolist(),
            coef=lr.coef_[0].tolist(),
            intercept=0.0,
        )

    # 5-fold cross-validation on train, split by query, picks the depth (and whether reranking helps at all).
    folds = np.arange(len(qids)) % 5
    train_by_depth = {}
    for d in DEPTHS:
        ranked = {}
        for k in range(5):
            m = fit([q for i, q in enumerate(qids) if folds[i] != k], d)
            for q in (q for i, q in enumerate(qids) if folds[i] == k):
                ranked[q] = reorder(tr_pool[q], m.probabilities(tr_x[q][:d].tolist()), d)
        train_by_depth[d] = evaluate(ranked, train.qrels)

    # Latency per depth: features + model for the head of the list, one query at a time.
    reranker = LearnedReranker(RerankModel(model=fit(qids, POOL), depth=POOL), idf)
    latency = {}
    for d in DEPTHS:
        lat = []
        for q in sorted(te_pool)[:100]:
            t0 = time.perf_counter()
            reranker.rerank(test.queries[q], te_pool[q][:d])
            lat.append((time.perf_counter() - t0) * 1000)
        latency[d] = round(float(np.percentile(lat, 50)), 2)
    allowed = [d for d in DEPTHS if latency[d] <= args.budget_ms] or [DEPTHS[0]]
    depth = max(allowed, key=lambda d: (train_by_depth[d]["ndcg_at_10"], -d))
    model = fit(qids, depth)
    reranker = LearnedReranker(RerankModel(model=model, depth=depth), idf)
    train_plain = evaluate(tr_pool, train.qrels)
    helps = train_by_depth[depth]["ndcg_at_10"] > train_plain["ndcg_at_10"]

    te_scores = {q: reranker.scores(test.queries[q], te_pool[q][:depth]) for q in te_pool}
    before = evaluate(te_pool, test.qrels)
    after = evaluate({q: reorder(te_pool[q], te_scores[q], depth) for q in te_pool}, test.qrels)
    result = {
        "train_queries": len(qids),
        "test_queries": len(te_pool),
        "train_cv_by_depth": {str(d): v for d, v in train_by_depth.items()},
        "train_without_rerank": train_plain,
        "helps_on_train": helps,
        "rerank_p50_ms_by_depth": {str(d): v for d, v in latency.items()},
        "chosen_depth": depth,
        "test_without_rerank": before,
        "test_with_rerank": after,
        "coefficients": dict(zip(RERANK_FEATURES, [round(c, 3) for c in model.coef], strict=True)),
    }
    RerankModel(
        model=model,
        depth=depth,
        trained_on="scifact-train",
        metrics={
            "test_ndcg_at_10_without": before["ndcg_at_10"],
            "test_ndcg_at_10_with": after["ndcg_at_10"],
            "rerank_p50_ms": latency[depth],
            "helps_on_train": float(helps),
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
