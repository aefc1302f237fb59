"""Dask: partition sums tree-reduced on a LocalCluster equal the single-process fit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import IN_CI, require
from forgetless import ContinualClassifier
from forgetless._install import install_line

# Skipped with the install line on a machine without Dask; CI must have it (an import error).
if IN_CI:
    import dask
    import dask.array as da
    import distributed
else:
    dask = pytest.importorskip("dask", reason=install_line("dask"))
    da = pytest.importorskip("dask.array", reason=install_line("dask"))
    distributed = pytest.importorskip("distributed", reason=install_line("dask"))
RTOL = 1e-9


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def digits():
    return load_digits(return_X_y=True)


def same(a, b):
    np.testing.assert_array_equal(a.classes_, b.classes_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=RTOL, atol=RTOL * np.abs(b.coef_).max())


def test_dask_array_fit_equals_single_process(client, digits):
    from forgetless.distributed import partial_fit_dask

    X, y = digits
    labels = np.array(list("abcdefghij"))[y]
    clf = ContinualClassifier(n_components=300, alpha=1.0)
    first = y < 5
    partial_fit_dask(
        clf,
        da.from_array(X[first], chunks=(200, 32)),
        da.from_array(labels[first], chunks=200),
        client=client,
    )
    partial_fit_dask(
        clf,
        da.from_array(X[~first], chunks=(150, 64)),
        da.from_array(labels[~first], chunks=150),
        client=client,
    )
    single = ContinualClassifier(n_components=300, alpha=1.0).fit(X, labels)
    same(clf, single)
    np.testing.assert_array_equal(clf.predict(X), single.predict(X))


def test_dask_dataframe_input(client, digits):
    pd = require("pandas", install_line("dask"))
    dd = require("dask.dataframe", install_line("dask"))
    from forgetless.distributed import partial_fit_dask

    X, y = digits
    frame = dd.from_pandas(pd.DataFrame(X, columns=[f"f{i}" for i in range(64)]), npartitions=5)
    target = dd.from_pandas(pd.Series(y), npartitions=5)
    clf = partial_fit_dask(
        ContinualClassifier(n_components=200, alpha=1.0), frame, target, client=client
    )
    same(clf, ContinualClassifier(n_components=200, alpha=1.0).fit(X, y))
    assert list(clf.feature_names_in_) == [f"f{i}" for i in range(64)]


def test_dask_dataframe_columns_are_checked_as_partial_fit_checks_them(digits):
    """Reordered or renamed columns were added to the sums as if they were the learned ones."""
    pd = require("pandas", install_line("dask"))
    dd = require("dask.dataframe", install_line("dask"))
    from forgetless.distributed import partial_fit_dask

    X, y = digits
    names = [f"f{i}" for i in range(64)]
    frame = pd.DataFrame(X, columns=names)
    clf = ContinualClassifier(n_components=100, alpha=1.0).fit(frame.iloc[:500], y[:500])
    coef = clf.coef_.copy()
    labels = da.from_array(y[500:], chunks=500)
    for other in (frame[names[::-1]], frame.set_axis([f"g{i}" for i in range(64)], axis=1)):
        with pytest.raises(ValueError, match="columns are not the feature names"):
            partial_fit_dask(clf, dd.from_pandas(other.iloc[500:], npartitions=2), labels,
                             scheduler="sync")  # fmt: skip
    np.testing.assert_array_equal(clf.coef_, coef)
    partial_fit_dask(clf, dd.from_pandas(frame.iloc[500:], npartitions=2), labels,
                     scheduler="sync")  # fmt: skip
    same(clf, ContinualClassifier(n_components=100, alpha=1.0).fit(frame, y))


class DyingOnceEncoder:
    """Scales pixels like a trivial encoder, but kills its worker process the first time."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.dim = 64

    def encode(self, batch: list) -> np.ndarray:
        if not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)  # the worker process dies mid-fit
        return np.asarray(batch, dtype=np.float32) / 16.0


def test_bag_of_raw_inputs_survives_a_worker_death(client, digits, tmp_path):
    db = require("dask.bag", install_line("dask"))
    from forgetless.distributed import partial_fit_bag

    X, y = digits
    marker = str(tmp_path / "died")
    bag = db.from_sequence(list(X), npartitions=6)
    labels = db.from_sequence(list(y), npartitions=6)
    clf = partial_fit_bag(
        ContinualClassifier(n_components=200, alpha=1.0),
        bag,
        labels,
        DyingOnceEncoder(marker),
        client=client,
    )
    assert os.path.exists(marker)  # a worker really died during the fit
    single = ContinualClassifier(n_components=200, alpha=1.0).fit(X.astype(np.float32) / 16.0, y)
    same(clf, single)


class WidthLaterEncoder:
    """Knows its width only once it has encoded something (as the raw encoder does): on a
    worker, a copy that was given no rows still says None."""

    dim = None

    def encode(self, batch: list) -> np.ndarray:
        out = np.asarray(batch, dtype=np.float32).reshape(len(batch), -1) / 16.0
        self.dim = out.shape[1] if len(batch) else None
        return out


