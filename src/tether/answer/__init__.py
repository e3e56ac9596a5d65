"""Grounded answering: the extractive answerer, its support model and abstention."""

from tether.answer._extractive import Candidate, ExtractiveAnswerer
from tether.answer._features import ANSWER_FEATURES, FEATURES
from tether.answer._model import SupportModel, load_support_model
from tether.answer._reader import Reader, ReaderBundle, load_packaged_reader, load_reader
from tether.models._linear import Logistic

__all__ = [
    "ANSWER_FEATURES",
    "FEATURES",
    "Logistic",
    "Candidate",
    "ExtractiveAnswerer",
    "Reader",
    "ReaderBundle",
    "SupportModel",
    "load_packaged_reader",
    "load_reader",
    "load_support_model",
]
