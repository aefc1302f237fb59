"""The encoder interface: ``encode(inputs) -> float32 (n, dim)`` plus what keys its features.

Every encoder batches its inputs, shows a progress bar on long runs, and describes itself by a
``fingerprint``: a hash of its name, its weights and its preprocessing. The feature cache keys
on it, so a changed model or preprocessing never reuses old features.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

Modality = Literal["image", "text"]
# Bump when a change to forgetless itself changes the features an encoder returns.
FEATURE_VERSION = 1


class EncoderNotAvailableError(RuntimeError):
    """An encoder cannot be built here; the message says what to install or where weights go."""


def missing_package(package: str, extra: str | None = None) -> EncoderNotAvailableError:
    """The error for an optional package that is not installed, with the pip line that fixes it.

    >>> print(missing_package("onnxruntime", extra="vision"))
    this encoder needs 'onnxruntime': pip install 'forgetless[vision]' (or pip install ...)
    """
    how = f"pip install 'forgetless[{extra}]' (or pip install {package})" if extra else None
    return EncoderNotAvailableError(
        f"this encoder needs {package!r}: {how or 'pip install ' + package}"
    )


def show_progress(progress: bool | None) -> bool:
    """``progress`` if given, else whether stderr is a terminal (so logs and CI stay quiet)."""
    if progress is not None:
        return progress
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_bar(total: int, desc: str, progress: bool | None, unit: str = "it") -> Any:
    """A tqdm bar with items/s and ETA, disabled unless :func:`show_progress` says so."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, unit=unit, disable=not show_progress(progress), dynamic_ncols=True
    )


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a weights file (memoised per path, size and mtime: hashed once per run)."""
    st = os.stat(path)
    return _file_sha256(os.fspath(path), st.st_size, st.st_mtime_ns)


def tree_digest(folder: str | os.PathLike[str]) -> str:
    """sha256 over every file of a model folder (names and contents), for local model dirs."""
    root = Path(folder)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file() and ".git" not in q.parts):
        h.update(str(p.relative_to(root)).encode())
        h.update(file_digest(p).encode())
    return h.hexdigest()


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size``.

    >>> [list(b) for b in batches([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Encoder(ABC):
    """A frozen feature extractor. Subclasses implement :meth:`_encode_batch`.

    ``name`` names the model, ``dim`` the feature width, ``modality`` what it reads, and
    :meth:`preprocessing` (a JSON-able dict) how inputs are turned into model inputs.
    """

    name: str
    dim: int | None
    modality: Modality
    batch_size: int = 32

    @abstractmethod
    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        """Features of one batch, ``(len(batch), dim)``."""

    def preprocessing(self) -> dict[str, Any]:
        """How inputs become model inputs; part of the fingerprint."""
        return {}

    def weights_id(self) -> str:
        """What identifies the weights (a file hash); part of the fingerprint."""
        return ""

    def fingerprint(self) -> str:
        """A hash that changes whenever the features this encoder returns could change."""
        payload = {
            "name": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "weights": self.weights_id(),
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
        n = len(inputs)
        size = batch_size or self.batch_size
        out: np.ndarray | None = None
        unit = "img" if self.modality == "image" else "text"
        with self._runtime(), progress_bar(n, self.name, progress, unit) as bar:
            for start in range(0, n, size):
                feats = np.asarray(self._encode_batch(inputs[start : start + size]), np.float32)
                if feats.ndim != 2 or feats.shape[0] != min(size, n - start):
                    raise RuntimeError(f"{self.name} returned shape {feats.shape} for a batch")
                if out is None:
                    out = np.empty((n, feats.shape[1]), dtype=np.float32)
                    if self.dim is None:
                        self.dim = feats.shape[1]
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
        self.device = resolve_device(device)
        self.threads = threads

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


def resolve_device(device: str) -> str:
    """ "cpu", "cuda" (checked), "cuda:N", or "auto" (cuda when available)."""
    try:
        import torch
    except ImportError:
        raise missing_package("torch==2.13.0", extra="torch") from None
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EncoderNotAvailableError(
            f"device={device!r} but torch sees no CUDA device; use device='cpu' or 'auto'"
        )
    return device
