"""Typed tools under least-privilege permissions and policy as code."""

from tether.tools._approvals import ApprovalError, Approvers, Identity, hash_secret
from tether.tools._limits import ArgLimits
from tether.tools._origin import Origin, PlanSource, trace_origin
from tether.tools._permissions import CallerProfile, PermissionDecision, check_permission
from tether.tools._policy import Decision, Policy, PolicyContext, Rule
from tether.tools._schema import (
    EFFECTS,
    Effect,
    IdempotencyConflictError,
    Lax,
    Tool,
    ToolDefinitionError,
    ToolValidationError,
    tool,
    tool_sqlite,
)

__all__ = [
    "EFFECTS",
    "ApprovalError",
    "Approvers",
    "ArgLimits",
    "CallerProfile",
    "Decision",
    "Effect",
    "IdempotencyConflictError",
    "Identity",
    "Lax",
    "Origin",
    "PlanSource",
    "PermissionDecision",
    "Policy",
    "PolicyContext",
    "Rule",
    "Tool",
    "ToolDefinitionError",
    "ToolValidationError",
    "check_permission",
    "hash_secret",
    "tool",
    "tool_sqlite",
    "trace_origin",
]
