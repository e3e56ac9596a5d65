"""The extractive answerer (answer with a cited quote, or abstain "Not in the documents") per data source, with an
operating curve per source: does the calibration hold on real documents, not only on the SQuAD split it was fitted on?

Sources (each its own index, the default tether.yaml; ``--reader packaged|none|DIR`` sets ``answer.reader``):
- squad: the SQuAD 2.0 measured split (2,995 questions) asked open-book over all 646 paragraphs. Answerable right:
  a gold answer inside the cited quote(s) (whitespace- and case-normalised); unanswerable right: abstained.
  CC BY-SA 4.0.
- wikiqa: WikiQA test (633 questions, ~62% with no answer sentence), one document per page (its candidate sentences
  in order), each question asked with the path filter restricted to its own page (answer triggering). Answerable
  right: a cited quote and a Label-1 sentence contain one another (as word sequences, case and punctuation
  ignored); no-answer right: abstained. Microsoft Research Data License: research and non-commercial use only.
- policyqa: PolicyQA test, 300 questions (``random.Random(0).sample`` in file order), one document per privacy
  policy (its segments in order, blank lines between), asked with the filter restricted to the question's policy.
  All answerable. Right: a cited quote overlaps (by character position in the policy's text) a gold answer span of
  any test row with the same question on the same policy (the set has one row per annotated segment, and golds
  can be one word, e.g. "may", so text containment would be too lenient). Repository MIT; the OPP-115 policy
  texts are for non-commercial research only.
- tables: the table-QA set of bench/table_qa.py, Markdown format (WikiTableQuestions tables, CC BY-SA 4.0):
  lookups are right when a cited quote (the row's span) is from the expected table and holds the row key and the
  cell (alphanumerics only, as the eval scorer compares); near-misses are right when abstained. No filter.

WikiQA and PolicyQA are evaluation-only data: nothing here is trained or calibrated on them.

Each question records its support, whether it abstained, and whether the best candidate is right if answered (the
citations when answered, ``nearest`` when abstained): the best sentence does not depend on the threshold, so the
curve over 0.30..0.80 needs no second ask. Below the configured threshold an abstention is judged by its nearest
quote alone, while an answer may cite a second sentence: the curve there is a slight underestimate of answerable
right. Latency is per warm ``Tether.ask`` (one question asked first). The "mix" line is the mean balanced accuracy
over sources; its best grid threshold is for information, chosen on the measured data, NOT a calibration fit.

Indexes are cached under .tether/bench keyed by source and index hash (squad shares ``squad-<hash>.db`` with the
other SQuAD benches); a rerun re-ingests nothing that is unchanged. Traces go to a temporary folder.

    python bench/answer_sources.py                                   # all sources: table + curves
    python bench/answer_sources.py --sources wikiqa,tables --limit 30
    python bench/answer_sources.py --reader none --out /tmp/sources_plain.json   # features only (no reading model)
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import hashlib
import json
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rich.progress import track

from _common import CACHE, READER_CHOICES, SHARED, load_squad, need, with_reader
from table_qa import CASES, check_cases, load_tables, write_corpus
from tether import Tether
from tether.config import default_yaml, load_settings
from tether.contracts import Citation, SearchFilters
from tether.evals import load_cases
from tether.ingest import Ingestor

SOURCES = ("squad", "wikiqa", "policyqa", "tables")
GRID = [round(0.30 + 0.05 * i, 2) for i in range(11)]
POLICYQA_SAMPLE = 300


@dataclass
class Question:
    id: str
    text: str
    answerable: bool
    gold: list[str] = field(default_factory=list)
    doc: str | None = None  # the document key it is about (the filter's scope where the source is scoped)
    spans: list[tuple[int, int]] = field(default_factory=list)  # gold character spans in that document's text


@dataclass
class Source:
    name: str
    records: list[tuple[str, str, str]]  # (key, title, text)
    questions: list[Question]
    judge: Callable[[list[Citation], Question], bool]
    scoped: bool = False  # ask with the path filter restricted to the question's document
    files: dict[str, Path] = field(default_factory=dict)  # key -> file (parsed by its type)


@dataclass
class Record:
    id: str
    answerable: bool
    support: float
    abstained: bool
    right: bool  # answerable and the best candidate's quote(s) are right
    ms: float
    cited: str | None  # path of the first citation, or of nearest


def inside(a: str, b: str) -> bool:
    """The words of ``a`` occur in ``b`` in a row (case and punctuation ignored)."""
    x, y = (" ".join(re.findall(r"\w+", t.lower())) for t in (a, b))
    return bool(x) and f" {x} " in f" {y} "


def alnum(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower())


def squad_right(cites: list[Citation], q: Question) -> bool:
    quoted = " ".join(" ".join(c.quote for c in cites).lower().split())
    return any(" ".join(g.lower().split()) in quoted for g in q.gold if g.strip())


def wikiqa_right(cites: list[Citation], q: Question) -> bool:
    return any(inside(c.quote, g) or inside(g, c.quote) for c in cites for g in q.gold)


def policyqa_right(cites: list[Citation], q: Question) -> bool:
    return any(c.path == q.doc and c.start < end and start < c.end for c in cites for start, end in q.spans)


def table_right(cites: list[Citation], q: Question) -> bool:
    return any(c.path == q.doc and all(alnum(m) in alnum(c.quote) for m in q.gold) for c in cites)


def squad_source() -> Source:
    squad = load_squad()
    questions = [
        Question(q.id, q.question, not q.is_impossible, q.answers, q.paragraph_id) for q in squad.split("measure")
    ]
    records = [(p["_id"], p["title"], p["text"]) for p in squad.paragraphs]
    return Source("squad", records, questions, squad_right)


def wikiqa_source() -> Source:
    path = need(SHARED / "wikiqa" / "WikiQA-test.tsv.gz")
    docs: dict[str, tuple[str, dict[int, str]]] = {}
    questions: dict[str, Question] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        for raw in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            row = {k.strip("\r"): (v or "").strip("\r") for k, v in raw.items()}
            key, sentence = f"wikiqa/{row['DocumentID']}", row["Sentence"]
            docs.setdefault(key, (row["DocumentTitle"], {}))[1][int(row["SentenceID"].rsplit("-", 1)[1])] = sentence
            q = questions.setdefault(row["QuestionID"], Question(row["QuestionID"], row["Question"], False, [], key))
            if row["Label"] == "1":
                q.answerable = True
                q.gold.append(sentence)
    records = [(k, title, " ".join(s for _, s in sorted(sents.items()))) for k, (title, sents) in docs.items()]
    return Source("wikiqa", records, list(questions.values()), wikiqa_right, scoped=True)


def policyqa_source() -> Source:
    root = SHARED / "policyqa"
    segments: dict[str, list[tuple[int, str, str]]] = {}
    for line in need(root / "test_segments.jsonl").open(encoding="utf-8"):
        s = json.loads(line)
        segments.setdefault(s["policy"], []).append((int(s["segment_index"]), s["_id"], s["text"]))
    records, offset = [], {}  # offset: segment id -> where it starts in its policy's text
    for policy, segs in segments.items():
        parts, at = [], 0
        for _, sid, text in sorted(segs):
            offset[sid], at = at, at + len(text) + 2
            parts.append(text)
        records.append((f"policyqa/{policy}", policy, "\n\n".join(parts)))
    rows = [json.loads(line) for line in need(root / "test_questions.jsonl").open(encoding="utf-8")]
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}  # every row of the same question on the same policy
    for r in rows:
        at = offset[r["segment_id"]]
        spans.setdefault((r["policy"], r["question"]), []).extend(
            (at + s, at + s + len(a)) for a, s in zip(r["answers"], r["answer_starts"], strict=True)
        )
    questions = []
    for r in random.Random(0).sample(rows, POLICYQA_SAMPLE):
        gold = spans[r["policy"], r["question"]]
        questions.append(Question(r["id"], r["question"], True, r["answers"], f"policyqa/{r['policy']}", gold))
    return Source("policyqa", records, questions, policyqa_right, scoped=True)


def tables_source(work: Path) -> Source:
    tables = load_tables(SHARED / "bipia" / "table" / "test.jsonl")
    corpus = work / "tables-corpus"
    write_corpus(tables, "md", corpus)
    cases = load_cases(CASES)
    check_cases(cases)
    questions = []
    for c in cases:
        step = c.steps()[0]
        exp = step.expected
        doc = f"tables/{exp.must_cite[0]}.md" if exp.must_cite else None
        questions.append(Question(c.id, step.user, not exp.expect_abstain, list(exp.must_include), doc))
    files = {f"tables/{p.name}": p for p in sorted(corpus.glob("*.md"))}
    return Source("tables", [], questions, table_right, files=files)


def fingerprint(reader: Path | None) -> str | None:
    """sha256 (12 hex) of the reader's support_model.json: a refit during a run shows as a change."""
    f = None if reader is None else reader / "support_model.json"
    return hashlib.sha256(f.read_bytes()).hexdigest()[:12] if f is not None and f.exists() else None


