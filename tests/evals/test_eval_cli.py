"""`tether eval` end to end: real indexes, stored runs, the HTML report, compare, and the CI gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FACTS = [
    ("The Orinoco ferry leaves the north pier at seven.", "north pier"),
    ("Badge renewals are handled by the security desk on floor two.", "security desk"),
    ("Quarterly reports are due on the fifth working day.", "fifth working day"),
    ("The staff canteen serves lentil soup every Thursday.", "lentil soup"),
    ("Laptop repairs take up to four business days.", "four business days"),
    ("Visitors must sign the register at reception.", "sign the register"),
    ("The library closes at nine in the evening.", "nine in the evening"),
]


def cases_file(tmp_path: Path) -> Path:
    lines = []
    for i, (fact, phrase) in enumerate(FACTS):
        lines.append(
            f"- id: fact_{i}\n  tags: [answerable]\n  input:\n    user: {json.dumps('Tell me about ' + phrase)}\n"
            f"    context_docs: [{json.dumps(fact)}]\n  expected:\n    must_include: [{json.dumps(phrase)}]\n"
        )
    p = tmp_path / "cases.yaml"
    p.write_text("".join(lines), encoding="utf-8")
    return p


def tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def config(tmp_path: Path, name: str, threshold: float) -> Path:
    p = tmp_path / name
    p.write_text(f"answer:\n  threshold: {threshold}\n", encoding="utf-8")
    return p


def test_runs_are_stored_reported_cached_and_gated(tmp_path: Path) -> None:
    cases = cases_file(tmp_path)
    answer_all = config(tmp_path, "answer_all.yaml", 0.0)
    abstain_all = config(tmp_path, "abstain_all.yaml", 1.0)

    first = tether(tmp_path, "eval", str(cases), "-c", str(answer_all), "--json")
    assert first.returncode == 0, first.stderr
    run_a = json.loads(first.stdout)
    assert run_a["summary"]["cases"] == len(FACTS)
    assert run_a["summary"]["pass_rate"] == 1.0, [r["turns"][0]["scores"] for r in run_a["results"]]
    assert run_a["summary"]["judge"] == "offline-support-checker"
    html = Path(run_a["report"]).read_text()
    assert "fact_0" in html and "<svg" in html and "north pier" in html

    again = json.loads(tether(tmp_path, "eval", str(cases), "-c", str(answer_all), "--json").stdout)
    assert again["summary"]["cached_turns"] == len(FACTS)  # unchanged cases cost nothing the second time

    worse = tether(
        tmp_path,
        "eval",
        str(cases),
        "-c",
        str(abstain_all),
        "--baseline",
        run_a["summary"]["run_id"],
        "--fail-on-regression",
        "--json",
    )
    assert worse.returncode == 1, worse.stderr
    comparison = json.loads(worse.stdout)["comparison"]
    assert comparison["regression"] and len(comparison["broken"]) == len(FACTS)
    assert comparison["p_value"] < 0.05

    same = tether(
        tmp_path,
        "eval",
        str(cases),
        "-c",
        str(answer_all),
        "--baseline",
        run_a["summary"]["run_id"],
        "--fail-on-regression",
    )
    assert same.returncode == 0, same.stdout + same.stderr

    runs = json.loads(tether(tmp_path, "eval", "runs", "-c", str(answer_all), "--json").stdout)
    assert len(runs) == 4
    cmp = json.loads(tether(tmp_path, "eval", "compare", "previous", "latest", "-c", str(answer_all), "--json").stdout)
    assert set(cmp["fixed"]) == {f"fact_{i}" for i in range(len(FACTS))}


def test_dry_run_counts_without_asking(tmp_path: Path) -> None:
    cases = cases_file(tmp_path)
    proc = tether(tmp_path, "eval", str(cases), "--dry-run", "--repeat", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)
    assert est["questions"] == 3 * len(FACTS) and est["llm_calls"] == 0
    assert not (tmp_path / ".tether" / "reports").exists()


def test_a_bad_case_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\ninput: {user: q}\nexpected: {must_inclde: [a]}\n")
    proc = tether(tmp_path, "eval", str(bad))
    assert proc.returncode == 2
    assert "case x: expected.must_inclde: unknown field" in proc.stderr
    assert "Traceback" not in proc.stderr
