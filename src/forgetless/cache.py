"""An on-disk feature cache: encode each (encoder, inputs) once, then read at disk speed.

Encoding is the slow part of learning on a frozen encoder (tens of ms per image on a CPU), and
it is the same every run. Each entry is a folder holding ``features.npy`` (memory-mapped) and
``manifest.json``; the folder name is a hash of the encoder's fingerprint (name, weights,
preprocessing) and of the inputs, so a changed model, preprocessing or dataset gets a new
entry and never stale features. Features are written in chunks, each recorded in the manifest
with its sha256 once it is on disk: a killed run resumes at the first missing chunk, and a
damaged chunk is found on read and encoded again.

>>> import tempfile, numpy as np
>>> from forgetless.encoders import load_encoder
>>> cache = FeatureCache(tempfile.mkdtemp())
>>> images = np.random.default_rng(0).integers(0, 255, (10, 8, 8), dtype=np.uint8)
>>> first = cache.features(load_encoder("raw"), images, tag="demo")
>>> again = cache.features(load_encoder("raw"), images, tag="demo")  # read, not encoded
>>> first.shape, bool((first == again).all()), len(cache.entries())
((10, 64), True, 1)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.encoders.base import Encoder, progress_bar
from forgetless.persistence import write_json_atomic as _write_json
from forgetless.validation import is_integer, is_real

ENV_VAR = "FORGETLESS_CACHE_DIR"
FORMAT = 1
MANIFEST = "manifest.json"
FEATURES = "features.npy"


class CacheDamagedWarning(UserWarning):
    """A cache entry failed its checks and is being rebuilt."""


def default_cache_dir() -> Path:
    """``$FORGETLESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/forgetless``, else ``~/.cache/forgetless``.

    >>> import os
    >>> os.environ[ENV_VAR] = "/tmp/fl-cache"
    >>> str(default_cache_dir())
    '/tmp/fl-cache'
    >>> del os.environ[ENV_VAR]
    """
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "forgetless"


def cache_dir_problem(folder: str | os.PathLike[str] | None) -> str | None:
    """What stops ``folder`` (default: :func:`default_cache_dir`) being a cache folder, said
    with where it came from; None when it is one or can be made.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a-file"
    >>> _ = f.write_text("")
    >>> cache_dir_problem(f / "sub")
    '... lies under ...a-file, which is a file'
    """
    path = Path(folder).expanduser() if folder is not None else default_cache_dir()
    where = "" if folder is not None or not os.environ.get(ENV_VAR) else f" (${ENV_VAR})"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir():
        return None
    if existing == path:
        return f"{path}{where} is a file, not a folder"
    return f"{path}{where} lies under {existing}, which is a file"


def inputs_fingerprint(inputs: Sequence[Any] | np.ndarray, modality: str = "image") -> str:
    """A hash of what is encoded: array bytes, texts, PIL images (pixels, mode, palette,
    orientation) or image files (their absolute path and stat).

    Files are keyed by their stat, not their bytes, so a million-image folder is fingerprinted
    in seconds: size, mtime and ctime (a file replaced by ``cp -p``, ``tar x`` or ``rsync -a``
    keeps its mtime, not its ctime), inode and device, under the absolute path (relative paths
    name other files from another folder). Arrays of paths (strings, or objects) are keyed as
    the list of them.

    >>> inputs_fingerprint(["a", "b"], "text") == inputs_fingerprint(["a", "b"], "text")
    True
    >>> inputs_fingerprint(["ab"], "text") == inputs_fingerprint(["a", "b"], "text")
    False
    """
    h = hashlib.sha256()
    if isinstance(inputs, np.ndarray) and (
        inputs.dtype.kind == "O" or (inputs.dtype.kind in "US" and modality == "image")
    ):
        inputs = list(inputs.reshape(-1)) if inputs.ndim != 1 else list(inputs)
    if isinstance(inputs, np.ndarray):
        arr = np.ascontiguousarray(inputs)
        h.update(f"ndarray|{arr.dtype.str}|{arr.shape}|".encode())
        flat = arr.reshape(-1).view(np.uint8)
        step = 1 << 24
        for start in range(0, flat.size, step):
            h.update(flat[start : start + step].data)
        return h.hexdigest()
    h.update(f"seq|{len(inputs)}|{modality}|".encode())
    for item in inputs:
        if isinstance(item, np.ndarray):
            h.update(f"a{item.dtype.str}{item.shape}".encode())
            h.update(np.ascontiguousarray(item).data)
        elif modality == "image" and isinstance(item, (str, os.PathLike)):
            path = os.path.abspath(os.fspath(item))
            st = os.stat(path)
            stat = f"{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}|{st.st_dev}"
            h.update(f"f{len(path)}:{path}|{stat}".encode("utf-8", "surrogatepass"))
        elif modality == "image" and _is_pil_image(item):
            # what decoding reads: the pixels, their mode, a palette and its transparency, and
            # the orientation tag (str(image) holds a memory address, not the pixels)
            palette = item.getpalette() if item.mode in ("P", "PA") else None
            orientation = item.getexif().get(0x0112)
            extra = repr((palette, item.info.get("transparency"), orientation)).encode()
            pixels = item.tobytes()
            h.update(f"p{item.mode}|{item.size}|{len(extra)}:".encode())
            h.update(extra)
            h.update(f"{len(pixels)}:".encode())
            h.update(pixels)
        else:
            text = str(item).encode("utf-8", "surrogatepass")
            h.update(f"t{len(text)}:".encode())
            h.update(text)
    return h.hexdigest()


def _width_changed(name: str, start: int, feats: np.ndarray, width: int) -> str:
    """What to say when an encoder's width changes between chunks of one input list."""
    return (
        f"{name} gave {feats.shape[1]} values per input from input {start} on, but {width} "
        "before: the inputs differ in size; give the encoder one (e.g. size= or image_size=)"
    )


