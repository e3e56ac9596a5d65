"""No behaviour change on a real set: every question of the SQuAD 2.0 measured split (2,995 questions on paragraphs
324-646; all 646 paragraphs indexed) asked through `Tether.ask` (the request pipeline) and through the code path
before it (written out in tests/pipeline/test_equivalence.py), on one Tether with the default settings. Counts the
answers that differ in any field (text, abstention, reason, support, threshold, citations, closest passage) and
prints, for each path, the share of answerable questions answered with a gold answer in the cited quote and the
share of unanswerable questions abstained.

    python bench/pipeline_squad.py [--limit N] [--json]
    python bench/pipeline_squad.py --reader none --no-compare   # features only (no reading model)

Also prints the warm `Tether.ask` latency (p50/p95 over the questions, after the index is built) and the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import track

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pipeline"))

from test_equivalence import old_ask  # noqa: E402

from _common import READER_CHOICES, load_squad, with_reader  # noqa: E402
from tether import Tether  # noqa: E402
from tether.config import default_yaml  # noqa: E402
from tether.contracts import Answer  # noqa: E402
from tether.ingest import Ingestor  # noqa: E402


def holds_gold(answer: Answer, golds: list[str]) -> bool:
    quoted = " ".join(" ".join(c.quote for c in answer.citations).lower().split())
    return any(" ".join(g.lower().split()) in quoted for g in golds if g.strip())


def same(a: Answer, b: Answer) -> bool:
    return (
        a.text == b.text
        and a.abstained == b.abstained
        and a.reason == b.reason
        and a.support == b.support
        and a.threshold == b.threshold
        and a.citations == b.citations
        and a.nearest == b.nearest
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="only the first N measured questions (a smoke run)")
    ap.add_argument("--reader", default="packaged", help=f"answer.reader: {READER_CHOICES}")
    ap.add_argument("--no-compare", action="store_true", help="skip the old code path (pipeline figures only)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    squad = load_squad()
    questions = squad.split("measure")[: args.limit or None]
    with tempfile.TemporaryDirectory(prefix="tether-squad-") as d:
        cfg = Path(d) / "tether.yaml"
        cfg.write_text(with_reader(default_yaml(), args.reader), encoding="utf-8")
        t = Tether.open(cfg)
        ing = Ingestor(t.store(create=True), t.embedder, t.settings.ingest)
        ing.add_records((p["_id"], p["title"], p["text"]) for p in squad.paragraphs)
        ing.flush()
        differ: list[str] = []
        tally = {"pipeline": [0, 0], "before": [0, 0]}  # [answerable right, unanswerable abstained]
        if args.no_compare:
            del tally["before"]
        t.ask(questions[0].question)  # warm: models loaded
        ms: list[float] = []
        for q in track(questions, description="asking", transient=True):
            t0 = time.perf_counter()
            new = t.ask(q.question)
            ms.append((time.perf_counter() - t0) * 1000)
            answers = [("pipeline", new)]
            if not args.no_compare:
                old = old_ask(t, q.question)
                answers.append(("before", old))
                if not same(new, old):
                    differ.append(q.id)
            for name, a in answers:
                if q.is_impossible:
                    tally[name][1] += a.abstained
                else:
                    tally[name][0] += (not a.abstained) and holds_gold(a, q.answers)
        t.close()
    n_ans = sum(not q.is_impossible for q in questions)
    n_una = len(questions) - n_ans
    out: dict[str, object] = {
        "questions": len(questions),
        "reader": args.reader,
        "ask_p50_ms": round(statistics.median(ms), 1),
        "ask_p95_ms": round(statistics.quantiles(ms, n=20)[18], 1) if len(ms) >= 20 else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if not args.no_compare:
        out |= {"answers_that_differ": len(differ), "differ": differ[:20]}
    for name, (right, abstained) in tally.items():
        a, u = right / max(n_ans, 1), abstained / max(n_una, 1)
        out[name] = {
            "answerable_right": round(a, 4),
            "unanswerable_abstained": round(u, 4),
            "balanced": round((a + u) / 2, 4),
        }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:20s} {v}")


if __name__ == "__main__":
    main()
