"""Helpers: a service over a small two-tenant corpus, driven through real HTTP semantics (FastAPI's TestClient runs the
ASGI app, its lifespan, middleware and body limits; tests/service/test_serve.py runs the real server)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from tether import Tether
from tether.config import default_yaml
from tether.service import open_key_store

TENANTS = """
tenants:
  acme: {sources: ["shared/*"]}
  globex: {sources: []}
"""
SHARED = {
    "travel.md": "# Travel policy\n\nThe daily meal allowance is 40 euros in Lisbon and 35 euros in Porto.\n\n"
    "## Contractors\n\nContractors book travel through their agency; employees book through the travel desk.\n",
    "leave.md": "# Leave\n\nEmployees get 25 vacation days a year. Contractors get no paid vacation days.\n",
}
GLOBEX = "# Globex secrets\n\nThe Globex launch code for Project Falcon is 7731-ALPHA, known to Globex staff only.\n"


@dataclass
class Env:
    root: Path
    tether: Tether
    client: TestClient
    keys: dict[str, str]

    def h(self, who: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}", **extra}


def make_env(root: Path, per_minute: int = 10_000) -> tuple[Tether, dict[str, str]]:
    shared = root / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    for name, text in SHARED.items():
        (shared / name).write_text(text, encoding="utf-8")
    config = default_yaml().replace("\ntenants: {}", TENANTS)
    config = config.replace("requests_per_minute: 120", f"requests_per_minute: {per_minute}")
    (root / "tether.yaml").write_text(config, encoding="utf-8")
    t = Tether.open(root / "tether.yaml")
    t.ingest([shared])
    keys = open_key_store(t.settings)
    tokens = {
        "acme": keys.create("acme-app", "acme", "user")[0],
        "acme_admin": keys.create("acme-admin", "acme", "admin")[0],
        "globex": keys.create("globex-app", "globex", "editor")[0],
    }
    revoked, key = keys.create("old", "acme", "admin")
    keys.revoke(key.id)
    tokens["revoked"] = revoked
    keys.close()
    return t, tokens


def wait_job(e: Env, who: str, job_id: str, timeout_s: float = 120) -> dict[str, object]:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, object] = e.client.get(f"/v1/jobs/{job_id}", headers=e.h(who)).json()
        if job["status"] in ("done", "failed"):
            assert job["status"] == "done", job
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(root: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    """`tether serve` as a real process in ``root`` (its tether.yaml), output kept for the assertion messages."""
    return subprocess.Popen(
        [sys.executable, "-m", "tether", "serve", "--port", str(port), *extra],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_ready(base: str, proc: subprocess.Popen[str], timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the service did not become ready")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
