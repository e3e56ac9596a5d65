"""Documents a tenant owns (uploaded through the service), as another tenant would try to reach them.

Every owned document is filtered inside the store's lexical, dense and ANN queries, near-duplicate removal never
crosses owners, and an ingest never moves a document from one owner to another.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tether import Tether
from tether.config import default_yaml
from tether.contracts import SearchFilters, SourceAllowlist
from tether.errors import RequestError
from tether.store import SQLiteStore

TENANTS = ["t0", "t1", "t2", "t3", "t4", "t5"]
TOPICS = ["invoice", "holiday", "salary", "laptop", "parking", "travel", "pension", "training"]
CONFIG = (
    "\ntenants:\n"
    + "".join(f"  {t}: {{sources: ['shared/*']}}\n" for t in TENANTS[:3])
    + "".join(f"  {t}: {{}}\n" for t in TENANTS[3:])
)
SAME = "# Common policy\n\nEvery request for a refund is answered within ten working days by the finance desk.\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tether, Path]:
    root = tmp_path_factory.mktemp("owned")
    (root / "tether.yaml").write_text(default_yaml().replace("\ntenants: {}", CONFIG), encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    shared = root / "shared"
    shared.mkdir()
    for topic in TOPICS:
        (shared / f"{topic}.md").write_text(f"# Shared {topic}\n\nThe shared {topic} rule applies to everyone.\n")
    (shared / "common.md").write_text(SAME)
    t.ingest([shared])
    for n, tenant in enumerate(TENANTS):  # interleaved: every tenant writes the same topics, and one identical file
        up = root / "uploads" / tenant
        up.mkdir(parents=True)
        for i, topic in enumerate(TOPICS):
            (up / f"{topic}.md").write_text(
                f"# {tenant} {topic}\n\nFor {tenant} the {topic} limit is {100 + 10 * n + i} units, "
                f"handled by the {tenant} {topic} desk.\n"
            )
        (up / "common.md").write_text(SAME)
        t.ingest([up], tenant=tenant)
    return t, root


def _owner(store: SQLiteStore, doc_id: int) -> str:
    meta = store.document(doc_id)
    assert meta is not None
    return meta.tenant


def _allow(tenant: str) -> SearchFilters:
    paths = ["shared/*"] if tenant in TENANTS[:3] else []
    return SearchFilters(allow=SourceAllowlist(paths=paths, owner=tenant))


def test_thousands_of_random_queries_never_return_another_owners_chunk(corpus: tuple[Tether, Path]) -> None:
    t, _ = corpus
    store = t.store()
    rows = store.chunk_rows(list(store.chunk_paths()))
    owner_of = {cid: _owner(store, r.doc_id) for cid, r in rows.items()}
    rng = random.Random(7)
    vocab = [*TOPICS, *TENANTS, "limit", "units", "desk", "refund", "shared", "rule", "policy"]
    asked = [f"{a} {b} limit" for a in TENANTS for b in TOPICS[:5]]
    real = t.embedder.embed(asked)  # queries that land on each owner's documents, by meaning
    queries = 0
    for ann in (10**9, 1):  # exact, then with an ANN index wherever the store would use one
        store.ann_threshold = ann
        for _ in range(1500):
            tenant = rng.choice(TENANTS)
            f = _allow(tenant)
            terms = rng.sample(vocab, 3)
            if rng.random() < 0.5:
                q = np.asarray(real[rng.randrange(len(asked))], np.float32)
            else:
                q = np.random.default_rng(queries).normal(size=real.shape[1]).astype(np.float32)
                q /= np.linalg.norm(q)
            got = [h.chunk_id for h in [*store.lexical_search(terms, 20, f), *store.dense_search(q, 20, f)]]
            queries += 2
            foreign = {owner_of[i] for i in got} - {tenant, ""}
            assert not foreign, (tenant, terms, foreign)
            if tenant in TENANTS[3:]:  # an empty allowlist: its own documents alone
                assert {owner_of[i] for i in got} <= {tenant}
    assert queries >= 6000

    store.ann_threshold = 50_000


def test_the_library_path_with_a_tenant_and_without_one(corpus: tuple[Tether, Path]) -> None:
    t, _ = corpus
    store = t.store()
    for tenant in TENANTS:
        for topic in TOPICS[:4]:
            hits = t.search(f"{TENANTS[(TENANTS.index(tenant) + 1) % 6]} {topic} limit desk", 10, tenant=tenant)
            assert hits and {_owner(store, h.doc_id) for h in hits} <= {tenant, ""}
        answer = t.ask(f"What is the {tenant} invoice limit?", tenant=tenant)
        assert not answer.abstained and all(f"/uploads/{tenant}/" in c.path for c in answer.citations)
    # the operator's own requests (no tenant named, none configured as the default) are refused; with tenants
    # configured a request names one. A store asked without an allowlist leaves owned documents out.
    with pytest.raises(RequestError, match="every request names one"):
        t.search("invoice")
    plain = store.lexical_search(["invoice", "limit"], 50, None)
    assert plain and {_owner(store, store.chunk_rows([h.chunk_id])[h.chunk_id].doc_id) for h in plain} == {""}


def test_identical_files_of_two_owners_are_each_kept(corpus: tuple[Tether, Path]) -> None:
    t, _ = corpus
    store = t.store()
    common = [m for m in store.documents(limit=10_000, every_owner=True) if m.path.endswith("common.md")]
    assert {m.tenant for m in common} == {"", *TENANTS}
    assert all(m.n_chunks == 1 and m.n_duplicates == 0 for m in common)  # none deduplicated across owners
    for tenant in TENANTS:
        hits = t.search("refund within ten working days", 5, tenant=tenant)
        mine = [h for h in hits if h.path.endswith("common.md")]
        assert mine and all(_owner(store, h.doc_id) in {tenant, ""} for h in mine)


def test_documents_and_visible_follow_the_same_rule(corpus: tuple[Tether, Path]) -> None:
    t, _ = corpus
    store = t.store()
    every = store.documents(limit=10_000, every_owner=True)
    for tenant in TENANTS:
        listed = {m.doc_id for m in store.documents(_allow(tenant), limit=10_000)}
        expect = {m.doc_id for m in every if m.tenant == tenant or (m.tenant == "" and tenant in TENANTS[:3])}
        assert listed == expect
        assert all(store.visible(m.doc_id, _allow(tenant)) == (m.doc_id in expect) for m in every)
    assert not store.visible(10**9, _allow("t0"))


def test_an_ingest_never_moves_a_document_to_another_owner(corpus: tuple[Tether, Path]) -> None:
    t, root = corpus
    target = root / "uploads" / "t1" / "invoice.md"
    before = t.store().document_path_tenant(str(target.resolve()))
    stolen = t.ingest([target], tenant="t2")  # another tenant names the owned path
    shared = t.ingest([target])  # the operator's shared ingest
    for summary in (stolen, shared):
        assert summary.added == summary.updated == 0 and len(summary.skipped) == 1
        assert "an ingest never moves a document to another owner" in summary.skipped[0].reason
    assert before == "t1" and t.store().document_path_tenant(str(target.resolve())) == "t1"
    with pytest.raises(RequestError, match="unknown tenant 'T1'"):
        t.ingest([target], tenant="T1")


def test_a_v3_index_is_upgraded_with_every_document_shared(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(tmp_path / "tether.yaml")
    doc = tmp_path / "a.md"
    doc.write_text("# A\n\nThe parking limit is nine cars.\n")
    t.ingest([doc])
    t.close()
    conn = sqlite3.connect(t.settings.index_path)
    conn.execute("ALTER TABLE documents DROP COLUMN tenant")
    conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    store = SQLiteStore.open(t.settings.index_path)
    assert [m.tenant for m in store.documents()] == [""]
    assert store.lexical_search(["parking"], 5, None)
    store.close()
