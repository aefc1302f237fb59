"""Joint ridge accuracy floors: real encoders on real data, 3,000 train / 1,000 test subsets.

These are the numbers a continual learner must end near; they fail if an encoder, its
preprocessing or a dataset loader silently breaks. Features go through the session cache, so
each subset is encoded once per run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgetless import ContinualClassifier
from forgetless.cache import dataset_features

TRAIN, TEST = 3000, 1000


def joint_ridge_accuracy(encoder: Any, dataset: Any, cache: Any) -> float:
    small = dataset.subset(train=TRAIN, test=TEST, seed=0)
    assert (len(small.train), len(small.test)) == (TRAIN, TEST)
    train, test = dataset_features(encoder, small, cache)
    clf = ContinualClassifier(projection="none", head="ridge", alpha="auto")
    clf.fit(np.asarray(train), small.train.labels)
    return float(clf.score(np.asarray(test), small.test.labels))


def test_fashion_mnist_with_efficientnet(fashion_mnist, efficientnet, feature_cache) -> None:
    accuracy = joint_ridge_accuracy(efficientnet, fashion_mnist, feature_cache)
    assert accuracy >= 0.80, f"Fashion-MNIST / EfficientNet-Lite0: {accuracy:.3f}"


def test_openclipart_with_efficientnet(openclipart, efficientnet, feature_cache) -> None:
    accuracy = joint_ridge_accuracy(efficientnet, openclipart, feature_cache)
    assert accuracy >= 0.70, f"openclipart / EfficientNet-Lite0: {accuracy:.3f}"


def test_wordnet_with_minilm(wordnet, minilm, feature_cache) -> None:
    accuracy = joint_ridge_accuracy(minilm, wordnet, feature_cache)
    assert accuracy >= 0.58, f"WordNet / MiniLM: {accuracy:.3f}"
