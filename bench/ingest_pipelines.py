"""Ingest pipelines side by side, embedding excluded: each framework's own splitter and index on SciFact's corpus.

`peers.py` times the peers' builds from whole abstracts (no chunking), which is what their retrieval pipelines
search. An ingest, as the issue measures it, is parse + chunk, embed, index; this script runs each framework's
documented ingestion path with chunks of about Tether's size and times its stages, the embedding taken out
(a stand-in returns a seeded vector per text at no cost, and its time is not counted):

  tether      `Ingestor.add_records` (parse, chunk at 200 WordPiece tokens with 32 overlap, MinHash near-duplicate
              check, SQLite + FTS5 + vector writes in transactions), then the search structures (`prepare_search`).
              Durable: the index is on disk when it returns.
  haystack    `DocumentSplitter(split_by="word", split_length=150, split_overlap=24)` (~200 tokens), then
              `DocumentWriter` into `InMemoryDocumentStore` (which keeps BM25 statistics as it writes); then
              `save_to_disk` for a durable copy.
  llamaindex  `SentenceSplitter(chunk_size=200, chunk_overlap=32)` (tiktoken tokens), then `VectorStoreIndex`
              over the nodes and `BM25Retriever.from_defaults` (its hybrid needs both); then `persist` of the
              storage context for a durable copy.

Run in the peers environment (`bash bench/setup_peers.sh`):

    .venv-bench/bin/python bench/ingest_pipelines.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from _common import CACHE, SHARED, need  # noqa: E402
from ingest_speed import FreeEmbedder, one_round  # noqa: E402
from tether import Tether  # noqa: E402
from tether.evals import BeirData  # noqa: E402

Records = list[tuple[str, str, str]]
WORK = CACHE / "ingest-pipelines"


def _stand_in(texts: list[str]) -> tuple[list[list[float]], float]:
    t0 = time.perf_counter()
    vecs = FreeEmbedder().embed(texts)
    return vecs.tolist(), time.perf_counter() - t0


def run_tether(records: Records) -> dict[str, float]:
    r = one_round(Tether.open(None), records)
    return {
        "chunks": r["chunks"],
        "parse_chunk_s": r["parse_chunk_s"],  # CPU seconds in the workers, overlapping the writes
        "index_s": r["ingest_wall_s"] - r["stand_in_embedder_s"] + r["search_structures_wall_s"],
        "persist_s": 0.0,  # written durably as it goes
        "total_s": r["ingest_wall_s"] - r["stand_in_embedder_s"] + r["search_structures_wall_s"],
        "overlapped": 1.0,
    }


def run_haystack(records: Records) -> dict[str, float]:
    from haystack import Document
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    docs = [Document(id=k, content=f"{title}\n{text}", meta={"title": title}) for k, title, text in records]
    t0 = time.perf_counter()
    splitter = DocumentSplitter(split_by="word", split_length=150, split_overlap=24)
    splitter.warm_up()
    chunks = splitter.run(documents=docs)["documents"]
    t1 = time.perf_counter()
    vecs, embed_s = _stand_in([d.content or "" for d in chunks])
    for d, v in zip(chunks, vecs, strict=True):
        d.embedding = v
    t2 = time.perf_counter()
    store = InMemoryDocumentStore()
    DocumentWriter(document_store=store).run(documents=chunks)
    t3 = time.perf_counter()
    folder = WORK / "haystack"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    store.save_to_disk(str(folder / "store.json"))
    t4 = time.perf_counter()
    return {
        "chunks": float(len(chunks)),
        "parse_chunk_s": t1 - t0,
        "index_s": t3 - t2,
        "persist_s": t4 - t3,
        "total_s": (t1 - t0) + (t3 - t2),
        "stand_in_embed_s": embed_s,
    }


def run_llamaindex(records: Records) -> dict[str, float]:
    from llama_index.core import Settings, StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import Document
    from llama_index.retrievers.bm25 import BM25Retriever

    with contextlib.redirect_stdout(sys.stderr):  # it announces the MockLLM on stdout, which --json owns
        Settings.llm = None
    docs = [Document(id_=k, text=f"{title}\n{text}", metadata={"title": title}) for k, title, text in records]
    t0 = time.perf_counter()
    nodes = SentenceSplitter(chunk_size=200, chunk_overlap=32).get_nodes_from_documents(docs)
    t1 = time.perf_counter()
    vecs, embed_s = _stand_in([n.get_content() for n in nodes])
    for n, v in zip(nodes, vecs, strict=True):
        n.embedding = v
    t2 = time.perf_counter()
    index = VectorStoreIndex(
        nodes, embed_model=MockEmbedding(embed_dim=384), storage_context=StorageContext.from_defaults()
    )
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=100)
    t3 = time.perf_counter()
    folder = WORK / "llamaindex"
    shutil.rmtree(folder, ignore_errors=True)
    index.storage_context.persist(persist_dir=str(folder / "index"))
    bm25.persist(str(folder / "bm25"))
    t4 = time.perf_counter()
    return {
        "chunks": float(len(nodes)),
        "parse_chunk_s": t1 - t0,
        "index_s": t3 - t2,
        "persist_s": t4 - t3,
        "total_s": (t1 - t0) + (t3 - t2),
        "stand_in_embed_s": embed_s,
    }


SYSTEMS: dict[str, Callable[[Records], dict[str, float]]] = {
    "tether": run_tether,
    "haystack": run_haystack,
    "llamaindex": run_llamaindex,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per system, taking turns; the fastest counts")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    records = list(BeirData(root=need(SHARED / "scifact"), split="").corpus())
    names = [s for s in args.systems.split(",") if s]
    rounds: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for _ in range(args.rounds):
        for n in names:  # taking turns, so that a drift of the machine's speed is shared
            gc.collect()
            rounds[n].append(SYSTEMS[n](records))
    best = {n: min(rs, key=lambda r: r["total_s"]) for n, rs in rounds.items()}
    report: dict[str, Any] = {
        "documents": len(records),
        "rounds": args.rounds,
        "best": {n: {k: round(v, 3) for k, v in r.items()} for n, r in best.items()},
        "total_s_all_rounds": {n: [round(r["total_s"], 2) for r in rs] for n, rs in rounds.items()},
    }
    if "tether" in best:
        t = best["tether"]["total_s"]
        # the peer's seconds over Tether's: above 1, Tether is faster
        report["peer_over_tether"] = {
            n: {
                "in_memory": round(r["total_s"] / t, 2),
                "with_persist": round((r["total_s"] + r["persist_s"]) / t, 2),
            }
            for n, r in best.items()
            if n != "tether"
        }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    for k, v in report.items():
        print(f"{k}: {json.dumps(v, indent=2) if isinstance(v, dict) else v}")


if __name__ == "__main__":
    sys.setrecursionlimit(10_000)
    main()
    shutil.rmtree(WORK, ignore_errors=True)
