"""The user's day on a small real corpus: ingest, search in every mode, ask, cite exact spans, abstain."""

from __future__ import annotations

import pydoc_data.topics
from collections.abc import Iterator
from pathlib import Path

import pytest

from tether._api import Tether
from tether.config import load_settings
from tether.contracts import Answer, SearchFilters
from tether.errors import IndexMissingError

TOPICS = ["for", "while", "break", "continue", "global", "assert", "lambda", "pass", "del", "return"]

PLANS_MD = """# Storage plans

Our storage plans differ in price and capacity.

| Plan | Monthly price | Storage |
|------|---------------|---------|
| Basic | $5 | 10 GB |
| Pro | $15 | 100 GB |
| Team | $40 | 1 TB |

All plans include encrypted backups.
"""

LIGHTHOUSES_HTML = """<!doctype html>
<html><head><title>Lighthouses of Norway</title></head><body>
<h1>Lighthouses of Norway</h1>
<p>Norway has many historic lighthouses along its rugged coast.</p>
<table>
<tr><th>Lighthouse</th><th>Built</th><th>Height</th></tr>
<tr><td>Lindesnes</td><td>1655</td><td>16 m</td></tr>
<tr><td>Svenner</td><td>1874</td><td>19 m</td></tr>
</table>
</body></html>
"""

ANSWERABLE = {
    "What does the break statement do in a loop?": "break.txt",
    "What does the global statement declare?": "global.txt",
    "What does the continue statement do in a loop?": "continue.txt",
}
UNANSWERABLE = [
    "What is the boiling point of mercury?",
    "Who won the 1998 football world cup?",
]


class Corpus:
    def __init__(self, root: Path, tether: Tether) -> None:
        self.root = root
        self.docs = root / "docs"
        self.config = root / "tether.yaml"
        self.tether = tether
        self.answers: dict[str, Answer] = {}

    def ask(self, question: str) -> Answer:
        if question not in self.answers:
            self.answers[question] = self.tether.ask(question)
        return self.answers[question]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    root = tmp_path_factory.mktemp("e2e")
    docs = root / "docs"
    docs.mkdir()
    for topic in TOPICS:
        (docs / f"{topic}.txt").write_text(pydoc_data.topics.topics[topic], encoding="utf-8")
    (docs / "plans.md").write_text(PLANS_MD, encoding="utf-8")
    (docs / "lighthouses.html").write_text(LIGHTHOUSES_HTML, encoding="utf-8")
    config = root / "tether.yaml"
    config.write_text("index:\n  path: .tether/index.db\n", encoding="utf-8")
    with Tether.open(config) as t:
        summary = t.ingest([docs])
        assert summary.added == len(TOPICS) + 2, summary.skipped
        c = Corpus(root, t)
        yield c
        for answer in c.answers.values():  # whatever was asked, every citation must be exact
            assert_citations_exact(t, answer)


def assert_citations_exact(t: Tether, answer: Answer) -> None:
    store = t.store()
    for citation in answer.citations:
        assert store.document_text(citation.doc_id)[citation.start : citation.end] == citation.quote
        meta = store.document(citation.doc_id)
        assert meta is not None and meta.path == citation.path


def name(path: str) -> str:
    return Path(path).name


@pytest.mark.parametrize("question", list(ANSWERABLE))
def test_an_answerable_question_is_answered_citing_the_right_file(corpus: Corpus, question: str) -> None:
    answer = corpus.ask(question)
    assert not answer.abstained, answer.reason
    assert answer.citations
    assert name(answer.citations[0].path) == ANSWERABLE[question]
    assert answer.support >= answer.threshold
    assert "[1]" in answer.text


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_an_unanswerable_question_abstains_with_not_in_the_documents(corpus: Corpus, question: str) -> None:
    answer = corpus.ask(question)
    assert answer.abstained
    assert answer.text == "Not in the documents."
    assert answer.citations == []
    assert answer.support < answer.threshold
    assert answer.reason


@pytest.mark.parametrize("question", list(ANSWERABLE))
def test_every_citation_quotes_its_document_exactly(corpus: Corpus, question: str) -> None:
    answer = corpus.ask(question)
    assert not answer.abstained
    store = corpus.tether.store()
    for n, citation in enumerate(answer.citations, 1):
        assert citation.n == n
        assert store.document_text(citation.doc_id)[citation.start : citation.end] == citation.quote
        assert " ".join(citation.quote.split()) in answer.text  # the answer text reflows whitespace
        assert f"[{n}]" in answer.text


def test_answer_carries_the_config_hash(corpus: Corpus) -> None:
    answer = corpus.ask(next(iter(ANSWERABLE)))
    assert answer.config_hash == corpus.tether.settings.config_hash
    assert answer.config_hash == load_settings(corpus.config).config_hash
    assert any(e.stage == "config" and e.detail["config_hash"] == answer.config_hash for e in answer.trace)


def test_abstention_carries_the_config_hash(corpus: Corpus) -> None:
    assert corpus.ask(UNANSWERABLE[0]).config_hash == corpus.tether.settings.config_hash


