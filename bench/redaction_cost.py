"""What PII redaction in answers (``safety.pii.answers``) and at ingest (``ingest.redact_pii``) costs.

Answers: asks on the demo corpus (CPython's reference manual) through one Tether whose settings and redactor are
switched per request (one ONNX session and one set of caches for every arm: separate Tethers measured their idle
thread pools), requests interleaved with each arm first in turn: no answer redaction, the built-in patterns for
every role, and Presidio (the ``pii`` extra; skipped when it is not installed). Ingest: the same corpus ingested
into fresh indexes with and without ``redact_pii: ['*']``, alternating, best of ``--ingests``.

    python bench/redaction_cost.py [--asks 60] [--ingests 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tether import Tether
from tether._demo import DEMO_QUESTIONS, export_python_topics
from tether.config import Settings
from tether.errors import ConfigError
from tether.safety import PatternRedactor, Redactor, presidio_redactor


def _tether(root: Path, **update: Any) -> Tether:
    base: dict[str, Any] = {"tracing": {"enabled": False}, **update}
    return Tether(Settings.model_validate(base).with_root(root))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asks", type=int, default=60, help="asks per arm")
    ap.add_argument("--ingests", type=int, default=2, help="ingests per arm")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        export_python_topics(root / "corpus")
        t = _tether(root)
        t.ingest([root / "corpus"])
        plain = t.settings
        redacting = Settings.model_validate({"tracing": {"enabled": False}, "safety": {"pii": {"answers": ["*"]}}})
        redacting = redacting.with_root(root)
        arms: dict[str, tuple[Settings, Redactor | None]] = {
            "none": (plain, None),
            "patterns": (redacting, PatternRedactor()),
        }
        try:
            arms["presidio"] = (redacting, presidio_redactor())
        except ConfigError:
            print("presidio not installed: its arm is skipped")
        for q in DEMO_QUESTIONS:
            t.ask(q)  # warm: the sentences of every question's passages embedded once
        ms: dict[str, list[float]] = {k: [] for k in arms}
        names = list(arms)
        for i in range(args.asks):
            q = DEMO_QUESTIONS[i % len(DEMO_QUESTIONS)]
            for name in names[i % len(names) :] + names[: i % len(names)]:  # each arm first in turn
                t.settings, t._redactor = arms[name]  # one Tether: one ONNX session, one set of caches
                t0 = time.perf_counter()
                t.ask(q)
                ms[name].append((time.perf_counter() - t0) * 1000)
        for name, v in ms.items():
            v.sort()
            print(f"ask, {name:9} p50 {statistics.median(v):7.1f} ms   p95 {v[int(0.95 * len(v)) - 1]:7.1f} ms")
        t.close()
        took: dict[str, list[float]] = {"plain": [], "redact_pii: ['*']": []}
        for i in range(args.ingests):
            for name in took:
                where = root / f"ingest-{i}-{len(took[name])}-{name[:5]}"
                where.mkdir()
                t = _tether(where, ingest={"redact_pii": ["*"]} if name != "plain" else {}, index={"path": "index.db"})
                t0 = time.perf_counter()
                t.ingest([root / "corpus"])
                took[name].append(time.perf_counter() - t0)
                t.close()
        for name, v in took.items():
            print(f"ingest, {name:18} best {min(v):6.2f} s of {len(v)}")


if __name__ == "__main__":
    main()
