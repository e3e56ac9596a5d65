from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tether._api import Tether
from tether.evals._beir import BeirData, load_beir
from tether.evals._retrieval import DEFAULT_HEAD, DefaultPipeline, EvalMode, RetrievalReport, evaluate_retrieval
from tether.ingest import Ingestor
from tether.retrieve import Retriever
from tether.store import SQLiteStore, Store

StageProgress = Callable[[str, int, int], None]
BEIR_PREFIX = "beir:"


def corpus_digest(path: Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def beir_index_path(t: Tether, root: Path) -> Path:
    """A cache file keyed by the corpus's content and every setting that changes what is indexed.

    The content, not the file's mtime: a copy of the same corpus (a fresh checkout, data unpacked again)
    reuses the index instead of embedding the corpus again. Hashing is ~25 ms for SciFact's 9 MB."""
    key = json.dumps({"corpus": corpus_digest(root / "corpus.jsonl"), "index": t.settings.index_hash}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return t.settings.root / ".tether" / "beir" / f"{root.resolve().name}-{digest}.db"


def build_beir_index(t: Tether, root: Path, index: Path, progress: StageProgress | None = None) -> SQLiteStore:
    """Index a BEIR corpus (incremental: an interrupted build resumes where it stopped)."""
    store = SQLiteStore.open(index, create=True)
    ing = Ingestor(store, t.embedder, t.settings.ingest)
    with (root / "corpus.jsonl").open(encoding="utf-8") as f:
        total = sum(1 for line in f if line.strip())
    done = 0

    def on_done(_: str) -> None:
        nonlocal done
        done += 1
        if progress is not None and (done % 50 == 0 or done == total):
            progress("index corpus", done, total)

    records = ((BEIR_PREFIX + doc_id, title, text) for doc_id, title, text in BeirData(root=root, split="").corpus())
    ing.add_records(records, on_done=on_done)
    ing.flush()
    return store


def default_pipeline(t: Tether, store: Store) -> tuple[Tether, DefaultPipeline]:
    """The default ``tether search`` over ``store``: a Tether with t's settings on that index (sharing t's
    loaded embedder) and the same call :meth:`Tether.search` makes, given the query vector computed once."""
    s = t.settings
    settings = s.model_copy(update={"index": s.index.model_copy(update={"path": str(store.path.resolve())})})
    bt = Tether(settings.with_root(s.root))
    bt._embedder = t.embedder
    bt._store = store
    reranker = bt.reranker()
    label = (
        f"default (what `tether search` does: hybrid + rerank by {reranker.name})"
        if reranker is not None
        else "default (what `tether search` does: hybrid; rerank is off in tether.yaml)"
    )

    def search(query: str, vector: npt.NDArray[np.float32]) -> list[int]:
        hits = bt.search(query, DEFAULT_HEAD, query_vector=vector)
        return [h.chunk_id for h in hits]

    return bt, DefaultPipeline(search=search, label=label)


def run_beir(
    t: Tether,
    root: Path,
    split: str,
    modes: tuple[EvalMode, ...],
    *,
    index: Path | None = None,
    progress: StageProgress | None = None,
) -> RetrievalReport:
    """Index (or reuse) the corpus, then score every query of ``split``."""
    data = load_beir(root, split)
    store = build_beir_index(t, root, index or beir_index_path(t, root), progress)
    paths = {cid: p.removeprefix(BEIR_PREFIX) for cid, p in store.chunk_paths().items()}

    def doc_of_chunk(ids: list[int]) -> dict[int, str]:
        return {i: paths[i] for i in ids if i in paths}

    retriever = Retriever(store, t.embedder, t.settings.retrieval)
    default = default_pipeline(t, store)[1] if "default" in modes else None
    try:
        report = evaluate_retrieval(
            retriever,
            data,
            doc_of_chunk,
            modes=modes,
            config_hash=t.settings.config_hash,
            progress=(lambda d, n: progress("queries", d, n)) if progress else None,
            default=default,
        )
    finally:
        store.close()
    return report
