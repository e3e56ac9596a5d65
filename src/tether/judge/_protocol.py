"""The Judge protocol: does this evidence support this claim?"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel

Label = Literal["SUPPORTED", "UNSUPPORTED", "CONTRADICTED"]
LABELS: tuple[Label, ...] = ("SUPPORTED", "UNSUPPORTED", "CONTRADICTED")


class Verdict(BaseModel):
    """A judge's decision on one claim, with its reason.

    ``score`` is the judge's probability that the claim is supported, where it has one; ``error``
    is set when the judge could not decide (the claim then counts as UNSUPPORTED, never as kept).
    """

    label: Label
    reason: str
    score: float | None = None
    error: bool = False
    judge: str = ""


@runtime_checkable
class Judge(Protocol):
    """Checks a claim against evidence spans (the quotes it cites)."""

    name: str

    def verify(self, claim: str, evidence: list[str]) -> Verdict: ...


ClaimVerifier = Judge  # the name the grounded answerer used first
