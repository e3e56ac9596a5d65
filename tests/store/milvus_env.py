"""Documents for the store contract tests, and a writer that dies part-way (run as a script by the crash tests).

``python milvus_env.py URI PREFIX STEP`` stores version 1 of ``/crash/doc.md``, then starts version 2 and kills
itself with SIGKILL when MilvusStore reaches ``STEP`` (``commit``: before the document row is written;
``retire``: after it, before the replaced version is deleted).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.ingest._dedupe import band_keys, lsh_params, signature
from tether.store import NewChunk, NewDocument

DIM = 8
MODEL = "test-model"
NUM_PERM = 64
BANDS, ROWS = lsh_params(0.9, NUM_PERM)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
CRASH_PATH = "/crash/doc.md"
CRASH_V1 = ["the first version speaks of herons", "and of the marsh they wade in"]
CRASH_V2 = ["the second version speaks of cranes", "and of fields", "and of winter"]


def unit(i: int) -> npt.NDArray[np.float32]:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


def random_unit(rng: np.random.Generator) -> npt.NDArray[np.float32]:
    v = rng.standard_normal(DIM).astype(np.float32)
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v)
    return out


def make_doc(
    path: str,
    texts: list[str],
    *,
    vectors: list[npt.NDArray[np.float32]] | None = None,
    tags: list[str] | None = None,
    mtime: datetime = T0,
    title: str = "Title",
    tenant: str | None = None,
    sep: str = "\n\n",
) -> NewDocument:
    """A document whose text is its chunk texts joined by ``sep``; chunk i has vector ``vectors[i]`` (default:
    the unit vector along axis i)."""
    vecs = vectors if vectors is not None else [unit(i) for i in range(len(texts))]
    chunks = []
    pos = 0
    for i, (t, v) in enumerate(zip(texts, vecs, strict=True)):
        sig = signature(t, NUM_PERM)
        chunks.append(
            NewChunk(
                ord=i,
                start=pos,
                end=pos + len(t),
                text=t,
                section=["Top", f"Part {i}"],
                kinds=["paragraph"],
                vector=v,
                signature=sig,
                band_keys=band_keys(sig, BANDS, ROWS),
            )
        )
        pos += len(t) + len(sep)
    text = sep.join(texts)
    return NewDocument(
        path=path,
        title=title,
        mtime=mtime,
        content_hash=f"hash-of-{path}-{len(text)}-{texts[0][:10]}",
        size=len(text.encode()),
        text=text,
        chunks=chunks,
        tags=tags or [],
        tenant=tenant,
    )


def _die(*args: Any, **kwargs: Any) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def crash_writer(uri: str, prefix: str, step: str) -> None:
    from tether.store._milvus import MilvusStore

    store = MilvusStore.open(uri, create=True, prefix=prefix)
    store.check_embedding(MODEL, DIM)
    store.put_document(make_doc(CRASH_PATH, CRASH_V1))
    setattr(MilvusStore, {"commit": "_commit", "retire": "_retire"}[step], _die)
    store.put_document(make_doc(CRASH_PATH, CRASH_V2))
    sys.exit(3)  # not reached: the writer died above


if __name__ == "__main__":
    crash_writer(sys.argv[1], sys.argv[2], sys.argv[3])
