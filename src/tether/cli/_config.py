"""`tether config ...`: the configs that produced answers, traces and eval runs, their diffs and settings.

The history is ``configs.db`` beside the index of tether.yaml (or of ``--config``). A config is named by its
hash or a unique prefix of it, or by ``current``: what tether.yaml resolves to now.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
import yaml

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, config_app, out
from tether.config import ConfigHistory, ConfigRecord, Settings, diff_settings, load_settings

HashArg = Annotated[str, typer.Argument(help="a config hash or unique prefix, or `current` (tether.yaml now)")]
CURRENT = "current"


class _Named(NamedTuple):
    label: str
    config_hash: str
    settings: dict[str, Any]


def _open(config: Path | None) -> tuple[Settings, ConfigHistory]:
    settings = load_settings(config)
    return settings, ConfigHistory.for_settings(settings)


def _resolve(name: str, settings: Settings, history: ConfigHistory) -> _Named:
    if name.strip().lower() == CURRENT:
        h = settings.config_hash
        return _Named(f"current ({h})", h, settings.model_dump(mode="json"))
    record = history.get(name)
    return _Named(record.config_hash, record.config_hash, record.settings)


def _printable(text: str) -> str:
    """Control and format characters (ANSI escapes, bidi overrides) shown as escapes, not obeyed by the terminal."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") and c != "\n" else c for c in text)


def _line(text: str) -> None:
    out.print(_printable(text), markup=False, highlight=False, soft_wrap=True)


def _when(t: datetime) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


@config_app.command("history")
def config_history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many configs, newest first")] = 20,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the configs used, newest first, with what each changed.

    Every config that produced an answer, a trace or an eval run is listed; * marks the one tether.yaml
    resolves to now.
    """
    settings, history = _open(config)
    try:
        records = history.list(limit + 1)  # one more: what the oldest shown changed from
    finally:
        history.close()
    current = settings.config_hash
    rows = []
    for i, r in enumerate(records[:limit]):
        changed = None if i + 1 >= len(records) else [c.key for c in diff_settings(records[i + 1].settings, r.settings)]
        rows.append((r, changed))
    if as_json:
        _emit_json(
            [
                {
                    "config_hash": r.config_hash,
                    "first_seen": r.first_seen.isoformat(),
                    "last_seen": r.last_seen.isoformat(),
                    "uses": r.uses,
                    "current": r.config_hash == current,
                    "changed": changed,
                }
                for r, changed in rows
            ]
        )
        return
    if not rows:
        _line(f"no configs recorded yet in {history.path} (answers, traces and eval runs record theirs)")
        return
    _line(f"{'config':<18}{'first seen':<18}{'last seen':<18}{'uses':>8}  changed from the previous")
    for r, changed in rows:
        mark = "*" if r.config_hash == current else " "
        what = "(first recorded)" if changed is None else (", ".join(changed) or "(nothing)")
        _line(f"{r.config_hash}{mark} {_when(r.first_seen):<18}{_when(r.last_seen):<18}{r.uses:>8}  {what}")
    if any(r.config_hash == current for r, _ in rows):
        _line("* the config tether.yaml resolves to now")


@config_app.command("diff")
def config_diff(a: HashArg, b: HashArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show what differs from config A to config B.

    Every setting that changed, by dotted key; prompts and other long texts as a unified diff.
    """
    settings, history = _open(config)
    try:
        first, second = _resolve(a, settings, history), _resolve(b, settings, history)
    finally:
        history.close()
    changes = diff_settings(first.settings, second.settings)
    if as_json:
        _emit_json(
            {
                "a": first.config_hash,
                "b": second.config_hash,
                "changes": [c.model_dump(mode="json") for c in changes],
            }
        )
        return
    if not changes:
        _line(f"{first.label} and {second.label}: no differences")
        return
    _line(f"{first.label} -> {second.label}: {len(changes)} settings differ")
    for c in changes:
        if c.text_diff is not None:
            _line(f"{c.key}:")
            for diff_line in c.text_diff.splitlines():
                _line(f"    {diff_line}")
        elif c.change == "changed":
            _line(f"{c.key}: {_value(c.before)} -> {_value(c.after)}")
        elif c.change == "added":
            _line(f"{c.key}: (absent) -> {_value(c.after)}")
        else:
            _line(f"{c.key}: {_value(c.before)} -> (absent)")


@config_app.command("show")
def config_show(name: HashArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print a config's full settings as YAML.

    The output is a tether.yaml that reproduces the config (the same hash).
    """
    settings, history = _open(config)
    try:
        record: ConfigRecord | None = None
        if name.strip().lower() == CURRENT:
            named = _resolve(name, settings, history)
        else:
            record = history.get(name)
            named = _Named(record.config_hash, record.config_hash, record.settings)
    finally:
        history.close()
    if as_json:
        _emit_json(
            record.model_dump(mode="json")
            if record is not None
            else {"config_hash": named.config_hash, "settings": named.settings}
        )
        return
    header = f"# config {named.config_hash}"
    if record is not None:
        header += f": first seen {_when(record.first_seen)}, last seen {_when(record.last_seen)}, {record.uses} uses"
    # safe_dump writes control characters as escapes inside quoted strings, never raw
    body = yaml.safe_dump(named.settings, sort_keys=False, allow_unicode=True, width=120)
    sys.stdout.write(_printable(header) + "\n" + body)
