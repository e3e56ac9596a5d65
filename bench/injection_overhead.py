"""What the prompt-injection detector costs: at ingest (per chunk, beside embedding) and per ask.

Ingests the first ``--limit`` SciFact abstracts twice into fresh indexes, in one run: with the packaged detector
(the default) and with a detector that scores nothing (what ingest did before it), and reports wall time, the
time inside the detector, how many sentences it embedded (those matching a cue), and the flagged share. Then
times the detector on the candidate sentences of an ask (21, the median on SQuAD) with their vectors.

    python bench/injection_overhead.py [--limit 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from _common import CACHE, SHARED, need
from tether import Tether
from tether.evals import BeirData
from tether.ingest import Ingestor
from tether.safety import InjectionDetector, detector_for
from tether.store import SQLiteStore


class Timed(InjectionDetector):
    """The packaged detector, timing itself and counting the sentences it embeds."""

    def __init__(self, base: InjectionDetector, *, score: bool = True) -> None:
        super().__init__(base.model)
        self.seconds = 0.0
        self.sentences = 0
        self.score = score

    def chunk_scores(
        self,
        texts: Sequence[str],
        vectors: npt.NDArray[np.float32],
        embed: Callable[[list[str]], npt.NDArray[np.float32]],
    ) -> list[float]:
        if not self.score:  # before the detector: nothing scored
            return [0.0] * len(texts)

        def counting(xs: list[str]) -> npt.NDArray[np.float32]:
            self.sentences += len(xs)
            return embed(xs)

        t0 = time.perf_counter()
        out = super().chunk_scores(texts, vectors, counting)
        self.seconds += time.perf_counter() - t0
        return out


def ingest(t: Tether, records: list[tuple[str, str, str]], detector: Timed, name: str) -> dict[str, float]:
    folder = CACHE / f"inj-overhead-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    store = SQLiteStore.open(folder / "index.db", create=True)
    ing = Ingestor(store, t.embedder, t.settings.ingest, detector=detector)
    t0 = time.perf_counter()
    ing.add_records(records)
    ing.flush()
    wall = time.perf_counter() - t0
    chunks = ing.summary.chunks
    flagged, _ = store.injection_counts(detector.threshold)
    store.close()
    return {
        "wall_s": round(wall, 2),
        "chunks": chunks,
        "embed_s": round(ing.summary.embed_seconds, 2),
        "detector_s": round(detector.seconds, 3),
        "detector_ms_per_chunk": round(1000 * detector.seconds / max(chunks, 1), 3),
        "sentences_embedded": detector.sentences,
        "flagged_share": round(flagged / max(chunks, 1), 4) if detector.score else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=1000, help="SciFact abstracts to ingest (default: 1000)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t = Tether.open(None)
    base = detector_for(t.embedder.model_id)
    assert base is not None
    records = list(BeirData(root=need(SHARED / "scifact"), split="").corpus())[: args.limit]
    t.embedder.embed(["warm up"])
    results = {
        "without": ingest(t, records, Timed(base, score=False), "without"),
        "with": ingest(t, records, Timed(base), "with"),
    }
    sentences = [r[2][:200] for r in records[:21]]
    vecs = t.embedder.embed(sentences)
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        base.scores(sentences, vecs)
        times.append((time.perf_counter() - t0) * 1000)
    results["ask"] = {"candidates": len(sentences), "p50_ms": round(statistics.median(times), 3)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    w, o = results["with"], results["without"]
    print(f"{args.limit} SciFact abstracts, {w['chunks']} chunks")
    print(
        f"  ingest wall without the detector {o['wall_s']} s, with it {w['wall_s']} s "
        f"({100 * (w['wall_s'] / o['wall_s'] - 1):+.1f}%)"
    )
    print(
        f"  inside the detector {w['detector_s']} s = {w['detector_ms_per_chunk']} ms a chunk; "
        f"{w['sentences_embedded']} cue-matching sentences embedded; flagged {w['flagged_share']:.2%}"
    )
    print(f"  per ask: scoring {results['ask']['candidates']} candidate sentences {results['ask']['p50_ms']} ms p50")


if __name__ == "__main__":
    main()
