"""Answer shape: a line that restates the question is not an answer; a list lead-in is quoted with its list."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether._api import Tether
from tether._demo import export_python_topics
from tether.answer._extractive import restates
from tether.config import default_yaml
from tether.text import stem, words

FAQ_MD = """# Help centre

## Contents

1. How do I reset my password?
2. How do I change the billing address?
3. Where can I download invoices?

## Passwords

To reset your password, open Settings, choose Security and click Reset password; a reset link is emailed to
you within five minutes.

## Builds

The release build is executed in two steps:

1. The sources are compiled with optimisations switched on.
2. The objects are linked into one signed installer.

Nightly builds skip the signing step.
"""


def _stems(q: str) -> set[str]:
    return {stem(w) for w in words(q)}


@pytest.mark.parametrize(
    "line",
    [
        "1. How do I reset my password?",
        "How do I reset my password?",
        "**How do I reset my password?**",
        "Reset password",
    ],
)
def test_a_line_that_only_restates_the_question_is_recognised(line: str) -> None:
    assert restates(line, _stems("How do I reset my password?"))


def test_a_line_that_adds_something_is_not_a_restatement() -> None:
    q = _stems("How do I reset my password?")
    assert not restates("To reset your password, open Settings and click Reset password.", q)
    # an answer in the question's own words is a sentence, not a title
    assert not restates('It is written as "Ellipsis" or "...".', _stems("How is the Ellipsis object written?"))


@pytest.fixture(scope="module")
def faq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tether]:
    root = tmp_path_factory.mktemp("faq")
    (root / "docs").mkdir()
    (root / "docs" / "help.md").write_text(FAQ_MD, encoding="utf-8")
    (root / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    yield t
    t.close()


def test_the_table_of_contents_line_is_never_quoted_as_the_answer(faq: Tether) -> None:
    a = faq.ask("How do I reset my password?")
    for c in [*a.citations, *([a.nearest] if a.nearest else [])]:
        assert "?" not in c.quote, c.quote
    if not a.abstained:
        assert "Settings" in a.citations[0].quote


def test_a_list_lead_in_is_quoted_with_its_list(faq: Tether) -> None:
    a = faq.ask("In how many steps is the release build executed?")
    assert not a.abstained, a.reason
    c = a.citations[0]
    assert c.quote.startswith("The release build is executed in two steps:")
    assert "1. The sources are compiled" in c.quote and c.quote.endswith("one signed installer.")
    assert "Nightly" not in c.quote
    text = faq.store().document_text(c.doc_id)
    assert text[c.start : c.end] == c.quote


def test_a_list_quoted_after_one_of_its_items_takes_its_place_instead_of_quoting_it_twice(tmp_path: Path) -> None:
    # Python's reference manual, "The import statement": the best sentence is list item 2, the second its lead-in
    # ("... is executed in two steps:"), quoted with the list that holds item 2 again.
    export_python_topics(tmp_path / "all")
    (tmp_path / "docs").mkdir()
    shutil.copy(tmp_path / "all" / "import.txt", tmp_path / "docs" / "import.txt")
    (tmp_path / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    with Tether.open(tmp_path / "tether.yaml") as t:
        t.ingest([tmp_path / "docs"])
        a = t.ask("What does the import statement do?")
        text = t.store().document_text(a.citations[0].doc_id)
    assert not a.abstained
    assert a.citations[0].quote.startswith("The basic import statement")
    assert "1. find a module" in a.citations[0].quote and "2. define a name" in a.citations[0].quote
    spans = sorted((c.start, c.end) for c in a.citations)
    assert all(e <= s for (_, e), (s, _) in zip(spans, spans[1:], strict=False))  # no text quoted twice
    assert a.text.count("2. define a name") == 1
    assert all(text[c.start : c.end] == c.quote for c in a.citations)


def test_a_sentence_that_only_echoes_the_question_is_not_an_answer() -> None:
    q = "Provide a command to list all processes running on my computer."
    assert restates("Provide a command to list all processes running on my computer.", _stems(q))
    # a yes/no question is confirmed by a sentence in its own words
    polar = "Is the pass statement a null operation?"
    assert not restates("The pass statement is a null operation.", _stems(polar), polar=True)
    # a sentence that adds a word or a number answers
    assert not restates("The office closes at 18:00 on Fridays.", _stems("When does the office close on Fridays?"))
