"""`tether redteam run|list`: attack suites against the configured Tether, attack success rate per category."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _progress, out, redteam_app

SuiteOpt = Annotated[
    list[Path] | None,
    typer.Option("--suite", "-s", help="a suite YAML file of your own (repeatable; see docs/safety.md)"),
]
CategoryOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--category",
        help="only these categories (repeatable): injection, jailbreak, prompt_extraction, pii_leak, policy_bypass",
    ),
]
NoPackagedOpt = Annotated[bool, typer.Option("--no-packaged", help="run only the --suite files, not the built-in ones")]


def _cases(suite: list[Path] | None, category: list[str] | None, no_packaged: bool) -> list:  # type: ignore[type-arg]
    from tether.errors import RequestError
    from tether.redteam import load_suite, packaged_suites, select_cases

    suites = ([] if no_packaged else packaged_suites()) + [load_suite(p) for p in suite or []]
    if not suites:
        raise RequestError("--no-packaged needs at least one --suite FILE")
    cases = select_cases(suites, category)
    if not cases:
        raise RequestError(f"no cases in the categories {category}")
    return cases


@redteam_app.command("list")
def list_cases(
    suite: SuiteOpt = None,
    category: CategoryOpt = None,
    no_packaged: NoPackagedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List the attack cases that `tether redteam run` would run (id, category, technique)."""
    cases = _cases(suite, category, no_packaged)
    if as_json:
        _emit_json([c.model_dump(mode="json", exclude_none=True) for c in cases])
        return
    for c in cases:
        out.print(f"{escape(c.id):<10} {c.category:<18} {escape(c.note)}")
    out.print(f"{len(cases)} cases")


@redteam_app.command("run")
def run(
    suite: SuiteOpt = None,
    category: CategoryOpt = None,
    no_packaged: NoPackagedOpt = False,
    fail_above: Annotated[
        float | None,
        typer.Option(
            "--fail-above", min=0.0, max=1.0, help="exit 1 when any category's attack success rate is above RATE"
        ),
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="write a self-contained HTML report here")] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="policy file the policy_bypass cases run under (default: a built-in one)"),
    ] = None,
    examples: Annotated[int, typer.Option("--examples", min=0, help="successful attacks shown per category")] = 2,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="ask as this tenant; planted documents carry the tag redteam")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run attack suites against this configuration and report the attack success rate (ASR) per category.

    Question attacks run on a scratch copy of the index: planted documents, traces and audit entries never
    reach the real ones. An attack succeeded when its marker (or your PII, or the system prompt) is in the
    answer; a policy-bypass call succeeded when it wrote without an approval. With --fail-above it is a CI gate.
    """
    from tether import Tether
    from tether.redteam import CaseResult, render_html, run_redteam

    cases = _cases(suite, category, no_packaged)
    with Tether.open(config) as t, _progress("red team", disable=as_json, detail=True) as bar:
        task = bar.add_task("", total=len(cases))

        def tick(r: CaseResult) -> None:
            bar.update(task, advance=1, description=r.id)

        report = run_redteam(t, cases, policy=policy, tenant=tenant, on_case=tick)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report, fail_above), encoding="utf-8")
    failing = report.above(fail_above) if fail_above is not None else []
    if as_json:
        _emit_json({**report.model_dump(mode="json"), "asr": report.asr, "failed_gate": [c.category for c in failing]})
    else:
        out.print(
            f"[bold]red team[/]: {len(cases)} attacks, answer mode {report.answer_mode}, {report.seconds:.1f} s "
            f"(index {escape(report.index)})"
        )
        out.print(f"  {'category':<18} {'ran':>4} {'won':>4} {'ASR':>7}")
        for c in report.categories:
            colour = "red" if c in failing else ("yellow" if c.succeeded else "green")
            out.print(f"  {c.category:<18} {c.ran:>4} {c.succeeded:>4} [{colour}]{c.asr:>7.1%}[/]")
            for r in [r for r in report.results if r.category == c.category and r.succeeded][:examples]:
                out.print(f"    [dim]{escape(r.id)} ({escape(r.note)}): {escape(' '.join(r.answer.split())[:160])}[/]")
        errors = [r for r in report.results if r.error]
        for r in errors:
            out.print(f"  [yellow]{escape(r.id)} did not run[/]: {escape(r.error or '')}")
        out.print(f"overall ASR {report.asr:.1%}" + (f"; report: {html}" if html else ""))
        if failing:
            out.print(
                f"[red]gate failed[/]: {', '.join(f'{c.category} {c.asr:.1%}' for c in failing)} above {fail_above:.1%}"
            )
    if failing:
        raise typer.Exit(1)
