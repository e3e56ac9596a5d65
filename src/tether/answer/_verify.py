"""Verify each claim against its cited spans: SUPPORTED, UNSUPPORTED or CONTRADICTED, with a reason."""

from __future__ import annotations

import json
from typing import Literal, Protocol

from pydantic import BaseModel

from tether.errors import TetherError
from tether.models import Generator, Message

Label = Literal["SUPPORTED", "UNSUPPORTED", "CONTRADICTED"]


class Verdict(BaseModel):
    label: Label
    reason: str
    error: bool = False


class ClaimVerifier(Protocol):
    name: str

    def verify(self, claim: str, evidence: list[str]) -> Verdict: ...


_SYSTEM = (
    "You check one claim against evidence quotes. SUPPORTED: the evidence states it. CONTRADICTED: the evidence "
    "states the opposite or a different value. UNSUPPORTED: otherwise. Reply with JSON only: "
    '{"label": "SUPPORTED" | "UNSUPPORTED" | "CONTRADICTED", "reason": "<one sentence>"}.'
)
_SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["SUPPORTED", "UNSUPPORTED", "CONTRADICTED"]},
        "reason": {"type": "string"},
    },
    "required": ["label", "reason"],
}


class LLMClaimVerifier:
    """A model judges each claim (through the Generator protocol). An unreadable reply counts as
    UNSUPPORTED with ``error`` set: a claim is never kept because its check failed."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.name = f"llm:{generator.model_id}"

    def verify(self, claim: str, evidence: list[str]) -> Verdict:
        quotes = "\n".join(f"- {e}" for e in evidence)
        try:
            c = self.generator.complete(
                [
                    Message(role="system", content=_SYSTEM),
                    Message(role="user", content=f"Evidence:\n{quotes}\n\nClaim: {claim}"),
                ],
                json_schema=_SCHEMA,
                max_tokens=150,
            )
            data = json.loads(c.text)
            label = str(data["label"]).strip().upper()
            if label not in ("SUPPORTED", "UNSUPPORTED", "CONTRADICTED"):
                raise ValueError(f"unknown label {label!r}")
            return Verdict.model_validate({"label": label, "reason": str(data.get("reason", ""))})
        except (ValueError, KeyError, TypeError) as e:
            return Verdict(label="UNSUPPORTED", reason=f"verifier reply unreadable ({e})", error=True)
        except TetherError as e:
            return Verdict(label="UNSUPPORTED", reason=f"verifier failed ({e})", error=True)
