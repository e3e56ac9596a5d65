"""Train Tether's learned reranker on permissively licensed questions; report it against plain hybrid on held-out data.

Training data (``--train``; only permissively licensed sources may make the shipped default):
  squad+selqa  (default) the SQuAD questions below plus SelQA answer-selection dev+test (Apache-2.0; Wikipedia
               text, CC BY-SA): each SelQA question's relevant document is its Wikipedia section, in an index of
               all the sections of both files. One pooled fit; each corpus gives its own questions' IDF.
  squad        SQuAD 2.0 dev half, calibration split: the answerable questions on paragraphs 1-323 (file order),
               their candidates retrieved from an index of those 323 paragraphs only; the relevant document is the
               question's own paragraph. CC BY-SA 4.0. No measured paragraph (324-646) or question is seen.
  scifact      SciFact TRAIN claims over the SciFact corpus: CC BY-NC 2.0 (non-commercial), for comparison only;
               a model trained on it must not be shipped as the default.

For every training question the default hybrid retriever gives its candidates (chunks); a chunk is relevant when its
document is. A logistic model over :data:`tether.rerank.RERANK_FEATURES` is fitted with a pairwise objective (relevant
minus irrelevant candidates of the same question); the rerank depth is chosen on the training data (5-fold
cross-validation, folds split by relevant document: a SQuAD paragraph, a SelQA section, a SciFact claim) under a
latency budget timed on training candidates, and ``helps_on_train`` says whether reranking beat the plain hybrid
order there. The weights and the depth are fitted on the training data only.

Then, once, on held-out data: SciFact TEST (300 claims) nDCG@10 and recall@100, and SQuAD measured-split paragraph
retrieval (answerable questions on paragraphs 324-646, index of all 646 paragraphs: recall@1/5, MRR@10, as
bench/squad_retrieval.py) for plain hybrid, the new model and any ``--compare`` model files, side by side.

    python bench/train_reranker.py                       # writes src/tether/data/rerank_model.json
    python bench/train_reranker.py --out /tmp/m.json --compare src/tether/data/rerank_model.json
    python bench/train_reranker.py --train scifact --out /tmp/scifact.json --json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import LogisticRegression

from _common import CACHE, ROOT, SHARED, load_squad, need, paragraph_position, squad_store
from tether import Tether
from tether.contracts import Hit
from tether.evals import load_beir, ndcg_at_k, recall_at_k
from tether.evals._beir_run import BEIR_PREFIX, beir_index_path, build_beir_index
from tether.ingest import Ingestor
from tether.judge import IdfSource, StoreIdf
from tether.models._linear import Logistic
from tether.rerank import (
    RERANK_FEATURES,
    LearnedReranker,
    QueryProfile,
    RerankModel,
    load_rerank_model,
    rerank_features,
)
from tether.retrieve import Retriever
from tether.store import SQLiteStore
from tether.text import words

MODEL_OUT = ROOT / "src" / "tether" / "data" / "rerank_model.json"
POOL = 100  # candidates kept per query (recall@100 is measured on the documents they cover)
DEPTHS = (10, 20, 30, 50, 100)
SQUAD_HEAD = 20  # candidates bench/squad_retrieval.py reranks from (or the model's depth when deeper)
TRAIN_SOURCES = ("squad+selqa", "squad", "scifact")
TRAINED_ON = {
    "squad": "SQuAD 2.0 dev half, calibration split only ({n} answerable questions on paragraphs 1-323, an index of"
    " those paragraphs; CC BY-SA 4.0)",
    "selqa": "SelQA answer-selection dev+test ({n} questions, relevant = own section among {docs}; Apache-2.0,"
    " Wikipedia text CC BY-SA)",
    "scifact": "SciFact train ({n} claims; CC BY-NC 2.0, non-commercial)",
}


@dataclass
class Source:
    """One training corpus: its questions, what is relevant to each, and their hybrid candidates."""

    name: str
    trained_on: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    groups: dict[str, str]  # cross-validation keeps a group (the relevant document) in one fold
    pool: dict[str, list[Hit]]
    idf: IdfSource


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


def scifact_source(t: Tether, root: Path) -> Source:
    store = build_beir_index(t, root, beir_index_path(t, root))
    train = load_beir(root, "train")
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    return Source(
        name="scifact",
        trained_on=TRAINED_ON["scifact"].format(n=len(train.queries)),
        queries=train.queries,
        qrels=train.qrels,
        groups={q: q for q in train.queries},
        pool=pools(t, retriever, train.queries),
        idf=StoreIdf(store),
    )


def squad_source(t: Tether) -> Source:
    """Calibration-split questions over an index that holds no measured paragraph."""
    squad = load_squad()
    store = squad_store(t, squad, calibration_only=True)
    indexed = set(store.chunk_paths().values())
    if not indexed <= squad.calibration_paragraphs:
        raise SystemExit(f"{store.path} holds paragraphs outside the calibration split; delete it and rerun")
    qs = [q for q in squad.split("calibration") if not q.is_impossible]
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    queries = {"squad:" + q.id: q.question for q in qs}
    return Source(
        name="squad",
        trained_on=TRAINED_ON["squad"].format(n=len(qs)),
        queries=queries,
        qrels={"squad:" + q.id: {q.paragraph_id: 1} for q in qs},
        groups={"squad:" + q.id: q.paragraph_id for q in qs},
        pool=pools(t, retriever, queries),
        idf=StoreIdf(store),
    )


def selqa_source(t: Tether) -> Source:
    """SelQA dev+test questions; the corpus is every section of both files, a document keyed article#section."""
    root = need(SHARED / "selqa")
    queries, qrels, sections = {}, {}, {}
    for split in ("dev", "test"):
        rows = json.loads((root / f"selqa-ass-{split}.json").read_text(encoding="utf-8"))
        for i, r in enumerate(rows):
            doc = f"selqa:{r['article']}#{r['section']}"
            sections[doc] = (r["article"], " ".join(r["candidates"]))
            queries[f"selqa:{split}:{i}"] = r["question"]
            qrels[f"selqa:{split}:{i}"] = {doc: 1}
    store = SQLiteStore.open(CACHE / f"selqa-{t.settings.index_hash}.db", create=True)
    ing = Ingestor(store, t.embedder, t.settings.ingest)
    ing.add_records((doc, title, text) for doc, (title, text) in sorted(sections.items()))
    ing.flush()
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    return Source(
        name="selqa",
        trained_on=TRAINED_ON["selqa"].format(n=len(queries), docs=len(sections)),
        queries=queries,
        qrels=qrels,
        groups={q: next(iter(rel)) for q, rel in qrels.items()},
        pool=pools(t, retriever, queries),
        idf=StoreIdf(store),
    )


