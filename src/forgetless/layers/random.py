"""Fixed random projection layers: ``h = activation(x W + b)``, rebuilt from a seed.

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
>>> again = RandomProjection.from_config(layer.config())
>>> again.same_as(layer), again.signature() == layer.signature()
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from forgetless.layers.base import (
    Layer,
    activate,
    check_activation,
    check_size,
    default_activation,
)
from forgetless.layers.xp import fwht, fwht_

RANDOM_KINDS = ("none", "gaussian", "orthogonal", "hadamard", "fourier")
_PHASE_MAX, _PHASE_MIN = 1e12, 1e-6  # the phases x w a fourier layer resolves (check_input)
# gamma |x - x'|^2 between typical rows beyond this: the RBF kernel sees every pair of rows as
# strangers (exp(-20) = 2e-9), so a fourier layer can only memorise its training rows
_KERNEL_NARROW = 20.0


class KernelWidthWarning(UserWarning):
    """A fourier layer's kernel is far narrower than the distances between the rows."""


def kernel_too_narrow(X: np.ndarray, gamma: float) -> str | None:
    """A message where gamma |x - x'|^2 between typical rows of ``X`` (the median over up to
    256 pairs, each row with the one half a batch on) exceeds :data:`_KERNEL_NARROW`, else
    None: the default gamma = 1 / d suits standardised features, not pixels of 0..16 (digits:
    about 70, and the model predicted at chance on test rows while fitting its training rows).
    """
    rows = np.asarray(X[:512], dtype=np.float64)
    half = rows.shape[0] // 2
    pairs = rows[:half] - rows[half : 2 * half]
    scale = float(np.abs(pairs).max(initial=0.0))
    if not (math.isfinite(scale) and scale > 0.0):
        return None
    distances = np.einsum("ij,ij->i", pairs / scale, pairs / scale) * scale * scale
    typical = float(np.median(distances))
    if not (typical > 0.0 and gamma * typical > _KERNEL_NARROW):
        return None
    return (
        "the fourier layer's kernel exp(-gamma |x - x'|^2) is about "
        f"exp(-{gamma * typical:.0f}) between typical rows of this batch (gamma = "
        f"{gamma:.3g}): it tells no two rows apart, so the model can only memorise its "
        f"training rows; use gamma about {2.0 / typical:.3g} (1 / (d times the features' "
        "variance)) or standardise the features"
    )


SCALES = ("unit", "ranpac")
_FLOAT = 8  # bytes per float64


