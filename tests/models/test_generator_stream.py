"""Streaming from an OpenAI-compatible server (a real loopback HTTP server plays it), faults included."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tether.errors import ModelError, TransientError
from tether.models import Message, OpenAICompatGenerator

HI = [Message(role="user", content="hi")]


def events(*parts: str, done: bool = True) -> str:
    out = "".join(f"data: {json.dumps({'choices': [{'delta': {'content': p}}]})}\n\n" for p in parts)
    return out + ("data: [DONE]\n\n" if done else "")


def test_deltas_arrive_in_order(model_server: Any) -> None:
    model_server.script = [(200, events("Reimburse", "ments within ", "30 days."))]
    gen = OpenAICompatGenerator(model_server.url, "m")
    assert list(gen.stream(HI)) == ["Reimburse", "ments within ", "30 days."]
    assert model_server.requests[0]["stream"] is True


def test_a_server_killed_mid_stream_is_a_transient_error_saying_how_much_arrived(model_server: Any) -> None:
    model_server.script = [(200, "CUT:" + events("Reimburse", "ments", done=False))]
    gen = OpenAICompatGenerator(model_server.url, "m")
    got: list[str] = []
    with pytest.raises(TransientError, match=r"after 14 characters"):
        for d in gen.stream(HI):
            got.append(d)
    assert "".join(got) == "Reimbursements"


def test_a_stream_that_ends_without_done_is_not_taken_as_complete(model_server: Any) -> None:
    model_server.script = [(200, events("partial", done=False))]
    with pytest.raises(TransientError, match="without \\[DONE\\]"):
        list(OpenAICompatGenerator(model_server.url, "m").stream(HI))


def test_a_malformed_event_and_an_error_status_are_exact_errors(model_server: Any) -> None:
    model_server.script = [(200, "data: {not json}\n\n")]
    with pytest.raises(ModelError, match="malformed stream event"):
        list(OpenAICompatGenerator(model_server.url, "m").stream(HI))
    model_server.script = [(401, "no")]
    with pytest.raises(ModelError, match="401"):
        list(OpenAICompatGenerator(model_server.url, "m").stream(HI))
