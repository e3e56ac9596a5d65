"""The project's own CI gate: the golden set over the README demo corpus must not regress.

Builds the demo index from pydoc_data (CPython's reference manual), runs evals/golden and compares
with the committed baseline (evals/golden-baseline.json) by McNemar's exact test.
Refresh the baseline after an intended change with:
    tether eval evals/golden -c .tether/demo/tether.yaml --write-baseline evals/golden-baseline.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tether import Tether
from tether._demo import export_python_topics
from tether.config import default_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_golden_set_does_not_regress_against_the_committed_baseline(tmp_path: Path) -> None:
    export_python_topics(tmp_path / "corpus")
    cfg = tmp_path / "tether.yaml"
    cfg.write_text(default_yaml(), encoding="utf-8")
    with Tether.open(cfg) as t:
        t.ingest([tmp_path / "corpus"])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tether",
            "eval",
            str(ROOT / "evals" / "golden"),
            "-c",
            str(cfg),
            "--baseline",
            str(ROOT / "evals" / "golden-baseline.json"),
            "--fail-on-regression",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = json.loads(proc.stdout)
    assert run["summary"]["cases"] >= 60
    assert run["summary"]["scorer_errors"] == 0
    assert not run["comparison"]["regression"]
