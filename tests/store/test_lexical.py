"""The numpy BM25 index gives exactly FTS5's bm25() ranking, and stays in line with the chunks table."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tether.contracts import SearchFilters
from tether.ingest._dedupe import band_keys, signature
from tether.store import NewChunk, NewDocument, SQLiteStore

_WORDS = (
    "cell cells protein proteins gene genes covid-19 il-6 tnf-α p53 risk increased decreased patients mice "
    "tumor tumour growth factor receptor expression café naïve don't 3.5 5-ht β-cells insulin glucose "
    "the of and in a to with is was by for on"
)
WORDS = _WORDS.split()


def _doc(path: str, texts: list[str], *, title: str, tags: list[str] | None = None, n: int = 0) -> NewDocument:
    chunks = []
    pos = 0
    for i, t in enumerate(texts):
        sig = signature(t, 64)
        chunks.append(
            NewChunk(
                ord=i,
                start=pos,
                end=pos + len(t),
                text=t,
                section=[title, f"Part {i % 3}"] if i % 2 else [],
                kinds=["paragraph"],
                vector=np.ones(4, np.float32) / 2,
                signature=sig,
                band_keys=band_keys(sig, 8, 8),
            )
        )
        pos += len(t) + 2
    return NewDocument(
        path=path,
        title=title,
        mtime=datetime(2024, 1, 1 + n % 28, tzinfo=UTC),
        content_hash=f"{path}-{n}",
        size=pos,
        text="\n\n".join(texts),
        chunks=chunks,
        tags=tags or [],
    )


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS[:20]) if rng.random() < 0.7 else rng.choice(WORDS) for _ in range(n))


def _fill(store: SQLiteStore, rng: random.Random, docs: int, start: int = 0) -> None:
    for d in range(start, start + docs):
        texts = [_text(rng, rng.randint(3, 60)) for _ in range(rng.randint(1, 4))]
        store.put_document(
            _doc(f"/d/{d % 7}/doc{d}.md", texts, title=_text(rng, 3), tags=["even" if d % 2 == 0 else "odd"], n=d)
        )


def _queries(rng: random.Random, n: int) -> list[list[str]]:
    return [[rng.choice(WORDS) for _ in range(rng.randint(1, 8))] for _ in range(n)] + [
        ["covid-19"],
        ["don't", "3.5"],
        ["il-6", "il-6"],
        ["cells", "cell"],
        ["nothing-here", "zzz"],
        ["café", "cafe", "naive"],
    ]


def _assert_same(store: SQLiteStore, rng: random.Random, queries: int = 60) -> None:
    for terms in _queries(rng, queries):
        for tw, sw, n in ((1.0, 0.5, 20), (2.0, 0.5, 5), (0.0, 1.0, 50), (1.0, 0.5, 1000)):
            for filters in (None, SearchFilters(tags=["even"]), SearchFilters(path_glob="/d/3/*")):
                got = store.lexical_search(terms, n, filters, title_weight=tw, section_weight=sw)
                want = store._fts_lexical_search(terms, n, filters, title_weight=tw, section_weight=sw)
                assert [x.score for x in got] == pytest.approx([x.score for x in want], rel=1e-12, abs=0)
                # same ids in the same order, up to the order of exactly tied scores
                assert sorted((-x.score, x.chunk_id) for x in got) == [(-x.score, x.chunk_id) for x in got]
                tied_cut = [x.score for x in want].count(want[-1].score) > 1 if want else False
                if tied_cut:
                    cut = want[-1].score
                    assert {x.chunk_id for x in got if x.score > cut} == {x.chunk_id for x in want if x.score > cut}
                else:
                    assert {x.chunk_id for x in got} == {x.chunk_id for x in want}


def _assert_counts_same(store: SQLiteStore) -> None:
    terms = [*WORDS, "nothing-here", "\u0301", "ha-ha", "Cells", "don't"]
    assert store.term_document_counts(terms) == store._fts_term_document_counts(terms)


def test_scores_and_ranking_equal_fts5_bm25(tmp_path: Path) -> None:
    rng = random.Random(3)
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    store.check_embedding("m", 4)
    _fill(store, rng, 60)
    _assert_same(store, rng)
    _assert_counts_same(store)
    # default weights are binary fractions: the scores are FTS5's bit for bit
    for terms in _queries(rng, 30):
        got = store.lexical_search(terms, 30)
        want = store._fts_lexical_search(terms, 30)
        assert [x.score for x in got] == [x.score for x in want]


def test_scores_worked_out_per_search_equal_the_kept_factors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index of more postings than it keeps factors for works each term's out per search: same results."""
    from tether.store import _lexical

    rng = random.Random(4)
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    store.check_embedding("m", 4)
    _fill(store, rng, 40)
    for d in range(0, 40, 5):
        store.delete_document(f"/d/{d % 7}/doc{d}.md")
    queries = _queries(rng, 30)
    kept = [store.lexical_search(q, 25, title_weight=1.5) for q in queries]
    assert store._lexical is not None and store._lexical._saturated is not None
    monkeypatch.setattr(_lexical, "_MAX_SATURATED", 0)
    assert [store.lexical_search(q, 25, title_weight=1.5) for q in queries] == kept
    _assert_same(store, rng, 10)


