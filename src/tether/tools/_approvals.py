"""Who may approve, and what exactly an approval is for.

Approvers are configured identities with roles (in the policy file, ``approvers:``), each with the SHA-256
of a secret they present to :meth:`Approvers.authenticate`. An :class:`Identity` is only ever made by
``authenticate`` and is sealed, so a free-text name ("CFO") is never an approval. An approval is given for
the hash of one exact step (:func:`step_hash`: plan id, step, tool, canonical arguments, preview); a step
whose hash changed since is not approved any more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from tether.errors import TetherError
from tether.tools._names import name_problem, same_person

_SEAL_KEY = os.urandom(32)  # per process: identities cannot be forged by constructing one by hand


class ApprovalError(TetherError):
    """An approval was refused: unknown approver, wrong secret, missing role, requester approving, stale step."""


class ApproverConfig(BaseModel):
    """One approver as configured: ``{id: cara, roles: [manager], secret_sha256: <64 hex>}``."""

    model_config = ConfigDict(extra="forbid")
    id: str
    roles: list[str] = Field(min_length=1)
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the approver's secret")

    @field_validator("id")
    @classmethod
    def _canonical_id(cls, v: str) -> str:
        problem = name_problem(v, "approver id")
        if problem:
            raise ValueError(problem)
        return v


class ApprovalSettings(BaseModel):
    """``approval:`` in the policy file."""

    model_config = ConfigDict(extra="forbid")
    separation_of_duties: bool = Field(False, description="the caller who asked may not approve their own step")
    roles: list[str] | None = Field(None, description="roles that may approve (default: any configured approver)")


class Identity(BaseModel):
    """An authenticated approver. Only :meth:`Approvers.authenticate` makes valid ones."""

    model_config = ConfigDict(frozen=True)
    id: str
    roles: tuple[str, ...]
    _seal: str = PrivateAttr(default="")

    def _expected_seal(self) -> str:
        msg = json.dumps([self.id, list(self.roles)]).encode()
        return hmac.new(_SEAL_KEY, msg, hashlib.sha256).hexdigest()


def hash_secret(secret: str) -> str:
    """The ``secret_sha256`` to configure for an approver's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Approvers:
    """The configured approvers; authenticates them and checks who may approve what."""

    def __init__(self, configs: list[ApproverConfig], settings: ApprovalSettings | None = None) -> None:
        self._by_id: dict[str, ApproverConfig] = {}
        for c in configs:
            if c.id in self._by_id:
                raise ApprovalError(f"approver {c.id!r} is configured twice")
            self._by_id[c.id] = c
        self.settings = settings or ApprovalSettings()

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def authenticate(self, approver_id: str, secret: str) -> Identity:
        """The identity of a configured approver who presents the right secret.

        Raises:
            ApprovalError: Unknown approver or wrong secret (the same message for both).
        """
        cfg = self._by_id.get(approver_id)
        given = hash_secret(secret) if isinstance(secret, str) else ""
        if cfg is None or not hmac.compare_digest(given, cfg.secret_sha256):
            raise ApprovalError(f"approver {approver_id!r} could not be authenticated (unknown id or wrong secret)")
        ident = Identity(id=cfg.id, roles=tuple(cfg.roles))
        ident._seal = ident._expected_seal()
        return ident

    def check(self, who: Any, *, requester: str, roles: list[str] | None) -> Identity:
        """``who`` if it is an authenticated identity allowed to approve a step ``requester`` asked for.

        Raises:
            ApprovalError: Not an authenticated identity (e.g. a name as text), no longer configured,
                without a required role, or the requester themself under separation of duties.
        """
        ident = self.authenticated(who)
        if self.settings.separation_of_duties and same_person(ident.id, requester):
            raise ApprovalError(f"separation of duties: {ident.id} asked for this step and cannot approve it")
        needed = roles if roles is not None else self.settings.roles
        if needed is not None and not set(needed) & set(ident.roles):
            raise ApprovalError(
                f"{ident.id} (roles {', '.join(ident.roles)}) may not approve this step; "
                f"it needs one of {', '.join(needed)}"
            )
        return ident

    def authenticated(self, who: Any) -> Identity:
        """``who`` if it is an identity this registry authenticated (any role).

        Raises:
            ApprovalError: A name as text, a hand-made identity, or an approver no longer configured.
        """
        if not isinstance(who, Identity):
            raise ApprovalError(
                f"an approval needs an authenticated approver (Approvers.authenticate), not {type(who).__name__} "
                f"{str(who)[:40]!r}"
            )
        if not hmac.compare_digest(who._seal, who._expected_seal()):
            raise ApprovalError(f"approver {who.id!r} was not authenticated by this process")
        cfg = self._by_id.get(who.id)
        if cfg is None or tuple(cfg.roles) != who.roles:
            raise ApprovalError(f"approver {who.id!r} is not (or no longer) configured with these roles")
        return who


def step_hash(*, plan_id: str, n: int, tool: str, args: dict[str, Any], preview: Any) -> str:
    """What an approval binds to: the SHA-256 of the plan id, step number, tool, canonical args and preview."""
    blob = json.dumps(
        {"plan": plan_id, "step": n, "tool": tool, "args": args, "preview": preview},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()
