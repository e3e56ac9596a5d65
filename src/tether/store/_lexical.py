"""FTS5's BM25, computed in numpy over FTS5's own tokens: a cache derived from SQLite, never the truth.

FTS5 answers ``MATCH '"a" OR "b" ...' ORDER BY bm25(...)`` by calling bm25() once per matching row, and
an OR of a query's content words matches a large part of a corpus: on SciFact that was most of a lexical
search. This index holds what FTS5 tokenized — for every token, the rows it occurs in and how often in
each column (text, title, section), a CSR matrix — and scores every matching row at once with FTS5's
formula: the same tokens (query terms are tokenized by FTS5 itself, in a private in-memory table with
the same tokenizer), the same IDF (``log((N - n + 0.5) / (n + 0.5))``, at least 1e-6), the same length
normalisation (``k1 = 1.2``, ``b = 0.75``, a row's tokens over all columns against the table's average)
and the same floating-point operations in the same order, so a score equals FTS5's bit for bit (to the
last bit when a column weight is not a binary fraction). A term of several tokens (``covid-19``) is a
phrase, as in FTS5, and FTS5 matches it: the rows holding all its tokens come from the matrix, and if
there are any, FTS5's phrase query gives the matching rows and (through bm25() per column) the matches.

The index lives beside the SQLite file (``index.db.lexical``) and is memory-mapped when opened. Before a
search it is brought in line with the chunks table (new chunks tokenized and added, removed ones dropped)
and checked against FTS5's own row and token totals; a mismatch rebuilds it from FTS5. Chunk ids are
never reused (the store allocates them), so an id names one content for the life of the index.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tether.store._protocol import ScoredId

K1 = 1.2
B = 0.75
COLUMNS = ("text", "title", "section")
_FORMAT = 1
_MAGIC = b"TETHERLX"
_MAX_CACHED_WORDS = 100_000
_MAX_CACHED_PHRASES = 4_096
_REDUCE_EVERY = 4_000_000  # instances reduced to postings at a time while reading
_TOKENIZE_BATCH = 20_000  # chunks tokenized at a time when syncing
_VOCAB_TABLE = "temp.tether_lexical_instances"
_SEPARATOR = "\ue000"
_MAX_SATURATED = 8_000_000
"""Postings up to which each one's BM25 term-frequency factor is kept for the last weights asked (8 bytes
each, 64 MB at most): a search then reads its terms' factors instead of working them out from the counts."""

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Counts = npt.NDArray[np.unsignedinteger[Any]] | I64


def _col_index(col: str) -> str:
    return f"(CASE {col} WHEN 'text' THEN 0 WHEN 'title' THEN 1 ELSE 2 END)"


def _instances_sql(table: str) -> str:
    """One row per term: the term and its instances as "chunk*4+column" integers, comma separated."""
    return f"SELECT term, group_concat(doc * 4 + {_col_index('col')}) FROM {table} GROUP BY term"


def _ints(text: str | None) -> I64:
    if not text:
        return np.zeros(0, np.int64)
    return np.fromstring(text, dtype=np.int64, sep=",")


