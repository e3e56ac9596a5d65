"""Least privilege: a caller profile is granted effects (and optionally named tools); anything else is refused."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tether.tools._schema import Effect, Tool

_READ_ONLY: set[Effect] = {"read"}


class CallerProfile(BaseModel):
    """Who is calling, with what role, allowed to cause which effects."""

    name: str
    role: str = "user"
    scopes: set[Effect] = Field(default_factory=lambda: _READ_ONLY.copy(), description="granted effects; default read")
    tools: set[str] | None = Field(None, description="if set, only these tools, even within the scopes")
    clearance: set[str] = Field(
        default_factory=lambda: {"public", "internal"}, description="data classifications the caller may touch"
    )


class PermissionDecision(BaseModel):
    allowed: bool
    reason: str


def check_permission(profile: CallerProfile, t: Tool) -> PermissionDecision:
    """Refuse a call whose tool is not granted or whose effects exceed the profile's scopes."""
    if profile.tools is not None and t.name not in profile.tools:
        return PermissionDecision(allowed=False, reason=f"{profile.name} is not granted tool {t.name!r}")
    if t.classification not in profile.clearance:
        return PermissionDecision(
            allowed=False, reason=f"{t.name} touches {t.classification} data; {profile.name} is not cleared for it"
        )
    missing = sorted(t.effects - profile.scopes)
    if missing:
        return PermissionDecision(
            allowed=False,
            reason=f"{t.name} has effect(s) {', '.join(missing)} outside {profile.name}'s scopes "
            f"({', '.join(sorted(profile.scopes)) or 'none'})",
        )
    return PermissionDecision(allowed=True, reason=f"{profile.name} may call {t.name}")
