"""Commands that build and describe the index: init, ingest, stats, demo."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from tether._api import Tether
from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _rel, app, err, out
from tether.cli._query import _print_answer
from tether.config import DEFAULT_CONFIG_NAME, default_yaml
from tether.errors import TetherError
from tether.ingest import IngestProgress, ProgressPrinter
from tether.ingest._progress import Listener

PLAIN_EVERY_S = 5.0  # seconds between plain progress lines
JSON_EVERY_S = 0.5  # seconds between JSON progress objects


class ProgressMode(StrEnum):
    auto = "auto"
    bar = "bar"
    plain = "plain"
    json = "json"
    none = "none"


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the config")] = Path(DEFAULT_CONFIG_NAME),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    print_only: Annotated[bool, typer.Option("--print", help="print the config instead of writing it")] = False,
) -> None:
    """Write a commented tether.yaml with every setting at its default."""
    text = default_yaml()
    if print_only:
        sys.stdout.write(text)
        return
    if path.exists() and not force:
        raise TetherError(f"{path} already exists; use --force to overwrite it")
    path.write_text(text, encoding="utf-8")
    out.print(f"wrote {path}; next: [bold]tether ingest ./docs[/]")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files and folders to ingest (folders recursively)")],
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="tag the documents (repeatable)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress (same as --progress none)")] = False,
    progress_mode: Annotated[
        ProgressMode,
        typer.Option(
            "--progress",
            help="progress on stderr, counted in chunks embedded: auto (a bar on a terminal, else a line every "
            "few seconds; none with --json or -q), bar, plain, json (one JSON object per line) or none",
        ),
    ] = ProgressMode.auto,
) -> None:
    """Parse, chunk, dedupe, embed and index documents (incremental).

    Unchanged files are skipped by content hash, changed files replaced atomically, deleted files
    removed. Files that cannot be read or parsed, are not regular files or are links out of the folder
    are skipped with a one-line reason. A path that does not exist is an error. A second ingest into the
    same index waits for the first."""
    mode = progress_mode.value
    if mode == "auto":
        mode = "none" if quiet or as_json else "bar" if err.is_terminal else "plain"
    t = Tether.open(config)
    try:
        with _listener(mode) as listener:
            summary = t.ingest(list(paths), tags=tag, on_progress=listener)
    finally:
        t.close()
    if as_json:
        _emit_json(summary)
        return
    out.print(
        f"added {summary.added}, updated {summary.updated}, unchanged {summary.unchanged}, "
        f"removed {summary.removed}, skipped {len(summary.skipped)}; {summary.chunks} chunks "
        f"({summary.duplicates_removed} near-duplicates removed) in {summary.seconds:.1f}s "
        f"(embedding {summary.embed_seconds:.1f}s)"
    )
    for s in summary.skipped[:20]:
        out.print(f"  [yellow]skipped[/] {escape(_rel(s.path))}: {escape(s.reason)}")
    if len(summary.skipped) > 20:
        out.print(f"  ... and {len(summary.skipped) - 20} more skipped (see --json)")


@contextmanager
def _listener(mode: str) -> Iterator[Listener]:
    """What shows an ingest's progress on stderr in ``mode``; a wait for another ingest is always shown."""
    if mode in ("plain", "json"):
        yield ProgressPrinter(
            sys.stderr, "json" if mode == "json" else "plain", PLAIN_EVERY_S if mode == "plain" else JSON_EVERY_S
        )
        return
    if mode == "none":

        def waits_only(p: IngestProgress) -> None:
            if p.stage == "waiting":
                err.print(escape(p.line()), soft_wrap=True)

        yield waits_only
        return
    columns = [TextColumn("[bold]ingest"), BarColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("", total=None, info="")

        def show(p: IngestProgress) -> None:
            if p.stage == "waiting":
                bar.console.print(escape(p.line()), soft_wrap=True)
                return
            info = p.line().removeprefix("ingest: ")
            if p.path and p.stage != "done":
                info += f"  {Path(p.path).name[:40]}"
            bar.update(task, completed=p.chunks_done, total=p.chunks_total or None, info=escape(info))

        yield show


@app.command()
def stats(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    flagged: Annotated[
        bool, typer.Option("--flagged", help="list the chunks flagged as possible prompt injections")
    ] = False,
) -> None:
    """Show what the index holds: documents, chunks, size, model.

    Also near-duplicates removed, the embedding model, the last ingest and how many chunks the prompt-injection
    detector flagged (--flagged lists them: path, span, score, cues); --json has every field."""
    with Tether.open(config) as t:
        s = t.stats()
        hits = t.flagged() if flagged else []
    if flagged:
        from tether.safety import matched_cues

        rows = [
            {
                "path": h.path,
                "start": h.start,
                "end": h.end,
                "injection": h.injection,
                "cues": matched_cues(h.text),
                "text": h.text,
            }
            for h in hits
        ]
        if as_json:
            out.print_json(data=rows)
            return
        if not rows:
            out.print(f"No chunk is flagged (threshold {s.injection_threshold}).")
            return
        t2 = Table("injection", "where", "cues", "text")
        for r in rows:
            t2.add_row(
                f"{r['injection']:.3f}",
                escape(f"{r['path']}:{r['start']}-{r['end']}"),
                escape(", ".join(r["cues"])),  # type: ignore[arg-type]
                escape(" ".join(str(r["text"]).split())[:100]),
            )
        out.print(t2)
        return
    if as_json:
        _emit_json(s)
        return
    table = Table(show_header=False)
    for key, value in s.model_dump().items():
        if key == "bytes_on_disk":
            value = f"{value / 1024 / 1024:.1f} MB"
        table.add_row(key, escape(str(value)))
    out.print(table)


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--dir", help="where the demo corpus and its index go")] = Path(
        ".tether/demo"
    ),
    as_json: JsonOpt = False,
) -> None:
    """The quickstart: ingest Python's manual, ask, see an abstention.

    The corpus is pydoc_data.topics, which ships with CPython. Tether answers a few questions with
    cited spans and declines one that the manual cannot answer."""
    from tether._demo import DEMO_QUESTIONS, export_python_topics

    corpus = folder / "corpus"
    n = export_python_topics(corpus)
    cfg = folder / DEFAULT_CONFIG_NAME
    if not cfg.exists():
        cfg.write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(cfg)
    if not as_json:
        out.print(f"[bold]1. ingest[/] {n} topics of the Python reference manual from pydoc_data into {folder}/")
    with _listener("none" if as_json or not err.is_terminal else "bar") as listener:
        summary = t.ingest([corpus], on_progress=listener)
    answers = [t.ask(q) for q in DEMO_QUESTIONS]
    t.close()
    if as_json:
        _emit_json({"ingest": summary.model_dump(mode="json"), "answers": [a.model_dump(mode="json") for a in answers]})
        return
    out.print(
        f"   {summary.added} added, {summary.unchanged} unchanged, {summary.chunks} chunks, "
        f"{summary.duplicates_removed} near-duplicate chunks removed ({summary.seconds:.1f}s)"
    )
    out.print("[bold]2. ask[/]")
    for a in answers:
        out.print()
        out.print(f"[bold cyan]Q: {escape(a.question)}[/]")
        _print_answer(a)
    out.print()
    out.print(
        f'Try your own: [bold]tether ask --config {folder}/tether.yaml "your question"[/] '
        "(or `tether init` and `tether ingest` your own folder)."
    )
