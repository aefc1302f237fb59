"""Real datasets that work offline, and loaders for users' own data.

``load_dataset(name, **kw)`` returns a :class:`Dataset` (train and test splits, class names,
source and license). Built-in names come from Debian packages or scikit-learn; a missing one
raises :class:`DatasetNotFoundError` saying what to install.

>>> "digits" in list_datasets()
True
>>> ds = load_dataset("digits")
>>> ds.num_classes, ds.train.inputs.dtype
(10, dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Callable

from forgetless.data.arrays import load_arrays
from forgetless.data.base import (
    Dataset,
    DatasetFileError,
    DatasetNotFoundError,
    Split,
    stratified_sample,
)
from forgetless.data.digits import load_digits
from forgetless.data.fashion_mnist import load_fashion_mnist
from forgetless.data.folder import load_image_folder
from forgetless.data.fortunes import load_fortunes
from forgetless.data.latin_glyphs import load_latin_glyphs
from forgetless.data.openclipart import load_openclipart
from forgetless.data.text_table import load_text_table
from forgetless.data.wordnet import load_wordnet

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "fashion-mnist": load_fashion_mnist,
    "latin-glyphs": load_latin_glyphs,
    "openclipart": load_openclipart,
    "wordnet": load_wordnet,
    "fortunes": load_fortunes,
    "image-folder": load_image_folder,
    "text-table": load_text_table,
    "arrays": load_arrays,
}


def list_datasets() -> list[str]:
    """Names ``load_dataset`` knows: built-in datasets, then loaders for users' own data."""
    return list(_LOADERS)


def load_dataset(name: str, /, **kwargs: object) -> Dataset:
    """Load dataset ``name``; keyword arguments go to its loader (e.g. ``seed``, ``root``)."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_LOADERS)}") from None
    return loader(**kwargs)


__all__ = [
    "Dataset",
    "DatasetFileError",
    "DatasetNotFoundError",
    "Split",
    "list_datasets",
    "load_dataset",
    "stratified_sample",
]
