"""Users' own arrays: an ``.npz`` with ``x_train, y_train, x_test, y_test`` or four ``.npy`` files.

Loaded with ``allow_pickle=False``: only plain numeric and string arrays, never pickled objects.
Everything a run would trip over later (labels outside the classes, splits of different sample
shapes, NaN) is checked here, so a mistake is one :class:`DatasetFileError` naming the array.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.data.base import Dataset, DatasetFileError, DatasetNotFoundError, Modality, Split

KEYS = ("x_train", "y_train", "x_test", "y_test")
MODALITIES = ("image", "text", "array")


def _load(path: object, key: str) -> Any:
    """``np.load`` without pickle; a missing or unreadable file named as such."""
    if not isinstance(path, (str, os.PathLike)):
        raise DatasetFileError(f"dataset option {key}={path!r}: give the path of a file")
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"array file {path} not found")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise DatasetFileError(f"{path} is not a readable .npy/.npz file ({err})") from None


def load_arrays(
    path: str | Path | None = None,
    *,
    x_train: str | Path | None = None,
    y_train: str | Path | None = None,
    x_test: str | Path | None = None,
    y_test: str | Path | None = None,
    classes: list[str] | str | None = None,
    modality: Modality | None = None,
    name: str | None = None,
    license: str = "unknown (user data)",
) -> Dataset:
    """A dataset from arrays; labels may be any integers or strings (mapped to sorted classes).

    ``classes`` (a list of names, one comma-separated string, or a ``classes`` string array in
    the ``.npz``) names the classes in order: integer labels are indices into it, string labels
    must be among its names. Samples are feature rows (1 dim each), images (2 dims, or 3 with
    1 to 4 channels last), the same shape in both splits, or strings (texts or image paths).
    ``modality`` defaults to "image" for inputs of 2 or 3 dims per sample with no value below
    0 and for strings that all end in an image suffix, "text" for other strings, else "array"
    (feature rows, which ``forgetless run`` reads with the ``features`` encoder, as they are).

    >>> import tempfile, os, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "a.npz")
    ...     np.savez(p, x_train=np.eye(4), y_train=[5, 7, 5, 7],
    ...              x_test=np.eye(4)[:2], y_test=[7, 5])
    ...     ds = load_arrays(p)
    >>> ds.classes, ds.train.labels.tolist(), ds.modality
    (['5', '7'], [0, 1, 0, 1], 'array')
    """
    given = dict(zip(KEYS, (x_train, y_train, x_test, y_test), strict=True))
    if modality is not None and modality not in MODALITIES:
        raise DatasetFileError(f"dataset option modality={modality!r}: give image, text or array")
    if classes is not None:
        classes = _option_classes(classes)
    if path is not None:
        if any(v is not None for v in given.values()):
            raise DatasetFileError(
                "give path= an .npz, or x_train, y_train, x_test, y_test: not both"
            )
        npz = _load(path, "path")
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DatasetFileError(f"{path} is one array; give an .npz holding {', '.join(KEYS)}")
        with npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise DatasetFileError(f"{path} lacks arrays {missing}; it has {npz.files}")
            try:
                arrays = {k: npz[k] for k in KEYS}
                if classes is None and "classes" in npz.files:
                    classes = _file_classes(npz["classes"], f"classes in {path}")
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
                raise DatasetFileError(f"{path} holds an unreadable array ({err})") from None
        where = {k: f"{k} in {path}" for k in KEYS}
        source = str(path)
    else:
        if any(v is None for v in given.values()):
            raise DatasetFileError("pass path= an .npz, or all of x_train, y_train, x_test, y_test")
        arrays = {}
        for key, file in given.items():
            arrays[key] = _load(file, key)
            if isinstance(arrays[key], np.lib.npyio.NpzFile):  # np.load gives an archive
                arrays[key].close()
                raise DatasetFileError(
                    f"{file} ({key}) is an .npz archive; give {key} one .npy file, or give the "
                    ".npz as path= (holding x_train, y_train, x_test, y_test)"
                )
        where = {k: f"{k} ({v})" for k, v in given.items()}
        source = ", ".join(str(v) for v in given.values())
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_inputs(x, where[f"x_{split}"])
        if y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            raise DatasetFileError(
                f"x_{split} {x.shape} and y_{split} {y.shape} must hold the same number (> 0) of "
                "samples, one label each"
            )
    x_tr, x_te = arrays["x_train"], arrays["x_test"]
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DatasetFileError(
            f"{where['x_train']} has samples of shape {x_tr.shape[1:]} but {where['x_test']} "
            f"{x_te.shape[1:]}; give both splits samples of one shape"
        )
    classes, train_y, test_y = _labels(arrays["y_train"], arrays["y_test"], where, classes)
    if modality is None:
        modality = _modality_of(x_tr)
    return Dataset(
        name=name or (Path(path).stem if path is not None else "arrays"),
        modality=modality,
        classes=classes,
        train=Split(x_tr, train_y),
        test=Split(x_te, test_y),
        source=source,
        license=license,
    )


def _check_inputs(x: np.ndarray, where: str) -> None:
    """Samples the encoders can read: strings (texts, image paths) one per row, or finite
    numbers of 1 to 3 dims per sample (images' channels last)."""
    if x.dtype.kind == "U" and x.ndim != 1:
        raise DatasetFileError(
            f"{where} holds strings of shape {x.shape}; give texts or image paths one per "
            "sample, as a 1-D array"
        )
    if x.dtype.kind == "U":
        return
    if x.dtype.kind not in "biuf":
        raise DatasetFileError(
            f"{where} holds {x.dtype} values; give numbers, or texts or image paths as strings"
        )
    if not 2 <= x.ndim <= 4:
        raise DatasetFileError(
            f"{where} has shape {x.shape}: {max(x.ndim - 1, 0)} dims per sample, but a sample is "
            "a feature row (1 dim), an image (2: height, width) or an image with channels "
            "(3: height, width, channels)"
        )
    if x.ndim == 4 and not 1 <= x.shape[3] <= 4:
        raise DatasetFileError(
            f"{where} has shape {x.shape}: {x.shape[3]} channels per image, but images have 1 "
            "to 4 (grey, grey and alpha, RGB, RGBA), last"
        )
    if 0 in x.shape[1:]:
        raise DatasetFileError(f"{where} has shape {x.shape}: samples without values")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x).all(axis=tuple(range(1, x.ndim)))
        if bad.any():
            raise DatasetFileError(
                f"{where} holds NaN or infinite values in {int(bad.sum())} of its samples, the "
                f"first sample {int(np.argmax(bad))}; replace those values or leave them out"
            )


