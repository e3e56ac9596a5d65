from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from tether._api import Tether
from tether.config import DEFAULT_CONFIG_NAME, default_yaml
from tether.contracts import Answer, Hit, SearchFilters
from tether.errors import TetherError
from tether.retrieve import Mode

app = typer.Typer(
    name="tether",
    help="Grounded answers over your own documents: ingest, search, ask with cited spans, or hear "
    "'not in the documents'. Offline by default.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _DefaultToRun(TyperGroup):
    """`tether eval PATH` means `tether eval run PATH`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_DefaultToRun,
    help="Evaluate: `tether eval PATH` runs YAML cases (table, --json, HTML report, regression gate); "
    "`compare`, `runs`, `show`, `retrieval` (BEIR).",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")
tools_app = typer.Typer(help="Typed tools under policy: the plan/execute demo.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
audit_app = typer.Typer(help="The tamper-evident audit log: verify it, show it.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help=f"tether.yaml to use (default: ./{DEFAULT_CONFIG_NAME} if present)"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]


def _progress(label: str, *, disable: bool, detail: bool = False) -> Progress:
    """A transient progress bar on stderr (hidden for --json and when stderr is not a terminal)."""
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    if detail:
        columns.append(TextColumn("{task.description}"))
    return Progress(*columns, console=err, disable=disable, transient=True)


def _emit_json(obj: Any) -> None:
    text = obj.model_dump_json(indent=2) if isinstance(obj, BaseModel) else json.dumps(obj, indent=2, default=str)
    sys.stdout.write(text + "\n")


def _filters(path_glob: str | None, tags: list[str] | None, after: datetime | None) -> SearchFilters | None:
    if not path_glob and not tags and after is None:
        return None
    return SearchFilters(path_glob=path_glob, tags=tags or [], modified_after=after)


def _rel(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the config")] = Path(DEFAULT_CONFIG_NAME),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    print_only: Annotated[bool, typer.Option("--print", help="print the config instead of writing it")] = False,
) -> None:
    """Write a commented tether.yaml with every setting at its default."""
    text = default_yaml()
    if print_only:
        sys.stdout.write(text)
        return
    if path.exists() and not force:
        raise TetherError(f"{path} already exists; use --force to overwrite it")
    path.write_text(text, encoding="utf-8")
    out.print(f"wrote {path}; next: [bold]tether ingest ./docs[/]")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files and folders to ingest (folders recursively)")],
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="tag the documents (repeatable)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Parse, chunk, dedupe, embed and index documents (incremental).

    Unchanged files are skipped by content hash, changed files replaced atomically, deleted files
    removed. Files that cannot be read or parsed are skipped with a one-line reason."""
    t = Tether.open(config)
    show = not (quiet or as_json) and err.is_terminal
    with _progress("[bold]ingest", disable=not show, detail=True) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=escape(Path(path).name[:40]))

        summary = t.ingest(list(paths), tags=tag, progress=progress)
    t.close()
    if as_json:
        _emit_json(summary)
        return
    out.print(
        f"added {summary.added}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"removed {summary.removed}, skipped {len(summary.skipped)}; {summary.chunks} chunks "
        f"({summary.duplicates_removed} near-duplicates removed) in {summary.seconds:.1f}s "
        f"(embedding {summary.embed_seconds:.1f}s)"
    )
    for s in summary.skipped[:20]:
        out.print(f"  [yellow]skipped[/] {escape(_rel(s.path))}: {escape(s.reason)}")
    if len(summary.skipped) > 20:
        out.print(f"  ... and {len(summary.skipped) - 20} more skipped (see --json)")


