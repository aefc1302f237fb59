"""Model files: round trip, no pickle, bit-identical, atomic, corruption detected."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless import ContinualClassifier, ModelFileError, persistence


@pytest.fixture(scope="module")
def data():
    return load_digits(return_X_y=True)


@pytest.mark.parametrize(
    "head, extra",
    [("ridge", {}), ("rls", {"alpha": 5.0}), ("ncm", {}), ("lda", {"per_class_gram": True})],
)
def test_round_trip_predicts_identically_and_keeps_learning(tmp_path, data, head, extra):
    X, y = data
    labels = np.array(list("abcdefghij"))[y]
    clf = ContinualClassifier(n_components=150, head=head, **extra).fit(X[:900], labels[:900])
    path = tmp_path / "model.fl"
    clf.save(path)
    loaded = ContinualClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict(X[900:]), clf.predict(X[900:]))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.get_params() == clf.get_params()
    # A loaded learner continues exactly where the saved one stopped.
    loaded.partial_fit(X[900:1200], labels[900:1200])
    clf.partial_fit(X[900:1200], labels[900:1200])
    np.testing.assert_allclose(loaded.coef_, clf.coef_, rtol=1e-12, atol=1e-14)


def test_file_is_plain_npz_without_pickle(tmp_path, data):
    X, y = data
    path = tmp_path / "model.fl"
    ContinualClassifier(n_components=50).fit(X, y).save(path)
    with np.load(path, allow_pickle=False) as archive:
        assert "statistics.gram_packed" in archive.files  # 1797 samples > M // 2
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("metadata.json"))
    assert meta["library_version"] and meta["params"]["n_components"] == 50
    assert set(meta["arrays"]) == {
        "classes",
        "statistics.gram_packed",
        "statistics.class_sums",
        "statistics.counts",
    }


def test_same_seed_same_data_same_bytes(tmp_path, data):
    X, y = data
    for name in ("a.fl", "b.fl"):
        ContinualClassifier(n_components=100, random_state=3).fit(X, y).save(tmp_path / name)
    assert (tmp_path / "a.fl").read_bytes() == (tmp_path / "b.fl").read_bytes()


def test_truncated_file_is_refused(tmp_path, data):
    X, y = data
    path = tmp_path / "model.fl"
    ContinualClassifier(n_components=50).fit(X, y).save(path)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        ContinualClassifier.load(path)


def test_altered_file_is_refused(tmp_path, data):
    X, y = data
    path = tmp_path / "model.fl"
    ContinualClassifier(n_components=50).fit(X, y).save(path)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # flip bits inside the Gram matrix
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError):
        ContinualClassifier.load(path)


def test_rewritten_array_in_a_valid_zip_is_refused(tmp_path, data):
    X, y = data
    path = tmp_path / "model.fl"
    ContinualClassifier(n_components=50).fit(X, y).save(path)
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    forged = tmp_path / "forged.fl"
    with zipfile.ZipFile(forged, "w") as archive:
        for name, blob in entries.items():
            if name == "statistics.counts.npy":
                blob = persistence._npy_bytes(np.full(10, 999, dtype=np.int64))
            archive.writestr(name, blob)
    with pytest.raises(ModelFileError, match="altered"):
        ContinualClassifier.load(forged)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "junk.fl"
    path.write_text("hello")
    with pytest.raises(ModelFileError):
        ContinualClassifier.load(path)
    with pytest.raises(FileNotFoundError):
        ContinualClassifier.load(tmp_path / "missing.fl")


def test_crash_mid_save_keeps_previous_file(tmp_path, data, monkeypatch):
    X, y = data
    path = tmp_path / "model.fl"
    first = ContinualClassifier(n_components=50).fit(X[:500], y[:500])
    first.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.os, "replace", crash)
    second = ContinualClassifier(n_components=50).fit(X, y)
    with pytest.raises(OSError, match="disk full"):
        second.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.fl"]  # no temp file left behind
    assert os.path.getsize(path) == len(before)


def test_saving_unfitted_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unfitted"):
        ContinualClassifier().save(tmp_path / "m.fl")


def test_files_grow_with_what_was_learned(tmp_path, data):
    """200 samples at M = 2000: G is stored as its 200 x 2000 factor, not as 2000 x 2000."""
    X, y = data
    small, large = tmp_path / "small.fl", tmp_path / "large.fl"
    few = ContinualClassifier(n_components=2000, random_state=0).fit(X[:200], y[:200])
    few.save(small)
    ContinualClassifier(n_components=2000, random_state=0).fit(X[:1200], y[:1200]).save(large)
    assert small.stat().st_size < 4.0e6  # 200 x 2000 float64 = 3.2 MB
    assert 15.9e6 < large.stat().st_size < 16.5e6  # G's packed triangle: 16.0 MB, not 32
    loaded = ContinualClassifier.load(small)
    assert loaded.statistics_.factored
    assert np.array_equal(loaded.coef_, few.coef_) and loaded.alpha_ == few.alpha_
    np.testing.assert_array_equal(loaded.decision_function(X), few.decision_function(X))
    # learning on from the file is learning on from the model: the same bits
    loaded.partial_fit(X[200:400], y[200:400])
    few.partial_fit(X[200:400], y[200:400])
    assert np.array_equal(loaded.coef_, few.coef_)


def test_factor_files_no_data_can_give_are_refused(tmp_path, data):
    X, y = data
    path = tmp_path / "model.fl"
    ContinualClassifier(projection="orthogonal", n_components=100, random_state=0).fit(
        X[:40], y[:40]
    ).save(path)
    metadata, arrays = persistence.read_model_file(path, kind="forgetless-model", version=3)
    factor = arrays["statistics.gram_factor"]
    bad = {  # case: (factor, the problem the error names)
        "lower": (factor + np.tril(np.ones_like(factor), -1), "upper trapezoidal"),
        "rows": (factor[:-1].copy(), "one row per sample"),
        "inf": (np.where(factor == factor.max(), np.inf, factor), "not finite"),
        "overflow": (factor * 1e200, "overflows"),
    }
    for case, (value, problem) in bad.items():
        forged = tmp_path / f"{case}.fl"
        persistence.write_model_file(
            forged, metadata, {**arrays, "statistics.gram_factor": value},
            kind="forgetless-model", version=3,
        )  # fmt: skip
        with pytest.raises(ModelFileError, match=problem):
            ContinualClassifier.load(forged)


def test_files_of_format_version_2_still_load(tmp_path, data):
    """Version 2 stored G as a full upper triangle; this version reads it as the same model."""
    from forgetless.statistics import unpack_upper

    X, y = data
    clf = ContinualClassifier(projection="orthogonal", n_components=60, random_state=0).fit(
        X[:500], y[:500]
    )
    path, old = tmp_path / "new.fl", tmp_path / "old.fl"
    clf.save(path)
    metadata, arrays = persistence.read_model_file(path, kind="forgetless-model", version=3)
    packed = arrays.pop("statistics.gram_packed")
    arrays["statistics.gram_upper"] = unpack_upper(packed, 60)
    persistence.write_model_file(old, metadata, arrays, kind="forgetless-model", version=2)
    loaded = ContinualClassifier.load(old)
    assert np.array_equal(loaded.coef_, clf.coef_)
    loaded.save(tmp_path / "again.fl")  # re-saved in this version's form
    assert (tmp_path / "again.fl").read_bytes() == path.read_bytes()
    # what version 2 refused, it still refuses: values below G's diagonal
    lower = arrays["statistics.gram_upper"] + np.tril(np.ones((60, 60)), -1)
    persistence.write_model_file(
        old, metadata, {**arrays, "statistics.gram_upper": lower},
        kind="forgetless-model", version=2,
    )  # fmt: skip
    with pytest.raises(ModelFileError, match="upper triangle"):
        ContinualClassifier.load(old)


def test_files_from_before_the_decision_setting_score_by_the_regression(tmp_path, data):
    """Files written before the ridge head had ``decision`` scored by the regression: they
    still do, whatever today's default."""
    X, y = data
    clf = ContinualClassifier(
        projection="orthogonal", n_components=60, random_state=0, decision="regression"
    )
    clf.fit(X[:500], y[:500])
    path, old = tmp_path / "new.fl", tmp_path / "old.fl"
    clf.save(path)
    metadata, arrays = persistence.read_model_file(path, kind="forgetless-model", version=3)
    del metadata["params"]["decision"]
    persistence.write_model_file(old, metadata, arrays, kind="forgetless-model", version=3)
    loaded = ContinualClassifier.load(old)
    assert loaded.get_params()["decision"] == "regression"
    assert np.array_equal(loaded.coef_, clf.coef_)
    # 500 samples of 10 classes: today's default would score by the discriminant instead
    today = ContinualClassifier.load(path).set_params(decision="auto")
    assert today.head_ is not None and not np.allclose(today.coef_, clf.coef_)
    metadata["params"]["decision"] = "vote"  # a value no version wrote
    persistence.write_model_file(old, metadata, arrays, kind="forgetless-model", version=3)
    with pytest.raises(ModelFileError, match="'decision' parameter"):
        ContinualClassifier.load(old)


