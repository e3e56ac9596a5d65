"""What the HTTP service adds to a warm ask: the same questions through `tether serve` on loopback and through the
library in one run, interleaved (so both see the same machine state).

The corpus is the demo's (CPython's reference-manual topics); the server is a real `tether serve` process with a
tenant that may read every document and a key for it. Each arm is warmed with 5 asks first.

    python bench/service_overhead.py [--n 60] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from _service import start_ready
from tether import Tether
from tether._demo import DEMO_QUESTIONS, export_python_topics
from tether.config import default_yaml
from tether.service import open_key_store

QUESTIONS = [
    *DEMO_QUESTIONS,
    "What does the with statement do?",
    "How are default parameter values evaluated?",
    "What is a generator expression?",
    "What does the global statement do?",
    "When is __del__ called?",
]


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="asks per arm")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tether-svc-bench-"))
    export_python_topics(root / "docs")
    (root / "tether.yaml").write_text(
        default_yaml().replace("\ntenants: {}", "\ntenants:\n  demo: {sources: ['*']}\n"), encoding="utf-8"
    )
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    keys = open_key_store(t.settings)
    token = keys.create("bench", "demo", "user")[0]
    keys.close()
    server, base = start_ready(root)
    try:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        lib: list[float] = []
        http: list[float] = []
        same = 0
        for i in range(args.n + 5):
            q = QUESTIONS[i % len(QUESTIONS)]
            t0 = time.perf_counter()
            a = t.ask(q, tenant="demo")
            t1 = time.perf_counter()
            r = client.post("/v1/ask", json={"question": q})
            t2 = time.perf_counter()
            r.raise_for_status()
            if i >= 5:
                lib.append((t1 - t0) * 1000)
                http.append((t2 - t1) * 1000)
                same += r.json()["text"] == a.text
        client.close()
    finally:
        server.terminate()
        server.wait(60)
        t.close()
    out = {
        "asks_per_arm": args.n,
        "library_ms": {"p50": _pct(lib, 0.5), "p95": _pct(lib, 0.95), "mean": statistics.fmean(lib)},
        "http_ms": {"p50": _pct(http, 0.5), "p95": _pct(http, 0.95), "mean": statistics.fmean(http)},
        "overhead_p50_ms": _pct(http, 0.5) - _pct(lib, 0.5),
        "same_answer_text": f"{same}/{args.n}",
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{'arm':<10}{'p50 ms':>10}{'p95 ms':>10}{'mean ms':>10}")
    for arm in ("library", "http"):
        m = out[f"{arm}_ms"]
        assert isinstance(m, dict)
        print(f"{arm:<10}{m['p50']:>10.1f}{m['p95']:>10.1f}{m['mean']:>10.1f}")
    print(f"overhead at p50: {out['overhead_p50_ms']:.1f} ms; same answer text: {out['same_answer_text']}")


if __name__ == "__main__":
    main()
