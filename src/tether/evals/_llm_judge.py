"""Faithfulness judged by an LLM through the Generator protocol (the same one generation uses)."""

from __future__ import annotations

import json
from pathlib import Path

from tether.config import Settings
from tether.contracts import Answer
from tether.errors import ModelError, TetherError
from tether.evals._results import Score
from tether.evals._scorers import Judge, OfflineSupportJudge, ScoreContext
from tether.models import Generator, Message, generator_from_settings

VERDICTS = ("supported", "unsupported", "contradicted")
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": list(VERDICTS)}, "reason": {"type": "string"}},
    "required": ["verdict", "reason"],
}
SYSTEM = (
    "You check whether an answer is fully supported by the numbered sources. Judge only from the sources. "
    'Reply with JSON only: {"verdict": "supported" | "unsupported" | "contradicted", "reason": "<one sentence>"}.'
)
_WINDOW = 400  # characters of the cited document shown around each quote


class LLMJudge(Judge):
    """Asks a model whether the answer is supported by the text around its citations.

    A reply that is not JSON with a known verdict is a scorer error (counted and shown), never a pass.
    """

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.name = f"llm:{generator.model_id}"

    def _sources(self, a: Answer, ctx: ScoreContext) -> str:
        parts = []
        for c in a.citations:
            try:
                doc = ctx.document_text(c.doc_id)
                text = doc[max(0, c.start - _WINDOW) : c.end + _WINDOW]
            except KeyError:
                text = c.quote
            parts.append(f"[{c.n}] {Path(c.path).name}: {text}")
        return "\n\n".join(parts)

    def faithfulness(self, a: Answer, ctx: ScoreContext) -> Score:
        if a.abstained:
            return self.abstained()
        prompt = f"Sources:\n{self._sources(a, ctx)}\n\nQuestion: {a.question}\n\nAnswer: {a.text}"
        try:
            c = self.generator.complete(
                [Message(role="system", content=SYSTEM), Message(role="user", content=prompt)],
                json_schema=VERDICT_SCHEMA,
                max_tokens=200,
            )
        except TetherError as e:
            return Score(
                name="faithfulness",
                scorer="llm_judge",
                error=True,
                passed=False,
                reason=f"judge call failed: {e}",
                judge=self.name,
            )
        tokens = c.prompt_tokens + c.completion_tokens
        try:
            data = json.loads(c.text)
            verdict = str(data["verdict"]).strip().lower()
            reason = str(data.get("reason", ""))
            if verdict not in VERDICTS:
                raise ValueError(f"unknown verdict {verdict!r}")
        except (ValueError, KeyError, TypeError) as e:
            return Score(
                name="faithfulness",
                scorer="llm_judge",
                error=True,
                passed=False,
                tokens=tokens,
                reason=f"judge reply could not be parsed ({e}): {c.text[:160]!r}",
                judge=self.name,
            )
        ok = verdict == "supported"
        return Score(
            name="faithfulness",
            scorer="llm_judge",
            value=1.0 if ok else 0.0,
            passed=ok,
            tokens=tokens,
            reason=f"{verdict}: {reason}",
            judge=self.name,
        )


def choose_judge(settings: Settings) -> Judge:
    """evals.judge: auto = the LLM if one is configured, else the offline support checker."""
    mode = settings.evals.judge
    if mode == "offline":
        return OfflineSupportJudge()
    gen = generator_from_settings(settings.llm)
    if gen is None:
        if mode == "llm":
            raise ModelError("evals.judge is 'llm' but no model server is set (llm.url or TETHER_LLM_URL)")
        return OfflineSupportJudge()
    return LLMJudge(gen)