def test_a_file_whose_layer_is_not_what_auto_builds_is_refused(tmp_path, data):
    """``projection="auto"`` on 64 pixels with 100 units means no layer; a file that claims
    an orthogonal layer for those settings is refused, naming both."""
    X, y = data
    path, forged = tmp_path / "model.fl", tmp_path / "forged.fl"
    ContinualClassifier(n_components=100, random_state=0).fit(X[:300], y[:300]).save(path)
    metadata, arrays = persistence.read_model_file(path, kind="forgetless-model", version=3)
    assert metadata["params"]["projection"] == "auto" and metadata["layer"]["kind"] == "none"
    layer = {**metadata["layer"], "kind": "orthogonal", "n_components": 100}
    persistence.write_model_file(
        forged, {**metadata, "layer": layer}, arrays, kind="forgetless-model", version=3
    )
    with pytest.raises(ModelFileError, match=r"\('orthogonal'.*does not match.*\('none'"):
        ContinualClassifier.load(forged)


def test_settings_given_as_numpy_numbers_save_as_plain_numbers(tmp_path, data):
    """``projection_params`` holding numpy numbers or fractions (as a grid search may pass them)
    save, and the learner loads to the same layer and scores."""
    from fractions import Fraction

    X, y = data
    for params in (
        {"flatten": np.float32(0.5)},
        {"flatten": Fraction(1, 2)},
        {"n_landmarks": np.int64(64)},
    ):
        clf = ContinualClassifier(
            projection="guided", n_components=32, random_state=0, projection_params=params
        ).fit(X, y)
        clf.save(tmp_path / "m.fl")
        again = ContinualClassifier.load(tmp_path / "m.fl")
        assert again.projection_.same_as(clf.projection_)
        np.testing.assert_array_equal(again.decision_function(X), clf.decision_function(X))


