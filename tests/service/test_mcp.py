"""`tether mcp`: an agent host calling search, ask and typed tools, as one key, under the same policy."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_env import free_port, make_env

from tether import Tether
from tether.service._auth import Principal
from tether.service._mcp import build_mcp
from tether.tools import CallerProfile
from tether.tools._ledger_demo import ledger_rows, ledger_tools


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tether, dict[str, str], Path]:
    root = tmp_path_factory.mktemp("mcp")
    t, keys = make_env(root)
    secret = root / "globex.md"
    secret.write_text("# Globex\n\nThe Globex launch code for Project Falcon is 7731-ALPHA.\n", encoding="utf-8")
    t.ingest([secret], tenant="globex")
    return t, keys, root


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_search_and_ask_act_as_the_keys_tenant(corpus: tuple[Tether, dict[str, str], Path]) -> None:
    from mcp import Client

    t, _, _ = corpus
    acme = build_mcp(t, Principal(key_id="k1", tenant="acme", role="user", user="k1"))
    globex = build_mcp(t, Principal(key_id="k2", tenant="globex", role="user", user="k2"))

    async def go(server: Any, tool: str, args: dict[str, Any]) -> Any:
        async with Client(server) as c:
            return await c.call_tool(tool, args)

    q = {"question": "What is the Globex launch code for Project Falcon?"}
    mine = json.loads(_text(_run(go(globex, "ask", q))))
    assert not mine["abstained"] and "7731-ALPHA" in mine["citations"][0]["quote"]
    theirs = _run(go(acme, "ask", q))
    assert "7731" not in _text(theirs) and "globex.md" not in _text(theirs)
    found = _run(go(acme, "search", {"query": "Globex launch code Falcon", "k": 50}))
    assert "globex.md" not in _text(found) and "/shared/" in _text(found)
    answer = json.loads(_text(_run(go(acme, "ask", {"question": "What is the meal allowance in Porto?"}))))
    assert not answer["abstained"] and "35 euros" in answer["citations"][0]["quote"]


def test_typed_tools_run_under_the_profile_and_policy(corpus: tuple[Tether, dict[str, str], Path]) -> None:
    from mcp import Client

    t, _, root = corpus
    ledger = root / "ledger.db"
    who = Principal(key_id="k3", tenant="acme", role="user", user="k3")
    reader = build_mcp(t, who, tools=ledger_tools(ledger), runs_path=root / "runs-r.db")
    writer = build_mcp(
        t,
        who,
        tools=ledger_tools(ledger),
        profile=CallerProfile(name="mcp:k3", role="user", scopes={"read", "write"}),
        runs_path=root / "runs-w.db",
    )

    async def go(server: Any, tool: str, args: dict[str, Any]) -> tuple[list[str], str]:
        async with Client(server) as c:
            listed = await c.list_tools()
            return [x.name for x in listed.tools], _text(await c.call_tool(tool, args))

    names, refused = _run(go(reader, "record_expense", {"employee": "E-17", "amount": 120.0, "note": "taxi"}))
    assert {"search", "ask", "budget_left", "record_expense", "pay_out"} <= set(names)
    assert refused.startswith("not run") and "write" in refused and ledger_rows(ledger) == []
    _, done = _run(go(writer, "record_expense", {"employee": "E-17", "amount": 120.0, "note": "taxi"}))
    assert "E-17" in done and [r[1:3] for r in ledger_rows(ledger)] == [("E-17", 120.0)]
    _, left = _run(go(writer, "budget_left", {"employee": "E-17"}))
    assert json.loads(left) == 1880.0
    _, wrong = _run(go(writer, "record_expense", {"employee": "E-17", "amount": "lots"}))
    assert "lots" not in str(ledger_rows(ledger)) and len(ledger_rows(ledger)) == 1  # a string is not an amount
    assert wrong


def test_stdio_and_http_transports_need_a_valid_key(corpus: tuple[Tether, dict[str, str], Path]) -> None:
    from mcp import Client, StdioServerParameters

    _, keys, root = corpus
    env = {**os.environ, "TETHER_API_KEY": keys["acme"]}
    params = StdioServerParameters(command=sys.executable, args=["-m", "tether", "mcp"], cwd=str(root), env=env)

    async def over_stdio() -> str:
        async with Client(params) as c:
            return _text(await c.call_tool("ask", {"question": "How many vacation days do employees get?"}))

    assert "25 vacation days" in _run(over_stdio())
    bad = subprocess.run(
        [sys.executable, "-m", "tether", "mcp", "--key", keys["revoked"]],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert bad.returncode == 2 and "not valid" in bad.stderr and "Traceback" not in bad.stderr

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether", "mcp", "--transport", "http", "--port", str(port), "--key", keys["acme"]],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        assert r.status_code == 401  # no key
        other = httpx.post(url, json={}, headers={"Authorization": f"Bearer {keys['globex']}"}, timeout=5)
        assert other.status_code == 401  # a valid key, but not this server's

        async def over_http() -> str:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            headers = {"Authorization": f"Bearer {keys['acme']}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=60) as http,
                Client(streamable_http_client(url, http_client=http)) as c,  # type: ignore[arg-type]
            ):
                return _text(await c.call_tool("search", {"query": "meal allowance Porto", "k": 3}))

        assert "travel.md" in _run(over_http())
    finally:
        proc.terminate()
        proc.wait(30)
