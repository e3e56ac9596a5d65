"""The Generator protocol and its OpenAI-compatible HTTP backend (vLLM, llama.cpp server, Ollama, hosted APIs).

This is the chat-completion core that judges and (with issue 4) answer generation run through: timeouts,
retries with backoff and jitter on transient failures, and exact errors for 401/404/429/5xx/unreachable
servers and malformed replies.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel

from tether.config import LLMSettings, resolve_path
from tether.errors import ModelError, TransientError


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Completion(BaseModel):
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Generator(Protocol):
    """Turns chat messages into a completion."""

    model_id: str

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float | None = None,
    ) -> Completion: ...


class OpenAICompatGenerator:
    """Chat completions over HTTP against any OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        retries: int = 2,
        temperature: float = 0.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model_id = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    def close(self) -> None:
        self._client.close()

    def complete(
        self,
        messages: list[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 512,
        temperature: float | None = None,
    ) -> Completion:
        """One chat completion; ``temperature`` overrides the generator's own for this call (sampling)."""
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.model_dump() for m in messages],
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": max_tokens,
        }
        if json_schema is not None:
            body["response_format"] = {"type": "json_object", "schema": json_schema}
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                return self._once(body)
            except TransientError:
                if attempt == self.retries:
                    raise
                time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
                delay *= 2
        raise AssertionError("unreachable")

    def stream(self, messages: list[Message], *, max_tokens: int = 512) -> Iterator[str]:
        """Yield the completion's text as it arrives (server-sent events, ``stream: true``).

        A connection that drops mid-stream raises :class:`TransientError` naming how much had arrived;
        nothing is retried silently, since part of the text was already handed out.
        """
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.model_dump() for m in messages],
            "temperature": self.temperature,
            "max_tokens": max_tokens,
            "stream": True,
        }
        url = f"{self.base_url}/chat/completions"
        received = 0
        try:
            with self._client.stream("POST", url, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    self._raise_for_status(r, url)
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        delta = json.loads(data)["choices"][0].get("delta", {}).get("content") or ""
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                        raise ModelError(f"malformed stream event from {url}: {data[:120]!r}") from None
                    received += len(delta)
                    if delta:
                        yield delta
        except httpx.TimeoutException:
            raise TransientError(f"model server at {self.base_url} timed out after {received} characters") from None
        except httpx.TransportError as e:
            raise TransientError(
                f"stream from {self.base_url} broke after {received} characters ({e.__class__.__name__})"
            ) from None
        raise TransientError(f"stream from {self.base_url} ended without [DONE] after {received} characters")

    def _raise_for_status(self, r: httpx.Response, url: str) -> None:
        if r.status_code == 401:
            raise ModelError(f"{self.base_url} refused the API key (401); set TETHER_LLM_API_KEY")
        if r.status_code == 404:
            raise ModelError(
                f"{url} not found (404): is this an OpenAI-compatible server, and is model "
                f"{self.model_id!r} served there?"
            )
        if r.status_code == 429 or r.status_code >= 500:
            raise TransientError(f"model server answered {r.status_code}: {r.text[:200]}")
        if r.status_code >= 400:
            raise ModelError(f"model server answered {r.status_code}: {r.text[:300]}")

    def _once(self, body: dict[str, Any]) -> Completion:
        """One request. ``timeout_s`` bounds each read and also the whole reply: a server that trickles a byte
        at a time cannot hold a call (and the request it serves) for longer than that."""
        url = f"{self.base_url}/chat/completions"
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._client.stream("POST", url, json=body) as r:
                parts: list[bytes] = []
                for part in r.iter_bytes():
                    parts.append(part)
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"model server at {self.base_url} did not finish its reply within {self.timeout_s:g}s"
                        )
                content = b"".join(parts)
        except httpx.TimeoutException:
            raise TransientError(f"model server at {self.base_url} timed out") from None
        except httpx.TransportError as e:
            raise TransientError(f"model server at {self.base_url} is unreachable ({e})") from None
        r = httpx.Response(r.status_code, headers=r.headers, content=content, request=r.request)
        self._raise_for_status(r, url)
        try:
            data = r.json()
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError(f"malformed reply from {url}: {r.text[:200]!r}") from None
        if not isinstance(text, str):
            raise ModelError(f"malformed reply from {url}: message content is not text")
        return Completion(
            text=text,
            model=str(data.get("model") or self.model_id),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )


def generator_from_settings(settings: LLMSettings, root: Path | None = None) -> OpenAICompatGenerator | None:
    """The configured model server (env TETHER_LLM_URL / TETHER_LLM_MODEL win over tether.yaml), a local GGUF
    model served by llama.cpp on loopback (``llm.gguf``, relative to ``root``), or None."""
    url = os.environ.get("TETHER_LLM_URL") or settings.url
    if not url and settings.gguf:
        from tether.models._llama_server import local_gguf_server

        gguf = resolve_path(settings.gguf, root or Path.cwd())
        url = local_gguf_server(settings.llama_python or sys.executable, gguf, n_ctx=settings.n_ctx)
    if not url:
        return None
    model = os.environ.get("TETHER_LLM_MODEL") or settings.model or "default"
    return OpenAICompatGenerator(
        url,
        model,
        api_key=os.environ.get(settings.api_key_env),
        timeout_s=settings.timeout_s,
        retries=settings.retries,
    )
