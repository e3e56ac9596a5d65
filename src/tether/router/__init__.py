"""The router: where each request starts in the cascade (a tier, or not answering), learned from eval outcomes and
overridden by ``routing.rules``."""

from tether.router._features import BASE_FEATURES, kind_of, request_features
from tether.router._model import REFUSE, Decision, Router, RouterModel, choose, load_router, worth_escalating
from tether.router._rules import by_rules

__all__ = [
    "BASE_FEATURES",
    "REFUSE",
    "Decision",
    "Router",
    "RouterModel",
    "by_rules",
    "choose",
    "kind_of",
    "load_router",
    "request_features",
    "worth_escalating",
]
