"""`tether store export|import`: a portable dump of the index, to move it between backends or machines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, _progress, err, out, store_app


@store_app.command("export")
def export(
    folder: Annotated[Path, typer.Argument(help="a new (or empty) folder to write the dump into")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write every document of the index (every owner's: text, chunks, vectors, metadata) to FOLDER."""
    from tether import Tether
    from tether.store._dump import export_index

    t = Tether.open(config)
    store = t.store()
    with _progress("[bold]export", disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("", total=None)
        manifest = export_index(store, folder, lambda d, n: bar.update(task, completed=d, total=n))
    if as_json:
        _emit_json(manifest)
        return
    out.print(
        f"exported {manifest['documents']} documents, {manifest['chunks']} chunks from {t.settings.index_uri} "
        f"to {escape(str(folder))}"
    )


@store_app.command("import")
def import_(
    folder: Annotated[Path, typer.Argument(help="a dump written by `tether store export`")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put every document of the dump into this index (index.backend of tether.yaml), without re-embedding. A
    document at the same path is replaced; the index must use the same embedding model."""
    from tether import Tether
    from tether.store._dump import import_index, read_manifest

    t = Tether.open(config)
    total = int(read_manifest(folder)["documents"])
    store = t.store(create=True)
    with _progress("[bold]import", disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("", total=total)
        counts = import_index(store, folder, lambda d, n: bar.update(task, completed=d, total=n))
    store.prepare_search()
    if as_json:
        _emit_json({**counts, "index": t.settings.index_uri})
        return
    out.print(f"imported {counts['documents']} documents, {counts['chunks']} chunks into {t.settings.index_uri}")
