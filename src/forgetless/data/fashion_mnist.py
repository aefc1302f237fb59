"""Fashion-MNIST from IDX files: Debian's ``dataset-fashion-mnist`` or any folder of the 4 files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from forgetless.data.base import Dataset, DatasetNotFoundError, Split

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
INSTALL = "apt-get install -y dataset-fashion-mnist (or pass root= a folder with the IDX files)"
CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not): magic ``0 0 dtype ndim``, big-endian dims, data.

    >>> import gzip, tempfile, os
    >>> raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "x.gz")
    ...     with gzip.open(p, "wb") as f:
    ...         _ = f.write(raw)
    ...     read_idx(p).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise ValueError(f"{path}: header says {expected} bytes of data, file has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    raise DatasetNotFoundError(
        f"Fashion-MNIST file {stem}[.gz] not found in {root}. Install it with: {INSTALL}"
    )


def load_fashion_mnist(root: str | Path | None = None) -> Dataset:
    """The official 60,000/10,000 split of 28x28 ``uint8`` images in 10 classes.

    >>> ds = load_fashion_mnist()  # doctest: +SKIP
    >>> len(ds.train), len(ds.test), ds.num_classes  # doctest: +SKIP
    (60000, 10000, 10)
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"Fashion-MNIST folder {root} not found. Install it with: {INSTALL}"
        )
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
        splits[split] = Split(images, labels)
    return Dataset(
        name="fashion-mnist",
        modality="image",
        classes=list(CLASSES),
        train=splits["train"],
        test=splits["test"],
        source=f"Zalando Research Fashion-MNIST, IDX files in {root}",
        license="MIT",
        info={"root": str(root)},
    )
