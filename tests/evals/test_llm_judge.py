"""The LLM judge and the OpenAI-compatible client against a small real HTTP server on loopback.

The server plays the faults a real model server can show (malformed replies, 5xx, 401, 404); the
client under test is the real one, talking real HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FakeModelServer
from tether.contracts import Answer, Citation
from tether.errors import ModelError, TransientError
from tether.evals import ScoreContext
from tether.evals._llm_judge import LLMJudge
from tether.models import Message, OpenAICompatGenerator


@pytest.fixture
def server(model_server: FakeModelServer) -> FakeModelServer:
    return model_server


DOC = "Reimbursements must be submitted within 30 days of travel."


def answer() -> Answer:
    return Answer(
        question="When must I submit?",
        text=DOC + " [1]",
        abstained=False,
        citations=[
            Citation(n=1, doc_id=1, path="/p/policy.txt", title="policy", section=[], start=0, end=len(DOC), quote=DOC)
        ],
        support=0.9,
        threshold=0.5,
        config_hash="h",
    )


CTX = ScoreContext(document_text=lambda i: DOC, judge=None)  # type: ignore[arg-type]


def test_a_supported_verdict_passes_and_names_the_judge(server: FakeModelServer) -> None:
    server.script = [server.reply('{"verdict": "supported", "reason": "the source says 30 days"}')]
    judge = LLMJudge(OpenAICompatGenerator(server.url, "test-model"))
    score = judge.faithfulness(answer(), CTX)
    assert score.passed and score.judge == "llm:test-model" and score.tokens == 60
    sent = server.requests[0]
    assert sent["response_format"]["type"] == "json_object"  # type: ignore[index]
    assert DOC in sent["messages"][1]["content"]  # type: ignore[index]


def test_an_unparseable_judge_reply_is_a_counted_error_not_a_pass(server: FakeModelServer) -> None:
    server.script = [server.reply("Sure! The answer looks right to me.")]
    score = LLMJudge(OpenAICompatGenerator(server.url, "m")).faithfulness(answer(), CTX)
    assert score.error and score.passed is False and "could not be parsed" in score.reason
    server.script = [server.reply('{"verdict": "probably", "reason": "?"}')]
    score = LLMJudge(OpenAICompatGenerator(server.url, "m")).faithfulness(answer(), CTX)
    assert score.error and "unknown verdict" in score.reason


def test_5xx_is_retried_then_succeeds(server: FakeModelServer) -> None:
    server.script = [(503, "busy"), (500, "oops"), server.reply("hello")]
    gen = OpenAICompatGenerator(server.url, "m", retries=2)
    assert gen.complete([Message(role="user", content="hi")]).text == "hello"
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (401, "no", ModelError, "401"),
        (404, "no", ModelError, "404"),
        (200, "not json at all", ModelError, "malformed reply"),
        (200, '{"choices": []}', ModelError, "malformed reply"),
        (429, "slow down", TransientError, "429"),
    ],
)
def test_server_faults_are_exact_errors(
    server: FakeModelServer, status: int, body: str, error: type[Exception], message: str
) -> None:
    server.script = [(status, body)]
    gen = OpenAICompatGenerator(server.url, "m", retries=0)
    with pytest.raises(error, match=message):
        gen.complete([Message(role="user", content="hi")])


def test_an_unreachable_server_is_a_transient_error_naming_it() -> None:
    gen = OpenAICompatGenerator("http://127.0.0.1:9", "m", retries=0, timeout_s=2)
    with pytest.raises(TransientError, match="127.0.0.1:9"):
        gen.complete([Message(role="user", content="hi")])


def test_eval_run_with_a_configured_llm_judge_counts_unparseable_replies(
    server: FakeModelServer, tmp_path: Path
) -> None:
    server.script = [server.reply("I think so?")]
    cases = tmp_path / "c.yaml"
    cases.write_text(
        "id: ferry\ninput:\n  user: Where does the ferry leave?\n  context_docs: [The ferry leaves the north pier.]\n"
        "scoring: {faithfulness: llm_judge}\n",
        encoding="utf-8",
    )
    (tmp_path / "tether.yaml").write_text("answer: {threshold: 0.0}\n", encoding="utf-8")
    env = {**os.environ, "TETHER_LLM_URL": server.url, "TETHER_LLM_MODEL": "judge-model"}
    proc = subprocess.run(
        [sys.executable, "-m", "tether", "eval", str(cases), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout)
    assert run["summary"]["judge"] == "llm:judge-model"
    assert run["summary"]["scorer_errors"] == 1 and run["summary"]["passed"] == 0
    assert run["summary"]["tokens"] == 60 and run["summary"]["model_calls"] == 1
    assert "could not be parsed" in Path(run["report"]).read_text()
