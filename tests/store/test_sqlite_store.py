"""SQLiteStore: atomic per-document writes, BM25 and exact dense search, filters, near-duplicates, safety checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tether.contracts import SearchFilters
from tether.errors import IndexMismatchError, IndexMissingError
from tether.ingest._dedupe import band_keys, lsh_params, signature
from tether.store import NewChunk, NewDocument, SQLiteStore

DIM = 8
MODEL = "test-model"
NUM_PERM = 64
BANDS, ROWS = lsh_params(0.9, NUM_PERM)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    return v


def make_doc(
    path: str,
    texts: list[str],
    *,
    axes: list[int] | None = None,
    tags: list[str] | None = None,
    mtime: datetime = T0,
    title: str = "Title",
) -> NewDocument:
    """A document whose text is its chunk texts joined by blank lines; chunk i points along axis axes[i]."""
    axes = axes if axes is not None else list(range(len(texts)))
    chunks = []
    pos = 0
    for i, (t, axis) in enumerate(zip(texts, axes, strict=True)):
        sig = signature(t, NUM_PERM)
        chunks.append(
            NewChunk(
                ord=i,
                start=pos,
                end=pos + len(t),
                text=t,
                section=["Top", f"Part {i}"],
                kinds=["paragraph"],
                vector=unit(axis),
                signature=sig,
                band_keys=band_keys(sig, BANDS, ROWS),
            )
        )
        pos += len(t) + 2
    text = "\n\n".join(texts)
    return NewDocument(
        path=path,
        title=title,
        mtime=mtime,
        content_hash=f"hash-of-{path}-{len(text)}-{texts[0][:10]}",
        size=len(text),
        text=text,
        chunks=chunks,
        tags=tags or [],
    )


def chunk_ids_of(store: SQLiteStore, path: str) -> set[int]:
    return {cid for cid, p in store.chunk_paths().items() if p == path}


def lexical_paths(store: SQLiteStore, terms: list[str], filters: SearchFilters | None = None) -> list[str]:
    hits = store.hits([x.chunk_id for x in store.lexical_search(terms, 50, filters)])
    return [hits[x.chunk_id].path for x in store.lexical_search(terms, 50, filters)]


def dense_ids(store: SQLiteStore, axis: int, filters: SearchFilters | None = None) -> list[int]:
    return [x.chunk_id for x in store.dense_search(unit(axis), 50, filters)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore.open(tmp_path / "idx" / "index.db", create=True)
    s.check_embedding(MODEL, DIM)
    yield s
    s.close()


@pytest.fixture
def filled(store: SQLiteStore) -> SQLiteStore:
    """Three documents with distinct tags, folders and modification times."""
    store.put_document(
        make_doc(
            "/docs/notes/alpha.md",
            ["The aardvark eats termites at night.", "Alpha notes about gardens."],
            axes=[0, 1],
            tags=["animals", "notes"],
            mtime=T0,
        )
    )
    store.put_document(
        make_doc(
            "/docs/notes/beta.md",
            ["Beta notes about gardens and soil.", "Compost makes the soil rich."],
            axes=[2, 3],
            tags=["notes"],
            mtime=T0 + timedelta(days=10),
        )
    )
    store.put_document(
        make_doc(
            "/docs/papers/gamma.txt",
            ["Gamma paper on gardens in winter.", "The aardvark sleeps in burrows by day."],
            axes=[4, 5],
            tags=["animals"],
            mtime=T0 + timedelta(days=20),
        )
    )
    return store


# -- opening -------------------------------------------------------------------------------------------


def test_opening_a_missing_index_without_create_raises_index_missing(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="tether ingest"):
        SQLiteStore.open(tmp_path / "absent.db")
    assert not (tmp_path / "absent.db").exists()


def test_create_makes_the_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "index.db"
    with SQLiteStore.open(path, create=True):
        pass
    assert path.is_file()


def test_opening_a_non_sqlite_file_raises_index_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    path.write_bytes(b"this is not a database, just some text that is long enough to look like a header\n" * 20)
    with pytest.raises(IndexMismatchError, match="not a Tether index"):
        SQLiteStore.open(path)


def test_opening_an_index_of_another_layout_version_raises_index_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    with SQLiteStore.open(path, create=True):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(IndexMismatchError, match="v99"):
        SQLiteStore.open(path)


def test_documents_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    with SQLiteStore.open(path, create=True) as s:
        s.check_embedding(MODEL, DIM)
        s.put_document(make_doc("/d/a.txt", ["persistent words here"]))
    with SQLiteStore.open(path) as s:
        assert s.paths() == ["/d/a.txt"]
        assert lexical_paths(s, ["persistent"]) == ["/d/a.txt"]


def test_check_embedding_refuses_a_different_model_id(store: SQLiteStore) -> None:
    with pytest.raises(IndexMismatchError, match=MODEL):
        store.check_embedding("another-model", DIM)


def test_check_embedding_refuses_a_different_dimension(store: SQLiteStore) -> None:
    with pytest.raises(IndexMismatchError):
        store.check_embedding(MODEL, DIM * 2)


def test_check_embedding_accepts_the_same_model_again(store: SQLiteStore) -> None:
    store.check_embedding(MODEL, DIM)
    assert store.stats().embedding_model == MODEL
    assert store.stats().dim == DIM


def test_check_embedding_mismatch_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    with SQLiteStore.open(path, create=True) as s:
        s.check_embedding(MODEL, DIM)
    with SQLiteStore.open(path) as s, pytest.raises(IndexMismatchError):
        s.check_embedding("another-model", DIM)


# -- writing -------------------------------------------------------------------------------------------


def test_put_document_stores_text_meta_and_chunks(store: SQLiteStore) -> None:
    doc = make_doc("/d/a.md", ["first chunk text", "second chunk text"], tags=["x", "x", "a"])
    doc_id = store.put_document(doc)
    meta = store.document(doc_id)
    assert meta is not None
    assert (meta.path, meta.title, meta.n_chunks, meta.size) == ("/d/a.md", "Title", 2, doc.size)
    assert meta.tags == ["a", "x"]
    assert meta.mtime == T0
    assert store.document_text(doc_id) == doc.text
    assert store.document_hash("/d/a.md") == doc.content_hash
    hits = store.hits(sorted(chunk_ids_of(store, "/d/a.md")))
    for hit in hits.values():
        assert store.document_text(doc_id)[hit.start : hit.end] == hit.text
        assert hit.section[0] == "Top"


def chunk_texts_of(store: SQLiteStore, path: str) -> list[str]:
    hits = store.hits(sorted(chunk_ids_of(store, path)))
    return [hits[i].text for i in sorted(hits)]


def test_a_heading_containing_the_separator_round_trips(store: SQLiteStore) -> None:
    doc = make_doc("/d/a.md", ["text under a tricky heading"])
    doc.chunks[0].section = ["Guide", "Use a > b comparisons"]
    store.put_document(doc)
    (hit,) = store.hits(list(store.chunk_paths())).values()
    assert hit.section == ["Guide", "Use a > b comparisons"]


def test_replacing_a_document_replaces_its_chunks(store: SQLiteStore) -> None:
    store.put_document(make_doc("/d/a.md", ["obsolete zebra sentence", "more obsolete text"], axes=[0, 1]))
    store.put_document(make_doc("/d/a.md", ["fresh giraffe sentence"], axes=[2]))
    assert store.paths() == ["/d/a.md"]
    assert chunk_texts_of(store, "/d/a.md") == ["fresh giraffe sentence"]
    assert store.stats().chunks == 1
    assert store.integrity_problems() == []


def test_replaced_text_is_no_longer_found_lexically(store: SQLiteStore) -> None:
    store.put_document(make_doc("/d/a.md", ["obsolete zebra sentence"]))
    store.put_document(make_doc("/d/a.md", ["fresh giraffe sentence"]))
    assert store.lexical_search(["zebra"], 10) == []
    assert lexical_paths(store, ["giraffe"]) == ["/d/a.md"]


def test_replaced_chunks_are_no_longer_returned_by_dense_search(store: SQLiteStore) -> None:
    store.put_document(make_doc("/d/a.md", ["obsolete zebra sentence"], axes=[0]))
    assert store.dense_search(unit(0), 10)[0].score == pytest.approx(1.0)  # warms the vector cache
    store.put_document(make_doc("/d/a.md", ["fresh giraffe sentence"], axes=[3]))
    results = store.dense_search(unit(0), 10)
    assert all(x.score < 0.5 for x in results), "the old vector is still searchable"
    hits = store.hits([x.chunk_id for x in results])
    assert [hits[x.chunk_id].text for x in results] == ["fresh giraffe sentence"]
    top = store.dense_search(unit(3), 10)[0]
    assert top.score == pytest.approx(1.0)
    assert store.hits([top.chunk_id])[top.chunk_id].text == "fresh giraffe sentence"


def test_deleting_a_document_removes_it_from_lexical_and_dense_search(filled: SQLiteStore) -> None:
    gone = chunk_ids_of(filled, "/docs/notes/alpha.md")
    assert dense_ids(filled, 0)[0] in gone  # warm the vector cache first
    assert filled.delete_document("/docs/notes/alpha.md") is True
    assert "/docs/notes/alpha.md" not in lexical_paths(filled, ["aardvark"])
    assert lexical_paths(filled, ["termites"]) == []
    assert not (set(dense_ids(filled, 0)) & gone)
    assert all(x.score < 0.5 for x in filled.dense_search(unit(0), 10))
    assert "/docs/notes/alpha.md" not in filled.paths()
    assert filled.integrity_problems() == []


def test_deleting_an_unknown_document_returns_false(store: SQLiteStore) -> None:
    assert store.delete_document("/nope.txt") is False


def test_a_failed_replacement_leaves_the_previous_version_intact(store: SQLiteStore) -> None:
    store.put_document(make_doc("/d/a.md", ["original walrus sentence", "original second chunk"]))
    before = store.document_hash("/d/a.md")
    broken = make_doc("/d/a.md", ["replacement newt sentence", "replacement second chunk"])
    broken.chunks[1].band_keys = [None]  # type: ignore[list-item]  # NOT NULL violation mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
        store.put_document(broken)
    assert store.document_hash("/d/a.md") == before
    assert lexical_paths(store, ["walrus"]) == ["/d/a.md"]
    assert store.lexical_search(["newt"], 10) == []
    assert store.stats().chunks == 2
    assert store.integrity_problems() == []


def test_generation_changes_on_every_write_and_delete(store: SQLiteStore) -> None:
    g0 = store.generation
    store.put_document(make_doc("/d/a.md", ["some words"]))
    g1 = store.generation
    store.delete_document("/d/a.md")
    g2 = store.generation
    assert g0 < g1 < g2


def test_stats_count_documents_chunks_and_duplicates(filled: SQLiteStore) -> None:
    doc = make_doc("/d/dups.md", ["unique text about owls"])
    doc.n_duplicates = 3
    filled.put_document(doc)
    s = filled.stats()
    assert (s.documents, s.chunks, s.duplicates_removed) == (4, 7, 3)
    assert s.bytes_on_disk > 0
    assert s.last_ingest is not None


# -- searching -----------------------------------------------------------------------------------------


def test_lexical_search_ranks_the_chunk_with_the_rare_term_first(filled: SQLiteStore) -> None:
    results = filled.lexical_search(["gardens", "compost"], 10)
    top = filled.hits([results[0].chunk_id])[results[0].chunk_id]
    assert "Compost" in top.text
    assert results[0].score > results[-1].score


def test_lexical_search_applies_stemming(filled: SQLiteStore) -> None:
    assert lexical_paths(filled, ["termite"]) == ["/docs/notes/alpha.md"]


def test_lexical_search_tolerates_fts_syntax_in_terms(filled: SQLiteStore) -> None:
    assert filled.lexical_search(['"', "NEAR(", "*", "OR", "^"], 10) == []


def test_lexical_search_with_no_terms_is_empty(filled: SQLiteStore) -> None:
    assert filled.lexical_search([], 10) == []


def test_dense_search_with_a_known_vector_returns_that_chunk_first(filled: SQLiteStore) -> None:
    results = filled.dense_search(unit(3), 10)
    top = filled.hits([results[0].chunk_id])[results[0].chunk_id]
    assert top.text == "Compost makes the soil rich."
    assert results[0].score == pytest.approx(1.0)
    assert all(a.score >= b.score for a, b in zip(results, results[1:], strict=False))


def test_dense_search_on_an_empty_store_is_empty(store: SQLiteStore) -> None:
    assert store.dense_search(unit(0), 10) == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (SearchFilters(path_glob="/docs/notes/*"), {"/docs/notes/alpha.md"}),
        (SearchFilters(path_glob="*.txt"), {"/docs/papers/gamma.txt"}),
        (SearchFilters(tags=["animals"]), {"/docs/notes/alpha.md", "/docs/papers/gamma.txt"}),
        (SearchFilters(tags=["animals", "notes"]), {"/docs/notes/alpha.md"}),
        (SearchFilters(tags=["missing"]), set()),
        (SearchFilters(modified_after=T0 + timedelta(days=5)), {"/docs/papers/gamma.txt"}),
        (SearchFilters(modified_before=T0 + timedelta(days=5)), {"/docs/notes/alpha.md"}),
        (
            SearchFilters(modified_after=T0 + timedelta(days=5), modified_before=T0 + timedelta(days=15)),
            set(),
        ),
    ],
    ids=["glob-folder", "glob-ext", "tag", "all-tags", "unknown-tag", "after", "before", "window"],
)
def test_filters_apply_to_lexical_search(filled: SQLiteStore, filters: SearchFilters, expected: set[str]) -> None:
    # "aardvark" appears in alpha and gamma only
    assert set(lexical_paths(filled, ["aardvark"], filters)) == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (SearchFilters(path_glob="/docs/notes/*"), {"/docs/notes/alpha.md", "/docs/notes/beta.md"}),
        (SearchFilters(tags=["animals"]), {"/docs/notes/alpha.md", "/docs/papers/gamma.txt"}),
        (SearchFilters(tags=["notes", "animals"]), {"/docs/notes/alpha.md"}),
        (SearchFilters(modified_after=T0 + timedelta(days=5)), {"/docs/notes/beta.md", "/docs/papers/gamma.txt"}),
        (SearchFilters(modified_before=T0 + timedelta(days=15)), {"/docs/notes/alpha.md", "/docs/notes/beta.md"}),
        (SearchFilters(tags=["missing"]), set()),
    ],
    ids=["glob", "tag", "all-tags", "after", "before", "unknown-tag"],
)
def test_filters_apply_to_dense_search(filled: SQLiteStore, filters: SearchFilters, expected: set[str]) -> None:
    ids = [x.chunk_id for x in filled.dense_search(unit(5), 50, filters)]
    paths = filled.chunk_paths()
    assert {paths[i] for i in ids} == expected


def test_dense_search_filter_still_ranks_by_similarity(filled: SQLiteStore) -> None:
    results = filled.dense_search(unit(2), 10, SearchFilters(tags=["notes"]))
    top = filled.hits([results[0].chunk_id])[results[0].chunk_id]
    assert top.path == "/docs/notes/beta.md"
    assert top.text.startswith("Beta notes")


# -- near duplicates -----------------------------------------------------------------------------------


def test_near_duplicates_finds_a_stored_chunk_with_the_same_signature(filled: SQLiteStore) -> None:
    text = "Compost makes the soil rich."
    sig = signature(text, NUM_PERM)
    found = filled.near_duplicates(band_keys(sig, BANDS, ROWS), sig, 0.9, exclude_path="/other.md")
    assert len(found) == 1
    assert filled.hits(found)[found[0]].text == text


def test_near_duplicates_excludes_the_given_path(filled: SQLiteStore) -> None:
    sig = signature("Compost makes the soil rich.", NUM_PERM)
    assert filled.near_duplicates(band_keys(sig, BANDS, ROWS), sig, 0.9, exclude_path="/docs/notes/beta.md") == []


def test_near_duplicates_ignores_unrelated_text(filled: SQLiteStore) -> None:
    sig = signature("Quantum chromodynamics describes the strong interaction between quarks.", NUM_PERM)
    assert filled.near_duplicates(band_keys(sig, BANDS, ROWS), sig, 0.9, exclude_path="/x") == []


def test_near_duplicates_forgets_deleted_documents(filled: SQLiteStore) -> None:
    filled.delete_document("/docs/notes/beta.md")
    sig = signature("Compost makes the soil rich.", NUM_PERM)
    assert filled.near_duplicates(band_keys(sig, BANDS, ROWS), sig, 0.9, exclude_path="/x") == []


# -- integrity -----------------------------------------------------------------------------------------


def test_integrity_problems_is_empty_on_a_good_store(filled: SQLiteStore) -> None:
    assert filled.integrity_problems() == []


def test_integrity_problems_reports_a_chunk_count_mismatch(filled: SQLiteStore, tmp_path: Path) -> None:
    conn = sqlite3.connect(filled.path)
    conn.execute("UPDATE documents SET n_chunks = 5 WHERE path = '/docs/notes/beta.md'")
    conn.commit()
    conn.close()
    problems = filled.integrity_problems()
    assert any("beta.md" in p and "5 declared" in p for p in problems)


def test_batch_writes_documents_together_and_undoes_only_a_failed_one(store: SQLiteStore) -> None:
    with store.batch():
        store.put_document(make_doc("/b/one.md", ["first document text"]))
        store.put_document(make_doc("/b/two.md", ["second document text"]))
    assert store.paths() == ["/b/one.md", "/b/two.md"]

    bad = make_doc("/b/bad.md", ["a chunk", "another chunk"])
    bad.chunks[1].section = [object()]  # type: ignore[list-item]  # fails after the document row is written
    with pytest.raises(TypeError), store.batch():
        store.put_document(make_doc("/b/three.md", ["third document text"]))
        store.put_document(bad)
    # the document written before the failure is committed; the failed one left nothing behind
    assert store.paths() == ["/b/one.md", "/b/three.md", "/b/two.md"]
    assert store.integrity_problems() == []
    assert "/b/bad.md" not in set(store.chunk_paths().values())
    assert not store._conn.in_transaction


def test_vectors_are_read_in_the_order_asked_for_any_subset(store: SQLiteStore) -> None:
    rng = np.random.default_rng(3)
    for d in range(12):
        doc = make_doc(f"/v/{d}.md", [f"text {d} {i}" for i in range(5)])
        for ch in doc.chunks:
            ch.vector = rng.standard_normal(DIM).astype(np.float32)
        store.put_document(doc)
    ids, mat = store._load_vectors()
    assert list(ids) == sorted(store.chunk_paths()) and mat.ctypes.data % 64 == 0
    truth = {int(i): mat[k] for k, i in enumerate(ids)}
    for size in (1, 3, len(ids) // 5, len(ids) // 2, len(ids)):  # the IN-list and the streamed reads
        pick = rng.choice(ids, size, replace=False)
        got = store._vectors_of(pick)
        assert np.array_equal(got, np.stack([truth[int(i)] for i in pick]))
    store.prepare_search()  # lexical index and vector matrix ready; searching changes nothing
    assert store.dense_search(mat[7], 1)[0].chunk_id == int(ids[7])
