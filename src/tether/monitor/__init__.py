"""Monitoring: drift of what users ask (MMD over question embeddings, topic shares) and of outcome rates, from the
trace store (`tether monitor report`, `tether monitor metrics`)."""

from tether.monitor._drift import (
    DriftReport,
    Topic,
    Window,
    drift_report,
    mmd_test,
    proportion_test,
    share_test,
    welch_test,
)
from tether.monitor._html import render_html

__all__ = [
    "DriftReport",
    "Topic",
    "Window",
    "drift_report",
    "mmd_test",
    "proportion_test",
    "render_html",
    "share_test",
    "welch_test",
]