def open_tether(work: Path, name: str, reader: Path | None) -> Tether:
    """A Tether with the default settings (and the reader), its index the cached one of this source."""
    text = with_reader(default_yaml(), "none" if reader is None else str(reader))
    cfg = work / name / "tether.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(text, encoding="utf-8")
    h = load_settings(cfg).index_hash
    db = CACHE / (f"squad-{h}.db" if name == "squad" else f"sources-{name}-{h}.db")
    CACHE.mkdir(parents=True, exist_ok=True)
    cfg.write_text(text.replace("  path: .tether/index.db", f"  path: {db}", 1), encoding="utf-8")
    t = Tether.open(cfg)
    assert t.settings.index_path == db, "tether.yaml's index.path line was not found"
    return t


def build(t: Tether, src: Source) -> dict[str, Any]:
    """Ingest the source (unchanged documents are skipped) and drop stale ones."""
    store = t.store(create=True)
    ing = Ingestor(store, t.embedder, t.settings.ingest)
    ing.add_records(src.records)
    for key, path in src.files.items():
        ing.add_file(path, key=key)
    ing.flush()
    keys = {k for k, _, _ in src.records} | set(src.files)
    for stale in set(store.paths()) - keys:
        store.delete_document(stale)
    stats = store.stats()
    skipped = [f"{s.path}: {s.reason}" for s in ing.summary.skipped]
    return {"documents": stats.documents, "chunks": stats.chunks, "duplicates_removed": stats.duplicates_removed} | (
        {"skipped": skipped} if skipped else {}
    )


