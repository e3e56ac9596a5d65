"""The pipeline's own cost, paired in one process: each question asked through the old one-method code path
(written out in tests/pipeline/test_equivalence.py from the same parts) and through `Tether.ask`, back to back,
order alternating by round, on one warm Tether over the demo index. The per-question differences cancel the
machine's load, which moves separate-process figures by milliseconds.

    python bench/pipeline_paired.py [--rounds 6] [--n 60] [--json]

Run once with tracing off and once with tracing to the local store (the default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pipeline"))

from test_equivalence import old_ask  # noqa: E402

from pipeline_overhead import build_index  # noqa: E402
from tether import Tether  # noqa: E402


def _ms(fn: Callable[[Tether, str], object], t: Tether, q: str) -> float:
    t0 = time.perf_counter()
    fn(t, q)
    return (time.perf_counter() - t0) * 1000


def measure(base: Path, tracing: bool, rounds: int, n: int) -> dict[str, float]:
    cfg = base / "tether.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["tracing"] = {"enabled": tracing, "path": f".tether/traces-{int(tracing)}.db"}
    cfg.write_text(yaml.safe_dump(data))
    qs = json.loads((base / "questions.json").read_text())[:n]
    t = Tether.open(cfg)
    for q in qs:  # warm: models, caches, the sentence vectors of every question's evidence
        t.ask(q)
        old_ask(t, q)
    old: list[float] = []
    new: list[float] = []
    for r in range(rounds):
        for q in qs:
            if r % 2 == 0:
                old.append(_ms(old_ask, t, q))
                new.append(_ms(Tether.ask, t, q))
            else:
                new.append(_ms(Tether.ask, t, q))
                old.append(_ms(old_ask, t, q))
    t.close()
    diffs = [b - a for a, b in zip(old, new, strict=True)]
    return {
        "old_p50_ms": statistics.median(old),
        "new_p50_ms": statistics.median(new),
        "paired_diff_median_ms": statistics.median(diffs),
        "paired_diff_mean_ms": statistics.fmean(diffs),
        "requests": len(diffs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = build_index(Path(tempfile.mkdtemp(prefix="tether-paired-")))
    out = {f"tracing {'on' if on else 'off'}": measure(base, on, args.rounds, args.n) for on in (False, True)}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name, m in out.items():
        print(
            f"{name:12s} old p50 {m['old_p50_ms']:.2f} ms, pipeline p50 {m['new_p50_ms']:.2f} ms; paired difference "
            f"median {m['paired_diff_median_ms']:+.3f} ms, mean {m['paired_diff_mean_ms']:+.3f} ms "
            f"({m['requests']} requests)"
        )


if __name__ == "__main__":
    main()
