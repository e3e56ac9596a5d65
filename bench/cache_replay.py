"""Replay a query log through the answer cache: hit rate, false-hit rate and latency, against the same log answered
fresh (cache off), in one run.

The log is SelQA test (Apache-2.0, ../shared/data/selqa): its sections are ingested as documents; every question is
asked (crowd paraphrases of one another come in the same log), then a random half of them again word for word, in a
shuffled order. A hit is false when the cached answer's text differs from the fresh answer to the same question.
The semantic threshold is the one chosen on SelQA dev by bench/cache_calibration.py (0.81 with anchors; 0.85 is the
documented choice), so this is a held-out figure.

    python bench/cache_replay.py [--threshold 0.85] [--limit 400] [--json]
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
    ap.add_argument("--threshold", type=float, default=0.85)
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
    on = base.replace("cache:                          # the answer cache", "cache:  # the answer cache").replace(
        "  enabled: false\n  max_entries: 1000", "  enabled: true\n  max_entries: 100000", 1
    )
    on = on.replace("  semantic_threshold: null", f"  semantic_threshold: {args.threshold}")
    (root / "on.yaml").write_text(on, encoding="utf-8")
    (root / "tether.yaml").write_text(base, encoding="utf-8")
    fresh = Tether.open(root / "tether.yaml")
    fresh.ingest([docs])
    cached = Tether.open(root / "on.yaml")
    assert cached.settings.cache.enabled and cached.settings.cache.semantic_threshold == args.threshold
    rng = random.Random(0)
    log = [r["question"] for r in rows]
    log += rng.sample(log, len(log) // 2)
    rng.shuffle(log)
    for q in log[:5]:  # warm both
        fresh.ask(q, tenant="t")
    t_fresh: list[float] = []
    t_cached: list[float] = []
    kinds: dict[str, int] = {"exact": 0, "semantic": 0, "miss": 0}
    false_hits: list[dict[str, Any]] = []
    for q in log:
        t0 = time.perf_counter()
        a = fresh.ask(q, tenant="t")
        t1 = time.perf_counter()
        b = cached.ask(q, tenant="t")
        t2 = time.perf_counter()
        t_fresh.append((t1 - t0) * 1000)
        t_cached.append((t2 - t1) * 1000)
        ev = next((e for e in b.trace if e.stage == "cache"), None)
        kind = "miss" if ev is None else str(ev.detail["kind"])
        kinds[kind] += 1
        if ev is not None and (b.text != a.text or b.abstained != a.abstained):
            false_hits.append({"question": q, "of": ev.detail["of"], "kind": kind, "fresh": a.text, "served": b.text})
    hits = kinds["exact"] + kinds["semantic"]
    out = {
        "log": len(log),
        "distinct": len(rows),
        "threshold": args.threshold,
        "hits": kinds,
        "hit_rate": round(hits / len(log), 4),
        "false_hits": len(false_hits),
        "false_hit_share": round(len(false_hits) / max(1, hits), 4),
        "p50_ms": {"fresh": statistics.median(t_fresh), "cached": statistics.median(t_cached)},
        "mean_ms": {"fresh": statistics.fmean(t_fresh), "cached": statistics.fmean(t_cached)},
        "false_hit_examples": false_hits[:5],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"log {out['log']} asks ({out['distinct']} distinct questions, half repeated), threshold {args.threshold}")
    print(
        f"hits: {kinds} -> hit rate {out['hit_rate']:.3f}; false hits {len(false_hits)} ({out['false_hit_share']:.3f})"
    )
    print(f"p50 ms fresh {out['p50_ms']['fresh']:.1f} / with the cache {out['p50_ms']['cached']:.1f}; "
          f"mean {out['mean_ms']['fresh']:.1f} / {out['mean_ms']['cached']:.1f}")  # fmt: skip
    for f in false_hits[:5]:
        print(f"  false hit ({f['kind']}): {f['question']!r} served the answer to {f['of']!r}")


if __name__ == "__main__":
    main()
