"""Train Tether's support judge on SciFact TRAIN claims; measure it on the held-out DEV claims.

Examples are (claim, evidence) pairs over the abstracts each claim cites:
- every annotated rationale set, and each of its sentences alone -> SUPPORTED or CONTRADICTED;
- every other sentence of those abstracts, and every sentence cited by a NEI claim -> UNSUPPORTED.
A softmax regression over :data:`tether.judge.JUDGE_FEATURES` is fitted on train; the SUPPORTED and
CONTRADICTED thresholds maximise F1 on 5-fold cross-validated train predictions. Nothing is tuned on dev.

Figures on DEV (300 claims, never seen in training):
- sentence level: precision / recall / F1 of SUPPORTED and CONTRADICTED over every sentence of the
  cited abstracts;
- claim level: the judge's verdict on the abstract's best sentence against the claim's gold label.

    python bench/train_judge.py            # writes src/tether/data/judge_model.json
    python bench/train_judge.py --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import time
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from _common import CACHE, ROOT
from _scifact import Claim, corpus_idf, load_abstracts, load_claims
from tether import Tether
from tether.judge import JUDGE_FEATURES, EncodedText, JudgeModel, judge_features
from tether.models._linear import Softmax

MODEL_OUT = ROOT / "src" / "tether" / "data" / "judge_model.json"
LABELS = ["SUPPORTED", "UNSUPPORTED", "CONTRADICTED"]
_DUMMY = Softmax(features=[], labels=LABELS, mean=[], scale=[], coef=[], intercept=[0.0, 0.0, 0.0])
_MAP = {"SUPPORT": "SUPPORTED", "CONTRADICT": "CONTRADICTED"}


def examples(claims: list[Claim], abstracts: dict, *, sets: bool) -> list[tuple[int, str, list[str], str, int]]:
    """(claim index, claim, evidence sentences, label, sentence index or -1 for a set)."""
    out = []
    for ci, c in enumerate(claims):
        for d in c.cited:
            a = abstracts.get(d)
            if a is None:
                continue
            gold: dict[int, str] = {}
            for lab, idx in c.evidence.get(d, []):
                for i in idx:
                    gold[i] = _MAP[lab]
                if sets and len(idx) > 1:
                    out.append((ci, c.text, [a.sentences[i] for i in idx if i < len(a.sentences)], _MAP[lab], -1))
            for i, s in enumerate(a.sentences):
                out.append((ci, c.text, [s], gold.get(i, "UNSUPPORTED"), i))
    return out


def encode_all(t: Tether, texts: list[str]) -> dict[str, EncodedText]:
    key = hashlib.sha256(json.dumps([t.embedder.model_id, sorted(texts)]).encode()).hexdigest()[:16]
    cache = CACHE / f"judge-encoded-{key}.pkl"
    if cache.exists():
        with cache.open("rb") as f:
            out: dict[str, EncodedText] = pickle.load(f)
            return out
    out = {}
    batch = 256
    for b in track(range(0, len(texts), batch), description="encoding claims and sentences"):
        chunk = texts[b : b + batch]
        vecs, toks = t.embedder.encode(chunk)
        for s, v, tv in zip(chunk, vecs, toks, strict=True):
            out[s] = EncodedText(s, v, tv)
    CACHE.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump(out, f)
    return out


def featurize(rows, enc, idf, max_idf) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([judge_features(enc[c], [enc[e] for e in ev], idf, max_idf) for _, c, ev, _, _ in rows])


def prf(pred: list[str], gold: list[str], label: str) -> dict[str, float]:
    tp = sum(1 for p, g in zip(pred, gold, strict=True) if p == label and g == label)
    fp = sum(1 for p, g in zip(pred, gold, strict=True) if p == label and g != label)
    fn = sum(1 for p, g in zip(pred, gold, strict=True) if p != label and g == label)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def decide(P: np.ndarray, X: np.ndarray, ts: float, tc: float) -> list[str]:
    """The judge's own decision rule (JudgeModel.decide) over rows of probabilities and features."""
    m = JudgeModel(model=_DUMMY, support_threshold=ts, contradict_threshold=tc)
    return [m.decide(dict(zip(LABELS, p, strict=True)), list(x)) for p, x in zip(P, X, strict=True)]