def test_forged_sums_that_no_data_can_produce_are_refused(tmp_path, data):
    """Files with valid checksums but impossible statistics: counts past any data set (or
    wrapping around int64), an entry of G above the root of its diagonal's product, class sums
    above sqrt(n_c G_jj). Each is refused on load, naming the problem; the genuine file loads."""
    X, y = data
    for rows, name in ((300, "packed"), (20, "factor")):  # packed triangle, compact factor
        path = tmp_path / f"{name}.fl"
        ContinualClassifier(projection="gaussian", n_components=100, random_state=0).fit(
            X[:rows], y[:rows]
        ).save(path)
        metadata, arrays = persistence.read_model_file(path, kind="forgetless-model", version=3)
        counts = arrays["statistics.counts"]
        forgeries = {
            "uint64 count 2**63": (
                {"statistics.counts": np.full_like(counts, 2**63, dtype=np.uint64)},
                "larger than any data set",
            ),
            "int64 counts wrapping": (
                {"statistics.counts": np.full_like(counts, 2**62)},
                "larger than any data set",
            ),
            "class sums x 1e300": (
                {"statistics.class_sums": arrays["statistics.class_sums"] * 1e300},
                "class sums are larger than G allows",
            ),
        }
        if name == "packed":
            packed = arrays["statistics.gram_packed"].copy()
            packed[1] = 1e6  # G[0, 1]
            forgeries["G off its diagonal"] = (
                {"statistics.gram_packed": packed},
                "not the Gram matrix of any data",
            )
        for case, (changed, problem) in forgeries.items():
            forged = tmp_path / f"{name} {case}.fl"
            persistence.write_model_file(
                forged, metadata, {**arrays, **changed}, kind="forgetless-model", version=3
            )
            with pytest.raises(ModelFileError, match=problem):
                ContinualClassifier.load(forged)
        assert ContinualClassifier.load(path).statistics_.n_samples == rows