def ask_all(t: Tether, src: Source) -> list[Record]:
    def filters(q: Question) -> SearchFilters | None:
        return SearchFilters(path_glob=glob.escape(q.doc)) if src.scoped and q.doc else None

    t.ask(src.questions[0].text, filters=filters(src.questions[0]))  # warm: models loaded
    out = []
    for q in track(src.questions, description=f"asking {src.name}", transient=True):
        t0 = time.perf_counter()
        a = t.ask(q.text, filters=filters(q))
        ms = (time.perf_counter() - t0) * 1000
        cites = a.citations if not a.abstained else [a.nearest] if a.nearest is not None else []
        right = q.answerable and src.judge(cites, q)
        out.append(Record(q.id, q.answerable, a.support, a.abstained, right, ms, cites[0].path if cites else None))
    return out


def rates(recs: list[Record], th: float | None) -> dict[str, Any]:
    """Answerable right, unanswerable abstained and balanced accuracy at ``th`` (None: as actually answered)."""

    def answered(r: Record) -> bool:
        return not r.abstained if th is None else r.support >= th

    ans = [r for r in recs if r.answerable]
    una = [r for r in recs if not r.answerable]
    a = sum(answered(r) and r.right for r in ans) / max(len(ans), 1)
    u = sum(not answered(r) for r in una) / len(una) if una else None
    bal = (a + u) / 2 if u is not None else a
    return {
        "answerable_right": round(a, 4),
        "unanswerable_abstained": None if u is None else round(u, 4),
        "balanced": round(bal, 4),
    }


def pct(ms: list[float], q: int) -> float:
    return round(statistics.quantiles(ms, n=100)[q - 1], 1) if len(ms) >= 2 else round(ms[0], 1)


def measure(src: Source, reader: Path | None, work: Path) -> dict[str, Any]:
    with open_tether(work, src.name, reader) as t:
        index = build(t, src)
        recs = ask_all(t, src)
        th = t.answerer().threshold
    curve = [{"threshold": g} | rates(recs, g) for g in GRID]
    peak = max(curve, key=lambda c: c["balanced"])
    off = sum(1 for r, q in zip(recs, src.questions, strict=True) if src.scoped and r.cited not in (None, q.doc))
    return {
        "n_answerable": sum(r.answerable for r in recs),
        "n_unanswerable": sum(not r.answerable for r in recs),
        "threshold": th,
        "at_threshold": rates(recs, None),
        "abstained_not_below_threshold": sum(r.abstained != (r.support < th) for r in recs),
        "cited_outside_filter": off,
        "no_candidate": sum(r.cited is None for r in recs),
        "peak": peak,
        "curve": curve,
        "ask_p50_ms": pct([r.ms for r in recs], 50),
        "ask_p95_ms": pct([r.ms for r in recs], 95),
        "index": index,
        "records": [asdict(r) | {"support": round(r.support, 4), "ms": round(r.ms, 1)} for r in recs],
    }