class RandomProjection(Layer):
    """A fixed random layer, reproducible from its configuration alone.

    Parameters
    ----------
    kind : one of ``RANDOM_KINDS``.
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
        settings = self.settings_for(
            kind, n_features, n_components, seed, activation, bias, scale, gamma
        )
        for name, value in settings.items():  # kind, widths, seed, activation, bias, ...
            setattr(self, name, value)
        self._build()

    @staticmethod
    def settings_for(
        kind: str,
        n_features: int,
        n_components: int = 2000,
        seed: int = 0,
        activation: str | None = None,
        bias: bool = False,
        scale: str = "unit",
        gamma: float | None = None,
    ) -> dict[str, Any]:
        """The checked, completed settings (what :meth:`config` returns) of the layer these
        arguments build, without drawing it: a model file's layer is checked against them."""
        if kind not in RANDOM_KINDS:
            raise ValueError(
                f"unknown projection {kind!r}; choose one of {', '.join(RANDOM_KINDS)}, guided"
            )
        activation = check_activation(
            default_activation(kind) if activation is None else activation
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
        if gamma is not None:
            gamma = float(gamma)  # a numpy number: a plain one for the file's JSON
            if not 0 < gamma <= 1e100:  # sqrt(2 gamma) W must stay finite
                raise ValueError(f"gamma must be in (0, 1e100], got {gamma}")
        return {
            "kind": kind,
            "n_features": int(n_features),
            "n_components": int(n_features) if kind == "none" else int(n_components),
            "seed": int(seed),
            "activation": activation,
            "bias": bool(bias),
            "scale": scale,
            "gamma": gamma,
        }

    # ------------------------------------------------------------------ construction
    def _build(self) -> None:
        # The order of the draws below is the layer's definition: changing it changes every
        # model saved as a seed (the saved signature would then refuse to load them).
        d, m = self.n_features, self.n_components
        rng = np.random.default_rng(self.seed)
        self.weights: np.ndarray | None = None
        self.offset: np.ndarray | None = None
        self._signs: np.ndarray | None = None
        self._q_blocks: list[np.ndarray] = []
        self._padded = 1 << (d - 1).bit_length()
        self._unit = 1.0 / math.sqrt(d) if self.scale == "unit" else 1.0
        if self.kind == "gaussian":
            self.weights = rng.standard_normal((d, m)) * self._unit
        elif self.kind == "orthogonal":
            blocks = []
            for _ in range(-(-m // d)):
                q, r = np.linalg.qr(rng.standard_normal((d, d)))
                q *= np.where(np.diag(r) < 0, -1.0, 1.0)  # Haar-distributed
                self._q_blocks.append(q)
                norms = np.sqrt(rng.chisquare(d, size=d))  # the norm of a Gaussian column
                blocks.append(q * norms)
            self.weights = np.hstack(blocks)[:, :m] * self._unit
        elif self.kind == "hadamard":
            n_blocks = -(-m // self._padded)
            self._signs = rng.choice(np.array([-1.0, 1.0]), size=(n_blocks, 3, self._padded))
        elif self.kind == "fourier":
            gamma = self.gamma if self.gamma is not None else 1.0 / d
            self.weights = rng.standard_normal((d, m)) * math.sqrt(2.0 * gamma)
            self.offset = rng.uniform(0.0, 2.0 * math.pi, size=m)
        if self.bias and self.kind != "fourier":
            self.offset = rng.standard_normal(m)

    def check_input(self, X: Any, learning: bool = False) -> np.ndarray:
        """As :meth:`Layer.check_input`; a ``fourier`` layer also refuses rows whose phases
        x w cos cannot resolve: beyond about 1e12 radians (no digit of the angle is left), and,
        to be learned, a batch whose every phase is below 1e-6 (cos barely moves: the centred
        sums would hold rounding, and the model would predict at chance)."""
        X = super().check_input(X, learning)
        if self.kind != "fourier" or X.size == 0 or X.dtype.kind not in "fiu":
            return X
        largest = float(np.abs(X).max())
        if not math.isfinite(largest) or largest == 0.0:
            return X  # non-finite values are refused by the learner's own checks
        gamma = self.gamma if self.gamma is not None else 1.0 / self.n_features
        rows = X / largest  # no overflow in the squares
        phase = largest * float(np.sqrt(np.einsum("ij,ij->i", rows, rows)).max())
        phase *= math.sqrt(2.0 * gamma)  # the spread of x w: its weights are N(0, 2 gamma)
        if phase > _PHASE_MAX:
            raise ValueError(
                f"X is too large for the fourier layer: phases of about {phase:.3g} radians "
                f"(gamma = {gamma:.3g}), beyond {_PHASE_MAX:.0e}, leave cos no digit of the "
                "angle; scale the features down (e.g. standardise them) or lower gamma"
            )
        if learning and phase < _PHASE_MIN:
            raise ValueError(
                f"X is too small for the fourier layer: phases of at most {phase:.3g} radians "
                f"(gamma = {gamma:.3g}), below {_PHASE_MIN:.0e}, barely move cos, so the model "
                "would predict at chance; scale the features up (e.g. standardise them) or "
                "raise gamma"
            )
        return X

    def advice(self, X: np.ndarray) -> str | None:
        """A fourier layer's kernel far narrower than the distances between the rows
        (:func:`kernel_too_narrow`)."""
        if self.kind != "fourier" or X.shape[0] < 2 or X.dtype.kind not in "fiu":
            return None
        gamma = self.gamma if self.gamma is not None else 1.0 / self.n_features
        return kernel_too_narrow(X, gamma)

    @classmethod
    def build_bytes(cls, config: dict[str, Any]) -> int:
        """Peak bytes :meth:`_build` allocates for ``config`` (orthogonal: the Gaussian, Q and
        the scaled copy per d x d block, their stacking and the final d x M weights)."""
        kind = config.get("kind")
        if kind not in RANDOM_KINDS:
            raise ValueError(
                f"unknown projection {kind!r}; choose one of {', '.join(RANDOM_KINDS)}"
            )
        d = check_size("n_features", config.get("n_features"))
        m = d if kind == "none" else check_size("n_components", config.get("n_components"))
        offset = m if config.get("bias") or kind == "fourier" else 0
        if kind == "none":
            return _FLOAT * offset
        if kind in ("gaussian", "fourier"):
            return _FLOAT * (2 * d * m + offset)  # the draw and its scaled copy
        if kind == "orthogonal":
            blocks = -(-m // d)
            # per block: the draw, Q and R of the QR (d x d each); kept: Q and Q * norms for
            # every block; then their stacking (blocks * d x d) and the scaled d x M weights
            return _FLOAT * (3 * d * d + 3 * blocks * d * d + d * m + offset)
        padded = 1 << (d - 1).bit_length()
        return _FLOAT * (2 * 3 * -(-m // padded) * padded + offset)  # the signs, their draw

    # ------------------------------------------------------------------ application
    def parameters(self) -> dict[str, np.ndarray]:
        params = {}
        if self.weights is not None:
            params["weights"] = self.weights
        if self._signs is not None:
            params["signs"] = self._signs
        if self.offset is not None:
            params["offset"] = self.offset
        return params

    def apply(self, X: Any, xp: Any, params: dict[str, Any]) -> Any:
        if self.kind == "none":
            Z = xp.copy(X)
        elif self.kind == "hadamard":
            Z = self._hadamard(X, xp, params["signs"])
        else:
            Z = X @ params["weights"]
        if "offset" in params:
            Z += params["offset"]
        Z = activate(Z, self.activation, xp)
        if self.kind == "fourier":
            Z *= math.sqrt(2.0 / self.n_components)
        return Z

    def _hadamard(self, X: Any, xp: Any, signs: Any) -> Any:
        """sqrt(d') [H D1 H D2 H D3 x]_block for every block, a few rows at a time so that the
        three transforms of a row block run in the cache (the numpy namespace's choice)."""
        n, d = X.shape
        padded, m = self._padded, self.n_components
        out = xp.empty((n, m), like=X)
        rows = min(xp.block_rows(n, padded, X), max(n, 1))
        inputs = xp.zeros((rows, padded), like=X)  # X's rows, zero-padded to d'
        work = xp.empty((rows, padded), like=X)
        scratch = xp.empty((rows * padded // 2,), like=X)
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            block_in, Z = inputs[: stop - start], work[: stop - start]
            block_in[:, :d] = X[start:stop]
            for b in range(signs.shape[0]):
                xp.multiply(block_in, signs[b, 2], out=Z)
                fwht_(Z, xp, scratch)
                Z *= signs[b, 1]
                fwht_(Z, xp, scratch)
                Z *= signs[b, 0]
                fwht_(Z, xp, scratch)
                lo, hi = b * padded, min((b + 1) * padded, m)
                out[start:stop, lo:hi] = Z[:, : hi - lo]
        out *= math.sqrt(padded) * self._unit
        return out

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
        """Rebuild from :meth:`config`; a random layer carries no arrays (its seed suffices)."""
        known = ("kind", "n_features", "n_components", "seed", "activation", "bias", "scale")
        unknown = sorted(set(config) - {*known, "gamma"})
        if unknown or "kind" not in config or "n_features" not in config:
            raise ValueError(
                f"a random projection config needs 'kind' and 'n_features' and may hold "
                f"{', '.join(known[2:])}, gamma; got {sorted(config)}"
            )
        if arrays:
            raise ValueError(
                f"a random projection is rebuilt from its seed; unexpected arrays {sorted(arrays)}"
            )
        return cls(**config)

    def __repr__(self) -> str:
        return (
            f"RandomProjection({self.kind!r}, n_features={self.n_features}, "
            f"n_components={self.n_components}, activation={self.activation!r}"
            + (", bias=True)" if self.bias else ")")
        )
