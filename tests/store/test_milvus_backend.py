"""`index.backend: milvus` through Tether itself: the same eval cases pass on both backends with the same answers
and exact citations, tenants stay apart, and what Milvus cannot do here is refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pymilvus", reason="index.backend: milvus needs the milvus extra (pymilvus, milvus-lite)")
pytest.importorskip("milvus_lite", reason="index.backend: milvus needs the milvus extra (pymilvus, milvus-lite)")

from tether import Tether  # noqa: E402
from tether.config import default_yaml  # noqa: E402
from tether.errors import ConfigError  # noqa: E402
from tether.evals import EvalRunner, EvalStore, RunOptions, load_cases  # noqa: E402

DOCS = {
    "travel.md": "# Travel\n\nThe daily meal allowance is 35 euros in Porto and 40 euros in Lisbon.\n\n"
    "Train tickets are booked through the travel desk at least five days ahead.\n",
    "leave.md": "# Leave\n\nEmployees receive 25 days of annual leave per calendar year.\n\n"
    "Unused leave of up to five days may be carried into the next year.\n",
    "it.md": "# IT\n\nLaptops are replaced every four years by the IT service desk.\n\n"
    "Passwords must be changed every 90 days and must hold at least 12 characters.\n",
}
CASES = """
- {id: meal, input: {user: "What is the daily meal allowance in Porto?"}, expected: {must_include: [35 euros]}}
- {id: train, input: {user: "How far ahead must train tickets be booked?"}, expected: {must_include: [five days]}}
- {id: leave, input: {user: "How many days of annual leave do employees receive?"}, expected: {must_include: [25 days]}}
- {id: laptop, input: {user: "How often are laptops replaced?"}, expected: {must_include: [four years]}}
- {id: password, input: {user: "How many characters must a password hold?"}, expected: {must_include: [12 characters]}}
- {id: airline, input: {user: "Which airline flies to Porto most often?"}, expect_abstain: true}
- {id: parking, input: {user: "Where can employees park their cars?"}, expect_abstain: true}
"""


def _project(root: Path, backend: str, tenants: str = "{}") -> Tether:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text, encoding="utf-8")
    yaml = default_yaml().replace("  backend: sqlite ", f"  backend: {backend} ", 1)
    yaml = yaml.replace("\ntenants: {}", f"\ntenants: {tenants}")
    (root / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    assert t.settings.index.backend == backend
    return t


def test_the_same_eval_cases_pass_on_both_backends_with_the_same_answers(tmp_path: Path) -> None:
    (tmp_path / "cases.yaml").write_text(CASES, encoding="utf-8")
    cases = load_cases(tmp_path / "cases.yaml")
    runs = {}
    for backend in ("sqlite", "milvus"):
        t = _project(tmp_path / backend, backend)
        t.ingest([tmp_path / backend / "docs"])
        store = EvalStore(tmp_path / backend / "evals.db")
        runs[backend] = EvalRunner(t, store, RunOptions(use_cache=False)).run(cases, "cases.yaml")
        for r in runs[backend].results:  # every quote is the stored text at its offsets
            for turn in r.turns:
                assert turn.answer is not None
                for c in turn.answer.citations:
                    assert t.store().document_text(c.doc_id)[c.start : c.end] == c.quote
        store.close()
        t.close()
    assert (tmp_path / "milvus" / ".tether" / "index.milvus.db").is_dir()
    assert runs["sqlite"].summary.passed == len(cases), [r.explain() for r in runs["sqlite"].results if not r.passed]
    answers = {
        b: {r.case_id: (r.passed, r.turns[0].answer.text if r.turns[0].answer else None) for r in run.results}
        for b, run in runs.items()
    }
    assert answers["milvus"] == answers["sqlite"]


def test_tenants_own_their_uploads_on_milvus(tmp_path: Path) -> None:
    t = _project(tmp_path, "milvus", "\n  acme: {sources: ['docs/*']}\n  globex: {sources: ['docs/*']}\n")
    t.ingest([tmp_path / "docs"])
    own = tmp_path / "acme-secret.md"
    own.write_text("# Bonus\n\nThe acme bonus pool is 7 percent of profit.\n", encoding="utf-8")
    t.ingest([own], tenant="acme")
    q = "How large is the bonus pool?"
    assert any(h.path.endswith("acme-secret.md") for h in t.search(q, tenant="acme"))
    assert not any(h.path.endswith("acme-secret.md") for h in t.search(q, tenant="globex"))
    assert t.ask(q, tenant="globex").abstained


def test_a_server_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    yaml = default_yaml().replace("  backend: sqlite ", "  backend: milvus ", 1)
    yaml = yaml.replace("  uri: null ", "  uri: http://127.0.0.1:9 ", 1)
    (tmp_path / "tether.yaml").write_text(yaml, encoding="utf-8")
    t = Tether.open(tmp_path / "tether.yaml")
    with pytest.raises(Exception) as got:
        t.store()
    assert "127.0.0.1:9" in str(got.value) and "Traceback" not in str(got.value)
    from tether.errors import TetherError

    assert isinstance(got.value, TetherError)


def test_red_team_suites_refuse_a_milvus_index(tmp_path: Path) -> None:
    from tether.redteam import packaged_suites, run_redteam

    t = _project(tmp_path, "milvus")
    cases = [c for s in packaged_suites() for c in s.cases][:1]
    with pytest.raises(ConfigError, match="scratch copy of a SQLite index"):
        run_redteam(t, cases)
