"""What a stage is: a small object with one job, typed inputs and outputs, and optional heavy set-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tether.pipeline._state import RequestState

if TYPE_CHECKING:
    from tether._api import Tether
    from tether.trace import StageSpan


@dataclass
class StageContext:
    """What a stage may use besides the state: the Tether whose parts it calls, the names of the whole chain,
    and the span of the stage for the attributes it wants traced."""

    tether: Tether
    chain: tuple[str, ...]
    span: StageSpan


@runtime_checkable
class Stage(Protocol):
    """A stage of the request pipeline (see Haystack's components: declared inputs and outputs).

    ``requires``: state fields an earlier stage (or the request) must have provided; ``provides``: those this
    stage fills. ``always``: run even after an earlier stage ended the request (``state.done``).
    """

    name: str
    requires: frozenset[str]
    provides: frozenset[str]
    always: bool

    def warm_up(self, tether: Tether) -> None:
        """Load what the stage needs before the first request (models, indexes); may do nothing."""

    def __call__(self, state: RequestState, ctx: StageContext) -> None:
        """Do the stage's job on ``state`` (in place)."""
