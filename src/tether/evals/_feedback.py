"""Feedback becomes tests: thumbs-down records -> draft eval cases for a person to review."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml
from pydantic import ValidationError

from tether.contracts import Feedback
from tether.errors import DataError
from tether.text import split_sentences


def load_feedback(path: str | Path) -> list[Feedback]:
    """Read feedback records from a JSON Lines file (one record a line)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p} does not exist")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(Feedback.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise DataError(f"{p}:{n}: not a feedback record ({msg})") from None
    return out


def _case_id(f: Feedback) -> str:
    words = re.findall(r"[a-z0-9]+", f.question.lower())[:6]
    digest = hashlib.sha256(f.question.encode()).hexdigest()[:6]
    return "feedback_" + "_".join(words) + "_" + digest


def draft_cases(records: list[Feedback]) -> list[dict[str, object]]:
    """One draft case per thumbs-down (duplicates of a question merged), tagged for review."""
    drafts: dict[str, dict[str, object]] = {}
    for f in records:
        if f.rating != "down":
            continue
        expected: dict[str, object] = {}
        not_found = f.answer.strip().lower().startswith("not in the documents")
        if f.expected_abstain:
            expected["expect_abstain"] = True
        elif f.correction:
            expected["must_include"] = [f.correction.strip()]
            expected["expect_abstain"] = False
        elif not_found:
            expected["expect_abstain"] = False  # the user says it is in the documents
        if f.answer and not not_found and not f.expected_abstain:
            spans = split_sentences(f.answer)
            first = f.answer[spans[0][0] : spans[0][1]] if spans else f.answer
            expected["must_not_include"] = [re.sub(r"\s*\[\d+\]\s*$", "", first).strip()]
        case: dict[str, object] = {
            "id": _case_id(f),
            "tags": ["from_feedback", "needs_review"],
            "input": {"user": f.question},
            "expected": expected,
            "review_note": f"thumbs-down: {f.reason or '(no reason given)'}"
            + (f"; config {f.config_hash}" if f.config_hash else ""),
        }
        drafts.setdefault(str(case["id"]), case)
    return list(drafts.values())


def write_drafts(cases: list[dict[str, object]], path: Path) -> None:
    """Write drafts as YAML. The ``review_note`` keys must be removed once a person has checked a case."""
    header = (
        "# Draft eval cases made from thumbs-down feedback by `tether eval from-feedback`.\n"
        "# Review each: fix the expectations, then delete its review_note (cases with one do not load).\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(cases, sort_keys=False, allow_unicode=True), encoding="utf-8")
