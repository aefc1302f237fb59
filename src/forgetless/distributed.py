"""Fitting on Dask: each partition's sums are computed where it lives, then tree-reduced.

The statistics are sums, so a cluster only has to compute them partition by partition and add
them up. The random layer travels to the workers as its configuration (kind, seed, sizes), never
as a matrix, and is rebuilt (once per worker process) from it. The result is the single-process
fit up to the order of floating-point additions (coefficients agree to ~1e-12 relative).

Works with any Dask scheduler: the default one, a ``distributed.LocalCluster``, or a cluster at
an address (``Client("tcp://scheduler:8786")``); pass ``client=`` or let Dask use the current
one. If a worker dies mid-fit, Dask recomputes the partitions it held on another worker; since a
partition's sums depend only on its data, the result is unchanged.

What a shared statistic reveals: G = H^T H is the second moment of the projected features and
Q holds per-class sums (so per-class means) and counts. Merging learners across sites or clients
shares those aggregates, not samples; with few samples per class, a class mean can be close to
the samples themselves, so treat the statistics as sensitive as the class means they contain.

>>> import dask.array as da, numpy as np
>>> from sklearn.datasets import load_digits
>>> from forgetless import ContinualClassifier
>>> X, y = load_digits(return_X_y=True)
>>> clf = ContinualClassifier(n_components=200, alpha=1.0)
>>> clf = partial_fit_dask(clf, da.from_array(X, chunks=(300, 64)), da.from_array(y, chunks=300),
...                        scheduler="sync")
>>> single = ContinualClassifier(n_components=200, alpha=1.0).fit(X, y)
>>> bool(np.allclose(clf.coef_, single.coef_, rtol=1e-9, atol=1e-12))
True
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from forgetless.heads import RLSHead
from forgetless.learner import ContinualClassifier
from forgetless.projection import make_projection
from forgetless.statistics import SufficientStatistics
from forgetless.validation import check_features, label_family


@functools.lru_cache(maxsize=4)
def _layer(config_json: str) -> Any:
    """The random layer of a configuration, built once per worker process."""
    config = json.loads(config_json)
    return make_projection(
        config["kind"],
        config["n_features"],
        config["n_components"],
        config["seed"],
        config["activation"],
        config["bias"],
        config["scale"],
        config["gamma"],
    )


def partition_statistics(
    X: np.ndarray,
    labels: np.ndarray,
    classes: np.ndarray,
    layer_config: str,
    per_class_gram: bool = False,
    dtype: str = "float64",
) -> SufficientStatistics:
    """Sums of one partition, with columns for ``classes`` (sorted). Runs on a worker."""
    layer = _layer(layer_config)
    X = check_features(X, layer.n_features)
    labels = np.asarray(labels).ravel()
    index = np.searchsorted(classes, labels)
    if labels.size and (index.max() >= classes.size or np.any(classes[index] != labels)):
        raise ValueError("a partition holds labels missing from the class list")
    stats = SufficientStatistics(layer.n_outputs, classes.size, per_class_gram)
    for start, stop, H in layer.iter_transform(X, np.dtype(dtype).type):
        stats.add(H, index[start:stop])
    return stats


def encode_partition(inputs: Sequence[Any], encoder: Any) -> np.ndarray:
    """Raw inputs of one partition through an encoder (``encoder.encode(batch)`` or a callable)."""
    encode: Callable[[Any], np.ndarray] = getattr(encoder, "encode", encoder)
    return np.asarray(encode(list(inputs)), dtype=np.float32)


def _tree_sum(parts: list[Any], split_every: int) -> Any:
    import dask

    @dask.delayed(pure=True)
    def add(*stats: SufficientStatistics) -> SufficientStatistics:
        total = stats[0].copy()
        for s in stats[1:]:
            total += s
        return total

    while len(parts) > 1:
        parts = [add(*parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def _prepare(clf: ContinualClassifier, n_features: int, classes: np.ndarray) -> dict[str, Any]:
    """The learner's fitted state (a fresh one, not yet assigned, for an unfitted learner)."""
    if clf.projection == "guided":
        raise ValueError("fit the guided layer on a first batch with partial_fit before Dask")
    if not clf.__sklearn_is_fitted__():
        return clf._new_state(np.empty((0, n_features)), np.empty(0, dtype=np.int64))
    if clf.n_features_in_ != n_features:
        raise ValueError(
            f"X has {n_features} features, but ContinualClassifier is expecting "
            f"{clf.n_features_in_} features as input."
        )
    if clf.classes_.size and label_family(clf.classes_) != label_family(classes):
        raise ValueError(f"labels of type {classes.dtype}; this learner has {clf.classes_.dtype}")
    return clf.__dict__


def _layer_config(state: dict[str, Any]) -> str:
    return json.dumps(state["projection_"].config(), sort_keys=True)


