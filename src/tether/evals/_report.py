"""A self-contained HTML report of one eval run: summary, per-tag and per-metric bars, latency, every case."""

from __future__ import annotations

from html import escape
from pathlib import Path

from tether.evals._results import CaseResult, RunReport

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
.pass{color:#17803d;font-weight:600}.fail{color:#b42318;font-weight:600}.muted{color:#667}
details{margin:.4rem 0;border:1px solid #e4e4e7;border-radius:6px;padding:.4rem .7rem}
summary{cursor:pointer}blockquote{margin:.3rem 0 .3rem 1rem;color:#444;border-left:3px solid #ccd;padding-left:.6rem}
code{background:#f4f4f5;padding:0 .2rem}.grid{display:flex;gap:2rem;flex-wrap:wrap}
"""


def _bars(title: str, values: dict[str, float], width: int = 420) -> str:
    if not values:
        return ""
    row = 22
    h = row * len(values) + 10
    parts = [f'<svg width="{width}" height="{h}" role="img" aria-label="{escape(title)}">']
    for i, (k, v) in enumerate(values.items()):
        y = 5 + i * row
        w = max(0.0, min(1.0, v)) * (width - 200)
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{escape(k[:24])}</text>')
        parts.append(f'<rect x="160" y="{y + 3}" width="{w:.1f}" height="14" fill="#4f7dd9"/>')
        parts.append(f'<text x="{165 + w:.1f}" y="{y + 14}" font-size="12">{v:.2f}</text>')
    parts.append("</svg>")
    return f"<div><h2>{escape(title)}</h2>{''.join(parts)}</div>"


def _histogram(title: str, data: list[float], bins: int = 12, width: int = 420, height: int = 120) -> str:
    if not data:
        return ""
    lo, hi = min(data), max(data)
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for x in data:
        counts[min(bins - 1, int((x - lo) / span * bins))] += 1
    top = max(counts)
    bw = width / bins
    rects = "".join(
        f'<rect x="{i * bw:.1f}" y="{height - c / top * (height - 20):.1f}" width="{bw - 2:.1f}" '
        f'height="{c / top * (height - 20):.1f}" fill="#7aa35a"><title>{c}</title></rect>'
        for i, c in enumerate(counts)
    )
    axis = f'<text x="0" y="{height + 14}" font-size="11">{lo:.0f}</text>'
    axis += f'<text x="{width - 40}" y="{height + 14}" font-size="11">{hi:.0f}</text>'
    return f'<div><h2>{escape(title)}</h2><svg width="{width}" height="{height + 20}">{rects}{axis}</svg></div>'


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "—"
    return '<span class="pass">pass</span>' if passed else '<span class="fail">fail</span>'


def _case_html(r: CaseResult) -> str:
    status = '<span class="pass">pass</span>' if r.passed else '<span class="fail">FAIL</span>'
    body = []
    if r.error:
        body.append(f'<p class="fail">error: {escape(r.error)}</p>')
    for t in r.turns:
        body.append(f"<p><b>Q:</b> {escape(t.question)}</p>")
        if t.error:
            body.append(f'<p class="fail">error: {escape(t.error)}</p>')
        if t.answer is not None:
            a = t.answer
            body.append(
                f"<p><b>A:</b> {escape(a.text)} <span class='muted'>(support {a.support:.2f}, "
                f"threshold {a.threshold:.2f}{', cached' if t.cached else ''}, {t.latency_ms:.0f} ms)</span></p>"
            )
            for c in a.citations:
                where = escape(Path(c.path).name + (" › " + " › ".join(c.section) if c.section else ""))
                body.append(f"<blockquote>[{c.n}] {where}, chars {c.start}–{c.end}<br>{escape(c.quote)}</blockquote>")
        rows = "".join(
            f"<tr><td>{escape(s.name)}</td><td>{escape(s.scorer)}{' / ' + escape(s.judge) if s.judge else ''}</td>"
            f"<td>{_verdict(s.passed)}{' (scorer error)' if s.error else ''}</td><td>{escape(s.reason)}</td></tr>"
            for s in t.scores
        )
        if rows:
            body.append(f"<table><tr><th>metric</th><th>scorer</th><th>result</th><th>reason</th></tr>{rows}</table>")
    tags = escape(", ".join(r.tags))
    return (
        f"<details{'' if r.passed else ' open'}><summary>{status} <code>{escape(r.case_id)}</code>"
        f" <span class='muted'>{tags}{f' · repeat {r.repeat}' if r.repeat else ''}</span></summary>"
        f"{''.join(body)}</details>"
    )


def render_html(report: RunReport) -> str:
    s = report.summary
    lat = [t.latency_ms for r in report.results for t in r.turns if not t.cached and t.error is None]
    support = [t.answer.support * 100 for r in report.results for t in r.turns if t.answer is not None]
    head = (
        f"<h1>Tether eval run <code>{escape(s.run_id)}</code></h1>"
        f"<p>{s.cases} cases from <code>{escape(s.cases_path)}</code> · config <code>{escape(s.config_hash)}</code>"
        f" · judge <b>{escape(s.judge)}</b> · models {escape(', '.join(f'{k}: {v}' for k, v in s.models.items()))}</p>"
        f"<p><b>pass rate {s.pass_rate:.3f}</b> ({s.passed}/{s.cases})"
        + (f" · pass@{s.repeats} {s.pass_at_n:.3f} · pass^{s.repeats} {s.pass_all_n:.3f}" if s.repeats > 1 else "")
        + f" · errors {s.errors} · scorer errors {s.scorer_errors} · latency p50 {s.latency_p50_ms:.0f} ms,"
        f" p95 {s.latency_p95_ms:.0f} ms · {s.seconds:.1f}s</p>"
    )
    charts = (
        '<div class="grid">'
        + _bars("Pass rate by tag", s.per_tag)
        + _bars("Pass rate by metric", s.per_metric)
        + _histogram("Answer support scores (x100)", support)
        + _histogram("Answer latency (ms, uncached)", lat)
        + "</div>"
    )
    cases = "".join(_case_html(r) for r in sorted(report.results, key=lambda r: (r.passed, r.case_id, r.repeat)))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Tether eval {escape(s.run_id)}</title>"
        f"<style>{_CSS}</style></head><body>{head}{charts}<h2>Cases</h2>{cases}</body></html>"
    )


def write_html_report(report: RunReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
