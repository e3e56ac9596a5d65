"""The service: `tether serve` (an HTTP API with keys, tenants, conversations, memory, feedback, a web page and an
OpenAI-compatible surface). ``create_app`` needs FastAPI; the keys alone do not."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tether.service._keys import ApiKey, KeyStore, open_key_store

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tether._api import Tether

__all__ = ["ApiKey", "KeyStore", "create_app", "open_key_store"]


def create_app(tether: Tether, *, warm: bool = True, **kw: Any) -> FastAPI:
    """The FastAPI app of the service over ``tether`` (see :mod:`tether.service._app`)."""
    from tether.service._app import create_app as _create

    return _create(tether, warm=warm, **kw)