def test_follows_replaced_deleted_and_added_documents_and_reopens(tmp_path: Path) -> None:
    rng = random.Random(5)
    path = tmp_path / "i.db"
    store = SQLiteStore.open(path, create=True)
    store.check_embedding("m", 4)
    _fill(store, rng, 30)
    _assert_same(store, rng, 10)
    assert (tmp_path / "i.db.lexical").exists()
    # replace the last document (SQLite would hand its chunk ids out again), delete some, add some
    store.put_document(_doc("/d/1/doc29.md", ["entirely different words: insulin glucose"], title="new", n=99))
    for d in range(0, 30, 4):
        store.delete_document(f"/d/{d % 7}/doc{d}.md")
    _fill(store, rng, 10, start=100)
    _assert_same(store, rng, 10)
    _assert_counts_same(store)
    ids = store.lexical_search(["insulin"], 100)
    assert any(store.hits([x.chunk_id])[x.chunk_id].path == "/d/1/doc29.md" for x in ids)
    store.close()

    # a new process maps the saved index, and follows writes made by another connection
    again = SQLiteStore.open(path)
    other = SQLiteStore.open(path)
    _fill(other, rng, 5, start=200)
    other.delete_document("/d/2/doc100.md")
    _assert_same(again, rng, 10)
    again.close()
    other.close()


def test_many_deletes_compact_the_index(tmp_path: Path) -> None:
    rng = random.Random(9)
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    store.check_embedding("m", 4)
    _fill(store, rng, 400)
    store.lexical_search(["cell"], 5)
    for d in range(0, 400, 2):
        store.delete_document(f"/d/{d % 7}/doc{d}.md")
    _assert_same(store, rng, 10)
    lex = store._lexical
    assert lex is not None and lex._n_dead == 0  # compacted


def test_damaged_or_foreign_sidecar_is_rebuilt(tmp_path: Path) -> None:
    rng = random.Random(11)
    path = tmp_path / "i.db"
    store = SQLiteStore.open(path, create=True)
    store.check_embedding("m", 4)
    _fill(store, rng, 20)
    store.lexical_search(["cell"], 5)
    store.close()
    side = tmp_path / "i.db.lexical"
    for damage in (b"garbage", side.read_bytes()[:200], side.read_bytes()[:-100]):
        side.write_bytes(damage)
        s = SQLiteStore.open(path)
        _assert_same(s, rng, 5)
        s.close()


def test_sidecar_out_of_step_with_fts_is_rebuilt(tmp_path: Path) -> None:
    """A sidecar that claims the current generation but holds other content is caught by FTS5's totals."""
    rng = random.Random(13)
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for p, seed in ((a, 1), (b, 2)):
        s = SQLiteStore.open(p, create=True)
        s.check_embedding("m", 4)
        _fill(s, random.Random(seed), 10)
        s.lexical_search(["cell"], 5)
        s.close()
    (tmp_path / "a.db.lexical").write_bytes((tmp_path / "b.db.lexical").read_bytes())
    s = SQLiteStore.open(a)
    _assert_same(s, rng, 10)
    s.close()


