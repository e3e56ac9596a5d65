"""A pipe-table row is located in its table and read with its header."""

from __future__ import annotations

from tether.text._tables import cells, is_separator, row_context, table_start

TABLE = (
    "Intro line.\n\n| Item | Rate |\n|---|:--:|\n| Private car | 0.32 EUR per km |\n| Pipe \\| cell | 1 |\n\nAfter.\n"
)


def test_cells_are_stripped_and_escaped_pipes_kept_inside_a_cell() -> None:
    assert cells("| Pipe \\| cell | 1 |") == ["Pipe | cell", "1"]
    assert cells("  | a |  b|") == ["a", "b"]


def test_separator_lines_are_recognised() -> None:
    assert is_separator("|---|:--:|") and is_separator("| --- | ---: |")
    assert not is_separator("| Item | Rate |")


def test_a_row_is_read_with_its_header() -> None:
    pos = TABLE.index("| Private car")
    ctx = row_context(TABLE, pos + 3)
    assert ctx is not None and not ctx.is_header and not ctx.is_separator
    assert ctx.header == ["Item", "Rate"]
    assert ctx.reading() == "Item: Private car; Rate: 0.32 EUR per km"
    assert table_start(TABLE, pos) == TABLE.index("| Item")


def test_the_header_and_separator_rows_say_what_they_are() -> None:
    header = row_context(TABLE, TABLE.index("| Item"))
    sep = row_context(TABLE, TABLE.index("|---"))
    assert header is not None and header.is_header
    assert sep is not None and sep.is_separator
    assert row_context(TABLE, TABLE.index("After")) is None


def test_a_table_without_a_separator_still_takes_its_first_line_as_header() -> None:
    text = "| School | Students |\n| Bethany | 28 |\n"
    ctx = row_context(text, text.index("| Bethany"))
    assert ctx is not None and ctx.reading() == "School: Bethany; Students: 28"


def test_empty_cells_and_unnamed_columns_are_read_sensibly() -> None:
    text = "| Item | | Notes |\n|---|---|---|\n| Motorcycle | 0.20 EUR | |\n"
    ctx = row_context(text, text.index("| Motorcycle"))
    assert ctx is not None and ctx.reading() == "Item: Motorcycle; 0.20 EUR"
