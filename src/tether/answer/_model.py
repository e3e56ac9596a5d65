from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from tether.errors import ModelError
from tether.models._linear import Logistic

DEFAULT_MODEL_FILE = "support_model.json"


class SupportModel(BaseModel):
    """The extractive answerer's two small models, trained by bench/calibrate_answerer.py.

    ``sentence`` scores how likely one sentence answers the question (it picks what to cite);
    ``answer`` scores, from the evidence as a whole, how likely the best sentence is a correct answer.
    ``threshold`` on that score is where Tether abstains. All were fitted on the calibration split
    only (see ``trained_on``); ``metrics`` are on the held-out split.
    """

    sentence: Logistic
    answer: Logistic
    threshold: float
    trained_on: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


def load_support_model(path: str | Path | None = None) -> SupportModel:
    """The packaged support model, or one at ``path``."""
    try:
        if path is None:
            raw = resources.files("tether").joinpath("data", DEFAULT_MODEL_FILE).read_text(encoding="utf-8")
        else:
            raw = Path(path).read_text(encoding="utf-8")
        return SupportModel.model_validate(json.loads(raw))
    except (OSError, ValueError) as e:
        raise ModelError(
            f"cannot load the answer support model ({e}); run `python bench/calibrate_answerer.py`"
        ) from None
