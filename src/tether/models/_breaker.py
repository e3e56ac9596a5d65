"""A circuit breaker for a model server: after ``failures`` failed calls in a row it stops calling (every call fails
at once with :class:`CircuitOpenError`), and after ``reset_s`` it lets one probe through: a success closes it, a
failure opens it again. Requests then fall back at once instead of each waiting out timeouts and retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from tether.errors import ModelError, TransientError
from tether.models._generator import Completion, Generator, Message

State = Literal["closed", "open", "half_open"]


class CircuitOpenError(TransientError):
    """The model server failed too often; it is not called until the breaker's next probe."""


class CircuitBreaker:
    def __init__(self, failures: int = 3, reset_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("a breaker needs failures >= 1 and reset_s > 0")
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: State = "closed"
        self._failed = 0
        self._opened_at = 0.0
        self._probing = False
        self.opened = 0  # how many times it opened (metrics)

    @property
    def state(self) -> State:
        with self._lock:
            return self._state

    def allow(self) -> float | None:
        """None when a call may go ahead; else the seconds until the next probe."""
        with self._lock:
            if self._state == "closed":
                return None
            wait = self._opened_at + self.reset_s - self._clock()
            if self._state == "open" and wait <= 0:
                self._state, self._probing = "half_open", False
            if self._state == "half_open" and not self._probing:
                self._probing = True  # one probe at a time; the others fail fast until it reports
                return None
            return max(0.0, wait)

    def success(self) -> None:
        with self._lock:
            self._state, self._failed, self._probing = "closed", 0, False

    def failure(self) -> None:
        with self._lock:
            self._failed += 1
            if self._state == "half_open" or self._failed >= self.failures:
                if self._state != "open":
                    self.opened += 1
                self._state, self._opened_at, self._probing = "open", self._clock(), False

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"state": self._state, "failed_in_a_row": self._failed, "opened": self.opened}


class BreakerGenerator:
    """A :class:`Generator` behind a :class:`CircuitBreaker`: a failed call (the server unreachable, timing out,
    answering 5xx or a malformed reply) counts against it; while it is open, calls fail at once."""

    def __init__(self, inner: Generator, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker
        self.model_id = inner.model_id

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float | None = None,
    ) -> Completion:
        wait = self.breaker.allow()
        if wait is not None:
            raise CircuitOpenError(
                f"model {self.model_id}: not called, its server failed {self.breaker.failures} times in a row "
                f"(circuit open; next probe in {wait:.0f} s)"
            )
        try:
            got = self.inner.complete(messages, json_schema=json_schema, max_tokens=max_tokens, temperature=temperature)
        except (TransientError, ModelError):
            self.breaker.failure()
            raise
        self.breaker.success()
        return got
