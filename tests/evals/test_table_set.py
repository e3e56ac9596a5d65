"""The table-QA eval set (evals/tables): its cases are well formed without ../shared, and, where ../shared is
present, every expected cell really is in its table's row (and, slow, the set runs at least as well as today).

The tables themselves are never in the project: bench/table_qa.py builds the corpus from
../shared/data/bipia/table/test.jsonl at run time.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tether.evals import EvalCase, load_cases

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "evals" / "tables"
BENCH = ROOT / "bench" / "table_qa.py"
TABLES = ROOT.parent / "shared" / "data" / "bipia" / "table" / "test.jsonl"
_TAG = re.compile(r"^table:(\d{3})$")


@pytest.fixture(scope="module")
def cases() -> list[EvalCase]:
    return load_cases(CASES_DIR)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """bench/table_qa.py as a module (bench/ holds its _common import)."""
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("table_qa_under_test", BENCH)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH.parent))


def _table(case: EvalCase) -> int:
    found = [int(m.group(1)) for t in case.tags if (m := _TAG.match(t))]
    assert len(found) == 1, f"{case.id}: needs exactly one table:NNN tag, has {case.tags}"
    return found[0]


def _answerable(cases: list[EvalCase]) -> list[EvalCase]:
    return [c for c in cases if "table" in c.tags]


def _unanswerable(cases: list[EvalCase]) -> list[EvalCase]:
    return [c for c in cases if "table_unanswerable" in c.tags]


def test_the_set_has_enough_cases_with_unique_ids_and_one_kind_each(cases: list[EvalCase]) -> None:
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    assert len(_answerable(cases)) >= 60
    assert len(_unanswerable(cases)) >= 15
    # every case is one kind or the other, never both, never neither (a pass rate would miscount it)
    assert all(("table" in c.tags) != ("table_unanswerable" in c.tags) for c in cases)
    assert len({_table(c) for c in _answerable(cases)}) >= 15  # spread over many tables, not one easy one


def test_answerable_cases_expect_the_row_key_and_cell_from_their_own_table(cases: list[EvalCase]) -> None:
    for c in _answerable(cases):
        (step,) = c.steps()
        e = step.expected
        assert e.expect_abstain is False, c.id
        assert len(e.must_include) >= 2 and all(m.strip() for m in e.must_include), c.id  # row key + cell
        assert e.must_cite == [f"table_{_table(c):03d}"], c.id  # names the .md and the .csv rendering alike


def test_unanswerable_cases_only_expect_an_abstention(cases: list[EvalCase]) -> None:
    for c in _unanswerable(cases):
        (step,) = c.steps()
        e = step.expected
        assert e.expect_abstain is True, c.id
        assert not (e.must_include or e.must_cite), c.id  # nothing an abstention could satisfy
        assert {"missing_row", "missing_column"} & set(c.tags), c.id
    kinds = [t for c in _unanswerable(cases) for t in c.tags if t in ("missing_row", "missing_column")]
    assert kinds.count("missing_column") >= 5 and kinds.count("missing_row") >= 10


def test_every_table_a_case_names_is_one_the_bench_builds(cases: list[EvalCase], bench: ModuleType) -> None:
    assert {_table(c) for c in cases} <= set(bench.TITLES)
    bench.check_cases(cases)  # the bench's own guard passes on the committed set ...


def test_the_bench_refuses_a_case_citing_another_table(cases: list[EvalCase], bench: ModuleType) -> None:
    c = _answerable(cases)[0]
    wrong = c.model_copy(deep=True)
    wrong.expected.must_cite = ["table_999"]  # ... and stops on a case that cites a table it does not build
    with pytest.raises(SystemExit, match="must_cite"):
        bench.check_cases([wrong])
    untagged = c.model_copy(update={"tags": ["table"]})
    with pytest.raises(SystemExit, match="table:NNN"):
        bench.check_cases([untagged])


def test_corpus_files_keep_the_table_as_is_and_the_csv_keeps_every_cell(tmp_path: Path, bench: ModuleType) -> None:
    table = "| Name   | Score |\n| Ann, B | 1,200 |\n| Bo     | 7     |"
    index = next(iter(bench.TITLES))
    bench.write_corpus({index: table}, "md", tmp_path / "md")
    md = (tmp_path / "md" / f"table_{index:03d}.md").read_text(encoding="utf-8")
    assert md == f"# {bench.TITLES[index]}\n\n{table}\n"  # no separator line added, padding kept
    bench.write_corpus({index: table}, "csv", tmp_path / "csv")
    with (tmp_path / "csv" / f"table_{index:03d}.csv").open(encoding="utf-8", newline="") as f:
        assert list(csv.reader(f)) == [["Name", "Score"], ["Ann, B", "1,200"], ["Bo", "7"]]  # commas quoted


def test_the_bench_says_where_the_data_should_be_when_it_is_absent(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--data", str(tmp_path / "nowhere" / "test.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "missing" in proc.stderr and "nowhere" in proc.stderr and "shared/data" in proc.stderr
    assert "Traceback" not in proc.stderr


def _rows(index: int) -> list[list[str]]:
    line = TABLES.read_text(encoding="utf-8").splitlines()[index]
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in json.loads(line)["context"].splitlines()]


@pytest.mark.shared_data
def test_every_expected_cell_is_in_exactly_one_row_of_its_table(cases: list[EvalCase]) -> None:
    if not TABLES.exists():
        pytest.skip(f"{TABLES} is absent (the tables live in ../shared/data)")
    for c in _answerable(cases):
        key, *cells = c.steps()[0].expected.must_include
        rows = [r for r in _rows(_table(c))[1:] if any(key in x for x in r) and all(v in r for v in cells)]
        assert len(rows) == 1, f"{c.id}: {key!r} with {cells} matches {len(rows)} rows of table {_table(c)}"


@pytest.mark.shared_data
def test_missing_row_keys_are_in_no_table_of_the_set(cases: list[EvalCase], bench: ModuleType) -> None:
    if not TABLES.exists():
        pytest.skip(f"{TABLES} is absent (the tables live in ../shared/data)")
    text = " ".join(" ".join(" ".join(r) for r in _rows(i)) for i in bench.TITLES).lower()
    for word in ["St Mary", "Gelbard", "1945", "Finland", "7BU", "Luxor", "Shell", "Howard", "Vietnam", "Suárez"]:
        assert word.lower() not in text, word
    for word in ["Ishfaq", "Belmont", "Mexico", "Lights Out", "Fitzgerald", "tuition", "tonnage", "assists"]:
        assert word.lower() not in text, word


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_set_runs_at_least_as_well_as_when_it_was_written() -> None:
    if not TABLES.exists():
        pytest.skip(f"{TABLES} is absent (the tables live in ../shared/data)")
    proc = subprocess.run([sys.executable, str(BENCH), "--json"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout)["formats"]
    for fmt in ("md", "csv"):
        groups = figures[fmt]["groups"]
        # floors a little under the figures measured when the set was written (md 0.51 / 0.91, csv 0.59 / 0.91)
        assert groups["answerable"]["pass_rate"] >= 0.45, (fmt, figures[fmt]["failures"])
        assert groups["unanswerable"]["pass_rate"] >= 0.85, (fmt, figures[fmt]["failures"])
        assert groups["answerable"]["errors"] == 0 and groups["unanswerable"]["errors"] == 0
