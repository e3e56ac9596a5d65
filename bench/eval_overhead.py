"""Eval harness overhead: the golden set run cold, then fully cached; per-case harness time without model time.

Builds the demo index (pydoc_data topics) in .tether/bench/golden/, runs evals/golden twice with a fresh
run store, and prints: first-run time, cached re-run time, and harness time per case (the cached re-run asks
no model, so its time is the harness's own: loading, scoring, storing, reporting).

    python bench/eval_overhead.py [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from _common import CACHE, ROOT
from tether import Tether
from tether._demo import export_python_topics
from tether.config import default_yaml
from tether.evals import EvalRunner, EvalStore, load_cases
from tether.evals._report import write_html_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    folder = CACHE / "golden"
    export_python_topics(folder / "corpus")
    cfg = folder / "tether.yaml"
    if not cfg.exists():
        cfg.write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(cfg)
    t.ingest([folder / "corpus"])
    t.embedder.embed(["warm up"])
    shutil.rmtree(folder / "runs", ignore_errors=True)
    store = EvalStore(folder / "runs" / "evals.db")
    cases = load_cases(ROOT / "evals" / "golden")
    timings = {}
    for name in ("cold", "cached"):
        t0 = time.perf_counter()
        report = EvalRunner(t, store).run(cases, "evals/golden")
        write_html_report(report, folder / "runs" / f"{name}.html")
        timings[name] = time.perf_counter() - t0
        assert name == "cold" or report.summary.cached_turns == len(cases)
    out = {
        "cases": len(cases),
        "cold_run_seconds": round(timings["cold"], 3),
        "cached_rerun_seconds": round(timings["cached"], 3),
        "harness_ms_per_case_without_model_time": round(timings["cached"] / len(cases) * 1000, 2),
        "pass_rate": report.summary.pass_rate,
        "per_tag": {k: v for k, v in report.summary.per_tag.items() if not k.startswith("topic:")},
    }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k:42s} {v}")


if __name__ == "__main__":
    main()