def best_threshold(P: np.ndarray, gold: list[str], col: int, label: str) -> float:
    best, best_t = -1.0, 0.5
    for th in np.arange(0.2, 0.96, 0.02):
        pred = [label if p[col] >= th else "x" for p in P]
        f = prf(pred, gold, label)["f1"]
        if f > best:
            best, best_t = f, float(th)
    return round(best_t, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=str(MODEL_OUT))
    args = ap.parse_args()
    t0 = time.perf_counter()
    t = Tether.open(None)
    abstracts = load_abstracts()
    claims = load_claims()
    train = [c for c in claims if c.split == "train"]
    dev = [c for c in claims if c.split == "dev"]
    idf, max_idf = corpus_idf(abstracts)
    tr_rows = examples(train, abstracts, sets=True)
    dv_rows = examples(dev, abstracts, sets=False)
    texts = sorted({c for _, c, _, _, _ in tr_rows + dv_rows} | {e for r in tr_rows + dv_rows for e in r[2]})
    enc = encode_all(t, texts)
    Xtr, Xdv = featurize(tr_rows, enc, idf, max_idf), featurize(dv_rows, enc, idf, max_idf)
    ytr = [r[3] for r in tr_rows]
    ydv = [r[3] for r in dv_rows]

    mean, scale = Xtr.mean(axis=0), Xtr.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced")
    cv = cross_val_predict(lr, (Xtr - mean) / scale, ytr, cv=5, method="predict_proba")
    lr.fit((Xtr - mean) / scale, ytr)
    order = [list(lr.classes_).index(lab) for lab in LABELS]
    cv = cv[:, order]
    ts = best_threshold(cv, ytr, 0, "SUPPORTED")
    tc = best_threshold(cv, ytr, 2, "CONTRADICTED")
    model = Softmax(
        features=list(JUDGE_FEATURES),
        labels=LABELS,
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=lr.coef_[order].tolist(),
        intercept=lr.intercept_[order].tolist(),
    )
    Pdv = np.array([[p[lab] for lab in LABELS] for p in (model.probabilities(list(x)) for x in Xdv)])
    pred = decide(Pdv, Xdv, ts, tc)
    single = [r for r in tr_rows if r[4] >= 0]
    metrics: dict[str, object] = {
        "train_examples": len(tr_rows),
        "dev_sentence_pairs": len(dv_rows),
        "thresholds": {"supported": ts, "contradicted": tc},
        "train_cv_sentence_supported": prf(decide(cv, Xtr, ts, tc), ytr, "SUPPORTED"),
        "dev_sentence_supported": prf(pred, ydv, "SUPPORTED"),
        "dev_sentence_contradicted": prf(pred, ydv, "CONTRADICTED"),
        "dev_sentence_base_rate_supported": round(ydv.count("SUPPORTED") / len(ydv), 4),
        "train_single_sentence_examples": len(single),
    }
    # Claim level: per (claim, cited abstract) the sentence the judge is surest about decides.
    by_claim: dict[int, list[int]] = {}
    for i, r in enumerate(dv_rows):
        by_claim.setdefault(r[0], []).append(i)
    c_pred, c_gold = [], []
    for ci, idx in by_claim.items():
        best = max(idx, key=lambda i: max(Pdv[i][0], Pdv[i][2]))
        c_pred.append(pred[best])
        c_gold.append(_MAP.get(dev[ci].label, "UNSUPPORTED"))
    metrics["dev_claim_supported"] = prf(c_pred, c_gold, "SUPPORTED")
    metrics["dev_claim_contradicted"] = prf(c_pred, c_gold, "CONTRADICTED")
    metrics["dev_claim_accuracy"] = round(sum(p == g for p, g in zip(c_pred, c_gold, strict=True)) / len(c_gold), 4)
    metrics["dev_claims"] = len(c_gold)
    curve = {}
    for th in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        curve[str(th)] = prf(decide(Pdv, Xdv, th, tc), ydv, "SUPPORTED")
    metrics["dev_sentence_supported_by_threshold"] = curve
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    flat = {
        "dev_sentence_supported_precision": metrics["dev_sentence_supported"]["precision"],  # type: ignore[index]
        "dev_sentence_supported_recall": metrics["dev_sentence_supported"]["recall"],  # type: ignore[index]
        "dev_claim_supported_precision": metrics["dev_claim_supported"]["precision"],  # type: ignore[index]
        "dev_claim_supported_recall": metrics["dev_claim_supported"]["recall"],  # type: ignore[index]
        "dev_claim_accuracy": metrics["dev_claim_accuracy"],
    }
    JudgeModel(
        model=model,
        support_threshold=ts,
        contradict_threshold=tc,
        trained_on="scifact-train",
        metrics=flat,  # type: ignore[arg-type]
    ).save(Path(args.out))
    if args.json:
        print(json.dumps(metrics, indent=2))
        return
    print(f"trained on {len(tr_rows)} SciFact train pairs; thresholds S={ts} C={tc}; wrote {args.out}")
    for k, v in metrics.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
