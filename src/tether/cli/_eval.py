"""`tether eval ...`: run YAML cases, compare runs, BEIR retrieval figures, feedback to cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tether._api import Tether
from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _progress, err, eval_app, out
from tether.errors import DataError, RequestError, TetherError


@eval_app.command("retrieval")
def eval_retrieval(
    beir: Annotated[Path, typer.Option("--beir", help="a BEIR folder: corpus.jsonl, queries.jsonl, qrels/")],
    split: Annotated[str, typer.Option(help="qrels split to score (tune on train, report test)")] = "test",
    modes: Annotated[
        str,
        typer.Option(
            help="comma-separated: lexical, dense, hybrid (each without the reranker) and default (what "
            "`tether search` does: hybrid, reranked when rerank.enabled)"
        ),
    ] = "lexical,dense,hybrid,default",
    index: Annotated[
        Path | None, typer.Option(help="index file for the corpus (default: a cache under .tether/beir/)")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, recall@100 and MRR@10 of lexical, dense and hybrid retrieval and of the default search
    pipeline (BEIR format).

    The corpus is indexed once with the ingest and embedding settings of tether.yaml and cached."""
    from tether.evals._beir_run import run_beir
    from tether.evals._retrieval import EVAL_MODES

    given = [m.strip() for m in modes.split(",") if m.strip()]
    bad = [m for m in given if m not in EVAL_MODES]
    wanted = tuple(m for m in EVAL_MODES if m in given)  # each once, in a fixed order
    if bad or not wanted:
        raise TetherError(f"--modes: unknown mode(s) {', '.join(bad) or '(none)'}; use {', '.join(EVAL_MODES)}")
    with _progress("[bold]{task.description}", disable=as_json or not err.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = run_beir(Tether.open(config), beir, split, wanted, index=index, progress=progress)
    if as_json:
        _emit_json(report)
        return
    table = Table(title=f"{beir.name} / {split} ({report.modes[0].queries if report.modes else 0} queries)")
    for col in ("mode", "nDCG@10", "recall@100", "MRR@10", "p50 ms", "p95 ms"):
        table.add_column(col, justify="right")
    for m in report.modes:
        table.add_row(
            escape(m.label or m.mode),
            f"{m.ndcg_at_10:.4f}",
            f"{m.recall_at_100:.4f}",
            f"{m.mrr_at_10:.4f}",
            f"{m.p50_ms:.1f}",
            f"{m.p95_ms:.1f}",
        )
    out.print(table)


def _eval_store(t: Tether) -> Any:
    from tether.evals import EvalStore

    return EvalStore(t.settings.root / ".tether" / "evals.db")


@eval_app.command("run")
def eval_run(
    path: Annotated[Path, typer.Argument(help="a YAML file of cases, or a folder of them")],
    repeat: Annotated[int, typer.Option(min=1, help="run every case N times: pass@N and pass^N")] = 1,
    concurrency: Annotated[int, typer.Option(min=1, help="cases in flight at once")] = 2,
    timeout: Annotated[
        float, typer.Option(min=0.01, help="seconds per case, from when it starts, before it counts as an error")
    ] = 120.0,
    retries: Annotated[int, typer.Option(min=0, help="retries with backoff on transient errors")] = 2,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="ask again even if an answer is cached")] = False,
    memory: Annotated[
        bool, typer.Option("--memory/--no-memory", help="multi-turn cases: rewrite follow-ups from the conversation")
    ] = True,
    tenant: Annotated[str | None, typer.Option("--tenant", help="ask as this tenant (tenants: in tether.yaml)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count model calls and tokens; run nothing")] = False,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="only cases with this tag")] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="run id, 'latest', or a report .json from `tether eval --json` to compare against"),
    ] = None,
    fail_on_regression: Annotated[
        bool,
        typer.Option(
            "--fail-on-regression",
            help="exit 1 if worse than --baseline: a significant McNemar test, more regressed cases than "
            "--max-regressions, or baseline cases missing from this run",
        ),
    ] = False,
    max_regressions: Annotated[
        int,
        typer.Option(
            min=0, help="cases that passed in the baseline and fail now allowed by the gate (flaky cases aside)"
        ),
    ] = 0,
    report: Annotated[Path | None, typer.Option(help="write the HTML report here")] = None,
    write_baseline: Annotated[
        Path | None,
        typer.Option(help="also write a compact JSON of this run (scores, no answers) to commit as a baseline"),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run eval cases, score every answer, store the run, print a table.

    Exit code 1 when --fail-on-regression finds a regression against --baseline (the CI gate)."""
    from tether.evals import EvalRunner, RunOptions, compare_runs, load_cases

    if fail_on_regression and not baseline:
        raise TetherError("--fail-on-regression needs --baseline (a run id, 'latest', or a baseline .json)")
    cases = load_cases(path)
    if tag:
        cases = [c for c in cases if set(tag) & set(c.tags)]
        if not cases:
            raise TetherError(f"no case in {path} has tag(s) {', '.join(tag)}")
    t = Tether.open(config)
    store = _eval_store(t)
    opts = RunOptions(
        concurrency=concurrency,
        timeout_s=timeout,
        retries=retries,
        repeat=repeat,
        use_cache=not no_cache,
        memory=memory,
        tenant=tenant,
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
    base = _checked_baseline(_load_baseline(store, baseline), baseline, cases, tag) if baseline else None
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
    comparison = (
        compare_runs(base, result, max_regressions=max_regressions, flaky={c.id for c in cases if c.flaky})
        if base is not None
        else None
    )
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
        err.print("[bold red]regression:[/] " + escape("; ".join(comparison.reasons)))
        raise typer.Exit(1)


def _load_baseline(store: Any, baseline: str) -> Any:
    """A stored run id (or 'latest'), or a JSON report file written by `tether eval ... --json`."""
    from tether.evals import RunReport

    p = Path(baseline)
    if p.suffix == ".json" and not p.is_file():
        raise TetherError(f"--baseline {p}: no such file")
    if p.suffix == ".json":
        try:
            return RunReport.model_validate_json(p.read_text(encoding="utf-8"))
        except ValueError as e:
            first = " ".join(str(e).split())[:200]
            raise TetherError(f"{p} is not an eval report written by `tether eval --json` ({first})") from None
    return store.load(baseline)


def _checked_baseline(base: Any, name: str, cases: list[Any], tag: list[str] | None) -> Any:
    """The baseline's results for the cases being run; an empty or non-matching baseline is an error.

    With --tag, only the baseline's cases with one of those tags are expected in this run."""
    results = [r for r in base.results if not tag or set(tag) & set(r.tags)]
    if not results:
        raise TetherError(f"--baseline {name}: it holds no case results" + (" with those tags" if tag else ""))
    ids = {c.id for c in cases}
    if not ids & {r.case_id for r in results}:
        sample = ", ".join(sorted({r.case_id for r in results})[:3])
        raise TetherError(
            f"--baseline {name}: none of its {len({r.case_id for r in results})} cases ({sample}, ...) is among "
            f"the {len(ids)} cases being run; compare against a baseline of these cases"
        )
    return base.model_copy(update={"results": results})


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
        f"vs {c.run_a}: pass rate {c.pass_rate_a:.3f} -> {c.pass_rate_b:.3f} (drop {c.pass_rate_drop:+.3f}) "
        f"on {c.common_cases} common cases; fixed {len(c.fixed)}, broken {len(c.broken)} "
        f"({c.regressions} counted, tolerance {c.max_regressions}); McNemar p={c.p_value:.4f} "
        + ("(significant)" if c.significant else "(not significant)")
        + (" [red]gate: FAIL[/]" if c.regression else " gate: pass")
    )
    for reason in c.reasons:
        out.print(f"  [red]fails:[/] {escape(reason)}")
    for cid in c.broken:
        out.print(f"  [red]broken[/] {escape(cid)}" + (" (flaky)" if cid in c.broken_flaky else ""))
    for cid in c.fixed:
        out.print(f"  [green]fixed[/] {escape(cid)}")