def _option_classes(classes: object) -> list[str]:
    """The ``classes`` option: a list of names, or one comma-separated string (from the CLI)."""
    if isinstance(classes, str):
        names = [c.strip() for c in classes.split(",")]
    elif isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        names = list(classes)
    else:
        raise DatasetFileError(
            f"dataset option classes={classes!r}: give a list of names, or one string of names "
            "separated by commas (classes=cat,dog)"
        )
    return _checked_names(names, "dataset option classes")


def _file_classes(array: np.ndarray, where: str) -> list[str]:
    """A ``classes`` array of the ``.npz``: strings (or integers, named as written)."""
    if array.ndim != 1 or array.dtype.kind not in "Uiu":
        what = (
            "bytes" if array.dtype.kind == "S" else f"{array.dtype} values of shape {array.shape}"
        )
        raise DatasetFileError(
            f"{where} holds {what}; save the class names as one array of strings "
            "(np.array(names, dtype=str))"
        )
    return _checked_names([str(c) for c in array], where)


def _checked_names(names: list[str], where: str) -> list[str]:
    """``names`` if each is a distinct, non-blank name."""
    if not names:
        raise DatasetFileError(f"{where} names no class")
    seen: set[str] = set()
    for i, c in enumerate(names):
        if not c.strip():
            raise DatasetFileError(f"{where}: name {i} is blank; give every class a name")
        if c in seen:
            raise DatasetFileError(f"{where} names {c!r} twice; give each class once")
        seen.add(c)
    return names


