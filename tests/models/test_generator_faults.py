"""A slow model server: the client times out, retries with backoff, then says which server and why."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tether.errors import TransientError
from tether.models import Message, OpenAICompatGenerator


def test_a_slow_server_times_out_and_is_retried(model_server: Any) -> None:
    model_server.script = [(200, "SLEEP:1.5:" + model_server.reply("late")[1])]
    gen = OpenAICompatGenerator(model_server.url, "m", timeout_s=0.3, retries=1)
    t0 = time.perf_counter()
    with pytest.raises(TransientError, match=r"model server at http://127\.0\.0\.1:\d+/v1 timed out"):
        gen.complete([Message(role="user", content="hi")])
    assert time.perf_counter() - t0 < 1.5 + 0.3  # gave up on its own deadline, not the server's
    time.sleep(1.6)  # let the server's sleeping handlers finish before counting
    assert len(model_server.requests) == 2  # one try plus one retry


def test_a_slow_answer_within_the_timeout_is_fine(model_server: Any) -> None:
    model_server.script = [(200, "SLEEP:0.2:" + model_server.reply("on time")[1])]
    gen = OpenAICompatGenerator(model_server.url, "m", timeout_s=5, retries=0)
    assert gen.complete([Message(role="user", content="hi")]).text == "on time"
