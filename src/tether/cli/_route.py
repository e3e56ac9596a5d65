"""`tether route train|explain`: the learned router that picks where each request starts in the cascade."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _progress, err, out, route_app
from tether.errors import TetherError


def _runs_given(specs: list[str], store: Any) -> dict[str, Any]:
    from tether.cli._eval import _load_baseline

    runs: dict[str, Any] = {}
    for spec in specs:
        tier, sep, ref = spec.partition("=")
        if not sep or not tier or not ref:
            raise TetherError(f"--run {spec!r}: write TIER=RUN (a run id, 'latest', or a report .json)")
        runs[tier] = _load_baseline(store, ref)
    return runs


@route_app.command("train")
def train(
    cases: Annotated[
        Path | None, typer.Argument(help="eval cases to run once per tier of routing.cascade (a file or folder)")
    ] = None,
    run: Annotated[
        list[str] | None,
        typer.Option("--run", help="TIER=RUN: an existing eval run of that tier (id, 'latest' or .json); repeat"),
    ] = None,
    out_path: Annotated[Path, typer.Option("--out", help="where to write the router")] = Path(".tether/router.json"),
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="pass rate the router may give up against the best single tier")
    ] = 0.02,
    tenant: Annotated[str | None, typer.Option("--tenant", help="ask as this tenant (tenants: in tether.yaml)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn where requests should start in routing.cascade, from which tier passed which eval case.

    With CASES, each tier answers every case (its run is stored: `tether eval runs`); with --run, earlier runs are
    used. Set `routing.router` to the written file to use it."""
    from tether import Tether
    from tether.cli._eval import _eval_store
    from tether.evals import EvalRunner, RunOptions, load_cases
    from tether.router._train import pinned, train_router

    t = Tether.open(config)
    if not t.settings.routing.cascade:
        raise TetherError("routing.cascade is empty: name the tiers to route between first (docs/routing.md)")
    store = _eval_store(t)
    runs = _runs_given(run or [], store)
    if cases is not None:
        loaded = [c for c in load_cases(cases) if not c.input.context_docs]
        if not loaded:
            raise TetherError(f"{cases}: no case asks the main index (cases with context_docs are left out)")
        todo = [x for x in t.settings.routing.cascade if x not in runs]
        for tier in todo:
            target = Tether(pinned(t.settings, tier))
            runner = EvalRunner(target, store, RunOptions(tenant=tenant))
            with _progress(f"[bold]{tier}", disable=as_json or not err.is_terminal) as bar:
                task = bar.add_task("", total=len(loaded))

                def tick(done: int, total: int, task: Any = task, bar: Any = bar) -> None:
                    bar.update(task, completed=done, total=total)

                runs[tier] = runner.run(loaded, str(cases), progress=tick)
            target.close()
            if not as_json:
                s = runs[tier].summary
                err.print(f"{tier}: run {s.run_id}, pass rate {s.pass_rate:.1%}, p50 {s.latency_p50_ms:.0f} ms")
    elif not runs:
        raise TetherError("give eval CASES to run, or --run TIER=RUN for each tier of routing.cascade")
    model = train_router(t, runs, tolerance=tolerance, tenant=tenant)
    target_path = out_path if out_path.is_absolute() else t.settings.root / out_path
    target_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(target_path)
    if as_json:
        _emit_json({"path": str(target_path), "min_pass": model.min_pass, "metrics": model.metrics})
        return
    m = model.metrics
    out.print(f"router written to {escape(str(target_path))} (min_pass {model.min_pass:.2f})")
    out.print(f"questions: {int(m['questions'])}; figures below are 5-fold cross-validated")
    for tier in model.tiers:
        out.print(f"  {tier:16s} alone: pass {m[f'alone_{tier}_pass_rate']:.1%}, {m[f'alone_{tier}_ms']:.0f} ms")
    shares = ", ".join(f"{o} {m[f'cv_share_{o}']:.0%}" for o in model.options())
    out.print(f"  routed          : pass {m['cv_pass_rate']:.1%}, {m['cv_ms']:.0f} ms, cost {m['cv_cost']:.6f}")
    out.print(f"  starts at       : {shares}")
    err.print(f"use it: routing.router: {escape(str(out_path))} in tether.yaml")


@route_app.command("explain")
def explain(
    question: Annotated[str, typer.Argument(help="the question to route")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="ask as this tenant (tenants: in tether.yaml)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where QUESTION would start in the cascade and why (rules, features, each tier's probability); nothing
    is asked of any model."""
    from tether import Tether
    from tether.router import by_rules, request_features

    t = Tether.open(config)
    r = t.settings.routing
    if not r.cascade:
        raise TetherError("routing.cascade is empty: there is nothing to route between")
    fast = t.fast_answerer()
    vec = t.retriever().embed_query(question)
    hits = t.search(question, query_vector=vec, tenant=tenant)
    probe = fast.answer(question, hits, vec, config_hash=t.settings.config_hash)
    idf, max_idf = fast.question_idf(question)
    feats = request_features(question, hits, probe, idf, max_idf)
    role = t.settings.policy.role
    decision = by_rules(r.rules, question, feats, tenant or t.settings.policy.tenant, role)
    router = t.router()
    if decision is None and router is not None:
        decision = router.decide(feats, vec, list(r.cascade), r.min_pass)
    detail: dict[str, Any] = (
        decision.detail()
        if decision is not None
        else {"choice": r.cascade[0], "reason": "no rule matched and there is no router", "features": feats}
    )
    if as_json:
        _emit_json(detail)
        return
    out.print(f"starts at: [bold]{escape(str(detail['choice']))}[/bold] ({escape(str(detail['reason']))})")
    for name, p in dict(detail.get("p", {})).items():
        out.print(f"  p({name}) = {p:.3f}")
    out.print("features: " + escape(json.dumps({k: round(v, 3) for k, v in feats.items()})))
