"""A judge that asks a model (any OpenAI-compatible server) whether the evidence supports a claim."""

from __future__ import annotations

import json

from tether.config._settings import DEFAULT_JUDGE_PROMPT
from tether.errors import TetherError
from tether.judge._protocol import Verdict
from tether.models import Generator, Message

_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["SUPPORTED", "UNSUPPORTED", "CONTRADICTED"]},
        "reason": {"type": "string"},
    },
    "required": ["label", "reason"],
}


class LLMJudge:
    """A model judges each claim (through the Generator protocol). An unreadable reply counts as
    UNSUPPORTED with ``error`` set: a claim is never kept because its check failed."""

    def __init__(self, generator: Generator, prompt: str = DEFAULT_JUDGE_PROMPT) -> None:
        self.generator = generator
        self.prompt = prompt
        self.name = f"llm:{generator.model_id}"

    def verify(self, claim: str, evidence: list[str]) -> Verdict:
        quotes = "\n".join(f"- {e}" for e in evidence)
        try:
            c = self.generator.complete(
                [
                    Message(role="system", content=self.prompt),
                    Message(role="user", content=f"Evidence:\n{quotes}\n\nClaim: {claim}"),
                ],
                json_schema=_SCHEMA,
                max_tokens=150,
            )
            data = json.loads(c.text)
            label = str(data["label"]).strip().upper()
            if label not in ("SUPPORTED", "UNSUPPORTED", "CONTRADICTED"):
                raise ValueError(f"unknown label {label!r}")
            return Verdict.model_validate({"label": label, "reason": str(data.get("reason", "")), "judge": self.name})
        except (ValueError, KeyError, TypeError) as e:
            return Verdict(label="UNSUPPORTED", reason=f"judge reply unreadable ({e})", error=True, judge=self.name)
        except TetherError as e:
            return Verdict(label="UNSUPPORTED", reason=f"judge failed ({e})", error=True, judge=self.name)


LLMClaimVerifier = LLMJudge  # the name used before the judge package existed
