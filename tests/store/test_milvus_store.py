"""MilvusStore against a real milvus-lite: the store contract it shares with SQLiteStore (the same assertions run
on both), and what is its own: text parts, tenants in the query, commit markers and crash recovery, errors."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="MilvusStore needs pymilvus (pip install pymilvus milvus-lite)")
pytest.importorskip("milvus_lite", reason="MilvusStore's tests run on milvus-lite (pip install milvus-lite)")

from milvus_env import CRASH_PATH, CRASH_V1, DIM, MODEL, T0, make_doc, random_unit, unit  # noqa: E402
from pymilvus import MilvusClient  # noqa: E402

from tether.contracts import SearchFilters, SourceAllowlist  # noqa: E402
from tether.errors import ConfigError, IndexMismatchError, IndexMissingError, TransientError  # noqa: E402
from tether.store import SQLiteStore  # noqa: E402
from tether.store._milvus import MilvusStore  # noqa: E402
from tether.store._milvus_filters import glob_like  # noqa: E402
from tether.store._milvus_rows import utf8_parts  # noqa: E402

AnyStore = SQLiteStore | MilvusStore
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def lite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One milvus-lite directory (one server) for the module; each test gets its own collections in it."""
    return str(tmp_path_factory.mktemp("milvus") / "index.db")


def open_milvus(uri: str, prefix: str | None = None) -> MilvusStore:
    store = MilvusStore.open(uri, create=True, prefix=prefix or f"t{next(_prefixes)}")
    store.check_embedding(MODEL, DIM)
    return store


@pytest.fixture
def milvus(lite_uri: str) -> Iterator[MilvusStore]:
    store = open_milvus(lite_uri)
    yield store
    store.close()


@pytest.fixture(params=["sqlite", "milvus"])
def store(request: pytest.FixtureRequest, tmp_path: Path, lite_uri: str) -> Iterator[AnyStore]:
    """Each backend in turn: the contract tests hold for both."""
    s: AnyStore
    if request.param == "sqlite":
        s = SQLiteStore.open(tmp_path / "index.db", create=True)
        s.check_embedding(MODEL, DIM)
    else:
        s = open_milvus(lite_uri)
    yield s
    s.close()


def paths_of(store: AnyStore, ids: list[int]) -> list[str]:
    rows = store.chunk_rows(ids)
    return [rows[i].path for i in ids]


def lexical_paths(store: AnyStore, terms: list[str], filters: SearchFilters | None = None) -> list[str]:
    return paths_of(store, [x.chunk_id for x in store.lexical_search(terms, 50, filters)])


def dense_paths(store: AnyStore, axis: int, filters: SearchFilters | None = None) -> list[str]:
    return paths_of(store, [x.chunk_id for x in store.dense_search(unit(axis), 50, filters)])


def assert_citations_hold(store: AnyStore, ids: list[int]) -> None:
    for hit in store.hits(ids).values():
        assert store.document_text(hit.doc_id)[hit.start : hit.end] == hit.text


# -- the contract, on both backends ------------------------------------------------
def test_a_document_is_stored_and_read_back_exactly(store: AnyStore) -> None:
    doc = make_doc("/docs/a.md", ["héron crane — ünïcode 日本語", "second chunk"], tags=["x"])
    doc_id = store.put_document(doc)
    meta = store.document(doc_id)
    assert meta is not None
    assert (meta.path, meta.n_chunks, meta.tags, meta.tenant, meta.mtime) == ("/docs/a.md", 2, ["x"], "", T0)
    assert store.document_text(doc_id) == doc.text
    assert store.document_hash("/docs/a.md") == doc.content_hash
    assert store.document_hash("/docs/none.md") is None
    assert store.paths() == ["/docs/a.md"]
    assert [o for _, o in sorted(store.chunk_ords("/docs/a.md"))] == [0, 1]
    ids = [c for c, _ in store.chunk_ords("/docs/a.md")]
    rows = store.chunk_rows(ids)
    assert sorted(r.text for r in rows.values()) == sorted(c.text for c in doc.chunks)
    assert sorted(r.section[1] for r in rows.values()) == ["Part 0", "Part 1"]
    assert {r.minhash for r in rows.values()} == {c.signature.astype("<u8").tobytes() for c in doc.chunks}
    assert_citations_hold(store, ids)
    assert store.document_path_tenant("/docs/a.md") == ""
    assert store.has_chunks() and store.chunk_count() == 2
    with pytest.raises(KeyError):
        store.document_text(doc_id + 10_000)


