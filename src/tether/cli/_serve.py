"""`tether serve`: the HTTP service, the web page and the OpenAI-compatible API over this index."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from tether.cli._common import ConfigOpt, app, err


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option("--host", help="bind address (default service.host: loopback)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default service.port: 8321)")] = None,
    config: ConfigOpt = None,
    warm: Annotated[bool, typer.Option("--warm/--no-warm", help="load the models before taking requests")] = True,
    grace: Annotated[float, typer.Option("--grace", help="seconds in-flight requests get to finish on SIGTERM")] = 30.0,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs), the web page at /, and /v1/chat/completions.

    Every request but /healthz, /readyz and the page needs an API key (`tether keys create --tenant T`). Logs are
    JSON lines on stderr. SIGTERM or Ctrl-C: new connections are refused, requests in flight finish (up to
    --grace seconds), a running ingest job finishes or runs again at the next start.
    """
    import uvicorn

    from tether._api import Tether
    from tether.config import load_settings
    from tether.service import create_app

    settings = load_settings(config)
    if not settings.tenants:
        err.print("[bold red]error:[/] the service needs tenants (tenants: in tether.yaml) and keys for them")
        raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    application = create_app(Tether(settings), warm=warm)
    uvicorn.run(
        application,
        host=host or settings.service.host,
        port=port or settings.service.port,
        timeout_graceful_shutdown=int(grace),
        access_log=False,  # the service logs each request as a JSON line (tether.service.access)
        log_level="info",
    )


@app.command("mcp")
def mcp(
    key: Annotated[
        str | None,
        typer.Option("--key", envvar="TETHER_API_KEY", help="the API key the server acts as (env TETHER_API_KEY)"),
    ] = None,
    transport: Annotated[str, typer.Option("--transport", help="stdio (default) or http (streamable HTTP)")] = "stdio",
    host: Annotated[str, typer.Option("--host", help="http: bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="http: port")] = 8322,
    tools: Annotated[
        str | None,
        typer.Option("--tools", help="MODULE:ATTR, a list of typed tools (or a function returning one) to offer"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve Tether over the Model Context Protocol: `search`, `ask` and typed tools, as one API key's tenant and
    role, under the same permissions and policy (tool calls run through the orchestrator and the audit log).

    Over http every request must carry the key (Authorization: Bearer); the MCP endpoint is /mcp.
    """
    import importlib

    from tether._api import Tether
    from tether.config import load_settings
    from tether.errors import RequestError
    from tether.service._auth import Principal
    from tether.service._keys import open_key_store
    from tether.service._mcp import RequireKey, build_mcp

    if transport not in ("stdio", "http"):
        raise RequestError(f"--transport: stdio or http, not {transport!r}")
    if not key:
        raise RequestError("an API key is needed: --key tth_... or TETHER_API_KEY (`tether keys create`)")
    settings = load_settings(config)
    store = open_key_store(settings)
    try:
        found = store.authenticate(key)
    finally:
        store.close()
    if found is None:
        raise RequestError("the API key is not valid (unknown, malformed or revoked)")
    who = Principal(key_id=found.id, tenant=found.tenant, role=found.role, user=found.id)
    offered = None
    if tools:
        module, _, attr = tools.partition(":")
        try:
            got = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as e:
            raise RequestError(f"--tools {tools}: {e}") from None
        offered = list(got() if callable(got) else got)
    server = build_mcp(Tether(settings), who, tools=offered)
    if transport == "stdio":
        server.run("stdio")
        return
    import uvicorn

    uvicorn.run(RequireKey(server.streamable_http_app(host=host), key), host=host, port=port, log_level="warning")
