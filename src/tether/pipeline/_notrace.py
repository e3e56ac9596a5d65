"""Tracing that records nothing: what a request runs under when tracing is off (or not set up)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class NoSpan:
    def set(self, key: str, value: Any) -> None:
        return None


_SPAN = NoSpan()


class NoRequest:
    trace_id = ""

    @contextmanager
    def stage(self, name: str) -> Iterator[NoSpan]:
        yield _SPAN

    def set(self, key: str, value: Any) -> None:
        return None


_REQUEST = NoRequest()


class NoTracing:
    enabled = False
    export_errors = 0

    @contextmanager
    def request(self, name: str, attributes: dict[str, Any]) -> Iterator[NoRequest]:
        yield _REQUEST

    def flush(self, timeout_s: float = 30.0) -> bool:
        return True

    def close(self) -> None:
        return None
