"""`tether monitor report|metrics`: have the questions users ask, or the outcome rates, drifted? What are they now?

Reads the asks in the local trace store (oldest first), embeds their questions with the configured embedder, and
tests each window of requests against the first ones (docs/safety.md, monitoring).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, monitor_app, out
from tether.cli._trace import StoreOpt, _line, _store, parse_since
from tether.errors import RequestError
from tether.trace._store import AskOutcome, TraceReader

# name in the report -> the outcome it counts; a rate enters the tests only once it has occurred
RATES: dict[str, Callable[[AskOutcome], bool]] = {
    "policy_refusals": lambda a: a.policy_refused,
    "injection_flags": lambda a: a.injection_flagged,
    "verifier_rejections": lambda a: a.claims_rejected,
}
SinceOpt = Annotated[str | None, typer.Option("--since", help="only asks this recent: 7d, 2w, or a UTC date")]


def _asks(store: Path | None, config: Path | None, since: str | None) -> tuple[Path, list[AskOutcome]]:
    path = _store(store, config)
    with TraceReader(path) as reader:
        return path, reader.ask_outcomes(since=None if since is None else parse_since(since))


@monitor_app.command("report")
def report(
    reference: Annotated[
        int, typer.Option("--reference", min=10, help="the first N asks are the reference (default 200)")
    ] = 200,
    window: Annotated[int, typer.Option("--window", min=10, help="asks per window tested against it")] = 50,
    alpha: Annotated[
        float, typer.Option("--alpha", min=0.0001, max=0.5, help="false-alarm rate per window (its tests share it)")
    ] = 0.01,
    topics: Annotated[
        int, typer.Option("--topics", min=0, max=30, help="question clusters whose shares are tested (0: none)")
    ] = 6,
    html: Annotated[
        Path | None, typer.Option("--html", help="also write a self-contained HTML report with plots")
    ] = None,
    since: SinceOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Test each window of asks against the first ones: question drift (MMD over embeddings, permutation test),
    topic shares (chi-square over clusters of the reference's questions), abstention, policy refusal, injection
    flag and verifier rejection rates (two-proportion z-tests) and latency (Welch). Exit 1 when a window alarms."""
    from tether import Tether
    from tether.monitor import drift_report, render_html

    path, asks = _asks(store, config, since)
    if len(asks) < reference + 10:
        raise RequestError(
            f"{path} holds {len(asks)} answered asks; --reference {reference} needs at least {reference + 10} "
            "(lower --reference, or wait for more traffic)"
        )
    with Tether.open(config) as t:
        vectors = t.embedder.embed([a.question for a in asks])
    rates = {name: [f(a) for a in asks] for name, f in RATES.items()}
    rates = {name: flags for name, flags in rates.items() if any(flags)}
    tests = 3 + len(rates) + (1 if topics > 1 else 0)
    r = drift_report(
        vectors,
        [a.abstained for a in asks],
        [a.ms for a in asks],
        reference=reference,
        window=window,
        alpha=alpha,
        permutations=max(1000, math.ceil(2 * tests / alpha)),  # enough for p-values well below alpha / tests
        rates=rates,
        texts=[a.question for a in asks],
        topics=topics,
    )
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(r, source=str(path), asks=len(asks)), encoding="utf-8")
    if as_json:
        _emit_json({"path": str(path), "asks": len(asks), **r.model_dump(mode="json")})
    else:
        _line(
            f"{len(asks)} asks in {path}; reference: the first {reference} (abstained {r.reference_abstain_rate:.0%}, "
            f"mean {r.reference_mean_ms:.0f} ms"
            + "".join(f", {k.replace('_', ' ')} {v:.0%}" for k, v in r.reference_rates.items())
            + f"); windows of {window}; alpha {alpha} per window"
        )
        if r.topics:
            _line("topics: " + "; ".join(f"{t.label or t.n} {t.share:.0%}" for t in r.topics))
        extra = "".join(f"  {k[:9]:>9}" for k in r.reference_rates)
        _line(
            f"{'asks':>11}  {'MMD²':>8}  {'p(q)':>7}  {'p(topic)':>8}  {'abstain':>7}  {'p(a)':>7}  {'ms':>8}  "
            f"{'p(ms)':>7}{extra}  alarm"
        )
        for w in r.windows:
            span = f"{w.start + 1}-{w.start + w.size}"
            flag = ", ".join(w.reasons) if w.alarm else "-"
            cells = "".join(f"  {w.rates[k]:>9.0%}" for k in r.reference_rates)
            _line(
                f"{span:>11}  {w.mmd2:8.4f}  {w.p_questions:7.4f}  {w.p_topics:8.4f}  {w.abstain_rate:7.0%}  "
                f"{w.p_abstain:7.4f}  {w.mean_ms:8.1f}  {w.p_latency:7.4f}{cells}  {flag}"
            )
        first = r.first_alarm
        out.print(
            "no drift found" if first is None else f"drift from ask {first.start + 1}: {', '.join(first.reasons)}"
        )
        if html is not None:
            out.print(f"report: {html}")
    if r.first_alarm is not None:
        raise typer.Exit(1)


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


@monitor_app.command("metrics")
def metrics(
    last: Annotated[int, typer.Option("--last", min=1, help="the most recent N asks")] = 200,
    since: SinceOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The outcome rates and latency of the most recent asks, in Prometheus' text format (for a textfile
    collector or a scrape by the service), or --json."""
    path, asks = _asks(store, config, since)
    recent = asks[-last:]
    n = len(recent)
    values = {
        "tether_asks": float(n),
        "tether_abstention_rate": sum(a.abstained for a in recent) / n if n else 0.0,
        **{f"tether_{name}_rate": sum(bool(f(a)) for a in recent) / n if n else 0.0 for name, f in RATES.items()},
        "tether_latency_ms_p50": _quantile([a.ms for a in recent], 0.5),
        "tether_latency_ms_p95": _quantile([a.ms for a in recent], 0.95),
    }
    if as_json:
        _emit_json({"path": str(path), "window": n, **values})
        return
    helps = {
        "tether_asks": "asks in the window",
        "tether_abstention_rate": "share of asks answered 'not in the documents' or withheld",
        "tether_policy_refusals_rate": "share of asks a policy rule denied or sent for approval",
        "tether_injection_flags_rate": "share of asks whose passages included one flagged as a prompt injection",
        "tether_verifier_rejections_rate": "share of asks where the verifier rejected a drafted claim (llm mode)",
        "tether_latency_ms_p50": "median ask latency in the window (ms)",
        "tether_latency_ms_p95": "95th percentile ask latency in the window (ms)",
    }
    for name, v in values.items():
        out.print(f"# HELP {name} {helps[name]}\n# TYPE {name} gauge\n{name} {v:.6g}", highlight=False)