def _is_pil_image(item: Any) -> bool:
    """A PIL image, without importing Pillow where none can have been given."""
    return type(item).__module__.startswith("PIL.") and hasattr(item, "tobytes")


@dataclass(frozen=True)
class CacheEntry:
    """One cached feature matrix, as ``forgetless cache list`` shows it."""

    path: Path
    key: str
    encoder: str
    tag: str
    shape: tuple[int, ...]
    complete: bool
    bytes: int
    updated: float


def _key(encoder_fingerprint: str, inputs_fingerprint: str) -> str:
    parts = f"{FORMAT}|{encoder_fingerprint}|{inputs_fingerprint}"
    return hashlib.sha256(parts.encode()).hexdigest()


def _sha(block: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(block).data).hexdigest()


def _is_shape(value: Any) -> bool:
    return value is None or (
        isinstance(value, list) and len(value) == 2 and all(is_integer(d) and d >= 0 for d in value)
    )


_START = re.compile(r"0|[1-9][0-9]{0,17}")  # a chunk's first row, as str(start) writes it
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_chunks(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and _START.fullmatch(k) and isinstance(d, str) and _SHA256.fullmatch(d)
        for k, d in value.items()
    )


# Every field a manifest must have, and what makes it valid on its own.
_FIELDS: dict[str, Callable[[Any], bool]] = {
    "format": is_integer,
    "key": lambda v: isinstance(v, str),
    "encoder": lambda v: isinstance(v, dict) and isinstance(v.get("name"), str),
    "inputs_fingerprint": lambda v: isinstance(v, str),
    "tag": lambda v: isinstance(v, str),
    "n": lambda v: is_integer(v) and v >= 0,
    "chunk_size": lambda v: is_integer(v) and v >= 1,
    "shape": _is_shape,
    "chunks": _is_chunks,
    "complete": lambda v: isinstance(v, bool),
    "created": is_real,
}


