"""`tether calibrate`: the operating curve of the support threshold on a team's own cases, and the point chosen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tether.errors import DataError
from tether.evals._calibrate import CaseOutcome, calibrate, point


def outcome(cid: str, answerable: bool, support: float, passes: bool = True) -> CaseOutcome:
    return CaseOutcome(case_id=cid, answerable=answerable, support=support, answer_passes=passes and answerable)


OUTCOMES = [
    outcome("a1", True, 0.9),
    outcome("a2", True, 0.8),
    outcome("a3", True, 0.7, passes=False),  # answered, but the answer fails its checks
    outcome("a4", True, 0.3),
    outcome("u1", False, 0.6),
    outcome("u2", False, 0.2),
]


def test_a_point_counts_right_answers_and_abstentions() -> None:
    p = point(OUTCOMES, 0.65)
    assert (p.answered, p.answered_right, p.abstained_unanswerable) == (0.75, 0.5, 1.0)
    assert p.precision == pytest.approx(2 / 3) and p.balanced == 0.75


def test_balanced_picks_the_best_balanced_accuracy_and_on_a_tie_the_cautious_side() -> None:
    cal = calibrate(OUTCOMES, 0.5)
    # 0.65 and 0.75 both score 0.75 (a3's answer is wrong either way): the higher threshold wins the tie
    assert point(OUTCOMES, 0.65).balanced == point(OUTCOMES, 0.75).balanced == 0.75
    assert cal.chosen is not None and cal.chosen.threshold == pytest.approx(0.75)
    assert cal.chosen.balanced == max(p.balanced for p in cal.curve)
    assert cal.current.threshold == 0.5 and cal.current.balanced == pytest.approx(0.5)
    answered = [p.answered for p in cal.curve]
    assert answered == sorted(answered, reverse=True)  # a higher threshold never answers more


def test_precision_picks_the_lowest_threshold_whose_answers_are_precise_enough() -> None:
    cal = calibrate(OUTCOMES, 0.5, objective="precision", min_precision=0.9)
    assert cal.chosen is not None and cal.chosen.threshold == pytest.approx(0.75) and cal.chosen.precision == 1.0
    assert calibrate(OUTCOMES, 0.5, objective="precision", min_precision=1.0).chosen is not None
    never = [outcome("a", True, 0.9, passes=False), outcome("u", False, 0.1)]
    assert calibrate(never, 0.5, objective="precision").chosen is None


def test_without_both_kinds_of_case_there_is_nothing_to_calibrate() -> None:
    with pytest.raises(DataError, match="answerable and unanswerable"):
        calibrate([o for o in OUTCOMES if o.answerable], 0.5)


CASES = """
- id: car_rate
  input: {user: "What is the rate for using a private car?"}
  expected: {must_include: ["0.32 EUR per km"], must_cite: ["travel.md"]}
- id: porto_hotel
  input: {user: "What is the hotel cap in Porto?"}
  expected: {must_include: ["110 EUR"], must_cite: ["travel.md"]}
- id: leave_days
  input: {user: "How many days of paid annual leave do full-time employees get?"}
  expected: {must_include: ["25 days"], expect_abstain: false}
- id: madrid_hotel
  input: {user: "What is the hotel cap in Madrid?"}
  expect_abstain: true
- id: boiling
  input: {user: "What is the boiling point of mercury?"}
  expect_abstain: true
- id: chat
  input: {turns: [{user: "What is the hotel cap in Porto?", expected: {must_include: ["110"]}}]}
"""

TRAVEL = """# Travel policy

| Item | Rate |
|---|---|
| Private car | 0.32 EUR per km |
| Hotel cap (Porto) | 110 EUR per night |

Full-time employees receive 25 days of paid annual leave per calendar year.
"""


def test_the_cli_prints_the_curve_and_the_threshold_to_set(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "travel.md").write_text(TRAVEL, encoding="utf-8")
    (tmp_path / "cases.yaml").write_text(CASES, encoding="utf-8")
    tether = [sys.executable, "-m", "tether"]
    assert subprocess.run([*tether, "init"], cwd=tmp_path, env=env, capture_output=True).returncode == 0
    ing = subprocess.run([*tether, "ingest", "docs"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ing.returncode == 0, ing.stderr
    run = subprocess.run(
        [*tether, "calibrate", "cases.yaml", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert (data["answerable"], data["unanswerable"]) == (3, 2)
    assert data["skipped"] == ["chat: multi-turn"]
    assert {o["case_id"] for o in data["outcomes"]} == {
        "car_rate",
        "porto_hotel",
        "leave_days",
        "madrid_hotel",
        "boiling",
    }
    assert data["chosen"]["balanced"] == max(p["balanced"] for p in data["curve"])
    text = subprocess.run([*tether, "calibrate", "cases.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert text.returncode == 0 and "threshold:" in text.stdout and "Traceback" not in text.stderr
    bad = subprocess.run(
        [*tether, "calibrate", "cases.yaml", "--objective", "recall"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "--objective" in bad.stderr
