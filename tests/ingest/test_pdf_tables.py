"""Tables in PDFs: pypdf flattens a table to one cell per line; the rows are recovered from the page layout."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether._api import Tether
from tether.config import default_yaml
from tether.ingest.parsers import parse_file
from tether.ingest.parsers._pdf_tables import put_back, tables_in_layout
from tether.text._tables import row_context

PROSE = [
    "Every employee receives standard equipment on the first day. Replacement devices are",
    "ordered through the service desk and delivered within the lead time below.",
]
ROWS = [
    ["Item code", "Device", "Price EUR", "Lead time"],
    ["LT-14", "14-inch laptop", "1150", "5 days"],
    ["MN-27", "27-inch monitor", "320", "3 days"],
    ["DK-02", "USB-C docking station", "210", "4 days"],
    ["HS-01", "Noise-cancelling headset", "180", ""],
]
COLS = [72, 170, 330, 430]


def table_pdf(pages: int = 2) -> bytes:
    canvas_mod = pytest.importorskip("reportlab.pdfgen.canvas")
    buffer = io.BytesIO()
    c = canvas_mod.Canvas(buffer)
    for page in range(pages):
        c.setFont("Helvetica", 10)
        y = 780
        c.drawString(72, y, f"Equipment policy, part {page + 1}")
        y -= 28
        for line in PROSE:
            c.drawString(72, y, line)
            y -= 14
        y -= 14
        if page == pages - 1:  # the table is on the last page
            for row in ROWS:
                for x, cell in zip(COLS, row, strict=True):
                    if cell:
                        c.drawString(x, y, cell)
                y -= 16
            y -= 14
        c.drawString(72, y, "Returned devices are wiped and refurbished before they are issued again.")
        c.showPage()
    c.save()
    return buffer.getvalue()


def test_a_flattened_table_comes_back_as_pipe_rows_under_its_header() -> None:
    doc = parse_file(Path("equipment.pdf"), table_pdf())
    lines = doc.text.splitlines()
    assert "| Item code | Device | Price EUR | Lead time |" in lines
    assert "| DK-02 | USB-C docking station | 210 | 4 days |" in lines
    assert "| HS-01 | Noise-cancelling headset | 180 |  |" in lines  # an empty cell keeps its column
    assert "Item code" not in lines and "DK-02" not in lines  # no cell left on a line of its own
    assert PROSE[0] in doc.text  # the prose is as pypdf extracts it
    tables = [b for b in doc.blocks if b.kind == "table"]
    assert len(tables) == 1 and tables[0].section == ["Page 2"]
    ctx = row_context(doc.text, doc.text.index("| MN-27"))
    assert (
        ctx is not None
        and ctx.reading() == "Item code: MN-27; Device: 27-inch monitor; Price EUR: 320; Lead time: 3 days"
    )


def test_short_lines_that_are_not_a_table_stay_as_they_are() -> None:
    layout = "Roses are red\nViolets are blue\nSugar is sweet\nAnd so are you\nThe end\nFin\n"
    assert tables_in_layout(layout) == []
    # cells that the plain text does not hold in row order: the page is left exactly as extracted
    rows = [["A", "B"], ["1", "2"], ["3", "4"]]
    assert put_back("A\n1\n3\nB\n2\n4\n", [rows]) == "A\n1\n3\nB\n2\n4\n"
    assert put_back("x\nA\nB\n1\n2\n3\n4\ny", [rows]) == "x\n\n| A | B |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\ny"


@pytest.fixture(scope="module")
def pdf_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tether]:
    root = tmp_path_factory.mktemp("pdf")
    (root / "docs").mkdir()
    (root / "docs" / "equipment.pdf").write_bytes(table_pdf())
    (root / "tether.yaml").write_text(default_yaml(), encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    assert t.ingest([root / "docs"]).added == 1
    yield t
    t.close()


def test_a_row_of_a_pdf_table_is_cited_exactly(pdf_index: Tether) -> None:
    a = pdf_index.ask("What is the lead time for the USB-C docking station?")
    assert not a.abstained, (a.reason, a.nearest)
    c = a.citations[0]
    assert c.quote == "| DK-02 | USB-C docking station | 210 | 4 days |"
    assert pdf_index.store().document_text(c.doc_id)[c.start : c.end] == c.quote
