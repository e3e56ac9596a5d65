"""Eval cases: YAML files validated into typed records; errors name the file, the case and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tether.errors import DataError

SCORER_KINDS = ("llm_judge", "json_schema", "rule_based")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expected(_Strict):
    """What a good answer does. Every listed check is scored; absent checks are not."""

    must_include: list[str] = Field(default_factory=list, description="substrings the answer must contain")
    must_not_include: list[str] = Field(default_factory=list, description="substrings it must not contain")
    must_cite: list[str] = Field(
        default_factory=list, description="each must name a cited document (path, file name, title or first line)"
    )
    regex: list[str] = Field(default_factory=list, description="patterns the answer must match")
    must_not_match: list[str] = Field(default_factory=list, description="patterns it must not match")
    json_schema: dict[str, Any] | None = Field(None, description="the answer text must be JSON valid against it")
    expect_abstain: bool | None = Field(None, description="true: must say 'not in the documents'; false: must not")
    expected_doc_ids: list[str] = Field(
        default_factory=list, description="retrieval: documents (path, file name or title) that must be retrieved"
    )

    def checks(self) -> bool:
        """Whether anything is expected at all (an empty ``expected`` checks nothing)."""
        return bool(
            self.must_include
            or self.must_not_include
            or self.must_cite
            or self.regex
            or self.must_not_match
            or self.json_schema is not None
            or self.expect_abstain is not None
            or self.expected_doc_ids
        )


class Turn(_Strict):
    user: str
    expected: Expected = Field(default_factory=Expected)


class CaseInput(_Strict):
    user: str | None = None
    turns: list[Turn] = Field(default_factory=list, description="multi-turn: user turns with their expectations")
    context_docs: list[str] = Field(
        default_factory=list, description="answer from these texts instead of the ingested corpus"
    )

    @model_validator(mode="after")
    def _one_of(self) -> CaseInput:
        if (self.user is None) == (not self.turns):
            raise ValueError("give exactly one of 'user' (one question) or 'turns' (a conversation)")
        return self


class EvalCase(_Strict):
    """One eval case. ``expected`` applies to a single-question case; turns carry their own."""

    id: str
    input: CaseInput
    expected: Expected = Field(default_factory=Expected)
    scoring: dict[str, str] = Field(
        default_factory=dict, description="metric name -> scorer kind (llm_judge, json_schema, rule_based)"
    )
    tags: list[str] = Field(default_factory=list)
    flaky: bool = Field(
        False, description="known to flip between runs: a regression of this case alone does not fail the gate"
    )
    expect_abstain: bool | None = Field(None, description="shorthand for expected.expect_abstain")
    source: str = Field("", exclude=True, description="file the case came from")

    @model_validator(mode="after")
    def _check(self) -> EvalCase:
        bad = {k: v for k, v in self.scoring.items() if v not in SCORER_KINDS}
        if bad:
            k, v = next(iter(bad.items()))
            raise ValueError(f"scoring.{k}: unknown scorer kind {v!r}; use one of {', '.join(SCORER_KINDS)}")
        if self.expect_abstain is not None and self.expected.expect_abstain is None:
            self.expected = self.expected.model_copy(update={"expect_abstain": self.expect_abstain})
        if self.input.turns and self.expected.checks():
            raise ValueError("a multi-turn case puts its expectations under each turn (input.turns[].expected)")
        judged = "llm_judge" in self.scoring.values()  # faithfulness is scored for every answer
        if not judged and not any(t.expected.checks() for t in self.steps()):
            raise ValueError(
                "no expectations: a case that checks nothing would always pass; give expected "
                "(must_include, must_cite, expect_abstain, regex, expected_doc_ids, ...) or a llm_judge metric"
            )
        return self

    def steps(self) -> list[Turn]:
        """The questions to ask in order, each with what is expected of its answer."""
        if self.input.turns:
            return self.input.turns
        assert self.input.user is not None
        return [Turn(user=self.input.user, expected=self.expected)]


def _format(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = "unknown field" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
        if loc == "review_note":
            msg = "this draft case has not been reviewed: check its expectations, then delete review_note"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _load_file(path: Path) -> list[EvalCase]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DataError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    raw: list[Any] = []
    for d in docs:
        if isinstance(d, list):
            raw.extend(d)
        elif isinstance(d, dict) and "cases" in d and isinstance(d["cases"], list):
            raw.extend(d["cases"])
        else:
            raw.append(d)
    cases = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise DataError(f"{path}: case #{i} is not a mapping of fields")
        cid = item.get("id", f"#{i}")
        try:
            case = EvalCase.model_validate(item)
        except ValidationError as e:
            raise DataError(f"{path}: case {cid!s}: {_format(e)}") from None
        case.source = str(path)
        cases.append(case)
    return cases


def load_cases(path: str | Path) -> list[EvalCase]:
    """Load a YAML file (one case, a list, or ``cases:``) or every *.yaml / *.yml under a folder.

    Raises:
        DataError: a file is unreadable or not YAML, a case is invalid (naming file, case id and field),
            or two cases share an id.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p} does not exist")
    files = sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")]) if p.is_dir() else [p]
    cases: list[EvalCase] = []
    seen: dict[str, str] = {}
    for f in files:
        for c in _load_file(f):
            if c.id in seen:
                raise DataError(f"{f}: case {c.id}: duplicate id (also in {seen[c.id]})")
            seen[c.id] = str(f)
            cases.append(c)
    if not cases:
        raise DataError(f"no eval cases found in {p}")
    return cases