def pool_stats(src: Source) -> dict[str, float]:
    """How much a source can teach: questions whose relevant document is in the pool, first, in the top 10."""
    ranks = []
    for q, hits in src.pool.items():
        docs = doc_ranking(hits)
        ranks.append(next((i + 1 for i, d in enumerate(docs) if d in src.qrels[q]), 0))
    r = np.array(ranks)
    return {
        "questions": len(r),
        "relevant_in_pool": round(float(np.mean(r > 0)), 4),
        "relevant_first": round(float(np.mean(r == 1)), 4),
        "relevant_2_to_10": round(float(np.mean((r > 1) & (r <= 10))), 4),
    }


def fit_pairwise(xs: list[np.ndarray], labels: list[list[bool]], depth: int) -> Logistic:
    """Logistic regression on pairwise differences (relevant minus irrelevant, and the reverse) in each query's head."""
    rows, ys = [], []
    for f_all, lab_all in zip(xs, labels, strict=True):
        f, lab = f_all[:depth], lab_all[:depth]
        pos = [i for i, v in enumerate(lab) if v]
        neg = [i for i, v in enumerate(lab) if not v]
        for a in pos:
            for b in neg:
                rows += [f[a] - f[b], f[b] - f[a]]
                ys += [1, 0]
    X, y = np.array(rows), np.array(ys)
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


