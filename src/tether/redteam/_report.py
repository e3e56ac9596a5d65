"""The red-team report as one self-contained HTML page (no scripts, no outside files; everything escaped)."""

from __future__ import annotations

from html import escape

from tether.redteam._run import CaseResult, RedteamReport

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f3f3}.bar{background:#eee;width:12rem;height:.9rem}
.bar span{display:block;height:100%;background:#b3261e}.ok{color:#1e6b2e}.bad{color:#b3261e;font-weight:600}
blockquote{margin:.3rem 0;padding:.3rem .6rem;background:#faf7f2;border-left:3px solid #c9a96e;white-space:pre-wrap}
.err{color:#8a5a00}caption{text-align:left;font-weight:600}
"""


def _outcome(r: CaseResult) -> str:
    if r.error is not None:
        return f'<span class="err">error: {escape(r.error)}</span>'
    if r.succeeded:
        return f'<span class="bad">attack succeeded</span> ({escape(", ".join(r.matched))})'
    how = " (the model complied; the answer did not carry it)" if r.model_complied else ""
    return '<span class="ok">defended</span>' + (" (abstained)" if r.abstained else "") + how


def render_html(report: RedteamReport, fail_above: float | None = None) -> str:
    """The report: attack success per category (with a bar), successful attacks as examples, then every case."""
    rows = []
    for c in report.categories:
        over = fail_above is not None and c.ran and c.asr > fail_above
        rows.append(
            f"<tr><td>{escape(c.category)}</td><td>{c.cases}</td><td>{c.ran}</td><td>{c.succeeded}</td>"
            f'<td class="{"bad" if over else ""}">{c.asr:.1%}</td>'
            f'<td><div class="bar" role="img" aria-label="{c.asr:.0%}"><span style="width:{c.asr * 100:.1f}%">'
            "</span></div></td></tr>"
        )
    gate = "" if fail_above is None else f" · gate: fail above {fail_above:.1%}"
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Tether red-team report</title><style>{_STYLE}</style></head><body>",
        "<h1>Red-team report</h1>",
        f"<p>{escape(report.started)} · {report.seconds:.1f} s · answer mode {escape(report.answer_mode)} · config "
        f"{escape(report.config_hash)} · index {escape(report.index)} · policy {escape(report.policy)}{gate}</p>",
        f"<p>Overall attack success rate: <strong>{report.asr:.1%}</strong> "
        f"({sum(c.succeeded for c in report.categories)} of {sum(c.ran for c in report.categories)} attacks).</p>",
        "<table><caption>Attack success rate by category</caption><tr><th>category</th><th>cases</th><th>ran</th>"
        "<th>succeeded</th><th>ASR</th><th></th></tr>",
        *rows,
        "</table>",
    ]
    wins = [r for r in report.results if r.succeeded]
    if wins:
        parts.append("<h2>Attacks that succeeded</h2>")
        for r in wins:
            parts.append(
                f"<h3>{escape(r.id)} · {escape(r.category)}</h3><p>{escape(r.note)}</p>"
                f"<p><strong>Asked:</strong> {escape(r.question)}</p><blockquote>{escape(r.answer)}</blockquote>"
                f"<p>matched: {escape(', '.join(r.matched))}</p>"
            )
    parts.append(
        "<h2>Every case</h2><table><tr><th>case</th><th>category</th><th>technique</th><th>outcome</th>"
        "<th>answer (excerpt)</th><th>ms</th></tr>"
    )
    for r in report.results:
        warn = "".join(f"<br><em>warning: {escape(w)}</em>" for w in r.warnings)
        parts.append(
            f"<tr><td>{escape(r.id)}</td><td>{escape(r.category)}</td><td>{escape(r.note)}</td><td>{_outcome(r)}</td>"
            f"<td>{escape(r.answer[:240])}{warn}</td><td>{r.ms:.0f}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "\n".join(parts)
