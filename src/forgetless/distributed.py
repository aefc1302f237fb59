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
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from forgetless.engine import make_engine
from forgetless.layers import layer_from_config
from forgetless.learner import ContinualClassifier, check_input_scale
from forgetless.linalg import serialised
from forgetless.statistics import SufficientStatistics
from forgetless.validation import check_features, check_label_family, check_labels


@functools.lru_cache(maxsize=4)
def _layer(config_json: str) -> Any:
    """A random layer rebuilt from its configuration, once per worker process."""
    return layer_from_config(json.loads(config_json), {})


@serialised  # a worker's threads take turns, as learners do (forgetless.linalg.compute_lock)
def partition_statistics(
    X: np.ndarray | None,
    labels: np.ndarray,
    classes: np.ndarray,
    layer: Any,
    per_class_gram: bool = False,
    dtype: str = "float64",
) -> SufficientStatistics:
    """Sums of one partition, with columns for ``classes`` (sorted). Runs on a worker.

    ``layer`` is a random layer's JSON configuration (rebuilt there from its seed) or a layer.
    """
    layer = _layer(layer) if isinstance(layer, str) else layer
    if X is None:  # an empty partition of raw inputs, not encoded (encode_partition)
        X = np.empty((0, layer.n_features))
    if np.shape(X)[:1] == (0,) and np.size(labels) == 0:  # an empty partition (e.g. filtered)
        if np.ndim(X) != 2 or np.shape(X)[1] != layer.n_features:
            check_features(X, layer.n_features)  # the same error as for a full partition
        return SufficientStatistics(layer.n_outputs, classes.size, per_class_gram)
    X = check_features(X, layer.n_features)
    check_input_scale(X, dtype)
    if len(labels) != X.shape[0]:
        raise ValueError(
            f"a partition holds {X.shape[0]} rows of X but {len(labels)} labels: X and y must "
            "be partitioned alike"
        )
    labels = check_labels(labels, X.shape[0])  # as partial_fit reads them: one type, whole
    index = np.searchsorted(classes, labels)
    if labels.size and (index.max() >= classes.size or np.any(classes[index] != labels)):
        raise ValueError("a partition holds labels missing from the class list")
    return make_engine(None, dtype).statistics(layer, X, index, classes.size, per_class_gram, None)


def encode_partition(inputs: Sequence[Any], encoder: Any) -> np.ndarray | None:
    """Raw inputs of one partition through an encoder (``encoder.encode(batch)`` or a callable);
    None for an empty partition (an encoder may not know its width before it encodes)."""
    inputs = list(inputs)
    if not inputs:
        return None
    encode: Callable[[Any], np.ndarray] = getattr(encoder, "encode", encoder)
    return np.asarray(encode(inputs), dtype=np.float32)


def _check_split_every(split_every: Any) -> int:
    """The fan-in of the reduction tree: an integer of at least 2 (1 never shrinks a level)."""
    if isinstance(split_every, bool) or not isinstance(split_every, (int, np.integer)):
        raise ValueError(f"split_every must be an integer >= 2, got {split_every!r:.60}")
    if split_every < 2:
        raise ValueError(
            f"split_every must be >= 2 (how many sums each tree node adds), got {split_every}"
        )
    return int(split_every)


def _gathered_labels(parts: list[Any]) -> np.ndarray:
    """Every label of the collection, read as partial_fit reads a batch's labels (one type for
    all, strings as strings, whole numbers), so the class list is what ``fit`` would make.
    ``parts``: typed arrays (a Dask array's blocks) or lists (a bag's partitions)."""
    dtypes = {p.dtype for p in parts if isinstance(p, np.ndarray) and p.dtype != object}
    typed = len(dtypes) == 1 and all(isinstance(p, np.ndarray) for p in parts)
    pieces = [
        np.asarray(p).ravel() if typed else np.asarray(p, dtype=object).ravel() for p in parts
    ]
    merged = np.concatenate(pieces) if pieces else np.zeros(0, dtype=object)
    if merged.size == 0:
        raise ValueError("Found array with 0 sample(s): the Dask collection is empty")
    return check_labels(merged, merged.shape[0])


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


def _start(clf: ContinualClassifier, n_features: int, classes: np.ndarray) -> Any:
    """The learner whose layer the partitions use (``clf`` itself once fitted), checked."""
    base = clf._first_layer(n_features)
    if base.n_features_in_ != n_features:
        raise ValueError(
            f"X has {n_features} features, but ContinualClassifier is expecting "
            f"{base.n_features_in_} features as input."
        )
    if clf.__sklearn_is_fitted__():
        check_label_family(classes, clf.classes_)
    return base


def _shipped_layer(layer: Any) -> Any:
    """What travels to the workers: a random layer's configuration (rebuilt there from its
    seed, never shipped as a matrix), or a guided layer itself (its units are data)."""
    return json.dumps(layer.config(), sort_keys=True) if not layer.arrays() else layer


def _classes(clf: ContinualClassifier, labels_seen: np.ndarray) -> np.ndarray:
    if clf.__sklearn_is_fitted__() and clf.classes_.size:
        check_label_family(labels_seen, clf.classes_)  # before their union mixes the types
        return np.union1d(clf.classes_, labels_seen)
    return labels_seen


def _commit(
    clf: ContinualClassifier,
    base: Any,
    total: SufficientStatistics,
    classes: np.ndarray,
    names: np.ndarray | None = None,
) -> ContinualClassifier:
    """The sums join ``clf`` through ``merge``, with all of its checks (``names``: the Dask
    dataframe's columns, compared with what ``clf`` learned): nothing changes before
    everything was computed and checked."""
    batch = ContinualClassifier.from_statistics(base, total, classes)
    if names is not None:
        batch.feature_names_in_ = names
    return clf.merge(batch)


