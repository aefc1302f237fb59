"""Fortune-cookie texts labelled by category: 32 classes of text (``computers``, ``food``, ...).

A real, offline text-classification set from Debian's ``fortunes``: each category file of
``/usr/share/games/fortunes`` holds sayings, quotations, jokes and definitions separated by
lines holding only ``%``; the label is the file. The categories overlap in style and topic
(``people`` and ``humorists``, ``linux`` and ``linuxcookie``), so it is harder than its size
suggests, and it is data no benchmark here was tuned on.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from forgetless.data.base import Dataset, DatasetNotFoundError, Split, stratified_split

DEFAULT_ROOT = Path("/usr/share/games/fortunes")
INSTALL = "apt-get install -y fortunes"
MIN_ITEMS = 100  # categories with fewer items are left out (32 of 42 files keep at least this)
MIN_CHARACTERS = 11  # shorter items are separators or stubs, not texts
MAX_CHARACTERS = 1000  # a few items are pages long (ASCII art, song lyrics): their start


def parse_fortunes(text: str) -> list[str]:
    """The items of one category file: split at lines holding only ``%``, whitespace runs
    made single spaces, items shorter than :data:`MIN_CHARACTERS` dropped, long ones cut.

    >>> parse_fortunes("A penny saved\\n  is a penny earned.\\n%\\n%\\nKnow thyself.\\n%\\n")
    ['A penny saved is a penny earned.', 'Know thyself.']
    """
    items = (re.sub(r"\s+", " ", item).strip() for item in re.split(r"^%\s*$", text, flags=re.M))
    return [item[:MAX_CHARACTERS] for item in items if len(item) >= MIN_CHARACTERS]


def load_fortunes(
    root: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    min_items: int = MIN_ITEMS,
) -> Dataset:
    """The category files of ``root`` with at least ``min_items`` items each (32 classes,
    14,673 texts with Debian 12's package), split per class by ``seed``. Links (Debian ships
    some categories twice) and the ``.dat``/``.u8`` companions are skipped.

    >>> ds = load_fortunes()  # doctest: +SKIP
    >>> ds.num_classes, len(ds.train) + len(ds.test)  # doctest: +SKIP
    (32, 14673)
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        raise DatasetNotFoundError(f"fortunes folder {root} not found. Install it with: {INSTALL}")
    if int(min_items) < 2:
        raise ValueError(
            f"min_items must be at least 2 (a test and a training item), got {min_items}"
        )
    categories: dict[str, list[str]] = {}
    for path in sorted(root.iterdir()):
        if path.suffix or path.is_symlink() or not path.is_file():
            continue
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        items = parse_fortunes(text)
        if len(items) >= min_items:
            categories[path.name] = items
    if not categories:
        raise DatasetNotFoundError(
            f"no category file in {root} holds {min_items} items or more. Install the "
            f"package with: {INSTALL}"
        )
    names = list(categories)
    texts = [item for name in names for item in categories[name]]
    y = np.repeat(np.arange(len(names)), [len(categories[name]) for name in names])
    train, test = stratified_split(y, test_fraction, seed)
    return Dataset(
        name="fortunes",
        modality="text",
        classes=names,
        train=Split([texts[i] for i in train], y[train]),
        test=Split([texts[i] for i in test], y[test]),
        source=f"fortune category files in {root} (Debian package fortunes)",
        license="the fortunes package's (BSD-style, items public domain or quoted)",
        info={"root": str(root), "seed": seed, "min_items": int(min_items)},
    )
