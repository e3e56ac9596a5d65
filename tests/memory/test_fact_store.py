"""FactStore: per tenant and user isolation, dedupe, recall by cosine similarity, threads, reopening."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tether.memory import FactStore

DIM = 8


def vec(*values: float) -> npt.NDArray[np.float32]:
    out = np.zeros(DIM, np.float32)
    out[: len(values)] = values
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FactStore]:
    s = FactStore.open(tmp_path / "facts.db")
    yield s
    s.close()


def test_add_and_list_oldest_first(store: FactStore) -> None:
    a = store.add("acme", "ana", "I work in the Porto office", vec(1))
    b = store.add("acme", "ana", "I'm a contractor", vec(0, 1))
    assert [f.text for f in store.list("acme", "ana")] == ["I work in the Porto office", "I'm a contractor"]
    assert a.id != b.id and a.tenant == "acme" and a.user == "ana"
    assert a.created.tzinfo is not None and a.created <= b.created


def test_identical_text_is_stored_once(store: FactStore) -> None:
    a = store.add("acme", "ana", "I'm a contractor", vec(1))
    again = store.add("acme", "ana", "  I'm a contractor ", vec(0, 1))
    assert again == a
    assert len(store.list("acme", "ana")) == 1
    # the same text for another user or tenant is their own fact
    assert store.add("acme", "bob", "I'm a contractor", vec(1)).id != a.id
    assert store.add("globex", "ana", "I'm a contractor", vec(1)).id != a.id


def test_users_and_tenants_are_isolated(store: FactStore) -> None:
    ana = store.add("acme", "ana", "my manager is Rui", vec(1))
    store.add("acme", "bob", "my manager is Eva", vec(1))
    store.add("globex", "ana", "I work in Berlin", vec(1))
    assert [f.text for f in store.list("acme", "ana")] == ["my manager is Rui"]
    assert [f.text for f in store.list("globex", "ana")] == ["I work in Berlin"]
    # another user, or the same user name in another tenant, can neither delete nor recall ana's fact
    assert store.delete("acme", "bob", ana.id) is False
    assert store.delete("globex", "ana", ana.id) is False
    assert all(f.user == "bob" for f, _ in store.recall("acme", "bob", vec(1)))
    assert [f.id for f in store.list("acme", "ana")] == [ana.id]
    assert store.delete("acme", "ana", ana.id) is True
    assert store.delete("acme", "ana", ana.id) is False
    assert store.delete("acme", "ana", 999_999) is False
    assert store.list("acme", "ana") == []
    assert len(store.list("acme", "bob")) == 1


def test_delete_all_counts_only_the_users_facts(store: FactStore) -> None:
    for i in range(3):
        store.add("acme", "ana", f"fact {i}", vec(1, i))
    store.add("acme", "bob", "fact 0", vec(1))
    assert store.delete_all("acme", "ana") == 3
    assert store.delete_all("acme", "ana") == 0
    assert len(store.list("acme", "bob")) == 1


def test_recall_orders_by_cosine_and_applies_threshold_and_k(store: FactStore) -> None:
    store.add("acme", "ana", "orthogonal", vec(0, 0, 1))
    store.add("acme", "ana", "close", vec(1, 0.2))
    store.add("acme", "ana", "exact but long", vec(10, 0))
    store.add("acme", "ana", "opposite", vec(-1, 0))
    store.add("acme", "ana", "farther", vec(1, 1))
    store.add("acme", "bob", "bob's exact", vec(1, 0))
    got = store.recall("acme", "ana", vec(1, 0), k=5)
    assert [f.text for f, _ in got] == ["exact but long", "close", "farther"]
    sims = [s for _, s in got]
    assert sims == sorted(sims, reverse=True)
    assert sims[0] == pytest.approx(1.0) and sims[2] == pytest.approx(1 / np.sqrt(2), rel=1e-5)
    assert [f.text for f, _ in store.recall("acme", "ana", vec(1, 0), k=2)] == ["exact but long", "close"]
    assert [f.text for f, _ in store.recall("acme", "ana", vec(1, 0), k=5, min_similarity=0.9)] == [
        "exact but long",
        "close",
    ]
    assert store.recall("acme", "ana", vec(1, 0), k=0) == []
    assert store.recall("acme", "nobody", vec(1, 0)) == []


def test_zero_query_vector_recalls_nothing(store: FactStore) -> None:
    store.add("acme", "ana", "a fact", vec(1))
    assert store.recall("acme", "ana", vec()) == []


def test_wrong_dimension_is_a_clear_value_error(store: FactStore) -> None:
    store.add("acme", "ana", "a fact", vec(1))
    with pytest.raises(ValueError, match=r"dimension 4.*8-dimensional"):
        store.add("acme", "ana", "another fact", np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"query_vector has dimension 3"):
        store.recall("acme", "ana", np.ones(3, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        store.add("acme", "ana", "another fact", np.ones((2, DIM), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        store.add("acme", "ana", "another fact", np.full(DIM, np.nan, np.float32))
    assert len(store.list("acme", "ana")) == 1


def test_bad_arguments(store: FactStore) -> None:
    with pytest.raises(ValueError, match="empty"):
        store.add("acme", "ana", "   ", vec(1))
    with pytest.raises(ValueError, match="tenant"):
        store.add("", "ana", "x", vec(1))
    with pytest.raises(TypeError, match="user"):
        store.list("acme", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fact_id"):
        store.delete("acme", "ana", "1")  # type: ignore[arg-type]


def test_vectors_are_float32_bytes_and_the_file_is_wal(tmp_path: Path) -> None:
    path = tmp_path / "facts.db"
    with FactStore.open(path) as s:
        s.add("acme", "ana", "a fact", np.arange(DIM, dtype=np.float64))
    conn = sqlite3.connect(path)
    try:
        blob = conn.execute("SELECT vector FROM facts").fetchone()[0]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert len(blob) == DIM * 4
    assert np.frombuffer(blob, np.float32).tolist() == list(range(DIM))


def test_concurrent_adds_are_all_counted(store: FactStore) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(50):
                store.add("acme", f"user{t % 2}", f"thread {t} fact {i}", vec(1, t, i))
                store.recall("acme", f"user{t % 2}", vec(1, t))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.list("acme", "user0")) == 100
    assert len(store.list("acme", "user1")) == 100
    assert len({f.id for u in ("user0", "user1") for f in store.list("acme", u)}) == 200


def test_two_stores_on_one_file_from_threads(tmp_path: Path) -> None:
    """Two connections (as two processes would have) writing at once lose nothing."""
    path = tmp_path / "facts.db"
    stores = [FactStore.open(path), FactStore.open(path)]
    threads = [
        threading.Thread(target=lambda s=s, n=n: [s.add("acme", "ana", f"{n}-{i}", vec(1, i)) for i in range(50)])
        for n, s in enumerate(stores)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(stores[0].list("acme", "ana")) == 100
    for s in stores:
        s.close()


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "facts.db"
    with FactStore.open(path) as s:
        a = s.add("acme", "ana", "I work in the Porto office", vec(1))
        s.add("acme", "ana", "I'm a contractor", vec(0, 1))
    with FactStore.open(path) as s:
        assert s.dim == DIM
        facts = s.list("acme", "ana")
        assert facts[0] == a and len(facts) == 2
        assert s.recall("acme", "ana", vec(0, 1))[0][0].text == "I'm a contractor"
        with pytest.raises(ValueError, match="8-dimensional"):
            s.add("acme", "ana", "new", np.ones(5, np.float32))
