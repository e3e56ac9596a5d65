"""Offline follow-up rewriting: the cases here were the tuning set of the rules (bench/memory_rewrite.py holds
the held-out ones)."""

from __future__ import annotations

import re

import pytest

from tether.memory import Rewrite, Turn, rewrite_followup


def _history(*questions: str) -> list[Turn]:
    turns: list[Turn] = []
    for q in questions:
        turns += [Turn(role="user", text=q), Turn(role="assistant", text="Here is what the documents say.")]
    return turns


def _has(text: str, phrase: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(phrase.lower()) + r"(?![\w-])", text.lower()) is not None


# previous (standalone) question, follow-up, words the rewrite must hold, words it must not hold
FOLLOWUPS: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = [
    ("What is the daily meal allowance in Lisbon?", "and in Porto?", ("meal allowance", "Porto"), ("Lisbon",)),
    ("How many vacation days do employees get?", "what about contractors?", ("vacation days", "contractors"), ()),
    (
        "Is remote work allowed for full-time employees?",
        "how about for part-time staff?",
        ("remote work", "part-time staff"),
        ("full-time",),
    ),
    ("How do I submit my expense report?", "and the deadline?", ("deadline", "expense report"), ()),
    ("What is the remote work policy?", "when was it introduced?", ("remote work policy", "introduced"), ()),
    (
        "Is the hybrid work policy mandatory for managers?",
        "does that apply to them too?",
        ("hybrid work policy", "managers", "apply"),
        (),
    ),
    (
        "What arguments does the get_user function take?",
        "what does it return?",
        ("get_user", "return"),
        ("arguments",),
    ),
    (
        "How many vacation days do employees get?",
        "and how many days can I carry over?",
        ("vacation days", "carry over"),
        (),
    ),
    ("How do I request parental leave?", "how do I apply?", ("parental leave", "apply"), ()),
    ("How do I request parental leave?", "and sick leave?", ("sick leave", "request"), ("parental",)),
    ("Who approves expense reports?", "and travel requests?", ("travel requests", "approves"), ("expense",)),
    ("What was the revenue of the Iberia region in 2022?", "and 2023?", ("revenue", "Iberia", "2023"), ("2022",)),
    ("What were the Q3 results for the cloud division?", "and Q4?", ("results", "cloud division", "Q4"), ("Q3",)),
    ("Can I expense meals over 50 euros?", "what about 100?", ("expense meals", "100"), ("50",)),
    (
        "What is the parking policy at the Lisbon office?",
        "and the Porto office?",
        ("parking policy", "Porto office"),
        ("Lisbon",),
    ),
    ("What is the parking policy at the Lisbon office?", "and Porto?", ("parking policy", "Porto"), ("Lisbon",)),
    ("How many vacation days do employees get?", "do contractors get them too?", ("vacation days", "contractors"), ()),
    ("What is the meal allowance in Lisbon?", "when was it introduced?", ("meal allowance", "introduced"), ()),
    ("What is the meal allowance in Lisbon?", "is there a limit?", ("limit", "meal allowance", "Lisbon"), ()),
    ("Does the travel policy cover trains?", "and taxis?", ("travel policy", "cover", "taxis"), ("trains",)),
    ("What is the notice period for employees?", "and for contractors?", ("notice period", "contractors"), ()),
    ("Who is the head of HR?", "what is her email?", ("head of HR", "email"), ()),
    ("What is the dress code in the Berlin office?", "who works there?", ("works", "Berlin office"), ()),
    (
        "Which VPN client should I install on Windows laptops?",
        "and on macOS?",
        ("VPN client", "macOS"),
        ("Windows",),
    ),
    ("How long is the probation period for new hires?", "and for interns?", ("probation period", "interns"), ()),
    (
        "What is the company contribution to the pension plan in 2024?",
        "and in 2025?",
        ("pension plan", "2025"),
        ("2024",),
    ),
    ("When is the open enrollment period for health insurance?", "how do I sign up?", ("health insurance",), ()),
    ("Is the cafeteria open on Saturdays?", "what about Sundays?", ("cafeteria", "Sundays"), ("Saturdays",)),
    ("What does the deploy.sh script do?", "who maintains it?", ("deploy.sh", "maintains"), ()),
    ("How much is the relocation bonus for engineers?", "and for sales staff?", ("relocation bonus", "sales"), ()),
    ("What is the maximum hotel rate in Paris?", "what about Berlin?", ("hotel rate", "Berlin"), ("Paris",)),
    ("Who approves overtime for warehouse staff?", "and the limit?", ("limit", "overtime"), ()),
    ("What is the data retention policy for customer emails?", "and for chat logs?", ("retention", "chat logs"), ()),
    ("Do interns get a laptop?", "and a phone?", ("phone", "interns"), ("laptop",)),
    ("What training budget do team leads get?", "is it the same for directors?", ("training budget", "directors"), ()),
    ("What is the password policy for admin accounts?", "how often do they expire?", ("admin accounts", "expire"), ()),
    ("How do I connect to the staging database?", "and production?", ("production database",), ("staging",)),
    ("How much does the company pay for glasses?", "what about contact lenses?", ("contact lenses", "pay"), ()),
    ("What is the cost of the premium health plan?", "is my family covered by it?", ("premium health plan",), ()),
    ("What happens to my stock options if I leave?", "and if I'm laid off?", ("stock options", "laid off"), ()),
    ("Where is the fire assembly point for building A?", "and building B?", ("assembly point", "building B"), ()),
    ("What is the training budget for this year?", "what about next year?", ("training budget", "next year"), ()),
    (
        "Is the security training mandatory for engineers?",
        "is that mandatory for contractors too?",
        ("security training", "contractors"),
        ("engineers",),
    ),
    ("What is the meal allowance in Lisbon?", "Is the same true for Porto?", ("meal allowance", "Porto"), ()),
    ("What languages does the support team cover?", "what are their hours?", ("support team", "hours"), ()),
    ("What is the SLA for P1 tickets?", "and P2?", ("SLA", "P2 tickets"), ("P1",)),
    ("How do I set up two-factor authentication?", "and if I lose my phone?", ("two-factor", "lose my phone"), ()),
]