def _brief(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _manifest_problem(manifest: Any) -> str | None:
    """Why ``manifest`` (parsed JSON) cannot describe a cache entry, or None when it can.

    Every field this module reads is checked for its type and against the others, so a manifest
    that parses but is malformed (hand-edited, truncated by a tool, another program's) is
    rebuilt instead of failing deep inside a read or serving an entry it does not describe.

    >>> _manifest_problem({"format": 1})
    "'key' is missing"
    """
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    for name, valid in _FIELDS.items():
        if name not in manifest:
            return f"{name!r} is missing"
        if not valid(manifest[name]):
            return f"{name!r} is {_brief(manifest[name])}"
    for name in ("updated", "encode_seconds"):  # written once encoding has begun
        value = manifest.get(name, 0.0)
        if not (is_real(value) and value >= 0):
            return f"{name!r} is {_brief(value)}"
    n, size, shape, chunks = (manifest[k] for k in ("n", "chunk_size", "shape", "chunks"))
    count = -(-n // size)
    if shape is not None and shape[0] != n:
        return f"'shape' {shape} does not have n={n} rows"
    if (chunks or manifest["complete"]) and shape is None:
        return "chunks or completion recorded without a shape"
    stray = sorted((k for k in chunks if int(k) % size or int(k) >= n), key=int)
    if stray:
        return f"chunks {_brief(stray)} start none of its {count} chunks of {size} rows"
    if manifest["complete"] and len(chunks) != count:
        return f"marked complete with {len(chunks)} of its {count} chunks"
    return None


@contextlib.contextmanager
def _locked(path: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock so two processes filling one entry take turns (POSIX only); yields
    whether it is held (``wait=False``: False at once when another process holds it). A lock
    whose entry was deleted while waiting (``cache clear``) is taken again on the new entry."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent writers are the user's risk
        yield True
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # never through a link; a folder cleared between mkdir and here: again
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            continue
        except OSError as err:
            if not path.is_symlink():
                raise OSError(
                    err.errno, f"cannot open the cache lock {path} ({err.strerror})"
                ) from None
            # a planted link: remove the link itself (never its target) and lock afresh
            warnings.warn(f"cache lock {path} was a link; removed it", CacheDamagedWarning, 3)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(handle.fileno()).st_ino:  # deleted under us: again
                fcntl.flock(handle, fcntl.LOCK_UN)
                continue
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
            return


class FeatureCache:
    """Features on disk under ``root`` (default :func:`default_cache_dir`)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def key(self, encoder: Encoder, inputs: Sequence[Any] | np.ndarray) -> str:
        """The entry key: encoder fingerprint + inputs fingerprint + cache format."""
        return _key(encoder.fingerprint(), inputs_fingerprint(inputs, encoder.modality))

    def features(
        self,
        encoder: Encoder,
        inputs: Sequence[Any] | np.ndarray,
        *,
        tag: str = "",
        chunk_size: int = 1024,
        progress: bool | None = None,
        verify: bool = True,
    ) -> np.ndarray:
        """``encoder``'s features of ``inputs``: read from the cache, encoding what is missing.

        Returns a read-only memory map ``(len(inputs), dim)`` of ``float32``. ``tag`` is a label
        for listings (e.g. ``"fashion-mnist/train"``). ``verify`` re-hashes every chunk on read
        (at disk speed) so a damaged file is rebuilt rather than served.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        n = len(inputs)
        encoder_hash = encoder.fingerprint()
        inputs_hash = inputs_fingerprint(inputs, encoder.modality)
        key = _key(encoder_hash, inputs_hash)
        folder = self.root / key[:32]
        with _locked(folder / ".lock"):
            manifest = self._usable_manifest(folder, key, n, chunk_size)
            if manifest is None:
                manifest = {
                    "format": FORMAT,
                    "key": key,
                    "encoder": encoder.describe(),
                    "inputs_fingerprint": inputs_hash,
                    "tag": tag,
                    "n": n,
                    "chunk_size": chunk_size,
                    "shape": None,
                    "chunks": {},
                    "complete": False,
                    "created": time.time(),
                }
                (folder / FEATURES).unlink(missing_ok=True)
            self._fill(encoder, inputs, folder, manifest, progress, verify)
            if n == 0:
                return np.empty((0, encoder.dim or 0), dtype=np.float32)
            # Mapped while the lock is held: a writer that then starts the entry afresh (another
            # chunk size) unlinks the file and makes a new one; this map keeps the filled one.
            return np.load(folder / FEATURES, mmap_mode="r", allow_pickle=False)

    def _usable_manifest(
        self, folder: Path, key: str, n: int, chunk_size: int
    ) -> dict[str, Any] | None:
        path = folder / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            warnings.warn(f"unreadable cache manifest {path}; rebuilding", CacheDamagedWarning, 2)
            return None
        problem = _manifest_problem(manifest)
        if problem is not None:
            warnings.warn(
                f"malformed cache manifest {path} ({problem}); rebuilding", CacheDamagedWarning, 3
            )
            return None
        if (
            manifest["format"] != FORMAT
            or manifest["key"] != key
            or manifest["n"] != n
            or manifest["chunk_size"] != chunk_size
        ):
            return None  # another entry's, or filled with another chunk size: start afresh
        return manifest

    def _open(self, folder: Path, manifest: dict[str, Any]) -> np.ndarray | None:
        """The features file opened for update, or None when it is missing or malformed."""
        path = folder / FEATURES
        if manifest["shape"] is None or not path.exists():
            return None
        try:
            arr = np.load(path, mmap_mode="r+", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file (a full disk)
            warnings.warn(f"damaged cache file {path} ({exc}); rebuilding", CacheDamagedWarning, 3)
            return None
        if list(arr.shape) != manifest["shape"] or arr.dtype != np.float32:
            warnings.warn(
                f"cache file {path} has the wrong shape; rebuilding", CacheDamagedWarning, 3
            )
            return None
        return arr

    def _fill(
        self,
        encoder: Encoder,
        inputs: Sequence[Any] | np.ndarray,
        folder: Path,
        manifest: dict[str, Any],
        progress: bool | None,
        verify: bool,
    ) -> None:
        n, size = manifest["n"], manifest["chunk_size"]
        starts = range(0, n, size)
        arr = self._open(folder, manifest)
        done: dict[str, str] = manifest["chunks"] if arr is not None else {}
        if arr is not None and verify:
            for start in starts:
                digest = done.get(str(start))
                if digest is not None and _sha(arr[start : start + size]) != digest:
                    warnings.warn(
                        f"cache chunk {start}..{start + size} of {folder} is damaged; re-encoding",
                        CacheDamagedWarning,
                        3,
                    )
                    del done[str(start)]
        todo = [s for s in starts if str(s) not in done]
        if not todo:
            if not manifest["complete"] and n:
                manifest["complete"] = True
                _write_json(folder / MANIFEST, manifest)
            elif not n:
                manifest.update(complete=True, shape=[0, encoder.dim or 0])
                _write_json(folder / MANIFEST, manifest)
            return
        manifest.update(chunks=done, complete=False, encoder=encoder.describe())
        remaining = sum(min(size, n - s) for s in todo)
        desc = f"{encoder.name} {manifest['tag']}".strip()
        began = time.perf_counter()
        with progress_bar(
            remaining, desc, progress, "img" if encoder.modality == "image" else "text"
        ) as bar:
            for start in todo:
                feats = encoder.encode(inputs[start : start + size], progress=False)
                if arr is None:
                    shape = (n, int(feats.shape[1]))
                    arr = np.lib.format.open_memmap(
                        folder / FEATURES, mode="w+", dtype=np.float32, shape=shape
                    )
                    manifest["shape"] = list(shape)
                if feats.shape[1] != arr.shape[1]:
                    raise ValueError(_width_changed(encoder.name, start, feats, arr.shape[1]))
                arr[start : start + len(feats)] = feats
                arr.flush()
                done[str(start)] = _sha(arr[start : start + len(feats)])
                manifest["encode_seconds"] = manifest.get("encode_seconds", 0.0) + (
                    time.perf_counter() - began
                )
                began = time.perf_counter()
                manifest["updated"] = time.time()
                _write_json(folder / MANIFEST, manifest)
                bar.update(len(feats))
        manifest["complete"] = True
        _write_json(folder / MANIFEST, manifest)
        del arr

    def entries(self) -> list[CacheEntry]:
        """Every entry under the root, complete or partial, newest first: what :meth:`clear`
        deletes (a folder whose manifest cannot be read, damaged or being written, is listed
        with the tag "unreadable manifest")."""
        found = []
        for folder in self._folders():
            try:
                size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
                changed = folder.stat().st_mtime
            except OSError:
                continue  # removed meanwhile (a clear by another process)
            try:
                m = json.loads((folder / MANIFEST).read_text())
                updated = float(m.get("updated", m.get("created", 0.0)))
                found.append(
                    CacheEntry(
                        path=folder,
                        key=str(m["key"]),
                        encoder=str(m["encoder"]["name"]),
                        tag=str(m.get("tag", "")),
                        shape=tuple(m["shape"] or (m["n"], 0)),
                        complete=m["complete"] is True,  # as a read decides
                        bytes=size,
                        # a time a clock can show (a damaged manifest may say 1e300 or NaN)
                        updated=updated if 0.0 <= updated < 2.0**40 else 0.0,
                    )
                )
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                found.append(
                    CacheEntry(folder, folder.name, "?", "unreadable manifest", (), False, size,
                               changed)
                )  # fmt: skip
        return sorted(found, key=lambda e: e.updated, reverse=True)

    def _folders(self, leftovers: bool = False) -> list[Path]:
        """The folders this cache made: a 32-hex-digit name holding a manifest or features
        (entries); with ``leftovers``, also those holding only hidden files (the lock, a
        temporary file), which an encode that failed before writing anything leaves."""
        if not self.root.is_dir():
            return []
        return [
            folder
            for folder in self.root.iterdir()
            if len(folder.name) == 32
            and all(c in "0123456789abcdef" for c in folder.name)
            and folder.is_dir()
            and not folder.is_symlink()  # another folder's: not this cache's to list or delete
            and (
                (folder / MANIFEST).exists()
                or (folder / FEATURES).exists()
                or (leftovers and all(p.name.startswith(".") for p in folder.iterdir()))
            )
        ]

    def clear(self) -> tuple[int, int, int]:
        """Delete every entry (and nothing else under the root) that no process is filling or
        reading under its lock; return (entries deleted, bytes freed, entries left busy)."""
        deleted, freed, busy = 0, 0, 0
        entries = set(self._folders())
        for folder in self._folders(leftovers=True):
            with _locked(folder / ".lock", wait=False) as held:
                if not held:
                    busy += folder in entries
                    continue
                freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                shutil.rmtree(folder)
                deleted += folder in entries
        return deleted, freed, busy


def dataset_features(
    encoder: Encoder,
    dataset: Any,
    cache: FeatureCache | None = None,
    progress: bool | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test features of a :class:`forgetless.data.Dataset`, through the cache.

    >>> import tempfile
    >>> from forgetless.data import load_dataset
    >>> from forgetless.encoders import load_encoder
    >>> digits = load_dataset("digits")
    >>> cache = FeatureCache(tempfile.mkdtemp())
    >>> train, test = dataset_features(load_encoder("raw"), digits, cache)
    >>> train.shape, test.shape
    ((1347, 64), (450, 64))
    """
    cache = cache or FeatureCache()
    return (
        cache.features(
            encoder, dataset.train.inputs, tag=f"{dataset.name}/train", progress=progress, **kwargs
        ),
        cache.features(
            encoder, dataset.test.inputs, tag=f"{dataset.name}/test", progress=progress, **kwargs
        ),
    )
