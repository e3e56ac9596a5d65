"""Stages by name, and chains built from names (``pipeline:`` in tether.yaml), checked before any request."""

from __future__ import annotations

from collections.abc import Callable

from tether.errors import ConfigError
from tether.pipeline._cache import CacheStage
from tether.pipeline._stage import Stage
from tether.pipeline._stages import AnswerStage, AuditStage, PolicyStage, RerankStage, RetrieveStage
from tether.pipeline._state import RequestKind

_STAGES: dict[str, Callable[[], Stage]] = {
    "policy": PolicyStage,
    "retrieve": RetrieveStage,
    "rerank": RerankStage,
    "cache": CacheStage,
    "answer": AnswerStage,
    "audit": AuditStage,
}

DEFAULT_CHAINS: dict[RequestKind, tuple[str, ...]] = {
    "ask": ("policy", "retrieve", "rerank", "answer", "audit"),
    "search": ("retrieve", "rerank"),
}
_GIVEN = frozenset({"question"})  # what every request brings
_RESULT: dict[RequestKind, str] = {"ask": "answer", "search": "hits"}


def register_stage(name: str, factory: Callable[[], Stage], *, replace: bool = False) -> None:
    """Make a stage available to ``pipeline:`` by name (a plug-in's own stage; the built-ins are registered)."""
    if not name or not name.replace("_", "").replace("-", "").isalnum() or not name.isascii():
        raise ConfigError(f"stage name {name!r}: use letters, digits, '-' and '_'")
    if name in _STAGES and not replace:
        raise ConfigError(f"a stage named {name!r} is already registered")
    _STAGES[name] = factory


def known_stages() -> list[str]:
    return sorted(_STAGES)


def build_chain(kind: RequestKind, names: list[str] | tuple[str, ...] | None) -> list[Stage]:
    """The stages of a chain, in order.

    Raises:
        ConfigError: an unknown stage name (the message lists the known ones), a stage twice, a stage whose
            inputs no earlier stage provides, or a chain that does not produce the request's result.
    """
    chain = tuple(names) if names is not None else DEFAULT_CHAINS[kind]
    where = f"pipeline.{kind}"
    unknown = [n for n in chain if n not in _STAGES]
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ConfigError(f"{where}: unknown stage(s) {listed}; known: {', '.join(known_stages())}")
    twice = sorted({n for n in chain if chain.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: stage(s) {', '.join(twice)} named twice")
    stages = [_STAGES[n]() for n in chain]
    have = set(_GIVEN)
    for s in stages:
        missing = s.requires - have
        if missing:
            raise ConfigError(
                f"{where}: stage {s.name!r} needs {', '.join(sorted(missing))}, which no stage before it provides"
            )
        have |= s.provides
    if _RESULT[kind] not in have:
        raise ConfigError(f"{where}: no stage provides the {_RESULT[kind]} a {kind} request returns")
    return stages
