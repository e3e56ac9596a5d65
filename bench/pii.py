"""PII detection per entity type on presidio-research's synthetic set: Tether's pattern redactor beside Presidio.

Data: ../shared/data/pii_presidio_synth/synth_dataset_v2.json (1,500 sentences, 2,863 labelled spans, MIT,
synthetic). A predicted span is a true positive when it overlaps a gold span of the same type (Presidio's own
evaluator counts overlaps too); precision and recall per type, and the share of gold characters left in the clear
after redaction (any type) - what a trace or audit entry would still show.

Tether's redactor needs nothing. Presidio runs when the ``pii`` extra is installed (it is, with ``dev``): its
defaults, AnalyzerEngine with spaCy's small English model, built offline as ``safety.pii.engine: presidio`` does:

    python bench/pii.py                                   # both, side by side (patterns only without the extra)

Said plainly: the patterns were adjusted while looking at this set's misses and false alarms (phone formats,
12-digit cards, lower-case IBANs), so Tether's figures are on its development set; Presidio's are not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def _patterns() -> Any:
    """tether/safety/_pii.py loaded alone (it needs only the standard library), so a venv with Presidio and
    without Tether's dependencies can run this script."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "src" / "tether" / "safety" / "_pii.py"
    spec = importlib.util.spec_from_file_location("tether_pii", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tether_pii"] = module
    spec.loader.exec_module(module)
    return module


_pii = _patterns()
KINDS, PatternRedactor, PiiSpan = _pii.KINDS, _pii.PatternRedactor, _pii.PiiSpan

SHARED = Path(os.environ.get("TETHER_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# Presidio's labels -> the dataset's (the set labels some types differently)
_ALIASES = {"LOCATION": "GPE", "NRP": "NRP", "URL": "DOMAIN_NAME", "DATE_TIME": "DATE_TIME"}


def load() -> list[dict[str, Any]]:
    path = SHARED / "pii_presidio_synth" / "synth_dataset_v2.json"
    if not path.exists():
        sys.exit(f"missing {path}: the benchmark data lives in ../shared/data (or set TETHER_SHARED_DATA)")
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def presidio_finder() -> Any:
    """Presidio's analyzer with its default recognizers over the packaged spaCy model, offline (as
    ``safety.pii.engine: presidio`` builds it); None when the pii extra is not installed."""
    from tether.errors import ConfigError
    from tether.safety._presidio import _analyzer

    try:
        analyzer = _analyzer()
    except ConfigError:
        return None

    def find(text: str) -> list[Any]:
        return [
            PiiSpan(_ALIASES.get(r.entity_type, r.entity_type), r.start, r.end)
            for r in analyzer.analyze(text=text, language="en")
        ]

    return find


def score(rows: list[dict[str, Any]], find: Any) -> dict[str, Any]:
    gold_n: dict[str, int] = defaultdict(int)
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    gold_chars = left_chars = 0
    t0 = time.perf_counter()
    for r in rows:
        text = r["full_text"]
        gold = [PiiSpan(s["entity_type"], s["start_position"], s["end_position"]) for s in r["spans"]]
        pred = find(text)
        for p in pred:
            if any(g.kind == p.kind and p.start < g.end and g.start < p.end for g in gold):
                tp[p.kind] += 1
            else:
                fp[p.kind] += 1
        for g in gold:
            gold_n[g.kind] += 1
            if not any(g.kind == p.kind and p.start < g.end and g.start < p.end for p in pred):
                fn[g.kind] += 1
            covered = {i for p in pred for i in range(max(p.start, g.start), min(p.end, g.end))}
            gold_chars += g.end - g.start
            left_chars += g.end - g.start - len(covered)
    seconds = time.perf_counter() - t0
    kinds = sorted(set(tp) | set(fp) | set(gold_n))
    per = {}
    for k in kinds:
        p = tp[k] / (tp[k] + fp[k]) if tp[k] + fp[k] else 0.0
        rc = (gold_n[k] - fn[k]) / gold_n[k] if gold_n[k] else 0.0
        per[k] = {"precision": round(p, 3), "recall": round(rc, 3), "gold": gold_n[k], "predicted": tp[k] + fp[k]}
    return {
        "per_type": per,
        "gold_chars_left_in_clear": round(left_chars / max(gold_chars, 1), 4),
        "ms_per_sentence": round(1000 * seconds / len(rows), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = load()
    results = {"tether-patterns": score(rows, PatternRedactor().find)}
    presidio = presidio_finder()
    if presidio is not None:
        results["presidio-defaults"] = score(rows, presidio)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    names = list(results)
    kinds = sorted({k for r in results.values() for k in r["per_type"]})
    print(f"{len(rows)} sentences; P / R per type (gold count), overlap match\n")
    print(f"{'type':18}{'gold':>6}" + "".join(f"{n:>22}" for n in names))
    for k in kinds:
        gold = max(r["per_type"].get(k, {}).get("gold", 0) for r in results.values())
        cells = []
        for n in names:
            v = results[n]["per_type"].get(k)
            cells.append(f"{v['precision']:.2f} / {v['recall']:.2f}" if v else "-")
        mark = "" if k in KINDS else "  (names/places: a model's job)"
        print(f"{k:18}{gold:6}" + "".join(f"{c:>22}" for c in cells) + mark)
    print(f"{'chars left in clear':24}" + "".join(f"{results[n]['gold_chars_left_in_clear']:>22.3f}" for n in names))
    print(f"{'ms / sentence':24}" + "".join(f"{results[n]['ms_per_sentence']:>22.3f}" for n in names))


if __name__ == "__main__":
    main()
