"""`tether trace ...`: list the traced requests and show every stage of one, from the local trace store.

Reads the store only (``tracing.path`` of tether.yaml, or ``--store``); never imports OpenTelemetry.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, out, trace_app
from tether.trace._store import SpanRecord, TraceDetail, TraceError, TraceReader

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="the trace store file (default: tracing.path of the config)")
]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _store(store: Path | None, config: Path | None) -> Path:
    if store is not None:
        return store
    from tether.config import load_settings, resolve_path

    settings = load_settings(config)
    return resolve_path(settings.tracing.path, settings.root)


def parse_since(text: str, now: datetime | None = None) -> str:
    """``1h``, ``30m``, ``2d``, ``1w`` (that long ago) or an ISO date or time (UTC unless it names a zone), as the
    store's UTC ISO text.

    Raises:
        TraceError: ``text`` is neither.
    """
    now = now or datetime.now(UTC)
    value = text.strip()
    m = _DURATION.fullmatch(value.lower())
    if m:
        when = now - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    else:
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise TraceError(
                f"--since {text!r} is neither a duration (30m, 1h, 2d, 1w) nor a date or time (2025-01-31, "
                "2025-01-31T12:00)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _printable(text: str) -> str:
    """Control and format characters (ANSI escapes, bidi overrides) shown as escapes, not obeyed by the terminal."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


def _line(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _clip(text: str, width: int) -> str:
    one = _printable(text.replace("\n", " "))
    return one if len(one) <= width else one[: width - 1] + "…"


def _when(iso: str) -> str:
    return iso[:19].replace("T", " ")


@trace_app.command("list")
def trace_list(
    since: Annotated[
        str | None, typer.Option("--since", help="only traces this recent: 30m, 1h, 2d, 1w, or a UTC date/time")
    ] = None,
    abstained: Annotated[bool, typer.Option("--abstained", help="only requests that abstained")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="show the newest N; 0 = all")] = 20,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List traced requests, newest first: id, time (UTC), name, question, abstained, milliseconds."""
    path = _store(store, config)
    cutoff = None if since is None else parse_since(since)
    with TraceReader(path) as reader:
        traces = reader.traces(since=cutoff, abstained=True if abstained else None, limit=limit)
    if as_json:
        _emit_json({"path": str(path), "traces": [t.model_dump(mode="json") for t in traces]})
        return
    if not traces:
        _line(f"no traces{' matching' if since or abstained else ''} in {path}")
        return
    _line(f"{'id':<16}  {'time (UTC)':<19}  {'name':<14}  {'ms':>9}  {'abstained':<9}  question")
    for t in traces:
        flag = "-" if t.abstained is None else "yes" if t.abstained else "no"
        err = " (error)" if t.status == "error" else ""
        _line(
            f"{t.trace_id[:16]:<16}  {_when(t.started):<19}  {_clip(t.name, 14):<14}  {t.ms:>9.2f}  {flag:<9}  "
            f"{_clip(t.question or '', 80)}{err}"
        )
    plural = "" if len(traces) == 1 else "s"
    _line(f"{len(traces)} trace{plural} in {path}, newest first (`tether trace show ID` shows one; a prefix will do)")


@trace_app.command("show")
def trace_show(
    trace_id: Annotated[str, typer.Argument(help="the trace id, or the start of it", show_default=False)],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one request: every stage in order with its timing, status and attributes (evidence, scores,
    decisions, the exact prompt sent)."""
    path = _store(store, config)
    with TraceReader(path) as reader:
        detail = reader.get(trace_id)
    if as_json:
        _emit_json(detail.model_dump(mode="json"))
        return
    for line in render(detail):
        _line(line)


def render(detail: TraceDetail) -> list[str]:
    """``detail`` as the lines `tether trace show` prints."""
    lines = [f"trace {detail.trace_id}"]
    root = next((s for s in detail.spans if s.parent is None), None)
    if detail.complete and root is not None:
        lines.append(_head(root))
        lines += _attributes(detail.attributes, "    ")
    else:
        lines.append("  (incomplete: the request's own span was never stored; its stages follow)")
    t0 = _parse(detail.started)
    for span in detail.spans:
        if span is root:
            continue
        offset = (_parse(span.started) - t0).total_seconds() * 1000
        lines.append("")
        lines.append(f"  +{offset:.2f} ms  {_head(span, when=False)}")
        lines += _attributes(span.attributes, "      ")
    return lines


def _head(span: SpanRecord, *, when: bool = True) -> str:
    status = "ok" if span.status == "ok" else f"ERROR: {_clip(span.error or '', 200)}"
    at = f"  {_when(span.started)}.{span.started[20:23]} UTC" if when else ""
    return f"{_printable(span.name)}{at}  {span.ms:.2f} ms  {status}"


def _parse(iso: str) -> datetime:
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def _attributes(attrs: dict[str, Any], indent: str) -> list[str]:
    lines = []
    for key in sorted(attrs):
        text = _pretty(attrs[key])
        name = _printable(key)
        if "\n" in text:
            lines.append(f"{indent}{name}:")
            lines += [f"{indent}  {_printable(part)}" for part in text.split("\n")]
        else:
            lines.append(f"{indent}{name}: {_printable(text)}")
    return lines


def _pretty(value: Any) -> str:
    """Strings holding JSON (dicts, lists) are shown indented; other strings as they are; the rest as JSON."""
    if isinstance(value, str):
        if value[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except ValueError:
                return str(value)
        else:
            return str(value)
    compact = json.dumps(value, ensure_ascii=False)
    if len(compact) <= 100:
        return compact
    return json.dumps(value, ensure_ascii=False, indent=2)
