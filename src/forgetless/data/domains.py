"""Domains for domain-incremental runs: the same classes, seen under different conditions.

Two real sources of domains:

- :func:`transformed_domains` — image transformations of a fixed-size image dataset (digits,
  Fashion-MNIST, glyphs). The samples are dealt at random into as many groups as there are
  transformations, and each group is shown through its own transformation, so a sample appears
  in one domain only. ``original``, ``rotate90``, ``invert`` (255 - x), ``noise`` (Gaussian,
  sigma 48 grey levels, seeded), ``blur`` (3 x 3 box filter), ``flip`` (left-right).
- :func:`glyph_style_domains` — the typographic style of each latin-glyphs font face (regular,
  bold, italic, bold italic): the same 62 characters, drawn in new styles step after step.

Both return the dataset with ``info["domain_train"]`` and ``info["domain_test"]`` (a domain
name per sample), which the experiment runner reads.

>>> import numpy as np
>>> from forgetless.data import load_dataset
>>> digits = load_dataset("digits")
>>> ds = transformed_domains(digits, ["original", "invert"], seed=0)
>>> sorted(set(ds.info["domain_train"])), ds.train.inputs.shape == digits.train.inputs.shape
(['invert', 'original'], True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from forgetless.data.base import Dataset, Split

TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "original": lambda x, rng: x,
    "rotate90": lambda x, rng: np.rot90(x, k=1, axes=(1, 2)),
    "invert": lambda x, rng: 255 - x,
    "noise": lambda x, rng: np.clip(x + rng.normal(0.0, 48.0, x.shape), 0, 255),
    "flip": lambda x, rng: x[:, :, ::-1],
    "blur": lambda x, rng: _box_blur(x),
}


def _box_blur(x: np.ndarray) -> np.ndarray:
    padded = np.pad(
        x.astype(np.float64), [(0, 0), (1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 3), mode="edge"
    )
    h, w = x.shape[1], x.shape[2]
    return sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0


def _deal(split: Split, names: list[str], rng: np.random.Generator) -> tuple[Split, list[str]]:
    inputs = np.asarray(split.inputs)
    if inputs.ndim < 3 or inputs.dtype != np.uint8:
        raise ValueError("transformed domains need fixed-size uint8 images (n, h, w[, c])")
    group = rng.integers(0, len(names), size=len(split))
    out = inputs.copy()
    for k, name in enumerate(names):
        rows = np.flatnonzero(group == k)
        out[rows] = np.round(TRANSFORMS[name](inputs[rows].astype(np.float64), rng)).astype(
            np.uint8
        )
    return Split(out, split.labels), [names[k] for k in group]


def transformed_domains(dataset: Dataset, names: list[str], seed: int = 0) -> Dataset:
    """Deal each split's images into one domain per transformation name."""
    if not names:
        raise ValueError(f"transforms is empty; name some of: {', '.join(TRANSFORMS)}")
    unknown = [n for n in names if not isinstance(n, str) or n not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown transforms {unknown}; known: {', '.join(TRANSFORMS)}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # two domains of one transform would be one domain under two numbers
        raise ValueError(f"transforms lists {', '.join(map(repr, twice))} more than once")
    rng = np.random.default_rng(seed)
    train, domain_train = _deal(dataset.train, names, rng)
    test, domain_test = _deal(dataset.test, names, rng)
    return dataclasses.replace(
        dataset,
        name=f"{dataset.name}+{'/'.join(names)}",
        train=train,
        test=test,
        info={
            **dataset.info,
            "domain_train": domain_train,
            "domain_test": domain_test,
            "domains": f"image transformations {names}, each sample in one domain",
        },
    )


def _style(style: str) -> str:
    s = style.lower()
    bold = any(w in s for w in ("bold", "black", "heavy", "semibold", "demibold"))
    italic = any(w in s for w in ("italic", "oblique", "slanted"))
    return {
        (False, False): "regular",
        (True, False): "bold",
        (False, True): "italic",
        (True, True): "bold italic",
    }[(bold, italic)]


def glyph_style_domains(dataset: Dataset) -> Dataset:
    """Domains of the latin-glyphs data: the style of the face that drew each image."""
    if "train_faces" not in dataset.info:
        raise ValueError("glyph style domains need the latin-glyphs dataset")
    per_block = len(dataset.classes)

    def labels(faces: list[dict]) -> list[str]:
        return [_style(f["style"]) for f in faces for _ in range(per_block)]

    return dataclasses.replace(
        dataset,
        info={
            **dataset.info,
            "domain_train": labels(dataset.info["train_faces"]),
            "domain_test": labels(dataset.info["test_faces"]),
            "domains": "typographic style of the font face (regular, bold, italic, bold italic)",
        },
    )
