"""Every failure a user can cause is a :class:`TetherError` with a message that says what to do.

The CLI prints these without a traceback; anything else is a bug in Tether.
"""

from __future__ import annotations


class TetherError(Exception):
    """Base class of all user-facing errors."""


class RequestError(TetherError):
    """A request is malformed: an empty question or query, a number of hits below 1 (the message says which)."""


class ConfigError(TetherError):
    """tether.yaml is missing, unreadable or invalid (the message names the key)."""


class IngestError(TetherError):
    """A source could not be read or parsed (the message names the file and why)."""


class IndexMissingError(TetherError):
    """There is no index, or it holds no documents yet."""


class IndexMismatchError(TetherError):
    """The index was built with another embedding model or an incompatible layout."""


class ModelError(TetherError):
    """A model could not be loaded or run."""


class DataError(TetherError):
    """An evaluation or calibration data set is missing or malformed."""


class TransientError(TetherError):
    """A failure worth retrying (a timeout, a 429 or 5xx from a model server)."""
