from pathlib import Path

import pytest

from tether.contracts import Chunk, ParsedDocument
from tether.ingest._chunk import chunk_document
from tether.ingest.parsers import parse_file
from tether.text import estimate_tokens


def sentence(i: int) -> str:
    return f"Sentence number {i} talks about topic {i % 7} in some detail."


def check_invariants(doc: ParsedDocument, chunks: list[Chunk], max_tokens: int) -> None:
    assert [c.ord for c in chunks] == list(range(len(chunks)))
    covered = [False] * len(doc.text)
    prev_end = -1
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.end > prev_end
        prev_end = chunk.end
        if estimate_tokens(chunk.text) > max_tokens:
            assert len(chunk.text.split()) == 1, f"over budget and splittable: {chunk.text!r}"
        for i in range(chunk.start, chunk.end):
            covered[i] = True
    for block in doc.blocks:
        for i in range(block.start, block.end):
            assert covered[i] or doc.text[i].isspace(), f"char {i} of {block} in no chunk"


def md_doc(source: str) -> ParsedDocument:
    return parse_file(Path("doc.md"), source.encode())


def test_small_doc_headings_start_chunks_and_stay_with_text() -> None:
    doc = md_doc("# A\n\nIntro text.\n\n## B\n\n### C\n\nText of C.\n\n# D\n\nText of D.\n")
    chunks = chunk_document(doc, 200, 0)
    check_invariants(doc, chunks, 200)
    assert [c.text for c in chunks] == [
        "# A\n\nIntro text.",
        "## B\n\n### C\n\nText of C.",
        "# D\n\nText of D.",
    ]
    assert [c.section for c in chunks] == [["A"], ["A", "B", "C"], ["D"]]
    assert chunks[1].kinds == ["heading", "paragraph"]


def test_packs_blocks_up_to_budget() -> None:
    paragraphs = [" ".join(sentence(i * 3 + k) for k in range(3)) for i in range(12)]
    doc = md_doc("# Title\n\n" + "\n\n".join(paragraphs) + "\n")
    per_para = estimate_tokens(paragraphs[0])
    chunks = chunk_document(doc, per_para * 3 + 5, 0)
    check_invariants(doc, chunks, per_para * 3 + 5)
    assert 4 <= len(chunks) <= 6
    # no paragraph is split when every paragraph fits
    for para in paragraphs:
        assert any(para in c.text for c in chunks)


def test_over_budget_paragraph_split_at_sentences_with_overlap() -> None:
    para = " ".join(sentence(i) for i in range(40))
    doc = md_doc("# Long\n\n" + para + "\n")
    chunks = chunk_document(doc, 60, 0)
    check_invariants(doc, chunks, 60)
    assert len(chunks) > 3
    for chunk in chunks[1:]:
        assert chunk.text.startswith("Sentence number") and chunk.text.endswith(".")
    # no overlap when 0: chunks are disjoint
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))

    overlapped = chunk_document(doc, 60, 20)
    check_invariants(doc, overlapped, 60)
    assert all(b.start < a.end for a, b in zip(overlapped, overlapped[1:], strict=False))
    for a, b in zip(overlapped, overlapped[1:], strict=False):
        repeated = doc.text[b.start : a.end]
        assert repeated.startswith("Sentence number")
        assert estimate_tokens(repeated) <= 20
    assert all(c.section == ["Long"] for c in overlapped)


def test_no_overlap_across_headings_or_top_sections() -> None:
    body = " ".join(sentence(i) for i in range(8))
    doc = md_doc(f"# One\n\n{body}\n\n# Two\n\n{body}\n")
    chunks = chunk_document(doc, 500, 50)
    assert [c.text.splitlines()[0] for c in chunks] == ["# One", "# Two"]
    assert chunks[0].end < chunks[1].start


def test_top_level_sections_not_mixed_even_without_body() -> None:
    doc = md_doc("Preamble text.\n\n# A\n\n# B\n\nB text.\n")
    chunks = chunk_document(doc, 500, 0)
    assert [c.text for c in chunks] == ["Preamble text.", "# A", "# B\n\nB text."]
    assert [c.section for c in chunks] == [[], ["A"], ["B"]]


def test_table_not_split_when_it_fits_and_split_between_rows_otherwise() -> None:
    rows = "\n".join(f"| row {i} | value {i} |" for i in range(30))
    table = "| Name | Value |\n|------|-------|\n" + rows
    intro = " ".join(sentence(i) for i in range(6))
    doc = md_doc(f"# T\n\n{intro}\n\n{table}\n\nAfter the table.\n")
    table_tokens = estimate_tokens(table)
    budget = table_tokens + 5
    chunks = chunk_document(doc, budget, 0)
    check_invariants(doc, chunks, budget)
    table_chunks = [c for c in chunks if "table" in c.kinds]
    assert len(table_chunks) == 1 and table in table_chunks[0].text  # not split
    assert any("table" in c.kinds for c in chunks)

    small = chunk_document(doc, 60, 0)
    check_invariants(doc, small, 60)
    table_chunks = [c for c in small if "table" in c.kinds]
    assert len(table_chunks) > 1
    for c in table_chunks:
        lines = [ln for ln in c.text.splitlines() if ln.startswith("|")]
        assert all(ln.endswith("|") for ln in lines), "a row was cut"


def test_html_table_stays_pipe_table_in_chunks() -> None:
    html = (
        "<h1>Prices</h1><p>Our prices.</p><table><tr><th>Item</th><th>Cost</th></tr>"
        "<tr><td>Tea</td><td>2</td></tr><tr><td>Cake</td><td>4</td></tr></table>"
    )
    doc = parse_file(Path("p.html"), html.encode())
    chunks = chunk_document(doc, 200, 0)
    assert len(chunks) == 1
    assert "| Item | Cost |\n| --- | --- |\n| Tea | 2 |\n| Cake | 4 |" in chunks[0].text
    assert chunks[0].kinds == ["heading", "paragraph", "table"]


def test_single_huge_sentence_split_at_words_and_unsplittable_word() -> None:
    words = " ".join(f"word{i}" for i in range(300))
    blob = "x" * 3000
    doc = md_doc(f"{words}\n\n{blob}\n")
    chunks = chunk_document(doc, 50, 10)
    check_invariants(doc, chunks, 50)
    assert chunks[-1].text == blob
    assert all(estimate_tokens(c.text) <= 50 for c in chunks[:-1])


def test_heading_kept_with_following_oversized_paragraph() -> None:
    para = " ".join(sentence(i) for i in range(30))
    doc = md_doc(f"# Head\n\n{para}\n")
    chunks = chunk_document(doc, 40, 0)
    check_invariants(doc, chunks, 40)
    assert chunks[0].text.startswith("# Head\n\nSentence number 0")


def test_pydoc_reference_text_chunks() -> None:
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in ("for", "while", "typesseq", "try", "class"))
    doc = parse_file(Path("ref.rst"), text.encode())
    for max_tokens, overlap in ((64, 0), (128, 32), (256, 64)):
        chunks = chunk_document(doc, max_tokens, overlap)
        check_invariants(doc, chunks, max_tokens)
        for chunk in chunks:
            assert chunk.section and chunk.kinds


def test_bad_arguments() -> None:
    doc = md_doc("text\n")
    with pytest.raises(ValueError):
        chunk_document(doc, 0, 0)
    with pytest.raises(ValueError):
        chunk_document(doc, 10, -1)
