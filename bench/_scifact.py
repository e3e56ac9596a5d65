"""SciFact loading shared by the judge and reranker scripts: abstracts split into their annotated sentences,
and the claims with their rationale sentences."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from _common import SHARED, need
from tether.text import idf_value, words


@dataclass
class Abstract:
    id: str
    title: str
    text: str
    sentences: list[str]


@dataclass
class Claim:
    id: int
    text: str
    split: str  # train | dev
    cited: list[str]
    # doc id -> list of (label, sentence indexes) rationale sets
    evidence: dict[str, list[tuple[str, list[int]]]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """SUPPORT, CONTRADICT or NEI for the claim as a whole."""
        for sets in self.evidence.values():
            for lab, _ in sets:
                return lab
        return "NEI"


def load_abstracts() -> dict[str, Abstract]:
    root = need(SHARED / "scifact")
    out = {}
    for line in (root / "corpus.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        spans = (r.get("metadata") or {}).get("sentence_spans") or [[0, len(r["text"])]]
        out[str(r["_id"])] = Abstract(str(r["_id"]), r["title"], r["text"], [r["text"][s:e] for s, e in spans])
    return out


def load_claims() -> list[Claim]:
    root = need(SHARED / "scifact")
    out = []
    for line in (root / "claims_with_evidence.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        ev = {
            str(d): [(s["label"], list(s["sentences"])) for s in sets] for d, sets in (r.get("evidence") or {}).items()
        }
        out.append(Claim(int(r["id"]), r["claim"], r["split"], [str(d) for d in r["cited_doc_ids"]], ev))
    return out


def corpus_idf(abstracts: dict[str, Abstract]) -> tuple[dict[str, float], float]:
    """BM25-style IDF of every word over the abstracts (title + text), and the IDF of an unseen word."""
    df: Counter[str] = Counter()
    for a in abstracts.values():
        df.update(set(words(a.title + " " + a.text)))
    n = len(abstracts)
    return {w: idf_value(c, n) for w, c in df.items()}, idf_value(0, n)
