"""The dataset record every loader returns, and the helpers loaders share.

Inputs are kept in the cheapest form that still says what the sample is: a ``uint8`` array for
fixed-size images, a list of file paths for images of any size (decoded lazily by the encoder),
or a list of strings for texts. Labels are ``int64`` indices into ``classes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Inputs = np.ndarray | list[str]
Modality = Literal["image", "text", "array"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on this machine; the message says what to install."""


class DatasetFileError(ValueError):
    """A user's dataset file that cannot be read as one; the message says what is wrong."""


@dataclass(frozen=True)
class Split:
    """One split: inputs and their integer labels."""

    inputs: Inputs
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Split:
        """Rows ``index`` of this split (inputs and labels together)."""
        index = np.asarray(index, dtype=np.int64)
        if isinstance(self.inputs, np.ndarray):
            inputs: Inputs = self.inputs[index]
        else:
            inputs = [self.inputs[i] for i in index]
        return Split(inputs, self.labels[index])


@dataclass(frozen=True)
class Dataset:
    """Train and test splits with class names and provenance.

    >>> import numpy as np
    >>> ds = Dataset(
    ...     name="toy", modality="array", classes=["a", "b"],
    ...     train=Split(np.zeros((4, 2)), np.array([0, 1, 0, 1])),
    ...     test=Split(np.ones((2, 2)), np.array([1, 0])),
    ...     source="made up", license="CC0",
    ... )
    >>> ds.num_classes, len(ds.train), len(ds.test)
    (2, 4, 2)
    """

    name: str
    modality: Modality
    classes: list[str]
    train: Split
    test: Split
    source: str
    license: str
    info: dict[str, object] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __post_init__(self) -> None:
        for split_name in ("train", "test"):
            split = getattr(self, split_name)
            if len(split.inputs) != len(split.labels):
                raise ValueError(
                    f"{self.name}: {split_name} has {len(split.inputs)} inputs "
                    f"but {len(split.labels)} labels"
                )
            if len(split.labels) and (
                split.labels.min() < 0 or split.labels.max() >= len(self.classes)
            ):
                raise ValueError(f"{self.name}: {split_name} labels outside 0..{len(self.classes)}")

    def subset(self, train: int | None = None, test: int | None = None, seed: int = 0) -> Dataset:
        """A class-stratified random subset of each split (deterministic for a seed).

        Tests and quick benchmarks use this so they see every class without encoding everything.

        >>> import numpy as np
        >>> y = np.repeat([0, 1], 50)
        >>> ds = Dataset("toy", "array", ["a", "b"], Split(np.arange(100), y),
        ...              Split(np.arange(100), y), "made up", "CC0")
        >>> small = ds.subset(train=10, test=4)
        >>> len(small.train), np.bincount(small.train.labels).tolist()
        (10, [5, 5])
        """
        return Dataset(
            name=self.name,
            modality=self.modality,
            classes=self.classes,
            train=_subset(self.train, train, seed),
            test=_subset(self.test, test, seed + 1),
            source=self.source,
            license=self.license,
            info={**self.info, "subset": {"train": train, "test": test, "seed": seed}},
        )


def _subset(split: Split, size: int | None, seed: int) -> Split:
    if size is None or size >= len(split):
        return split
    return split.subset(stratified_sample(split.labels, size, seed))


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted indices of ``size`` rows drawn so each class keeps its share (at least one each).

    >>> stratified_sample(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 4, seed=0).shape
    (4,)
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    share = counts / counts.sum() * size
    take = np.maximum(np.floor(share).astype(np.int64), 1)
    take = np.minimum(take, counts)
    # Hand out what rounding left over to the classes with the largest remainders.
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    i = 0
    while take.sum() < size and i < 10 * len(order):
        c = order[i % len(order)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    # The one-per-class floor can overshoot: take back from the largest shares.
    while take.sum() > size and take.max() > 1:
        take[np.argmax(take)] -= 1
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices with ``test_fraction`` of every class in test.

    >>> tr, te = stratified_split(np.array([0] * 8 + [1] * 4), 0.25, seed=0)
    >>> len(tr), len(te)
    (9, 3)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        if len(idx) > 1:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stable_fraction(key: str, seed: int) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed`` alone, for splits that stay put.

    Splitting by a hash (not by position in a list) keeps an item on its side when items are
    added or removed, e.g. when a new font package is installed.

    >>> round(stable_fraction("DejaVu Sans", 0), 6), round(stable_fraction("DejaVu Sans", 1), 6)
    (0.618049, 0.678699)
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def require_path(path: Path, what: str, install: str) -> Path:
    """``path`` if it exists, else a :class:`DatasetNotFoundError` naming the install step."""
    if not path.exists():
        raise DatasetNotFoundError(f"{what} not found at {path}. Install it with: {install}")
    return path


def encode_labels(names: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Sorted class names and each name's index.

    >>> encode_labels(["b", "a", "b"])
    (['a', 'b'], array([1, 0, 1]))
    """
    classes = sorted(set(names))
    lookup = {c: i for i, c in enumerate(classes)}
    return classes, np.array([lookup[n] for n in names], dtype=np.int64)
