"""Commands that build and describe the index: init, ingest, stats, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether._api import Tether
from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _progress, _rel, app, err, out
from tether.cli._query import _print_answer
from tether.config import DEFAULT_CONFIG_NAME, default_yaml
from tether.errors import TetherError


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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Parse, chunk, dedupe, embed and index documents (incremental).

    Unchanged files are skipped by content hash, changed files replaced atomically, deleted files
    removed. Files that cannot be read or parsed are skipped with a one-line reason."""
    t = Tether.open(config)
    show = not (quiet or as_json) and err.is_terminal
    with _progress("[bold]ingest", disable=not show, detail=True) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total, description=escape(Path(path).name[:40]))

        summary = t.ingest(list(paths), tags=tag, progress=progress)
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


@app.command()
def stats(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Show what the index holds: documents, chunks, size, model.

    Also near-duplicates removed, the embedding model and the last ingest; --json has every field."""
    with Tether.open(config) as t:
        s = t.stats()
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
    with _progress("[bold]ingest", disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("", total=None)
        summary = t.ingest([corpus], progress=lambda d, total, _p: bar.update(task, completed=d, total=total))
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
