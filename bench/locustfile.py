"""Locust users for bench/service_load.py: asks and searches mixed (3:1), each user with its own conversation
turns now and then, and a thumbs-down every 3rd ask. The key and the questions come from the environment."""

from __future__ import annotations

import json
import os
import random

from locust import HttpUser, between, task

KEY = os.environ["TETHER_BENCH_KEY"]
QUESTIONS: list[str] = json.loads(os.environ["TETHER_BENCH_QUESTIONS"])


class Asker(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {KEY}"
        self.asks = 0

    @task(3)
    def ask(self) -> None:
        q = random.choice(QUESTIONS)
        with self.client.post("/v1/ask", json={"question": q}, name="/v1/ask", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            self.asks += 1
            if self.asks % 3 == 0:
                a = r.json()
                body = {"trace_id": a["trace_id"], "question": q, "answer": a["text"], "rating": "down",
                        "category": "other", "reason": "load test"}  # fmt: skip
                self.client.post("/v1/feedback", json=body, name="/v1/feedback")

    @task(1)
    def search(self) -> None:
        self.client.post("/v1/search", json={"query": random.choice(QUESTIONS), "k": 5}, name="/v1/search")
