"""Two ingests of the same folder at once, as two real processes: one does the work, the other waits for it
and then finds every document unchanged. Nothing is embedded or reported twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
from tether.config import IngestSettings
from tether.ingest import ingest_paths
from tether.store import SQLiteStore

class SlowEmbedder:
    model_id, dim = "test-hash", 8
    embedded = 0
    def embed(self, texts):
        time.sleep(0.02 * len(texts))  # slow enough that the two ingests overlap
        SlowEmbedder.embedded += len(texts)
        return np.ones((len(texts), self.dim), np.float32) / np.sqrt(self.dim)

waits = []
with SQLiteStore.open(sys.argv[1], create=True) as store:
    print("ready", flush=True)
    sys.stdin.readline()  # both start together
    summary = ingest_paths([Path(sys.argv[2])], store, SlowEmbedder(), IngestSettings(workers=0),
                           on_progress=lambda p: waits.append(p.message) if p.stage == "waiting" else None)
print(json.dumps({"summary": summary.model_dump(mode="json"), "embedded": SlowEmbedder.embedded, "waits": waits}))
"""

N_DOCS = 40


def test_two_concurrent_ingests_of_one_folder_do_the_work_once_and_report_it_truthfully(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(N_DOCS):
        (docs / f"d{i:02d}.txt").write_text(f"Document {i} tells of harbour number {i} and its {i} boats.\n")
    index = tmp_path / "idx" / "index.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(index), str(docs)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    first, second = sorted(results, key=lambda r: r["summary"]["added"], reverse=True)
    assert (first["summary"]["added"], first["summary"]["unchanged"]) == (N_DOCS, 0)
    assert (second["summary"]["added"], second["summary"]["unchanged"]) == (0, N_DOCS)
    assert first["embedded"] == N_DOCS and second["embedded"] == 0
    assert first["waits"] == [] and len(second["waits"]) == 1
    assert second["waits"][0].startswith(f"waiting for another ingest into {index} (pid ")
