"""Loaders for users' own data: image folders, text tables and arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from forgetless.data import DatasetFileError, DatasetNotFoundError, load_dataset


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
    with pytest.warns(UserWarning, match=r"^3 of the 3 test texts are training texts too "):
        ds = load_dataset("text-table", path=csv_path, test_fraction=0.2)  # rows repeat 5 times
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


def _npz(path: Path, **arrays: object) -> Path:
    """An .npz of two small splits of feature rows, with ``arrays`` replacing or adding keys."""
    base = dict(x_train=np.zeros((4, 2)), y_train=[0, 1, 0, 1], x_test=np.zeros((2, 2)),
                y_test=[1, 0])  # fmt: skip
    np.savez(path, **{**base, **arrays})
    return path


def test_arrays_string_labels_are_looked_up_in_the_classes(tmp_path: Path) -> None:
    """Indices came from the sorted labels but names from `classes` as given: dog and cat
    swapped silently; `classes=cat,dog` from the command line became ['c', 'a', 't', ...]."""
    from forgetless.data import DatasetFileError

    pets = _npz(tmp_path / "pets.npz", y_train=["dog", "cat", "dog", "cat"],
                y_test=["cat", "dog"], classes=["dog", "cat"])  # fmt: skip
    ds = load_dataset("arrays", path=pets)
    assert [ds.classes[i] for i in ds.train.labels] == ["dog", "cat", "dog", "cat"]
    assert [ds.classes[i] for i in ds.test.labels] == ["cat", "dog"]
    ds = load_dataset("arrays", path=pets, classes="cat, dog")  # as --dataset-option gives it
    assert ds.classes == ["cat", "dog"] and ds.train.labels.tolist() == [1, 0, 1, 0]
    ds = load_dataset("arrays", path=_npz(tmp_path / "ints.npz"), classes="cat,dog")
    assert ds.classes == ["cat", "dog"] and ds.test.labels.tolist() == [1, 0]
    for options, words in [
        (dict(classes=["dog"]), r"y_train in \S+pets.npz row 1 is 'cat', which is not among"),
        (dict(classes=3), "dataset option classes=3: give a list of names"),
        (dict(classes="dog,,cat"), "name 1 is blank"),
        (dict(classes=["dog", "cat", "dog"]), "names 'dog' twice"),
    ]:
        with pytest.raises(DatasetFileError, match=words):
            load_dataset("arrays", path=pets, **options)
    for name, arrays, words in [
        ("bytes.npz", dict(y_train=np.array([b"a", b"b", b"a", b"b"])), "y_train in .* bytes"),
        ("nan.npz", dict(y_train=[0.0, 1.0, np.nan, 1.0]), "y_train in .* row 2 is nan"),
        ("names.npz", dict(classes=np.array([b"a", b"b"])), "classes in .* holds bytes"),
    ]:
        with pytest.raises(DatasetFileError, match=words):
            load_dataset("arrays", path=_npz(tmp_path / name, **arrays))


def test_arrays_data_mistakes_are_one_line_naming_the_array(tmp_path: Path) -> None:
    """Each ended in a traceback, some only inside the learner or an encoder."""
    from forgetless.data import DatasetFileError

    images = dict(x_train=np.zeros((4, 8, 8), np.uint8), x_test=np.zeros((2, 8, 8), np.uint8))
    cases = {
        "outside.npz": (dict(y_train=[0, 1, 4, 1], classes=["a", "b"]),
                        r"y_train in \S+ row 2 is 4, but with 2 classes .* index 0\.\.1"),
        "sizes.npz": ({**images, "x_test": np.zeros((2, 10, 10), np.uint8)},
                      r"x_train in \S+ has samples of shape \(8, 8\) but x_test in \S+ \(10, 10\)"),
        "flat.npz": (dict(x_train=np.zeros(4), x_test=np.zeros(2)),
                     r"x_train in \S+ has shape \(4,\): 0 dims per sample"),
        "deep.npz": (dict(x_train=np.zeros((4, 2, 2, 2, 2)), x_test=np.zeros((2, 2, 2, 2, 2))),
                     "4 dims per sample"),
        "channels.npz": (dict(x_train=np.zeros((4, 2, 2, 5)), x_test=np.zeros((2, 2, 2, 5))),
                         "5 channels per image"),
        "nan.npz": (dict(x_train=np.array([[0, 1], [np.nan, 0], [0, 0], [np.inf, 0]])),
                    r"x_train in \S+ holds NaN or infinite values in 2 of its samples, the"
                    " first sample 1;"),
        "words.npz": (dict(x_test=np.array([["a", "b"], ["c", "d"]])), "x_test in .* strings of"),
        "bytes.npz": (dict(x_test=np.array([[b"a"], [b"b"]])), "x_test in .* |S1 values"),
    }  # fmt: skip
    for name, (arrays, words) in cases.items():
        with pytest.raises(DatasetFileError, match=words):
            load_dataset("arrays", path=_npz(tmp_path / name, **arrays))
    files = {}
    for key in ("x_train", "y_train", "x_test", "y_test"):
        files[key] = tmp_path / f"{key}.npy"
        np.save(files[key], np.load(_npz(tmp_path / "ok.npz"))[key])
    with pytest.raises(DatasetFileError, match=r"ok.npz \(x_test\) is an .npz archive; give"):
        load_dataset("arrays", **{**files, "x_test": tmp_path / "ok.npz"})
    with pytest.raises(DatasetFileError, match="dataset option x_test=7: give the path"):
        load_dataset("arrays", **{**files, "x_test": 7})
    with pytest.raises(DatasetFileError, match="not both"):
        load_dataset("arrays", path=tmp_path / "ok.npz", **files)
    with pytest.raises(DatasetFileError, match="modality='texts': give image, text or array"):
        load_dataset("arrays", path=tmp_path / "ok.npz", modality="texts")
    texts = _npz(tmp_path / "texts.npz", x_train=np.array(["a b", "c", "d", "e"]),
                 x_test=np.array(["f", "g"]))  # fmt: skip
    ds = load_dataset("arrays", path=texts, modality="text")  # texts (or image paths) still read
    assert ds.train.inputs.tolist() == ["a b", "c", "d", "e"] and ds.modality == "text"


def test_a_bad_arrays_option_from_the_command_line_is_one_line(tmp_path: Path, capsys) -> None:
    from forgetless.cli import main

    npz = _npz(tmp_path / "d.npz", y_train=["dog", "cat", "dog", "cat"], y_test=["cat", "dog"])
    argv = ["run", "--dataset", "arrays", "--encoder", "raw", "--output", str(tmp_path / "r")]
    assert main([*argv, "--dataset-option", f"path={npz}", "--dataset-option", "classes=cat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("forgetless run: error: y_train in ") and "'dog', which is not" in err


def test_text_table_rows_without_a_text_or_label_are_named(tmp_path: Path) -> None:
    """They became classes or texts named "None", "" or a JSON object's repr."""
    from forgetless.data import DatasetFileError

    good = "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(6))
    cases = {
        "short.csv": ("text,label\n" + good + "lonely\n", r"short.csv line 8 has no label"),
        "empty.csv": ("text,label\n" + good + "lonely,\n", r"empty.csv line 8 has an empty label"),
        "blank.csv": ("text,label\n" + good + " ,a\n", r"blank.csv line 8 has an empty text"),
        "extra.csv": ("text,label\n" + good + "hi, there,a\n", "line 8 has 3 fields but"),
        "null.jsonl": ('{"text": null, "label": "a"}\n', r"null.jsonl line 1 has no text"),
        "nolabel.jsonl": ('{"text": "x", "label": null}\n', "line 1 has no label"),
        "object.jsonl": ('{"text": {"a": 1}, "label": "a"}\n', "line 1: the text is an object"),
        "float.jsonl": ('{"text": "x", "label": 1.5}\n', "line 1: the label is a number"),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(DatasetFileError, match=words):
            load_dataset("text-table", path=tmp_path / name)


def test_text_tables_as_spreadsheets_save_them_are_read(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte order mark (the header was read as
    '\\ufefftext'); a cell over 128 KiB failed with _csv.Error. The csv limit is put back."""
    import csv

    long = "word " * 40_000
    rows = "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(6)) + f'"{long}",a\n'
    (tmp_path / "excel.csv").write_text("\ufefftext,label\n" + rows, encoding="utf-8")
    limit = csv.field_size_limit()
    ds = load_dataset("text-table", path=tmp_path / "excel.csv")
    assert csv.field_size_limit() == limit
    assert ds.classes == ["a", "b"] and long in ds.train.inputs + ds.test.inputs


def test_text_tables_that_cannot_be_read_are_one_line(tmp_path: Path) -> None:
    from forgetless.data import DatasetFileError

    cases = {
        "bad.jsonl": ('{"text": "x", "label": "a"}\n{oops\n', r"bad.jsonl line 2 is not JSON"),
        "list.jsonl": ('["x", "a"]\n', r"list.jsonl line 1 is not a JSON object"),
        "notes.txt": ("x\n", r"notes.txt: expected a .csv, .tsv or .jsonl file"),
        "header.csv": ("text,label\n", r"header.csv has no rows"),
        "quote.csv": ('text,label\nx,a\n"y,b\nz,a\n', r"quote.csv line 3: a double quote"),
        "columns.csv": ("body,y\nx,a\n", r"columns.csv line 2 lacks column 'text'"),
    }
    for name, (text, words) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(DatasetFileError, match=words):
            load_dataset("text-table", path=tmp_path / name)
    (tmp_path / "latin.csv").write_bytes("text,label\ncaf\u00e9,a\n".encode("latin-1"))
    with pytest.raises(DatasetFileError, match=r"latin.csv is not UTF-8 text; save it as UTF-8"):
        load_dataset("text-table", path=tmp_path / "latin.csv")


def test_text_table_class_order_never_depends_on_string_hashing(tmp_path: Path) -> None:
    """Labels equal as integers ("1", "01") tied in `sorted(set(...), key=int)`, so the class
    order (and the split) followed PYTHONHASHSEED; '²' and '--1' crashed in int()."""
    labels = ["1", "01", "001", "0", "-0", "00", "2", "02", "-1", "-01"]
    (tmp_path / "t.csv").write_text(
        "text,label\n" + "".join(f"t{i}{lab},{lab}\n" for i in range(3) for lab in labels)
    )
    ds = load_dataset("text-table", path=tmp_path / "t.csv")
    assert ds.classes == ["-01", "-1", "-0", "0", "00", "001", "01", "1", "02", "2"]
    for odd, order in ((["\u00b2", "1"], ["1", "\u00b2"]), (["--1", "1"], ["--1", "1"])):
        (tmp_path / "odd.csv").write_text(
            "text,label\n" + "".join(f"t{i}{lab},{lab}\n" for i in range(3) for lab in odd),
            encoding="utf-8",
        )
        assert load_dataset("text-table", path=tmp_path / "odd.csv").classes == order


def test_image_folder_reads_linked_images_and_names_loose_ones(tmp_path: Path) -> None:
    """Links to image files were skipped and images directly in train/ dropped, silently: the
    run then failed as a scenario of '0 classes'."""
    from forgetless.data import DatasetFileError

    store = tmp_path / "store"
    store.mkdir()
    for name in ("a.png", "b.png"):
        (store / name).write_bytes(b"")
    for split in ("train", "test"):
        (tmp_path / "linked" / split / "cat").mkdir(parents=True)
        (tmp_path / "linked" / split / "cat" / "a.png").symlink_to(store / "a.png")
        (tmp_path / "linked" / split / "dog").mkdir(parents=True)
        (tmp_path / "linked" / split / "dog" / "b.png").symlink_to(store / "b.png")
    ds = load_dataset("image-folder", root=tmp_path / "linked")
    assert ds.classes == ["cat", "dog"] and ds.train.labels.tolist() == [0, 1]

    loose = tmp_path / "loose"
    (loose / "test" / "cat").mkdir(parents=True)
    (loose / "test" / "cat" / "a.png").write_bytes(b"")
    (loose / "train").mkdir()
    for name in ("a.png", "b.jpg"):
        (loose / "train" / name).write_bytes(b"")
    (loose / "train" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    words = r"loose/train has no images in class folders: 2 image files lie directly in it; "
    words += r"1 link to nothing; put images in \S+loose/train/<class>/"
    with pytest.raises(DatasetFileError, match=words):
        load_dataset("image-folder", root=loose)
    (tmp_path / "empty").mkdir()
    (loose / "train" / "void").symlink_to(tmp_path / "empty")
    with pytest.raises(DatasetFileError, match=r"1 link to nothing; 1 link to a folder \(followed"):
        load_dataset("image-folder", root=loose)
    (loose / "train" / "cat").symlink_to(loose / "test" / "cat")
    with pytest.warns(UserWarning, match=r"2 image files in \S+loose/train lie outside class"):
        ds = load_dataset("image-folder", root=loose)
    assert ds.train.inputs == [str(loose / "train" / "cat" / "a.png")]
    (loose / "train" / "dog").mkdir()
    (loose / "train" / "dog" / "b.png").write_bytes(b"")
    (loose / "test" / "cat" / "a.png").unlink()
    with pytest.raises(DatasetFileError, match=r"test has no images .* no image files \(.png"):
        load_dataset("image-folder", root=loose)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_image_folder_follows_links_to_class_folders(tmp_path: Path) -> None:
    """A class folder that is a link (train/cat -> a folder elsewhere) is read as its class,
    and so is a link deeper inside a class folder; paths stay as they appear under the root."""
    import warnings

    store = tmp_path / "store"
    for name in ("cats/a.png", "cats/b.png", "more-dogs/c.png"):
        _image(store / name)
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "train" / "cat").symlink_to(store / "cats")
    _image(root / "train" / "dog" / "d.png")
    (root / "train" / "dog" / "more").symlink_to(store / "more-dogs")
    _image(root / "test" / "cat" / "e.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out, so nothing to warn about
        ds = load_dataset("image-folder", root=root)
    assert ds.classes == ["cat", "dog"]
    train = root / "train"
    expected = ["cat/a.png", "cat/b.png", "dog/d.png", "dog/more/c.png"]
    assert ds.train.inputs == [str(train / name) for name in expected]
    assert ds.train.labels.tolist() == [0, 0, 1, 1] and ds.test.labels.tolist() == [0]


def test_image_folder_link_cycles_end_and_read_each_image_once(tmp_path: Path) -> None:
    """Links back to a folder above them, or to a folder read elsewhere, add no image twice."""
    store = tmp_path / "store"
    _image(store / "cats" / "a.png")
    (store / "cats" / "again").symlink_to(store / "cats")  # to itself
    (store / "cats" / "up").symlink_to(store)  # to the folder above it
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "train" / "cat").symlink_to(store / "cats")
    (store / "cats" / "split").symlink_to(root / "train")  # to the split folder itself
    _image(root / "train" / "dog" / "b.png")
    (root / "train" / "dog" / ".hidden").mkdir()
    _image(root / "train" / "dog" / ".hidden" / "x.png")  # hidden names are skipped
    _image(root / "train" / "dog" / "._b.png")
    _image(root / "test" / "dog" / "c.png")
    ds = load_dataset("image-folder", root=root)
    train = root / "train"
    assert ds.train.inputs == [str(train / "cat" / "a.png"), str(train / "dog" / "b.png")]
    assert ds.classes == ["cat", "dog"] and ds.train.labels.tolist() == [0, 1]


@pytest.mark.parametrize("link", ["kitty", "dog/alias"])
def test_image_folder_refuses_a_folder_read_as_two_classes(tmp_path: Path, link: str) -> None:
    """Two class folders leading to one folder gave its images to the first class only,
    silently; a link in one class folder to another's folder did the same."""
    store = tmp_path / "store"
    _image(store / "cats" / "a.png")
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "train" / "cat").symlink_to(store / "cats")
    _image(root / "train" / "dog" / "b.png")
    _image(root / "test" / "dog" / "c.png")
    (root / "train" / link).symlink_to(store / "cats")
    train = root / "train"
    message = (
        f"{train / link} leads to {train / 'cat'}, whose files are read as class 'cat'; a "
        f"sample has one class: remove the link, or copy the files meant for "
        f"'{link.split('/')[0]}' into it"
    )
    with pytest.raises(DatasetFileError) as caught:
        load_dataset("image-folder", root=root)
    assert str(caught.value) == message


def test_image_folder_warns_once_about_images_outside_class_folders(tmp_path: Path) -> None:
    """Images beside the class folders were dropped without a word when others loaded."""
    import warnings

    for name in ("train/cat/a.png", "train/dog/b.png", "test/cat/c.png"):
        _image(tmp_path / name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_dataset("image-folder", root=tmp_path)
    assert caught == []  # the plain layout leaves nothing out
    _image(tmp_path / "train" / "readme.png")
    _image(tmp_path / "train" / "logo.jpg")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("image-folder", root=tmp_path)
    assert len(ds.train) == 2 and len(caught) == 1
    assert issubclass(caught[0].category, UserWarning) and caught[0].filename == __file__
    train = tmp_path / "train"
    assert str(caught[0].message) == (
        f"2 image files in {train} lie outside class folders (directly in it) and are left "
        f"out, e.g. {train / 'logo.jpg'}; to use them, put them in {train}/<class>/"
    )

    deep = tmp_path / "deep"  # at depth 2, an image one folder deep is outside class folders
    for name in ("train/animals/cat/a.png", "train/animals/stray.png", "test/animals/cat/b.png"):
        _image(deep / name)
    with pytest.warns(UserWarning, match=r"^1 image file in \S+ lies .*less than 2 folders deep"):
        assert load_dataset("image-folder", root=deep, depth=2).classes == ["animals/cat"]


def test_strings_in_arrays_are_texts_unless_they_all_end_in_an_image_suffix(tmp_path):
    """What an arrays file holds decides which encoders forgetless run accepts for it."""
    import numpy as np

    from forgetless.data import load_dataset

    texts = np.array(["a cat sat", "a dog ran", "the cat slept", "the dog barked"])
    np.savez(tmp_path / "t.npz", x_train=texts, y_train=[0, 1, 0, 1], x_test=texts[:2],
             y_test=[0, 1])  # fmt: skip
    assert load_dataset("arrays", path=str(tmp_path / "t.npz")).modality == "text"
    pil = require("PIL.Image", "pip install pillow")
    paths = []
    for i in range(4):
        pil.new("L", (4, 4), i).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    np.savez(tmp_path / "p.npz", x_train=np.array(paths), y_train=[0, 1, 0, 1],
             x_test=np.array(paths[:2]), y_test=[0, 1])  # fmt: skip
    assert load_dataset("arrays", path=str(tmp_path / "p.npz")).modality == "image"
    missing = np.array([*paths[:3], str(tmp_path / "gone.png")])  # a missing file: still images
    np.savez(tmp_path / "m.npz", x_train=missing, y_train=[0, 1, 0, 1], x_test=missing[:2],
             y_test=[0, 1])  # fmt: skip
    assert load_dataset("arrays", path=str(tmp_path / "m.npz")).modality == "image"
    floats = np.random.default_rng(0).random((4, 8, 8))  # images of any number type
    np.savez(tmp_path / "f.npz", x_train=floats, y_train=[0, 1, 0, 1], x_test=floats[:2],
             y_test=[0, 1])  # fmt: skip
    assert load_dataset("arrays", path=str(tmp_path / "f.npz")).modality == "image"
    scored = floats - 0.5  # z-scored, not pixels: the pixel range would clip half of it away
    np.savez(tmp_path / "z.npz", x_train=scored, y_train=[0, 1, 0, 1], x_test=scored[:2],
             y_test=[0, 1])  # fmt: skip
    assert load_dataset("arrays", path=str(tmp_path / "z.npz")).modality == "array"
    rows = np.eye(4)
    np.savez(tmp_path / "r.npz", x_train=rows, y_train=[0, 1, 0, 1], x_test=rows[:2],
             y_test=[0, 1])  # fmt: skip
    assert load_dataset("arrays", path=str(tmp_path / "r.npz")).modality == "array"


def test_a_text_table_naming_a_column_twice_is_refused_as_learn_refuses_it(tmp_path):
    """The last of two 'label' columns was read silently; forgetless learn refuses the file."""
    from forgetless.data import DatasetFileError
    from forgetless.data.text_table import read_text_table

    path = tmp_path / "dup.csv"
    path.write_text("text,label,label\nan owl hooted,animal,bird\nsoup,dish,food\n")
    with pytest.raises(DatasetFileError, match="names the column 'label' twice"):
        read_text_table(path)


def test_class_names_typed_on_two_systems_are_one_class(tmp_path: Path) -> None:
    """macOS names a folder "café" decomposed (e + a combining accent); a train folder named
    there and a test folder named elsewhere made two classes, so the test images of the class
    counted as errors of a class never learned. Labels in a table likewise."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    for split, name in (("train", decomposed), ("train", "tea"), ("test", composed + " ")):
        _image(tmp_path / "photos" / split / name / "x.png")
    ds = load_dataset("image-folder", root=tmp_path / "photos")
    assert ds.classes == [composed, "tea"]
    assert ds.train.labels.tolist() == [0, 1] and ds.test.labels.tolist() == [0]

    table = tmp_path / "notes.csv"
    table.write_text(
        f"text,label\nan espresso,{decomposed}\na latte,{composed}\na mocha, {composed} \n",
        "utf-8",
    )
    ds = load_dataset("text-table", path=table, test_fraction=0.5)
    assert ds.classes == [composed]  # spaces around a label typed by hand do not count either
