"""Ingestion end to end on real files: incremental re-ingest, clear skips, near-duplicate removal, tags."""

from __future__ import annotations

import io
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tether._api import Tether
from tether.config import ChunkSettings, EmbeddingSettings, IngestSettings, RetrievalSettings
from tether.contracts import IngestSummary, SearchFilters
from tether.errors import IngestError
from tether.ingest import ingest_paths
from tether.models import OnnxEmbedder, load_embedder
from tether.retrieve import Retriever
from tether.store import SQLiteStore

GOOD = {
    "guide.md": "# Kayak guide\n\nPaddle the kayak gently across the fjord at dawn.\n",
    "notes.txt": "Sourdough bread needs a lively starter and a long, cold proof.\n",
    "page.html": "<html><head><title>Orchids</title></head><body><p>Orchids like bright, indirect light.</p>"
    "</body></html>",
}


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return load_embedder(EmbeddingSettings(threads=2))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore.open(tmp_path / "index" / "index.db", create=True)
    yield s
    s.close()


@pytest.fixture
def ingest(store: SQLiteStore, embedder: OnnxEmbedder) -> Callable[..., IngestSummary]:
    def run(*paths: Path, settings: IngestSettings | None = None, tags: list[str] | None = None) -> IngestSummary:
        return ingest_paths(list(paths), store, embedder, settings or IngestSettings(), tags=tags)

    return run


def write_corpus(folder: Path, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (files or GOOD).items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def found(store: SQLiteStore, word: str) -> set[str]:
    """Paths of the documents whose chunks contain ``word`` (BM25 index)."""
    ids = [x.chunk_id for x in store.lexical_search([word], 100)]
    return {h.path for h in store.hits(ids).values()}


def make_pdf(text: str) -> bytes:
    canvas_mod = pytest.importorskip("reportlab.pdfgen.canvas")
    buffer = io.BytesIO()
    canvas = canvas_mod.Canvas(buffer)
    canvas.drawString(72, 720, text)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def encrypted_pdf(text: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(text))))
    writer.encrypt("s3cret-password")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- incremental ingest ---------------------------------------------------------------------------------