def _labels(
    y_tr: np.ndarray, y_te: np.ndarray, where: dict[str, str], classes: list[str] | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Class names and both splits' label indices; a label that names no class is refused."""
    for key, y in (("y_train", y_tr), ("y_test", y_te)):
        if y.dtype.kind == "S":
            raise DatasetFileError(
                f"{where[key]} holds bytes; save the labels as strings (y.astype(str)) or integers"
            )
        if y.dtype.kind not in "biufU":
            raise DatasetFileError(f"{where[key]} holds {y.dtype} values; give integers or strings")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            row = int(np.argmax(~np.isfinite(y)))
            raise DatasetFileError(f"{where[key]} row {row} is {y[row]}; give every row a label")
        blank = np.char.strip(y) == "" if y.dtype.kind == "U" else np.zeros(len(y), bool)
        if blank.any():
            row = int(np.argmax(blank))
            raise DatasetFileError(f"{where[key]} row {row} is blank; give every row a label")
    if (y_tr.dtype.kind == "U") != (y_te.dtype.kind == "U"):
        raise DatasetFileError(
            f"{where['y_train']} holds {y_tr.dtype} but {where['y_test']} {y_te.dtype}; give "
            "both splits labels of one kind (class names, or integers)"
        )
    if classes is None:
        values = np.unique(np.concatenate([y_tr, y_te]))
        return (
            [str(v) for v in values],
            np.searchsorted(values, y_tr).astype(np.int64),
            np.searchsorted(values, y_te).astype(np.int64),
        )
    return (
        classes,
        _indices(y_tr, where["y_train"], classes),
        _indices(y_te, where["y_test"], classes),
    )


def _indices(y: np.ndarray, where: str, classes: list[str]) -> np.ndarray:
    """Labels as indices into ``classes``: names looked up, numbers checked to be 0..k-1."""
    if y.dtype.kind == "U":
        lookup = {c: i for i, c in enumerate(classes)}
        for row, label in enumerate(y.tolist()):
            if label not in lookup:
                raise DatasetFileError(
                    f"{where} row {row} is {label!r}, which is not among the classes "
                    f"({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}); "
                    "add it to the classes or correct the label"
                )
        return np.array([lookup[label] for label in y.tolist()], dtype=np.int64)
    bad = (y < 0) | (y >= len(classes))
    if y.dtype.kind == "f":
        bad |= y != np.floor(y)
    if bad.any():
        row = int(np.argmax(bad))
        raise DatasetFileError(
            f"{where} row {row} is {y[row]}, but with {len(classes)} classes a numeric label is "
            f"an index 0..{len(classes) - 1}; correct the label or the classes"
        )
    return y.astype(np.int64)


def _modality_of(x: np.ndarray) -> Modality:
    """What an array holds: images (2 or 3 dims per sample, of pixel values: none below 0;
    z-scored "images" would lose their negative half to the pixel range), strings (image paths
    when every one ends in an image suffix: a missing file is then its own error, never read as
    a text naming its class folder; else texts), or rows of numbers."""
    if x.dtype.kind in "US":
        from forgetless.data.folder import IMAGE_SUFFIXES

        suffixes = {Path(str(v)).suffix.lower() for v in x.ravel()}
        return "image" if suffixes and suffixes <= set(IMAGE_SUFFIXES) else "text"
    pixels = x.dtype.kind in "bu" or (x.size > 0 and float(np.min(x)) >= 0)
    return "image" if x.ndim in (3, 4) and pixels else "array"
