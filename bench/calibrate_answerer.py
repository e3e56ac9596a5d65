"""Train and calibrate the extractive answerer's support models on SQuAD 2.0 (half of dev).

Split (fixed): questions on the first half of the paragraphs (file order) are the calibration split;
the rest is the measured split. Both logistic models and the abstention threshold are fitted on the
calibration split only; every figure printed under "measured" comes from the other half.

Stage 1 (sentence): does this sentence contain a gold answer?  -> picks the sentence to cite.
Stage 2 (answer): is the best sentence a correct answer?        -> support; abstain below the threshold.
The threshold maximises balanced accuracy on calibration: (answerable cited correctly + unanswerable
abstained) / 2.

    python bench/calibrate_answerer.py            # writes src/tether/data/support_model.json
    python bench/calibrate_answerer.py --json     # the same, figures as JSON on stdout

With ``--reader DIR`` (a reading model exported by bench/train_reader.py: model-int8.onnx + tokenizer.json), the
reader's logit joins the sentence features and three reader features the answer features, and the support model
is written to DIR/support_model.json (the folder is then an ``answer.reader``). The reader was trained on most of
the calibration paragraphs, so the two logistic models and the threshold are fitted on the calibration questions
it never saw (its SQuAD dev split: paragraphs of articles shared with the measured split, and a seeded 12%);
figures are on the same measured split as without it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import LogisticRegression

from _common import CACHE, ROOT, Squad, SquadQuestion, load_squad, squad_store
from tether import Tether
from tether.answer import ANSWER_FEATURES, FEATURES, ExtractiveAnswerer, Logistic, SupportModel
from tether.answer._extractive import _context
from tether.answer._features import answer_features
from tether.answer._reader import (
    MAX_LENGTH,
    MODEL_FILE,
    READER_ANSWER_FEATURES,
    READER_FEATURE,
    READER_TOP,
    TOKENIZER_FILE,
    OnnxReader,
    Reader,
    reader_answer_features,
    shortlist,
)
from tether.judge import StoreIdf
from tether.models._cross_encoder import OnnxPairModel
from tether.rerank import load_rerank_model, reranker_from_settings, search_and_rerank
from tether.retrieve import Retriever

MODEL_OUT = ROOT / "src" / "tether" / "data" / "support_model.json"
Cands = list[tuple[list[float], bool]]


def contains_answer(text: str, answers: list[str]) -> bool:
    t = " ".join(text.lower().split())
    return any(" ".join(a.lower().split()) in t for a in answers if a.strip())


def _placeholder() -> SupportModel:
    zero = Logistic(
        features=list(FEATURES),
        mean=[0.0] * len(FEATURES),
        scale=[1.0] * len(FEATURES),
        coef=[0.0] * len(FEATURES),
        intercept=0.0,
    )
    ans = Logistic(
        features=list(ANSWER_FEATURES),
        mean=[0.0] * len(ANSWER_FEATURES),
        scale=[1.0] * len(ANSWER_FEATURES),
        coef=[0.0] * len(ANSWER_FEATURES),
        intercept=0.0,
    )
    return SupportModel(sentence=zero, answer=ans, threshold=0.5)


def reranker_identity(t: Tether) -> str:
    """What the packaged reranker is (its file's content hash): features cached with another are not reused."""
    if not t.settings.rerank.enabled or t.settings.rerank.model != "learned":
        return ""
    return hashlib.sha256(load_rerank_model().model_dump_json().encode()).hexdigest()[:16]


def collect(
    t: Tether,
    questions: list[SquadQuestion],
    *,
    calibration_only: bool = False,
    measure_only: bool = False,
    reader: Reader | None = None,
    reader_id: str = "",
) -> list[Cands]:
    """Per question: candidate sentences' features (the reader's logit last, with a reader) and whether each
    contains a gold answer (cached)."""
    key = hashlib.sha256(
        json.dumps(
            [
                t.settings.index_hash,
                t.settings.retrieval.model_dump(mode="json"),
                t.settings.rerank.model_dump(mode="json"),
                reranker_identity(t),
                FEATURES,
                [q.id for q in questions],
                calibration_only,
                reader_id,
                *(["measure_only"] if measure_only else []),
            ]
        ).encode()
    ).hexdigest()[:16]
    cache = CACHE / f"squad-features-{key}.pkl"
    if cache.exists():
        with cache.open("rb") as f:
            cached: list[Cands] = pickle.load(f)
            return cached
    store = squad_store(t, load_squad(), calibration_only=calibration_only, measure_only=measure_only)
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    answerer = ExtractiveAnswerer(store, t.embedder, t.settings.answer, _placeholder())
    reranker = reranker_from_settings(t.settings.rerank, t.settings.root, StoreIdf(store))
    top_k = t.settings.retrieval.top_k
    qvecs = t.embedder.embed([q.question for q in questions])
    out = []
    for i, q in enumerate(track(questions, description="features", transient=True)):
        # The same retrieval as Tether.ask: hybrid, then the reranker's order when it is enabled.
        hits, _ = search_and_rerank(retriever, reranker, t.settings.rerank, q.question, top_k, query_vector=qvecs[i])
        cands = answerer.candidates(q.question, hits, qvecs[i])
        read = reader.scores(q.question, [(_context(c.hit), c.text) for c in cands]) if reader else []
        out.append(
            [
                ([*c.features, *read[j : j + 1]], (not q.is_impossible) and contains_answer(c.text, q.answers))
                for j, c in enumerate(cands)
            ]
        )
    store.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump(out, f)
    return out


def reader_unseen_paragraphs(squad: Squad) -> set[str]:
    """Calibration paragraphs in the reading model's SQuAD dev split (bench/train_reader.py's rule): those of an
    article that also has measured paragraphs, and a seeded 12% of the rest."""
    from train_reader import SEED, _held_out

    title = {p["_id"]: p["title"] for p in squad.paragraphs}
    measured_articles = {title[p] for p in title if p not in squad.calibration_paragraphs}
    return {p for p in squad.calibration_paragraphs if title[p] in measured_articles or _held_out(p, 0.12, SEED)}


def ooc_questions(squad: Squad, qs: list[SquadQuestion], *, calibration: bool = False) -> list[SquadQuestion]:
    """Out of corpus: measured questions to ask of an index holding only the calibration paragraphs (or, with
    ``calibration``, calibration questions for an index of the measured ones), so no answer is in the documents
    (questions of an article that also has paragraphs in the index are left out)."""
    titles = {p["title"] for p in squad.paragraphs if (p["_id"] in squad.calibration_paragraphs) != calibration}
    return [q for q in qs if q.paragraph_id.rsplit("#", 1)[0] not in titles]


def abstained(decisions: list[tuple[float, bool]], th: float) -> float:
    """Share of ``decisions`` (all on unanswerable questions) that abstain at ``th``."""
    return sum(1 for p, _ in decisions if p < th) / max(len(decisions), 1)


def cut_to_shortlist(model: SupportModel, per_q: list[Cands]) -> list[Cands]:
    """Each question's candidates cut to those the answerer's reader would read (features without the reader's
    logit, which is last)."""
    return [[cands[i] for i in shortlist(model, [x[:-1] for x, _ in cands])] for cands in per_q]


def fit(X: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> Logistic:
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced")
    lr.fit((X - mean) / scale, y)
    return Logistic(
        features=list(names),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=lr.coef_[0].tolist(),
        intercept=float(lr.intercept_[0]),
    )


def question_row(model: SupportModel, cands: Cands) -> tuple[list[float], bool]:
    """The answer model's features for one question (as the answerer computes them) and whether the best
    sentence holds a gold answer."""
    ps = [model.sentence.probability(x) for x, _ in cands]
    order = sorted(range(len(cands)), key=lambda i: -ps[i])
    x = answer_features([ps[i] for i in order], [cands[i][0] for i in order])
    if READER_FEATURE in model.sentence.features:
        x += reader_answer_features([cands[i][0][-1] for i in order])
    return x, cands[order[0]][1]


def decide(model: SupportModel, per_q: list[Cands]) -> list[tuple[float, bool]]:
    """(support, whether the cited best sentence holds a gold answer) per question."""
    res = []
    for cands in per_q:
        if not cands:
            res.append((0.0, False))
            continue
        x, ok = question_row(model, cands)
        res.append((model.answer.probability(x), ok))
    return res


def rates(decisions: list[tuple[float, bool]], qs: list[SquadQuestion], th: float) -> dict[str, float]:
    ans = [(p, ok) for (p, ok), q in zip(decisions, qs, strict=True) if not q.is_impossible]
    una = [p for (p, _), q in zip(decisions, qs, strict=True) if q.is_impossible]
    ans_ok = sum(1 for p, ok in ans if p >= th and ok) / max(len(ans), 1)
    una_abstain = sum(1 for p in una if p < th) / max(len(una), 1)
    correct = sum(1 for p, ok in ans if p >= th and ok) + sum(1 for p in una if p < th)
    # The support decision as a judge: "SUPPORTED" = answered. Precision over every answered question;
    # recall over the answerable questions whose best sentence does hold a gold answer.
    answered = sum(1 for p, _ in ans if p >= th) + sum(1 for p in una if p >= th)
    right = sum(1 for p, ok in ans if p >= th and ok)
    supportable = sum(1 for _, ok in ans if ok)
    return {
        "supported_precision": right / max(answered, 1),
        "supported_recall": right / max(supportable, 1),
        "answerable_cited_correct": ans_ok,
        "answerable_answered": sum(1 for p, _ in ans if p >= th) / max(len(ans), 1),
        "answerable_top1_contains_answer_no_abstention": sum(1 for _, ok in ans if ok) / max(len(ans), 1),
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
    ap.add_argument("--reader", type=Path, default=None, help="a reading-model folder: fit the support model with it")
    ap.add_argument(
        "--min-ooc",
        type=float,
        default=0.98,
        help="the least share of out-of-corpus calibration questions the threshold must abstain on (default 0.98)",
    )
    ap.add_argument(
        "--reader-top",
        type=int,
        default=READER_TOP,
        help=f"with --reader: how many candidates the reader reads per question (default {READER_TOP}; 0 = all)",
    )
    args = ap.parse_args()

    t0 = time.time()
    t = Tether.open(None)
    squad = load_squad()
    cal_q, mea_q = squad.split("calibration"), squad.split("measure")
    reader: Reader | None = None
    reader_id = ""
    sentence_names, answer_names = FEATURES, ANSWER_FEATURES
    trained_on = "SQuAD 2.0 dev half, calibration split (questions on paragraphs 1-323 in file order)"
    if args.reader is not None:
        reader = OnnxReader(
            OnnxPairModel(args.reader / MODEL_FILE, args.reader / TOKENIZER_FILE, max_length=MAX_LENGTH, batch_size=32)
        )
        reader_id = hashlib.sha256((args.reader / MODEL_FILE).read_bytes()).hexdigest()[:16]
        unseen = reader_unseen_paragraphs(squad)
        cal_q = [q for q in cal_q if q.paragraph_id in unseen]
        sentence_names, answer_names = (*FEATURES, READER_FEATURE), (*ANSWER_FEATURES, *READER_ANSWER_FEATURES)
        trained_on = (
            "SQuAD 2.0 dev half, the calibration questions the reading model never saw (its dev split: "
            f"{len(unseen)} of the 323 calibration paragraphs); reader {reader_id}"
        )
        if args.out == MODEL_OUT:
            args.out = args.reader / "support_model.json"
    if args.limit:
        cal_q, mea_q = cal_q[: args.limit], mea_q[: args.limit]
    cal = collect(t, cal_q, reader=reader, reader_id=reader_id)
    mea = collect(t, mea_q, reader=reader, reader_id=reader_id)

    model = _placeholder()
    ooc = collect(t, ooc_questions(squad, mea_q), calibration_only=True, reader=reader, reader_id=reader_id)
    cal_ooc_q = ooc_questions(squad, cal_q, calibration=True)
    cal_ooc = collect(t, cal_ooc_q, measure_only=True, reader=reader, reader_id=reader_id)
    if reader is not None and args.reader_top:
        # The reader reads only the best few by the features alone: that shortlist model is fitted first, and
        # every split is cut to it as the answerer cuts (the reader's logits do not depend on the other pairs).
        X = np.array([x[:-1] for cands in cal for x, _ in cands], dtype=np.float64)
        y = np.array([lab for cands in cal for _, lab in cands], dtype=np.int64)
        model.shortlist, model.shortlist_size = fit(X, y, FEATURES), args.reader_top
        trained_on += f"; the reader reads the best {args.reader_top} candidates by the shortlist model (features only)"
        cal, mea, ooc, cal_ooc = (cut_to_shortlist(model, s) for s in (cal, mea, ooc, cal_ooc))
    # Stage 1 on calibration sentences.
    X = np.array([x for cands in cal for x, _ in cands], dtype=np.float64)
    y = np.array([lab for cands in cal for _, lab in cands], dtype=np.int64)
    model.sentence = fit(X, y, sentence_names)
    # Stage 2 on calibration questions: label = answerable and the best sentence holds a gold answer.
    rows, labels = [], []
    for cands in cal:
        if not cands:
            continue
        x, ok = question_row(model, cands)
        rows.append(x)
        labels.append(ok)
    model.answer = fit(np.array(rows), np.array(labels, dtype=np.int64), answer_names)
    model.trained_on = trained_on

    cal_dec, cal_ooc_dec = decide(model, cal), decide(model, cal_ooc)
    grid = sorted({round(p, 3) for p, _ in cal_dec} | {0.0, 1.0})
    # The threshold maximises balanced accuracy on the calibration questions (answerable against SQuAD's
    # adversarial unanswerables) among those where calibration questions asked of an index without their
    # articles (out of corpus: not covered at all) still abstain at least --min-ooc of the time.
    ok = [th for th in grid if abstained(cal_ooc_dec, th) >= args.min_ooc] or [1.0]
    best = max(ok, key=lambda th: rates(cal_dec, cal_q, th)["balanced"])
    model.trained_on += (
        f"; threshold: best balanced on those questions where {len(cal_ooc_q)} of them asked of an index without "
        f"their articles abstain >= {args.min_ooc}"
    )
    model.threshold = float(best)
    mea_dec = decide(model, mea)
    measured = rates(mea_dec, mea_q, best)
    ooc_dec = decide(model, ooc)
    ooc_abstained = abstained(ooc_dec, best)
    model.metrics = {k: round(float(v), 4) for k, v in measured.items()}
    model.metrics["out_of_corpus_abstained"] = round(ooc_abstained, 4)
    model.save(args.out)
    curve = {
        f"{th:.2f}": {**rates(mea_dec, mea_q, th), "out_of_corpus_abstained": abstained(ooc_dec, th)}
        for th in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    }
    report = {
        "split_calibration_questions": len(cal_q),
        "split_measured_questions": len(mea_q),
        "threshold": best,
        "sentence_coefficients": dict(zip(sentence_names, [round(c, 3) for c in model.sentence.coef], strict=True)),
        "answer_coefficients": dict(zip(answer_names, [round(c, 3) for c in model.answer.coef], strict=True)),
        "calibration": rates(cal_dec, cal_q, best),
        "calibration_out_of_corpus_questions": len(cal_ooc_q),
        "calibration_out_of_corpus_abstained": abstained(cal_ooc_dec, best),
        "measured": measured,
        "out_of_corpus_questions": len(ooc),
        "out_of_corpus_abstained": ooc_abstained,
        "measured_operating_curve_for_information": curve,
        "seconds": round(time.time() - t0, 1),
        "written": str(args.out),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(
        f"threshold {best:.3f} (chosen on calibration: {len(cal_q)} questions; out of corpus, {len(cal_ooc_q)} asked "
        f"of an index without their articles, abstained {report['calibration_out_of_corpus_abstained']:.3f} >= "
        f"{args.min_ooc})"
    )
    for name in ("calibration", "measured"):
        r = report[name]
        assert isinstance(r, dict)
        print(
            f"{name:12s} answerable cited-correct {r['answerable_cited_correct']:.3f} "
            f"(top-1 holds answer, no abstention: {r['answerable_top1_contains_answer_no_abstention']:.3f}) | "
            f"unanswerable abstained {r['unanswerable_abstained']:.3f} | balanced {r['balanced']:.3f} | "
            f"mixture accuracy {r['mixture_accuracy']:.3f}"
        )
    print(
        f"out of corpus (measured questions, index without their articles): abstained {ooc_abstained:.3f} of {len(ooc)}"
    )
    print("measured operating curve (information only; the threshold was chosen on calibration):")
    for th, r in curve.items():
        print(
            f"  t={th} answerable cited-correct {r['answerable_cited_correct']:.3f}  "
            f"unanswerable abstained {r['unanswerable_abstained']:.3f}  out of corpus abstained "
            f"{r['out_of_corpus_abstained']:.3f}  mixture {r['mixture_accuracy']:.3f}"
        )
    print("sentence model:", report["sentence_coefficients"])
    print("answer model:", report["answer_coefficients"])
    print(f"wrote {args.out} in {report['seconds']}s")


if __name__ == "__main__":
    main()
