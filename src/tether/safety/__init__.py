"""Safety: prompt-injection detection, PII and secrets redaction (traces and the audit log always)."""

from tether.safety._cues import CUE_FEATURES, cue_features, matched_cues, order_to_model, repeats_prompt
from tether.safety._injection import InjectionDetector, InjectionModel, detector_for, load_injection_model
from tether.safety._pii import KINDS as PII_KINDS
from tether.safety._pii import PatternRedactor, PiiSpan, Redactor, redact_json, redact_parsed, redact_text
from tether.safety._presidio import PresidioRedactor, presidio_redactor

__all__ = [
    "PII_KINDS",
    "PatternRedactor",
    "PresidioRedactor",
    "presidio_redactor",
    "PiiSpan",
    "Redactor",
    "redact_json",
    "redact_parsed",
    "redact_text",
    "CUE_FEATURES",
    "InjectionDetector",
    "InjectionModel",
    "cue_features",
    "detector_for",
    "load_injection_model",
    "matched_cues",
    "order_to_model",
    "repeats_prompt",
]
