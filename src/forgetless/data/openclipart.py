"""openclipart: public-domain clip art in category folders (Debian's ``openclipart-png``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from forgetless.data.base import Dataset, DatasetNotFoundError, Split, stratified_split
from forgetless.data.folder import class_of, image_files

DEFAULT_ROOT = Path("/usr/share/openclipart/png")
INSTALL = "apt-get install -y openclipart-png"
MAX_PIXELS = 4_000_000  # a few posters are huge; decoding them costs more than they teach


def _small_enough(path: Path, max_pixels: int) -> bool:
    """Whether the image has at most ``max_pixels``, read from its header without decoding."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return width * height <= max_pixels
    from PIL import Image, UnidentifiedImageError

    from forgetless.encoders.images import open_image

    try:
        with open_image(path) as im:
            width, height = im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return False
    return width * height <= max_pixels


def load_openclipart(
    root: str | Path | None = None,
    depth: int = 2,
    min_images: int = 20,
    test_fraction: float = 0.25,
    seed: int = 0,
    max_pixels: int = MAX_PIXELS,
) -> Dataset:
    """Clip art labelled by its folder ``depth`` levels down (``animals/birds`` at depth 2).

    Symlinks (images listed in two categories), unreadable files and images over
    ``max_pixels`` are skipped; classes with fewer than ``min_images`` images are dropped; each
    class is split ``test_fraction`` to test by ``seed``. Inputs are PNG paths.

    >>> ds = load_openclipart()  # doctest: +SKIP
    >>> ds.num_classes  # doctest: +SKIP
    38
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    if not root.is_dir():
        raise DatasetNotFoundError(f"openclipart not found at {root}. Install it with: {INSTALL}")
    paths, names = [], []
    for p in image_files(root):
        name = class_of(p, root, depth)
        if name is not None and _small_enough(p, max_pixels):
            paths.append(str(p))
            names.append(name)
    counts = Counter(names)
    classes = sorted(c for c, n in counts.items() if n >= min_images)
    if not classes:
        raise DatasetNotFoundError(
            f"No openclipart folder at depth {depth} under {root} has {min_images}+ images"
        )
    lookup = {c: i for i, c in enumerate(classes)}
    keep = [i for i, n in enumerate(names) if n in lookup]
    kept_paths = [paths[i] for i in keep]
    labels = np.array([lookup[names[i]] for i in keep], dtype=np.int64)
    train, test = stratified_split(labels, test_fraction, seed)
    return Dataset(
        name="openclipart",
        modality="image",
        classes=classes,
        train=Split([kept_paths[i] for i in train], labels[train]),
        test=Split([kept_paths[i] for i in test], labels[test]),
        source=f"Open Clip Art Library PNGs in {root}",
        license="public domain (CC0)",
        info={"root": str(root), "depth": depth, "min_images": min_images, "seed": seed},
    )
