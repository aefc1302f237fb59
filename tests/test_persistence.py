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
        assert "statistics.gram_upper" in archive.files
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("metadata.json"))
    assert meta["library_version"] and meta["params"]["n_components"] == 50
    assert set(meta["arrays"]) == {
        "classes",
        "statistics.gram_upper",
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