def test_a_path_that_is_not_a_file_is_refused_before_writing_and_kept(tmp_path, data):
    """Saving onto a folder, a pipe or nothing, or into a missing folder, names the problem
    (not a hidden temporary file) and leaves what is there; a pipe is not read forever."""
    X, y = data
    clf = ContinualClassifier(n_components=64, random_state=0).fit(X, y)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    cases = [
        ("", ValueError, "the path is empty"),
        (tmp_path, IsADirectoryError, "is a folder; name a file"),
        (pipe, ValueError, "is not a regular file"),
        (b"model.fl", TypeError, "must be text"),
        (tmp_path / "missing" / "m.fl", FileNotFoundError, "missing does not exist; create it"),
        (f"{tmp_path}/new/", IsADirectoryError, "names a folder; name a file"),
    ]
    for path, error, message in cases:
        with pytest.raises(error, match=message):
            clf.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"] and pipe.is_fifo()
    with pytest.raises(ModelFileError, match="is not a regular file"):
        ContinualClassifier.load(pipe)  # opened without waiting for a writer
    with pytest.raises(IsADirectoryError, match="is a folder, not a model file"):
        ContinualClassifier.load(tmp_path)


def test_forged_metadata_that_contradicts_itself_is_refused(tmp_path, data):
    """A seed other than the saved random_state (or True), a feature named twice: refused."""
    X, y = data
    path, forged = tmp_path / "m.fl", tmp_path / "forged.fl"
    ContinualClassifier(n_components=32, random_state=3).fit(X[:, :8], y).save(path)
    metadata, arrays = persistence.read_model_file(path, kind="forgetless-model", version=3)
    names = [f"f{i}" for i in range(8)]
    assert ContinualClassifier.load(path).seed_ == 3
    persistence.write_model_file(  # the names a DataFrame gives: accepted
        forged, {**metadata, "feature_names_in": names}, arrays, kind="forgetless-model", version=3
    )
    assert list(ContinualClassifier.load(forged).feature_names_in_) == names
    for change, problem in (
        ({"seed": 4}, "seed 4 is not the parameters' random_state 3"),
        ({"seed": True}, "seed must be an integer"),
        ({"feature_names_in": [names[0], *names[:-1]]}, "names a feature twice"),
    ):
        persistence.write_model_file(
            forged, {**metadata, **change}, arrays, kind="forgetless-model", version=3
        )
        with pytest.raises(ModelFileError, match=problem):
            ContinualClassifier.load(forged)


@pytest.mark.skipif(os.name != "posix", reason="advisory locks are POSIX")
def test_a_lock_taken_on_a_removed_lock_file_is_taken_again(tmp_path, capsys):
    """A failed first save removes its folder, lock file included, while holding the lock; a
    writer waiting on that lock then held a lock on a deleted file, and a third writer could
    lock the new file beside it: two writers at once."""
    import fcntl
    import threading
    import time

    lock = tmp_path / persistence.LOCK_FILE
    inside = threading.Event()
    exclusive: list[bool] = []

    def second_writer() -> None:
        with persistence.folder_lock(tmp_path):
            with open(lock, "a") as third:  # another writer trying the path as it is now
                try:
                    fcntl.flock(third, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    exclusive.append(False)
                except BlockingIOError:
                    exclusive.append(True)
        inside.set()

    with persistence.folder_lock(tmp_path):
        waiting = threading.Thread(target=second_writer)
        waiting.start()
        deadline = time.monotonic() + 10
        while "waiting for another writer" not in capsys.readouterr().err:  # it waits on us
            assert time.monotonic() < deadline, "the second writer never waited on the lock"
            time.sleep(0.01)
        os.remove(lock)
    waiting.join(timeout=10)
    assert inside.is_set() and exclusive == [True]
    with pytest.raises(ModelFileError, match="gone does not exist"):
        with persistence.folder_lock(tmp_path / "gone"):
            pass
