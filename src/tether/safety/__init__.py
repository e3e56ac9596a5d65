"""Safety: prompt-injection detection (and, as they land, PII redaction and red-team suites)."""

from tether.safety._cues import CUE_FEATURES, cue_features, matched_cues
from tether.safety._injection import Flag, InjectionDetector, InjectionModel, detector_for, load_injection_model

__all__ = [
    "CUE_FEATURES",
    "Flag",
    "InjectionDetector",
    "InjectionModel",
    "cue_features",
    "detector_for",
    "load_injection_model",
    "matched_cues",
]
