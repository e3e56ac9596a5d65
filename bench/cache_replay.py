"""Replay a query log through the answer cache at several semantic thresholds: hit rate, false-hit rate and
latency (the operating curve), against the same log answered fresh (cache off), in one run.

The log is SelQA test (Apache-2.0, ../shared/data/selqa): its sections are ingested as documents; every question is
asked (crowd paraphrases of one another come in the same log), then a random half of them again word for word, in a
shuffled order. A hit is false when the cached answer's text (or abstention) differs from the fresh answer to the
same question. Thresholds were chosen on SelQA dev by bench/cache_calibration.py (0.85 with anchors is the
documented choice), so these are held-out figures. "exact" alone is the cache with no semantic threshold.

    python bench/cache_replay.py [--thresholds exact,0.80,0.85,0.90,0.95] [--limit 400] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tether import Tether
from tether.config import default_yaml

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "selqa"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thresholds", default="exact,0.80,0.85,0.90,0.95", help="comma-separated; exact = none")
    ap.add_argument("--limit", type=int, default=400, help="distinct questions in the log")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"no SelQA at {DATA} (../shared/data/selqa)")
    rows = json.loads((DATA / "selqa-ass-test.json").read_text(encoding="utf-8"))[: args.limit]
    root = Path(tempfile.mkdtemp(prefix="tether-cache-replay-"))
    docs = root / "docs"
    docs.mkdir()
    for i, (article, section) in enumerate(sorted({(r["article"], r["section"]) for r in rows})):
        sentences = next(r["candidates"] for r in rows if (r["article"], r["section"]) == (article, section))
        (docs / f"{i:04d}.md").write_text(f"# {article}: {section}\n\n" + " ".join(sentences) + "\n", encoding="utf-8")
    base = default_yaml().replace("\ntenants: {}", "\ntenants:\n  t: {sources: ['*']}\n")
    (root / "tether.yaml").write_text(base, encoding="utf-8")
    fresh = Tether.open(root / "tether.yaml")
    fresh.ingest([docs])
    rng = random.Random(0)
    log = [r["question"] for r in rows]
    log += rng.sample(log, len(log) // 2)
    rng.shuffle(log)
    for q in log[:5]:  # warm
        fresh.ask(q, tenant="t")
    answers: dict[str, tuple[str, bool]] = {}
    t_fresh: list[float] = []
    for q in log:
        t0 = time.perf_counter()
        a = fresh.ask(q, tenant="t")
        t_fresh.append((time.perf_counter() - t0) * 1000)
        answers.setdefault(q, (a.text, a.abstained))
    curve: list[dict[str, Any]] = []
    for th in [x.strip() for x in args.thresholds.split(",") if x.strip()]:
        on = base.replace("cache:                          # the answer cache", "cache:  # the answer cache").replace(
            "  enabled: false\n  max_entries: 1000", "  enabled: true\n  max_entries: 100000", 1
        )
        if th != "exact":
            on = on.replace("  semantic_threshold: null", f"  semantic_threshold: {float(th)}")
        (root / "on.yaml").write_text(on, encoding="utf-8")
        cached = Tether.open(root / "on.yaml")
        assert cached.settings.cache.enabled
        assert cached.settings.cache.semantic_threshold == (None if th == "exact" else float(th))
        for q in log[:5]:  # warm the models without filling the cache
            cached.search(q, tenant="t")
        cached.answerer()
        t_cached: list[float] = []
        kinds: dict[str, int] = {"exact": 0, "semantic": 0, "miss": 0}
        false_hits: list[dict[str, Any]] = []
        for q in log:
            t0 = time.perf_counter()
            b = cached.ask(q, tenant="t")
            t_cached.append((time.perf_counter() - t0) * 1000)
            ev = next((e for e in b.trace if e.stage == "cache"), None)
            kind = "miss" if ev is None else str(ev.detail["kind"])
            kinds[kind] += 1
            if ev is not None and (b.text, b.abstained) != answers[q]:
                false_hits.append({"question": q, "of": ev.detail["of"], "kind": kind, "served": b.text})
        cached.close()
        hits = kinds["exact"] + kinds["semantic"]
        curve.append(
            {
                "threshold": th,
                "hits": kinds,
                "hit_rate": round(hits / len(log), 4),
                "false_hits": len(false_hits),
                "correct_hit_share": round(1 - len(false_hits) / hits, 4) if hits else None,
                "p50_ms": round(statistics.median(t_cached), 1),
                "mean_ms": round(statistics.fmean(t_cached), 1),
                "false_hit_examples": false_hits[:3],
            }
        )
    out: dict[str, Any] = {
        "log": len(log),
        "distinct": len(set(log)),
        "repeats": len(log) - len(set(log)),
        "fresh": {"p50_ms": round(statistics.median(t_fresh), 1), "mean_ms": round(statistics.fmean(t_fresh), 1)},
        "curve": curve,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"log {out['log']} asks ({out['distinct']} distinct, {out['repeats']} repeats); fresh p50 "
          f"{out['fresh']['p50_ms']} ms, mean {out['fresh']['mean_ms']} ms")  # fmt: skip
    for c in curve:
        print(f"  {c['threshold']:>5}: hits {c['hits']} rate {c['hit_rate']:.3f}, false {c['false_hits']} "
              f"(correct {c['correct_hit_share']}), p50 {c['p50_ms']} ms, mean {c['mean_ms']} ms")  # fmt: skip
        for f in c["false_hit_examples"]:
            print(f"      false ({f['kind']}): {f['question']!r} served the answer to {f['of']!r}")


if __name__ == "__main__":
    main()
