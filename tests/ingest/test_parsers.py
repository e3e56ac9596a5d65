import io
from pathlib import Path

import pytest
from pypdf import PdfWriter

from tether.contracts import ParsedDocument
from tether.errors import IngestError
from tether.ingest.parsers import SUPPORTED_SUFFIXES, parse_file


def assert_blocks_exact(doc: ParsedDocument) -> None:
    last_end = 0
    for block in doc.blocks:
        content = doc.text[block.start : block.end]
        assert content, block
        assert content == content.strip(), block
        assert block.start >= last_end, "blocks overlap or are out of order"
        last_end = block.end


def block_texts(doc: ParsedDocument) -> list[tuple[str, str, list[str]]]:
    return [(b.kind, doc.text[b.start : b.end], b.section) for b in doc.blocks]


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    canvas_mod = pytest.importorskip("reportlab.pdfgen.canvas")
    buffer = io.BytesIO()
    canvas = canvas_mod.Canvas(buffer)
    if title:
        canvas.setTitle(title)
    for lines in pages:
        y = 800
        for line in lines:
            if line:
                canvas.drawString(72, y, line)
            y -= 40 if not line else 15
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# ---------------------------------------------------------------- dispatch and decoding


def test_supported_suffixes() -> None:
    text_like = {".md", ".markdown", ".html", ".htm", ".pdf", ".txt", ".rst", ".text"}
    assert text_like | {".csv", ".tsv", ".tab"} == SUPPORTED_SUFFIXES


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.xyz", b"hello", "unsupported file type '.xyz'"),
        ("a.md", b"", "empty file"),
        ("a.txt", b"  \n\t\n ", "empty file"),
        ("a.pdf", b"", "empty file"),
        ("a.txt", b"abc\x00def", "binary file (NUL bytes), not text"),
        (
            "a.md",
            b"hello world \xff more",
            "not UTF-8 text (invalid byte 0xff at offset 12); convert it to UTF-8",
        ),
        ("a.html", b"<html><script>x()</script></html>", "no text content found"),
    ],
)
def test_error_reasons(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(IngestError) as info:
        parse_file(Path(name), data)
    assert str(info.value) == reason


def test_suffix_is_case_insensitive_and_bom_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "Notes.TXT"
    path.write_bytes("\ufeffHello there.\n".encode())
    doc = parse_file(path, path.read_bytes())
    assert doc.text == "Hello there.\n"
    assert doc.title == "Notes"
    assert block_texts(doc) == [("paragraph", "Hello there.", [])]


# ---------------------------------------------------------------- Markdown

MARKDOWN = """---
title: ignored
tags: [a]
---
# Guide

Intro with a "quote" and *emphasis*.

## Install

### On Linux

Run the installer:

```sh
./install.sh
```

- first item
- second item
  continues

  - nested

| Option | Meaning |
|--------|---------|
| `-v`   | verbose |

Setext Sub
----------

> quoted text

---

Last para.
"""


def test_markdown_blocks_sections_and_title(tmp_path: Path) -> None:
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    doc = parse_file(path, path.read_bytes())
    assert doc.text == MARKDOWN
    assert doc.title == "Guide"
    assert_blocks_exact(doc)
    linux = ["Guide", "Install", "On Linux"]
    assert block_texts(doc) == [
        ("heading", "# Guide", ["Guide"]),
        ("paragraph", 'Intro with a "quote" and *emphasis*.', ["Guide"]),
        ("heading", "## Install", ["Guide", "Install"]),
        ("heading", "### On Linux", linux),
        ("paragraph", "Run the installer:", linux),
        ("code", "```sh\n./install.sh\n```", linux),
        ("list", "- first item", linux),
        ("list", "- second item\n  continues\n\n  - nested", linux),
        ("table", "| Option | Meaning |\n|--------|---------|\n| `-v`   | verbose |", linux),
        ("heading", "Setext Sub", ["Guide", "Setext Sub"]),
        ("paragraph", "> quoted text", ["Guide", "Setext Sub"]),
        ("paragraph", "Last para.", ["Guide", "Setext Sub"]),
    ]


def test_markdown_title_falls_back_to_stem() -> None:
    doc = parse_file(Path("dir/readme-notes.markdown"), b"## Only a sub\n\ntext\n")
    assert doc.title == "readme-notes"


def test_markdown_crlf_spans_exact() -> None:
    doc = parse_file(Path("a.md"), b"# T\r\n\r\nline one\r\nline two\r\n")
    assert_blocks_exact(doc)
    assert block_texts(doc)[1] == ("paragraph", "line one\r\nline two", ["T"])


# ---------------------------------------------------------------- HTML

HTML = """<!doctype html><html><head><title> The   Page </title><style>p {color: red}</style></head>
<body><header>Site header</header><nav><a href="/">Home</a></nav>
<h1>Main</h1>
<p>Hello <b>bold</b>
   world.<br>Second line.</p>
<div>Loose <span>inline</span> text<p>Inner para</p></div>
<h2>Data</h2>
<table><caption>Prices</caption>
<thead><tr><th>Item</th><th>Price | EUR</th></tr></thead>
<tbody><tr><td>Apple
  pie</td><td>3.50</td></tr><tr><td>Tea</td></tr></tbody></table>
<ul><li>one <a href="x">link</a></li><li><p>two</p><ol><li>sub</li></ol></li></ul>
<pre>def f():
    return 1
</pre>
<script>alert("no")</script><aside>side</aside><form>form text</form><footer>Foot</footer>
</body></html>"""


def test_html_markdown_like_text_and_pipe_tables() -> None:
    doc = parse_file(Path("page.html"), HTML.encode())
    assert doc.title == "The Page"
    assert_blocks_exact(doc)
    table = "| Item | Price \\| EUR |\n| --- | --- |\n| Apple pie | 3.50 |\n| Tea |  |"
    assert block_texts(doc) == [
        ("heading", "# Main", ["Main"]),
        ("paragraph", "Hello bold world. Second line.", ["Main"]),
        ("paragraph", "Loose inline text", ["Main"]),
        ("paragraph", "Inner para", ["Main"]),
        ("heading", "## Data", ["Main", "Data"]),
        ("paragraph", "Prices", ["Main", "Data"]),
        ("table", table, ["Main", "Data"]),
        ("list", "- one link", ["Main", "Data"]),
        ("list", "- two\n  1. sub", ["Main", "Data"]),
        ("code", "def f():\n    return 1", ["Main", "Data"]),
    ]
    for dropped in ("Site header", "Home", "alert", "side", "form text", "Foot", "color"):
        assert dropped not in doc.text


def test_html_title_falls_back_to_h1_then_stem() -> None:
    assert parse_file(Path("x.htm"), b"<h1>Top</h1><p>t</p>").title == "Top"
    assert parse_file(Path("x.htm"), b"<p>t</p>").title == "x"


# ---------------------------------------------------------------- plain text / reST


def test_rst_pydoc_topic_for() -> None:
    from pydoc_data.topics import topics

    source = topics["for"]
    doc = parse_file(Path("for.rst"), source.encode())
    assert_blocks_exact(doc)
    assert doc.title == 'The "for" statement'
    kinds = [b.kind for b in doc.blocks]
    assert kinds[0] == "heading"
    assert doc.text[doc.blocks[0].start : doc.blocks[0].end] == 'The "for" statement'
    assert "code" in kinds and "paragraph" in kinds
    code = [doc.text[b.start : b.end] for b in doc.blocks if b.kind == "code"]
    assert any(c.startswith("for_stmt ::=") for c in code)
    assert all(b.section == ['The "for" statement'] for b in doc.blocks)


def test_rst_levels_follow_first_appearance_and_overlines() -> None:
    text = (
        "=======\n Title\n=======\n\nIntro.\n\nPart A\n******\n\nText a.\n\nDetail\n======\n\n"
        "Deep text.\n\nPart B\n******\n\nText b.\n\n# Markdown style\n\nmd text\n"
    )
    doc = parse_file(Path("doc.rst"), text.encode())
    assert_blocks_exact(doc)
    assert doc.title == "Title"
    assert block_texts(doc) == [
        ("heading", "Title", ["Title"]),
        ("paragraph", "Intro.", ["Title"]),
        ("heading", "Part A", ["Title", "Part A"]),
        ("paragraph", "Text a.", ["Title", "Part A"]),
        ("heading", "Detail", ["Title", "Part A", "Detail"]),
        ("paragraph", "Deep text.", ["Title", "Part A", "Detail"]),
        ("heading", "Part B", ["Title", "Part B"]),
        ("paragraph", "Text b.", ["Title", "Part B"]),
        ("heading", "# Markdown style", ["Markdown style"]),
        ("paragraph", "md text", ["Markdown style"]),
    ]


def test_text_code_after_paragraph_and_lists() -> None:
    text = "Example:\n\n   x = 1\n\n   y = 2\n\nAfter.\n\n- a\n- b\n"
    doc = parse_file(Path("n.txt"), text.encode())
    assert doc.title == "n"
    assert block_texts(doc) == [
        ("paragraph", "Example:", []),
        ("code", "x = 1\n\n   y = 2", []),
        ("paragraph", "After.", []),
        ("list", "- a\n- b", []),
    ]


# ---------------------------------------------------------------- PDF


def test_pdf_pages_paragraphs_and_title() -> None:
    data = make_pdf(
        [["First paragraph line one.", "line two.", "", "Second paragraph."], ["Page two text."]],
        title="Report 2024",
    )
    doc = parse_file(Path("r.pdf"), data)
    assert doc.title == "Report 2024"
    assert_blocks_exact(doc)
    assert "First paragraph line one." in doc.text
    assert [b.section for b in doc.blocks][-1] == ["Page 2"]
    assert doc.text[doc.blocks[-1].start : doc.blocks[-1].end] == "Page two text."
    assert all(b.section == ["Page 1"] for b in doc.blocks[:-1])


def test_pdf_title_falls_back_to_stem() -> None:
    doc = parse_file(Path("plain.pdf"), make_pdf([["Hello."]]))
    assert doc.title == "plain"


def test_pdf_without_text() -> None:
    with pytest.raises(IngestError, match=r"^PDF has no extractable text \(scanned image\?\)$"):
        parse_file(Path("scan.pdf"), make_pdf([[]]))


def test_encrypted_pdf() -> None:
    from pypdf import PdfReader

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([["Secret text."]]))))
    writer.encrypt(user_password="pw", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(IngestError, match=r"^encrypted PDF; decrypt it first$"):
        parse_file(Path("locked.pdf"), buffer.getvalue())


def test_encrypted_pdf_with_empty_password_opens() -> None:
    from pypdf import PdfReader

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([["Open text."]]))))
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    assert parse_file(Path("open.pdf"), buffer.getvalue()).text == "Open text."


@pytest.mark.parametrize("data", [b"%PDF-1.4\n garbage \x00\x01 not a pdf", b"%PDF-", b"not a pdf at all"])
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(IngestError) as info:
        parse_file(Path("bad.pdf"), data)
    message = str(info.value)
    assert message.startswith("corrupt PDF: ")
    assert "\n" not in message and "Traceback" not in message


def test_truncated_pdf() -> None:
    data = make_pdf([["Some text here."]])
    with pytest.raises(IngestError, match=r"^(corrupt PDF: |PDF has no extractable text)"):
        parse_file(Path("cut.pdf"), data[: len(data) // 3])