@pytest.mark.parametrize("empty", [0, 2])
def test_bag_with_an_empty_partition_equals_a_fit(digits, empty):
    # an empty partition was encoded too, into (0, 0), and its width taken from the first one:
    # "n_features must be >= 1" for an empty first partition, a refused shape elsewhere
    db = require("dask.bag", install_line("dask"))
    from forgetless.distributed import partial_fit_bag

    X, y = digits
    parts = np.array_split(np.arange(600), 4)
    parts[empty] = parts[empty][:0]
    rows = np.concatenate(parts)
    bag = db.from_delayed([dask_delayed_list(list(X[p])) for p in parts])
    labels = db.from_delayed([dask_delayed_list(list(y[p])) for p in parts])
    clf = partial_fit_bag(
        ContinualClassifier(n_components=200, alpha=1.0),
        bag,
        labels,
        WidthLaterEncoder(),
        scheduler="processes",
    )
    single = ContinualClassifier(n_components=200, alpha=1.0)
    same(clf, single.fit(X[rows].astype(np.float32) / 16.0, y[rows]))


def dask_delayed_list(items: list):
    import dask

    return dask.delayed(lambda values: values, pure=True)(items)


def test_dask_arrays_of_unknown_chunk_sizes_are_counted(digits):
    # a DataFrame's .values has unknown chunk sizes: dask's "Chunks must be unchanging" before
    dd = require("dask.dataframe", install_line("dask"))
    import pandas as pd

    from forgetless.distributed import partial_fit_dask

    X, y = digits
    frame = dd.from_pandas(pd.DataFrame(X[:400]), npartitions=4)
    clf = partial_fit_dask(ContinualClassifier(n_components=100, alpha=1.0), frame.values, y[:400])
    same(clf, ContinualClassifier(n_components=100, alpha=1.0).fit(X[:400], y[:400]))


def test_tree_merge_of_many_shards(digits):
    from forgetless.distributed import merge_all

    X, y = digits
    shards = np.array_split(np.arange(len(y)), 7)
    learners = [ContinualClassifier(n_components=150, alpha=1.0).fit(X[s], y[s]) for s in shards]
    merged = merge_all(learners)
    same(merged, ContinualClassifier(n_components=150, alpha=1.0).fit(X, y))
    assert learners[0].n_samples_seen_ == shards[0].size  # inputs are not modified
    with pytest.raises(ValueError, match="different settings"):
        merge_all([learners[0], ContinualClassifier(n_components=100).fit(X, y)])


