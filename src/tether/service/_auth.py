"""Who is calling: an API key -> a tenant, a role and a user; per-key rate limits; the service's error shape."""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass

from fastapi import HTTPException

from tether.service._keys import KeyStore

_USER = re.compile(r"[A-Za-z0-9._@+-]{1,64}")


class ServiceError(HTTPException):
    """An error the service answers with: ``{"error": {"code": ..., "message": ...}}`` and a 4xx/5xx status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code


@dataclass(frozen=True)
class Principal:
    """The caller of one request, from its API key."""

    key_id: str
    tenant: str
    role: str
    user: str  # X-Tether-User when the key's holder serves many people, else the key id


def bearer(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents: ``Authorization: Bearer tth_...`` or ``X-API-Key: tth_...``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return x_api_key


def authenticate(keys: KeyStore, token: str | None, user: str | None) -> Principal:
    """The principal of ``token``; 401 for no key and for any key that does not authenticate (forged, malformed,
    revoked: one answer, so a probe learns nothing), 400 for a malformed user name."""
    if not token:
        raise ServiceError(
            401,
            "unauthenticated",
            "an API key is required: Authorization: Bearer tth_...",
            {"WWW-Authenticate": "Bearer"},
        )
    key = keys.authenticate(token)
    if key is None:
        raise ServiceError(401, "unauthenticated", "the API key is not valid", {"WWW-Authenticate": "Bearer"})
    if user is not None and not _USER.fullmatch(user):
        raise ServiceError(400, "invalid_user", "X-Tether-User: 1-64 letters, digits or . _ @ + -")
    return Principal(key_id=key.id, tenant=key.tenant, role=key.role, user=user or key.id)


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise 429 with Retry-After (seconds until one is back)."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise ServiceError(
                    429,
                    "rate_limited",
                    f"more than {int(self.capacity)} requests a minute for this key; retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
            self._buckets[key] = (tokens - 1.0, now)