def _varints(blob: bytes) -> list[int]:
    """SQLite's big-endian varints (FTS5 keeps its row and token totals in them)."""
    out: list[int] = []
    i = 0
    while i < len(blob):
        v = 0
        for j in range(9):
            byte = blob[i]
            i += 1
            if j == 8:
                v = (v << 8) | byte
                break
            v = (v << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(v)
    return out


class Tokenizer:
    """FTS5's tokenizer, run by FTS5 in a private in-memory table (so query tokens match stored ones)."""

    def __init__(self, tokenize: str) -> None:
        self._conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        quoted = "'" + tokenize.replace("'", "''") + "'"
        self._conn.execute(f"CREATE VIRTUAL TABLE t USING fts5({', '.join(COLUMNS)}, tokenize={quoted})")
        self._conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        # queries go to a leaner table of their own: one column, contentless, no column sizes (a fifth faster
        # when a search's numpy work has just evicted SQLite's from the CPU caches)
        self._conn.execute(f"CREATE VIRTUAL TABLE q USING fts5(text, tokenize={quoted}, content='', columnsize=0)")
        self._conn.execute("CREATE VIRTUAL TABLE qv USING fts5vocab(q, 'instance')")
        self._cache: dict[str, tuple[str, ...]] = {}

    def close(self) -> None:
        self._conn.close()

    def tokens(self, terms: list[str]) -> list[tuple[str, ...]]:
        """The FTS5 tokens of each term, in order (a term of several tokens is a phrase)."""
        todo = [t for t in dict.fromkeys(terms) if t not in self._cache]
        if todo:
            if len(self._cache) + len(todo) > _MAX_CACHED_WORDS:
                self._cache.clear()
            self._cache.update(zip(todo, self._tokenize(todo), strict=True))
        return [self._cache[t] for t in terms]

    def _tokenize(self, terms: list[str]) -> list[tuple[str, ...]]:
        c = self._conn
        c.execute("BEGIN")  # rolled back afterwards: nothing is ever written
        try:
            if any(_SEPARATOR in t for t in terms):
                c.executemany("INSERT INTO q(rowid, text) VALUES (?, ?)", list(enumerate(terms)))
                found: list[list[tuple[int, str]]] = [[] for _ in terms]
                for doc, offset, term in c.execute("SELECT doc, offset, term FROM qv"):
                    found[int(doc)].append((int(offset), str(term)))
                return [tuple(term for _, term in sorted(f)) for f in found]
            # one row, the terms apart by a token no term can hold (a private-use character: unicode61
            # keeps it as a token of its own, porter leaves it alone): one insert instead of one per term
            c.execute("INSERT INTO q(rowid, text) VALUES (1, ?)", (f" {_SEPARATOR} ".join(terms),))
            out = []
            current: list[str] = []
            for _, term in sorted(c.execute("SELECT offset, term FROM qv")):
                if term == _SEPARATOR:
                    out.append(tuple(current))
                    current = []
                else:
                    current.append(str(term))
            out.append(tuple(current))
            return out
        finally:
            c.execute("ROLLBACK")

    def instances(self, rows: Iterable[tuple[int, str, str, str]]) -> list[tuple[str, str]]:
        """Tokenize (chunk id, text, title, section) rows: per term, its instances (see ``_instances_sql``)."""
        c = self._conn
        c.execute("BEGIN")  # rolled back afterwards: nothing is ever written
        try:
            c.executemany(f"INSERT INTO t(rowid, {', '.join(COLUMNS)}) VALUES (?, ?, ?, ?)", rows)
            return [(str(t), str(s)) for t, s in c.execute(_instances_sql("v"))]
        finally:
            c.execute("ROLLBACK")


class _Postings:
    """(term id, row) pairs with per-column counts, sorted by term, then row."""

    __slots__ = ("rows", "tf", "tids")

    def __init__(self, tids: I32, rows: I32, tf: Counts) -> None:
        self.tids = tids
        self.rows = rows
        self.tf = tf

    @staticmethod
    def empty() -> _Postings:
        return _Postings(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3), np.uint8))

    @staticmethod
    def concat(parts: list[_Postings]) -> _Postings:
        if not parts:
            return _Postings.empty()
        if len(parts) == 1:
            return parts[0]
        dtype = np.result_type(*(p.tf.dtype for p in parts))
        return _Postings(
            np.concatenate([p.tids for p in parts]),
            np.concatenate([p.rows for p in parts]),
            np.concatenate([p.tf.astype(dtype, copy=False) for p in parts]),
        )