@pytest.mark.parametrize(("previous", "followup", "required", "forbidden"), FOLLOWUPS)
def test_followup_is_rewritten(
    previous: str, followup: str, required: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    r = rewrite_followup(_history(previous), followup)
    assert r.rewritten, r.reason
    assert r.method == "offline"
    assert r.original == followup
    missing = [w for w in required if not _has(r.question, w)]
    present = [w for w in forbidden if _has(r.question, w)]
    assert not missing and not present, f"{r.question!r}: missing {missing}, forbidden {present}"
    assert r.reason and "\n" not in r.reason
    assert r.question.endswith("?")


def test_table_is_large_enough() -> None:
    assert len(FOLLOWUPS) >= 30
    assert len(STANDALONE) >= 15


STANDALONE = [
    "How do I reset my VPN password?",
    "What is the parental leave policy in Germany?",
    "Is it possible to carry over unused vacation days?",
    "How long does it take to get reimbursed for travel expenses?",
    "Who approves expense reports over 500 euros?",
    "Are there any restrictions on using personal devices for work?",
    "Can contractors access the internal wiki?",
    "When does the open enrollment period for health insurance end?",
    "What does the deploy script do when a migration fails?",
    "How do I request a new laptop?",
    "Which holidays are observed in the Porto office?",
    "Do employees keep their laptops after leaving the company?",
    "Is the cafeteria open on weekends?",
    "What is the maximum hotel rate for business trips to London?",
    "Where can I find the code of conduct?",
    "What happens if I miss the timesheet deadline?",
    "Who is my manager?",
    "Can contractors work remotely?",
    "And how does the bonus scheme work for sales staff?",
    "Is it true that interns get a meal allowance?",
    "How do I configure SSO for the expense app?",
    "Is there a limit on the number of monitors I can order?",
    "What are their obligations under GDPR as data processors?",
    "Who should I contact if my laptop is stolen?",
    "What does it cost to replace a lost badge?",
]


@pytest.mark.parametrize("question", STANDALONE)
def test_standalone_question_is_left_alone(question: str) -> None:
    history = _history("What is the daily meal allowance in Lisbon?", "How many vacation days do employees get?")
    r = rewrite_followup(history, question)
    assert r == Rewrite(question=question, original=question, rewritten=False, method="none", reason=r.reason)
    assert r.reason == "the question stands alone"


CHAINS: list[tuple[str, list[tuple[str, tuple[str, ...], tuple[str, ...]]]]] = [
    (
        "What is the daily meal allowance in Lisbon?",
        [
            ("and in Porto?", ("meal allowance", "Porto"), ("Lisbon",)),
            ("what about for contractors?", ("meal allowance", "Porto", "contractors"), ("Lisbon",)),
            ("when was it introduced?", ("meal allowance", "introduced"), ("Lisbon",)),
        ],
    ),
    (
        "How many vacation days do employees get?",
        [
            ("what about contractors?", ("vacation days", "contractors"), ("employees",)),
            ("and interns?", ("vacation days", "interns"), ("contractors", "employees")),
            ("can they carry them over?", ("interns", "vacation days", "carry"), ()),
        ],
    ),
    (
        "What were the Q3 results for the cloud division?",
        [
            ("and Q4?", ("results", "cloud division", "Q4"), ("Q3",)),
            ("what about the storage division?", ("results", "Q4", "storage division"), ("cloud", "Q3")),
            ("who presented them?", ("results", "presented"), ()),
        ],
    ),
]


@pytest.mark.parametrize(("first", "steps"), CHAINS)
def test_chain_of_followups_with_rewritten_history(
    first: str, steps: list[tuple[str, tuple[str, ...], tuple[str, ...]]]
) -> None:
    history = _history(first)
    for followup, required, forbidden in steps:
        r = rewrite_followup(history, followup)
        assert r.rewritten, (followup, r.reason)
        assert all(_has(r.question, w) for w in required), r.question
        assert not any(_has(r.question, w) for w in forbidden), r.question
        history += [Turn(role="user", text=r.question), Turn(role="assistant", text="...")]


def test_raw_history_is_resolved_in_order() -> None:
    """A caller that stored the raw follow-ups still gets the chain resolved."""
    history = _history("What is the daily meal allowance in Lisbon?", "and in Porto?")
    r = rewrite_followup(history, "what about for contractors?")
    assert _has(r.question, "Porto") and _has(r.question, "contractors") and not _has(r.question, "Lisbon")


def test_current_question_already_in_history_is_skipped() -> None:
    history = [*_history("How many vacation days do employees get?"), Turn(role="user", text="and interns?")]
    r = rewrite_followup(history, "and interns?")
    assert _has(r.question, "vacation days") and _has(r.question, "interns")


def test_assistant_turns_are_not_questions() -> None:
    history = [Turn(role="assistant", text="What is the meal allowance in Lisbon?")]
    r = rewrite_followup(history, "and in Porto?")
    assert not r.rewritten and r.method == "none"


def test_empty_history_returns_unchanged() -> None:
    r = rewrite_followup([], "and in Porto?")
    assert r == Rewrite(
        question="and in Porto?",
        original="and in Porto?",
        rewritten=False,
        method="none",
        reason="no earlier user question to resolve against",
    )


def test_reason_names_the_slot() -> None:
    r = rewrite_followup(_history("What is the daily meal allowance in Lisbon?"), "and in Porto?")
    assert "'and in Porto?'" in r.reason and "Lisbon" in r.reason


@pytest.mark.parametrize(
    "question",
    [
        "",
        "   ",
        "?",
        "?!...",
        "and",
        "and?",
        "it",
        "what about it?",
        "und in München?",
        "и в Порту?",
        "ポルトでは？",
        "x" * 20_000,
        "and in Porto? " * 500,
        "\x00\x01 in \u200b Porto",
        "'; DROP TABLE facts; --",
        "it it it it they them that this",
    ],
)
def test_odd_input_never_raises(question: str) -> None:
    for history in ([], _history("What is the daily meal allowance in Lisbon?"), _history("", "?", "x" * 5000)):
        r = rewrite_followup(history, question)
        assert isinstance(r.question, str) and r.original == question
        if not r.rewritten:
            assert r.question == question


def test_pasted_text_is_not_an_anchor() -> None:
    r = rewrite_followup(_history("What is the meal allowance in Lisbon?", "Lisbon. " * 400), "and in Porto?")
    assert not r.rewritten


def test_odd_history_never_raises() -> None:
    for previous in ["", "?", "Lisbon", "it", "the the the", "x" * 10_000, "Porto Lisbon 2023 Q3 50 employees"]:
        r = rewrite_followup(_history(previous), "and in Porto?")
        assert isinstance(r.question, str)


def test_wrong_types_raise_type_error_naming_the_argument() -> None:
    with pytest.raises(TypeError, match="question"):
        rewrite_followup([], 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="question"):
        rewrite_followup([], None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="history"):
        rewrite_followup("What is it?", "and in Porto?")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="history"):
        rewrite_followup(None, "and in Porto?")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"history\[0\]"):
        rewrite_followup([{"role": "user", "text": "hi"}], "and in Porto?")  # type: ignore[list-item]


def test_deterministic() -> None:
    history = _history("How many vacation days do employees get?")
    assert len({rewrite_followup(history, "what about contractors?").question for _ in range(5)}) == 1
