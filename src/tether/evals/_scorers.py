"""Scorers: small registered functions, selectable by name from YAML.

A scorer takes what was expected, the answer, and a context (to read the real sources and to reach
the judge) and returns a :class:`Score`, or None when it does not apply to the case.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tether.contracts import Answer
from tether.evals._cases import Expected
from tether.evals._results import Score

ScorerFn = Callable[[Expected, Answer, "ScoreContext"], Score | None]
SCORERS: dict[str, ScorerFn] = {}


def scorer(name: str) -> Callable[[ScorerFn], ScorerFn]:
    """Register a scorer under ``name`` (the name YAML refers to)."""

    def wrap(fn: ScorerFn) -> ScorerFn:
        SCORERS[name] = fn
        return fn

    return wrap


@dataclass
class ScoreContext:
    """What scorers may use: the stored text of a cited document, and the judge."""

    document_text: Callable[[int], str]
    judge: Judge


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def _key(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower())


@scorer("must_include")
def must_include(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    if not exp.must_include:
        return None
    text = _norm(a.text)
    missing = [m for m in exp.must_include if _norm(m) not in text]
    ok = not missing
    return Score(
        name="must_include",
        scorer="rule_based",
        value=1 - len(missing) / len(exp.must_include),
        passed=ok,
        reason="all present" if ok else f"missing: {', '.join(repr(m) for m in missing)}",
    )


@scorer("must_not_include")
def must_not_include(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    if not exp.must_not_include:
        return None
    text = _norm(a.text)
    found = [m for m in exp.must_not_include if _norm(m) in text]
    return Score(
        name="must_not_include",
        scorer="rule_based",
        value=0.0 if found else 1.0,
        passed=not found,
        reason="none present" if not found else f"present: {', '.join(repr(m) for m in found)}",
    )


def _cited_names(a: Answer, ctx: ScoreContext) -> list[tuple[str, ...]]:
    names: list[tuple[str, ...]] = []
    for c in a.citations:
        try:
            first = ctx.document_text(c.doc_id).strip().splitlines()[0]
        except (KeyError, IndexError):
            first = ""
        names.append((c.path, Path(c.path).name, c.title, first))
    return names


@scorer("must_cite")
def must_cite(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    """Each must_cite entry names a cited document: its path, file name, title or first line."""
    if not exp.must_cite:
        return None
    cited = _cited_names(a, ctx)
    missing = [m for m in exp.must_cite if not any(_key(m) and _key(m) in _key(n) for names in cited for n in names)]
    return Score(
        name="must_cite",
        scorer="rule_based",
        value=1 - len(missing) / len(exp.must_cite),
        passed=not missing,
        reason="cited" if not missing else f"not cited: {', '.join(repr(m) for m in missing)}",
    )


@scorer("regex")
def regex(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    if not exp.regex and not exp.must_not_match:
        return None
    bad = [p for p in exp.regex if not re.search(p, a.text)]
    bad += [f"not {p}" for p in exp.must_not_match if re.search(p, a.text)]
    return Score(name="regex", scorer="rule_based", value=0.0 if bad else 1.0, passed=not bad, reason="; ".join(bad))


@scorer("json_schema")
def json_schema(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    if exp.json_schema is None:
        return Score(name="json_schema", scorer="json_schema", passed=None, reason="no json_schema in the case")
    import jsonschema

    try:
        data = json.loads(a.text)
    except json.JSONDecodeError as e:
        return Score(name="json_schema", scorer="json_schema", value=0.0, passed=False, reason=f"not JSON: {e}")
    try:
        jsonschema.validate(data, exp.json_schema)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        return Score(name="json_schema", scorer="json_schema", value=0.0, passed=False, reason=f"{where}: {e.message}")
    except jsonschema.SchemaError as e:
        return Score(name="json_schema", scorer="json_schema", error=True, reason=f"invalid schema: {e.message}")
    return Score(name="json_schema", scorer="json_schema", value=1.0, passed=True, reason="valid")


@scorer("abstention")
def abstention(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    """Rule-based refusal behaviour: abstain exactly when the case says the answer is not in the documents."""
    want = exp.expect_abstain
    if want is None:
        if not (exp.must_include or exp.must_cite):
            return None
        want = False  # a case that expects content expects an answer
    ok = a.abstained == want
    what = "abstained" if a.abstained else "answered"
    return Score(
        name="abstention",
        scorer="rule_based",
        value=1.0 if ok else 0.0,
        passed=ok,
        reason=f"{what} (support {a.support:.2f}, threshold {a.threshold:.2f})",
    )


_PLACEHOLDER = re.compile(r"<[A-Z_]+>")


def _quote_matches(span: str, quote: str, *, redacted: bool) -> bool:
    """The quote is the span; a redacted quote (safety.pii.answers) is the span with some parts as <KIND>."""
    if not redacted:
        return span == quote
    parts = _PLACEHOLDER.split(quote)
    return len(parts) > 1 and re.fullmatch(".+?".join(re.escape(p) for p in parts), span, re.DOTALL) is not None


@scorer("citations_valid")
def citations_valid(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    """Every citation's quote is found verbatim at its offsets in the real stored document."""
    if not a.citations:
        return None
    bad = []
    for c in a.citations:
        try:
            text = ctx.document_text(c.doc_id)
        except KeyError:
            bad.append(f"[{c.n}] document {c.doc_id} is not in the index")
            continue
        if not _quote_matches(text[c.start : c.end], c.quote, redacted=c.redacted):
            bad.append(f"[{c.n}] quote not found at {c.start}-{c.end} of {Path(c.path).name}")
    return Score(
        name="citations_valid",
        scorer="rule_based",
        value=1 - len(bad) / len(a.citations),
        passed=not bad,
        reason="; ".join(bad) or f"{len(a.citations)} quotes verified",
    )


