"""What every fixed layer shares: width checks, chunking, activations, storage and identity.

A layer maps inputs X (n, d) to features H (n, M) and never changes after it is built, which is
what keeps the additive statistics on its outputs exact. A subclass provides four things:
``parameters()`` (its arrays, which an engine moves to its device once), ``apply(X, xp,
params)`` (the map, written once against an array namespace, :mod:`forgetless.layers.xp`),
``config()`` / ``from_config`` (how it is saved) and ``build_bytes`` (what building it from a
config would allocate, so a model file declaring an enormous layer is refused before anything
is built).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from forgetless.layers.xp import NUMPY

ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "identity", "cos")

# Rows of X projected at once: bounds the (chunk x M) intermediate to ~64 MiB in float64.
_CHUNK_ELEMENTS = 1 << 23


def default_activation(kind: str) -> str:
    """The activation a kind uses when none is given: cos for Fourier, identity for none."""
    return {"fourier": "cos", "none": "identity"}.get(kind, "relu")


def check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    return activation


def activate(Z: Any, activation: str, xp: Any = NUMPY) -> Any:
    """The activation applied to ``Z`` (which it may overwrite) in namespace ``xp``."""
    if activation == "identity":
        return Z
    return getattr(xp, activation)(Z)


def check_size(name: str, value: Any) -> int:
    """An integer >= 1 (a width from a config, which may come from an untrusted file)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class Layer(ABC):
    """A frozen map ``X (n, n_features) -> H (n, n_outputs)``; see the module docstring."""

    kind: ClassVar[str]
    n_features: int
    n_components: int
    activation: str

    # ------------------------------------------------------------------ the map
    @abstractmethod
    def parameters(self) -> dict[str, np.ndarray]:
        """The arrays ``apply`` reads (float64 numpy), converted once per engine and dtype."""

    @abstractmethod
    def apply(self, X: Any, xp: Any, params: dict[str, Any]) -> Any:
        """H for one chunk ``X`` (already an array of ``xp`` in the compute dtype), with
        ``params`` = ``parameters()`` converted by ``xp``. May not modify ``X``."""

    @property
    def n_outputs(self) -> int:
        """Width M of the layer's output."""
        return self.n_components

    def advice(self, X: np.ndarray) -> str | None:
        """What to tell a user about learning rows ``X`` through this layer (a setting that
        does not suit them), or None; the learner warns once (see the fourier layer)."""
        return None

    def check_input(self, X: Any, learning: bool = False) -> np.ndarray:
        """``X`` as a 2-D array of the layer's input width, or a ValueError saying why not;
        ``learning``: rows to be summed, which a layer may need more of (a scale it resolves)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X has shape {X.shape}; the projection expects (n, {self.n_features})"
            )
        return X

    def chunks(self, n_rows: int, chunk_size: int | None = None) -> Iterator[tuple[int, int]]:
        """Row ranges ``(start, stop)`` so one projected chunk stays near 64 MiB."""
        if chunk_size is None:
            chunk_size = max(1, _CHUNK_ELEMENTS // max(self.n_outputs, 1))
        for start in range(0, n_rows, chunk_size):
            yield start, min(start + chunk_size, n_rows)

    def iter_transform(
        self, X: Any, dtype: Any = np.float64, chunk_size: int | None = None
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, H_chunk)`` on the host: the streaming form of ``transform``."""
        X = self.check_input(X)
        params = NUMPY.parameters(self.parameters(), dtype)  # cast once, not per chunk
        for start, stop in self.chunks(X.shape[0], chunk_size):
            yield start, stop, self.apply(NUMPY.asarray(X[start:stop], dtype), NUMPY, params)

    def transform(self, X: Any, dtype: Any = np.float64) -> np.ndarray:
        """Project ``X`` (n, d) to ``H`` (n, M), chunk by chunk so memory stays bounded."""
        X = self.check_input(X)
        out = np.empty((X.shape[0], self.n_outputs), dtype=dtype)
        for start, stop, H in self.iter_transform(X, dtype):
            out[start:stop] = H
        return out

    # ------------------------------------------------------------------ storage and identity
    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-ready configuration; with :meth:`arrays` it rebuilds this exact layer."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays a saved model must carry to rebuild the layer (none when a seed suffices)."""
        return {}

    @classmethod
    @abstractmethod
    def from_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> Layer:
        """Rebuild a saved layer from :meth:`config` and :meth:`arrays`."""

    @classmethod
    @abstractmethod
    def build_bytes(cls, config: dict[str, Any]) -> int:
        """Bytes building the layer from ``config`` would allocate at its peak (an upper
        estimate; checked before building, so hostile files are refused cheaply)."""

    def check_config_shape(self, config: dict[str, Any]) -> None:
        """A ValueError unless this layer (rebuilt from saved arrays) has the config's widths."""
        if (self.n_features, self.n_components) != (
            config.get("n_features"),
            config.get("n_components"),
        ):
            raise ValueError(
                f"{self.kind} layer arrays ({self.n_features} x {self.n_components}) do not "
                f"match the config ({config.get('n_features')} x {config.get('n_components')})"
            )

    def same_as(self, other: Any) -> bool:
        """The same layer: same kind, config and arrays bit for bit.

        Learners may only merge their sums when this holds (two guided layers selected on
        different data have the same settings but different units). The guided selection
        report describes how the units were found, not what they compute, and is ignored.
        """
        if not isinstance(other, Layer) or type(other) is not type(self):
            return False
        mine, theirs = dict(self.config()), dict(other.config())
        mine.pop("report", None)
        theirs.pop("report", None)
        if mine != theirs:
            return False
        a, b = self.arrays(), other.arrays()
        return a.keys() == b.keys() and all(_bitwise_equal(a[k], b[k]) for k in a)

    def signature(self) -> list[float]:
        """Eight numbers summarising the layer's response to a fixed probe.

        Saved with a model and compared on load (to 1e-6 relative, since BLAS may change the
        last bits between machines): a random stream that changed between library versions
        is caught instead of silently giving a different layer.
        """
        rng = np.random.default_rng(12345)
        probe = rng.standard_normal((8, self.n_features))
        mix = rng.standard_normal(self.n_outputs) / math.sqrt(self.n_outputs)
        return [float(v) for v in self.transform(probe) @ mix]


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
