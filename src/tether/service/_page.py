"""The web page: static files served as they are (no build step), calling the same HTTP API with a key."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from tether.service._auth import ServiceError

router = APIRouter(include_in_schema=False)
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _asset(name: str) -> bytes:
    return resources.files("tether.service").joinpath("web", name).read_bytes()


@router.get("/")
def page() -> HTMLResponse:
    return HTMLResponse(_asset("index.html"), headers=_HEADERS)


@router.get("/static/{name}")
def static(name: str) -> Response:
    suffix = name[name.rfind(".") :] if "." in name else ""
    if suffix not in _TYPES or "/" in name or name.startswith("."):
        raise ServiceError(404, "not_found", f"no file {name!r}")
    try:
        body = _asset(name)
    except FileNotFoundError:
        raise ServiceError(404, "not_found", f"no file {name!r}") from None
    return Response(body, media_type=_TYPES[suffix], headers=_HEADERS)
