"""Attacks on "ingest stays in its folder": symbolic links out of the ingested folder are not followed (unless
``ingest.follow_symlinks`` says so), and a document that can no longer be reached is removed on re-ingest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes import HashEmbedder
from tether.config import IngestSettings
from tether.contracts import IngestSummary
from tether.ingest import ingest_paths
from tether.ingest._files import OUTSIDE
from tether.store import SQLiteStore

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="POSIX symbolic links")

SECRET = "The vault combination is zeppelin quokka marmalade.\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore.open(tmp_path / "idx" / "index.db", create=True)
    yield s
    s.close()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the ingested one holding a secret (a stand-in for /etc)."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET)
    return folder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "guide.md").write_text("# Guide\n\nPaddle the kayak gently across the fjord.\n")
    return folder


def ingest(store: SQLiteStore, *paths: Path, follow: bool = False) -> IngestSummary:
    return ingest_paths(list(paths), store, HashEmbedder(), IngestSettings(workers=0, follow_symlinks=follow))


def leaked(store: SQLiteStore) -> set[str]:
    """Stored documents that hold the secret."""
    ids = [x.chunk_id for x in store.lexical_search(["zeppelin"], 100)]
    return {h.path for h in store.hits(ids).values()}


def test_a_link_to_a_file_outside_the_folder_is_skipped_with_a_reason(
    store: SQLiteStore, docs: Path, outside: Path
) -> None:
    (docs / "notes.txt").symlink_to(outside / "secret.txt")
    summary = ingest(store, docs)
    assert summary.added == 1
    assert [(Path(s.path).name, s.reason) for s in summary.skipped] == [("notes.txt", OUTSIDE)]
    assert leaked(store) == set()


def test_a_relative_link_and_a_chain_of_links_through_the_folder_do_not_escape(
    store: SQLiteStore, docs: Path, outside: Path
) -> None:
    (docs / "up.txt").symlink_to(Path("..") / "private" / "secret.txt")
    (docs / "hop.txt").symlink_to("up.txt")  # a link inside the folder to a link out of it
    summary = ingest(store, docs)
    assert sorted(Path(s.path).name for s in summary.skipped) == ["hop.txt", "up.txt"]
    assert leaked(store) == set()


def test_a_linked_folder_outside_is_not_entered(store: SQLiteStore, docs: Path, outside: Path) -> None:
    (docs / "more").symlink_to(outside, target_is_directory=True)
    summary = ingest(store, docs)
    assert [(Path(s.path).name, s.reason) for s in summary.skipped] == [("more", OUTSIDE)]
    assert leaked(store) == set()


def test_a_link_to_etc_passwd_is_not_indexed(store: SQLiteStore, docs: Path) -> None:
    if not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    (docs / "passwd.txt").symlink_to("/etc/passwd")
    summary = ingest(store, docs)
    assert [s.reason for s in summary.skipped] == [OUTSIDE]
    assert store.paths() == [str(docs.resolve() / "guide.md")]


def test_a_link_inside_the_folder_is_followed_and_its_target_stored_once(store: SQLiteStore, docs: Path) -> None:
    (docs / "alias.md").symlink_to(docs / "guide.md")
    summary = ingest(store, docs)
    assert summary.skipped == [] and summary.added == 1
    assert store.paths() == [str((docs / "guide.md").resolve())]


def test_the_option_follows_links_out_and_the_document_goes_when_the_link_goes(
    store: SQLiteStore, docs: Path, outside: Path
) -> None:
    (docs / "notes.txt").symlink_to(outside / "secret.txt")
    assert ingest(store, docs, follow=True).added == 2
    assert leaked(store) == {str(docs.resolve() / "notes.txt")}  # stored under the link, inside the folder
    (docs / "notes.txt").unlink()
    assert ingest(store, docs, follow=True).removed == 1
    assert leaked(store) == set()


def test_a_followed_link_is_dropped_when_the_option_is_turned_off(
    store: SQLiteStore, docs: Path, outside: Path
) -> None:
    (docs / "notes.txt").symlink_to(outside / "secret.txt")
    ingest(store, docs, follow=True)
    summary = ingest(store, docs)
    assert summary.removed == 1 and leaked(store) == set()


def test_a_file_replaced_by_a_link_outside_is_removed_on_re_ingest(
    store: SQLiteStore, docs: Path, outside: Path
) -> None:
    (docs / "notes.txt").write_text("Harmless notes about kayaks.\n")
    ingest(store, docs)
    (docs / "notes.txt").unlink()
    (docs / "notes.txt").symlink_to(outside / "secret.txt")
    summary = ingest(store, docs)
    assert summary.removed == 1
    assert str(docs.resolve() / "notes.txt") not in store.paths()
    assert leaked(store) == set()


def test_a_folder_replaced_by_a_link_outside_is_removed_on_re_ingest(
    store: SQLiteStore, docs: Path, outside: Path, tmp_path: Path
) -> None:
    (docs / "sub").mkdir()
    (docs / "sub" / "secret.txt").write_text("Old notes about kayaks.\n")
    ingest(store, docs)
    (docs / "sub" / "secret.txt").unlink()
    (docs / "sub").rmdir()
    (docs / "sub").symlink_to(outside, target_is_directory=True)  # same file name behind it, now outside
    summary = ingest(store, docs)
    assert summary.removed == 1
    assert store.paths() == [str(docs.resolve() / "guide.md")]
    assert leaked(store) == set()


def test_a_link_loop_is_walked_once_even_when_links_are_followed(store: SQLiteStore, docs: Path, outside: Path) -> None:
    (outside / "back").symlink_to(outside, target_is_directory=True)  # private/back -> private
    (docs / "ext").symlink_to(outside, target_is_directory=True)
    summary = ingest(store, docs, follow=True)
    assert summary.added == 2  # guide.md and ext/secret.txt, once
    assert leaked(store) == {str(docs.resolve() / "ext" / "secret.txt")}


def test_a_path_named_directly_may_be_a_link(store: SQLiteStore, docs: Path, outside: Path) -> None:
    """Naming a file is consent: the boundary is what the user named."""
    (docs / "notes.txt").symlink_to(outside / "secret.txt")
    assert ingest(store, docs / "notes.txt").added == 1
