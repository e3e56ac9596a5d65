"""Calibrate the answer cache's semantic threshold on paraphrase pairs, and report it on held-out pairs.

SelQA (Apache-2.0; ../shared/data/selqa) has crowd paraphrases of its questions: two questions about the same
Wikipedia section with the same answer sentences are a pair the cache SHOULD serve (the fresh answer would say the
same); two about the same section with different answer sentences are the hard negative it must NOT serve, since
their retrieved evidence can be the same passage. For each threshold: the share of positive pairs served (hit
rate) and, of all pairs served, the share that were negatives (false hits), with and without the anchor check
(names and numbers must match). The threshold is chosen on dev (the lowest with false hits <= --max-false among
served pairs) and reported on test.

    python bench/cache_calibration.py [--max-false 0.03] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from tether import Tether
from tether.pipeline._cache import anchors

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "selqa"
GRID = [round(0.70 + 0.01 * i, 2) for i in range(30)]


def pairs(split: str) -> list[tuple[str, str, bool]]:
    """(question a, question b, same answer) for questions about the same section."""
    rows = json.loads((DATA / f"selqa-ass-{split}.json").read_text(encoding="utf-8"))
    by_section: dict[tuple[str, str], list[tuple[str, frozenset[int]]]] = {}
    for r in rows:
        by_section.setdefault((r["article"], r["section"]), []).append((r["question"], frozenset(r["answers"])))
    out = []
    for qs in by_section.values():
        for (qa, aa), (qb, ab) in combinations(qs, 2):
            if qa.strip().lower() == qb.strip().lower():
                continue
            if aa == ab:
                out.append((qa, qb, True))
            elif not aa & ab:
                out.append((qa, qb, False))
    return out


def curve(ps: list[tuple[str, str, bool]], sims: np.ndarray, use_anchors: bool) -> list[dict[str, Any]]:
    same = np.array([anchors(a) == anchors(b) for a, b, _ in ps]) if use_anchors else np.ones(len(ps), bool)
    pos = np.array([p for _, _, p in ps])
    out = []
    for th in GRID:
        served = (sims >= th) & same
        hits = int(served.sum())
        out.append(
            {
                "threshold": th,
                "hit_rate": float((served & pos).sum() / max(1, pos.sum())),
                "false_hits": float((served & ~pos).sum() / max(1, hits)),
                "served": hits,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-false", type=float, default=0.03, help="false hits allowed among served pairs (dev)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"no SelQA at {DATA} (../shared/data/selqa)")
    t = Tether.open(None)
    report: dict[str, Any] = {}
    sims: dict[str, np.ndarray] = {}
    ps: dict[str, list[tuple[str, str, bool]]] = {}
    for split in ("dev", "test"):
        ps[split] = pairs(split)
        qs = sorted({q for a, b, _ in ps[split] for q in (a, b)})
        vec = dict(zip(qs, t.embedder.embed(qs), strict=True))
        sims[split] = np.array([float(np.dot(vec[a], vec[b])) for a, b, _ in ps[split]])
    for use_anchors in (False, True):
        arm = "with anchors" if use_anchors else "embedding only"
        dev = curve(ps["dev"], sims["dev"], use_anchors)
        ok = [r for r in dev if r["served"] and r["false_hits"] <= args.max_false]
        chosen = ok[0]["threshold"] if ok else None
        test = curve(ps["test"], sims["test"], use_anchors)
        at = next((r for r in test if r["threshold"] == chosen), None)
        report[arm] = {"chosen_on_dev": chosen, "test_at_chosen": at, "test_curve": test}
    report["pairs"] = {
        s: {"positive": sum(p for *_, p in ps[s]), "negative": sum(not p for *_, p in ps[s])} for s in ps
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"pairs: {report['pairs']}")
    for arm in ("embedding only", "with anchors"):
        r = report[arm]
        print(f"\n{arm}: threshold chosen on dev (false hits <= {args.max_false:.0%}): {r['chosen_on_dev']}")
        if r["test_at_chosen"]:
            a = r["test_at_chosen"]
            print(f"  test: hit rate {a['hit_rate']:.3f}, false hits {a['false_hits']:.3f} of {a['served']} served")
        print("  test curve (threshold: hit rate / false hits):")
        print(
            "  "
            + "  ".join(f"{c['threshold']:.2f}:{c['hit_rate']:.2f}/{c['false_hits']:.2f}" for c in r["test_curve"][::3])
        )


if __name__ == "__main__":
    main()
