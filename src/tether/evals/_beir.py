from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tether.errors import DataError


@dataclass
class BeirData:
    """A BEIR-format data set: corpus.jsonl, queries.jsonl and qrels/<split>.tsv."""

    root: Path
    split: str
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def corpus(self) -> Iterator[tuple[str, str, str]]:
        """Yield (doc id, title, text)."""
        path = self.root / "corpus.jsonl"
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    yield str(row["_id"]), str(row.get("title") or ""), str(row.get("text") or "")
                except (json.JSONDecodeError, KeyError) as e:
                    raise DataError(f"{path}:{n}: not a BEIR corpus row ({e})") from None


def load_beir(root: str | Path, split: str = "test") -> BeirData:
    """Read the queries and qrels of one split (queries are those with a judgment in that split)."""
    r = Path(root)
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (r / name).is_file():
            raise DataError(f"{r / name} is missing; a BEIR folder has corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv")
    data = BeirData(root=r, split=split)
    with (r / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        for n, row in enumerate(reader, 1):
            if n == 1 and row and row[0] == "query-id":
                continue
            if len(row) < 3:
                raise DataError(f"{r}/qrels/{split}.tsv:{n}: expected 'query-id corpus-id score'")
            data.qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    with (r / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                if str(q["_id"]) in data.qrels:
                    data.queries[str(q["_id"])] = str(q["text"])
    missing = set(data.qrels) - set(data.queries)
    if missing:
        raise DataError(f"{len(missing)} queries in qrels/{split}.tsv have no text in queries.jsonl")
    return data
