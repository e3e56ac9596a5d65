"""Train and calibrate the extractive answerer's support model on SQuAD 2.0 (half of dev).

Split (fixed): questions on the first half of the paragraphs (file order) are the calibration split;
the rest is the measured split. The logistic regression and the abstention threshold are fitted on
the calibration split only; every figure printed under "measured" comes from the other half.

    python bench/calibrate_answerer.py            # trains, writes src/tether/data/support_model.json
    python bench/calibrate_answerer.py --json     # the same, figures as JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import LogisticRegression

from _common import ROOT, SquadQuestion, load_squad, squad_store
from tether import Tether
from tether.answer import FEATURES, ExtractiveAnswerer, SupportModel
from tether.retrieve import Retriever

MODEL_OUT = ROOT / "src" / "tether" / "data" / "support_model.json"


def contains_answer(text: str, answers: list[str]) -> bool:
    t = " ".join(text.lower().split())
    return any(" ".join(a.lower().split()) in t for a in answers if a.strip())


def collect(t: Tether, questions: list[SquadQuestion], label: str) -> list[list[tuple[list[float], bool]]]:
    """For each question, its candidate sentences' features and whether each contains a gold answer."""
    store = squad_store(t, load_squad())
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    dummy = SupportModel(
        features=list(FEATURES),
        mean=[0.0] * len(FEATURES),
        scale=[1.0] * len(FEATURES),
        coef=[0.0] * len(FEATURES),
        intercept=0.0,
        threshold=0.5,
    )
    answerer = ExtractiveAnswerer(store, t.embedder, t.settings.answer, dummy)
    qvecs = t.embedder.embed([q.question for q in questions])
    out = []
    for i, q in enumerate(track(questions, description=f"features ({label})", transient=True)):
        hits = retriever.search(q.question)
        cands = answerer.candidates(q.question, hits, qvecs[i])
        out.append([(c.features, (not q.is_impossible) and contains_answer(c.text, q.answers)) for c in cands])
    return out


def decide(model: SupportModel, per_q: list[list[tuple[list[float], bool]]]) -> list[tuple[float, bool]]:
    """(best probability, whether the best sentence holds a gold answer) per question."""
    res = []
    for cands in per_q:
        if not cands:
            res.append((0.0, False))
            continue
        ps = [model.probability(x) for x, _ in cands]
        i = int(np.argmax(ps))
        res.append((ps[i], cands[i][1]))
    return res


def rates(decisions: list[tuple[float, bool]], qs: list[SquadQuestion], th: float) -> dict[str, float]:
    ans = [(p, ok) for (p, ok), q in zip(decisions, qs, strict=True) if not q.is_impossible]
    una = [p for (p, _), q in zip(decisions, qs, strict=True) if q.is_impossible]
    ans_ok = sum(1 for p, ok in ans if p >= th and ok) / max(len(ans), 1)
    ans_top1 = sum(1 for _, ok in ans if ok) / max(len(ans), 1)
    ans_answered = sum(1 for p, _ in ans if p >= th) / max(len(ans), 1)
    una_abstain = sum(1 for p in una if p < th) / max(len(una), 1)
    correct = sum(1 for p, ok in ans if p >= th and ok) + sum(1 for p in una if p < th)
    return {
        "answerable_cited_correct": ans_ok,
        "answerable_answered": ans_answered,
        "answerable_top1_contains_answer_no_abstention": ans_top1,
        "unanswerable_abstained": una_abstain,
        "balanced": (ans_ok + una_abstain) / 2,
        "mixture_accuracy": correct / max(len(qs), 1),
        "answerable_n": len(ans),
        "unanswerable_n": len(una),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print figures as JSON")
    ap.add_argument("--out", type=Path, default=MODEL_OUT, help="where to write the support model")
    ap.add_argument("--limit", type=int, default=0, help="use only N questions per split (smoke runs)")
    args = ap.parse_args()

    t0 = time.time()
    t = Tether.open(ROOT / "bench" / "tether.bench.yaml" if (ROOT / "bench" / "tether.bench.yaml").exists() else None)
    squad = load_squad()
    cal_q, mea_q = squad.split("calibration"), squad.split("measure")
    if args.limit:
        cal_q, mea_q = cal_q[: args.limit], mea_q[: args.limit]
    cal = collect(t, cal_q, "calibration")
    mea = collect(t, mea_q, "measure")

    X = np.array([x for cands in cal for x, _ in cands], dtype=np.float64)
    y = np.array([lab for cands in cal for _, lab in cands], dtype=np.int64)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced")
    lr.fit((X - mean) / scale, y)
    model = SupportModel(
        features=list(FEATURES),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=lr.coef_[0].tolist(),
        intercept=float(lr.intercept_[0]),
        threshold=0.5,
        trained_on="SQuAD 2.0 dev half, calibration split (questions on paragraphs 1-323)",
    )
    # Threshold: maximise balanced accuracy (answerable cited correctly vs unanswerable abstained) on calibration.
    cal_dec = decide(model, cal)
    grid = sorted({round(p, 3) for p, _ in cal_dec} | {0.0, 1.0})
    best = max(grid, key=lambda th: rates(cal_dec, cal_q, th)["balanced"])
    model.threshold = float(best)
    mea_dec = decide(model, mea)
    measured = rates(mea_dec, mea_q, best)
    calibrated = rates(cal_dec, cal_q, best)
    model.metrics = {k: round(float(v), 4) for k, v in measured.items()}
    model.save(args.out)
    report = {
        "split_calibration_questions": len(cal_q),
        "split_measured_questions": len(mea_q),
        "threshold": best,
        "coefficients": dict(zip(FEATURES, [round(c, 3) for c in model.coef], strict=True)),
        "calibration": calibrated,
        "measured": measured,
        "seconds": round(time.time() - t0, 1),
        "written": str(args.out),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print(f"threshold {best:.3f} (chosen on calibration: {len(cal_q)} questions)")
        for name in ("calibration", "measured"):
            r = report[name]
            print(
                f"{name:12s} answerable cited-correct {r['answerable_cited_correct']:.3f} "
                f"(top-1 contains answer, no abstention: {r['answerable_top1_contains_answer_no_abstention']:.3f}) | "
                f"unanswerable abstained {r['unanswerable_abstained']:.3f} | balanced {r['balanced']:.3f} | "
                f"mixture accuracy {r['mixture_accuracy']:.3f}"
            )
        print("coefficients:", report["coefficients"])
        print(f"wrote {args.out} in {report['seconds']}s")


if __name__ == "__main__":
    main()
