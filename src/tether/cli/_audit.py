"""`tether audit ...`: verify, show and checkpoint the tamper-evident audit log; make a key for it.

Without a PATH every command works on the configured log (``audit.path`` of tether.yaml, or of ``--config``),
with the configured key (``$TETHER_AUDIT_KEY`` or ``audit.key_file``) and checkpoint file.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, audit_app, out
from tether.guard import AuditEntry, AuditKey

PathArg = Annotated[
    Path | None, typer.Argument(help="the audit log file (default: audit.path of the config)", show_default=False)
]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", help="key file to check signatures with (default: $TETHER_AUDIT_KEY, else audit.key_file)"),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="checkpoint file (JSON lines) to compare the log with (default: audit.checkpoint_path, when PATH is "
        "the configured log)",
    ),
]


class _Target(NamedTuple):
    log: Path
    key: AuditKey | None
    checkpoint: Path | None


def _target(path: Path | None, config: Path | None, key: Path | None, checkpoint: Path | None) -> _Target:
    """The log, key and checkpoint file a command works on: the options given, else the configured ones."""
    from tether.config import load_settings, resolve_path
    from tether.guard import audit_key_from_settings, checkpoint_path_from_settings, load_key_file

    settings = load_settings(config)
    configured = resolve_path(settings.audit.path, settings.root)
    log = configured if path is None else path
    k = load_key_file(key) if key is not None else audit_key_from_settings(settings)
    cp = checkpoint
    if cp is None and (path is None or path.resolve() == configured.resolve()):
        cp = checkpoint_path_from_settings(settings)  # a checkpoint file belongs to one log: the configured one
    return _Target(log, k, cp)


def _printable(text: str) -> str:
    """Control and format characters (ANSI escapes, bidi overrides) shown as escapes, not obeyed by the terminal."""
    return "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text.replace("\n", " ")
    )


def _line(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@audit_app.command("verify")
def audit_verify(
    path: PathArg = None,
    key: KeyOpt = None,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the log: hash chain, signatures, checkpoints. Names the first bad entry; exit 1 if broken.

    Catches edited, deleted and reordered entries; with the key, a rewrite with recomputed hashes; with a
    checkpoint file, a cut-off or rewritten tail. Says what it could not check.
    """
    from tether.guard import verify_file

    t = _target(path, config, key, checkpoint)
    _fail_if_deleted(t, as_json)
    report = verify_file(t.log, key=t.key, checkpoint_path=t.checkpoint)
    if as_json:
        _emit_json(
            {
                **report.model_dump(mode="json"),
                "path": str(t.log),
                "checkpoint_file": None if t.checkpoint is None else str(t.checkpoint),
            }
        )
    elif report.ok:
        parts = [f"{report.entries} entries, chain intact"]
        if report.key_id is not None:
            parts.append(f"signatures valid (key id {report.key_id})")
        if report.checkpoint_entries is not None:
            parts.append(f"matches {report.checkpoints} checkpoints (latest: {report.checkpoint_entries} entries)")
        _line(f"ok: {t.log}: {', '.join(parts)} (head {report.head_hash[:16]}…)")
        for w in report.warnings:
            _line(f"warning: {w}")
    else:
        _line(f"failed: {t.log}: {report.problem}")
    if not report.ok:
        raise typer.Exit(1)


def _fail_if_deleted(t: _Target, as_json: bool) -> None:
    """A missing log whose checkpoints record entries was deleted: that is a broken log (exit 1), not a typo."""
    from tether.guard._checkpoint import check_checkpoints

    if t.log.exists() or t.checkpoint is None:
        return
    found = check_checkpoints(t.checkpoint, key=t.key, log_id=None).valid
    top = max((c.checkpoint.entries for c in found), default=0)
    if top == 0:
        return  # nothing says a log existed: the usual "no audit log at ..." error follows
    problem = f"the log does not exist, but the checkpoint file {t.checkpoint} records {top} entries (deleted)"
    if as_json:
        _emit_json({"ok": False, "entries": 0, "first_bad_seq": 1, "problem": problem, "path": str(t.log)})
    else:
        _line(f"failed: {t.log}: {problem}")
    raise typer.Exit(1)


def _summary(payload: dict[str, Any], width: int = 100) -> str:
    first = ("tool", "step", "question", "approved", "approver", "action", "reason")
    keys = [k for k in first if k in payload] + [k for k in payload if k not in first]
    parts = []
    for k in keys:
        v = payload[k]
        text = v if isinstance(v, str) and v and " " not in v else json.dumps(v, ensure_ascii=False)
        parts.append(f"{k}={text}")
    s = _printable(" ".join(parts))
    return s if len(s) <= width else s[: width - 1] + "…"


def _show_line(e: AuditEntry) -> str:
    ts = e.ts[:19].replace("T", " ")
    signed = "signed" if e.sig else "      "
    return f"{e.seq:>6}  {ts}  {signed}  {_printable(e.kind):<12}  {_printable(e.actor):<12}  {_summary(e.payload)}"


@audit_app.command("show")
def audit_show(
    path: PathArg = None,
    last: Annotated[int, typer.Option("--last", "-n", min=0, help="show the last N entries; 0 = all")] = 20,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List entries: seq, time (UTC), signed or not, kind, actor, a summary of the details.

    Shows what is stored; `tether audit verify` says whether it can be trusted.
    """
    from tether.guard import AuditLog

    t = _target(path, config, None, None)
    with AuditLog.open(t.log, read_only=True) as log:
        top = log.head().seq
        entries = list(log.entries(since=1 if last == 0 else max(1, top - last + 1)))
    if as_json:
        _emit_json({"path": str(t.log), "total": top, "entries": [e.model_dump(mode="json") for e in entries]})
        return
    if not entries:
        _line(f"the audit log {t.log} is empty")
        return
    _line(f"{'seq':>6}  {'time (UTC)':<19}  {'':6}  {'kind':<12}  {'actor':<12}  details")
    for e in entries:
        _line(_show_line(e))
    _line(f"{len(entries)} of {top} entries in {t.log} (`tether audit verify` checks them)")


@audit_app.command("checkpoint")
def audit_checkpoint(
    path: PathArg = None,
    key: KeyOpt = None,
    checkpoint: CheckpointOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Take a signed checkpoint of the log's head now: print it as a JSON line (for an external system) and
    append it to the checkpoint file, if one is set."""
    from tether.guard import AuditLog
    from tether.guard._checkpoint import checkpoint_line

    t = _target(path, config, key, checkpoint)
    with AuditLog.open(t.log, read_only=True, key=t.key, checkpoint_path=t.checkpoint) as log:
        cp = log.checkpoint()
    out.file.write(checkpoint_line(cp))


@audit_app.command("keygen")
def audit_keygen(
    file: Annotated[Path, typer.Argument(help="where to write the key (never overwritten)")],
) -> None:
    """Write a new random audit key (64 hex digits, readable by you only) for audit.key_file or $TETHER_AUDIT_KEY."""
    from tether.guard import write_new_key

    k = write_new_key(file)
    _line(f"wrote a new audit key to {file} (key id {k.key_id}); set audit.key_file: {file} in tether.yaml")
    _line("keep it away from the log: whoever holds it can sign a rewritten log (docs/audit.md)")
