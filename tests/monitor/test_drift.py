"""Drift tests and the `tether monitor report` command: real embeddings, a real trace store, the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tether import Tether
from tether.monitor import drift_report, mmd_test, proportion_test


def _cloud(n: int, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 32)) + shift
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_mmd_tells_a_shifted_window_from_a_like_one() -> None:
    ref = _cloud(100, 0.0, 0)
    _, p_same = mmd_test(ref, _cloud(50, 0.0, 1), permutations=500)
    _, p_moved = mmd_test(ref, _cloud(50, 0.4, 2), permutations=500)
    assert p_same > 0.05 and p_moved < 0.01


def test_the_rate_tests_see_a_change_in_abstention() -> None:
    assert proportion_test(10, 100, 30, 50) < 0.001
    assert proportion_test(10, 100, 5, 50) > 0.5
    vecs = _cloud(150, 0.0, 3)
    abstained = [i % 10 == 0 for i in range(100)] + [i % 2 == 0 for i in range(50)]  # 10% -> 50%
    r = drift_report(vecs, abstained, [100.0] * 150, reference=100, window=50, seed=0)
    assert r.first_alarm is not None and r.first_alarm.reasons == ["abstention"]


def test_no_change_no_alarm_and_bad_setups_are_refused() -> None:
    vecs = _cloud(200, 0.0, 4)
    r = drift_report(vecs, [False] * 200, [100.0] * 200, reference=100, window=50, seed=0)
    assert r.first_alarm is None and len(r.windows) == 2
    with pytest.raises(ValueError, match="permutations cannot give a p-value below"):
        drift_report(vecs, [False] * 200, [1.0] * 200, reference=100, window=50, permutations=100)
    with pytest.raises(ValueError, match="at least 10"):
        drift_report(vecs[:15], [False] * 15, [1.0] * 15, reference=10, window=10)
    with pytest.raises(ValueError, match="same requests"):
        drift_report(vecs, [False], [1.0], reference=100, window=50)


TRAVEL = [
    f"How much is the {what} allowance for a trip to {city}?"
    for what in ("hotel", "meal", "taxi", "train", "per diem")
    for city in ("Lisbon", "Porto", "Berlin", "Madrid", "Oslo", "Rome")
]
PYTHON = [
    f"What does the {kw} statement do in Python {v}?"
    for kw in ("with", "yield", "global", "assert", "raise")
    for v in ("3.10", "3.11", "3.12")
]


def test_monitor_report_finds_a_new_topic_in_the_traces(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "travel.md").write_text("# Travel\n\nHotels are capped at 120 EUR a night in Lisbon.\n")
    (tmp_path / "tether.yaml").write_text("{}\n")
    t = Tether.open(tmp_path / "tether.yaml")
    t.ingest([tmp_path / "docs"])
    for q in TRAVEL + PYTHON[:15]:  # 30 travel questions, then a topic nobody asked about before
        t.ask(q)
    t.close()
    cmd = [sys.executable, "-m", "tether", "monitor", "report", "--reference", "20", "--window", "10", "--json"]
    got = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert got.returncode == 1, got.stderr
    report = json.loads(got.stdout)
    flags = [(w["start"], w["alarm"]) for w in report["windows"]]
    assert flags == [(20, False), (30, True)], flags  # travel stays quiet; the python window alarms
    assert "questions" in report["windows"][1]["reasons"]
    few = subprocess.run([*cmd[:-1], "--reference", "100"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert few.returncode == 2 and "needs at least 110" in few.stderr and "Traceback" not in few.stderr
