"""scikit-learn's bundled 8x8 digits: real data that needs no install, the default everywhere."""

from __future__ import annotations

import numpy as np

from forgetless.data.base import Dataset, Split, stratified_split


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """1,797 handwritten digits (8x8, ``uint8`` 0..255), split per class by ``seed``.

    >>> ds = load_digits()
    >>> ds.num_classes, ds.train.inputs.shape[1:], ds.train.inputs.dtype
    (10, (8, 8), dtype('uint8'))
    >>> len(ds.train) + len(ds.test)
    1797
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # The bundled images hold 0..16 ink levels; scale to the usual 8-bit range.
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train, test = stratified_split(labels, test_fraction, seed)
    return Dataset(
        name="digits",
        modality="image",
        classes=[str(d) for d in range(10)],
        train=Split(images[train], labels[train]),
        test=Split(images[test], labels[test]),
        source="scikit-learn sklearn.datasets.load_digits (UCI optical recognition of digits)",
        license="CC BY 4.0 (UCI ML repository)",
        info={"test_fraction": test_fraction, "seed": seed},
    )
