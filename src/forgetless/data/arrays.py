"""Users' own arrays: an ``.npz`` with ``x_train, y_train, x_test, y_test`` or four ``.npy`` files.

Loaded with ``allow_pickle=False``: only plain numeric and string arrays, never pickled objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgetless.data.base import Dataset, DatasetNotFoundError, Modality, Split

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _load(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"array file {path} not found")
    return np.load(path, allow_pickle=False)


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
        with np.load(Path(path), allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise ValueError(f"{path} lacks arrays {missing}; it has {npz.files}")
            arrays = {k: npz[k] for k in KEYS}
            if classes is None and "classes" in npz.files:
                classes = [str(c) for c in npz["classes"]]
        source = str(path)
    else:
        given = dict(zip(KEYS, (x_train, y_train, x_test, y_test), strict=True))
        if any(v is None for v in given.values()):
            raise ValueError("pass path= an .npz, or all of x_train, y_train, x_test, y_test")
        arrays = {k: _load(v) for k, v in given.items()}  # type: ignore[arg-type]
        source = ", ".join(str(v) for v in given.values())
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
