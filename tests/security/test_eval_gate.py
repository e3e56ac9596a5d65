"""Red team: the eval CI gate cannot be fooled.

One test per attack: an empty baseline, renamed case ids, a real regression too small for McNemar,
`--fail-on-regression` without a baseline, a case that checks nothing, a judge that trickles a byte at a
time past every deadline, and a case whose code raises something unexpected.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tether import Tether
from tether.config import Settings
from tether.contracts import Answer
from tether.errors import DataError
from tether.evals import (
    CaseResult,
    EvalCase,
    EvalRunner,
    RunOptions,
    RunReport,
    RunSummary,
    Score,
    TurnResult,
    compare_runs,
    load_cases,
)
from tether.evals._llm_judge import LLMJudge
from tether.models._generator import OpenAICompatGenerator

FACTS = [
    ("The Orinoco ferry leaves the north pier at seven.", "north pier"),
    ("Badge renewals are handled by the security desk on floor two.", "security desk"),
    ("The staff canteen serves lentil soup every Thursday.", "lentil soup"),
]


# -- helpers ------------------------------------------------------------------------------------------------


def _cases_yaml(path: Path, ids: list[str], *, break_first: bool = False, flaky_first: bool = False) -> Path:
    docs = json.dumps([f for f, _ in FACTS])
    parts = []
    for i, (cid, (_, phrase)) in enumerate(zip(ids, FACTS, strict=True)):
        want = "the south gate" if break_first and i == 0 else phrase
        flaky = "  flaky: true\n" if flaky_first and i == 0 else ""
        parts.append(
            f"- id: {cid}\n  input:\n    user: {json.dumps('Tell me about ' + phrase)}\n    context_docs: {docs}\n"
            f"  expected:\n    must_include: [{json.dumps(want)}]\n{flaky}"
        )
    path.write_text("".join(parts), encoding="utf-8")
    return path


def _tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _config(tmp_path: Path) -> Path:
    p = tmp_path / "tether.yaml"
    p.write_text("answer:\n  threshold: 0.0\n", encoding="utf-8")
    return p


def _summary(run_id: str, n: int) -> RunSummary:
    return RunSummary(
        run_id=run_id,
        created=datetime.now(UTC),
        cases_path="cases",
        config_hash="x",
        models={},
        judge="offline",
        repeats=1,
        cases=n,
        passed=0,
        errors=0,
        pass_rate=0.0,
        pass_at_n=0.0,
        pass_all_n=0.0,
    )


def _result(cid: str, passed: bool, flaky: bool = False) -> CaseResult:
    score = Score(name="must_include", scorer="rule_based", passed=passed)
    return CaseResult(case_id=cid, flaky=flaky, turns=[TurnResult(question="q", scores=[score])])


def _report(run_id: str, outcomes: dict[str, bool], flaky: frozenset[str] = frozenset()) -> RunReport:
    return RunReport(
        summary=_summary(run_id, len(outcomes)), results=[_result(c, p, c in flaky) for c, p in outcomes.items()]
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real committed-style baseline: every case passes."""
    root = tmp_path_factory.mktemp("gate")
    cases = _cases_yaml(root / "cases.yaml", ["ferry", "badge", "soup"])
    out = root / "baseline.json"
    proc = _tether(root, "eval", str(cases), "-c", str(_config(root)), "--write-baseline", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["pass_rate"] == 1.0
    return out


# -- the baseline ---------------------------------------------------------------------------------------------


def test_a_baseline_with_no_results_is_an_error_not_a_pass(tmp_path: Path, baseline: Path) -> None:
    empty = tmp_path / "empty.json"
    data = json.loads(baseline.read_text())
    data["results"] = []
    empty.write_text(json.dumps(data))
    cases = _cases_yaml(tmp_path / "cases.yaml", ["ferry", "badge", "soup"])
    proc = _tether(
        tmp_path, "eval", str(cases), "-c", str(_config(tmp_path)), "--baseline", str(empty), "--fail-on-regression"
    )
    _one_line_error(proc, "holds no case results")


def test_a_baseline_whose_ids_were_all_renamed_is_an_error(tmp_path: Path, baseline: Path) -> None:
    cases = _cases_yaml(tmp_path / "cases.yaml", ["ferry_v2", "badge_v2", "soup_v2"])
    proc = _tether(
        tmp_path, "eval", str(cases), "-c", str(_config(tmp_path)), "--baseline", str(baseline), "--fail-on-regression"
    )
    _one_line_error(proc, "none of its 3 cases")


def test_renaming_one_case_away_from_the_baseline_fails_the_gate(tmp_path: Path, baseline: Path) -> None:
    cases = _cases_yaml(tmp_path / "cases.yaml", ["ferry_renamed", "badge", "soup"])
    proc = _tether(
        tmp_path, "eval", str(cases), "-c", str(_config(tmp_path)), "--baseline", str(baseline), "--fail-on-regression"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "missing from this run" in proc.stderr and "ferry" in proc.stderr


def test_compare_refuses_runs_with_nothing_in_common() -> None:
    with pytest.raises(DataError, match="share no case id"):
        compare_runs(_report("a", {"x": True}), _report("b", {"y": True}))
    with pytest.raises(DataError, match="no case results"):
        compare_runs(_report("a", {}), _report("b", {"y": True}))


# -- regressions too small for the test -----------------------------------------------------------------------


def test_five_of_twenty_cases_regressing_fails_the_gate_though_mcnemar_says_p_0_0625() -> None:
    before = {f"c{i}": True for i in range(20)}
    after = {c: i >= 5 for i, c in enumerate(before)}
    cmp = compare_runs(_report("a", before), _report("b", after))
    assert cmp.p_value == pytest.approx(0.0625) and not cmp.significant
    assert cmp.regression, "a 100% -> 75% drop passed the gate"
    assert cmp.regressions == 5 and cmp.pass_rate_drop == pytest.approx(0.25)
    assert any("5 case(s) passed in the baseline and fail now" in r for r in cmp.reasons)
    assert not compare_runs(_report("a", before), _report("b", after), max_regressions=5).regression


def test_cases_marked_flaky_do_not_count_against_the_tolerance_but_are_reported() -> None:
    before = {"steady": True, "wobbly": True}
    after = {"steady": True, "wobbly": False}
    cmp = compare_runs(_report("a", before), _report("b", after, flaky=frozenset({"wobbly"})))
    assert not cmp.regression and cmp.broken == ["wobbly"] and cmp.broken_flaky == ["wobbly"]
    assert compare_runs(_report("a", before), _report("b", after)).regression


def test_one_real_regression_exits_1_on_the_cli_unless_the_case_is_marked_flaky(tmp_path: Path, baseline: Path) -> None:
    cases = _cases_yaml(tmp_path / "cases.yaml", ["ferry", "badge", "soup"], break_first=True)
    args = ["-c", str(_config(tmp_path)), "--baseline", str(baseline), "--fail-on-regression"]
    proc = _tether(tmp_path, "eval", str(cases), *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 case(s) passed in the baseline and fail now" in proc.stderr
    assert "drop +0.333" in proc.stdout  # the pass-rate drop is printed beside the test
    flaky = _cases_yaml(tmp_path / "flaky.yaml", ["ferry", "badge", "soup"], break_first=True, flaky_first=True)
    proc = _tether(tmp_path, "eval", str(flaky), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(flaky)" in proc.stdout


def test_fail_on_regression_without_a_baseline_is_an_error(tmp_path: Path) -> None:
    cases = _cases_yaml(tmp_path / "cases.yaml", ["ferry", "badge", "soup"])
    proc = _tether(tmp_path, "eval", str(cases), "--fail-on-regression")
    _one_line_error(proc, "--fail-on-regression needs --baseline")


# -- cases that check nothing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "id: nothing\ninput: {user: q}\n",
        "id: nothing\ninput: {user: q}\nexpected: {}\n",
        "id: nothing\ninput: {user: q}\nscoring: {refusal: rule_based}\n",  # rule_based without expect_abstain
        "id: nothing\ninput:\n  turns:\n    - user: a\n    - user: b\n",
        "id: nothing\ninput:\n  turns:\n    - user: a\nexpected: {must_include: [x]}\n",  # ignored on a multi-turn case
    ],
)
def test_a_case_without_expectations_is_an_error_naming_file_and_case(tmp_path: Path, body: str) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError, match=r"cases\.yaml: case nothing: .*expectations") as e:
        load_cases(path)
    assert str(path) in str(e.value)


def test_a_result_where_no_check_applied_does_not_pass() -> None:
    unchecked = CaseResult(case_id="x", turns=[TurnResult(question="q", scores=[])])
    assert not unchecked.passed
    assert "no check applied" in unchecked.explain()


# -- deadlines ------------------------------------------------------------------------------------------------


class _Trickler:
    """A model server that answers with one byte every 0.2 s, forever: no read ever times out."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                while not owner.stop.is_set():
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        return
                    owner.stop.wait(0.2)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trickler() -> Iterator[_Trickler]:
    t = _Trickler()
    yield t
    t.close()


@pytest.fixture(scope="module")
def answering(tmp_path_factory: pytest.TempPathFactory) -> Tether:
    return Tether(Settings.model_validate({"answer": {"threshold": 0.0}}).with_root(tmp_path_factory.mktemp("t")))


def _judged_cases(n: int) -> list[EvalCase]:
    docs = [f for f, _ in FACTS]
    return [
        EvalCase.model_validate(
            {
                "id": f"judged_{i}",
                "input": {"user": f"Tell me about {FACTS[i % len(FACTS)][1]}", "context_docs": docs},
                "scoring": {"faithfulness": "llm_judge"},
            }
        )
        for i in range(n)
    ]


def _run_bounded(runner: EvalRunner, cases: list[EvalCase], limit: float) -> tuple[RunReport | None, float]:
    box: list[RunReport] = []
    t0 = time.monotonic()
    th = threading.Thread(target=lambda: box.append(runner.run(cases, "cases")), daemon=True)
    th.start()
    th.join(limit)
    return (box[0] if box else None), time.monotonic() - t0


def test_a_judge_trickling_a_byte_at_a_time_cannot_stall_the_run(answering: Tether, trickler: _Trickler) -> None:
    cases = _judged_cases(4)
    judge = LLMJudge(OpenAICompatGenerator(trickler.url, "judge", timeout_s=5.0, retries=0))
    runner = EvalRunner(answering, options=RunOptions(concurrency=2, timeout_s=1.5, use_cache=False), judge=judge)
    runner._target(cases[0]).ask("warm up")  # build the context index and load the models before the clock runs
    report, took = _run_bounded(runner, cases, limit=30)
    assert report is not None, "the run stalled: queued cases never started while stuck ones held every worker"
    assert took < 15
    assert trickler.requests == 4  # every case started (queued ones too) and reached the judge
    assert [r.error for r in report.results] == ["timed out after 1.5s (abandoned)"] * 4
    assert report.summary.errors == 4 and report.summary.passed == 0


def test_a_case_deadline_starts_when_the_case_starts_not_when_the_run_does(answering: Tether) -> None:
    cases = _judged_cases(4)
    runner = EvalRunner(answering, options=RunOptions(concurrency=1, timeout_s=2.0, use_cache=False))
    target = runner._target(cases[0])
    real = target.ask

    def slowish(question: str, **kw: object) -> Answer:
        time.sleep(0.8)  # 4 cases x 0.8 s in a row: past 2 s in all, but each well within its own deadline
        return real(question)

    target.ask = slowish  # type: ignore[method-assign]
    try:
        report, _ = _run_bounded(runner, cases, limit=60)
    finally:
        del target.ask
    assert report is not None
    assert [r.error for r in report.results] == [None] * 4


def test_an_unexpected_exception_in_one_case_is_that_case_s_error_not_a_crashed_run(answering: Tether) -> None:
    cases = _judged_cases(3)
    runner = EvalRunner(answering, options=RunOptions(concurrency=2, use_cache=False))
    target = runner._target(cases[0])
    real = target.ask

    def broken(question: str, **kw: object) -> Answer:
        if "security desk" in question:
            raise KeyError("chunk 17")  # a bug deep in a library: not a TetherError
        return real(question)

    target.ask = broken  # type: ignore[method-assign]
    try:
        report, _ = _run_bounded(runner, cases, limit=60)
    finally:
        del target.ask
    assert report is not None
    by_id = {r.case_id: r for r in report.results}
    assert by_id["judged_1"].error == "unexpected KeyError: 'chunk 17'"
    assert by_id["judged_0"].passed and by_id["judged_2"].passed
