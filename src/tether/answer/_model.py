from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tether.models._linear import Logistic, TrainedModel, load_model_file

DEFAULT_MODEL_FILE = "support_model.json"


class SupportModel(TrainedModel):
    """The extractive answerer's two small models, trained by bench/calibrate_answerer.py.

    ``sentence`` scores how likely one sentence answers the question (it picks what to cite);
    ``answer`` scores, from the evidence as a whole, how likely the best sentence is a correct answer.
    ``threshold`` on that score is where Tether abstains. All were fitted on the calibration split
    only (see ``trained_on``); ``metrics`` are on the held-out split.
    """

    sentence: Logistic
    answer: Logistic
    threshold: float
    shortlist: Logistic | None = None
    """With a reader: a features-only sentence model that picks the ``shortlist_size`` candidates the reader reads
    (the others are dropped); fitted on the same calibration data. None: the reader reads every candidate."""
    shortlist_size: int = Field(0, ge=0)


def load_support_model(path: str | Path | None = None) -> SupportModel:
    """The packaged support model, or one at ``path``."""
    return load_model_file(
        SupportModel, DEFAULT_MODEL_FILE, path, "answer support model", "run `python bench/calibrate_answerer.py`"
    )