def test_bad_dask_input_leaves_learner_unchanged(digits):
    from forgetless.distributed import partial_fit_dask

    X, y = digits
    clf = ContinualClassifier(n_components=100, alpha=1.0).fit(X, y)
    coef = clf.coef_.copy()
    with pytest.raises(ValueError, match="expecting 64 features"):
        partial_fit_dask(
            clf,
            da.from_array(X[:, :10], chunks=(500, 10)),
            da.from_array(y, chunks=500),
            scheduler="sync",
        )
    bad = X.copy()
    bad[700, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        partial_fit_dask(
            clf,
            da.from_array(bad, chunks=(500, 64)),
            da.from_array(y, chunks=500),
            scheduler="sync",
        )
    np.testing.assert_array_equal(clf.coef_, coef)
    fresh = ContinualClassifier(n_components=100)
    with pytest.raises(ValueError, match="NaN"):
        partial_fit_dask(
            fresh,
            da.from_array(bad, chunks=(500, 64)),
            da.from_array(y, chunks=500),
            scheduler="sync",
        )
    assert not fresh.__sklearn_is_fitted__()
    for scale, dtype in ((1e-200, "float64"), (1e-100, "float64"), (1e-30, "float32")):
        # refused as partial_fit refuses them (they were learned as G = 0, silently)
        small = ContinualClassifier(n_components=100, alpha=1.0, compute_dtype=dtype)
        with pytest.raises(ValueError, match="features are too small"):
            partial_fit_dask(
                small,
                da.from_array(X * scale, chunks=(500, 64)),
                da.from_array(y, chunks=500),
                scheduler="sync",
            )
        assert not small.__sklearn_is_fitted__()


def test_labels_are_read_as_partial_fit_reads_them(digits):
    """Continuous or mixed labels are refused as partial_fit refuses them (they used to make a
    class per value, or merge 1 and "1"); strings from a dataframe become strings, so the
    learner saves and keeps learning from plain numpy strings."""
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd

    from forgetless.distributed import partial_fit_bag, partial_fit_dask

    X, y = digits
    Xd = da.from_array(X, chunks=(600, 64))
    for labels, message in (
        (np.linspace(0.0, 1.0, len(y)), "continuous"),
        (y + 0.5, "continuous"),
        (np.where(np.arange(len(y)) % 2, y, np.nan), "NaN"),
    ):
        fresh = ContinualClassifier(n_components=100, alpha=1.0)
        with pytest.raises(ValueError, match=message):
            partial_fit_dask(fresh, Xd, da.from_array(labels, chunks=600), scheduler="sync")
        assert not fresh.__sklearn_is_fitted__()

    names = np.array(list("abcdefghij"))[y]
    series = dd.from_pandas(pd.Series(names, dtype=object), npartitions=3)
    clf = partial_fit_dask(
        ContinualClassifier(n_components=100, alpha=1.0),
        dd.from_pandas(pd.DataFrame(X), npartitions=3).to_dask_array(lengths=True),
        series,
        scheduler="sync",
    )
    assert clf.classes_.dtype.kind == "U"
    same(clf, ContinualClassifier(n_components=100, alpha=1.0).fit(X, names))
    clf.partial_fit(X[:10], names[:10])  # plain numpy strings join the same classes

    mixed = [int(v) if i % 3 else str(v) for i, v in enumerate(y)]  # 1 and "1"
    inputs = db.from_sequence(list(X), npartitions=3)
    with pytest.raises(ValueError, match="mixes label types"):
        partial_fit_bag(
            ContinualClassifier(n_components=100, alpha=1.0),
            inputs,
            db.from_sequence(mixed, npartitions=3),
            lambda rows: np.asarray(rows),
            scheduler="sync",
        )
    fitted = ContinualClassifier(n_components=100, alpha=1.0).fit(X, y)
    with pytest.raises(ValueError, match="str labels"):
        partial_fit_dask(fitted, Xd, da.from_array(names, chunks=600), scheduler="sync")


def test_empty_partitions_add_nothing_and_shapes_are_named(digits):
    """A filtered collection's empty partitions add zero sums (they were refused); y of another
    length, or not one column, is named before any work."""
    from forgetless.distributed import partial_fit_dask

    X, y = digits
    chunks = (0, 900, 0, len(y) - 900)
    clf = partial_fit_dask(
        ContinualClassifier(n_components=100, alpha=1.0),
        da.from_array(X, chunks=(chunks, 64)),
        da.from_array(y, chunks=(chunks,)),
        scheduler="sync",
    )
    same(clf, ContinualClassifier(n_components=100, alpha=1.0).fit(X, y))
    fresh = ContinualClassifier(n_components=100, alpha=1.0)
    with pytest.raises(ValueError, match="X has 1797 samples but y has 1796 labels"):
        partial_fit_dask(fresh, da.from_array(X), da.from_array(y[:-1]), scheduler="sync")
    with pytest.raises(ValueError, match="y must be 1-D"):
        partial_fit_dask(fresh, da.from_array(X), da.from_array(np.c_[y, y]), scheduler="sync")
    column = partial_fit_dask(
        ContinualClassifier(n_components=100, alpha=1.0),
        da.from_array(X, chunks=(600, 64)),
        da.from_array(y[:, None], chunks=(600, 1)),
        scheduler="sync",
    )
    same(column, clf)


def test_reduction_settings_are_checked(digits):
    """split_every=1 looped forever; the same learner twice counted its data twice; compute
    options beside a client were silently ignored."""
    from forgetless.distributed import merge_all, partial_fit_dask

    X, y = digits
    clf = ContinualClassifier(n_components=100, alpha=1.0).fit(X, y)
    Xd, yd = da.from_array(X, chunks=(600, 64)), da.from_array(y, chunks=600)
    for bad in (1, 0, -3, 2.5, True):
        with pytest.raises(ValueError, match="split_every"):
            partial_fit_dask(clf, Xd, yd, split_every=bad, scheduler="sync")
        with pytest.raises(ValueError, match="split_every"):
            merge_all([clf, ContinualClassifier(n_components=100, alpha=1.0).fit(X, y)], bad)
    with pytest.raises(ValueError, match="same learner more than once"):
        merge_all([clf, clf])
    with pytest.raises(ValueError, match="client"):
        partial_fit_dask(clf, Xd, yd, client=object(), scheduler="sync")
    assert clf.n_samples_seen_ == len(y)


def test_feature_names_only_on_one_side_warn_as_partial_fit_does(digits):
    """A learner fitted on plain arrays given a named dataframe (or the reverse) warns and
    learns, as partial_fit does (the named case was refused after every partition was
    computed)."""
    import dask.dataframe as dd
    import pandas as pd

    from forgetless.distributed import partial_fit_dask

    X, y = digits
    frame = dd.from_pandas(pd.DataFrame(X, columns=[f"f{i}" for i in range(64)]), npartitions=3)
    labels = dd.from_pandas(pd.Series(y), npartitions=3)
    plain = ContinualClassifier(n_components=100, alpha=1.0).fit(X[:100], y[:100])
    with pytest.warns(UserWarning, match="fitted without feature names"):
        partial_fit_dask(plain, frame, labels, scheduler="sync")
    assert plain.n_samples_seen_ == 100 + len(y) and not hasattr(plain, "feature_names_in_")
    named = ContinualClassifier(n_components=100, alpha=1.0).fit(frame.compute()[:100], y[:100])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        partial_fit_dask(
            named,
            da.from_array(X, chunks=(600, 64)),
            da.from_array(y, chunks=600),
            scheduler="sync",
        )
    assert list(named.feature_names_in_) == [f"f{i}" for i in range(64)]