def _reduce(tids: I64, keys: I64) -> _Postings:
    """Instances (term id, row * 4 + column) into postings with per-column counts."""
    if len(keys) == 0:
        return _Postings.empty()
    comb = (tids << 34) | keys
    if bool(np.any(comb[1:] < comb[:-1])):
        comb = np.sort(comb)
    new = np.empty(len(comb), dtype=bool)
    new[0] = True
    np.not_equal(comb[1:], comb[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    uniq = comb[starts]
    counts = np.diff(np.append(starts, len(comb)))
    pair = uniq >> 2  # term id << 32 | row
    col = (uniq & 3).astype(np.intp)
    first = np.empty(len(pair), dtype=bool)
    first[0] = True
    np.not_equal(pair[1:], pair[:-1], out=first[1:])
    pid = np.cumsum(first) - 1
    tf = np.zeros((int(pid[-1]) + 1, 3), dtype=np.min_scalar_type(int(counts.max())))
    tf[pid, col] = counts
    heads = pair[first]
    return _Postings((heads >> 32).astype(np.int32), (heads & 0xFFFFFFFF).astype(np.int32), tf)


class LexicalIndex:
    """BM25 (FTS5's formula) over a CSR matrix of FTS5's tokens, synced with the chunks table."""

    def __init__(self, path: Path, tokenize: str, *, fts: str = "chunks_fts", content: str = "chunks") -> None:
        self.path = path
        self.tokenize = tokenize
        self.fts = fts
        self.content = content
        self.synced_generation = -1
        self._tokenizer = Tokenizer(tokenize)
        self._phrases: dict[tuple[str, ...], tuple[I32, Counts]] = {}
        self._loaded = False
        self._reset()

    def close(self) -> None:
        self._tokenizer.close()

    def __len__(self) -> int:
        return self._n_rows

    def _reset(self) -> None:
        self._vocab: list[str] = []
        self._terms: dict[str, int] = {}
        self._offsets: I64 = np.zeros(1, np.int64)
        self._rows: I32 = np.zeros(0, np.int32)
        self._tf: Counts = np.zeros((0, 3), np.uint8)
        self._chunk_ids: I64 = np.zeros(0, np.int64)  # row -> chunk id, ascending
        self._colsize: I64 = np.zeros((0, 3), np.int64)  # tokens per row and column
        self._alive: npt.NDArray[np.bool_] = np.zeros(0, bool)
        self._n_dead = 0
        self._max_id = 0  # the largest chunk id ever held
        self._saturated: tuple[tuple[float, float, float], F64] | None = None
        self._refresh_norm()

    # -- persistence -------------------------------------------------------------
    def save(self, generation: int) -> None:
        """Write the index next to the SQLite file (atomically: a temporary file, then a rename)."""
        arrays: dict[str, npt.NDArray[Any]] = {
            "offsets": self._offsets,
            "rows": self._rows,
            "tf": self._tf,
            "chunk_ids": self._chunk_ids,
            "colsize": self._colsize,
            "alive": self._alive,
            "vocab": np.frombuffer("\n".join(self._vocab).encode("utf-8"), dtype=np.uint8),
        }
        layout: dict[str, list[Any]] = {}
        pos = 0
        for name, a in arrays.items():
            layout[name] = [a.dtype.str, list(a.shape), pos]
            pos += (a.nbytes + 63) // 64 * 64
        head = json.dumps(
            {
                "format": _FORMAT,
                "tokenize": self.tokenize,
                "generation": generation,
                "max_id": self._max_id,
                "n_terms": len(self._vocab),
                "arrays": layout,
            }
        ).encode()
        base = (len(_MAGIC) + 8 + len(head) + 63) // 64 * 64
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(_MAGIC + len(head).to_bytes(8, "little") + head)
            f.write(b"\0" * (base - f.tell()))
            for a in arrays.values():
                data = np.ascontiguousarray(a).tobytes()
                f.write(data + b"\0" * ((len(data) + 63) // 64 * 64 - len(data)))
        os.replace(tmp, self.path)

    def load(self) -> int | None:
        """Map the saved index; its generation, or None if it is absent, damaged or built differently."""
        self._loaded = True
        if not self.path.exists():
            return None
        try:
            mm = np.memmap(self.path, dtype=np.uint8, mode="r")
            if bytes(mm[: len(_MAGIC)]) != _MAGIC:
                return None
            n = int.from_bytes(bytes(mm[len(_MAGIC) : len(_MAGIC) + 8]), "little")
            meta = json.loads(bytes(mm[len(_MAGIC) + 8 : len(_MAGIC) + 8 + n]))
            if meta.get("format") != _FORMAT or meta.get("tokenize") != self.tokenize:
                return None
            base = (len(_MAGIC) + 8 + n + 63) // 64 * 64
            arrays: dict[str, npt.NDArray[Any]] = {}
            for name, (dtype, shape, pos) in meta["arrays"].items():
                count = int(np.prod(shape)) if shape else 1
                arrays[name] = np.frombuffer(mm, dtype=np.dtype(dtype), count=count, offset=base + pos).reshape(shape)
            vocab = bytes(arrays["vocab"]).decode("utf-8").split("\n") if meta["n_terms"] else []
            if len(vocab) != meta["n_terms"] or len(arrays["offsets"]) != len(vocab) + 1:
                return None
            self._vocab = vocab
            self._terms = {t: i for i, t in enumerate(vocab)}
            self._offsets = arrays["offsets"]
            self._rows = arrays["rows"]
            self._tf = arrays["tf"]
            self._chunk_ids = arrays["chunk_ids"]
            self._colsize = arrays["colsize"]
            self._alive = arrays["alive"]
            self._n_dead = int(len(self._alive) - np.count_nonzero(self._alive))
            self._max_id = int(meta["max_id"])
            self._refresh_norm()
            return int(meta["generation"])
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            self._reset()
            return None

    # -- syncing -------------------------------------------------------------------
    def sync(self, conn: sqlite3.Connection, generation: int) -> tuple[int, int]:
        """Hold exactly the chunks now stored; returns (added, removed). Saves the index if it changed.

        The chunk ids and their tokens are read in one transaction (one snapshot of the file).
        """
        if not self._loaded and self.load() == generation and self._matches_fts(conn):
            self.synced_generation = generation
            return 0, 0
        try:
            added, removed = self._read_changes(conn)
            if not self._matches_fts(conn):  # should not happen; FTS5 is the truth, so start from it
                self._reset()
                added, removed = self._read_changes(conn)
        except BaseException:
            self._reset()
            self.synced_generation = -1
            raise
        if self._n_dead > len(self._alive) // 4:
            self._compact()
        self._phrases.clear()
        if added or removed or not self.path.exists():
            self.save(generation)
        self.synced_generation = generation
        return added, removed

    def _read_changes(self, conn: sqlite3.Connection) -> tuple[int, int]:
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            ids = np.fromiter((r[0] for r in conn.execute(f"SELECT id FROM {self.content} ORDER BY id")), np.int64)
            live = self._chunk_ids[self._alive] if self._n_dead else self._chunk_ids
            removed = np.setdiff1d(live, ids, assume_unique=True)
            added = np.setdiff1d(ids, live, assume_unique=True)
            if len(added) and int(added[0]) <= self._max_id:
                # an id came back (written by an older Tether, which let SQLite reuse ids): start again
                self._reset()
                removed, added = np.zeros(0, np.int64), ids
            if len(self._chunk_ids) == 0:
                if len(ids):
                    self._build(conn, ids)
            else:
                if len(removed):
                    self._remove(removed)
                if len(added):
                    self._add(conn, added)
        finally:
            if own:
                conn.execute("COMMIT")
        self._refresh_norm()
        return int(len(added)), int(len(removed))

    def _matches_fts(self, conn: sqlite3.Connection) -> bool:
        """Same number of rows, and of tokens in each column, as FTS5's own totals."""
        row = conn.execute(f"SELECT block FROM {self.fts}_data WHERE id = 1").fetchone()
        totals = _varints(bytes(row[0])) if row is not None and row[0] else []
        live = self._colsize[self._alive] if self._n_dead else self._colsize
        mine = [len(live), *(int(x) for x in live.sum(axis=0))]
        if not totals:
            return mine[0] == 0
        return totals[: len(mine)] == mine

    def _term_ids(self, terms: list[str]) -> I64:
        out = np.empty(len(terms), np.int64)
        for i, t in enumerate(terms):
            tid = self._terms.get(t)
            if tid is None:
                tid = len(self._vocab)
                self._terms[t] = tid
                self._vocab.append(t)
            out[i] = tid
        return out

    def _read_instances(self, per_term: Iterable[tuple[str, str]], chunk_ids: I64) -> tuple[_Postings, I64]:
        """Postings (rows numbered by position in ``chunk_ids``) and tokens per row and column."""
        parts: list[_Postings] = []
        colsize = np.zeros(len(chunk_ids) * 3, np.int64)
        terms: list[str] = []
        arrays: list[I64] = []
        pending = 0

        def reduce() -> None:
            nonlocal pending
            if not arrays:
                return
            keys = np.concatenate(arrays)
            col = keys & 3
            rows = np.searchsorted(chunk_ids, keys >> 2)
            colsize[:] += np.bincount(rows * 3 + col, minlength=len(colsize))
            tids = np.repeat(self._term_ids(terms), [len(a) for a in arrays])
            parts.append(_reduce(tids, (rows << 2) | col))
            terms.clear()
            arrays.clear()
            pending = 0

        for term, text in per_term:
            a = _ints(text)
            terms.append(term)
            arrays.append(a)
            pending += len(a)
            if pending >= _REDUCE_EVERY:
                reduce()
        reduce()
        return _Postings.concat(parts), colsize.reshape(-1, 3)

    def _vocab_table(self, conn: sqlite3.Connection) -> str:
        conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {_VOCAB_TABLE} USING fts5vocab(main, {self.fts}, 'instance')")
        return _VOCAB_TABLE

    def _build(self, conn: sqlite3.Connection, ids: I64) -> None:
        """Everything at once, from FTS5's own index (nothing tokenized again)."""
        self._reset()
        rows = ((str(t), str(s)) for t, s in conn.execute(_instances_sql(self._vocab_table(conn))))
        post, colsize = self._read_instances(rows, ids)
        self._chunk_ids = ids
        self._colsize = colsize
        self._alive = np.ones(len(ids), bool)
        self._max_id = int(ids[-1])
        self._set_postings(post)

    def _set_postings(self, post: _Postings) -> None:
        n_terms = len(self._vocab)
        offsets = np.zeros(n_terms + 1, np.int64)
        np.cumsum(np.bincount(post.tids, minlength=n_terms), out=offsets[1:])
        self._offsets = offsets
        self._rows = post.rows
        self._tf = post.tf
        self._saturated = None

    def _postings(self) -> _Postings:
        counts = np.diff(self._offsets)
        return _Postings(np.repeat(np.arange(len(counts), dtype=np.int32), counts), self._rows, self._tf)

    def _add(self, conn: sqlite3.Connection, added: I64) -> None:
        """Tokenize new chunks (FTS5's tokenizer, in memory) and merge their postings in."""
        base = len(self._chunk_ids)
        parts: list[_Postings] = [self._postings()]
        sizes: list[I64] = [self._colsize]
        for b in range(0, len(added), _TOKENIZE_BATCH):
            ids = added[b : b + _TOKENIZE_BATCH]
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT id, {', '.join(COLUMNS)} FROM {self.content} WHERE id IN ({marks})", [int(i) for i in ids]
            )
            post, colsize = self._read_instances(self._tokenizer.instances(rows), ids)
            post.rows = post.rows + np.int32(base + b)
            parts.append(post)
            sizes.append(colsize)
        every = _Postings.concat(parts)
        order = np.argsort(every.tids, kind="stable")  # sorted runs, so this is a linear merge
        self._set_postings(_Postings(every.tids[order], every.rows[order], every.tf[order]))
        self._chunk_ids = np.concatenate([self._chunk_ids, added])
        self._colsize = np.concatenate(sizes)
        self._alive = np.concatenate([self._alive, np.ones(len(added), bool)])
        self._max_id = max(self._max_id, int(added[-1]))

    def _remove(self, removed: I64) -> None:
        alive = np.array(self._alive, copy=True)
        alive[np.searchsorted(self._chunk_ids, removed)] = False
        self._alive = alive
        self._n_dead = int(len(alive) - np.count_nonzero(alive))

    def _compact(self) -> None:
        """Drop removed rows for good."""
        keep_row = self._alive
        new_row = (np.cumsum(keep_row) - 1).astype(np.int32)
        post = self._postings()
        keep = keep_row[post.rows]
        self._chunk_ids = self._chunk_ids[keep_row]
        self._colsize = self._colsize[keep_row]
        self._alive = np.ones(len(self._chunk_ids), bool)
        self._n_dead = 0
        self._set_postings(_Postings(post.tids[keep], new_row[post.rows[keep]], post.tf[keep]))
        self._refresh_norm()

    def _refresh_norm(self) -> None:
        """``k1 * (1 - b + b * D / avgdl)`` for every row, as FTS5 computes it."""
        live = self._colsize[self._alive] if self._n_dead else self._colsize
        self._n_rows = len(live)
        n_tokens = int(live.sum())
        if self._n_rows == 0:
            self._norm: F64 = np.zeros(len(self._colsize))
            return
        avgdl = float(n_tokens) / float(self._n_rows)
        d = self._colsize.sum(axis=1).astype(np.float64)
        self._norm = K1 * ((1 - B) + B * d / avgdl)
        self._saturated = None

    def _factors(self, freq: F64, rows: I32) -> F64:
        """BM25's term-frequency factor of weighted frequencies ``freq`` in ``rows``."""
        out: F64 = (freq * (K1 + 1.0)) / (freq + self._norm[rows])
        return out

    def _saturation(self, weights: tuple[float, float, float]) -> F64 | None:
        """Every posting's term-frequency factor under ``weights`` (kept for the last weights asked), or None
        when there are more postings than :data:`_MAX_SATURATED`."""
        if len(self._rows) > _MAX_SATURATED:
            return None
        if self._saturated is None or self._saturated[0] != weights:
            freq = self._tf.astype(np.float64) @ np.asarray(weights, dtype=np.float64)
            self._saturated = (weights, self._factors(freq, self._rows))
        return self._saturated[1]

    # -- searching -----------------------------------------------------------------
    def _phrase(self, conn: sqlite3.Connection, term: str, tokens: tuple[str, ...]) -> tuple[I32, Counts]:
        """Rows where ``term``'s tokens occur one after another in one column, with matches per column."""
        got = self._phrases.get(tokens)
        if got is None:
            got = self._phrase_rows(conn, term, tokens)
            if len(self._phrases) >= _MAX_CACHED_PHRASES:
                self._phrases.clear()
            self._phrases[tokens] = got
        return got

    def _phrase_rows(self, conn: sqlite3.Connection, term: str, tokens: tuple[str, ...]) -> tuple[I32, Counts]:
        empty: tuple[I32, Counts] = (np.zeros(0, np.int32), np.zeros((0, 3), np.int64))
        rows: I32 | None = None
        for t in tokens:  # rows holding every token, from the matrix: most phrases stop here
            tid = self._terms.get(t)
            if tid is None:
                return empty
            these = self._rows[int(self._offsets[tid]) : int(self._offsets[tid + 1])]
            rows = these if rows is None else np.intersect1d(rows, these, assume_unique=True)
            if len(rows) == 0:
                return empty
        got = self._phrase_counts_from_bm25(conn, term)
        return got if got is not None else self._phrase_counts_from_positions(conn, tokens)

    def _phrase_counts_from_bm25(self, conn: sqlite3.Connection, term: str) -> tuple[I32, Counts] | None:
        """FTS5 matches the phrase (positions are its business); the matches per column come back out of
        bm25() asked with one column weighted at a time: for one phrase ``s = idf * f (k1 + 1) / (f + K)``,
        so ``f = r K / (k1 + 1 - r)`` with ``r = s / idf``, an integer (checked; None if it is not)."""
        quoted = '"' + term.replace('"', '""') + '"'
        got = conn.execute(
            f"SELECT rowid, -bm25({self.fts}, 1.0, 0.0, 0.0), -bm25({self.fts}, 0.0, 1.0, 0.0),"
            f" -bm25({self.fts}, 0.0, 0.0, 1.0) FROM {self.fts} WHERE {self.fts} MATCH ? ORDER BY rowid",
            (quoted,),
        ).fetchall()
        if not got:
            return np.zeros(0, np.int32), np.zeros((0, 3), np.int64)
        a = np.array(got, dtype=np.float64)
        ids = a[:, 0].astype(np.int64)
        rows = np.searchsorted(self._chunk_ids, ids)
        if rows.max() >= len(self._chunk_ids) or not np.array_equal(self._chunk_ids[rows], ids):
            return None
        n_hit = len(ids)  # FTS5 counts the phrase's rows for its IDF the same way
        idf = math.log((self._n_rows - n_hit + 0.5) / (n_hit + 0.5))
        idf = idf if idf > 0.0 else 1e-6
        ratio = a[:, 1:] / idf
        freq = ratio * self._norm[rows][:, None] / ((K1 + 1.0) - ratio)
        counts = np.rint(freq)
        if not np.all(np.abs(freq - counts) <= 1e-6 * np.maximum(counts, 1.0)):
            return None
        return rows.astype(np.int32), counts.astype(np.int64)

    def _phrase_counts_from_positions(self, conn: sqlite3.Connection, tokens: tuple[str, ...]) -> tuple[I32, Counts]:
        """The same from FTS5's token positions (slower: every position of every token is read)."""
        table = self._vocab_table(conn)
        found: dict[str, list[tuple[int, int]]] = {}
        for t in dict.fromkeys(tokens):
            keys, offsets = conn.execute(
                f"SELECT group_concat(doc * 4 + {_col_index('col')}), group_concat(offset) FROM {table} WHERE term = ?",
                (t,),
            ).fetchone()
            found[t] = list(zip(_ints(keys).tolist(), _ints(offsets).tolist(), strict=True))
        starts: set[tuple[int, int]] | None = None
        for j, t in enumerate(tokens):
            at = {(k, o - j) for k, o in found[t]}
            starts = at if starts is None else starts & at
        per: dict[tuple[int, int], int] = {}
        for k, _ in starts or ():
            per[(k >> 2, k & 3)] = per.get((k >> 2, k & 3), 0) + 1
        docs = sorted({d for d, _ in per})
        ids = np.asarray(docs, np.int64)
        rows = np.searchsorted(self._chunk_ids, ids)
        tf = np.zeros((len(docs), 3), np.int64)
        index = {d: i for i, d in enumerate(docs)}
        for (d, col), c in per.items():
            tf[index[d], col] = c
        ok = rows < len(self._chunk_ids)
        ok[ok] = self._chunk_ids[rows[ok]] == ids[ok]
        return rows[ok].astype(np.int32), tf[ok]

    def column_counts(self, conn: sqlite3.Connection, terms: list[str], column: int) -> dict[str, int]:
        """For each term, how many rows hold it (as a phrase of its tokens) in ``column``.

        What ``SELECT COUNT(*) FROM fts WHERE fts MATCH '<column> : "term"'`` counts.
        """
        unique = list(dict.fromkeys(terms))
        out: dict[str, int] = {}
        for term, tokens in zip(unique, self._tokenizer.tokens(unique), strict=True):
            got = self._term_rows(conn, term, tokens)
            out[term] = 0 if got is None else int(np.count_nonzero(got[1][:, column] > 0))
        return out

    def _term_factors(
        self,
        conn: sqlite3.Connection,
        term: str,
        tokens: tuple[str, ...],
        weights: tuple[float, float, float],
        saturated: F64 | None,
    ) -> tuple[I32, F64] | None:
        """The live rows holding ``term`` and its BM25 term-frequency factor in each (see :meth:`_term_rows`);
        read from ``saturated`` (every posting's factor, for ``weights``) for a one-token term."""
        if saturated is not None and len(tokens) == 1:
            span = self._postings_of(tokens[0])
            return None if span is None else self._live(self._rows[span], saturated[span])
        got = self._term_rows(conn, term, tokens)
        if got is None:
            return None
        rows, tf = got
        return rows, self._factors(tf.astype(np.float64) @ np.asarray(weights, dtype=np.float64), rows)

    def _term_rows(self, conn: sqlite3.Connection, term: str, tokens: tuple[str, ...]) -> tuple[I32, Counts] | None:
        """The live rows holding ``term`` (a phrase of ``tokens``) and their per-column counts; None if it
        has no tokens or none of its tokens is indexed."""
        if len(tokens) == 1:
            span = self._postings_of(tokens[0])
            return None if span is None else self._live(self._rows[span], self._tf[span])
        if tokens:
            return self._live(*self._phrase(conn, term, tokens))
        return None

    def _postings_of(self, token: str) -> slice | None:
        """Where ``token``'s postings lie in the CSR arrays; None if it is not indexed."""
        tid = self._terms.get(token)
        return None if tid is None else slice(int(self._offsets[tid]), int(self._offsets[tid + 1]))

    def _live(self, rows: I32, values: npt.NDArray[Any]) -> tuple[I32, npt.NDArray[Any]]:
        """``rows`` and their ``values`` without the rows of removed chunks."""
        if self._n_dead and len(rows):
            keep = self._alive[rows]
            return rows[keep], values[keep]
        return rows, values

    def search(
        self,
        conn: sqlite3.Connection,
        terms: list[str],
        n: int,
        *,
        weights: tuple[float, float, float],
        allowed: I64 | None = None,
    ) -> list[ScoredId]:
        """Top ``n`` chunks for an OR of the terms (each a phrase of its tokens), best first, ties by id.

        ``allowed`` (chunk ids) restricts the rows returned, not the statistics (as a filter in SQL does).
        """
        if n <= 0 or self._n_rows == 0:
            return []
        rows_parts: list[I32] = []
        factor_parts: list[F64] = []
        idfs: list[float] = []
        n_rows = self._n_rows
        saturated = self._saturation(weights)
        unique = list(dict.fromkeys(terms))
        for term, tokens in zip(unique, self._tokenizer.tokens(unique), strict=True):
            got = self._term_factors(conn, term, tokens, weights, saturated)
            if got is None or len(got[0]) == 0:
                continue
            rows, factors = got
            idf = math.log((n_rows - len(rows) + 0.5) / (len(rows) + 0.5))
            rows_parts.append(rows)
            factor_parts.append(factors)
            idfs.append(idf if idf > 0.0 else 1e-6)
        if not rows_parts:
            return []
        if len(rows_parts) == 1:
            rows, factors = rows_parts[0], factor_parts[0]
        else:
            rows = np.concatenate(rows_parts)
            factors = np.concatenate(factor_parts)
        contrib = np.repeat(np.asarray(idfs), [len(r) for r in rows_parts]) * factors
        size = len(self._chunk_ids)
        # bincount adds in input order: phrase by phrase, as FTS5 sums a row's score
        scores = np.bincount(rows, weights=contrib, minlength=size)
        if min(weights) >= 1e-3:  # every match then scores above 0 (idf >= 1e-6, freq >= 1e-3)
            cand = np.flatnonzero(scores > 0)
        else:  # a match in a column of weight 0 scores 0 and is still a match
            cand = np.flatnonzero(np.bincount(rows, minlength=size))
        if allowed is not None:
            cand = cand[np.isin(self._chunk_ids[cand], allowed, assume_unique=True)]
        s = scores[cand]
        if len(cand) > n:
            kth = np.partition(s, len(s) - n)[len(s) - n]
            above = np.flatnonzero(s > kth)
            ties = np.flatnonzero(s == kth)[: n - len(above)]
            pick = np.concatenate([above, ties])
            cand, s = cand[pick], s[pick]
        ids = self._chunk_ids[cand]
        order = np.lexsort((ids, -s))
        return list(map(ScoredId._make, zip(ids[order].tolist(), s[order].tolist(), strict=True)))