def test_replacing_a_document_swaps_every_chunk_and_keeps_tags_and_owner(store: AnyStore) -> None:
    store.put_document(make_doc("/d.md", ["old words about herons"], tags=["a"], tenant="t1"))
    old_ids = {c for c, _ in store.chunk_ords("/d.md")}
    gen = store.generation
    new_id = store.put_document(make_doc("/d.md", ["new words about cranes", "more"], tags=["b"]))
    assert store.generation != gen
    assert {c for c, _ in store.chunk_ords("/d.md")}.isdisjoint(old_ids)
    assert store.chunk_rows(sorted(old_ids)) == {}
    meta = store.document(new_id)
    assert meta is not None and meta.tags == ["a", "b"] and meta.tenant == "t1" and meta.n_chunks == 2
    assert store.paths() == ["/d.md"] and store.chunk_count() == 2
    assert store.lexical_search(["herons"], 10, SearchFilters(allow=SourceAllowlist(owner="t1"))) == []


def test_deleting_a_document_removes_it_everywhere(store: AnyStore) -> None:
    doc_id = store.put_document(make_doc("/gone.md", ["ephemeral heron text"]))
    store.put_document(make_doc("/stays.md", ["lasting crane text"], vectors=[unit(3)]))
    gen = store.generation
    assert store.delete_document("/gone.md") is True
    assert store.delete_document("/gone.md") is False
    assert store.generation != gen
    assert store.document(doc_id) is None and store.document_hash("/gone.md") is None
    assert store.paths() == ["/stays.md"] and store.chunk_count() == 1
    assert lexical_paths(store, ["ephemeral"]) == []
    assert dense_paths(store, 0) == ["/stays.md"]
    assert set(store.chunk_paths().values()) == {"/stays.md"}


def test_lexical_search_ranks_by_bm25_and_dense_by_inner_product(store: AnyStore) -> None:
    texts = {
        "/z3.md": "zebra zebra zebra grass water stone",
        "/z1.md": "zebra grass water stone river tree",
        "/z2.md": "zebra zebra grass water stone river",
        "/none.md": "lion grass water stone river tree",
    }
    for axis, (path, text) in enumerate(texts.items()):
        store.put_document(make_doc(path, [text], vectors=[unit(axis)]))
    assert lexical_paths(store, ["zebra"]) == ["/z3.md", "/z2.md", "/z1.md"]
    scores = [x.score for x in store.lexical_search(["zebras", "unknownword"], 10)]  # stemmed, terms OR-ed
    assert len(scores) == 3 and all(s > 0 for s in scores) and scores == sorted(scores, reverse=True)
    assert lexical_paths(store, ["nothingmatches"]) == []
    q = np.array([0.1, 0.7, 0.2, 0.5, 0, 0, 0, 0], dtype=np.float32)
    q /= np.linalg.norm(q)
    got = store.dense_search(q, 3)
    assert paths_of(store, [x.chunk_id for x in got]) == ["/z1.md", "/none.md", "/z2.md"]
    assert [round(x.score, 5) for x in got] == [round(float(v), 5) for v in sorted(q[:4], reverse=True)[:3]]
    assert store.dense_search(q, 0) == [] and store.lexical_search([], 5) == []