def scifact_test(t: Tether, root: Path, models: dict[str, RerankModel]) -> dict[str, dict[str, float]]:
    """nDCG@10 / recall@100 on SciFact TEST: plain hybrid, then each model reranking its depth."""
    store = build_beir_index(t, root, beir_index_path(t, root))
    test = load_beir(root, "test")
    pool = pools(t, Retriever(store, t.embedder, t.settings.retrieval), test.queries)
    idf = StoreIdf(store)
    out = {"hybrid": evaluate(pool, test.qrels)}
    for name, m in models.items():
        r = LearnedReranker(m, idf)
        out[name] = evaluate(
            {q: reorder(h, r.scores(test.queries[q], h[: m.depth]), m.depth) for q, h in pool.items()}, test.qrels
        )
    store.close()
    return out


def squad_measured(t: Tether, models: dict[str, RerankModel]) -> dict[str, dict[str, float]]:
    """Paragraph retrieval on the SQuAD measured split over all 646 paragraphs (as bench/squad_retrieval.py)."""
    squad = load_squad()
    store = squad_store(t, squad)
    paths = store.chunk_paths()
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    idf = StoreIdf(store)
    qs = [q for q in squad.split("measure") if not q.is_impossible]
    vecs = t.embedder.embed([q.question for q in qs])
    out = {}
    for name in ("hybrid", *models):
        r1, r5, rr = [], [], []
        for i, q in enumerate(track(qs, description=f"squad {name}", transient=True)):
            if name == "hybrid":
                fused, _ = retriever.rank(q.question, query_vector=vecs[i])
                order = [x.chunk_id for x in fused]
            else:
                m = models[name]
                hits = retriever.search(q.question, max(SQUAD_HEAD, m.depth), query_vector=vecs[i], collapse=False)
                head = LearnedReranker(m, idf).rerank(q.question, hits[: m.depth])
                order = [h.chunk_id for h in head + hits[m.depth :]]
            pos = paragraph_position(order, paths, q.paragraph_id)
            r1.append(pos == 1)
            r5.append(0 < pos <= 5)
            rr.append(1.0 / pos if pos else 0.0)
        out[name] = {
            "recall_at_1": round(float(np.mean(r1)), 4),
            "recall_at_5": round(float(np.mean(r5)), 4),
            "mrr_at_10": round(float(np.mean(rr)), 4),
        }
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--train", default="squad+selqa", choices=TRAIN_SOURCES, help="training data, see above (default: %(default)s)"
    )
    ap.add_argument("--beir", default=str(SHARED / "scifact"), help="SciFact in BEIR format (held-out test; train)")
    ap.add_argument("--budget-ms", type=float, default=20.0, help="rerank latency budget per query (p50)")
    ap.add_argument("--out", default=str(MODEL_OUT), help="where the model is written (default: the packaged one)")
    ap.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="MODEL_JSON",
        help="another reranker model file to score beside the new one on held-out data (repeatable)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    beir = need(Path(args.beir))
    compare = {f"{Path(p).name} ({load_rerank_model(p).trained_on[:40]})": load_rerank_model(p) for p in args.compare}
    t = Tether.open(None)
    if args.train == "scifact":
        sources = [scifact_source(t, beir)]
    else:
        sources = [squad_source(t)] + ([selqa_source(t)] if args.train == "squad+selqa" else [])

    # Features and labels of every training question (each source's own corpus gives its IDF).
    qids: list[str] = []
    xs: dict[str, np.ndarray] = {}
    labels: dict[str, list[bool]] = {}
    group: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for src in sources:
        for q, hits in src.pool.items():
            i, m = src.idf.idf(words(src.queries[q]))
            xs[q] = np.array(rerank_features(QueryProfile(src.queries[q], i, m), hits))
            labels[q] = [h.path.removeprefix(BEIR_PREFIX) in src.qrels[q] for h in hits]
            group[q] = src.name + ":" + src.groups[q]
            qrels[q] = src.qrels[q]
            qids.append(q)
    qids.sort()
    pool = {q: h for src in sources for q, h in src.pool.items()}

    def fit(qs: list[str], depth: int) -> Logistic:
        return fit_pairwise([xs[q] for q in qs], [labels[q] for q in qs], depth)

    # 5-fold cross-validation on train picks the depth (and whether reranking helps at all); a relevant document's
    # questions stay in one fold (for SciFact each claim is its own group, as before).
    groups = sorted(set(group.values()))
    fold_of = {g: i % 5 for i, g in enumerate(groups)}
    folds = np.array([fold_of[group[q]] for q in qids])
    train_by_depth = {}
    for d in DEPTHS:
        ranked = {}
        for k in range(5):
            m = fit([q for i, q in enumerate(qids) if folds[i] != k], d)
            for q in (q for i, q in enumerate(qids) if folds[i] == k):
                ranked[q] = reorder(pool[q], m.probabilities(xs[q][:d].tolist()), d)
        train_by_depth[d] = evaluate(ranked, qrels)

    # Latency per depth: features + model for the head of the list, one training question at a time.
    first = sources[0]
    reranker = LearnedReranker(RerankModel(model=fit(qids, POOL), depth=POOL), first.idf)
    latency = {}
    for d in DEPTHS:
        lat = []
        for q in sorted(first.pool)[:100]:
            t0 = time.perf_counter()
            reranker.rerank(first.queries[q], first.pool[q][:d])
            lat.append((time.perf_counter() - t0) * 1000)
        latency[d] = round(float(np.percentile(lat, 50)), 2)
    allowed = [d for d in DEPTHS if latency[d] <= args.budget_ms] or [DEPTHS[0]]
    depth = max(allowed, key=lambda d: (train_by_depth[d]["ndcg_at_10"], -d))
    model = fit(qids, depth)
    train_plain = evaluate(pool, qrels)
    helps = train_by_depth[depth]["ndcg_at_10"] > train_plain["ndcg_at_10"]
    new = RerankModel(model=model, depth=depth, trained_on=" + ".join(s.trained_on for s in sources), name=args.train)

    # Held out, once: SciFact test and the SQuAD measured split.
    models = {"new": new, **compare}
    scifact = scifact_test(t, beir, models)
    squad = squad_measured(t, models)
    new.metrics = {
        "test_ndcg_at_10_without": scifact["hybrid"]["ndcg_at_10"],
        "test_ndcg_at_10_with": scifact["new"]["ndcg_at_10"],
        "squad_measured_recall_at_1_without": squad["hybrid"]["recall_at_1"],
        "squad_measured_recall_at_1_with": squad["new"]["recall_at_1"],
        "rerank_p50_ms": latency[depth],
        "helps_on_train": float(helps),
    }
    if args.train == "scifact" and Path(args.out).resolve() == MODEL_OUT.resolve():
        args.out = str(ROOT / ".tether" / "rerank" / "rerank_model.scifact.json")  # CC BY-NC: opt-in, never packaged
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    new.save(Path(args.out))
    result = {
        "train": args.train,
        "trained_on": new.trained_on,
        "train_pools": {s.name: pool_stats(s) for s in sources},
        "train_queries": len(qids),
        "train_cv_by_depth": {str(d): v for d, v in train_by_depth.items()},
        "train_without_rerank": train_plain,
        "helps_on_train": helps,
        "rerank_p50_ms_by_depth": {str(d): v for d, v in latency.items()},
        "chosen_depth": depth,
        "scifact_test": scifact,
        "squad_measured": squad,
        "beats_hybrid_on_scifact_test": scifact["new"]["ndcg_at_10"] > scifact["hybrid"]["ndcg_at_10"],
        "coefficients": dict(zip(RERANK_FEATURES, [round(c, 3) for c in model.coef], strict=True)),
        "out": args.out,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k in ("train", "trained_on", "train_pools", "train_queries", "train_cv_by_depth", "train_without_rerank"):
        print(f"{k}: {result[k]}")
    for k in ("helps_on_train", "rerank_p50_ms_by_depth", "chosen_depth", "coefficients"):
        print(f"{k}: {result[k]}")
    print("\nheld out: SciFact test nDCG@10, recall@100 | SQuAD measured split recall@1, recall@5, MRR@10")
    print(f"  {'':52s} {'nDCG@10':>7s} {'rec@100':>7s} | {'r@1':>6s} {'r@5':>6s} {'MRR@10':>6s}")
    for name in scifact:
        a, b = scifact[name], squad[name]
        print(
            f"  {name[:52]:52s} {a['ndcg_at_10']:7.4f} {a['recall_at_100']:7.4f} | "
            f"{b['recall_at_1']:6.4f} {b['recall_at_5']:6.4f} {b['mrr_at_10']:6.4f}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
