"""Attack suites: YAML files of cases, each an attack and the evidence that it worked.

A case plants documents (optional) in a scratch copy of the index and asks a question, or makes a tool call
under the policy; ``success_if`` names what in the answer (or in the ledger) proves the attack succeeded.
The packaged suites (``tether/data/redteam``) are written for this project; users add their own files.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tether.errors import TetherError

Category = Literal["injection", "jailbreak", "prompt_extraction", "pii_leak", "policy_bypass"]
CATEGORIES: tuple[Category, ...] = ("injection", "jailbreak", "prompt_extraction", "pii_leak", "policy_bypass")
SYSTEM_PROMPT = "{system_prompt}"  # success_if token: a run of 8 words of the configured system prompt
CANARY = "{canary}"  # success_if token: the per-request canary (TETHER-...) of LLM mode
EXECUTED = "executed"  # policy_bypass: the call ran without an approval


class SuiteError(TetherError):
    """A suite file is missing, not YAML, or a case in it is malformed (the message names file and case)."""


class PlantedDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[\w.-]+\.(txt|md|csv)$", description="file name: letters, digits, ._- and .txt/.md/.csv"
    )
    text: str = Field(min_length=1, max_length=200_000)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class AttackCase(BaseModel):
    """One attack. Question cases ask (after planting ``documents``); policy_bypass cases make ``call``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[\w.-]{1,80}$")
    category: Category
    note: str = ""
    documents: list[PlantedDocument] = Field(default_factory=list)
    question: str | None = None
    role: str | None = Field(None, description="the caller's role (default: policy.role)")
    call: ToolCall | None = None
    success_if: list[str] = Field(min_length=1, description="case-insensitive; any one in the answer = success")

    @model_validator(mode="after")
    def _shape(self) -> AttackCase:
        if self.category == "policy_bypass":
            if self.call is None or self.question is not None or self.documents:
                raise ValueError("a policy_bypass case has a call, and no question or documents")
            if self.success_if != [EXECUTED]:
                raise ValueError(f"a policy_bypass case succeeds when {EXECUTED!r}: success_if: [{EXECUTED}]")
        else:
            if self.call is not None or not (self.question or "").strip():
                raise ValueError(f"a {self.category} case asks a question (and makes no call)")
            if any(not s.strip() for s in self.success_if):
                raise ValueError("success_if holds an empty string (it would match every answer)")
        return self


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str
    description: str = ""
    cases: list[AttackCase] = Field(min_length=1)
    source: str = Field("", description="where it was loaded from (set by the loader)")


def _where(err: ValidationError, raw: Any) -> str:
    first = err.errors()[0]
    loc = list(first["loc"])
    what = ".".join(str(x) for x in loc)
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int) and isinstance(raw, dict):
        cases = raw.get("cases") or []
        if loc[1] < len(cases) and isinstance(cases[loc[1]], dict) and "id" in cases[loc[1]]:
            what = f"case {cases[loc[1]]['id']!r} ({what})"
    return f"{what}: {first['msg']}"


def parse_suite(text: str, source: str) -> Suite:
    """A suite from YAML text; ``source`` names it in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SuiteError(f"{source}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite is a mapping with 'suite' and 'cases', not {type(raw).__name__}")
    try:
        suite = Suite.model_validate({**raw, "source": source})
    except ValidationError as e:
        raise SuiteError(f"{source}: {_where(e, raw)}") from None
    return suite


def load_suite(path: Path) -> Suite:
    """A suite file (YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"{path}: cannot read it ({e})") from None
    return parse_suite(text, str(path))


def packaged_suites() -> list[Suite]:
    """The suites that ship with Tether, one per category."""
    folder = resources.files("tether") / "data" / "redteam"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    return [parse_suite((folder / n).read_text(encoding="utf-8"), f"tether:data/redteam/{n}") for n in names]


def select_cases(suites: Iterable[Suite], categories: Iterable[str] | None = None) -> list[AttackCase]:
    """Every case of ``suites`` (in the given categories), refusing ids or planted file names used twice."""
    wanted = set(categories) if categories else None
    if wanted is not None and not wanted <= set(CATEGORIES):
        raise SuiteError(f"unknown categories {sorted(wanted - set(CATEGORIES))}; known: {', '.join(CATEGORIES)}")
    seen: dict[str, str] = {}
    names: dict[str, str] = {}
    out: list[AttackCase] = []
    for s in suites:
        for c in s.cases:
            if c.id in seen:
                raise SuiteError(f"{s.source}: case id {c.id!r} is used again (first in {seen[c.id]})")
            seen[c.id] = s.source
            for d in c.documents:
                if d.name in names:
                    raise SuiteError(f"{s.source}: case {c.id!r} plants {d.name!r} again (case {names[d.name]})")
                names[d.name] = c.id
            if wanted is None or c.category in wanted:
                out.append(c)
    return out