def _print_hits(hits: list[Hit]) -> None:
    table = Table(show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("text")
    for i, h in enumerate(hits, 1):
        where = _rel(h.path) + (f" › {' › '.join(h.section)}" if h.section else "")
        snippet = " ".join(h.text.split())
        table.add_row(str(i), f"{h.score:.3f}", escape(where), escape(snippet[:160]))
    out.print(table)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    k: Annotated[int, typer.Option("--k", "-k", help="number of hits")] = 5,
    mode: Annotated[str, typer.Option(help="hybrid, lexical or dense")] = "hybrid",
    path_glob: Annotated[str | None, typer.Option("--path", help="only paths matching this glob")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="only documents with this tag")] = None,
    after: Annotated[datetime | None, typer.Option(help="only documents modified after this date")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the chunks that retrieval ranks highest for a query (no answering)."""
    if mode not in ("hybrid", "lexical", "dense"):
        raise TetherError(f"--mode must be hybrid, lexical or dense, not {mode!r}")
    m: Mode = mode  # type: ignore[assignment]
    with Tether.open(config) as t:
        hits = t.search(query, k, mode=m, filters=_filters(path_glob, tag, after))
    if as_json:
        _emit_json([h.model_dump(mode="json") for h in hits])
        return
    if not hits:
        out.print("no matches")
        return
    _print_hits(hits)


def _print_answer(a: Answer) -> None:
    if a.abstained:
        out.print(f"[bold yellow]{escape(a.text)}[/]")
        out.print(f"[dim]{escape(a.reason)}[/]")
        if a.nearest is not None:
            n = a.nearest
            where = _rel(n.path) + (f" › {' › '.join(n.section)}" if n.section else "")
            out.print(f"[dim]closest passage, not an answer: {escape(where)}[/]")
        return
    out.print(escape(a.text))
    out.print()
    for c in a.citations:
        where = _rel(c.path) + (f" › {' › '.join(c.section)}" if c.section else "")
        out.print(f"[bold][{c.n}][/] {escape(where)} [dim]chars {c.start}–{c.end}[/]")
        out.print(f"    [italic]“{escape(' '.join(c.quote.split()))}”[/]")
    out.print(f"[dim]support {a.support:.2f} (threshold {a.threshold:.2f}) · config {a.config_hash}[/]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="a question about your documents")],
    path_glob: Annotated[str | None, typer.Option("--path", help="only paths matching this glob")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="only documents with this tag")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    trace: Annotated[bool, typer.Option("--trace", help="include every pipeline step in --json")] = False,
) -> None:
    """Answer with quoted, cited spans from your documents, or say "not in the documents"."""
    with Tether.open(config) as t:
        a = t.ask(question, filters=_filters(path_glob, tag, None))
    if as_json:
        data = a.model_dump(mode="json")
        if not trace:
            data.pop("trace")
        _emit_json(data)
        return
    _print_answer(a)


@app.command()
def stats(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show what the index holds: documents, chunks, duplicates removed, size, embedding model."""
    with Tether.open(config) as t:
        s = t.stats()
    if as_json:
        _emit_json(s)
        return
    table = Table(show_header=False)
    for key, value in s.model_dump().items():
        if key == "bytes_on_disk":
            value = f"{value / 1024 / 1024:.1f} MB"
        table.add_row(key, escape(str(value)))
    out.print(table)


@eval_app.command("retrieval")
def eval_retrieval(
    beir: Annotated[Path, typer.Option("--beir", help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/")],
    split: Annotated[str, typer.Option(help="qrels split to score (tune on train, report test)")] = "test",
    modes: Annotated[str, typer.Option(help="comma-separated: lexical,dense,hybrid")] = "lexical,dense,hybrid",
    index: Annotated[
        Path | None, typer.Option(help="index file for the corpus (default: a cache under .tether/beir/)")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, recall@100 and MRR@10 of lexical, dense and hybrid retrieval (BEIR format).

    The corpus is indexed once with the ingest and embedding settings of tether.yaml and cached."""
    from tether.evals._beir_run import run_beir

    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in wanted if m not in ("lexical", "dense", "hybrid")]
    if bad:
        raise TetherError(f"--modes: unknown mode(s) {', '.join(bad)}; use lexical, dense, hybrid")
    with _progress("[bold]{task.description}", disable=as_json or not err.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = run_beir(Tether.open(config), beir, split, tuple(wanted), index=index, progress=progress)  # type: ignore[arg-type]
    if as_json:
        _emit_json(report)
        return
    table = Table(title=f"{beir.name} / {split} ({report.modes[0].queries if report.modes else 0} queries)")
    for col in ("mode", "nDCG@10", "recall@100", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right")
    for m in report.modes:
        table.add_row(
            m.mode,
            f"{m.ndcg_at_10:.4f}",
            f"{m.recall_at_100:.4f}",
            f"{m.mrr_at_10:.4f}",
            f"{m.p50_ms:.1f}",
            f"{m.p95_ms:.1f}",
        )
    out.print(table)


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="where the demo corpus and its index go")] = Path(
        ".tether/demo"
    ),
    as_json: JsonOpt = False,
) -> None:
    """The quickstart: ingest Python's reference manual, ask, and show an abstention.

    The corpus is pydoc_data.topics, which ships with CPython. Tether answers a few questions with
    cited spans and declines one that the manual cannot answer."""
    from tether._demo import DEMO_QUESTIONS, export_python_topics

    corpus = folder / "corpus"
    n = export_python_topics(corpus)
    cfg = folder / DEFAULT_CONFIG_NAME
    if not cfg.exists():
        cfg.write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(cfg)
    if not as_json:
        out.print(f"[bold]1. ingest[/] {n} topics of the Python reference manual from pydoc_data into {folder}/")
    with _progress("[bold]ingest", disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("", total=None)
        summary = t.ingest([corpus], progress=lambda d, total, _p: bar.update(task, completed=d, total=total))
    answers = [t.ask(q) for q in DEMO_QUESTIONS]
    t.close()
    if as_json:
        _emit_json({"ingest": summary.model_dump(mode="json"), "answers": [a.model_dump(mode="json") for a in answers]})
        return
    out.print(
        f"   {summary.added} added, {summary.unchanged} unchanged, {summary.chunks} chunks, "
        f"{summary.duplicates_removed} near-duplicate chunks removed ({summary.seconds:.1f}s)"
    )
    out.print("[bold]2. ask[/]")
    for a in answers:
        out.print()
        out.print(f"[bold cyan]Q: {escape(a.question)}[/]")
        _print_answer(a)
    out.print()
    out.print(
        f'Try your own: [bold]tether ask --config {folder}/tether.yaml "your question"[/] '
        "(or `tether init` and `tether ingest` your own folder)."
    )


def _eval_store(t: Tether) -> Any:
    from tether.evals import EvalStore

    return EvalStore(t.settings.root / ".tether" / "evals.db")


@eval_app.command("run")
def eval_run(
    path: Annotated[Path, typer.Argument(help="a YAML file of cases, or a folder of them")],
    repeat: Annotated[int, typer.Option(min=1, help="run every case N times: pass@N and pass^N")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="cases in flight at once")] = 2,
    timeout: Annotated[float, typer.Option(help="seconds per case before it counts as an error")] = 120.0,
    retries: Annotated[int, typer.Option(min=0, help="retries with backoff on transient errors")] = 2,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="ask again even if an answer is cached")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count model calls and tokens; run nothing")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="only cases with this tag")] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="run id, 'latest', or a report .json from `tether eval --json` to compare against"),
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="exit 1 if significantly worse than --baseline")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(help="also write a compact JSON of this run (scores, no answers) to commit as a baseline"),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run eval cases, score every answer, store the run, print a table.

    Exit code 1 when --fail-on-regression finds a significant regression against --baseline (the CI gate)."""
    from tether.evals import EvalRunner, RunOptions, compare_runs, load_cases

    cases = load_cases(path)
    if tag:
        cases = [c for c in cases if set(tag) & set(c.tags)]
        if not cases:
            raise TetherError(f"no case in {path} has tag(s) {', '.join(tag)}")
    t = Tether.open(config)
    store = _eval_store(t)
    opts = RunOptions(
        concurrency=concurrency, timeout_s=timeout, retries=retries, repeat=repeat, use_cache=not no_cache
    )
    runner = EvalRunner(t, store, opts)
    if dry_run:
        est = runner.dry_run(cases)
        if as_json:
            _emit_json(est)
        else:
            for k, v in est.model_dump().items():
                out.print(f"{k:18s} {v}")
        return
    base = _load_baseline(store, baseline) if baseline else None
    with _progress("[bold]eval", disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("", total=len(cases) * repeat)
        result = runner.run(cases, str(path), progress=lambda d, n: bar.update(task, completed=d, total=n))
    html_path = report or (t.settings.root / ".tether" / "reports" / f"{result.summary.run_id}.html")
    from tether.evals._report import write_html_report

    write_html_report(result, html_path)
    if write_baseline is not None:
        root = Path(path)
        root = root if root.is_dir() else root.parent

        def _rel(p: str) -> str:  # a committed baseline must not carry this machine's paths
            try:
                return str(Path(p).resolve().relative_to(root.resolve()))
            except ValueError:
                return Path(p).name

        compact = result.model_copy(
            update={
                "summary": result.summary.model_copy(update={"cases_path": Path(path).name}),
                "results": [
                    r.model_copy(
                        update={
                            "source": _rel(r.source),
                            "turns": [tr.model_copy(update={"answer": None}) for tr in r.turns],
                        }
                    )
                    for r in result.results
                ],
            }
        )
        write_baseline.write_text(compact.model_dump_json(indent=1) + "\n", encoding="utf-8")
    comparison = compare_runs(base, result) if base is not None else None
    if as_json:
        data: dict[str, Any] = json.loads(result.model_dump_json())
        data["report"] = str(html_path)
        if comparison is not None:
            data["comparison"] = comparison.model_dump()
        _emit_json(data)
    else:
        _print_run(result, html_path)
        if comparison is not None:
            _print_comparison(comparison)
    t.close()
    if fail_on_regression and comparison is not None and comparison.regression:
        err.print("[bold red]regression:[/] significantly worse than the baseline")
        raise typer.Exit(1)


def _load_baseline(store: Any, baseline: str) -> Any:
    """A stored run id (or 'latest'), or a JSON report file written by `tether eval ... --json`."""
    from tether.evals import RunReport

    p = Path(baseline)
    if p.suffix == ".json" and p.is_file():
        try:
            return RunReport.model_validate_json(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise TetherError(f"{p} is not an eval report written by `tether eval --json` ({e})") from None
    return store.load(baseline)


def _print_run(result: Any, html_path: Path) -> None:
    s = result.summary
    table = Table(title=f"run {s.run_id}  ·  {s.cases} cases  ·  config {s.config_hash}  ·  judge {s.judge}")
    for col in ("case", "tags", "result", "details"):
        table.add_column(col)
    for r in sorted(result.results, key=lambda r: (r.passed, r.case_id)):
        if r.repeat:
            continue
        fails = (
            [f"{sc.name}: {sc.reason}" for tr in r.turns for sc in tr.scores if sc.passed is False or sc.error]
            + [f"error: {tr.error}" for tr in r.turns if tr.error]
            + ([f"error: {r.error}"] if r.error else [])
        )
        table.add_row(
            escape(r.case_id),
            escape(",".join(r.tags)),
            "[green]pass[/]" if r.passed else "[red]FAIL[/]",
            escape("; ".join(fails)[:140]),
        )
    out.print(table)
    out.print(
        f"pass rate {s.pass_rate:.3f} ({s.passed}/{s.cases})"
        + (f" · pass@{s.repeats} {s.pass_at_n:.3f} · pass^{s.repeats} {s.pass_all_n:.3f}" if s.repeats > 1 else "")
        + f" · errors {s.errors} · scorer errors {s.scorer_errors} · cached {s.cached_turns}"
        + f" · p50 {s.latency_p50_ms:.0f} ms · {s.seconds:.1f}s"
    )
    if s.per_tag:
        out.print("by tag: " + ", ".join(f"{k} {v:.2f}" for k, v in s.per_tag.items()))
    if s.per_metric:
        out.print("by metric: " + ", ".join(f"{k} {v:.2f}" for k, v in s.per_metric.items()))
    out.print(f"report: {html_path}")


def _print_comparison(c: Any) -> None:
    out.print(
        f"vs {c.run_a}: pass rate {c.pass_rate_a:.3f} -> {c.pass_rate_b:.3f} on {c.common_cases} common cases; "
        f"fixed {len(c.fixed)}, broken {len(c.broken)}; McNemar p={c.p_value:.4f} "
        + (
            "[red](significant regression)[/]"
            if c.regression
            else "(significant)"
            if c.significant
            else "(not significant)"
        )
    )
    for cid in c.broken:
        out.print(f"  [red]broken[/] {escape(cid)}")
    for cid in c.fixed:
        out.print(f"  [green]fixed[/] {escape(cid)}")


@eval_app.command("compare")
def eval_compare(
    run_a: Annotated[str, typer.Argument(help="the earlier run (id, id prefix, 'previous')")],
    run_b: Annotated[str, typer.Argument(help="the later run (id, id prefix, 'latest')")],
    alpha: Annotated[float, typer.Option(help="significance level")] = 0.05,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the cases that changed between two runs and test whether the difference is real (McNemar)."""
    from tether.evals import compare_runs

    t = Tether.open(config)
    store = _eval_store(t)
    c = compare_runs(store.load(run_a), store.load(run_b), alpha)
    if as_json:
        _emit_json(c)
    else:
        _print_comparison(c)


@eval_app.command("from-feedback")
def eval_from_feedback(
    feedback: Annotated[Path, typer.Argument(help="feedback records, JSON Lines (see tether.contracts.Feedback)")],
    out_path: Annotated[Path, typer.Option("--out", help="where to write the draft cases")] = Path(
        "evals/drafts/from_feedback.yaml"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Turn thumbs-down feedback into draft eval cases for review (feedback becomes tests)."""
    from tether.evals._feedback import draft_cases, load_feedback, write_drafts

    records = load_feedback(feedback)
    drafts = draft_cases(records)
    write_drafts(drafts, out_path)
    if as_json:
        _emit_json({"records": len(records), "drafts": len(drafts), "written": str(out_path)})
        return
    out.print(f"{len(drafts)} draft cases from {len(records)} feedback records -> {out_path} (review them)")


@eval_app.command("runs")
def eval_runs(
    limit: Annotated[int, typer.Option(help="how many")] = 20, config: ConfigOpt = None, as_json: JsonOpt = False
) -> None:
    """List stored eval runs, newest first."""
    store = _eval_store(Tether.open(config))
    runs = store.runs(limit)
    if as_json:
        _emit_json([r.model_dump(mode="json") for r in runs])
        return
    table = Table()
    for col in ("run", "created", "cases", "pass rate", "config", "path"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            r.run_id,
            r.created.strftime("%Y-%m-%d %H:%M"),
            str(r.cases),
            f"{r.pass_rate:.3f}",
            r.config_hash,
            escape(r.cases_path),
        )
    out.print(table)


_DEMO_POLICY = """\
# Policy for the expense demo: evaluated before every tool call; the first matching rule decides.
version: 1
default: allow
rules:
  - id: big-expenses-need-approval
    description: expenses over 500 EUR need a manager's approval
    tool: record_expense
    when: {args: {amount: {gt: 500}}}
    action: require_approval
"""


@tools_app.command("demo")
def tools_demo(
    folder: Annotated[Path, typer.Option("--dir", help="where the ledger, run state, policy and audit log go")] = Path(
        ".tether/tools-demo"
    ),
    yes: Annotated[bool, typer.Option("--yes", help="approve every approval request without asking")] = False,
    no: Annotated[bool, typer.Option("--no", help="deny every approval request without asking")] = False,
    as_json: JsonOpt = False,
) -> None:
    """An expense-approval flow on a real SQLite ledger.

    A clerk's plan: check the budget, record a taxi (its first acknowledgement is lost, so it is retried
    with the same idempotency key and written once), record a 900 EUR hotel (policy: needs approval, with a
    preview), then pay out (refused: the clerk may not move money). Ends with `tether audit verify`."""
    from tether.guard import AuditLog
    from tether.tools import CallerProfile, Policy
    from tether.tools._ledger_demo import ledger_rows, ledger_tools
    from tether.tools._orchestrator import Orchestrator, Plan, Step

    folder.mkdir(parents=True, exist_ok=True)
    policy_path = folder / "policy.yaml"
    if not policy_path.exists():
        policy_path.write_text(_DEMO_POLICY, encoding="utf-8")
    policy = Policy.load(policy_path)
    audit = AuditLog.open(folder / "audit.db")

    def approver(step: Any, tool: Any, preview: Any, reason: str) -> bool:
        if yes or no:
            return yes
        if as_json or not sys.stdin.isatty():
            return False
        out.print(f"[bold]approval needed[/] for step {step.n} {tool.name}: {escape(reason)}")
        if preview is not None:
            out.print(f"  preview: {escape(str(preview))}")
        return typer.confirm("  approve?", default=False)

    profile = CallerProfile(name="ana", role="clerk", scopes={"read", "write"})
    orch = Orchestrator(
        ledger_tools(folder / "ledger.db", lose_first_ack=True),
        folder / "runs.db",
        profile=profile,
        policy=policy,
        approver=approver,
        audit=audit,
        config_hash=policy.hash,
        backoff_s=0.05,
    )
    plan = Plan(
        goal="file E-17's trip expenses and pay them out",
        steps=[
            Step(n=1, tool="budget_left", args={"employee": "E-17"}),
            Step(n=2, tool="record_expense", args={"employee": "E-17", "amount": 120, "note": "taxi"}),
            Step(n=3, tool="record_expense", args={"employee": "E-17", "amount": 900, "note": "conference hotel"}),
            Step(n=4, tool="pay_out", args={"entry_id": 1, "iban": "DE89370400440532013000"}),
        ],
    )
    rec = orch.run(plan)
    orch.close()
    report = audit.verify()
    rows = ledger_rows(folder / "ledger.db")
    if as_json:
        _emit_json({"run": rec.model_dump(mode="json"), "ledger": rows, "audit": report.model_dump(mode="json")})
        return
    out.print(
        f"[bold]run {rec.run_id}[/]: {escape(rec.goal)} (caller {rec.caller}, policy v{policy.version} {policy.hash})"
    )
    for st in rec.steps:
        colour = {"done": "green", "pending": "dim"}.get(st.status, "red")
        out.print(f"  {st.n}. {st.tool} {json.dumps(st.args)} -> [{colour}]{st.status}[/] {escape(st.detail)}")
        if st.result is not None:
            out.print(f"     result: {escape(json.dumps(st.result))}")
    out.print(f"stopped: {escape(rec.stopped_reason)}" if rec.status == "stopped" else f"status: {rec.status}")
    out.print(f"ledger ({folder / 'ledger.db'}): {rows}")
    out.print(
        f"audit: {report.entries} entries, "
        + ("[green]chain verified[/]" if report.ok else f"[red]{report.problem}[/]")
    )


@audit_app.command("verify")
def audit_verify(
    path: Annotated[Path, typer.Argument(help="the audit log file")] = Path(".tether/tools-demo/audit.db"),
    as_json: JsonOpt = False,
) -> None:
    """Check the hash chain: names the first edited, deleted or reordered entry. Exit 1 if broken."""
    from tether.guard import verify_file

    report = verify_file(path)
    if as_json:
        _emit_json(report)
    elif report.ok:
        out.print(f"[green]ok[/]: {report.entries} entries, chain intact (head {report.head_hash[:16]}…)")
    else:
        out.print(f"[red]tampered[/]: {escape(str(report.problem))}")
    if not report.ok:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: user errors print one clear line and exit 2, never a traceback."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged PDFs are reported as skipped files
    try:
        app()  # standalone mode: usage errors print help and exit 2
    except TetherError as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
