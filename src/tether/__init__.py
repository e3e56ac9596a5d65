"""Tether: grounded answers over your own documents, offline by default.

Example:
    >>> from tether import Tether
    >>> t = Tether.open("tether.yaml")  # doctest: +SKIP
    >>> t.ask("Can I expense a hotel booked last month?")  # doctest: +SKIP
"""

from tether._api import Tether
from tether.contracts import Answer, Citation, Hit, IngestSummary, SearchFilters, StoreStats
from tether.errors import ConfigError, IndexMissingError, IngestError, ModelError, RequestError, TetherError

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Citation",
    "ConfigError",
    "Hit",
    "IndexMissingError",
    "IngestError",
    "IngestSummary",
    "ModelError",
    "RequestError",
    "SearchFilters",
    "StoreStats",
    "Tether",
    "TetherError",
]