def _classes(clf: ContinualClassifier, labels_seen: np.ndarray) -> np.ndarray:
    if labels_seen.size == 0:
        raise ValueError("Found array with 0 sample(s): the Dask collection is empty")
    if clf.__sklearn_is_fitted__() and clf.classes_.size:
        return np.union1d(clf.classes_, labels_seen)
    return labels_seen


def _commit(
    clf: ContinualClassifier,
    state: dict[str, Any],
    total: SufficientStatistics,
    classes: np.ndarray,
) -> None:
    """Everything was computed without error: only now does the learner change."""
    if state is not clf.__dict__:
        clf.__dict__.update(state)
    old = clf.classes_
    clf.statistics_.insert_classes(np.searchsorted(old, np.setdiff1d(classes, old)))
    clf.statistics_ += total
    clf.classes_ = classes
    if isinstance(clf.head_, RLSHead):
        clf.head_.fit(clf.statistics_)
    clf._stale = True


def _compute(value: Any, client: Any, compute_kwargs: dict[str, Any]) -> Any:
    return client.compute(value).result() if client is not None else value.compute(**compute_kwargs)


def partial_fit_dask(
    clf: ContinualClassifier,
    X: Any,
    y: Any,
    client: Any = None,
    split_every: int = 8,
    **compute_kwargs: Any,
) -> ContinualClassifier:
    """``clf.partial_fit`` on a Dask array (n, d) chunked by rows, or a Dask dataframe of
    feature columns, with labels as a Dask array or series of the same partitioning."""
    import dask
    import dask.array as da

    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array(lengths=True)
    if hasattr(y, "to_dask_array"):
        y = y.to_dask_array(lengths=True)
    X, y = da.asarray(X), da.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got {X.ndim}-D")
    X = X.rechunk({1: -1})
    y = y.rechunk((X.chunks[0],))
    labels_seen = np.unique(_compute(y, client, compute_kwargs))
    classes = _classes(clf, labels_seen)
    state = _prepare(clf, X.shape[1], classes)
    config = _layer_config(state)
    parts = [
        dask.delayed(partition_statistics, pure=True)(
            xb, yb, classes, config, clf.per_class_gram, clf.compute_dtype
        )
        for xb, yb in zip(X.to_delayed().ravel(), y.to_delayed().ravel(), strict=True)
    ]
    total = _compute(_tree_sum(parts, split_every), client, compute_kwargs)
    _commit(clf, state, total, classes)
    return clf


def partial_fit_bag(
    clf: ContinualClassifier,
    inputs: Any,
    labels: Any,
    encoder: Any,
    client: Any = None,
    split_every: int = 8,
    **compute_kwargs: Any,
) -> ContinualClassifier:
    """``clf.partial_fit`` on raw inputs in a Dask bag, encoded on the workers.

    ``inputs`` and ``labels`` are Dask bags with the same partitions; ``encoder`` has
    ``encode(list_of_inputs) -> (n, d) array`` (any :mod:`forgetless.encoders` encoder) or is a
    callable doing that. Encoding, projection and sums all run where the partition lives.
    """
    import dask

    in_parts, label_parts = inputs.to_delayed(), labels.to_delayed()
    if len(in_parts) != len(label_parts):
        raise ValueError("inputs and labels must have the same number of partitions")
    label_lists = (
        dask.compute(*label_parts, **compute_kwargs)
        if client is None
        else (client.gather(client.compute(label_parts)))
    )
    labels_seen = np.unique(np.concatenate([np.asarray(p) for p in label_lists]))
    classes = _classes(clf, labels_seen)
    encoded = [dask.delayed(encode_partition, pure=True)(p, encoder) for p in in_parts]
    width = getattr(encoder, "dim", None) or int(
        _compute(dask.delayed(np.shape)(encoded[0]), client, compute_kwargs)[1]
    )
    state = _prepare(clf, width, classes)
    config = _layer_config(state)
    parts = [
        dask.delayed(partition_statistics, pure=True)(
            xb, np.asarray(lb), classes, config, clf.per_class_gram, clf.compute_dtype
        )
        for xb, lb in zip(encoded, label_lists, strict=True)
    ]
    total = _compute(_tree_sum(parts, split_every), client, compute_kwargs)
    _commit(clf, state, total, classes)
    return clf


def merge_all(learners: Sequence[ContinualClassifier], split_every: int = 2) -> ContinualClassifier:
    """Merge many learners (sites, clients, shards) by a tree of pairwise merges; returns a new
    learner. Refuses learners of different settings, seeds or widths, like ``merge``."""
    import copy

    if not learners:
        raise ValueError("no learners to merge")
    level = [copy.deepcopy(learners[0])] + list(learners[1:])
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), split_every):
            group = level[i : i + split_every]
            head = copy.deepcopy(group[0]) if i else group[0]
            for other in group[1:]:
                head.merge(other)
            nxt.append(head)
        level = nxt
    return level[0]