def test_filters_apply_to_both_searches_and_to_the_document_list(store: AnyStore) -> None:
    later = T0 + timedelta(days=10)
    store.put_document(make_doc("/kb/guide_one.md", ["shared heron facts"], tags=["red", "blue"]))
    store.put_document(make_doc("/kb/guideXone.md", ["heron facts too"], tags=["red"], mtime=later))
    store.put_document(make_doc("/other/notes.md", ["heron notes"], mtime=later))

    def both(f: SearchFilters) -> list[str]:
        lex = sorted(lexical_paths(store, ["heron"], f))
        assert lex == sorted(dense_paths(store, 0, f))
        assert lex == [m.path for m in store.documents(f)]
        return lex

    assert both(SearchFilters(path_glob="/kb/*")) == ["/kb/guideXone.md", "/kb/guide_one.md"]
    assert both(SearchFilters(path_glob="*/guide_one.md")) == ["/kb/guide_one.md"]  # "_" is no wildcard
    assert both(SearchFilters(path_glob="*/guide?one.md")) == ["/kb/guideXone.md", "/kb/guide_one.md"]
    assert both(SearchFilters(path_glob="*/guide[X]one.md")) == ["/kb/guideXone.md"]
    assert both(SearchFilters(path_glob="*/guide[^X]one.md")) == ["/kb/guide_one.md"]
    assert both(SearchFilters(tags=["red"])) == ["/kb/guideXone.md", "/kb/guide_one.md"]
    assert both(SearchFilters(tags=["red", "blue"])) == ["/kb/guide_one.md"]
    assert both(SearchFilters(tags=["green"])) == []
    assert both(SearchFilters(modified_after=T0 + timedelta(days=1))) == ["/kb/guideXone.md", "/other/notes.md"]
    assert both(SearchFilters(modified_before=T0 + timedelta(days=1))) == ["/kb/guide_one.md"]
    assert both(SearchFilters(path_glob="/kb/*", modified_after=T0 + timedelta(days=1))) == ["/kb/guideXone.md"]


def test_tenants_see_their_own_and_their_allowlist_never_anothers(store: AnyStore) -> None:
    store.put_document(make_doc("/shared/kb/policy.md", ["heron policy"], tags=["public"]))
    store.put_document(make_doc("/shared/kb/secret.md", ["heron secret"]))
    store.put_document(make_doc("/up/a.md", ["heron of tenant a"], tenant="a"))
    store.put_document(make_doc("/up/b.md", ["heron of tenant b"], tenant="b"))
    assert store.has_owned_documents()

    def sees(allow: SourceAllowlist | None) -> list[str]:
        f = None if allow is None else SearchFilters(allow=allow)
        lex = sorted(lexical_paths(store, ["heron"], f))
        assert lex == sorted(dense_paths(store, 0, f))
        assert lex == [m.path for m in store.documents(f)]
        return lex

    assert sees(None) == ["/shared/kb/policy.md", "/shared/kb/secret.md"]  # no tenant asks: shared only
    assert sees(SourceAllowlist(owner="a")) == ["/up/a.md"]
    assert sees(SourceAllowlist(owner="a", paths=["kb/policy.md"])) == ["/shared/kb/policy.md", "/up/a.md"]
    assert sees(SourceAllowlist(owner="b", tags=["public"])) == ["/shared/kb/policy.md", "/up/b.md"]
    assert sees(SourceAllowlist(paths=["*"])) == ["/shared/kb/policy.md", "/shared/kb/secret.md"]
    assert sees(SourceAllowlist(owner="c")) == []
    assert len(store.documents(every_owner=True)) == 4
    a_doc = store.documents(SearchFilters(allow=SourceAllowlist(owner="a")))[0]
    assert store.visible(a_doc.doc_id, SearchFilters(allow=SourceAllowlist(owner="a")))
    assert not store.visible(a_doc.doc_id, SearchFilters(allow=SourceAllowlist(owner="b", paths=["*"])))
    assert not store.visible(a_doc.doc_id, None)
    assert store.document_path_tenant("/up/b.md") == "b"


