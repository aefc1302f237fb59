"""Users' own arrays: an ``.npz`` with ``x_train, y_train, x_test, y_test`` or four ``.npy`` files.

Loaded with ``allow_pickle=False``: only plain numeric and string arrays, never pickled objects.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.data.base import Dataset, DatasetFileError, DatasetNotFoundError, Modality, Split

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _load(path: str | Path) -> Any:
    """``np.load`` without pickle; a missing or unreadable file named as such."""
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
    classes: list[str] | None = None,
    modality: Modality | None = None,
    name: str | None = None,
    license: str = "unknown (user data)",
) -> Dataset:
    """A dataset from arrays; labels may be any integers or strings (mapped to sorted classes).

    An ``.npz`` may also hold ``classes`` (a string array). ``modality`` defaults to "image" for
    ``uint8`` inputs of 2 or 3 dims per sample, else "array" (features used as they are).

    >>> import tempfile, os, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "a.npz")
    ...     np.savez(p, x_train=np.eye(4), y_train=[5, 7, 5, 7],
    ...              x_test=np.eye(4)[:2], y_test=[7, 5])
    ...     ds = load_arrays(p)
    >>> ds.classes, ds.train.labels.tolist(), ds.modality
    (['5', '7'], [0, 1, 0, 1], 'array')
    """
    if path is not None:
        npz = _load(path)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise DatasetFileError(f"{path} is one array; give an .npz holding {', '.join(KEYS)}")
        with npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise DatasetFileError(f"{path} lacks arrays {missing}; it has {npz.files}")
            try:
                arrays = {k: npz[k] for k in KEYS}
                if classes is None and "classes" in npz.files:
                    classes = [str(c) for c in npz["classes"]]
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
                raise DatasetFileError(f"{path} holds an unreadable array ({err})") from None
        source = str(path)
    else:
        given = dict(zip(KEYS, (x_train, y_train, x_test, y_test), strict=True))
        if any(v is None for v in given.values()):
            raise ValueError("pass path= an .npz, or all of x_train, y_train, x_test, y_test")
        arrays = {k: _load(v) for k, v in given.items()}  # type: ignore[arg-type]
        source = ", ".join(str(v) for v in given.values())
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 0 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            raise DatasetFileError(
                f"x_{split} {x.shape} and y_{split} {y.shape} must hold the same number (> 0) of "
                "samples, one label each"
            )
    y_tr, y_te = arrays["y_train"], arrays["y_test"]
    if classes is not None and np.issubdtype(y_tr.dtype, np.integer):
        train_y, test_y = y_tr.astype(np.int64), y_te.astype(np.int64)
    else:
        values = np.unique(np.concatenate([y_tr, y_te]))
        classes = [str(v) for v in values] if classes is None else classes
        train_y = np.searchsorted(values, y_tr).astype(np.int64)
        test_y = np.searchsorted(values, y_te).astype(np.int64)
    x_tr = arrays["x_train"]
    if modality is None:
        modality = "image" if x_tr.dtype == np.uint8 and x_tr.ndim in (3, 4) else "array"
    return Dataset(
        name=name or (Path(path).stem if path is not None else "arrays"),
        modality=modality,
        classes=list(classes),
        train=Split(x_tr, train_y),
        test=Split(arrays["x_test"], test_y),
        source=source,
        license=license,
    )
