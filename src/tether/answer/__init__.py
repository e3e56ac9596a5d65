"""Grounded answering: the extractive answerer, its support model and abstention."""

from tether.answer._extractive import Candidate, ExtractiveAnswerer
from tether.answer._features import FEATURES
from tether.answer._model import SupportModel, load_support_model

__all__ = ["FEATURES", "Candidate", "ExtractiveAnswerer", "SupportModel", "load_support_model"]