def mix(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    curve = [
        {"threshold": g, "balanced": round(statistics.mean(r["curve"][i]["balanced"] for r in results.values()), 4)}
        for i, g in enumerate(GRID)
    ]
    return {
        "at_threshold": round(statistics.mean(r["at_threshold"]["balanced"] for r in results.values()), 4),
        "curve": curve,
        "best": max(curve, key=lambda c: c["balanced"]) | {"note": "for information: chosen on the measured data"},
    }


def f3(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def show(report: dict[str, Any]) -> None:
    results: dict[str, dict[str, Any]] = report["sources"]
    fp = report["reader_support_model"]
    print(f"reader: {report['reader'] or 'none'}" + (f" (support model {fp['start']})" if fp["start"] else ""))
    if fp["start"] != fp["end"]:
        print(f"WARNING: the reader's support_model.json changed during the run ({fp['start']} -> {fp['end']})")
    print(
        f"{'source':9s} {'n ans/una':>10s} {'thr':>5s} {'ans ok':>6s} {'una ab':>6s} {'bal':>6s}"
        f" | {'peak thr':>8s} {'bal':>6s} | {'p50 ms':>7s} {'p95 ms':>7s}"
    )
    for name, r in results.items():
        at, pk = r["at_threshold"], r["peak"]
        print(
            f"{name:9s} {r['n_answerable']:>5d}/{r['n_unanswerable']:<4d} {r['threshold']:5.3f}"
            f" {f3(at['answerable_right']):>6s} {f3(at['unanswerable_abstained']):>6s} {f3(at['balanced']):>6s}"
            f" | {pk['threshold']:8.2f} {f3(pk['balanced']):>6s} | {r['ask_p50_ms']:7.1f} {r['ask_p95_ms']:7.1f}"
        )
        odd = {k: r[k] for k in ("abstained_not_below_threshold", "cited_outside_filter") if r[k]}
        if odd or r["index"].get("skipped"):
            print(f"          note: {odd} {r['index'].get('skipped', '')}")
    m = report["mix"]
    print(
        f"{'mix':9s} {'':>10s} {'':>5s} {'':>6s} {'':>6s} {f3(m['at_threshold']):>6s}"
        f" | {m['best']['threshold']:8.2f} {f3(m['best']['balanced']):>6s}   ({m['best']['note']})"
    )
    print("\ncurve (answerable right / unanswerable abstained / balanced):")
    print("thr   " + "".join(f"{n:>20s}" for n in results) + f"{'mix':>8s}")
    for i, g in enumerate(GRID):
        cells = []
        for r in results.values():
            c = r["curve"][i]
            cells.append(f"{f3(c['answerable_right'])} {f3(c['unanswerable_abstained'])} {f3(c['balanced'])}")
        print(f"{g:.2f}  " + "".join(f"{c:>20s}" for c in cells) + f"{m['curve'][i]['balanced']:8.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default=",".join(SOURCES), help="comma-separated subset of " + ",".join(SOURCES))
    ap.add_argument("--reader", default="packaged", help=f"answer.reader: {READER_CHOICES}")
    ap.add_argument("--limit", type=int, default=0, help="only the first N questions of each source (a smoke run)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON (without per-question records)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON report, with per-question records, here")
    args = ap.parse_args()
    args.reader = (
        None
        if args.reader == "none"
        else Path(str(resources.files("tether") / "data" / "reader"))
        if args.reader == "packaged"
        else Path(args.reader)
    )
    names = [s.strip() for s in args.sources.split(",") if s.strip()]
    if bad := [n for n in names if n not in SOURCES]:
        ap.error(f"unknown source(s) {bad}; choose from {','.join(SOURCES)}")
    need(SHARED)
    before = fingerprint(args.reader)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tether-sources-") as tmp:
        work = Path(tmp)
        loaders: dict[str, Callable[[], Source]] = {
            "squad": squad_source,
            "wikiqa": wikiqa_source,
            "policyqa": policyqa_source,
            "tables": lambda: tables_source(work),
        }
        for name in names:
            src = loaders[name]()
            src.questions = src.questions[: args.limit or None]
            results[name] = measure(src, args.reader, work)
    report = {
        "reader": str(args.reader) if args.reader else None,
        "reader_support_model": {"start": before, "end": fingerprint(args.reader)},
        "limit": args.limit or None,
        "grid": GRID,
        "sources": results,
        "mix": mix(results),
    }
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    brief = report | {"sources": {n: {k: v for k, v in r.items() if k != "records"} for n, r in results.items()}}
    if args.json:
        print(json.dumps(brief, indent=1))
    else:
        show(brief)


if __name__ == "__main__":
    main()