@eval_app.command("compare")
def eval_compare(
    run_a: Annotated[str, typer.Argument(help="the earlier run (id, id prefix, 'previous')")],
    run_b: Annotated[str, typer.Argument(help="the later run (id, id prefix, 'latest')")],
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="significance level")] = 0.05,
    max_regressions: Annotated[
        int, typer.Option(min=0, help="regressed cases (flaky aside) allowed before the gate verdict is FAIL")
    ] = 0,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the cases that changed between two runs, test whether the difference is real (McNemar), and give
    the gate's verdict."""
    from tether.evals import compare_runs

    t = Tether.open(config)
    store = _eval_store(t)
    c = compare_runs(store.load(run_a), store.load(run_b), alpha, max_regressions=max_regressions)
    if as_json:
        _emit_json(c)
    else:
        _print_comparison(c)


@eval_app.command("from-feedback")
def eval_from_feedback(
    feedback: Annotated[
        Path | None,
        typer.Argument(help="feedback records, JSON Lines (see tether.contracts.Feedback); or --service"),
    ] = None,
    service: Annotated[
        bool, typer.Option("--service", help="read the feedback `tether serve` stored (service.data_path)")
    ] = False,
    tenant: Annotated[str | None, typer.Option("--tenant", help="with --service: only this tenant's")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="where to write the draft cases")] = Path(
        "evals/drafts/from_feedback.yaml"
    ),
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn thumbs-down feedback into draft eval cases for review (feedback becomes tests)."""
    from tether.evals._feedback import draft_cases, load_feedback, write_drafts

    if (feedback is None) == (not service):
        raise RequestError("name a feedback file, or --service for the service's stored feedback (one of the two)")
    if feedback is not None:
        records = load_feedback(feedback)
    else:
        from tether.config import load_settings, resolve_path
        from tether.service._data import ServiceData

        settings = load_settings(config)
        path = resolve_path(settings.service.data_path, settings.root)
        if not path.is_file():
            raise DataError(f"{path}: no service data yet (`tether serve` stores feedback there)")
        data = ServiceData(path)
        try:
            records = [r.feedback for r in data.feedback(tenant, limit=1_000_000)]
        finally:
            data.close()
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
