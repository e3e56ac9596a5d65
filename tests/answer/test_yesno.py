"""Yes/no questions: the answer says "Yes." or "No." before its quote only when the cited evidence settles it,
and a sceptic's questions that a naive rule would answer wrongly get the quote alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether._api import Tether
from tether.answer._yesno import is_polar, yes_no
from tether.config import default_yaml

HANDBOOK = """# Staff handbook

## Bonus

Contractors are not eligible for the annual bonus. Permanent employees receive the annual bonus in March.

## Hotels

| City | Cap per night | Breakfast |
|---|---|---|
| Lisbon | 140 EUR | yes |
| Porto | 110 EUR | no |
| Madrid | 150 EUR | yes |

## Remote work

Remote work from abroad is allowed for up to 20 days a year with the approval of the line manager.
"""


@pytest.mark.parametrize(
    ("question", "evidence", "label"),
    [
        ("Is breakfast included in Lisbon?", "City: Lisbon; Cap per night: 140 EUR; Breakfast: yes", "Yes"),
        ("Is breakfast included in Porto?", "City: Porto; Cap per night: 110 EUR; Breakfast: no", "No"),
        ("Are contractors eligible for the annual bonus?", "Contractors are not eligible for the annual bonus.", "No"),
        ("Can staff work remotely from abroad?", "Remote work from abroad is allowed for up to 20 days.", None),
        ("Is remote work from abroad allowed?", "Remote work from abroad is allowed for up to 20 days.", "Yes"),
        # a sceptic's cases: each would get a wrong or unfounded label from a naive rule
        ("Is the Porto cap 140 EUR?", "City: Porto; Cap per night: 110 EUR; Breakfast: no", None),  # number differs
        ("Is the Madrid cap 140 EUR?", "City: Lisbon; Cap per night: 140 EUR; Breakfast: yes", None),  # another row
        ("Is breakfast included in Lisbon or Porto?", "City: Lisbon; Breakfast: yes", None),  # alternatives
        ("Isn't breakfast included in Porto?", "City: Porto; Breakfast: no", None),  # negated question
        ("Is the bonus paid no later than March?", "The bonus is paid no later than March.", "Yes"),  # not a negation
        ("Are contractors never excluded?", "Contractors are not never excluded.", None),
        ("What is the cap in Lisbon?", "City: Lisbon; Cap per night: 140 EUR", None),  # not a yes/no question
        ("", "anything", None),
    ],
)
def test_the_label_reads_the_evidence(question: str, evidence: str, label: str | None) -> None:
    assert yes_no(question, evidence) == label


def test_polar_questions_are_recognised_by_their_first_word() -> None:
    assert is_polar("Does the policy cover notebooks?")
    assert not is_polar("Which policy covers notebooks?")
    assert not is_polar("Does the policy cover notebooks or tablets?")


@pytest.fixture(scope="module")
def handbook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tether]:
    root = tmp_path_factory.mktemp("handbook")
    (root / "docs").mkdir()
    (root / "docs" / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    (root / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([root / "docs"])
    yield t
    t.close()


def test_a_negated_sentence_answers_no_with_its_citation(handbook: Tether) -> None:
    a = handbook.ask("Are contractors eligible for the annual bonus?")
    assert not a.abstained
    assert a.text.startswith("No. Contractors are not eligible")
    assert a.citations[0].quote.startswith("Contractors are not eligible")
    assert any(e.detail.get("yes_no") == "No" for e in a.trace if e.stage == "extractive")


def test_a_plain_sentence_answers_yes(handbook: Tether) -> None:
    a = handbook.ask("Is remote work from abroad allowed?")
    assert not a.abstained
    assert a.text.startswith("Yes. Remote work from abroad is allowed")


def test_a_row_is_answered_in_its_header_reading_and_cited_by_its_exact_span(handbook: Tether) -> None:
    a = handbook.ask("What is the cap per night in Madrid?")
    assert not a.abstained
    assert a.text.startswith("City: Madrid; Cap per night: 150 EUR; Breakfast: yes [1]")  # no label: not yes/no
    quote = a.citations[0].quote
    assert quote == "| Madrid | 150 EUR | yes |"
    doc = (Path(handbook.settings.root) / "docs" / "handbook.md").read_text(encoding="utf-8")
    assert doc[a.citations[0].start : a.citations[0].end] == quote  # the quote never leaves its offsets