def test_ingesting_a_folder_adds_every_supported_file(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    summary = ingest(docs)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (3, 0, 0, 0)
    assert summary.skipped == []
    assert store.paths() == sorted(str((docs / n).resolve()) for n in GOOD)
    assert summary.chunks == store.stats().chunks >= 3
    assert found(store, "kayak") == {str((docs / "guide.md").resolve())}
    assert found(store, "sourdough") == {str((docs / "notes.txt").resolve())}
    assert found(store, "orchids") == {str((docs / "page.html").resolve())}


def test_stored_document_text_is_the_parsed_text(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    ingest(docs)
    for hit in store.hits(list(store.chunk_paths())).values():
        assert store.document_text(hit.doc_id)[hit.start : hit.end] == hit.text


def test_reingesting_unchanged_files_writes_nothing(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    ingest(docs)
    generation = store.generation
    summary = ingest(docs)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 0, 3, 0)
    assert summary.chunks == 0
    assert store.generation == generation


def test_touching_a_file_without_changing_it_counts_as_unchanged(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    ingest(docs)
    os.utime(docs / "notes.txt", (time.time() + 100, time.time() + 100))
    summary = ingest(docs)
    assert summary.unchanged == 3 and summary.updated == 0


def test_editing_a_file_updates_it_and_drops_its_old_text(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    ingest(docs)
    (docs / "notes.txt").write_text("Rye crackers bake quickly in a hot oven.\n", encoding="utf-8")
    summary = ingest(docs)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (0, 1, 2, 0)
    assert found(store, "sourdough") == set()
    assert found(store, "crackers") == {str((docs / "notes.txt").resolve())}
    assert len(store.paths()) == 3
    assert store.integrity_problems() == []


def test_deleting_a_file_removes_it_from_the_index(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    ingest(docs)
    (docs / "guide.md").unlink()
    summary = ingest(docs)
    assert (summary.removed, summary.unchanged) == (1, 2)
    assert str((docs / "guide.md").resolve()) not in store.paths()
    assert found(store, "kayak") == set()


def test_ingesting_another_folder_does_not_remove_the_first(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    first = write_corpus(tmp_path / "first")
    second = write_corpus(tmp_path / "second", {"other.txt": "Lighthouses guide ships along rocky coasts.\n"})
    ingest(first)
    summary = ingest(second)
    assert (summary.added, summary.removed) == (1, 0)
    assert len(store.paths()) == 4


def test_a_single_file_can_be_ingested(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    summary = ingest(docs / "notes.txt")
    assert summary.added == 1
    assert store.paths() == [str((docs / "notes.txt").resolve())]


def test_hidden_files_and_folders_are_not_ingested(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / ".secret.txt").write_text("hidden zeppelin text\n")
    (docs / ".git").mkdir()
    (docs / ".git" / "notes.txt").write_text("hidden zeppelin text\n")
    summary = ingest(docs)
    assert summary.added == 3 and summary.skipped == []
    assert found(store, "zeppelin") == set()


def test_a_missing_path_is_an_error_before_anything_is_ingested(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    with pytest.raises(IngestError, match=r"nowhere: no such file or folder \(nothing was ingested\)"):
        ingest(docs, tmp_path / "nowhere")
    assert store.paths() == []


def test_progress_is_reported_once_per_file(tmp_path: Path, store: SQLiteStore, embedder: OnnxEmbedder) -> None:
    docs = write_corpus(tmp_path / "docs")
    calls: list[tuple[int, int, str]] = []
    ingest_paths([docs], store, embedder, IngestSettings(), progress=lambda d, t, p: calls.append((d, t, p)))
    assert [(d, t) for d, t, _ in calls] == [(1, 3), (2, 3), (3, 3)]


# -- bad inputs -----------------------------------------------------------------------------------------

BAD_FILES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "corrupt-pdf": ("broken.pdf", lambda: make_pdf("Half a document about comets.")[:300], "corrupt PDF"),
    "garbage-pdf": ("garbage.pdf", lambda: b"%PDF-1.7\n" + bytes(range(1, 256)) * 4, "corrupt PDF"),
    "encrypted-pdf": ("locked.pdf", lambda: encrypted_pdf("Secret plans about comets."), "encrypted PDF"),
    "binary": ("blob.txt", lambda: b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "binary"),
    "empty": ("empty.md", lambda: b"", "empty file"),
    "whitespace": ("blank.txt", lambda: b"  \n\n\t \n", "empty file"),
    "not-utf8": ("latin1.txt", lambda: "Café au lait, crème brûlée.".encode("latin-1"), "not UTF-8"),
    "unknown-extension": ("data.xyz", lambda: b"plain words in an unknown file type", "unsupported file type '.xyz'"),
    "no-extension": ("Makefile", lambda: b"all:\n\techo hi\n", "unsupported file type"),
    "too-large": ("big.txt", lambda: b"comets and asteroids. " * 1000, "too large"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_a_bad_file_is_skipped_with_a_one_line_reason_and_the_rest_is_ingested(
    tmp_path: Path, store: SQLiteStore, ingest, kind: str
) -> None:
    name, data, reason = BAD_FILES[kind]
    docs = write_corpus(tmp_path / "docs")
    (docs / name).write_bytes(data())
    summary = ingest(docs, settings=IngestSettings(max_file_mb=0.01))  # 10 KiB: only big.txt is over
    assert summary.added == 3
    assert [s.path for s in summary.skipped] == [str(docs / name)]
    message = summary.skipped[0].reason
    assert reason in message
    assert "\n" not in message and len(message) < 200
    assert str((docs / name).resolve()) not in store.paths()


def test_the_summary_counts_every_skipped_file(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    for name, data, _ in BAD_FILES.values():
        (docs / name).write_bytes(data())
    summary = ingest(docs, settings=IngestSettings(max_file_mb=0.01))
    assert summary.added == 3
    assert len(summary.skipped) == len(BAD_FILES)
    assert {Path(s.path).name for s in summary.skipped} == {name for name, _, _ in BAD_FILES.values()}
    assert len(store.paths()) == 3


def test_too_large_reason_names_the_setting(tmp_path: Path, ingest) -> None:
    docs = write_corpus(tmp_path / "docs", {"big.txt": "x " * 2000})
    summary = ingest(docs, settings=IngestSettings(max_file_mb=0.001))
    assert "ingest.max_file_mb" in summary.skipped[0].reason


def test_max_file_mb_from_tether_yaml_is_applied(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs", {"big.txt": "comets " * 400, "small.txt": "tiny comet note\n"})
    config = tmp_path / "tether.yaml"
    config.write_text("index:\n  path: idx/index.db\ningest:\n  max_file_mb: 0.001\n", encoding="utf-8")
    with Tether.open(config) as t:
        summary = t.ingest([docs])
        assert t.settings.index_path == tmp_path / "idx" / "index.db"
        assert t.stats().documents == 1
    assert summary.added == 1
    assert [Path(s.path).name for s in summary.skipped] == ["big.txt"]
    assert (tmp_path / "idx" / "index.db").is_file()


def test_a_real_pdf_is_ingested(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "comets.pdf").write_bytes(make_pdf("Comets grow bright tails near the sun."))
    summary = ingest(docs)
    assert summary.added == 1 and summary.skipped == []
    assert found(store, "comets") == {str((docs / "comets.pdf").resolve())}


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read chmod 000 files")
def test_an_unreadable_file_is_skipped_with_permission_denied(tmp_path: Path, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    locked = docs / "locked.txt"
    locked.write_text("words nobody may read\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("this user can read a chmod 000 file")
        summary = ingest(docs)
    finally:
        locked.chmod(0o644)
    assert summary.added == 3
    assert len(summary.skipped) == 1
    assert "permission denied" in summary.skipped[0].reason


def test_a_stored_file_that_becomes_corrupt_keeps_its_previous_version(
    tmp_path: Path, store: SQLiteStore, ingest
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = docs / "comets.pdf"
    pdf.write_bytes(make_pdf("Comets grow bright tails near the sun."))
    ingest(docs)
    key = str(pdf.resolve())
    before = store.document_hash(key)
    pdf.write_bytes(b"%PDF-1.4\nthis file was truncated by a bad copy")
    summary = ingest(docs)
    assert [Path(s.path).name for s in summary.skipped] == ["comets.pdf"]
    assert (summary.updated, summary.removed) == (0, 0)
    assert store.document_hash(key) == before
    assert found(store, "comets") == {key}


def test_a_stored_text_file_that_becomes_binary_keeps_its_previous_version(
    tmp_path: Path, store: SQLiteStore, ingest
) -> None:
    docs = write_corpus(tmp_path / "docs")
    ingest(docs)
    (docs / "notes.txt").write_bytes(b"\x00\x01\x02 garbage")
    summary = ingest(docs)
    assert len(summary.skipped) == 1 and summary.removed == 0
    assert found(store, "sourdough") == {str((docs / "notes.txt").resolve())}


@pytest.mark.slow
def test_a_200_mb_file_is_skipped_quickly_without_being_read(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    huge = docs / "huge.txt"
    with huge.open("wb") as f:  # sparse: a little text at both ends, a 200 MB hole in the middle
        f.write(b"The start of a very large log file.\n")
        f.seek(200 * 1024 * 1024)
        f.write(b"\nThe end of a very large log file.\n")
    assert huge.stat().st_size > 200 * 1024 * 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        summary = ingest(docs)  # the default ingest.max_file_mb is 50
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.added == 3
    assert [Path(s.path).name for s in summary.skipped] == ["huge.txt"]
    assert "too large" in summary.skipped[0].reason
    assert elapsed < 10
    assert peak < 20 * 1024 * 1024, f"peak Python allocation {peak / 1e6:.0f} MB: the file was read"


# -- near duplicates and tags ---------------------------------------------------------------------------

SHARED = (
    "# Warranty\n\nThe warranty covers manufacturing defects for two years from the date of purchase. "
    "It does not cover damage from drops, water or unauthorised repairs. Keep the receipt as proof.\n\n"
)


def test_near_duplicate_chunks_across_files_are_removed_and_counted(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(
        tmp_path / "docs",
        {
            "a.md": SHARED + "# Battery\n\nCharge the battery fully before the first use of the drill.\n",
            "b.md": SHARED + "# Blades\n\nReplace dull saw blades; a sharp blade cuts cleaner and safer.\n",
        },
    )
    summary = ingest(docs, settings=IngestSettings(chunk=ChunkSettings(max_tokens=64, overlap_tokens=0)))
    assert summary.added == 2
    assert summary.duplicates_removed == 1
    assert found(store, "receipt") == {str((docs / "a.md").resolve())}  # the first copy is kept
    assert found(store, "battery") == {str((docs / "a.md").resolve())}
    assert found(store, "blades") == {str((docs / "b.md").resolve())}
    assert store.stats().duplicates_removed == 1
    b_id = next(h.doc_id for h in store.hits(list(store.chunk_paths())).values() if h.path.endswith("b.md"))
    b_meta = store.document(b_id)
    assert b_meta is not None and (b_meta.n_duplicates, b_meta.n_chunks) == (1, 1)


def test_near_duplicates_are_found_across_batches_and_among_another_writers_documents(
    tmp_path: Path, store: SQLiteStore, embedder: OnnxEmbedder
) -> None:
    """A fresh index's ingest keeps the keys it wrote instead of asking the store; a document another
    connection writes meanwhile is still found, since the ingest then asks the store again. (Copies, so that
    LSH finds them for certain: what counts as near is the business of the other tests.)"""
    from tether.ingest import Ingestor

    settings = IngestSettings(chunk=ChunkSettings(max_tokens=64, overlap_tokens=0))
    manual = (
        "Hold the power button for ten seconds to reset the router to its factory settings. The lights blink "
        "twice, the router restarts, and the wireless network comes back under the name printed on its label, "
        "with the password printed below it. Settings you changed before the reset are gone."
    )
    recipe = (
        "Fold the egg whites gently into the batter with a large metal spoon, then pour it into the lined tin "
        "and bake the sponge for forty minutes at 170 C, until a skewer pushed into the middle comes out clean. "
        "Let it cool in the tin for ten minutes before turning it out onto a rack."
    )
    ing = Ingestor(store, embedder, settings, batch_size=1)  # every document written in a batch of its own
    ing.add_record("a", "Router", manual)
    ing.add_record("b", "Router again", manual)
    ing.flush()
    assert ing.summary.duplicates_removed == 1  # found among the written documents
    assert ing._written_keys  # without asking the store
    other = SQLiteStore.open(store.path)
    writer = Ingestor(other, embedder, settings)
    writer.add_record("c", "Sponge", recipe)
    writer.flush()
    other.close()
    ing.add_record("d", "Sponge again", recipe)
    ing.add_record("e", "Router once more", manual)
    ing.flush()
    assert ing.summary.duplicates_removed == 3
    assert ing._written_keys is None
    assert found(store, "sponge") == {"c"} and found(store, "router") == {"a"}


def test_an_index_keeps_the_minhash_scheme_of_its_stored_signatures(
    tmp_path: Path, store: SQLiteStore, ingest, embedder: OnnxEmbedder
) -> None:
    from tether.ingest._dedupe import signature
    from tether.ingest._pipeline import minhash_scheme

    assert minhash_scheme(store) == "words64"  # a new index takes the default, and records it
    assert store.setting("minhash_scheme") == "words64"
    settings = IngestSettings(chunk=ChunkSettings(max_tokens=64, overlap_tokens=0))
    first = write_corpus(tmp_path / "first", {"a.md": SHARED + "# Battery\n\nCharge the battery fully.\n"})
    second = write_corpus(tmp_path / "second", {"b.md": SHARED + "# Blades\n\nReplace dull saw blades.\n"})
    # an index made before schemes were recorded holds datasketch signatures: it must go on with those
    old = SQLiteStore.open(tmp_path / "old" / "index.db", create=True)
    old.record_setting("minhash_scheme", "datasketch")
    assert ingest_paths([first], old, embedder, settings).added == 1
    for text, blob in old._conn.execute("SELECT text, minhash FROM chunks"):  # stored in the recorded scheme
        assert blob == signature(text, settings.dedupe.num_perm, "datasketch").tobytes()
    old._conn.execute("DELETE FROM meta WHERE key = 'setting:minhash_scheme'")  # as an index made before
    assert minhash_scheme(old) == "datasketch"  # it holds chunks, so theirs
    assert old.setting("minhash_scheme") == "datasketch"
    assert ingest_paths([second], old, embedder, settings).duplicates_removed == 1  # found among datasketch ones
    old.close()
    assert ingest(first, settings=settings).added == 1
    assert ingest(second, settings=settings).duplicates_removed == 1


def test_dedupe_can_be_turned_off(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs", {"a.md": SHARED, "b.md": SHARED + "# More\n\nAnother paragraph.\n"})
    settings = IngestSettings.model_validate({"dedupe": {"enabled": False}, "chunk": {"max_tokens": 64}})
    summary = ingest(docs, settings=settings)
    assert summary.duplicates_removed == 0
    assert len(found(store, "receipt")) == 2


def test_a_reingested_file_is_not_a_duplicate_of_its_own_old_version(
    tmp_path: Path, store: SQLiteStore, ingest
) -> None:
    docs = write_corpus(tmp_path / "docs", {"a.md": SHARED + "# Extra\n\nFirst version of the extra part.\n"})
    settings = IngestSettings(chunk=ChunkSettings(max_tokens=64, overlap_tokens=0))
    ingest(docs, settings=settings)
    (docs / "a.md").write_text(SHARED + "# Extra\n\nSecond version of the extra part.\n", encoding="utf-8")
    summary = ingest(docs, settings=settings)
    assert summary.updated == 1 and summary.duplicates_removed == 0
    assert found(store, "receipt") == {str((docs / "a.md").resolve())}


def test_tags_given_at_ingest_filter_search(tmp_path: Path, store: SQLiteStore, ingest, embedder: OnnxEmbedder) -> None:
    work = write_corpus(tmp_path / "work", {"plan.txt": "The garden plan puts tomatoes along the south fence.\n"})
    home = write_corpus(tmp_path / "home", {"diary.txt": "My garden diary says tomatoes ripened in August.\n"})
    ingest(work, tags=["work"])
    ingest(home, tags=["home", "personal"])
    retriever = Retriever(store, embedder, RetrievalSettings())
    for mode in ("lexical", "dense", "hybrid"):
        hits = retriever.search("garden tomatoes", mode=mode, filters=SearchFilters(tags=["home"]))
        assert [Path(h.path).name for h in hits] == ["diary.txt"], mode
        hits = retriever.search("garden tomatoes", mode=mode, filters=SearchFilters(tags=["work"]))
        assert [Path(h.path).name for h in hits] == ["plan.txt"], mode
    all_hits = retriever.search("garden tomatoes", mode="hybrid")
    assert {Path(h.path).name for h in all_hits} == {"plan.txt", "diary.txt"}
    doc = store.document(all_hits[0].doc_id)
    assert doc is not None and doc.tags in (["work"], ["home", "personal"])


def test_deleting_the_kept_copy_of_a_duplicate_does_not_lose_the_text(
    tmp_path: Path, store: SQLiteStore, ingest
) -> None:
    docs = write_corpus(
        tmp_path / "docs",
        {
            "a.md": SHARED + "# Battery\n\nCharge the battery fully before the first use of the drill.\n",
            "b.md": SHARED + "# Blades\n\nReplace dull saw blades; a sharp blade cuts cleaner and safer.\n",
        },
    )
    settings = IngestSettings(chunk=ChunkSettings(max_tokens=64, overlap_tokens=0))
    ingest(docs, settings=settings)
    (docs / "a.md").unlink()
    ingest(docs, settings=settings)
    assert found(store, "receipt") == {str((docs / "b.md").resolve())}


def test_tags_given_when_reingesting_unchanged_files_are_applied(tmp_path: Path, store: SQLiteStore, ingest) -> None:
    docs = write_corpus(tmp_path / "docs")
    ingest(docs)
    ingest(docs, tags=["work"])
    assert found(store, "kayak") == {str((docs / "guide.md").resolve())}
    ids = [x.chunk_id for x in store.lexical_search(["kayak"], 10, SearchFilters(tags=["work"]))]
    assert ids, "the tag given at the second ingest is not filterable"
