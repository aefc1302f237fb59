"""scikit-learn's own estimator checks, and use inside a Pipeline."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from forgetless import ContinualClassifier

# Every check applies; a small layer keeps the ~50 checks fast.
CHECKED = [
    ContinualClassifier(n_components=64),
    ContinualClassifier(projection="hadamard", n_components=64, head="lda"),
    ContinualClassifier(projection="none", head="rls", alpha=1.0),
    ContinualClassifier(projection="fourier", n_components=64, head="ncm"),
]


@parametrize_with_checks(CHECKED)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_pipeline_and_cross_validation():
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), ContinualClassifier(n_components=500))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.mean() > 0.9
    assert clone(pipe).get_params()["continualclassifier__n_components"] == 500
    np.testing.assert_array_equal(np.sort(pipe.fit(X, y).classes_), np.arange(10))
