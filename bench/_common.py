"""Shared helpers of the benchmark scripts: where the shared data is, and SQuAD 2.0 loading."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tether import Tether
from tether.ingest import Ingestor
from tether.store import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TETHER_SHARED_DATA", ROOT.parent / "shared" / "data"))
CACHE = ROOT / ".tether" / "bench"


def paragraph_position(order: Iterable[int], paths: dict[int, str], gold: str, k: int = 10) -> int:
    """1-based rank of ``gold`` among the first ``k`` distinct paragraphs that the chunk ids in ``order`` belong to
    (``paths``: chunk id -> paragraph id); 0 when it is not among them."""
    ranked: list[str] = []
    for cid in order:
        p = paths.get(cid)
        if p is not None and p not in ranked:
            ranked.append(p)
        if len(ranked) >= k:
            break
    return ranked.index(gold) + 1 if gold in ranked else 0


READER_CHOICES = "packaged (the shipped reading model, the default), none (features only) or a reader folder"


def with_reader(yaml_text: str, reader: str) -> str:
    """The default tether.yaml text with ``answer.reader`` set: ``packaged``, ``none`` or a folder's path."""
    value = "null" if reader == "none" else reader if reader == "packaged" else str(Path(reader).resolve())
    out = yaml_text.replace("  reader: packaged", f"  reader: {value}", 1)
    if f"  reader: {value}" not in out:
        raise SystemExit("the default tether.yaml has no 'reader: packaged' line to set")
    return out


def cached_embed(t: Tether, texts: list[str], name: str) -> npt.NDArray[np.float32]:
    """``t.embedder``'s vectors of ``texts``, cached in .tether/bench under ``name`` and a hash of model and texts."""
    key = hashlib.sha256(json.dumps([t.embedder.model_id, texts]).encode()).hexdigest()[:16]
    cache = CACHE / f"{name}-{key}.npy"
    if cache.exists():
        cached: npt.NDArray[np.float32] = np.load(cache)
        return cached
    out = np.vstack([t.embedder.embed(texts[b : b + 256]) for b in range(0, len(texts), 256)])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


def need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"missing {path}: the benchmark data lives in ../shared/data (or set TETHER_SHARED_DATA)")
    return path


@dataclass
class SquadQuestion:
    id: str
    question: str
    paragraph_id: str
    is_impossible: bool
    answers: list[str]


@dataclass
class Squad:
    paragraphs: list[dict[str, str]]
    questions: list[SquadQuestion]
    calibration_paragraphs: set[str]

    def split(self, name: str) -> list[SquadQuestion]:
        """'calibration' = questions on the first half of the paragraphs (file order); 'measure' = the rest."""
        cal = name == "calibration"
        return [q for q in self.questions if (q.paragraph_id in self.calibration_paragraphs) == cal]


def load_squad() -> Squad:
    root = need(SHARED / "squad_v2_dev_half")
    paragraphs = [json.loads(line) for line in (root / "paragraphs.jsonl").open(encoding="utf-8")]
    questions = []
    for line in (root / "questions.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        questions.append(
            SquadQuestion(r["id"], r["question"], r["paragraph_id"], bool(r["is_impossible"]), list(r["answers"]))
        )
    half = len(paragraphs) // 2
    return Squad(paragraphs, questions, {p["_id"] for p in paragraphs[:half]})


def squad_store(t: Tether, squad: Squad, *, calibration_only: bool = False, measure_only: bool = False) -> SQLiteStore:
    """All 646 paragraphs (or only the calibration half, or only the measured half), each a document keyed by
    its id."""
    if calibration_only and measure_only:
        raise ValueError("calibration_only and measure_only exclude each other")
    name = "squad-cal-only" if calibration_only else "squad-measure-only" if measure_only else "squad"
    path = CACHE / f"{name}-{t.settings.index_hash}.db"
    store = SQLiteStore.open(path, create=True)
    ing = Ingestor(store, t.embedder, t.settings.ingest)

    def keep(pid: str) -> bool:
        if calibration_only or measure_only:
            return (pid in squad.calibration_paragraphs) == calibration_only
        return True

    ing.add_records((p["_id"], p["title"], p["text"]) for p in squad.paragraphs if keep(p["_id"]))
    ing.flush()
    return store