@scorer("retrieval")
def retrieval(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    """Expected documents among those retrieved for the question (from the answer's trace)."""
    if not exp.expected_doc_ids:
        return None
    retrieved: list[str] = []
    for ev in a.trace:
        chunks = ev.detail.get("chunks") if ev.stage == "hits" else None
        if isinstance(chunks, list):
            retrieved.extend(str(h["path"]) for h in chunks if isinstance(h, dict))
    names = {k for p in retrieved for k in (_key(p), _key(Path(p).name))}
    found = [d for d in exp.expected_doc_ids if _key(d) in names or any(_key(d) in n for n in names)]
    frac = len(found) / len(exp.expected_doc_ids)
    missing = [d for d in exp.expected_doc_ids if d not in found]
    return Score(
        name="retrieval",
        scorer="rule_based",
        value=frac,
        passed=not missing,
        reason=f"recall {frac:.2f}" + (f"; missing {', '.join(missing)}" if missing else ""),
    )


@scorer("faithfulness")
def faithfulness(exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    """Is every claim of the answer supported by its cited sources? Scored by the configured judge."""
    return ctx.judge.faithfulness(a, ctx)


class Judge:
    """The protocol of a faithfulness judge: returns a Score whose ``judge`` names it."""

    name = "judge"

    def faithfulness(self, a: Answer, ctx: ScoreContext) -> Score:
        raise NotImplementedError

    def abstained(self) -> Score:
        """An abstention claims nothing, so it is faithful by definition (no judge call is spent)."""
        return Score(
            name="faithfulness",
            scorer="llm_judge",
            value=1.0,
            passed=True,
            reason="abstained: no claims",
            judge=self.name,
        )


class OfflineSupportJudge(Judge):
    """The judge used when no LLM is configured.

    For extractive answers every claim is a quoted span, so faithfulness means: every quote is found
    verbatim in its cited document, and the calibrated support of the answer reaches the threshold.
    An abstention claims nothing and is faithful by definition.
    """

    name = "offline-support-checker"

    def faithfulness(self, a: Answer, ctx: ScoreContext) -> Score:
        if a.abstained:
            return self.abstained()
        valid = citations_valid(Expected(), a, ctx)
        quotes_ok = valid is not None and valid.passed is True
        supported = a.support >= a.threshold
        ok = quotes_ok and supported
        why = []
        if not quotes_ok:
            why.append(valid.reason if valid is not None else "no citations")
        why.append(f"support {a.support:.2f} {'>=' if supported else '<'} threshold {a.threshold:.2f}")
        return Score(
            name="faithfulness",
            scorer="llm_judge",
            value=1.0 if ok else 0.0,
            passed=ok,
            reason="; ".join(why),
            judge=self.name,
        )


# The scorer kinds that `scoring:` in YAML selects, and the registered scorer each runs.
KIND_SCORERS = {"llm_judge": "faithfulness", "json_schema": "json_schema", "rule_based": "abstention"}
ALWAYS = ("must_include", "must_not_include", "must_cite", "regex", "citations_valid", "retrieval")


def score_answer(exp: Expected, scoring: dict[str, str], a: Answer, ctx: ScoreContext) -> list[Score]:
    """Run the checks implied by ``expected`` plus the metrics named in ``scoring``."""
    out: list[Score] = []
    names = list(ALWAYS)
    if exp.expect_abstain is not None:
        names.append("abstention")
    if exp.json_schema is not None:
        names.append("json_schema")
    for metric, kind in scoring.items():
        fn_name = KIND_SCORERS[kind]
        s = _run(fn_name, exp, a, ctx)
        if s is not None:
            out.append(s.model_copy(update={"name": metric}))
            if fn_name in names:
                names.remove(fn_name)
    for n in names:
        s = _run(n, exp, a, ctx)
        if s is not None:
            out.append(s)
    return out


def _run(name: str, exp: Expected, a: Answer, ctx: ScoreContext) -> Score | None:
    try:
        return SCORERS[name](exp, a, ctx)
    except Exception as e:  # a broken scorer is a counted error, never a silent pass
        return Score(name=name, scorer=name, error=True, passed=False, reason=f"scorer failed: {e}")
