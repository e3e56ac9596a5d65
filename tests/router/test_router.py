"""The router: trained from real eval runs of each tier, it picks where a request starts in the cascade, says why in
the trace, yields to routing.rules, and refuses clearly when its file or settings are wrong."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tether import Tether
from tether.config import default_yaml, load_settings
from tether.contracts import Answer
from tether.errors import ConfigError, DataError, ModelError
from tether.router import REFUSE, choose

DOCS = {
    "travel.md": "# Travel\n\nThe daily meal allowance is 35 euros in Porto and 40 euros in Lisbon.\n\n"
    "Train tickets are booked through the travel desk at least five days ahead.\n",
    "leave.md": "# Leave\n\nEmployees receive 25 days of annual leave per calendar year.\n\n"
    "Unused leave of up to five days may be carried into the next year.\n",
    "it.md": "# IT\n\nLaptops are replaced every four years by the IT service desk.\n\n"
    "Passwords must be changed every 90 days and must hold at least 12 characters.\n",
    "expenses.md": "# Expenses\n\nExpense claims are approved by the line manager within ten working days.\n\n"
    "Receipts older than three months are not reimbursed.\n",
}
CASES = [
    ("meal_porto", "What is the daily meal allowance in Porto?", "35 euros"),
    ("meal_lisbon", "How much is the meal allowance in Lisbon?", "40 euros"),
    ("train_booking", "How far ahead must train tickets be booked?", "five days ahead"),
    ("leave_days", "How many days of annual leave do employees receive?", "25 days"),
    ("carry_over", "How much unused leave can be carried into the next year?", "up to five days"),
    ("laptop", "How often are laptops replaced?", "every four years"),
    ("password_change", "How often must passwords be changed?", "every 90 days"),
    ("password_length", "How many characters must a password hold?", "12 characters"),
    ("claims", "Who approves expense claims?", "line manager"),
    ("receipts", "Which receipts are not reimbursed?", "older than three months"),
]
UNANSWERABLE = [
    ("airline", "Which airline flies to Porto most often?"),
    ("parking", "Where can employees park their cars?"),
    ("pension", "What is the company's pension contribution rate?"),
    ("canteen", "What time does the canteen open?"),
]


def _project(root: Path, routing: str) -> Path:
    (root / "docs").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    yaml = re.sub(r"routing:\n  cascade: \[\][^\n]*\n", lambda _: "routing:\n" + routing, default_yaml())
    assert routing in yaml
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    lines = []
    for cid, q, must in CASES:
        lines.append(f"- id: {cid}\n  input: {{user: {json.dumps(q)}}}\n  expected: {{must_include: [{must!r}]}}\n")
    for cid, q in UNANSWERABLE:
        lines.append(f"- id: {cid}\n  input: {{user: {json.dumps(q)}}}\n  expect_abstain: true\n")
    (root / "cases.yaml").write_text("".join(lines), encoding="utf-8")
    return root / "tether.yaml"


def _tether(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _route(a: Answer) -> dict[str, object]:
    return next(e for e in a.trace if e.stage == "route").detail


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("routed")
    cfg = _project(root, "  cascade: [extractive-fast, extractive]\n")
    Tether.open(cfg).ingest([root / "docs"])
    done = _tether("route", "train", "cases.yaml", "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert Path(report["path"]) == root / ".tether" / "router.json" and 0 < report["min_pass"] <= 1
    m = report["metrics"]
    assert m["questions"] == len(CASES) + len(UNANSWERABLE)
    assert {"alone_extractive-fast_pass_rate", "alone_extractive_pass_rate", "cv_pass_rate"} <= set(m)
    # the runs it learned from are ordinary stored eval runs, one per tier
    runs = json.loads(_tether("eval", "runs", "--json", cwd=root).stdout)
    assert len(runs) == 2
    return root


def test_training_writes_a_router_whose_decision_and_reason_are_in_the_trace(trained: Path) -> None:
    cfg = trained / "tether.yaml"
    cfg.write_text(cfg.read_text().replace("  router: null", "  router: .tether/router.json"), encoding="utf-8")
    t = Tether.open(cfg)
    for q in ("What is the daily meal allowance in Porto?", "Which airline flies to Porto most often?"):
        a = t.ask(q)
        r = _route(a)
        router = r["router"]
        assert isinstance(router, dict)
        assert router["choice"] in ("extractive-fast", "extractive", REFUSE) and router["reason"]
        assert set(router["p"]) == {"extractive-fast", "extractive", REFUSE}
        assert {"top_score", "probe_support", "past_extractive"} <= set(router["features"])
        tried = [x["tier"] for x in r["tried"]]  # type: ignore[union-attr]
        assert router["choice"] == REFUSE or tried[0] == router["choice"]
    assert not t.ask("What is the daily meal allowance in Porto?").abstained
    assert t.ask("Which airline flies to Porto most often?").abstained
    explained = _tether("route", "explain", "How often are laptops replaced?", "--json", cwd=trained)
    assert explained.returncode == 0 and json.loads(explained.stdout)["choice"] in ("extractive-fast", "extractive")


def test_rules_decide_before_the_router_and_a_refusal_says_so(trained: Path) -> None:
    cfg = trained / "tether.yaml"
    text = cfg.read_text().replace("  router: null", "  router: .tether/router.json")
    text = text.replace(
        "  rules: []",
        "  rules:\n"
        "    - {when: {matches: 'airline|canteen'}, use: refuse, reason: travel vendors are not discussed}\n"
        "    - {when: {type: [number]}, use: extractive, reason: numbers need the reader}\n",
    )
    (trained / "rules.yaml").write_text(text, encoding="utf-8")
    t = Tether.open(trained / "rules.yaml")
    a = t.ask("Which airline flies to Porto most often?")
    router = _route(a)["router"]
    assert isinstance(router, dict)
    assert a.abstained and router["choice"] == REFUSE and router["rule"] == 0
    assert "travel vendors are not discussed" in router["reason"] and "routing.rules[0]" in a.reason
    b = t.ask("How many days of annual leave do employees receive?")
    r = _route(b)
    assert r["router"]["rule"] == 1 and [x["tier"] for x in r["tried"]][0] == "extractive"  # type: ignore[index]
    assert not b.abstained and "25 days" in b.text


def test_a_router_for_other_tiers_or_a_broken_file_is_refused_with_a_clear_error(trained: Path) -> None:
    base = (trained / "tether.yaml").read_text().replace("  router: null", "  router: .tether/router.json")
    (trained / "other.yaml").write_text(
        base.replace("  cascade: [extractive-fast, extractive]", "  cascade: [extractive]"), encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="trained for tier.*extractive-fast"):
        Tether.open(trained / "other.yaml").ask("How often are laptops replaced?")
    (trained / "broken.json").write_text('{"tiers": ["extractive"], "models": 3}', encoding="utf-8")
    (trained / "broken.yaml").write_text(base.replace(".tether/router.json", "broken.json"), encoding="utf-8")
    with pytest.raises(ModelError, match="cannot load the router"):
        Tether.open(trained / "broken.yaml").ask("How often are laptops replaced?")
    bad = _tether("route", "train", "--run", "extractive=latest", cwd=trained)
    assert bad.returncode != 0 and "missing: extractive-fast" in bad.stderr and "Traceback" not in bad.stderr
    worse = _tether("route", "train", "--run", "nonsense", cwd=trained)
    assert worse.returncode != 0 and "write TIER=RUN" in worse.stderr


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ("  cascade: [extractive]\n  rules: [{use: large}]\n", r"routing.rules\[0\].use: 'large' is not a tier"),
        ("  cascade: []\n  router: r.json\n", "name them there"),
        ("  cascade: [extractive]\n  rules: [{when: {matches: '(unclosed'}, use: refuse}]\n", "not a regular"),
        ("  cascade: [extractive]\n  rules: [{when: {tpye: [who]}, use: refuse}]\n", "tpye"),
        ("  cascade: [extractive]\n  rules: [{when: {type: [why]}, use: refuse}]\n", "type"),
        ("  cascade: [extractive]\n  min_pass: high\n", "min_pass"),
    ],
)
def test_bad_routing_settings_name_what_is_wrong(tmp_path: Path, routing: str, message: str) -> None:
    yaml = default_yaml()
    start = yaml.index("routing:\n")
    end = yaml.index("\nbudgets:")
    (tmp_path / "tether.yaml").write_text(yaml[:start] + "routing:\n" + routing + yaml[end:], encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path / "tether.yaml")


def test_choose_starts_at_the_cheapest_likely_tier_and_refuses_only_when_that_is_likelier_right() -> None:
    cascade = ["fast", "slow", "model"]
    assert choose({"fast": 0.9, "slow": 0.95, "model": 0.99, REFUSE: 0.1}, cascade, 0.8).choice == "fast"
    assert choose({"fast": 0.3, "slow": 0.85, "model": 0.99, REFUSE: 0.1}, cascade, 0.8).choice == "slow"
    assert choose({"fast": 0.1, "slow": 0.2, "model": 0.3, REFUSE: 0.7}, cascade, 0.8).choice == REFUSE
    d = choose({"fast": 0.1, "slow": 0.5, "model": 0.3, REFUSE: 0.2}, cascade, 0.8)
    assert d.choice == "slow" and "likeliest" in d.reason
    # a tier the router was not trained for is left to the cascade's escalation, never chosen blind
    assert choose({"slow": 0.9, REFUSE: 0.0}, cascade, 0.8).choice == "slow"
    assert choose({REFUSE: 0.9}, cascade, 0.8).choice == "fast"


def test_too_few_questions_to_learn_from_is_an_error(tmp_path: Path) -> None:
    from tether.evals._results import CaseResult, RunReport, RunSummary, TurnResult
    from tether.router._train import examples_from_runs

    def run(ids: list[str]) -> RunReport:
        results = [CaseResult(case_id=i, turns=[TurnResult(question="q")]) for i in ids]
        summary = RunSummary.model_validate(
            {
                "run_id": "r",
                "created": "2026-12-07T00:00:00",
                "cases_path": "c",
                "config_hash": "h",
                "models": {},
                "judge": "offline",
                "repeats": 1,
                "cases": 1,
                "passed": 0,
                "errors": 0,
                "pass_rate": 0.0,
                "pass_at_n": 0.0,
                "pass_all_n": 0.0,
            }  # fmt: skip
        )
        return RunReport(summary=summary, results=results)

    with pytest.raises(DataError, match="share no case id"):
        examples_from_runs({"a": run(["x"]), "b": run(["y"])}, {})
    with pytest.raises(DataError, match="no eval runs"):
        examples_from_runs({}, {})


def test_escalation_after_an_abstention_goes_only_where_an_answer_is_likelier_right_than_the_abstention() -> None:
    from tether.router import worth_escalating
    from tether.router._train import Example, simulate

    p = {"fast": 0.6, "slow": 0.4, "model": 0.1, REFUSE: 0.3}
    assert worth_escalating(p, "slow") and not worth_escalating(p, "model")
    assert worth_escalating({}, "model") and worth_escalating({"model": 0.1}, "model")  # a rule decided: as before
    ex = Example(
        "q", "q", {"fast": False, "slow": False, "model": True}, {"fast": True, "slow": True, "model": False},
        {"fast": 10.0, "slow": 200.0, "model": 9000.0}, {"fast": 0.0, "slow": 0.0, "model": 0.01}, probe_ms=10.0,
    )  # fmt: skip
    assert simulate("fast", ex, ["fast", "slow", "model"]) == (True, 9220.0, 0.01)  # the plain cascade: all three
    assert simulate("fast", ex, ["fast", "slow", "model"], p) == (False, 220.0, 0.0)  # the model was not worth it
