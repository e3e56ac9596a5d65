"""Eval cases load from YAML as written, and bad cases are rejected naming file, case and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.errors import DataError
from tether.evals import load_cases

BRIEF_CASE = """\
id: "expense_policy_refund_window"
input:
  user: "Can I get reimbursed for a hotel I booked last month?"
  context_docs:
    - "Company Travel Policy v3.2 ... Reimbursements must be submitted within 30 days ..."
expected:
  must_include:
    - "30 days"
  must_cite:
    - "Company Travel Policy v3.2"
  must_not_include:
    - "guarantee"
scoring:
  faithfulness: llm_judge
  format_valid: json_schema
  refusal_behavior: rule_based
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_the_founding_brief_case_loads_exactly_as_written(tmp_path: Path) -> None:
    (case,) = load_cases(write(tmp_path, "brief.yaml", BRIEF_CASE))
    assert case.id == "expense_policy_refund_window"
    assert case.input.context_docs[0].startswith("Company Travel Policy v3.2")
    assert case.expected.must_include == ["30 days"]
    assert case.expected.must_cite == ["Company Travel Policy v3.2"]
    assert case.expected.must_not_include == ["guarantee"]
    assert case.scoring == {
        "faithfulness": "llm_judge",
        "format_valid": "json_schema",
        "refusal_behavior": "rule_based",
    }
    assert [s.user for s in case.steps()] == ["Can I get reimbursed for a hotel I booked last month?"]


def test_a_folder_loads_lists_and_multi_turn_cases_and_the_abstain_shorthand(tmp_path: Path) -> None:
    write(tmp_path, "a/one.yaml", BRIEF_CASE)
    write(
        tmp_path,
        "a/b/more.yml",
        """
- id: off_topic
  input: {user: "How do I bake bread?"}
  expect_abstain: true
  tags: [unanswerable]
- id: chat
  input:
    turns:
      - user: "What does break do?"
        expected: {must_include: ["loop"]}
      - user: "And continue?"
""",
    )
    cases = {c.id: c for c in load_cases(tmp_path / "a")}
    assert set(cases) == {"expense_policy_refund_window", "off_topic", "chat"}
    assert cases["off_topic"].expected.expect_abstain is True
    assert [s.user for s in cases["chat"].steps()] == ["What does break do?", "And continue?"]
    assert cases["chat"].steps()[0].expected.must_include == ["loop"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("id: x\ninput: {user: q}\nexpected: {must_inclde: [a]}\n", r"case x: expected\.must_inclde: unknown field"),
        ("id: x\ninput: {user: q}\nscoring: {faith: llm_jugde}\n", r"case x: .*scoring\.faith: unknown scorer kind"),
        ("id: x\ninput: {context_docs: [a]}\n", r"case x: input: give exactly one of 'user'"),
        ("input: {user: q}\n", r"case #1: id: Field required"),
        ("id: x\ninput: {user: q}\nexpected: {must_include: 5}\n", r"case x: expected\.must_include: "),
    ],
)
def test_an_invalid_case_names_the_file_the_case_and_the_field(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "bad.yaml", body)
    with pytest.raises(DataError, match=message) as e:
        load_cases(path)
    assert str(path) in str(e.value)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"bad\.yaml: not valid YAML at line 3"):
        load_cases(write(tmp_path, "bad.yaml", "id: x\ninput: {user: [unclosed\n"))


def test_duplicate_ids_across_files_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, "d/a.yaml", "id: same\ninput: {user: q}\nexpect_abstain: true\n")
    write(tmp_path, "d/b.yaml", "id: same\ninput: {user: r}\nexpect_abstain: true\n")
    with pytest.raises(DataError, match="duplicate id"):
        load_cases(tmp_path / "d")


def test_an_empty_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no eval cases"):
        load_cases(tmp_path / "empty")