def test_chunk_ids_are_never_reused(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    store.check_embedding("m", 4)
    seen: set[int] = set()
    for n in range(5):
        store.put_document(_doc("/x.md", [f"version {n} text", "more text"], title="x", n=n))
        ids = set(store.chunk_paths())
        assert not ids & seen
        seen |= ids
        store.delete_document("/x.md")
    store.put_document(_doc("/y.md", ["y"], title="y"))
    assert not set(store.chunk_paths()) & seen


def test_empty_index_and_empty_queries(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    assert store.lexical_search(["cell"], 5) == []
    store.check_embedding("m", 4)
    store.put_document(_doc("/x.md", ["a cell"], title="x"))
    assert store.lexical_search([], 5) == []
    assert store.lexical_search(["cell"], 0) == []
    assert store.lexical_search(["\u0301"], 5) == []  # no token at all
    store.delete_document("/x.md")
    assert store.lexical_search(["cell"], 5) == []


def test_phrase_counts_from_bm25_and_from_positions_agree(tmp_path: Path) -> None:
    rng = random.Random(17)
    store = SQLiteStore.open(tmp_path / "i.db", create=True)
    store.check_embedding("m", 4)
    _fill(store, rng, 40)
    store.put_document(_doc("/h.md", ["ha-ha ha-ha-ha covid-19 covid 19 19 covid", "ha ha"], title="ha-ha covid-19"))
    store.lexical_search(["cell"], 1)
    lex = store._lexical
    assert lex is not None
    for term in ("covid-19", "il-6", "don't", "ha-ha", "ha-ha-ha", "3.5", "β-cells", "5-ht", "tnf-α", "x-y-z"):
        (tokens,) = lex._tokenizer.tokens([term])
        from_bm25 = lex._phrase_counts_from_bm25(store._conn, term)
        assert from_bm25 is not None
        from_positions = lex._phrase_counts_from_positions(store._conn, tokens)
        assert np.array_equal(from_bm25[0], from_positions[0]), term
        assert np.array_equal(from_bm25[1], from_positions[1]), term
    assert len(lex._phrase_counts_from_positions(store._conn, ("ha", "ha"))[0]) >= 2


def test_query_terms_are_tokenized_as_fts5_tokenizes_each_alone() -> None:
    from tether.store._lexical import Tokenizer
    from tether.store._sqlite import FTS_TOKENIZE

    terms = ["covid-19", "Running", "café", "\u0301", "", "a  b", "x\ue000y", "don't", "β-cells", "3.5", "the"]
    together = Tokenizer(FTS_TOKENIZE).tokens(terms)  # one insert, or one row per term with the separator in a term
    alone = [Tokenizer(FTS_TOKENIZE).tokens([t])[0] for t in terms]
    assert together == alone
    assert together[0] == ("covid", "19") and together[1] == ("run",) and together[3] == ()
    plain = [t for t in terms if "\ue000" not in t]
    assert Tokenizer(FTS_TOKENIZE).tokens(plain) == [a for t, a in zip(terms, alone, strict=True) if t in plain]


def test_search_inside_a_write_batch_sees_it_and_a_rollback_leaves_no_trace(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "i.db", create=True, ann_threshold=1)  # the HNSW index too
    store.check_embedding("m", 4)
    store.put_document(_doc("/a.md", ["insulin and glucose"], title="a"))
    assert len(store.lexical_search(["insulin"], 5)) == len(store.dense_search(np.ones(4, np.float32), 5)) == 1
    with store.batch():
        store.put_document(_doc("/b.md", ["insulin again"], title="b", n=1))
        got = store.lexical_search(["insulin"], 5)
        assert len(got) == 2 and store.term_document_counts(["insulin"]) == {"insulin": 2}
        assert len(store.dense_search(np.ones(4, np.float32), 5)) == 2
    assert store.lexical_search(["insulin"], 5) == got

    # written, searched, then rolled back: the chunk ids come back with other content, and nothing stale shows
    with pytest.raises(RuntimeError), store.batch():
        store.put_document(_doc("/c.md", ["kinase kinase kinase"], title="c", n=2))
        assert store.lexical_search(["kinase"], 5) and store.dense_search(np.ones(4, np.float32), 5)
        store._conn.execute("ROLLBACK")
        store._conn.execute("BEGIN IMMEDIATE")
        raise RuntimeError
    store.put_document(_doc("/d.md", ["tumour growth"], title="d", n=3))
    assert store.lexical_search(["kinase"], 5) == []
    _assert_same(store, random.Random(1), 5)
    found = {x.chunk_id for x in store.dense_search(np.ones(4, np.float32), 10)}
    assert found == set(store.chunk_paths())
