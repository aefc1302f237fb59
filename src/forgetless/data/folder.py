"""Folders of class subfolders: the layout of ImageNet-R, CUB-200 and most image benchmarks.

Images stay on disk as paths; encoders decode them (and composite transparency onto white) when
they are encoded, so a large folder costs no memory until then.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from forgetless.data.base import (
    Dataset,
    DatasetFileError,
    DatasetNotFoundError,
    Split,
    encode_labels,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def image_files(folder: Path, follow_symlinks: bool = False) -> list[Path]:
    """Image files anywhere under ``folder``, sorted; symlinks skipped unless asked for."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES
        and (follow_symlinks or not p.is_symlink())
        and p.is_file()
    )


def class_of(path: Path, root: Path, depth: int) -> str | None:
    """The class of ``path``: its first ``depth`` folders below ``root`` joined by "/".

    >>> class_of(Path("/r/animals/birds/owl.png"), Path("/r"), 2)
    'animals/birds'
    >>> class_of(Path("/r/animals/owl.png"), Path("/r"), 2) is None
    True
    """
    parts = path.relative_to(root).parts[:-1]
    if len(parts) < depth:
        return None
    return "/".join(parts[:depth])


def _labelled(files: Iterable[Path], root: Path, depth: int) -> tuple[list[str], list[str]]:
    paths, names = [], []
    for p in files:
        name = class_of(p, root, depth)
        if name is not None:
            paths.append(str(p))
            names.append(name)
    return paths, names


def _no_images(folder: Path, files: list[Path], depth: int) -> str:
    """Why ``folder`` gave no image in a class folder: what it holds instead."""
    found = []
    if files:  # none in class folders, so all of them lie too high
        where = "directly in it" if depth == 1 else f"less than {depth} folders deep"
        found.append(f"{len(files)} image file{'s lie' if len(files) != 1 else ' lies'} {where}")
    links = [p for p in folder.rglob("*") if p.is_symlink()]
    broken = sum(1 for p in links if not p.exists())
    folders = sum(1 for p in links if p.is_dir())
    if broken:
        found.append(f"{broken} link{'s' * (broken != 1)} to nothing")
    if folders:
        found.append(
            f"{folders} link{'s to folders' if folders != 1 else ' to a folder'} (not followed)"
        )
    held = "; ".join(found) or f"it holds no image files ({', '.join(IMAGE_SUFFIXES)})"
    place = "<class>/" if depth == 1 else f"{'<folder>/' * depth} (depth={depth})"
    return f"{folder} has no images in class folders: {held}; put images in {folder}/{place}"


def load_image_folder(
    root: str | Path,
    depth: int = 1,
    train_dir: str = "train",
    test_dir: str = "test",
    name: str | None = None,
    license: str = "unknown (user data)",
) -> Dataset:
    """``root/train/<class>/...`` and ``root/test/<class>/...`` as a dataset of image paths.

    Classes are the sorted union of both splits' class folders (``depth`` levels deep). Links
    to image files are read; links to folders are not followed. Images outside class folders
    are left out, and a split with none in class folders is refused, saying what it holds.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     for split, cls in [("train", "cat"), ("train", "dog"), ("test", "dog")]:
    ...         f = pathlib.Path(d, split, cls, "x.png")
    ...         f.parent.mkdir(parents=True)
    ...         _ = f.write_bytes(b"")
    ...     ds = load_image_folder(d)
    >>> ds.classes, ds.train.labels.tolist(), ds.test.labels.tolist()
    (['cat', 'dog'], [0, 1], [1])
    """
    root = Path(root)
    splits = {}
    for sub in (train_dir, test_dir):  # both before either's files: the layout first
        folder = root / sub
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"{folder} not found: an image-folder dataset needs {root}/{train_dir}/<class>/ "
                f"and {root}/{test_dir}/<class>/ folders of images"
            )
    for split, sub in (("train", train_dir), ("test", test_dir)):
        folder = root / sub
        files = image_files(folder, follow_symlinks=True)
        splits[split] = _labelled(files, folder, depth)
        if not splits[split][0]:  # else the run fails later, as a scenario of 0 classes
            raise DatasetFileError(_no_images(folder, files, depth))
    classes, _ = encode_labels(splits["train"][1] + splits["test"][1])
    lookup = {c: i for i, c in enumerate(classes)}

    def split_of(key: str) -> Split:
        import numpy as np

        paths, names = splits[key]
        return Split(paths, np.array([lookup[n] for n in names], dtype=np.int64))

    return Dataset(
        name=name or root.name,
        modality="image",
        classes=classes,
        train=split_of("train"),
        test=split_of("test"),
        source=f"image folders under {root}",
        license=license,
        info={"root": str(root), "depth": depth},
    )
