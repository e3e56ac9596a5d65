"""Monitoring: drift of what users ask (MMD over question embeddings) and of outcome rates, from the trace store."""

from tether.monitor._drift import DriftReport, Window, drift_report, mmd_test, proportion_test, welch_test

__all__ = ["DriftReport", "Window", "drift_report", "mmd_test", "proportion_test", "welch_test"]
