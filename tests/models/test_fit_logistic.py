"""The router's trainer fits logistic regressions with numpy alone: the fit must be scikit-learn's (L2, C=1, on
standardised features), and degenerate labels must still give a usable, finite model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tether.models._linear import fit_logistic


def test_the_fit_is_scikit_learns() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 5)) * [1.0, 8.0, 0.05, 2.0, 1.0]
    y = x @ [1.0, 0.2, 20.0, -0.5, 0.0] + rng.normal(size=400) > 0
    ours = fit_logistic(x.tolist(), y.tolist(), list("abcde"), l2=1.0)
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=1000).fit(z, y)
    assert np.allclose(ours.coef, ref.coef_[0], atol=1e-4) and abs(ours.intercept - ref.intercept_[0]) < 1e-4
    probs = ours.probabilities(x.tolist())
    assert np.allclose(probs, ref.predict_proba(z)[:, 1], atol=1e-5)


@pytest.mark.parametrize("label", [True, False])
def test_one_class_gives_a_constant_finite_model(label: bool) -> None:
    m = fit_logistic([[1.0, 2.0], [3.0, 4.0], [5.0, 5.0]], [label] * 3, ["a", "b"])
    p = m.probability([100.0, -100.0])
    assert (p > 0.5) == label and 0.0 < p < 1.0 and m.coef == [0.0, 0.0]


def test_a_constant_feature_and_separable_data_stay_finite() -> None:
    x = [[float(i), 1.0] for i in range(20)]
    m = fit_logistic(x, [i >= 10 for i in range(20)], ["i", "const"])
    assert all(np.isfinite(m.coef)) and m.probability([19.0, 1.0]) > 0.9 and m.probability([0.0, 1.0]) < 0.1


def test_rows_and_labels_must_agree() -> None:
    with pytest.raises(ValueError, match="2 rows and 1 labels"):
        fit_logistic([[1.0], [2.0]], [True], ["a"])
