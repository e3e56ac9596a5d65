"""tether.yaml -> typed settings, with a content hash stamped on every answer and eval run."""

from tether.config._history import ConfigHistory, ConfigRecord, SettingChange, diff_settings
from tether.config._load import DEFAULT_CONFIG_NAME, default_yaml, load_settings
from tether.config._settings import (
    PACKAGED_READER,
    AnswerSettings,
    ChunkSettings,
    ComputeSettings,
    DedupeSettings,
    EmbeddingSettings,
    EvalSettings,
    IndexSettings,
    IngestSettings,
    JudgeSettings,
    LLMSettings,
    RerankSettings,
    RetrievalSettings,
    Settings,
    resolve_path,
)

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "PACKAGED_READER",
    "AnswerSettings",
    "ChunkSettings",
    "ComputeSettings",
    "ConfigHistory",
    "ConfigRecord",
    "DedupeSettings",
    "EmbeddingSettings",
    "EvalSettings",
    "IndexSettings",
    "IngestSettings",
    "JudgeSettings",
    "LLMSettings",
    "RerankSettings",
    "RetrievalSettings",
    "SettingChange",
    "Settings",
    "default_yaml",
    "diff_settings",
    "load_settings",
    "resolve_path",
]