@pytest.mark.parametrize(
    ("mode", "query", "expected"),
    [
        ("lexical", "lambda expressions anonymous functions", "lambda.txt"),
        ("dense", "creating small anonymous functions inline", "lambda.txt"),
        ("hybrid", "lambda expressions anonymous functions", "lambda.txt"),
        ("lexical", "Lindesnes lighthouse", "lighthouses.html"),
        ("dense", "historic lighthouses on the Norwegian coast", "lighthouses.html"),
        ("hybrid", "monthly price of the storage plans", "plans.md"),
        ("hybrid", "the assert statement for debugging assertions", "assert.txt"),
    ],
)
def test_search_returns_the_expected_file_first(corpus: Corpus, mode: str, query: str, expected: str) -> None:
    hits = corpus.tether.search(query, 5, mode=mode)  # type: ignore[arg-type]
    assert hits, f"{mode} found nothing"
    assert name(hits[0].path) == expected, [name(h.path) for h in hits]
    rank_by = [h.score if h.rerank_score is None else h.rerank_score for h in hits]
    assert rank_by == sorted(rank_by, reverse=True)
    assert (mode == "hybrid") == all(h.rerank_score is not None for h in hits)  # rerank is on by default


def test_search_respects_k(corpus: Corpus) -> None:
    assert len(corpus.tether.search("statement", 3, mode="hybrid")) == 3


def test_search_hits_are_exact_spans_of_their_documents(corpus: Corpus) -> None:
    store = corpus.tether.store()
    for hit in corpus.tether.search("loop statement", 5):
        assert store.document_text(hit.doc_id)[hit.start : hit.end] == hit.text


def test_search_path_filter_limits_the_files(corpus: Corpus) -> None:
    hits = corpus.tether.search("statement", 5, filters=SearchFilters(path_glob="*/break.txt"))
    assert hits and {name(h.path) for h in hits} == {"break.txt"}


def test_markdown_table_survives_as_a_pipe_table_in_a_chunk(corpus: Corpus) -> None:
    hits = corpus.tether.search("Pro plan storage price", 3, mode="lexical")
    table = next(h for h in hits if name(h.path) == "plans.md")
    assert "| Plan | Monthly price | Storage |\n|------|---------------|---------|\n" in table.text
    assert "| Pro | $15 | 100 GB |" in table.text


def test_html_table_becomes_a_pipe_table_in_a_chunk(corpus: Corpus) -> None:
    hits = corpus.tether.search("Svenner lighthouse built", 3, mode="lexical")
    table = next(h for h in hits if name(h.path) == "lighthouses.html")
    assert "| Svenner | 1874 | 19 m |" in table.text


def test_stats_report_what_was_ingested(corpus: Corpus) -> None:
    stats = corpus.tether.stats()
    assert stats.documents == len(TOPICS) + 2
    assert stats.chunks >= stats.documents
    assert stats.embedding_model is not None and stats.dim == 384


def test_ask_on_an_empty_index_says_to_run_tether_ingest(tmp_path: Path) -> None:
    config = tmp_path / "tether.yaml"
    config.write_text("index:\n  path: index.db\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    with Tether.open(config) as t:
        summary = t.ingest([tmp_path / "empty"])
        assert summary.added == 0
        assert (tmp_path / "index.db").exists()
        with pytest.raises(IndexMissingError, match="run `tether ingest"):
            t.ask("What does the break statement do?")


def test_ask_on_a_missing_index_says_to_run_tether_ingest(tmp_path: Path) -> None:
    config = tmp_path / "tether.yaml"
    config.write_text("index:\n  path: nothing/here.db\n", encoding="utf-8")
    with Tether.open(config) as t, pytest.raises(IndexMissingError, match="run `tether ingest"):
        t.ask("What does the break statement do?")
    assert not (tmp_path / "nothing" / "here.db").exists()


def test_search_on_a_missing_index_says_to_run_tether_ingest(tmp_path: Path) -> None:
    config = tmp_path / "tether.yaml"
    config.write_text("index:\n  path: nothing/here.db\n", encoding="utf-8")
    with Tether.open(config) as t, pytest.raises(IndexMissingError, match="run `tether ingest"):
        t.search("break")


def test_answers_go_to_the_audit_log_when_enabled(tmp_path: Path) -> None:
    from tether import Tether
    from tether.guard import verify_file

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ferry.txt").write_text("The Orinoco ferry leaves the north pier at seven every morning.\n")
    (tmp_path / "tether.yaml").write_text("audit: {enabled: true}\n")
    with Tether.open(tmp_path / "tether.yaml") as t:
        t.ingest([tmp_path / "docs"])
        t.ask("When does the Orinoco ferry leave?")
        t.ask("How do I bake bread?")
    report = verify_file(tmp_path / ".tether" / "audit.db")
    assert report.ok and report.entries == 2


def test_a_policy_withholds_answers_naming_the_rule_and_logs_the_refusal(tmp_path: Path) -> None:
    from tether import Tether
    from tether.guard import AuditLog

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pay.txt").write_text("Salaries are paid on the 25th of each month by bank transfer.\n")
    (tmp_path / "policy.yaml").write_text(
        "version: 2\ndefault: allow\nrules:\n"
        "  - id: salary-questions-need-hr\n    on: answer\n    when: {text_matches: salar}\n"
        "    action: require_approval\n"
        "  - id: secret-data\n    on: answer\n    when: {classification: [secret]}\n    action: deny\n"
    )
    (tmp_path / "tether.yaml").write_text("audit: {enabled: true}\npolicy: {path: policy.yaml}\n")
    with Tether.open(tmp_path / "tether.yaml") as t:
        t.ingest([tmp_path / "docs"])
        held = t.ask("When are salaries paid?")
        denied = t.ask("When is the transfer made?", classification="secret")
        allowed = t.ask("When is the transfer made?")
    assert held.abstained and "salary-questions-need-hr" in held.reason and held.text.startswith("Withheld")
    assert denied.abstained and "secret-data" in denied.reason
    assert "Withheld" not in allowed.text
    kinds = [e.kind for e in AuditLog.open(tmp_path / ".tether" / "audit.db").entries()]
    assert kinds == ["refusal", "refusal", "answer"]
