"""The encoder interface: ``encode(inputs) -> float32 (n, dim)`` plus what keys its features.

Every encoder batches its inputs, shows a progress bar on long runs, and describes itself by a
``fingerprint``: a hash of its name, its weights and its preprocessing. The feature cache keys
on it, so a changed model or preprocessing never reuses old features.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from forgetless._install import install_line
from forgetless.encoders.images import DECODE

Modality = Literal["image", "text", "array"]
# Progress in logs (stderr not a terminal): nothing for runs shorter than LOG_QUIET_S, then a
# line at each tenth of the work or every LOG_EVERY_S seconds.
LOG_QUIET_S = 5.0
LOG_EVERY_S = 30.0
# Bump when a change to forgetless itself changes the features an encoder returns.
FEATURE_VERSION = 1


class EncoderNotAvailableError(RuntimeError):
    """An encoder cannot be built here; the message says what to install or where weights go."""


def missing_package(package: str, extra: str | None = None) -> EncoderNotAvailableError:
    """The error for an optional package that is not installed, with the pip line that fixes it.

    >>> print(missing_package("onnxruntime", extra="vision"))
    this encoder needs 'onnxruntime': pip install -e ".[vision]" in forgetless's folder (or ...)
    """
    how = install_line(extra, package) if extra else None
    return EncoderNotAvailableError(
        f"this encoder needs {package!r}: {how or 'pip install ' + package}"
    )


def in_notebook() -> bool:
    """Whether this process is a Jupyter (IPython) kernel, where stderr is not a terminal but
    tqdm.auto draws a widget bar."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or too broken to ask
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_mode(progress: bool | None) -> str:
    """How progress is shown: ``"off"`` (``progress=False``), ``"notebook"`` (tqdm.auto's widget
    in a Jupyter kernel), ``"bar"`` (tqdm on a terminal, or ``progress=True``) or ``"log"``
    (stderr is a file or a pipe: a plain line every tenth of the work or 30 s, see
    :class:`LogProgress`)."""
    if progress is False:
        return "off"
    if in_notebook():
        return "notebook"
    if progress or bool(getattr(sys.stderr, "isatty", lambda: False)()):
        return "bar"
    return "log"


def show_progress(progress: bool | None) -> bool:
    """Whether a tqdm bar is drawn (a terminal, a notebook, or ``progress=True``)."""
    return progress_mode(progress) in ("bar", "notebook")


class LogProgress:
    """Progress for logs: tqdm's ``update``/``close`` interface, writing one plain line to
    stderr at each tenth of the work or every ``every_s`` seconds (:data:`LOG_EVERY_S`), with
    items/s and the time left. A run shorter than ``quiet_s`` (:data:`LOG_QUIET_S`) writes
    nothing, so quick calls keep logs clean; a run that wrote a line ends with one saying how
    long it took.

    >>> import io
    >>> clock = iter([0.0, 1.0, 6.0, 7.0, 40.0, 41.0]).__next__
    >>> out = io.StringIO()
    >>> with LogProgress(100, "minilm", "text", stream=out, clock=clock) as bar:
    ...     bar.update(5)    # 1 s: too early to say anything
    ...     bar.update(25)   # 6 s: 30 %, a line
    ...     bar.update(5)    # 7 s: still 30 %, nothing
    ...     bar.update(1)    # 40 s: still 30 %, but 34 s since the last line
    >>> print(out.getvalue(), end="")
    minilm: 30/100 text (30 %), 5.0 text/s, ~14 s left
    minilm: 36/100 text (36 %), 0.9 text/s, ~71 s left
    minilm: 36/100 text in 41 s (0.9 text/s)
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        *,
        stream: Any = None,
        every_s: float | None = None,
        quiet_s: float | None = None,
        clock: Any = None,
    ) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.quiet_s = LOG_QUIET_S if quiet_s is None else quiet_s
        self.clock = clock or time.monotonic
        self.n = 0
        self.start = self.clock()
        self._last_time = self.start
        self._last_tenth = 0
        self._wrote = self._closed = False

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(line, file=stream, flush=True)
        self._wrote = True

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = self.clock()
        elapsed = now - self.start
        if elapsed < self.quiet_s or not self.total or self.n >= self.total:
            return  # (the end is told by close)
        tenth = min(10, 10 * self.n // self.total)
        if tenth <= self._last_tenth and now - self._last_time < self.every_s:
            return
        self._last_tenth, self._last_time = tenth, now
        rate = self.n / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.n) / rate if rate > 0 else float("nan")
        self._write(
            f"{self.desc}: {self.n}/{self.total} {self.unit} ({100 * self.n // self.total} %), "
            f"{rate:.1f} {self.unit}/s, ~{left:.0f} s left"
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        elapsed = self.clock() - self.start
        if self._wrote or (elapsed >= self.quiet_s and self.n):
            rate = self.n / elapsed if elapsed > 0 else 0.0
            self._write(
                f"{self.desc}: {self.n}/{self.total} {self.unit} in {elapsed:.0f} s "
                f"({rate:.1f} {self.unit}/s)"
            )


def progress_bar(total: int, desc: str, progress: bool | None, unit: str = "it") -> Any:
    """Progress as :func:`progress_mode` says: a tqdm bar with items/s and ETA (tqdm.auto: a
    widget in notebooks), plain lines for logs (:class:`LogProgress`), or nothing."""
    mode = progress_mode(progress)
    if mode == "log":
        return LogProgress(total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=mode == "off", dynamic_ncols=True)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a weights file (memoised per path, size, mtime, ctime and inode: hashed once
    per run; a copy that keeps size and mtime, ``cp -p``, still changes the ctime)."""
    st = os.stat(path)
    return _file_sha256(os.fspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def tree_digest(folder: str | os.PathLike[str]) -> str:
    """sha256 over every file of a model folder (names and contents), for local model dirs."""
    root = Path(folder)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file() and ".git" not in q.parts):
        h.update(str(p.relative_to(root)).encode())
        h.update(file_digest(p).encode())
    return h.hexdigest()