def test_near_duplicates_are_found_within_one_owner_only(store: AnyStore) -> None:
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    store.put_document(make_doc("/one.md", [text], tenant=""))
    store.put_document(make_doc("/two.md", [text], tenant="t1"))
    probe = make_doc("/probe.md", [text]).chunks[0]
    shared_ids = [c for c, _ in store.chunk_ords("/one.md")]
    owned_ids = [c for c, _ in store.chunk_ords("/two.md")]
    assert store.stored_band_keys(probe.band_keys, "/probe.md", "") == set(probe.band_keys)
    assert store.stored_band_keys(probe.band_keys, "/one.md", "") == set()
    assert store.near_duplicates(probe.band_keys, probe.signature, 0.9, "/probe.md") == shared_ids
    assert store.near_duplicates(probe.band_keys, probe.signature, 0.9, "/probe.md", tenant="t1") == owned_ids
    assert store.near_duplicates(probe.band_keys, probe.signature, 0.9, "/probe.md", tenant="t2") == []
    assert store.near_duplicates(probe.band_keys, probe.signature, 0.9, "/one.md") == []
    other = make_doc("/x.md", ["completely different words about astronomy and stars tonight"]).chunks[0]
    assert store.near_duplicates(other.band_keys, other.signature, 0.9, "/x.md") == []


def test_losing_a_kept_near_duplicate_makes_the_document_stale(store: AnyStore) -> None:
    store.put_document(make_doc("/kept.md", ["the kept copy of a paragraph"]))
    kept = [c for c, _ in store.chunk_ords("/kept.md")]
    dropped = make_doc("/dropper.md", ["its own other paragraph"])
    dropped.n_duplicates, dropped.duplicate_of = 1, kept
    store.put_document(dropped)
    assert store.stale_paths() == []
    assert store.stats().duplicates_removed == 1
    store.delete_document("/kept.md")
    assert store.stale_paths() == ["/dropper.md"]
    assert store.document_hash("/dropper.md") == ""


def test_stats_tags_injection_and_term_counts(store: AnyStore) -> None:
    doc = make_doc("/s.md", ["herons wade", "herons fly", "cranes"], tags=["a"])
    for ch, score in zip(doc.chunks, [0.9, 0.1, None], strict=True):
        ch.injection = score
    store.put_document(doc)
    stats = store.stats()
    assert (stats.documents, stats.chunks, stats.embedding_model, stats.dim) == (1, 3, MODEL, DIM)
    assert stats.last_ingest is not None
    assert store.injection_counts(0.5) == (1, 1)
    flagged = store.flagged_chunks(0.05)
    assert [h.text for h in flagged] == ["herons wade", "herons fly"] and flagged[0].score == pytest.approx(0.9)
    assert store.term_document_counts(["heron", "cranes", "owl"]) == {"heron": 2, "cranes": 1, "owl": 0}
    assert store.add_tags("/s.md", ["b"]) is True and store.add_tags("/s.md", ["a"]) is False
    assert store.add_tags("/nothing.md", ["a"]) is False
    assert [m.tags for m in store.documents(SearchFilters(tags=["b"]))] == [["a", "b"]]
    store.record_setting("minhash_scheme", "words64")
    store.record_setting("minhash_scheme", "other")
    assert store.setting("minhash_scheme") == "words64" and store.setting("nothing") is None
    with pytest.raises(IndexMismatchError):
        store.check_embedding("another-model", DIM)
    assert store.integrity_problems() == []


def test_a_batch_writes_each_document_whole_and_moves_the_generation(store: AnyStore) -> None:
    gen = store.generation
    with store.batch():
        store.put_document(make_doc("/b1.md", ["one"]))
        assert store.chunk_ords("/b1.md")  # a document written in the batch is readable in it
        store.put_document(make_doc("/b2.md", ["two"]))
    assert store.generation != gen and store.paths() == ["/b1.md", "/b2.md"]
    broken = make_doc("/b4.md", ["four"])
    broken.chunks[0].band_keys = [object()]  # type: ignore[list-item]  # the write fails part-way
    with pytest.raises(Exception), store.batch():  # noqa: B017 - each backend raises its own error here
        store.put_document(make_doc("/b3.md", ["three"]))
        store.put_document(broken)
    assert store.paths() == ["/b1.md", "/b2.md", "/b3.md"]
    assert store.chunk_count() == 3 and store.integrity_problems() == []


