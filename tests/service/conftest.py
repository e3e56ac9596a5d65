"""The module-wide service the API tests share (see service_env.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from service_env import GLOBEX, Env, make_env, wait_job

from tether.service import create_app


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("service")
    t, tokens = make_env(root)
    with TestClient(create_app(t)) as client:
        e = Env(root=root, tether=t, client=client, keys=tokens)
        # globex uploads its own document through the API and waits for the ingest job
        r = client.post("/v1/documents", headers=e.h("globex"), files={"files": ("falcon.md", GLOBEX, "text/markdown")})
        assert r.status_code == 202, r.text
        wait_job(e, "globex", r.json()["id"])
        yield e