def texts_of(batch: Sequence[Any]) -> list[str]:
    """A text encoder's batch as texts; anything else (None, NaN, bytes) is named, not
    encoded as its repr.

    >>> texts_of(["a cat", "a dog"])
    ['a cat', 'a dog']
    >>> texts_of(["a cat", None])
    Traceback (most recent call last):
    ...
    TypeError: input 1 of the batch is NoneType 'None', not a text
    """
    for i, t in enumerate(batch):
        if not isinstance(t, str):
            raise TypeError(
                f"input {i} of the batch is {type(t).__name__} {str(t)[:40]!r}, not a text"
            )
    return [str(t) for t in batch]


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size``.

    >>> [list(b) for b in batches([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_whole(name: str, value: Any, low: int, high: int | None = None) -> int:
    """An encoder option that is a whole number in [low, high], as a plain int (a numpy one
    reaches the cache's JSON manifest; True is no size).

    >>> check_whole("size", 0, 4, 64)
    Traceback (most recent call last):
    ...
    ValueError: size must be a whole number in [4, 64], got 0
    """
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not whole or value < low or (high is not None and value > high):
        where = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a whole number {where}, got {value!r}")
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    """An encoder option that is True or False (``"no"`` or 1 would pass as true, and 1 and
    True would be two cache keys for the same features)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_batch_size(size: Any) -> int:
    """``size`` if it is a whole number >= 1, else a ValueError naming it.

    >>> check_batch_size(8)
    8
    >>> check_batch_size(0)
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be a whole number >= 1, got 0
    """
    return check_whole("batch_size", size, 1)


class Encoder(ABC):
    """A frozen feature extractor. Subclasses implement :meth:`_encode_batch`.

    ``name`` names the model, ``dim`` the feature width, ``modality`` what it reads, and
    :meth:`preprocessing` (a JSON-able dict) how inputs are turned into model inputs.
    """

    name: str
    dim: int | None
    modality: Modality
    batch_size: int = 32
    readout: str | None = None  # what the features pool, where an encoder offers a choice
    decode: int = DECODE  # how image files are decoded (forgetless.encoders.images)

    def decoding(self, version: int) -> Encoder:
        """This encoder decoding image files as ``version`` does: a view sharing the network
        (a teachable model taught with version 1 keeps it, so its features stay comparable)."""
        if version not in (1, DECODE):
            raise ValueError(f"decode must be 1 or {DECODE}, got {version!r}")
        if self.modality != "image" or version == self.decode:
            return self
        view = copy.copy(self)
        view.decode = version
        if dataclasses.is_dataclass(getattr(self, "prep", None)):
            view.prep = dataclasses.replace(self.prep, decode=version)
        return view

    def last_only(self) -> Encoder:
        """This encoder reading out its last map or layer only: the same network, not a copy
        (what first-session adaptation trains for). An encoder without a choice is that."""
        return self

    def _reading(self, readout: str, dim: int | None) -> Encoder:
        """A view of this encoder reading out ``readout`` (width ``dim``); shares the network."""
        view = copy.copy(self)
        view.readout, view.dim = readout, dim
        return view

    @abstractmethod
    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        """Features of one batch, ``(len(batch), dim)``."""

    def preprocessing(self) -> dict[str, Any]:
        """How inputs become model inputs; part of the fingerprint."""
        return {}

    def weights_id(self) -> str:
        """What identifies the weights (a file hash); part of the fingerprint."""
        return ""

    def _pin_weights(self) -> None:
        """Hash the weights now, as they were loaded: a file replaced later must not lend
        this encoder (which still computes with the old weights) the new file's identity."""
        self._pinned_weights = self.weights_id()

    def fingerprint(self) -> str:
        """A hash that changes whenever the features this encoder returns could change."""
        pinned = self.__dict__.get("_pinned_weights")
        payload = {
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "weights": self.weights_id() if pinned is None else pinned,
            "preprocessing": self.preprocessing(),
            "feature_version": FEATURE_VERSION,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        """What a cache manifest records about this encoder."""
        return {
            "name": self.name,
            "dim": self.dim,
            "modality": self.modality,
            "preprocessing": self.preprocessing(),
            "fingerprint": self.fingerprint(),
        }

    def encode(
        self,
        inputs: Sequence[Any],
        *,
        batch_size: int | None = None,
        progress: bool | None = None,
    ) -> np.ndarray:
        """Features of ``inputs`` as a C-contiguous ``float32`` array ``(len(inputs), dim)``."""
        if isinstance(inputs, (str, bytes)):
            raise TypeError("inputs is one string: give a list of inputs (e.g. [text])")
        n = len(inputs)
        size = check_batch_size(self.batch_size if batch_size is None else batch_size)
        out: np.ndarray | None = None
        unit = {"image": "img", "text": "text"}.get(self.modality, "row")
        with self._runtime(), progress_bar(n, self.name, progress, unit) as bar:
            for start in range(0, n, size):
                feats = np.asarray(self._encode_batch(inputs[start : start + size]), np.float32)
                if feats.ndim != 2 or feats.shape[0] != min(size, n - start):
                    raise RuntimeError(f"{self.name} returned shape {feats.shape} for a batch")
                if out is None:
                    out = np.empty((n, feats.shape[1]), dtype=np.float32)
                    if self.dim is None:
                        self.dim = feats.shape[1]
                elif feats.shape[1] != out.shape[1]:
                    raise ValueError(
                        f"{self.name} gave {feats.shape[1]} values per input from input {start} "
                        f"on, but {out.shape[1]} before: the inputs differ in size; give the "
                        "encoder one (e.g. size= or image_size=)"
                    )
                out[start : start + len(feats)] = feats
                bar.update(len(feats))
        if out is None:
            return np.empty((0, self.dim or 0), dtype=np.float32)
        return out

    @contextlib.contextmanager
    def _runtime(self) -> Iterator[None]:
        """Set up whatever ``encode`` needs while it runs (thread counts); a no-op here."""
        yield

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} dim={self.dim}>"


class TorchEncoder(Encoder):
    """Shared device and thread handling for encoders that run a ``torch.nn.Module``."""

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        # torch comes with the extra of what the encoder reads (forgetless[vision] or [text])
        extra = {"image": "vision", "text": "text"}.get(getattr(self, "modality", None), "torch")
        self.device = resolve_device(device, extra)
        self.threads = None if threads is None else check_whole("threads", threads, 1)

    @contextlib.contextmanager
    def _runtime(self) -> Iterator[None]:
        import torch

        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                yield
        finally:
            torch.set_num_threads(before)


def resolve_device(device: str, extra: str = "torch") -> str:
    """ "cpu", "cuda" (checked), "cuda:N", or "auto" (cuda when available); without torch, the
    error names the extra that installs it (``extra``)."""
    try:
        import torch
    except ImportError:
        raise missing_package("torch==2.13.0", extra=extra) from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderNotAvailableError(
            f"device={device!r} but torch sees no CUDA device; use device='cpu' or 'auto'"
        )
    return device
