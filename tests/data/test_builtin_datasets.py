"""Built-in datasets: sizes, class counts, provenance and deterministic splits on real data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FONTS_HINT, missing, require
from forgetless.data import DatasetNotFoundError, list_datasets, load_dataset
from forgetless.data.fashion_mnist import read_idx
from forgetless.data.latin_glyphs import CHARACTERS, load_latin_glyphs, render_face


def test_registry_lists_every_loader_and_rejects_unknown_names() -> None:
    builtin = {"digits", "fashion-mnist", "latin-glyphs", "openclipart", "wordnet", "fortunes"}
    assert builtin <= set(list_datasets())
    assert {"image-folder", "text-table", "arrays"} <= set(list_datasets())
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_digits_is_embedded_and_split_by_seed() -> None:
    a, b, c = load_dataset("digits"), load_dataset("digits"), load_dataset("digits", seed=1)
    assert len(a.train) + len(a.test) == 1797 and a.num_classes == 10
    assert a.train.inputs.shape[1:] == (8, 8) and a.train.inputs.dtype == np.uint8
    assert a.train.inputs.max() == 255
    np.testing.assert_array_equal(a.train.inputs, b.train.inputs)
    assert not np.array_equal(a.train.labels, c.train.labels)
    assert set(np.unique(a.test.labels)) == set(range(10))
    assert "scikit-learn" in a.source and a.license


def test_fashion_mnist_sizes_and_classes(fashion_mnist) -> None:
    ds = fashion_mnist
    assert (len(ds.train), len(ds.test), ds.num_classes) == (60_000, 10_000, 10)
    assert ds.train.inputs.shape == (60_000, 28, 28) and ds.train.inputs.dtype == np.uint8
    assert np.bincount(ds.train.labels).tolist() == [6000] * 10
    assert np.bincount(ds.test.labels).tolist() == [1000] * 10
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert ds.license == "MIT"


def test_fashion_mnist_reads_a_user_folder_of_idx_files(fashion_mnist, tmp_path: Path) -> None:
    src = Path(fashion_mnist.info["root"])
    for f in src.iterdir():
        if f.name.startswith("t10k"):
            shutil.copy(f, tmp_path / f.name)
        else:  # plain (not gzipped) IDX works too
            (tmp_path / f.name.removesuffix(".gz")).write_bytes(_gunzip(f))
    ds = load_dataset("fashion-mnist", root=tmp_path)
    np.testing.assert_array_equal(ds.train.inputs[:100], fashion_mnist.train.inputs[:100])
    np.testing.assert_array_equal(ds.test.labels, fashion_mnist.test.labels)


def _gunzip(path: Path) -> bytes:
    import gzip

    with gzip.open(path, "rb") as f:
        return f.read()


def test_missing_dataset_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_dataset("fashion-mnist", root=tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y openclipart-png"):
        load_dataset("openclipart", root=tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y wordnet-base"):
        load_dataset("wordnet", root=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y fortunes"):
        load_dataset("fortunes", root=tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y fortunes"):
        load_dataset("fortunes", root=tmp_path)  # a folder with no category file
    with pytest.raises(DatasetNotFoundError, match="latin-font-packages"):
        load_dataset("latin-glyphs", font_dirs=[tmp_path])


def test_read_idx_rejects_truncated_files(tmp_path: Path) -> None:
    bad = tmp_path / "x"
    bad.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 9, 1, 2]))
    with pytest.raises(ValueError, match="header says 9 bytes"):
        read_idx(bad)


def test_latin_glyphs_62_classes_split_by_font(latin_glyphs) -> None:
    ds = latin_glyphs
    assert ds.num_classes == 62 and ds.classes == list(CHARACTERS)
    train_faces, test_faces = ds.info["train_faces"], ds.info["test_faces"]
    # Every face gives exactly one image of each of the 62 classes.
    assert len(ds.train) == 62 * len(train_faces) and len(ds.test) == 62 * len(test_faces)
    assert np.bincount(ds.train.labels).tolist() == [len(train_faces)] * 62
    # No face, and not even a family, is on both sides.
    face = lambda f: (f["path"], f["index"])  # noqa: E731
    assert not {face(f) for f in train_faces} & {face(f) for f in test_faces}
    assert not {f["family"] for f in train_faces} & {f["family"] for f in test_faces}
    assert ds.train.inputs.shape[1:] == (28, 28) and ds.train.inputs.dtype == np.uint8
    # Glyphs are drawn: ink present in every image, and "o" drawn smaller than "O".
    peak = ds.train.inputs.reshape(len(ds.train), -1).max(1)
    assert (peak > 0).all() and (peak > 128).mean() > 0.99  # hairline faces draw faintly
    o_lower, o_upper = CHARACTERS.index("o"), CHARACTERS.index("O")
    ink = lambda k: (ds.train.inputs[ds.train.labels == k] > 64).mean()  # noqa: E731
    assert ink(o_lower) < ink(o_upper)
    # The size and the split's balance need the repo's font set (a stock system has a few
    # dozen faces in a handful of families, too few for a 10-30 % test share by family).
    faces = len(train_faces) + len(test_faces)
    if faces < 500:
        problem = f"only {faces} usable font faces (the repo's font packages give hundreds)"
        missing(problem, FONTS_HINT)
    assert 0.1 < len(test_faces) / faces < 0.3


def test_latin_glyphs_deterministic_and_sized() -> None:
    require("PIL", "pip install pillow")
    a = load_latin_glyphs(image_size=20, max_faces=40)
    b = load_latin_glyphs(image_size=20, max_faces=40)
    assert a.train.inputs.shape[1:] == (20, 20)
    np.testing.assert_array_equal(a.train.inputs, b.train.inputs)
    np.testing.assert_array_equal(a.test.inputs, b.test.inputs)
    assert a.info["test_faces"] == b.info["test_faces"]
    other = load_latin_glyphs(image_size=20, max_faces=40, seed=3)
    assert other.info["test_faces"] != a.info["test_faces"]


def test_latin_glyphs_skips_faces_that_cannot_draw_latin(tmp_path: Path) -> None:
    image_font = require("PIL.ImageFont", "pip install pillow")
    music = require(
        "/usr/share/fonts/truetype/noto/NotoMusic-Regular.ttf",
        "apt-get install -y fonts-noto-core",
    )
    assert render_face(image_font.truetype(str(music), 48), 28) is None
    # An unreadable "font" file is skipped, not fatal.
    (tmp_path / "broken.ttf").write_bytes(b"not a font at all")
    with pytest.raises(DatasetNotFoundError, match="usable font faces"):
        load_latin_glyphs(font_dirs=[tmp_path])


def test_openclipart_classes_and_split(openclipart) -> None:
    ds = openclipart
    assert ds.num_classes >= 20
    counts = np.bincount(np.concatenate([ds.train.labels, ds.test.labels]))
    assert counts.min() >= 20 and len(counts) == ds.num_classes
    assert set(np.unique(ds.test.labels)) == set(range(ds.num_classes))
    assert not set(ds.train.inputs) & set(ds.test.inputs)
    assert not any(os.path.islink(p) for p in ds.train.inputs + ds.test.inputs)
    assert all(c.count("/") == 1 for c in ds.classes)  # depth 2: "animals/birds"
    again = load_dataset("openclipart")
    assert again.train.inputs == ds.train.inputs and again.test.inputs == ds.test.inputs
    assert load_dataset("openclipart", seed=1).test.inputs != ds.test.inputs
    top = load_dataset("openclipart", depth=1, min_images=100)
    assert 5 <= top.num_classes < ds.num_classes and "/" not in "".join(top.classes)


def test_wordnet_45_lexicographer_classes(wordnet) -> None:
    ds = wordnet
    assert ds.num_classes == 45 and len(ds.train) + len(ds.test) == 117_659
    assert set(np.unique(ds.train.labels)) == set(range(45))
    assert set(np.unique(ds.test.labels)) == set(range(45))
    assert ds.classes[5] == "noun.animal" and ds.classes[38] == "verb.motion"
    assert all(isinstance(t, str) and t for t in ds.train.inputs[:1000])
    dog = [
        t for t in ds.train.inputs + ds.test.inputs if t.startswith("a member of the genus Canis")
    ]
    assert dog, "the gloss of dog should be there"
    again = load_dataset("wordnet")
    assert again.test.inputs == ds.test.inputs
    assert load_dataset("wordnet", seed=1).test.inputs != ds.test.inputs


def test_fortunes_32_categories(fortunes) -> None:
    ds = fortunes
    assert ds.num_classes == 32 and len(ds.train) + len(ds.test) == 14_673
    assert set(np.unique(ds.test.labels)) == set(range(32))
    assert {"computers", "food", "linux", "science"} <= set(ds.classes)
    assert "linuxcookie" in ds.classes and "debian" not in ds.classes  # 103 and 85 items
    assert all(isinstance(t, str) and 11 <= len(t) <= 1000 for t in ds.train.inputs)
    assert not any("\n" in t or "  " in t for t in ds.train.inputs[:2000])
    again = load_dataset("fortunes")
    assert again.test.inputs == ds.test.inputs
    assert load_dataset("fortunes", seed=1).test.inputs != ds.test.inputs
    assert load_dataset("fortunes", min_items=500).num_classes == 12


def test_fortunes_reads_a_folder_of_category_files(tmp_path: Path) -> None:
    (tmp_path / "cats").write_text("Cats sleep anywhere.\n%\nA cat has nine lives.\n%\n%\n")
    (tmp_path / "dogs").write_bytes(
        "Every dog has its day.\n%\nCaf\xe9 dogs bark.\n%\n".encode("latin-1")
    )
    (tmp_path / "dogs.dat").write_bytes(b"\x00\x01")  # the strfile index: not a category
    (tmp_path / "kittens").symlink_to(tmp_path / "cats")  # the same file twice: skipped
    (tmp_path / "short").write_text("Too few.\n%\nOnly one item here.\n")
    ds = load_dataset("fortunes", root=tmp_path, min_items=2, test_fraction=0.5)
    assert ds.classes == ["cats", "dogs"]
    texts = sorted(ds.train.inputs + ds.test.inputs)
    assert texts == sorted(
        [
            "Cats sleep anywhere.",
            "A cat has nine lives.",
            "Every dog has its day.",
            "Café dogs bark.",
        ]
    )
    with pytest.raises(ValueError, match="min_items must be at least 2"):
        load_dataset("fortunes", root=tmp_path, min_items=1)


def test_subset_is_stratified_and_deterministic(fashion_mnist) -> None:
    small = fashion_mnist.subset(train=3000, test=1000)
    assert (len(small.train), len(small.test)) == (3000, 1000)
    assert np.bincount(small.train.labels).tolist() == [300] * 10
    again = fashion_mnist.subset(train=3000, test=1000)
    np.testing.assert_array_equal(small.train.inputs, again.train.inputs)