# -- MilvusStore's own -------------------------------------------------------------
def test_a_long_text_is_split_into_parts_and_joined_back_byte_for_byte(milvus: MilvusStore) -> None:
    rng = random.Random(7)
    alphabet = "abcdé日本🙂 \n"
    body = "".join(rng.choice(alphabet) for _ in range(90_000))  # about 200 KB of UTF-8: four parts
    assert len(utf8_parts(body)) > 2 and all(len(p.encode()) <= 65_535 for p in utf8_parts(body))
    assert "".join(utf8_parts(body)) == body
    big_chunk = body[1_000:70_000]  # over 65,535 bytes: read back from the document's text
    doc = make_doc("/long.md", [body[:500], big_chunk], sep="")
    doc.chunks[1].start, doc.chunks[1].end = 1_000, 70_000
    doc.text = body
    doc_id = milvus.put_document(doc)
    assert milvus.document_text(doc_id) == body
    ids = [c for c, _ in milvus.chunk_ords("/long.md")]
    assert sorted(len(h.text) for h in milvus.hits(ids).values()) == [500, 69_000]
    assert_citations_hold(milvus, ids)


def test_random_queries_of_many_tenants_never_see_a_foreign_document(milvus: MilvusStore, tmp_path: Path) -> None:
    rng = random.Random(11)
    nrng = np.random.default_rng(11)
    reference = SQLiteStore.open(tmp_path / "ref.db", create=True)
    words = ["heron", "crane", "stork", "egret", "ibis", "swan", "goose", "duck", "teal", "rail"]
    tenants = ["", "t1", "t2", "t3"]
    for j in range(48):  # the owners' documents interleaved
        tenant = tenants[j % 4]
        doc = make_doc(
            f"/{tenant or 'shared'}/dir{j % 3}/doc_{j}.md",
            [" ".join(rng.choices(words, k=8)) for _ in range(2)],
            vectors=[random_unit(nrng) for _ in range(2)],
            tags=rng.sample(["red", "blue", "green"], k=rng.randint(0, 2)),
            tenant=tenant,
        )
        milvus.put_document(doc)
        reference.put_document(doc)
    owner_of = {m.path: m.tenant for m in milvus.documents(every_owner=True)}
    globs = ["dir0/*", "*doc_1?.md", "/shared/dir1/doc_[0-3]*.md", "doc_4.md", "*"]
    for _ in range(30):
        owner = rng.choice([None, "t1", "t2", "t3"])
        allow = SourceAllowlist(
            owner=owner,
            paths=rng.sample(globs, k=rng.randint(0, 2)),
            tags=rng.sample(["red", "blue"], k=rng.randint(0, 1)),
        )
        f = SearchFilters(allow=allow)
        terms = rng.sample(words, k=2)
        vec = random_unit(nrng)
        lex, dense = (
            lexical_paths(milvus, terms, f),
            paths_of(milvus, [x.chunk_id for x in milvus.dense_search(vec, 100, f)]),
        )
        assert all(owner_of[p] in ("", owner) for p in lex + dense)  # never another owner's
        want = {m.path for m in reference.documents(f)}
        assert {m.path for m in milvus.documents(f)} == want
        assert set(dense) == want  # every allowed chunk, none cut away before the filter
        assert set(lex) == set(lexical_paths(reference, terms, f))
    reference.close()


