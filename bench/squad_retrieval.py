"""Second, unseen task for the retrieval settings: find each answerable SQuAD 2.0 question's paragraph.

No tuning happens here: the settings (and the reranker) are those chosen on SciFact train. Reported on the measured
split (questions on the second half of the paragraphs; the first half is the answerer's calibration
split), over an index of all 646 paragraphs.

    python bench/squad_retrieval.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from rich.progress import track

from _common import load_squad, paragraph_position, squad_store
from tether import Tether
from tether.judge import StoreIdf
from tether.rerank import LearnedReranker
from tether.retrieve import Retriever

MODES = ("lexical", "dense", "hybrid", "hybrid+rerank")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--split", default="measure", choices=["measure", "calibration"])
    args = ap.parse_args()
    t = Tether.open(None)
    squad = load_squad()
    store = squad_store(t, squad)
    paths = store.chunk_paths()
    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    qs = [q for q in squad.split(args.split) if not q.is_impossible]
    vecs = t.embedder.embed([q.question for q in qs])
    report: dict[str, object] = {"split": args.split, "questions": len(qs), "paragraphs": len(squad.paragraphs)}
    reranker = LearnedReranker(idf=StoreIdf(store))
    depth = reranker.model.depth
    for mode in MODES:
        r1, r5, rr = [], [], []
        for i, q in enumerate(track(qs, description=mode, transient=True)):
            if mode == "hybrid+rerank":
                hits = retriever.search(q.question, 20, query_vector=vecs[i], collapse=False)
                order = [h.chunk_id for h in reranker.rerank(q.question, hits[:depth])] + [
                    h.chunk_id for h in hits[depth:]
                ]
            else:
                fused, _ = retriever.rank(q.question, mode=mode, query_vector=vecs[i])  # type: ignore[arg-type]
                order = [x.chunk_id for x in fused]
            pos = paragraph_position(order, paths, q.paragraph_id)
            r1.append(pos == 1)
            r5.append(0 < pos <= 5)
            rr.append(1.0 / pos if pos else 0.0)
        report[mode] = {"recall@1": float(np.mean(r1)), "recall@5": float(np.mean(r5)), "mrr@10": float(np.mean(rr))}
    store.close()
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    print(f"SQuAD 2.0 half, {args.split} split: {len(qs)} answerable questions over {len(squad.paragraphs)} paragraphs")
    for mode in MODES:
        s = report[mode]
        assert isinstance(s, dict)
        print(f"  {mode:13s} recall@1 {s['recall@1']:.4f}  recall@5 {s['recall@5']:.4f}  MRR@10 {s['mrr@10']:.4f}")


if __name__ == "__main__":
    main()
