"""`tether monitor report --html`: the drift report as one self-contained page with SVG plots (no scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from tether.monitor._drift import DriftReport

_W, _H, _PAD = 560, 170, 34
_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
.grid{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}figcaption{font-weight:600}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.alarm{background:#fde8e7}
svg text{font:11px system-ui,sans-serif;fill:#444}
"""


def _chart(title: str, xs: Sequence[int], ys: Sequence[float], alarms: Sequence[bool], ref: float | None) -> str:
    """A line over windows (alarmed windows as red dots), with the reference's value as a dashed line."""
    top = max([*ys, ref or 0.0, 1e-9]) * 1.15
    n = max(len(xs) - 1, 1)

    def px(i: int) -> float:
        return _PAD + i * (_W - 2 * _PAD) / n

    def py(v: float) -> float:
        return _H - _PAD + 10 - (v / top) * (_H - _PAD - 10)

    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" aria-label="{escape(title)}">',
        f'<line x1="{_PAD}" y1="{py(0):.1f}" x2="{_W - _PAD}" y2="{py(0):.1f}" stroke="#999"/>',
        f'<text x="2" y="{py(top / 1.15):.1f}">{top / 1.15:.3g}</text><text x="2" y="{py(0):.1f}">0</text>',
    ]
    if ref is not None:
        parts.append(
            f'<line x1="{_PAD}" y1="{py(ref):.1f}" x2="{_W - _PAD}" y2="{py(ref):.1f}" stroke="#888" '
            f'stroke-dasharray="4 3"/><text x="{_W - _PAD + 2}" y="{py(ref):.1f}">ref</text>'
        )
    points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(ys))
    parts.append(f'<polyline fill="none" stroke="#4e79a7" stroke-width="2" points="{points}"/>')
    for i, (v, a) in enumerate(zip(ys, alarms, strict=True)):
        parts.append(
            f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="{4 if a else 2.5}" fill="{"#d62728" if a else "#4e79a7"}">'
            f"<title>asks from {xs[i] + 1}: {v:.4g}{' (alarm)' if a else ''}</title></circle>"
        )
    step = max(1, len(xs) // 8)
    for i in range(0, len(xs), step):
        parts.append(f'<text x="{px(i) - 8:.1f}" y="{_H - 6}">{xs[i] + 1}</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(parts)}</figure>"


def _topics_chart(report: DriftReport) -> str:
    """Stacked bars of topic shares: the reference first, then each window."""
    columns = [("ref", [t.share for t in report.topics], False)] + [
        (str(w.start + 1), w.topic_shares, w.alarm) for w in report.windows
    ]
    bar = (_W - 2 * _PAD) / max(len(columns), 1)
    parts = [f'<svg viewBox="0 0 {_W} {_H + 20}" width="{_W}" height="{_H + 20}" role="img" aria-label="topic shares">']
    for i, (name, shares, alarm) in enumerate(columns):
        y = _H - 10.0
        for j, share in enumerate(shares):
            h = share * (_H - 20)
            parts.append(
                f'<rect x="{_PAD + i * bar:.1f}" y="{y - h:.1f}" width="{bar * 0.8:.1f}" height="{h:.1f}" '
                f'fill="{_COLOURS[j % len(_COLOURS)]}"><title>{escape(report.topics[j].label)}: {share:.0%}</title>'
                "</rect>"
            )
            y -= h
        colour = "#d62728" if alarm else "#444"
        parts.append(f'<text x="{_PAD + i * bar:.1f}" y="{_H + 6}" style="fill:{colour}">{escape(name)}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<li><span style="color:{_COLOURS[t.n % len(_COLOURS)]}">■</span> {escape(t.label or f"topic {t.n}")} '
        f"({t.share:.0%} of the reference)</li>"
        for t in report.topics
    )
    caption = "Topic shares (clusters of the reference's questions)"
    return f"<figure><figcaption>{caption}</figcaption>{''.join(parts)}<ul>{legend}</ul></figure>"


def render_html(report: DriftReport, *, source: str, asks: int) -> str:
    """The page: what was compared, a plot per signal over the windows, topic shares, and the table of windows."""
    ws = report.windows
    xs = [w.start for w in ws]
    alarms = [w.alarm for w in ws]
    charts = [
        _chart("Question drift (MMD²)", xs, [w.mmd2 for w in ws], alarms, None),
        _chart("Abstention rate", xs, [w.abstain_rate for w in ws], alarms, report.reference_abstain_rate),
        _chart("Mean latency (ms)", xs, [w.mean_ms for w in ws], alarms, report.reference_mean_ms),
    ]
    for name, ref in report.reference_rates.items():
        charts.append(_chart(name.replace("_", " ").capitalize(), xs, [w.rates[name] for w in ws], alarms, ref))
    first = next((w for w in ws if w.alarm), None)
    verdict = (
        "No drift found." if first is None else f"Drift from ask {first.start + 1}: {escape(', '.join(first.reasons))}."
    )
    names = list(report.reference_rates)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for w in ws:
        cells = "".join(f"<td>{w.rates[n]:.1%} (p {w.p_rates[n]:.3g})</td>" for n in names)
        rows.append(
            f'<tr class="{"alarm" if w.alarm else ""}"><td>{w.start + 1}-{w.start + w.size}</td><td>{w.mmd2:.4f} '
            f"(p {w.p_questions:.3g})</td><td>{w.p_topics:.3g}</td><td>{w.abstain_rate:.1%} (p {w.p_abstain:.3g})</td>"
            f"<td>{w.mean_ms:.0f} (p {w.p_latency:.3g})</td>{cells}<td>{escape(', '.join(w.reasons)) or '-'}</td></tr>"
        )
    return "\n".join(
        [
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>Tether monitor report</title><style>{_STYLE}</style></head><body>",
            "<h1>Monitor report</h1>",
            f"<p>{asks} asks in {escape(source)}; reference: the first {report.reference_size}; windows of "
            f"{report.window}; alpha {report.alpha} per window (Bonferroni over its tests).</p>",
            f"<p><strong>{verdict}</strong></p>",
            '<div class="grid">',
            *charts,
            _topics_chart(report) if report.topics else "",
            "</div>",
            "<table><tr><th>asks</th><th>MMD²</th><th>p(topics)</th><th>abstained</th><th>ms</th>"
            f"{head}<th>alarm</th></tr>",
            *rows,
            "</table></body></html>",
        ]
    )
