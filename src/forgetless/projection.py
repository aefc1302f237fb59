"""Fixed random projection layers: ``h = activation(x W + b)``.

A layer is fully determined by ``(kind, n_features, n_components, seed, activation, bias, scale,
gamma)``. It never changes after creation, which is what keeps the additive statistics built on
its outputs exact: two learners with the same layer can add their sums. The layer is saved as that
configuration (plus a fingerprint of its weights), never as a matrix.

Kinds
-----
``none``        the encoder features themselves (a linear probe).
``gaussian``    i.i.d. normal weights (RanPAC's layer). ``scale="unit"`` divides by sqrt(d);
                ``scale="ranpac"`` keeps N(0, 1) exactly as RanPAC does.
``orthogonal``  orthogonal random features: Haar-random orthogonal d x d blocks (QR of a Gaussian,
                sign-corrected), each column rescaled to a chi(d) norm, stacked when M > d.
``hadamard``    structured orthogonal random features (SORF): sqrt(d') H D1 H D2 H D3 per block with
                H the normalised Walsh-Hadamard matrix and D_k random sign diagonals, d padded to a
                power of two d'. Applied by a fast transform in O(d' log d') per block; only signs
                are kept in memory.
``fourier``     random Fourier features of the RBF kernel exp(-gamma ||x - x'||^2):
                sqrt(2 / M) cos(x W + b), W ~ N(0, 2 gamma), b ~ U[0, 2 pi] (RanDumb's layer).

>>> import numpy as np
>>> layer = RandomProjection("orthogonal", n_features=8, n_components=20, seed=0)
>>> layer.transform(np.ones((3, 8))).shape
(3, 20)
>>> RandomProjection.from_config(layer.config()).signature() == layer.signature()
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy import special

KINDS = ("none", "gaussian", "orthogonal", "hadamard", "fourier")  # plus "guided" (guided.py)
ACTIVATIONS = ("relu", "gelu", "tanh", "sigmoid", "identity", "cos")
SCALES = ("unit", "ranpac")

# Rows of X projected at once: bounds the (chunk x M) intermediate to ~64 MiB in float64.
_CHUNK_ELEMENTS = 1 << 23


def default_activation(kind: str) -> str:
    """The activation a kind uses when none is given: cos for Fourier, identity for none."""
    return {"fourier": "cos", "none": "identity"}.get(kind, "relu")


def _activate(Z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(Z, 0, out=Z)
    if activation == "gelu":
        return Z * 0.5 * (1.0 + special.erf(Z / math.sqrt(2.0)))
    if activation == "tanh":
        return np.tanh(Z, out=Z)
    if activation == "sigmoid":
        return special.expit(Z, out=Z)
    if activation == "cos":
        return np.cos(Z, out=Z)
    return Z


def fwht(X: np.ndarray) -> np.ndarray:
    """Normalised fast Walsh-Hadamard transform along the last axis (length a power of two).

    The transform is orthogonal and its own inverse.

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0, 0.0, 0.0]])
    >>> fwht(x)
    array([[0.5, 0.5, 0.5, 0.5]])
    >>> np.allclose(fwht(fwht(x)), x)
    True
    """
    n, d = X.shape
    if d & (d - 1):
        raise ValueError(f"fwht needs a power-of-two length, got {d}")
    Y = np.array(X, dtype=X.dtype, copy=True)
    h = 1
    while h < d:
        view = Y.reshape(n, d // (2 * h), 2, h)
        first = view[:, :, 0, :].copy()
        view[:, :, 0, :] += view[:, :, 1, :]
        view[:, :, 1, :] = first - view[:, :, 1, :]
        h *= 2
    Y /= math.sqrt(d)
    return Y


class RandomProjection:
    """A fixed random layer, reproducible from its configuration alone.

    Parameters
    ----------
    kind : one of ``KINDS``.
    n_features : input dimension d.
    n_components : output dimension M (ignored for ``kind="none"``, where M = d).
    seed : integer seed; the same configuration always gives the same weights.
    activation : one of ``ACTIVATIONS``; ``None`` picks the kind's default.
    bias : add a N(0, 1) bias before the activation (Fourier layers always have their phase).
    scale : ``"unit"`` (weights / sqrt(d)) or ``"ranpac"`` (plain N(0, 1) weights).
    gamma : RBF kernel width for ``fourier``; ``None`` means 1 / d.
    """

    def __init__(
        self,
        kind: str,
        n_features: int,
        n_components: int = 2000,
        seed: int = 0,
        activation: str | None = None,
        bias: bool = False,
        scale: str = "unit",
        gamma: float | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(
                f"unknown projection {kind!r}; choose one of {', '.join(KINDS + ('guided',))}"
            )
        activation = default_activation(kind) if activation is None else activation
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        if kind == "fourier" and activation != "cos":
            raise ValueError("the fourier projection uses cos; leave activation=None")
        if kind != "fourier" and activation == "cos":
            raise ValueError("activation='cos' belongs to projection='fourier'")
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
        if int(n_features) < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        if kind != "none" and int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if gamma is not None and not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.kind = kind
        self.n_features = int(n_features)
        self.n_components = self.n_features if kind == "none" else int(n_components)
        self.seed = int(seed)
        self.activation = activation
        self.bias = bool(bias)
        self.scale = scale
        self.gamma = gamma
        self._build()

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        d, m = self.n_features, self.n_components
        rng = np.random.default_rng(self.seed)
        self.weights: np.ndarray | None = None
        self.offset: np.ndarray | None = None
        self._signs: np.ndarray | None = None
        self._q_blocks: list[np.ndarray] = []
        unit = 1.0 / math.sqrt(d) if self.scale == "unit" else 1.0
        if self.kind == "gaussian":
            self.weights = rng.standard_normal((d, m)) * unit
        elif self.kind == "orthogonal":
            blocks = []
            for _ in range(-(-m // d)):
                q, r = np.linalg.qr(rng.standard_normal((d, d)))
                q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # Haar-distributed
                self._q_blocks.append(q)
                norms = np.sqrt(rng.chisquare(d, size=d))  # the norm of a Gaussian column
                blocks.append(q * norms)
            self.weights = np.hstack(blocks)[:, :m] * unit
        elif self.kind == "hadamard":
            padded = 1 << (d - 1).bit_length()
            n_blocks = -(-m // padded)
            self._padded = padded
            self._signs = rng.choice(np.array([-1.0, 1.0]), size=(n_blocks, 3, padded))
            self._unit = unit
        elif self.kind == "fourier":
            gamma = self.gamma if self.gamma is not None else 1.0 / d
            self.weights = rng.standard_normal((d, m)) * math.sqrt(2.0 * gamma)
            self.offset = rng.uniform(0.0, 2.0 * math.pi, size=m)
        if self.bias and self.kind not in ("fourier",):
            self.offset = rng.standard_normal(m)

    # ------------------------------------------------------------------ application
    @property
    def n_outputs(self) -> int:
        """Width M of the layer's output."""
        return self.n_components

    def _hadamard_linear(self, X: np.ndarray) -> np.ndarray:
        n, d = X.shape
        padded = self._padded
        out = np.empty((n, self._signs.shape[0] * padded), dtype=X.dtype)
        Xp = np.zeros((n, padded), dtype=X.dtype)
        Xp[:, :d] = X
        for b, (s1, s2, s3) in enumerate(self._signs.astype(X.dtype)):
            Z = fwht(Xp * s3)
            Z = fwht(Z * s2)
            Z = fwht(Z * s1)
            out[:, b * padded : (b + 1) * padded] = Z
        out = out[:, : self.n_components]
        out *= math.sqrt(padded) * self._unit
        return out

    def _linear(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            Z = np.array(X, copy=True)
        elif self.kind == "hadamard":
            Z = self._hadamard_linear(X)
        else:
            Z = X @ self.weights.astype(X.dtype, copy=False)
        if self.offset is not None:
            Z += self.offset.astype(X.dtype, copy=False)
        return Z

    def transform(self, X: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        """Project ``X`` (n, d) to ``H`` (n, M), chunk by chunk so memory stays bounded."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(
                f"X has shape {X.shape}; the projection expects (n, {self.n_features})"
            )
        out = np.empty((X.shape[0], self.n_components), dtype=dtype)
        for start, stop in self.chunks(X.shape[0]):
            out[start:stop] = self._transform_chunk(X[start:stop], dtype)
        return out

    def _transform_chunk(self, X: np.ndarray, dtype: Any) -> np.ndarray:
        Z = _activate(self._linear(np.asarray(X, dtype=dtype)), self.activation)
        if self.kind == "fourier":
            Z *= math.sqrt(2.0 / self.n_components)
        return Z

    def chunks(self, n_rows: int, chunk_size: int | None = None) -> Iterator[tuple[int, int]]:
        """Row ranges ``(start, stop)`` so one projected chunk stays near 64 MiB."""
        if chunk_size is None:
            chunk_size = max(1, _CHUNK_ELEMENTS // max(self.n_components, 1))
        for start in range(0, n_rows, chunk_size):
            yield start, min(start + chunk_size, n_rows)

    def iter_transform(
        self, X: np.ndarray, dtype: Any = np.float64, chunk_size: int | None = None
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, H_chunk)``: the streaming form every statistic is built from."""
        for start, stop in self.chunks(X.shape[0], chunk_size):
            yield start, stop, self._transform_chunk(X[start:stop], dtype)

    # ------------------------------------------------------------------ inspection and storage
    def orthogonal_blocks(self) -> list[np.ndarray]:
        """The orthogonal matrices behind ``orthogonal`` and ``hadamard`` layers (before scaling).

        Each block B satisfies B B^T = I; used to test the construction.
        """
        if self.kind == "orthogonal":
            return [q.copy() for q in self._q_blocks]
        if self.kind == "hadamard":
            eye = np.eye(self._padded)
            blocks = []
            for s1, s2, s3 in self._signs:
                # Rows of the result are B applied to basis vectors, i.e. B^T; transpose back.
                Z = fwht(fwht(fwht(eye * s3) * s2) * s1)
                blocks.append(Z.T)
            return blocks
        raise ValueError(f"a {self.kind!r} projection has no orthogonal blocks")

    def config(self) -> dict[str, Any]:
        """JSON-ready configuration that rebuilds this exact layer."""
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "n_components": self.n_components,
            "seed": self.seed,
            "activation": self.activation,
            "bias": self.bias,
            "scale": self.scale,
            "gamma": self.gamma,
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> RandomProjection:
        return cls(**config)

    def arrays(self) -> dict[str, np.ndarray]:
        """Arrays a saved model must carry to rebuild this layer: none, the seed suffices."""
        return {}

    def signature(self) -> list[float]:
        """Eight numbers summarising the layer's response to a fixed probe.

        Saved with a model and compared on load (to 1e-6 relative, since BLAS may change the
        last bits between machines): a random stream that changed between library versions
        is caught instead of silently giving a different layer.
        """
        rng = np.random.default_rng(12345)
        probe = rng.standard_normal((8, self.n_features))
        mix = rng.standard_normal(self.n_components) / math.sqrt(self.n_components)
        return [float(v) for v in self.transform(probe) @ mix]

    def __repr__(self) -> str:
        return (
            f"RandomProjection({self.kind!r}, n_features={self.n_features}, "
            f"n_components={self.n_components}, activation={self.activation!r})"
        )


def make_projection(
    kind: str,
    n_features: int,
    n_components: int,
    seed: int,
    activation: str | None = None,
    bias: bool = False,
    scale: str = "unit",
    gamma: float | None = None,
    params: dict[str, Any] | None = None,
    X: np.ndarray | None = None,
    y_index: np.ndarray | None = None,
) -> Any:
    """Build a layer. Random kinds need only their settings; ``guided`` selects its units on
    (X, y_index), the data of the first batch, and is frozen afterwards."""
    if kind == "guided":
        from forgetless.guided import GuidedProjection

        if X is None or y_index is None:
            raise ValueError("the guided projection is selected on labelled data (X, y)")
        return GuidedProjection.fit(
            X,
            y_index,
            n_components=n_components,
            seed=seed,
            activation=activation,
            **(params or {}),
        )
    if params:
        raise ValueError(f"projection_params {sorted(params)} apply only to projection='guided'")
    return RandomProjection(kind, n_features, n_components, seed, activation, bias, scale, gamma)


def projection_from_config(config: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """Rebuild a saved layer from its JSON configuration and arrays."""
    if config.get("kind") == "guided":
        from forgetless.guided import GuidedProjection

        return GuidedProjection.from_config(config, arrays)
    return RandomProjection.from_config(config, arrays)
