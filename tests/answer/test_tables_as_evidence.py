"""Tables and CSV as evidence: a question naming a row and a column gets that row cited, read with its header.

The corpus mixes a Markdown rate table, a CSV catalogue, an HTML table and prose; a small chunk budget cuts the
tables between chunks, so rows far from their header must still be read with it (from the stored document).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tether._api import Tether
from tether.config import default_yaml

TRAVEL_MD = """# Travel and expenses policy

Employees travelling on company business are reimbursed for reasonable costs. Claims are filed within 30 days.

## Mileage and allowances

| Item | Rate | Notes |
|---|---|---|
| Private car | 0.32 EUR per km | up to 400 km per trip |
| Motorcycle | 0.20 EUR per km | |
| Bicycle | 0.10 EUR per km | commuting excluded |
| Daily meal allowance | 28 EUR | 14 EUR for trips under 8 hours |
| Hotel cap (Lisbon) | 140 EUR per night | breakfast included |
| Hotel cap (Porto) | 110 EUR per night | |

## Approvals

Expenses above 500 EUR need the approval of a line manager before booking.
"""

CATALOGUE_CSV = """Item code,Device,Price EUR,Lead time
LT-14,14-inch laptop,1150,5 days
LT-16,16-inch laptop,1490,7 days
MN-27,27-inch monitor,320,3 days
HS-01,Noise-cancelling headset,180,2 days
DK-02,USB-C docking station,210,4 days
"""

LEAVE_TXT = """Leave policy

Full-time employees receive 25 days of paid annual leave per calendar year. Part-time employees receive leave in
proportion to their contracted hours. Parental leave is 16 weeks at full pay.
"""


@pytest.fixture(scope="module")
def handbook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tether, Path]]:
    root = tmp_path_factory.mktemp("handbook")
    docs = root / "docs"
    docs.mkdir()
    (docs / "travel.md").write_text(TRAVEL_MD, encoding="utf-8")
    (docs / "catalogue.csv").write_text(CATALOGUE_CSV, encoding="utf-8")
    (docs / "leave.txt").write_text(LEAVE_TXT, encoding="utf-8")
    # a small chunk budget: the tables are cut between chunks, most rows far from their header
    yaml = (
        default_yaml().replace("max_tokens: 200", "max_tokens: 40").replace("overlap_tokens: 32", "overlap_tokens: 0")
    )
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    summary = t.ingest([docs])
    assert summary.added == 3 and not summary.skipped
    yield t, docs
    t.close()


ROW_QUESTIONS = {
    "What is the rate for using a private car?": ("travel.md", "| Private car |"),
    "What is the hotel cap in Porto?": ("travel.md", "| Hotel cap (Porto) |"),
    "What is the lead time for the USB-C docking station?": ("catalogue.csv", "| DK-02 |"),
    "How much is the daily meal allowance?": ("travel.md", "| Daily meal allowance |"),
}


def test_the_tables_are_cut_between_chunks(handbook: tuple[Tether, Path]) -> None:
    t, _ = handbook
    hits = t.search("Hotel cap (Porto) 110 EUR per night", 1, mode="lexical")
    assert hits and "| Item | Rate |" not in hits[0].text  # the row's chunk does not hold its header


@pytest.mark.parametrize("question", list(ROW_QUESTIONS))
def test_a_row_question_cites_that_row_exactly(handbook: tuple[Tether, Path], question: str) -> None:
    t, docs = handbook
    name, row_start = ROW_QUESTIONS[question]
    a = t.ask(question)
    assert not a.abstained, (a.reason, a.nearest)
    c = a.citations[0]
    assert Path(c.path).name == name and c.quote.startswith(row_start)
    stored = t.store().document_text(c.doc_id)
    assert stored[c.start : c.end] == c.quote  # the citation contract holds for rendered tables too
    if name.endswith(".md"):
        assert (docs / name).read_text(encoding="utf-8")[c.start : c.end] == c.quote


def test_a_header_row_is_never_the_answer(handbook: tuple[Tether, Path]) -> None:
    t, _ = handbook
    for q in ["What is the price of item LT-16?", "What are the item code, device, price and lead time?"]:
        a = t.ask(q)
        for c in [*a.citations, *([a.nearest] if a.nearest else [])]:
            assert not c.quote.startswith(("| Item code |", "| Item | Rate |", "|---")), c.quote


@pytest.mark.parametrize("question", ["What is the hotel cap in Madrid?", "How much does a 55-inch television cost?"])
def test_a_row_the_table_does_not_have_is_not_in_the_documents(handbook: tuple[Tether, Path], question: str) -> None:
    t, _ = handbook
    a = t.ask(question)
    assert a.abstained, a.citations
