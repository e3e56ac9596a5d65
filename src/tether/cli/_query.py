"""Commands that read the index: search and ask."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tether._api import Tether
from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _filters, _rel, app, out
from tether.contracts import Answer, Hit
from tether.errors import TetherError
from tether.retrieve import Mode


def _order_score(hits: list[Hit]) -> tuple[str, list[float]]:
    """The score the hits are ordered by, and its name: the reranker's when it ordered them, else retrieval's."""
    if hits and all(h.rerank_score is not None for h in hits):
        return "rerank", [float(h.rerank_score or 0.0) for h in hits]
    return "score", [h.score for h in hits]


def _print_hits(hits: list[Hit]) -> None:
    """A table of hits; the score column is the one their order comes from (--json has every score)."""
    name, scores = _order_score(hits)
    table = Table(show_lines=False)
    table.add_column("#", justify="right")
    table.add_column(name, justify="right")
    table.add_column("source")
    table.add_column("text")
    for i, (h, score) in enumerate(zip(hits, scores, strict=True), 1):
        where = _rel(h.path) + (f" › {' › '.join(h.section)}" if h.section else "")
        snippet = " ".join(h.text.split())
        table.add_row(str(i), f"{score:.3f}", escape(where), escape(snippet[:160]))
    out.print(table)


TenantOpt = Annotated[
    str | None, typer.Option("--tenant", help="only the sources this tenant may see (tenants: in tether.yaml)")
]


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="number of hits")] = 5,
    mode: Annotated[
        str,
        typer.Option(metavar="[hybrid|lexical|dense]", help="hybrid (reranked when rerank.enabled), lexical or dense"),
    ] = "hybrid",
    path_glob: Annotated[str | None, typer.Option("--path", help="only paths matching this glob")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="only documents with this tag")] = None,
    after: Annotated[datetime | None, typer.Option(help="only documents modified after this date")] = None,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the chunks that retrieval ranks highest for a query.

    No answering: the chunks, their source and score, in the order the default pipeline gives them."""
    if mode not in ("hybrid", "lexical", "dense"):
        raise TetherError(f"--mode must be hybrid, lexical or dense, not {mode!r}")
    m: Mode = mode  # type: ignore[assignment]
    with Tether.open(config) as t:
        hits = t.search(query, k, mode=m, filters=_filters(path_glob, tag, after), tenant=tenant)
    if as_json:
        _emit_json([h.model_dump(mode="json") for h in hits])
        return
    if not hits:
        out.print("no matches")
        return
    _print_hits(hits)


def _print_answer(a: Answer) -> None:
    if a.abstained:
        out.print(f"[bold yellow]{escape(a.text)}[/]")
        out.print(f"[dim]{escape(a.reason)}[/]")
        if a.nearest is not None:
            n = a.nearest
            where = _rel(n.path) + (f" › {' › '.join(n.section)}" if n.section else "")
            out.print(f"[dim]closest passage, not an answer: {escape(where)} chars {n.start}–{n.end}[/]")
            out.print(f"    [dim italic]“{escape(' '.join(n.quote.split()))}”[/]")
        return
    out.print(escape(a.text))
    out.print()
    for c in a.citations:
        where = _rel(c.path) + (f" › {' › '.join(c.section)}" if c.section else "")
        out.print(f"[bold][{c.n}][/] {escape(where)} [dim]chars {c.start}–{c.end}[/]")
        out.print(f"    [italic]“{escape(' '.join(c.quote.split()))}”[/]")
    out.print(f"[dim]support {a.support:.2f} (threshold {a.threshold:.2f}) · config {a.config_hash}[/]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="a question about your documents")],
    path_glob: Annotated[str | None, typer.Option("--path", help="only paths matching this glob")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="only documents with this tag")] = None,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    trace: Annotated[bool, typer.Option("--trace", help="include every pipeline step in --json")] = False,
) -> None:
    """Answer with quoted, cited spans, or say "not in the documents".

    Every quote is an exact span of a stored document (path, section, character offsets). An abstention
    shows the closest passage, which is not an answer."""
    with Tether.open(config) as t:
        a = t.ask(question, filters=_filters(path_glob, tag, None), tenant=tenant)
    if as_json:
        data = a.model_dump(mode="json")
        if not trace:
            data.pop("trace")
        _emit_json(data)
        return
    _print_answer(a)
