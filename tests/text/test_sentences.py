from tether.text import split_sentences


def texts(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_basic_split_and_spans_are_trimmed() -> None:
    text = "  First one. Second one!  Third?\nFourth.  "
    spans = split_sentences(text)
    assert texts(text) == ["First one.", "Second one!", "Third?", "Fourth."]
    for s, e in spans:
        assert text[s:e] == text[s:e].strip()


def test_offset_is_added() -> None:
    text = "One. Two."
    assert split_sentences(text, 100) == [(100, 104), (105, 109)]


def test_abbreviations_decimals_initials_do_not_split() -> None:
    text = (
        "Dr. Smith met Mr. Jones in the U.S. Army. Fruits, e.g. Apples, i.e. Red ones, etc. Are fine. "
        "Version 3.5 shipped. See Fig. 2 and No. 7 vs. Item 8. J. R. R. Tolkien wrote it."
    )
    assert texts(text) == [
        "Dr. Smith met Mr. Jones in the U.S. Army.",
        "Fruits, e.g. Apples, i.e. Red ones, etc. Are fine.",
        "Version 3.5 shipped.",
        "See Fig. 2 and No. 7 vs. Item 8.",
        "J. R. R. Tolkien wrote it.",
    ]


def test_ellipsis_inside_quotes_does_not_split() -> None:
    text = 'He said "I was... Then it rained." She left... Later we met.'
    assert texts(text) == ['He said "I was... Then it rained."', "She left...", "Later we met."]


def test_split_before_quote_and_digit_but_not_lowercase() -> None:
    text = 'It ended. "Yes," she said. 42 people came. it was odd. no split here'
    assert texts(text) == ["It ended.", '"Yes," she said.', "42 people came. it was odd. no split here"]


def test_blank_lines_and_line_items() -> None:
    text = (
        "# Heading\nA paragraph\nwrapped over lines. Second sentence\n\nNew paragraph\n"
        "- item one\n  continues here\n- item two\n1. numbered\n| a | b |\n|---|---|\n| 1 | 2 |\n## Next"
    )
    assert texts(text) == [
        "# Heading",
        "A paragraph\nwrapped over lines.",
        "Second sentence",
        "New paragraph",
        "- item one\n  continues here",
        "- item two",
        "1. numbered",
        "| a | b |",
        "|---|---|",
        "| 1 | 2 |",
        "## Next",
    ]


def test_empty_and_whitespace() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\n\t ") == []


def test_a_numbered_item_keeps_its_marker_and_is_one_sentence() -> None:
    text = "Two steps:\n\n1. The sources are compiled.\n2. The objects are linked. Then it ends.\n(3) Third is here.\n"
    got = [text[s:e] for s, e in split_sentences(text)]
    assert got == [
        "Two steps:",
        "1. The sources are compiled.",
        "2. The objects are linked.",
        "Then it ends.",
        "(3) Third is here.",
    ]
    # a number ending a sentence inside running text still ends it
    running = "He scored 3. Then he left."
    assert [running[s:e] for s, e in split_sentences(running)] == ["He scored 3.", "Then he left."]
