"""CSV and TSV files become a pipe table with the header on top; every row is one exact span."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.errors import IngestError
from tether.ingest.parsers import SUPPORTED_SUFFIXES, parse_file
from tether.text._tables import row_context

CSV = (
    "Item code,Device,Price EUR,Lead time\r\nLT-14,14-inch laptop,1150,5 days\r\n"
    'DK-02,"USB-C dock, 4 ports\nwith | pipe",210,4 days\r\n\r\nMN-27,27-inch monitor,320\r\n'
)


def test_csv_and_tsv_are_supported() -> None:
    assert {".csv", ".tsv"} <= SUPPORTED_SUFFIXES


def test_a_csv_becomes_a_pipe_table_with_its_header_and_one_line_per_row() -> None:
    doc = parse_file(Path("equipment_catalogue.csv"), CSV.encode())
    assert doc.title == "equipment catalogue"
    lines = doc.text.splitlines()
    assert lines[0] == "# equipment catalogue"
    assert lines[2] == "| Item code | Device | Price EUR | Lead time |"
    assert lines[3] == "|---|---|---|---|"
    assert "| DK-02 | USB-C dock, 4 ports with \\| pipe | 210 | 4 days |" in lines  # newline collapsed, pipe escaped
    assert "| MN-27 | 27-inch monitor | 320 |  |" in lines  # short row padded; blank row dropped
    assert [b.kind for b in doc.blocks] == ["heading", "table"]
    table = doc.blocks[1]
    assert doc.text[table.start : table.end].startswith("| Item code") and doc.text[table.end - 1] == "|"


def test_each_row_reads_with_the_header() -> None:
    doc = parse_file(Path("c.csv"), CSV.encode())
    ctx = row_context(doc.text, doc.text.index("| LT-14"))
    assert ctx is not None
    assert ctx.reading() == "Item code: LT-14; Device: 14-inch laptop; Price EUR: 1150; Lead time: 5 days"


def test_tsv_is_split_on_tabs() -> None:
    doc = parse_file(Path("rates.tsv"), b"Item\tRate\nBicycle\t0.10 EUR, per km\n")
    assert "| Bicycle | 0.10 EUR, per km |" in doc.text.splitlines()


@pytest.mark.parametrize("data", [b"", b"\n\n , ,\n"])
def test_an_empty_csv_is_skipped_with_a_reason(data: bytes) -> None:
    with pytest.raises(IngestError):
        parse_file(Path("empty.csv"), data)


def test_html_rowspan_and_colspan_fill_the_grid_so_each_row_reads_whole() -> None:
    html = (
        "<table><tr><th>Region</th><th>City</th><th>Hotel cap</th></tr>"
        '<tr><td rowspan="2">Portugal</td><td>Lisbon</td><td>140 EUR</td></tr>'
        "<tr><td>Porto</td><td>110 EUR</td></tr>"
        '<tr><td colspan="2">Elsewhere</td><td>100 EUR</td></tr>'
        '<tr><td rowspan="999999">x</td><td colspan="abc">y</td><td>z</td></tr></table>'
    )
    doc = parse_file(Path("h.html"), html.encode())
    lines = doc.text.splitlines()
    assert "| Portugal | Porto | 110 EUR |" in lines
    assert "| Elsewhere | Elsewhere | 100 EUR |" in lines
    assert "| x | y | z |" in lines  # absurd or malformed spans are bounded, not trusted
    ctx = row_context(doc.text, doc.text.index("| Portugal | Porto"))
    assert ctx is not None and ctx.reading() == "Region: Portugal; City: Porto; Hotel cap: 110 EUR"
