"""The interface every system in bench/peers.py implements, and the default tuning loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from peers._data import Data, QueryEncoder, Split, scores

Config = dict[str, Any]


class System:
    """One retrieval system: builds an index from the shared texts and vectors, then ranks documents.

    ``search`` takes the query text and returns document ids, best first; a system with a dense side
    embeds the query through ``self.encoder`` (Tether's embedder), inside its own pipeline where the
    library has a hook for an embedding model.
    """

    name = ""
    kind = "hybrid"  # lexical | dense | hybrid: which Tether row it is compared with
    package = ""  # distribution whose version is reported

    def __init__(self, encoder: QueryEncoder) -> None:
        self.encoder = encoder

    # -- configurations ---------------------------------------------------------------------------
    def defaults(self) -> Config:
        """The library's own defaults (what a user gets without reading the docs)."""
        return {}

    def grid(self, quick: bool) -> list[Config]:
        """The small train grid of the fair tuning."""
        return [self.defaults()]

    def build_key(self, config: Config) -> str:
        """Configs with the same key share one index (only query-time settings differ)."""
        return json.dumps(config, sort_keys=True)

    # -- work -------------------------------------------------------------------------------------
    def build(self, data: Data, config: Config) -> None:
        raise NotImplementedError

    def configure(self, config: Config) -> None:
        """Apply the query-time part of ``config`` to the index built last."""

    def search(self, query: str) -> list[str]:
        raise NotImplementedError

    def after_fork(self) -> None:
        """Called in each throughput worker process before it searches (reopen what must not be shared)."""

    def persist(self, folder: Path) -> None:
        """Write the index to ``folder`` (for its size on disk); NotImplementedError if the system has none."""
        raise NotImplementedError

    def index_bytes(self, folder: Path) -> int | None:
        """Bytes on disk once persisted to the empty ``folder``; None if the system does not persist."""
        try:
            self.persist(folder)
        except NotImplementedError:
            return None
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

    def note(self) -> str:
        return ""

    # -- tuning on train --------------------------------------------------------------------------
    def tune(self, data: Data, split: Split, grid: list[Config]) -> list[tuple[Config, dict[str, float]]]:
        """Score every grid point on ``split`` (cached query vectors); one build per distinct index."""
        out = []
        built = None
        for config in sorted(grid, key=self.build_key):
            if self.build_key(config) != built:
                self.build(data, config)
                built = self.build_key(config)
            self.configure(config)
            ranked = {q: self.search(text) for q, text in split.queries.items()}
            out.append((config, scores(ranked, split)))
        return out
