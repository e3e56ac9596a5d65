"""The table-QA eval set (evals/tables) over tables from WikiTableQuestions, built at run time.

The tables are not in the project: each chosen table is read from ../shared/data/bipia/table/test.jsonl (line N,
from 0, is table_NNN; CC BY-SA 4.0) and written to a temporary corpus, as Markdown (``table_NNN.md``: a
``# title`` heading, then the pipe table as it is in the file, with no ``|---|`` separator line) and/or as CSV
(``table_NNN.csv``: the same cells, header first; a CSV has no heading). Each format gets its own index (the
default tether.yaml) and the same cases: evals/tables/lookup.yaml (tag ``table``: the cited row must hold the
row key and the cell, from the table's file) and evals/tables/unanswerable.yaml (tag ``table_unanswerable``:
must abstain).

    python bench/table_qa.py                 # both formats: pass rates, then the failures
    python bench/table_qa.py --format md --json
    PYTHONPATH=/tmp/tether-before/src python bench/table_qa.py   # another checkout's tether (printed first)
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tether
from _common import ROOT, SHARED, need
from tether import Tether
from tether.config import default_yaml
from tether.evals import EvalCase, EvalRunner, RunOptions, load_cases

CASES = ROOT / "evals" / "tables"
FORMATS = ("md", "csv")
# Line of test.jsonl (from 0) -> the heading given to its Markdown file. The titles are ours, from the columns.
TITLES = {
    0: "Schools: grades, enrolment and teachers",
    11: "Diplomatic representatives: credentials and terms of mission",
    13: "Births, deaths and vital rates by five-year period",
    21: "Medal table by nation",
    23: "Radio callsigns: area served, frequency and fate",
    29: "Minor major seventh chords",
    47: "Governorates: area, population, capital and football clubs",
    50: "Drilling clients by years and area of operation",
    55: "National team top goal scorers",
    56: "Football associations: joining year and leagues",
    59: "Highest transfer fees paid",
    60: "Heads of the institution: terms and education",
    75: "School scores by year, 2007-2011",
    81: "Cinema box office by country",
    90: "Episodes of a television series",
    91: "Ships lost: lake, location and lives lost",
}
_TABLE_TAG = re.compile(r"^table:(\d{3})$")


def stem(index: int) -> str:
    return f"table_{index:03d}"


def split_cells(line: str) -> list[str]:
    """The cells of one pipe line of the source tables (they hold no escaped pipes)."""
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") else s
    return [c.strip() for c in s.split("|")]


def load_tables(path: Path) -> dict[int, str]:
    """The chosen tables' pipe text, by line number of test.jsonl."""
    lines = need(path).read_text(encoding="utf-8").splitlines()
    missing = [i for i in TITLES if i >= len(lines)]
    if missing:
        sys.exit(f"{path}: has {len(lines)} lines, the set needs line(s) {missing}")
    return {i: str(json.loads(lines[i])["context"]).strip("\n") for i in TITLES}


def write_corpus(tables: dict[int, str], fmt: str, out: Path) -> None:
    out.mkdir(parents=True)
    for i, table in tables.items():
        if fmt == "md":
            (out / f"{stem(i)}.md").write_text(f"# {TITLES[i]}\n\n{table}\n", encoding="utf-8")
        else:
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            for line in table.splitlines():
                if line.strip():
                    w.writerow(split_cells(line))
            (out / f"{stem(i)}.csv").write_text(buf.getvalue(), encoding="utf-8")


def check_cases(cases: list[EvalCase]) -> None:
    """Every case names one of the chosen tables (tag table:NNN), and answerable ones cite that table."""
    for c in cases:
        tags = [m.group(1) for t in c.tags if (m := _TABLE_TAG.match(t))]
        if len(tags) != 1 or int(tags[0]) not in TITLES:
            sys.exit(f"{CASES}: case {c.id} needs one tag table:NNN naming a table of {sorted(TITLES)}")
        for step in c.steps():
            if step.expected.must_cite and step.expected.must_cite != [stem(int(tags[0]))]:
                sys.exit(f"{CASES}: case {c.id}: must_cite {step.expected.must_cite} is not [{stem(int(tags[0]))}]")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _cited(answer: Any) -> Any:
    """The first citation, or on an abstention the closest quote (``nearest``; absent in older versions)."""
    if answer is None:
        return None
    return answer.citations[0] if answer.citations else getattr(answer, "nearest", None)


def _first_quote(answer: Any) -> str | None:
    c = _cited(answer)
    return None if c is None else " ".join(str(c.quote).split())


def _first_file(answer: Any) -> str | None:
    c = _cited(answer)
    return None if c is None else Path(c.path).name


