"""Ingest jobs: uploaded files are ingested by one background worker, in order; jobs left queued or running when
the service stopped (a restart, a crash, kill -9) are run again when it starts. An ingest is incremental and
writes each document whole, so running a job twice stores each document once."""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import TetherError
from tether.ingest import IngestProgress

if TYPE_CHECKING:
    from tether._api import Tether
    from tether.service._data import ServiceData
    from tether.service._metrics import Metrics

log = logging.getLogger("tether.service")


class JobRunner:
    def __init__(self, tether: Tether, data: ServiceData, metrics: Metrics) -> None:
        self.tether = tether
        self.data = data
        self.metrics = metrics
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="tether-ingest-jobs", daemon=True)
        self.current: str | None = None

    def start(self) -> int:
        """Start the worker, first queueing the jobs a previous run left unfinished; returns how many."""
        left = self.data.unfinished_jobs()
        for item in left:
            self._queue.put(item)
        self._thread.start()
        return len(left)

    def submit(self, tenant: str, job_id: str) -> None:
        self._queue.put((tenant, job_id))

    def stop(self, wait_s: float) -> bool:
        """Stop taking jobs; wait up to ``wait_s`` for the one running. False: it is still running (it stays
        'running' in the store and runs again after a restart)."""
        self._queue.put(None)
        self._thread.join(wait_s)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._run(*item)

    def _run(self, tenant: str, job_id: str) -> None:
        job = self.data.job(tenant, job_id)
        if job is None or job.status in ("done", "failed"):
            return
        self.current = job_id
        self.data.update_job(job_id, status="running")

        def on_progress(p: IngestProgress) -> None:
            self.data.update_job(job_id, progress=p.model_dump(mode="json"))

        try:
            files: list[str | Path] = [Path(f) for f in job.files if Path(f).is_file()]
            summary = self.tether.ingest(files, tenant=tenant, on_progress=on_progress) if files else None
            done = summary.model_dump(mode="json") if summary is not None else {"added": 0, "note": "no files left"}
            self.data.update_job(job_id, status="done", summary=done)
            self.metrics.jobs.labels("done").inc()
        except TetherError as e:
            self.data.update_job(job_id, status="failed", error=str(e))
            self.metrics.jobs.labels("failed").inc()
        except Exception as e:  # a job must not take the worker down; the error is kept with the job
            log.exception("ingest job %s failed", job_id)
            self.data.update_job(job_id, status="failed", error=f"{type(e).__name__}: {e}")
            self.metrics.jobs.labels("failed").inc()
        finally:
            self.current = None