def test_a_version_without_its_document_row_is_never_seen_and_is_swept_on_open(lite_uri: str) -> None:
    prefix = f"t{next(_prefixes)}"
    store = open_milvus(lite_uri, prefix)
    v1 = store.put_document(make_doc("/w.md", ["first version about herons"]))
    for i in range(6):
        store.put_document(make_doc(f"/other{i}.md", [f"unrelated text {i}"], vectors=[unit(5)]))
    # a writer dies after writing version 2's chunks, before its document row (the commit marker)
    v2 = make_doc("/w.md", ["second version about herons herons herons"] * 3, vectors=[unit(0)] * 3)
    new_id = store._ids.block(4)
    store._begin(new_id, [v1], "/w.md")
    store._write_version(v2, new_id, "")
    assert lexical_paths(store, ["herons"]) == ["/w.md"]  # version 1's one chunk alone
    assert [x.chunk_id for x in store.dense_search(unit(0), 1)] == [c for c, _ in store.chunk_ords("/w.md")]
    assert store.chunk_rows([new_id + 1]) == {}
    assert store.integrity_problems()  # the orphans are there to be found
    store.close()
    reopened = open_milvus(lite_uri, prefix)
    assert reopened.integrity_problems() == []
    assert reopened.document_text(v1) == "first version about herons"
    assert reopened.chunk_count() == 7
    reopened.close()