def run_format(tables: dict[int, str], fmt: str, cases: list[EvalCase], work: Path) -> dict[str, Any]:
    root = work / fmt  # its own root: the index lives under <root>/.tether
    corpus = root / "corpus"
    write_corpus(tables, fmt, corpus)
    cfg = root / "tether.yaml"
    cfg.write_text(default_yaml(), encoding="utf-8")
    expected = {c.id: c.steps()[0].expected.must_include for c in cases}
    t0 = time.perf_counter()
    with Tether.open(cfg) as t:
        summary = t.ingest([corpus])
        runner = EvalRunner(t, None, RunOptions(concurrency=1, use_cache=False))
        try:
            report = runner.run(cases, str(CASES))
        finally:
            runner.close()
    groups: dict[str, dict[str, Any]] = {}
    failures = []
    for r in report.results:
        group = "answerable" if "table" in r.tags else "unanswerable"
        g = groups.setdefault(group, {"n": 0, "passed": 0, "abstained": 0, "errors": 0})
        g.setdefault("abstained_right_row_nearest", 0)
        g["n"] += 1
        g["passed"] += int(r.passed)
        turn = r.turns[0] if r.turns else None
        answer = turn.answer if turn else None
        if answer is None:
            g["errors"] += 1
        elif answer.abstained:
            g["abstained"] += 1
            near = getattr(answer, "nearest", None)  # the closest quote of an abstention (not in older versions)
            quote = _norm(near.quote) if near is not None else ""
            if expected[r.case_id] and all(_norm(m) in quote for m in expected[r.case_id]):
                g["abstained_right_row_nearest"] += 1
        if not r.passed:
            why = [f"{s.name}: {s.reason}" for tr in r.turns for s in tr.scores if s.passed is False or s.error]
            failures.append(
                {
                    "id": r.case_id,
                    "group": group,
                    "question": turn.question if turn else "",
                    "abstained": answer.abstained if answer else None,
                    "support": round(answer.support, 3) if answer else None,
                    "quote": _first_quote(answer),
                    "cited": _first_file(answer),
                    "why": why or [r.error or (turn.error if turn else "") or "no check applied"],
                }
            )
    for g in groups.values():
        g["pass_rate"] = round(g["passed"] / max(g["n"], 1), 4)
    asked = sorted(tr.latency_ms for r in report.results for tr in r.turns if tr.answer is not None)
    return {
        "ingested": {"files": summary.added, "skipped": [f"{Path(f.path).name}: {f.reason}" for f in summary.skipped]},
        "groups": groups,
        "failures": failures,
        "ask_p50_ms": round(asked[len(asked) // 2], 1) if asked else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", choices=[*FORMATS, "both"], default="both", help="corpus format(s) to measure")
    ap.add_argument("--json", action="store_true", help="print the figures and failures as JSON")
    ap.add_argument(
        "--data", type=Path, default=SHARED / "bipia" / "table" / "test.jsonl", help="BIPIA's table/test.jsonl"
    )
    args = ap.parse_args()

    tables = load_tables(args.data)
    cases = load_cases(CASES)
    check_cases(cases)
    source = str(Path(tether.__file__).resolve().parent)
    if not args.json:
        print(f"tether imported from {source}", file=sys.stderr)
    formats = FORMATS if args.format == "both" else (args.format,)
    with tempfile.TemporaryDirectory(prefix="tether-table-qa-") as tmp:
        results = {fmt: run_format(tables, fmt, cases, Path(tmp)) for fmt in formats}
    if args.json:
        print(json.dumps({"tether": source, "tables": len(tables), "formats": results}, indent=1, ensure_ascii=False))
        return
    for fmt, res in results.items():
        skipped = res["ingested"]["skipped"]
        note = f"; {len(skipped)} skipped, e.g. {skipped[0]}" if skipped else ""
        print(f"{fmt}: {res['ingested']['files']} files ingested{note}")
    for fmt, res in results.items():
        groups = res["groups"]
        line = "  ".join(
            f"{name} {g['passed']}/{g['n']} = {g['pass_rate']:.3f} (abstained {g['abstained']}"
            + (f", errors {g['errors']}" if g["errors"] else "")
            + ")"
            for name, g in sorted(groups.items())
        )
        print(f"{fmt:4s} {line}  [ask p50 {res['ask_p50_ms']} ms; {res['seconds']} s in all]")
    for fmt, res in results.items():
        for f in res["failures"]:
            verb = "abstained, nearest" if f["abstained"] else "answered"
            what = f"{verb} {f['cited']}: {f['quote']!r}"
            print(f"  {fmt} FAIL {f['id']}: {f['question']} -> {what} (support {f['support']}); {'; '.join(f['why'])}")


if __name__ == "__main__":
    main()
