"""A model folder's generation files: their names, the pointer that commits them, leftovers.

A taught model (:mod:`forgetless.teachable`) lives in a folder. Each update writes new files
under the next generation number (``learner-GGGGGG.fl``, ``record-GGGGGG-L.fl``), then replaces
the pointer file :data:`POINTER` atomically, then removes the files it no longer names
(:func:`collect_garbage`): a crash leaves the previous or the new model, never a mix. This
module owns those names and the file handling around them: reading the pointer
(:func:`read_pointer`), telling whether a write was committed (:func:`points_to`), refusing a
folder that is not a new model's (:func:`check_new_folder`) and setting aside files a first
learn finds without a pointer (:func:`set_aside_uncommitted`). What the files hold is the
model's.

>>> [bool(BLOB.match(name)) for name in ("learner-000001.fl", "record-000002-7.fl", "learner-1.fl")]
[True, True, False]
>>> import tempfile
>>> check_new_folder(Path(tempfile.mkdtemp()))  # an empty folder may become a model
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.persistence import LOCK_FILE, file_sha256, read_model_file
from forgetless.teach_inputs import InputError

__all__ = [
    "BLOB",
    "KIND",
    "MAX_GENERATION",
    "POINTER",
    "VERSION",
    "StaleModelError",
    "check_new_folder",
    "collect_garbage",
    "points_to",
    "read_pointer",
    "set_aside_uncommitted",
]

logger = logging.getLogger("forgetless")

KIND, VERSION = "forgetless-teachable", 1
POINTER = "CURRENT"
# File names carry the generation in at least 6 digits; a model takes at most MAX_GENERATION
# updates (a trillion), so names never outgrow what opening accepts.
MAX_GENERATION = 10**12 - 1
BLOB = re.compile(r"(learner-[0-9]{6,12}|record-[0-9]{6,12}-[0-9]{1,6})\.fl\Z")
_TEMP = re.compile(r"\..*\.tmp-[0-9]+-[0-9a-f]{8}\Z")


class StaleModelError(InputError):
    """Another process committed a newer generation since this model was opened."""


def read_pointer(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """(metadata, arrays, sha256) of the pointer file, the digest of the very bytes read: a
    commit landing between hashing and reading is read again (a writer renames a whole new
    file into place, so each attempt sees one file or the other)."""
    for _ in range(5):
        before = file_sha256(path)[0]
        metadata, arrays = read_model_file(path, kind=KIND, version=VERSION)
        if file_sha256(path)[0] == before:
            return metadata, arrays, before
    raise StaleModelError(f"{path.parent} is being changed by other processes; try again")


def points_to(pointer: Path, generation: int) -> bool:
    """Whether the pointer file names ``generation`` (a write interrupted after its rename)."""
    try:
        meta, _ = read_model_file(pointer, kind=KIND, version=VERSION)
    except Exception:
        return False
    return meta.get("generation") == generation


def check_new_folder(path: Path) -> None:
    """Refuse ``path`` for a new model unless it is absent, empty, or holds only the leftovers
    of a first learn killed before it committed (files of generation 1, temporary files). Files
    of a later generation without ``CURRENT`` are a model that lost its pointer: overwriting
    them would lose it for good."""
    if not path.exists():
        return
    if not path.is_dir():
        raise InputError(f"{path} is a file; choose another MODEL name")
    names = os.listdir(path)
    if POINTER in names:  # through forgetless learn: another first learn committed meanwhile
        raise StaleModelError(
            f"{path} is a model already (created by another process meanwhile, if it was not "
            "there a moment ago): learn again to add to it, or choose another name"
        )
    if not all(name == LOCK_FILE or BLOB.match(name) or _TEMP.match(name) for name in names):
        raise InputError(f"{path} is a folder that is not an empty model; choose another name")
    generations = [int(name.split("-")[1].split(".")[0]) for name in names if BLOB.match(name)]
    if max(generations, default=1) > 1:
        raise InputError(
            f"{path} holds the files of a model at generation {max(generations)} but no "
            f"{POINTER} file, which names them: restore {POINTER} from a backup, or remove the "
            "folder to start a new model"
        )


def set_aside_uncommitted(folder: Path) -> Path | None:
    """Move the generation-1 files a first learn finds without ``CURRENT`` into a new
    ``.uncommitted-*`` folder inside ``folder``, and say so (the caller holds the lock, so no
    live writer made them). They are the leftovers of a first learn killed before it
    committed, or a model whose ``CURRENT`` was lost: the two look alike, so neither is
    overwritten."""
    blobs = sorted(name for name in os.listdir(folder) if BLOB.match(name))
    if not blobs:
        return None
    aside = Path(tempfile.mkdtemp(prefix=".uncommitted-", dir=folder))
    for name in blobs:
        os.replace(folder / name, aside / name)
    logger.warning(
        "%s held %d file(s) of a model without %s (a first learn interrupted before it "
        "committed, or a model whose %s was lost): moved to %s, not overwritten",
        folder,
        len(blobs),
        POINTER,
        POINTER,
        aside,
    )
    return aside


def collect_garbage(folder: Path, named: set[str]) -> None:
    """Remove the files of earlier generations and temporary files of killed writers (the
    caller holds the lock, so no other writer is running)."""
    for name in os.listdir(folder):
        if (BLOB.match(name) and name not in named) or _TEMP.match(name):
            with contextlib.suppress(OSError):
                os.unlink(folder / name)
