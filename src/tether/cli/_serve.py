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
