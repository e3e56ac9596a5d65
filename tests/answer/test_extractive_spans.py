"""Which spans the extractive answerer may quote."""

from __future__ import annotations

import pytest

from tether.answer._extractive import is_answer_like


@pytest.mark.parametrize(
    "text",
    [
        'The "nonlocal" statement\n************************',  # reST title with its underline
        "Limits\n======",
        "# Company Travel Policy",
        "| Item | Limit |\n| --- | --- |",
        "-----",
        "...",
    ],
)
def test_headings_rules_and_table_borders_are_never_quoted(text: str) -> None:
    assert not is_answer_like(text)


@pytest.mark.parametrize(
    "text",
    [
        "Reimbursements must be submitted within 30 days of travel.",
        "| Hotel | $200 / night |",
        "x = 5  # a comment after code is fine",
    ],
)
def test_sentences_and_table_rows_may_be_quoted(text: str) -> None:
    assert is_answer_like(text)
