"""Loaders for users' own data: image folders, text tables and arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from forgetless.data import DatasetNotFoundError, load_dataset


def _digit_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Write real digit images as PNGs in the train/ and test/ class-folder layout."""
    image_mod = require("PIL.Image", "pip install pillow")
    digits = load_dataset("digits")
    for split_name, split in (("train", digits.train), ("test", digits.test)):
        for i, (img, label) in enumerate(zip(split.inputs[:60], split.labels[:60], strict=True)):
            folder = root / split_name / f"digit-{label}"
            folder.mkdir(parents=True, exist_ok=True)
            image_mod.fromarray(img).save(folder / f"{i:03d}.png")
    return digits.train.inputs[:60], digits.train.labels[:60]


def test_image_folder_layout_round_trips_real_images(tmp_path: Path) -> None:
    from forgetless.encoders import load_encoder

    images, labels = _digit_folder(tmp_path)
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    ds = load_dataset("image-folder", root=tmp_path, name="digits-png")
    assert ds.name == "digits-png" and ds.modality == "image"
    assert ds.classes == sorted(f"digit-{d}" for d in set(labels.tolist()))
    assert len(ds.train) == 60 and all(p.endswith(".png") for p in ds.train.inputs)
    # The PNGs decode back to the very pixels that were written.
    feats = load_encoder("raw").encode(ds.train.inputs)
    by_name = {ds.train.inputs[i]: feats[i] for i in range(60)}
    first = str(tmp_path / "train" / f"digit-{labels[0]}" / "000.png")
    np.testing.assert_allclose(by_name[first], images[0].reshape(-1) / 255.0, atol=1e-6)


def test_image_folder_needs_train_and_test(tmp_path: Path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="test"):
        load_dataset("image-folder", root=tmp_path)


def test_text_table_csv_and_jsonl(tmp_path: Path) -> None:
    rows = [("the cat purrs", "animal"), ("a dog barks", "animal"), ("rain falls", "weather")] * 5
    csv_path = tmp_path / "t.csv"
    csv_path.write_text(
        "text,label\n" + "".join(f'"{t}, indeed",{lab}\n' for t, lab in rows), encoding="utf-8"
    )
    ds = load_dataset("text-table", path=csv_path, test_fraction=0.2)
    assert ds.classes == ["animal", "weather"] and ds.modality == "text"
    assert len(ds.train) + len(ds.test) == 15 and ds.train.inputs[0].endswith(", indeed")
    assert set(ds.test.labels.tolist()) == {0, 1}

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text(
        "".join(
            json.dumps({"body": t, "y": 3 if lab == "animal" else 10}) + "\n" for t, lab in rows
        )
    )
    test.write_text(json.dumps({"body": "snow", "y": 10}) + "\n")
    ds = load_dataset(
        "text-table", path=train, test_path=test, text_column="body", label_column="y"
    )
    assert ds.classes == ["3", "10"]  # numeric labels sort as numbers
    assert ds.test.inputs == ["snow"] and ds.test.labels.tolist() == [1]
    with pytest.raises(ValueError, match="lacks column"):
        load_dataset("text-table", path=train)


def test_arrays_npz_and_npy(tmp_path: Path) -> None:
    digits = load_dataset("digits")
    npz = tmp_path / "d.npz"
    np.savez(
        npz,
        x_train=digits.train.inputs,
        y_train=digits.train.labels,
        x_test=digits.test.inputs,
        y_test=digits.test.labels,
        classes=np.array(digits.classes),
    )
    ds = load_dataset("arrays", path=npz)
    assert ds.modality == "image" and ds.classes == digits.classes
    np.testing.assert_array_equal(ds.test.labels, digits.test.labels)

    paths = {}
    for key, arr in [
        ("x_train", np.random.default_rng(0).normal(size=(6, 3))),
        ("y_train", np.array(["b", "a", "b", "a", "b", "a"])),
        ("x_test", np.zeros((2, 3))),
        ("y_test", np.array(["a", "b"])),
    ]:
        paths[key] = tmp_path / f"{key}.npy"
        np.save(paths[key], arr)
    ds = load_dataset("arrays", **paths)
    assert ds.modality == "array" and ds.classes == ["a", "b"]
    assert ds.train.labels.tolist() == [1, 0, 1, 0, 1, 0]


def test_arrays_refuse_pickled_objects(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    objects = np.array([{"x": 1}, None], dtype=object)
    np.savez(bad, x_train=objects, y_train=[0, 1], x_test=objects, y_test=[0, 1])
    with pytest.raises(ValueError, match="pickle"):
        load_dataset("arrays", path=bad)


def test_arrays_that_cannot_be_a_dataset_are_named(tmp_path: Path) -> None:
    """Each is a DatasetFileError (one line from `forgetless run`), not a raw numpy error."""
    from forgetless.data import DatasetFileError

    cases = {
        "lacking.npz": dict(x_train=np.eye(3), y_train=[0, 1, 0]),
        "lengths.npz": dict(x_train=np.eye(3), y_train=[0, 1], x_test=np.eye(2), y_test=[0, 1]),
        "empty.npz": dict(x_train=np.eye(3), y_train=[0, 1, 0], x_test=np.zeros((0, 3)),
                          y_test=np.zeros(0, int)),
    }  # fmt: skip
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.save(tmp_path / "one.npy", np.eye(3))
    for name, words in [
        ("lacking.npz", "lacks arrays"),
        ("lengths.npz", "same number"),
        ("empty.npz", "same number"),
        ("garbage.npz", "not a readable"),
        ("one.npy", "is one array"),
    ]:
        with pytest.raises(DatasetFileError, match=words):
            load_dataset("arrays", path=tmp_path / name)
