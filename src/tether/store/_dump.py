"""A portable dump of an index (`tether store export` / `tether store import`): move an index between backends
(SQLite <-> Milvus) or machines without parsing or embedding anything again.

A dump is a folder:

- ``manifest.json``: format and version, the embedding model and dimension, the MinHash scheme, counts;
- ``documents.jsonl``: one document per line (path, owner, title, mtime, hash, size, tags, the canonical text)
  with its chunks (span, section, kinds, text, MinHash signature, band keys, injection score, the row of its
  vector);
- ``vectors.f32``: every chunk's vector, little-endian float32, one row of ``dim`` values per chunk.

Import writes each document whole (``put_document``), in batches; the target must be empty or built with the same
embedding model and MinHash scheme. Chunk and document ids are the target's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tether.errors import DataError, IndexMismatchError
from tether.store._protocol import NewChunk, NewDocument, Store

FORMAT = "tether-index-dump"
VERSION = 1
Progress = Callable[[int, int], None]


def _chunk_record(ch: NewChunk, row: int) -> dict[str, Any]:
    return {
        "ord": ch.ord,
        "start": ch.start,
        "end": ch.end,
        "text": ch.text,
        "section": ch.section,
        "kinds": ch.kinds,
        "signature": np.ascontiguousarray(ch.signature, dtype="<u8").tobytes().hex(),
        "band_keys": [k.hex() for k in ch.band_keys],
        "injection": ch.injection,
        "row": row,
    }


def export_index(store: Store, folder: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Write every document of ``store`` (every owner's) to ``folder``; returns the manifest."""
    stats = store.stats()
    if stats.documents == 0:
        raise DataError(f"the index at {store.path} holds no documents: nothing to export")
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise DataError(f"{folder} is not empty: export into a new folder")
    paths = store.paths()
    rows = 0
    dim = stats.dim or 0
    with (folder / "documents.jsonl").open("w", encoding="utf-8") as docs, (folder / "vectors.f32").open("wb") as vec:
        for i, path in enumerate(paths):
            doc = store.export_document(path)
            if doc is None:  # deleted while exporting
                continue
            chunks = []
            for ch in doc.chunks:
                v = np.ascontiguousarray(ch.vector, dtype="<f4")
                if dim and v.shape != (dim,):
                    raise IndexMismatchError(f"{path}: a vector of {v.shape[0]} values in an index of dimension {dim}")
                vec.write(v.tobytes())
                chunks.append(_chunk_record(ch, rows))
                rows += 1
            record = {
                "path": doc.path,
                "tenant": doc.tenant or "",
                "title": doc.title,
                "mtime": doc.mtime.timestamp(),
                "content_hash": doc.content_hash,
                "size": doc.size,
                "tags": doc.tags,
                "n_duplicates": doc.n_duplicates,
                "text": doc.text,
                "chunks": chunks,
            }
            docs.write(json.dumps(record, ensure_ascii=False) + "\n")
            if progress is not None:
                progress(i + 1, len(paths))
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "embedding_model": stats.embedding_model,
        "dim": dim,
        "minhash_scheme": store.setting("minhash_scheme"),
        "documents": len(paths),
        "chunks": rows,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(store.path),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder} is not an index dump: it has no manifest.json (`tether store export`)") from None
    except ValueError as e:
        raise DataError(f"{path} is not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise DataError(f"{path}: not a {FORMAT} v{VERSION} dump (format {manifest.get('format')!r})")
    return manifest


def import_index(store: Store, folder: Path, progress: Progress | None = None, batch: int = 64) -> dict[str, int]:
    """Put every document of the dump in ``folder`` into ``store``; returns counts written."""
    m = read_manifest(folder)
    dim, model = int(m["dim"]), m.get("embedding_model")
    if model:
        store.check_embedding(str(model), dim)
    scheme = m.get("minhash_scheme")
    if scheme:
        store.record_setting("minhash_scheme", str(scheme))
        if store.setting("minhash_scheme") != scheme:
            raise IndexMismatchError(
                f"{store.path} uses MinHash scheme {store.setting('minhash_scheme')!r}, the dump {scheme!r}: "
                "import into an empty index"
            )
    size = (folder / "vectors.f32").stat().st_size
    if size != int(m["chunks"]) * dim * 4:
        raise DataError(f"{folder / 'vectors.f32'}: {size} bytes, expected {int(m['chunks']) * dim * 4} (truncated?)")
    vectors = np.memmap(folder / "vectors.f32", dtype="<f4", mode="r", shape=(int(m["chunks"]), dim))
    total = int(m["documents"])
    done = chunks = 0
    pending: list[NewDocument] = []
    with (folder / "documents.jsonl").open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            try:
                pending.append(_document(json.loads(line), vectors))
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise DataError(f"{folder / 'documents.jsonl'} line {n}: not a dumped document ({e})") from None
            if len(pending) >= batch:
                chunks += _write(store, pending)
                done += len(pending)
                pending = []
                if progress is not None:
                    progress(done, total)
    chunks += _write(store, pending)
    done += len(pending)
    if progress is not None:
        progress(done, total)
    return {"documents": done, "chunks": chunks}


def _document(r: dict[str, Any], vectors: np.memmap[Any, np.dtype[np.float32]]) -> NewDocument:
    return NewDocument(
        path=str(r["path"]),
        title=str(r["title"]),
        mtime=datetime.fromtimestamp(float(r["mtime"]), UTC),
        content_hash=str(r["content_hash"]),
        size=int(r["size"]),
        text=str(r["text"]),
        chunks=[
            NewChunk(
                ord=int(c["ord"]),
                start=int(c["start"]),
                end=int(c["end"]),
                text=str(c["text"]),
                section=list(c["section"]),
                kinds=list(c["kinds"]),
                vector=np.array(vectors[int(c["row"])], dtype=np.float32),
                signature=np.frombuffer(bytes.fromhex(c["signature"]), dtype="<u8").astype(np.uint64),
                band_keys=[bytes.fromhex(k) for k in c["band_keys"]],
                injection=None if c["injection"] is None else float(c["injection"]),
            )
            for c in r["chunks"]
        ],
        tags=list(r["tags"]),
        n_duplicates=int(r["n_duplicates"]),
        tenant=str(r["tenant"]),
    )


def _write(store: Store, docs: list[NewDocument]) -> int:
    if not docs:
        return 0
    with store.batch():
        for doc in docs:
            text = doc.text
            for ch in doc.chunks:  # the citation contract: every chunk is a span of the canonical text
                if text[ch.start : ch.end] != ch.text:
                    raise DataError(f"{doc.path}: chunk {ch.ord} is not the text at {ch.start}-{ch.end}")
            store.put_document(doc)
    return sum(len(d.chunks) for d in docs)