@pytest.mark.parametrize(("step", "survivor"), [("commit", "v1"), ("retire", "v2")])
def test_a_writer_killed_mid_document_leaves_one_whole_version(tmp_path: Path, step: str, survivor: str) -> None:
    uri = str(tmp_path / "crash.db")
    script = Path(__file__).with_name("milvus_env.py")
    proc = subprocess.run([sys.executable, str(script), uri, "crash", step], capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    raw = MilvusClient(uri)
    raw.load_collection("crash_chunks")
    assert raw.query("crash_chunks", filter="", output_fields=["count(*)"])[0]["count(*)"] == 5  # both versions
    raw.close()
    store = MilvusStore.open(uri, prefix="crash")  # opening sweeps what the dead writer left
    try:
        assert store.integrity_problems() == []
        assert store.paths() == [CRASH_PATH]
        meta = store.document(store.documents()[0].doc_id)
        assert meta is not None
        text = store.document_text(meta.doc_id)
        if survivor == "v1":
            assert text == "\n\n".join(CRASH_V1) and store.chunk_count() == 2
        else:
            assert text.startswith("the second version") and store.chunk_count() == 3
        assert_citations_hold(store, [c for c, _ in store.chunk_ords(CRASH_PATH)])
    finally:
        store.close()


def test_orphans_ranked_above_every_live_chunk_do_not_starve_a_search(milvus: MilvusStore) -> None:
    for i in range(3):
        milvus.put_document(make_doc(f"/live{i}.md", ["a heron here"], vectors=[unit(1)]))
    for k in range(4):  # four half-written documents, each closer to the query than any stored one
        doc = make_doc(f"/half{k}.md", ["heron heron heron"] * 5, vectors=[unit(0)] * 5)
        new_id = milvus._ids.block(6)
        milvus._write_version(doc, new_id, "")
    assert len(milvus.dense_search(unit(0), 3)) == 3
    assert sorted(lexical_paths(milvus, ["heron"])) == ["/live0.md", "/live1.md", "/live2.md"]


def test_globs_become_like_patterns_exact_where_milvus_lite_can_say_it() -> None:
    assert glob_like("/kb/*.md") == ("/kb/%.md", True)
    assert glob_like("doc?.md") == ("doc_.md", True)
    assert glob_like("my_file*") == ("my_file%", False)  # "_" is a wildcard in LIKE: checked again
    assert glob_like("doc[0-3].md") == ("doc_.md", False)
    assert glob_like("odd[name") == ("odd[name", True)


def test_open_errors_name_the_uri_and_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(IndexMissingError, match="tether ingest"):
        MilvusStore.open(tmp_path / "none.db")
    with pytest.raises(ConfigError, match=r"not a Milvus URI"):
        MilvusStore.open(tmp_path / "index.sqlite", create=True)
    t0 = time.perf_counter()
    with pytest.raises(TransientError, match=r"http://127\.0\.0\.1:9.*check that the server runs") as err:
        MilvusStore.open("http://127.0.0.1:9", timeout=2)
    assert time.perf_counter() - t0 < 10 and err.value.__cause__ is None
    assert "Traceback" not in capsys.readouterr().err


def test_a_missing_index_and_another_layout_are_refused(lite_uri: str) -> None:
    store = open_milvus(lite_uri)
    with pytest.raises(IndexMissingError, match="prefix 'nothing_here'"):
        MilvusStore.open(lite_uri, prefix="nothing_here")
    store._db.set_meta("layout_version", "999")
    store.close()
    with pytest.raises(IndexMismatchError, match="layout v999"):
        MilvusStore.open(lite_uri, prefix=store.prefix)


def test_the_ingest_pipeline_and_retriever_run_on_milvus(lite_uri: str) -> None:
    from fakes import HashEmbedder
    from tether.config import IngestSettings, RetrievalSettings
    from tether.ingest import Ingestor
    from tether.retrieve import Retriever

    store = MilvusStore.open(lite_uri, create=True, prefix=f"t{next(_prefixes)}")
    ing = Ingestor(store, HashEmbedder(), IngestSettings(workers=1))  # type: ignore[arg-type]
    records = [(f"rec{i}", f"Record {i}", f"Herons of kind {i} wade in marsh number {i}. " * 3) for i in range(5)]
    ing.add_records(records)
    ing.flush()
    assert ing.summary.added == 5 and store.paths() == [f"rec{i}" for i in range(5)]
    hits = Retriever(store, HashEmbedder(), RetrievalSettings()).search("herons kind 3 marsh", 3)  # type: ignore[arg-type]
    assert hits and hits[0].path == "rec3"
    assert_citations_hold(store, [h.chunk_id for h in hits])
    ing2 = Ingestor(store, HashEmbedder(), IngestSettings(workers=1))  # type: ignore[arg-type]
    ing2.add_records(records)
    ing2.flush()
    assert ing2.summary.unchanged == 5
    store.close()


def test_a_second_milvus_lite_process_is_told_the_index_is_in_use(milvus: MilvusStore) -> None:
    code = (
        "from tether.store._milvus import MilvusStore\n"
        "from tether.errors import TransientError\n"
        f"try:\n    MilvusStore.open({milvus.uri!r})\nexcept TransientError as e:\n    print('REFUSED', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.startswith("REFUSED") and milvus.uri in proc.stdout and "another process" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_quotes_in_names_cannot_widen_a_filter(store: AnyStore) -> None:
    store.put_document(make_doc('/kb/odd "name".md', ["heron in an oddly named file"]))
    store.put_document(make_doc("/up/a.md", ["heron of tenant a"], tenant="a"))
    sneaky = SourceAllowlist(owner='x" or tenant != "', paths=['*" or path != "'])
    assert lexical_paths(store, ["heron"], SearchFilters(allow=sneaky)) == []
    assert store.documents(SearchFilters(allow=SourceAllowlist(paths=['odd "name".md'])))[0].path == '/kb/odd "name".md'
    assert store.document_hash('/kb/odd "name".md') is not None


def test_opening_a_second_store_leaves_a_write_in_flight_alone(lite_uri: str) -> None:
    prefix = f"t{next(_prefixes)}"
    writer = open_milvus(lite_uri, prefix)
    doc = make_doc("/inflight.md", ["written while another store opens"])
    doc_id = writer._ids.block(2)
    writer._begin(doc_id, [], doc.path)
    n_parts = writer._write_version(doc, doc_id, "")
    reader = open_milvus(lite_uri, prefix)  # must not take the writer's half-written version for a crash's
    writer._commit(doc, doc_id, "", [], n_parts)
    assert reader.document_text(doc_id) == doc.text and reader.chunk_count() == 1
    assert_citations_hold(reader, [c for c, _ in reader.chunk_ords("/inflight.md")])
    writer.close()
    reader.close()