def _first_difference(names: np.ndarray, learned: np.ndarray) -> str:
    for i, (a, b) in enumerate(zip(names, learned, strict=False)):
        if a != b:
            return f"column {i} is {a!r}, learned {b!r}"
    return f"{len(names)} columns, learned {len(learned)}"


def _column_names(X: Any) -> np.ndarray | None:
    """A Dask dataframe's column names when all are strings (as scikit-learn keeps them)."""
    columns = getattr(X, "columns", None)
    if columns is None or not all(isinstance(c, str) for c in columns):
        return None
    return np.asarray(list(columns), dtype=object)


def _check_compute_options(client: Any, compute_kwargs: dict[str, Any]) -> None:
    if client is not None and compute_kwargs:
        raise ValueError(
            f"compute options {sorted(compute_kwargs)} are for Dask's own schedulers; with "
            "client= the client schedules the work: pass one or the other"
        )


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
    feature columns, with labels as a Dask array or series of the same partitioning. Each
    partition's rows are checked as ``partial_fit`` checks a batch (their scale, which a
    partition of rows near the origin alone can fail where the whole collection passes)."""
    import dask
    import dask.array as da

    names = _column_names(X)
    learned = getattr(clf, "feature_names_in_", None)
    if names is not None and learned is not None and list(names) != list(learned):
        raise ValueError(  # before any work, as partial_fit refuses them
            "X's columns are not the feature names this learner learned, in that order "
            f"(first difference: {_first_difference(names, learned)})"
        )
    if clf.__sklearn_is_fitted__() and (names is None) != (learned is None):
        # as partial_fit (scikit-learn's check): a warning, and the learner keeps what it had
        warnings.warn(
            "X has feature names, but ContinualClassifier was fitted without feature names"
            if learned is None
            else "X does not have valid feature names, but ContinualClassifier was fitted with "
            "feature names",
            UserWarning,
            stacklevel=2,
        )
        names = learned
    if hasattr(X, "to_dask_array"):
        X = X.to_dask_array(lengths=True)
    if hasattr(y, "to_dask_array"):
        y = y.to_dask_array(lengths=True)
    split_every = _check_split_every(split_every)
    _check_compute_options(client, compute_kwargs)
    X, y = da.asarray(X), da.asarray(y)
    # unknown chunk sizes (e.g. a DataFrame's .values): counted once, so X and y can be aligned
    X, y = (a.compute_chunk_sizes() if np.isnan(a.shape).any() else a for a in (X, y))
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d), got {X.ndim}-D")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column of labels, as partial_fit takes it
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (one label per row of X), got shape {y.shape}")
    n_rows, n_labels = X.shape[0], y.shape[0]
    if n_rows == n_rows and n_labels == n_labels and n_rows != n_labels:  # (NaN: not known yet)
        raise ValueError(f"X has {n_rows} samples but y has {n_labels} labels")
    X = X.rechunk({1: -1})
    y = y.rechunk((X.chunks[0],))
    labels_seen = np.unique(_gathered_labels([_compute(y, client, compute_kwargs)]))
    classes = _classes(clf, labels_seen)
    base = _start(clf, X.shape[1], classes)
    layer = _shipped_layer(base.projection_)
    parts = [
        dask.delayed(partition_statistics, pure=True)(
            xb, yb, classes, layer, clf.per_class_gram, clf.compute_dtype
        )
        for xb, yb in zip(X.to_delayed().ravel(), y.to_delayed().ravel(), strict=True)
    ]
    total = _compute(_tree_sum(parts, split_every), client, compute_kwargs)
    return _commit(clf, base, total, classes, names)


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

    split_every = _check_split_every(split_every)
    _check_compute_options(client, compute_kwargs)
    in_parts, label_parts = inputs.to_delayed(), labels.to_delayed()
    if len(in_parts) != len(label_parts):
        raise ValueError("inputs and labels must have the same number of partitions")
    label_lists = (
        dask.compute(*label_parts, **compute_kwargs)
        if client is None
        else (client.gather(client.compute(label_parts)))
    )
    labels_seen = np.unique(_gathered_labels(list(label_lists)))
    classes = _classes(clf, labels_seen)
    encoded = [dask.delayed(encode_partition, pure=True)(p, encoder) for p in in_parts]
    width = getattr(encoder, "dim", None)
    if not width:  # the encoder's width, from a partition that holds samples
        first = next((i for i, part in enumerate(label_lists) if len(part)), None)
        if first is None:
            raise ValueError("the bag holds no samples: every partition is empty")
        width = int(_compute(dask.delayed(np.shape)(encoded[first]), client, compute_kwargs)[1])
    base = _start(clf, width, classes)
    layer = _shipped_layer(base.projection_)
    parts = [
        dask.delayed(partition_statistics, pure=True)(
            xb, list(lb), classes, layer, clf.per_class_gram, clf.compute_dtype
        )
        for xb, lb in zip(encoded, label_lists, strict=True)
    ]
    total = _compute(_tree_sum(parts, split_every), client, compute_kwargs)
    return _commit(clf, base, total, classes)


def merge_all(learners: Sequence[ContinualClassifier], split_every: int = 2) -> ContinualClassifier:
    """Merge many learners (sites, clients, shards) by a tree of pairwise merges; returns a new
    learner. Refuses learners of different settings, seeds or widths, like ``merge``."""
    import copy

    if not learners:
        raise ValueError("no learners to merge")
    split_every = _check_split_every(split_every)
    if len({id(learner) for learner in learners}) < len(learners):
        raise ValueError(
            "merge_all got the same learner more than once: its data would count twice"
        )
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
