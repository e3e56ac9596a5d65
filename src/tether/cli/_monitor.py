"""`tether monitor report`: have the questions users ask, or the abstention and latency rates, drifted?

Reads the asks in the local trace store (oldest first), embeds their questions with the configured embedder, and
tests each window of requests against the first ones (docs/safety.md, monitoring).
"""

from __future__ import annotations

import math
from typing import Annotated

import typer

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, monitor_app, out
from tether.cli._trace import StoreOpt, _line, _store, parse_since
from tether.errors import RequestError
from tether.trace._store import TraceReader


@monitor_app.command("report")
def report(
    reference: Annotated[
        int, typer.Option("--reference", min=10, help="the first N asks are the reference (default 200)")
    ] = 200,
    window: Annotated[int, typer.Option("--window", min=10, help="asks per window tested against it")] = 50,
    alpha: Annotated[
        float, typer.Option("--alpha", min=0.0001, max=0.5, help="false-alarm rate per window (three tests share it)")
    ] = 0.01,
    since: Annotated[str | None, typer.Option("--since", help="only asks this recent: 7d, 2w, or a UTC date")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Test each window of asks against the first ones: question drift (MMD over embeddings, permutation test),
    abstention rate (two-proportion z-test) and latency (Welch). Exit 1 when a window alarms."""
    from tether import Tether
    from tether.monitor import drift_report

    path = _store(store, config)
    cutoff = None if since is None else parse_since(since)
    with TraceReader(path) as reader:
        asks = [t for t in reader.traces(since=cutoff, limit=0) if t.question and t.abstained is not None]
    asks.reverse()  # oldest first
    if len(asks) < reference + 10:
        raise RequestError(
            f"{path} holds {len(asks)} answered asks; --reference {reference} needs at least {reference + 10} "
            "(lower --reference, or wait for more traffic)"
        )
    with Tether.open(config) as t:
        vectors = t.embedder.embed([a.question or "" for a in asks])
    r = drift_report(
        vectors,
        [bool(a.abstained) for a in asks],
        [a.ms for a in asks],
        reference=reference,
        window=window,
        alpha=alpha,
        permutations=max(1000, math.ceil(6 / alpha)),  # enough for p-values well below alpha / 3
    )
    if as_json:
        _emit_json({"path": str(path), "asks": len(asks), **r.model_dump(mode="json")})
    else:
        _line(
            f"{len(asks)} asks in {path}; reference: the first {reference} (abstained {r.reference_abstain_rate:.0%}, "
            f"mean {r.reference_mean_ms:.0f} ms); windows of {window}; alpha {alpha} per window"
        )
        _line(f"{'asks':>11}  {'MMD²':>8}  {'p(q)':>7}  {'abstain':>7}  {'p(a)':>7}  {'ms':>8}  {'p(ms)':>7}  alarm")
        for w in r.windows:
            span = f"{w.start + 1}-{w.start + w.size}"
            flag = ", ".join(w.reasons) if w.alarm else "-"
            _line(
                f"{span:>11}  {w.mmd2:8.4f}  {w.p_questions:7.4f}  {w.abstain_rate:7.0%}  {w.p_abstain:7.4f}  "
                f"{w.mean_ms:8.1f}  {w.p_latency:7.4f}  {flag}"
            )
        first = r.first_alarm
        out.print(
            "no drift found" if first is None else f"drift from ask {first.start + 1}: {', '.join(first.reasons)}"
        )
    if r.first_alarm is not None:
        raise typer.Exit(1)
