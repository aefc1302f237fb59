"""Folders of class subfolders: the layout of ImageNet-R, CUB-200 and most image benchmarks.

Images stay on disk as paths; encoders decode them (and composite transparency onto white) when
they are encoded, so a large folder costs no memory until then.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from forgetless.data.base import (
    Dataset,
    DatasetFileError,
    DatasetNotFoundError,
    Split,
    encode_labels,
)
from forgetless.teach_inputs import IMAGE_SUFFIXES, class_name, read_as_two_classes, walk_files

__all__ = ["IMAGE_SUFFIXES", "class_of", "image_files", "load_image_folder"]


def image_files(folder: Path, follow_symlinks: bool = False) -> list[Path]:
    """Image files anywhere under ``folder``, sorted, as paths under ``folder``.

    Symlinks are skipped unless asked for. With ``follow_symlinks``, links to image files are
    read and links to folders followed, each real folder once (:func:`walk_files`: hidden
    names are skipped there).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Path(d, "cat").mkdir()
    ...     _ = Path(d, "cat", "x.png").write_bytes(b"")
    ...     Path(d, "kitty").symlink_to(Path(d, "cat"))  # read at its own place, cat/
    ...     [p.relative_to(d).as_posix() for p in image_files(Path(d), follow_symlinks=True)]
    ['cat/x.png']
    """
    if not follow_symlinks:
        return sorted(
            p
            for p in folder.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_symlink() and p.is_file()
        )
    files, _ = walk_files(folder)
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def class_of(path: Path, root: Path, depth: int) -> str | None:
    """The class of ``path``: its first ``depth`` folders below ``root`` joined by "/", each
    without spaces around it and in Unicode's composed form (NFC), as taught labels are: macOS
    names folders decomposed (é as e and a combining accent), and one class must not become
    two because its train and test folders were named on different systems.

    >>> class_of(Path("/r/animals/birds/owl.png"), Path("/r"), 2)
    'animals/birds'
    >>> class_of(Path("/r/animals/owl.png"), Path("/r"), 2) is None
    True
    >>> class_of(Path("/r/cafe\u0301/cup.png"), Path("/r"), 1) == "caf\u00e9"
    True
    """
    parts = path.relative_to(root).parts[:-1]
    if len(parts) < depth:
        return None
    return class_name(parts[:depth])


def _labelled(files: Iterable[Path], root: Path, depth: int) -> tuple[list[str], list[str]]:
    paths, names = [], []
    for p in files:
        name = class_of(p, root, depth)
        if name is not None:
            paths.append(str(p))
            names.append(name)
    return paths, names


def _place(folder: Path, depth: int) -> str:
    """Where images must go: ``folder/<class>/``, or a folder ``depth`` levels deep."""
    return f"{folder}/<class>/" if depth == 1 else f"{folder}/{'<folder>/' * depth} (depth={depth})"


def _too_high(depth: int) -> str:
    return "directly in it" if depth == 1 else f"less than {depth} folders deep"


def _loose_images(folder: Path, loose: list[Path], depth: int) -> str:
    """The warning for images of ``folder`` that lie outside class folders and are left out."""
    n = len(loose)
    return (
        f"{n} image file{'s' * (n != 1)} in {folder} {'lie' if n != 1 else 'lies'} outside "
        f"class folders ({_too_high(depth)}) and {'are' if n != 1 else 'is'} left out, "
        f"e.g. {loose[0]}; to use {'them' if n != 1 else 'it'}, put "
        f"{'them' if n != 1 else 'it'} in {_place(folder, depth)}"
    )


def _no_images(folder: Path, files: list[Path], depth: int) -> str:
    """Why ``folder`` gave no image in a class folder: what it holds instead."""
    found = []
    if files:  # none in class folders, so all of them lie too high
        found.append(
            f"{len(files)} image file{'s lie' if len(files) != 1 else ' lies'} {_too_high(depth)}"
        )
    links = [p for p in folder.rglob("*") if p.is_symlink()]
    broken = sum(1 for p in links if not p.exists())
    folders = sum(1 for p in links if p.is_dir())
    if broken:
        found.append(f"{broken} link{'s' * (broken != 1)} to nothing")
    if folders:
        found.append(
            f"{folders} link{'s to folders' if folders != 1 else ' to a folder'} (followed)"
        )
    held = "; ".join(found) or f"it holds no image files ({', '.join(IMAGE_SUFFIXES)})"
    return f"{folder} has no images in class folders: {held}; put images in {_place(folder, depth)}"


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
    to image files are read and links to folders followed, at any depth: a class folder may be
    a link (``train/cat -> /data/cats`` is class ``cat``), and paths are kept as they appear
    under ``root``. A folder reached twice (a link to a folder above it, or to one read
    elsewhere) is read once: at its own place when it lies in the split folder, else through
    the first such link in sorted order; one reached from two class folders (``train/cat``
    and ``train/kitty`` both links to ``/data/cats``) is refused, naming both. Hidden names
    (a leading ".") are skipped. Images outside class folders (directly in ``train/``, or fewer
    than ``depth`` folders deep) are left out with a warning naming how many and one of them;
    a split with none in class folders is refused, saying what it holds.

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
    left_out = []
    for split, sub in (("train", train_dir), ("test", test_dir)):
        folder = root / sub
        files, aliases = walk_files(folder)
        files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        twice = read_as_two_classes(aliases, folder, depth)
        if twice is not None:
            raise DatasetFileError(twice)
        splits[split] = _labelled(files, folder, depth)
        if not splits[split][0]:  # else the run fails later, as a scenario of 0 classes
            raise DatasetFileError(_no_images(folder, files, depth))
        loose = [p for p in files if class_of(p, folder, depth) is None]
        if loose:
            left_out.append(_loose_images(folder, loose, depth))
    if left_out:  # once both splits are known to load
        from forgetless.validation import user_stacklevel

        for message in left_out:
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
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
