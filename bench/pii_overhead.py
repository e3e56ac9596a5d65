"""What redacting every trace attribute costs a request: asks on the demo corpus with tracing on, alternating
requests with the redactor and with it replaced by the identity, in one run (p50 / p95 ms of ``Tether.ask``).

    python bench/pii_overhead.py [--asks 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import tether.trace._attrs as attrs
from tether import Tether
from tether._demo import DEMO_QUESTIONS, export_python_topics
from tether.config import default_yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asks", type=int, default=100, help="asks per arm (default: 100)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        export_python_topics(root / "corpus")
        (root / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
        t = Tether.open(root / "tether.yaml")
        t.ingest([root / "corpus"])
        real = attrs.redact_text  # type: ignore[attr-defined]
        ms: dict[str, list[float]] = {"redacted": [], "identity": []}
        for q in DEMO_QUESTIONS:
            t.ask(q)  # warm: every chunk's sentences embedded once
        for i in range(2 * args.asks):
            arm = "redacted" if i % 2 == 0 else "identity"
            attrs.redact_text = real if arm == "redacted" else (lambda s: s)  # type: ignore[attr-defined,assignment]
            q = DEMO_QUESTIONS[i // 2 % len(DEMO_QUESTIONS)]
            t0 = time.perf_counter()
            t.ask(q)
            ms[arm].append((time.perf_counter() - t0) * 1000)
        attrs.redact_text = real  # type: ignore[attr-defined]
        t.close()
    for arm, v in ms.items():
        v.sort()
        print(f"{arm:9} p50 {statistics.median(v):7.1f} ms   p95 {v[int(0.95 * len(v)) - 1]:7.1f} ms   n={len(v)}")


if __name__ == "__main__":
    main()
