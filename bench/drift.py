"""Drift alarms on a replayed question stream: time to alarm after a planted shift, and false alarms without one.

Streams of real questions (``../shared/data``; evaluation only), embedded with the packaged MiniLM, replayed
through ``tether.monitor.drift_report`` (reference window, then windows of ``--window``, alpha 0.01 split over
its tests; ``--topics K`` adds the topic-share test). Outcome rates are held constant here (the replay does not
ask), so only the question tests can alarm; the rate tests are covered by the unit tests.

- no shift: a reference of ``--reference`` SciFact claims, then 600 more SciFact claims: every alarm is false;
- shift: the same reference, 200 more SciFact claims, then PolicyQA questions (another domain) or SQuAD questions
  (another register, general knowledge), or SciFact claims with 20% PolicyQA questions mixed in (a new topic
  arriving): queries after the shift until the first alarm, and false alarms before.

Each is repeated over ``--runs`` random orderings (seeds 0..runs-1).

    python bench/drift.py [--runs 20] [--window 50] [--reference 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics

import numpy as np

from _common import SHARED, cached_embed, load_squad, need
from _scifact import load_claims
from tether import Tether
from tether.monitor import drift_report


def policyqa_questions() -> list[str]:
    path = need(SHARED / "policyqa" / "test_questions.jsonl")
    return list(dict.fromkeys(json.loads(line)["question"] for line in path.open(encoding="utf-8")))


def run(
    vecs: np.ndarray, shift_at: int | None, reference: int, window: int, seed: int, topics: int = 0
) -> dict[str, object]:
    n = len(vecs)
    report = drift_report(
        vecs.astype(np.float32), [False] * n, [1.0] * n, reference=reference, window=window, seed=seed, topics=topics
    )
    false = [w for w in report.windows if w.alarm and (shift_at is None or w.start + w.size <= shift_at)]
    after = [w for w in report.windows if w.alarm and shift_at is not None and w.start + w.size > shift_at]
    to_alarm = (after[0].start + after[0].size - shift_at) if after and shift_at is not None else None
    windows_before = sum(1 for w in report.windows if shift_at is None or w.start + w.size <= shift_at)
    return {"false_alarms": len(false), "windows_before": windows_before, "to_alarm": to_alarm}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--reference", type=int, default=200)
    ap.add_argument("--topics", type=int, default=0, help="also test topic shares over K clusters (the CLI uses 6)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t = Tether.open(None)
    scifact = list(dict.fromkeys(c.text for c in load_claims()))
    others = {
        "policyqa": policyqa_questions(),
        "squad": list(dict.fromkeys(q.question for q in load_squad().split("measure"))),
    }
    sv = cached_embed(t, scifact, "drift")
    ov = {k: cached_embed(t, v, "drift") for k, v in others.items()}
    results: dict[str, dict[str, object]] = {}
    rows: dict[str, list[dict[str, object]]] = {
        "no shift": [],
        **{f"shift to {k}": [] for k in others},
        "20% policyqa mixed in": [],
    }
    for seed in range(args.runs):
        rng = random.Random(seed)
        order = rng.sample(range(len(sv)), args.reference + 600)
        rows["no shift"].append(run(sv[order], None, args.reference, args.window, seed, args.topics))
        base = sv[order[: args.reference + 200]]
        for k, v in ov.items():
            pick = rng.sample(range(len(v)), 400)
            rows[f"shift to {k}"].append(
                run(np.vstack([base, v[pick]]), args.reference + 200, args.reference, args.window, seed, args.topics)
            )
        rest = [i for i in range(len(sv)) if i not in set(order)]
        mixed = [
            ov["policyqa"][rng.randrange(len(ov["policyqa"]))] if rng.random() < 0.2 else sv[rng.choice(rest)]
            for _ in range(400)
        ]
        rows["20% policyqa mixed in"].append(
            run(
                np.vstack([base, np.vstack(mixed)]),
                args.reference + 200,
                args.reference,
                args.window,
                seed,
                args.topics,
            )
        )
    for name, rs in rows.items():
        windows = sum(int(r["windows_before"]) for r in rs)  # type: ignore[call-overload]
        false = sum(int(r["false_alarms"]) for r in rs)  # type: ignore[call-overload]
        times = [int(r["to_alarm"]) for r in rs if r["to_alarm"] is not None]  # type: ignore[call-overload]
        results[name] = {
            "runs": len(rs),
            "false_alarm_rate_per_window": round(false / max(windows, 1), 4),
            "windows_without_shift": windows,
            "detected_runs": len(times) if name != "no shift" else None,
            "queries_to_alarm_median": statistics.median(times) if times else None,
            "queries_to_alarm_max": max(times) if times else None,
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"reference {args.reference}, windows of {args.window}, alpha 0.01 (three tests), {args.runs} orderings")
    for name, r in results.items():
        print(
            f"  {name:20} false alarms / window {r['false_alarm_rate_per_window']:.3f} "
            f"(of {r['windows_without_shift']} windows)"
            + (
                ""
                if name == "no shift"
                else f"; detected {r['detected_runs']}/{r['runs']}, queries to alarm "
                f"median {r['queries_to_alarm_median']}, max {r['queries_to_alarm_max']}"
            )
        )


if __name__ == "__main__":
    main()
