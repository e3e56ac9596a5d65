"""`tether calibrate CASES`: the support threshold's operating curve on your own eval cases, and a point on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from tether._api import Tether
from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _progress, app, err, out
from tether.errors import TetherError


@app.command()
def calibrate(
    cases: Annotated[Path, typer.Argument(help="eval cases (a YAML file or folder) with answerable and unanswerable")],
    objective: Annotated[
        str, typer.Option(metavar="[balanced|precision]", help="balanced accuracy, or precision of given answers")
    ] = "balanced",
    min_precision: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="with --objective precision: right answers among those given")
    ] = 0.9,
    rows: Annotated[int, typer.Option(min=3, help="curve rows to print (--json has them all)")] = 15,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pick the abstention threshold from your own eval cases.

    Asks every single-question case once with the threshold at 0, then sweeps it: an answerable case is right
    when its support reaches the threshold and its answer passes its checks; an unanswerable case
    (expect_abstain: true) when its support stays below. Prints the curve and the answer.threshold to set."""
    from tether.evals import load_cases
    from tether.evals._calibrate import calibrate as run_calibration
    from tether.evals._calibrate import case_outcomes

    if objective not in ("balanced", "precision"):
        raise TetherError(f"--objective must be balanced or precision, not {objective!r}")
    loaded = load_cases(cases)
    with Tether.open(config) as t:
        current = t.answerer().threshold
        with _progress("[bold]calibrate", disable=as_json or not err.is_terminal) as bar:
            task = bar.add_task("", total=len(loaded))
            outcomes, skipped = case_outcomes(t, loaded, progress=lambda d, n: bar.update(task, completed=d, total=n))
    obj: Literal["balanced", "precision"] = "balanced" if objective == "balanced" else "precision"
    cal = run_calibration(outcomes, current, objective=obj, min_precision=min_precision, skipped=skipped)
    if as_json:
        _emit_json(cal)
        return
    table = Table(title=f"{cal.answerable} answerable, {cal.unanswerable} unanswerable cases ({len(skipped)} skipped)")
    for col in ("threshold", "answered", "right", "abstained on unanswerable", "precision", "balanced"):
        table.add_column(col, justify="right")
    step = max(1, len(cal.curve) // rows)
    shown = cal.curve[::step]
    marks = {p.threshold for p in (cal.current, cal.chosen) if p is not None}
    by_threshold = {p.threshold: p for p in [*shown, *(p for p in cal.curve if p.threshold in marks)]}
    shown = [by_threshold[k] for k in sorted(by_threshold)]
    for p in shown:
        tag = " *" if cal.chosen is not None and p.threshold == cal.chosen.threshold else ""
        table.add_row(
            f"{p.threshold:.3f}{tag}",
            f"{p.answered:.2f}",
            f"{p.answered_right:.2f}",
            f"{p.abstained_unanswerable:.2f}",
            f"{p.precision:.2f}",
            f"{p.balanced:.3f}",
        )
    out.print(table)
    out.print("* the chosen point; answered/right: shares of the answerable cases")
    c = cal.current
    out.print(
        f"now (answer.threshold {c.threshold:.3f}): balanced {c.balanced:.3f}, answered right {c.answered_right:.2f}, "
        f"abstained on unanswerable {c.abstained_unanswerable:.2f}, precision {c.precision:.2f}"
    )
    if cal.chosen is None:
        out.print(f"no threshold gives answers that are {min_precision:g} precise on these cases")
        raise typer.Exit(1)
    ch = cal.chosen
    out.print(
        f"chosen ({cal.objective}): balanced {ch.balanced:.3f}, answered right {ch.answered_right:.2f}, "
        f"abstained on unanswerable {ch.abstained_unanswerable:.2f}, precision {ch.precision:.2f}"
    )
    out.print(f"set in tether.yaml:  answer:\\n  threshold: {ch.threshold:.3f}".replace("\\n", "\n"))
    if len(outcomes) < 30:
        out.print(f"[yellow]only {len(outcomes)} usable cases: the chosen point is a rough guide[/]")
