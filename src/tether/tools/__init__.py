"""Typed tools under least-privilege permissions and policy as code."""

from tether.tools._permissions import CallerProfile, PermissionDecision, check_permission
from tether.tools._policy import Decision, Policy, PolicyContext, Rule
from tether.tools._schema import EFFECTS, Effect, Tool, ToolValidationError, tool

__all__ = [
    "EFFECTS",
    "CallerProfile",
    "Decision",
    "Effect",
    "PermissionDecision",
    "Policy",
    "PolicyContext",
    "Rule",
    "Tool",
    "ToolValidationError",
    "check_permission",
    "tool",
]
