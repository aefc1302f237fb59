"""Guided random projection: random units *selected* by a supervisory criterion (SCN style).

A plain random layer needs a large width M to be expressive, and a large M makes ``G = H^T H``
ill-conditioned and the solve slow (M^3). A stochastic configuration network instead draws many
random candidate units and keeps those that reduce the residual of the least-squares head, so a
compact layer does the work of a wide one (SCL-MGSM applies this to continual learning).

Selection, block by block (``docs/guided.md`` derives why it works):

1. Draw ``n_candidates`` units ``g = act(x w + b)``. Inputs are standardised by the guiding
   data's mean and RMS spread (folded into w and b), ``w = lam u`` with ``u ~ N(0, I / d)`` and
   ``b = lam beta v`` with ``v ~ U[-1, 1]``; the ranges are searched as SCN does: candidates
   are spread over every (``lam`` in ``scales``, ``beta`` in ``bias_ranges``) pair and the
   criterion picks among all of them.
2. Score them against the current residual ``E = Y - H_L W_L`` (one column e_q per class):
   ``xi_q = (e_q^T g)^2 / (g^T g) - (1 - r - mu_L) e_q^T e_q``, ``mu_L = (1 - r) / (L + 1)``.
   A candidate is admissible when ``xi_q > 0`` for every q; ``r`` is the first value of
   ``r_values`` (strictest first) at which some candidate is admissible. Among admissible ones
   the largest ``sum_q xi_q`` is taken.
3. The unit's outputs are Gram-Schmidt-orthogonalised against those already chosen (twice per
   block, then modified Gram-Schmidt inside it), which is the QR append that updates the
   residual: ``E <- E - q (q^T E)``, no re-solve. Candidates nearly in the span already chosen
   (``||g_perp|| < min_independence ||g||``) are refused, which bounds the conditioning.
4. Stop at the budget ``n_components``, when a block lowers ``||E||^2`` by less than
   ``tol * ||Y||^2``, when ``patience`` fresh draws give no admissible unit, or when the
   estimated condition number of the raw units' Gram matrix passes ``max_condition`` (that
   block is then dropped).

With ``orthogonalize=True`` (default) the layer outputs ``act(x W + b) T`` with ``T = sqrt(n)
R^-1`` from the selection's QR: on the guiding data its Gram matrix is exactly ``n I``. With
``orthogonalize=False`` the raw units are output (selection is the same).

Which data guides, and what happens later. The layer is selected on the *first* batch the
learner sees (a random subset of at most ``max_samples`` rows) and then frozen, so every later
statistic stays exact: ``partial_fit`` after it equals one fit on everything with the same
layer. Classes that arrive later had no say in the selection; they are learned on units chosen
for the first classes (which still react to any input, being random functions of it), so they
may be represented less well than by a wide unguided layer. ``benchmarks/guided.py`` measures
this (accuracy on task-1 and on later classes). The layer is never regrown in later sessions.
Its width is at most the number of guiding rows (no more outputs can be independent on them),
so a small first task caps it: a layer asked for more stops at ``report["stop_reason"] ==
"sample count"``. ``fit_seconds`` holds the selection time (not saved, so files stay stable).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 5)); y = (X[:, 0] * X[:, 1] > 0).astype(int)
>>> layer = GuidedProjection.fit(X, y, n_components=40, seed=0, block_size=10)
>>> H = layer.transform(X)
>>> H.shape, bool(np.allclose(H.T @ H, 300 * np.eye(40), atol=1e-6))
((300, 40), True)
>>> again = GuidedProjection.from_config(layer.config(), layer.arrays())
>>> bool((again.transform(X) == H).all()), again.same_as(layer)
(True, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import lapack

from forgetless.layers.base import (
    Layer,
    activate,
    check_activation,
    check_size,
    default_activation,
)

DEFAULTS: dict[str, Any] = {
    "block_size": 25,
    "n_candidates": 200,
    "scales": (0.5, 1.0, 2.0),
    "bias_ranges": (0.5, 1.0, 2.0),
    "r_values": (0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999),
    "orthogonalize": True,
    "max_samples": 4000,
    "tol": 1e-6,
    "patience": 3,
    "max_condition": 1e10,
    "min_independence": 1e-3,
}
"""Settings of ``projection="guided"`` (``projection_params`` of the learner)."""

_FLOAT = 8  # bytes per float64


def supervisory_scores(
    residual: np.ndarray, outputs: np.ndarray, r: float, n_units: int
) -> np.ndarray:
    """SCN's criterion xi (C, K) for K candidate outputs (n, K) against a residual (n, C).

    ``xi_q = (e_q^T g)^2 / (g^T g) - (1 - r - mu_L) e_q^T e_q`` with ``mu_L = (1 - r) / (L + 1)``
    and ``L = n_units`` already chosen. A candidate is admissible when every ``xi_q > 0``.

    >>> import numpy as np
    >>> e = np.array([[1.0], [0.0]])
    >>> supervisory_scores(e, np.array([[1.0, 0.0], [0.0, 1.0]]), 0.9, 4).round(3).tolist()
    [[0.92, -0.08]]
    """
    mu = (1.0 - r) / (n_units + 1.0)
    norms = np.einsum("ij,ij->j", outputs, outputs)
    proj = (outputs.T @ residual).T  # (C, K); this operand order is the fast BLAS path
    energy = np.einsum("ij,ij->j", residual, residual)  # (C,)
    safe = np.where(norms > 0, norms, 1.0)
    xi = proj**2 / safe - (1.0 - r - mu) * energy[:, None]
    xi[:, norms <= 0] = -np.inf
    return xi


def _gram_condition(R: np.ndarray, L: int) -> float:
    """Estimated condition number of the raw units' Gram matrix R^T R (LAPACK's 1-norm
    estimate of cond(R), squared), in O(L^2)."""
    rcond, _ = lapack.dtrcon(R[:L, :L], norm="1", uplo="U", diag="N")
    return math.inf if rcond <= 0 else (1.0 / float(rcond)) ** 2


def check_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The guided settings with defaults filled in and types normalised, or a ValueError
    naming the setting (used before fitting and when loading a saved layer)."""
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown projection_params {unknown} for projection='guided'; "
            f"known: {', '.join(DEFAULTS)}"
        )
    s = {**DEFAULTS, **params}
    for name in ("block_size", "n_candidates", "patience"):
        if isinstance(s[name], bool) or not isinstance(s[name], (int, np.integer)) or s[name] < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {s[name]!r}")
        s[name] = int(s[name])
    if isinstance(s["max_samples"], bool) or int(s["max_samples"]) < 2:
        raise ValueError(f"max_samples must be an integer >= 2, got {s['max_samples']!r}")
    s["max_samples"] = int(s["max_samples"])
    for name in ("scales", "bias_ranges", "r_values"):
        values = np.atleast_1d(np.asarray(s[name], dtype=np.float64))
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must be a non-empty list of numbers, got {s[name]!r}")
        s[name] = [float(v) for v in values]
    if min(s["scales"]) <= 0:
        raise ValueError(f"scales must be > 0, got {s['scales']}")
    if min(s["bias_ranges"]) < 0:
        raise ValueError(f"bias_ranges must be >= 0, got {s['bias_ranges']}")
    r = s["r_values"]
    if min(r) <= 0 or max(r) >= 1 or any(b <= a for a, b in zip(r, r[1:], strict=False)):
        raise ValueError(f"r_values must increase strictly inside (0, 1), got {r}")
    for name in ("tol", "min_independence"):
        if not 0 <= float(s[name]) < 1:
            raise ValueError(f"{name} must be in [0, 1), got {s[name]!r}")
        s[name] = float(s[name])
    if not float(s["max_condition"]) > 1:
        raise ValueError(f"max_condition must be > 1, got {s['max_condition']!r}")
    s["max_condition"] = float(s["max_condition"])
    s["orthogonalize"] = bool(s["orthogonalize"])
    return s


def _check_guiding_data(X: Any, y_index: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y_index = np.asarray(y_index)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"the guided projection needs X of shape (n >= 2, d), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinity")
    if y_index.shape != (X.shape[0],) or y_index.dtype.kind not in "iu" or y_index.min() < 0:
        raise ValueError("y_index must hold one non-negative class index per row of X")
    return X, y_index


# ---------------------------------------------------------------------- the selection, in steps
@dataclass
class _Candidates:
    """Candidate units: weights (d, K), offsets (K,), outputs on the guiding rows (n, K) and
    the outputs' squared norms (K,)."""

    weights: np.ndarray
    offset: np.ndarray
    outputs: np.ndarray
    norms2: np.ndarray

    def take(self, index: np.ndarray) -> _Candidates:
        return _Candidates(
            self.weights[:, index], self.offset[index], self.outputs[:, index], self.norms2[index]
        )


@dataclass
class _Block:
    """The shortlist of one block, orthogonalised against the chosen units: components outside
    the chosen span (n, K), their coefficients on it (budget, K), squared norms of those
    components (K,), ``E^T g`` (C, K) and which candidates are still unchosen (K,)."""

    perp: np.ndarray
    coefs: np.ndarray
    perp2: np.ndarray
    residual_dot: np.ndarray
    alive: np.ndarray


class _Selection:
    """The state of a running selection: the QR of the chosen units' outputs (Q, R), their
    weights, the residual E and the history the report keeps. One method per step."""

    def __init__(
        self, X: np.ndarray, y_index: np.ndarray, budget: int, settings: dict, activation: str
    ) -> None:
        n, d = X.shape
        self.X, self.s, self.activation = X, settings, activation
        self.n_classes = int(y_index.max()) + 1
        self.Y = np.zeros((n, self.n_classes))
        self.Y[np.arange(n), y_index] = 1.0
        self.mean = X.mean(axis=0)
        spread = math.sqrt(float(np.mean((X - self.mean) ** 2)))
        self.spread = spread if spread > 0 else 1.0
        self.budget = min(budget, n)  # at most n outputs can be linearly independent on n rows
        grid = [(lam, beta) for lam in settings["scales"] for beta in settings["bias_ranges"]]
        pair = np.arange(settings["n_candidates"]) % len(grid)
        self.lam = np.array([grid[i][0] for i in pair])
        self.beta = np.array([grid[i][1] for i in pair])
        self.E = self.Y.copy()
        self.target = float(np.vdot(self.Y, self.Y))
        self.Q = np.zeros((n, self.budget))
        self.R = np.zeros((self.budget, self.budget))
        self.W = np.zeros((d, self.budget))
        self.b = np.zeros(self.budget)
        self.L = 0
        self.history: dict[str, list[float]] = {"units": [], "residual": [], "condition": []}
        self.unit_r: list[float] = []

    def run(self, rng: np.random.Generator) -> str:
        """Select blocks until a stop rule fires; returns the stop reason."""
        misses = 0
        while self.L < self.budget:
            block = self.shortlist(self.draw_candidates(rng))
            start = self.L
            self.append_block(block, self.orthogonalise(block))
            if self.L == start:
                misses += 1
                if misses >= self.s["patience"]:
                    return "no admissible candidate"
                continue
            misses = 0
            stop = self.close_block()
            if stop is not None:
                return stop
        return "budget"

    # 1. candidates, inputs standardised (folded into W, b so the layer's map is plain)
    def draw_candidates(self, rng: np.random.Generator) -> _Candidates:
        d, K = self.X.shape[1], self.s["n_candidates"]
        u = rng.standard_normal((d, K)) / math.sqrt(d)
        v = rng.uniform(-1.0, 1.0, size=K)
        weights = u * (self.lam / self.spread)
        offset = self.lam * self.beta * v - self.mean @ weights
        outputs = activate(self.X @ weights + offset, self.activation)
        return _Candidates(weights, offset, outputs, np.einsum("ij,ij->j", outputs, outputs))

    # 2. a shortlist of the best-scoring candidates: sum_q xi_q needs only E^T g (E is
    # orthogonal to the chosen span), so only the shortlist is orthogonalised.
    def shortlist(self, candidates: _Candidates) -> _Candidates:
        xi = supervisory_scores(self.E, candidates.outputs, self.s["r_values"][-1], self.L)
        admissible = np.flatnonzero((xi > 0).all(axis=0))
        ranked = admissible[np.argsort(-xi[:, admissible].sum(axis=0), kind="stable")]
        return candidates.take(np.sort(ranked[: 2 * self.s["block_size"]]))

    # 3. their components outside the chosen span (classical Gram-Schmidt, twice)
    def orthogonalise(self, candidates: _Candidates) -> _Block:
        L = self.L
        coefs = np.zeros((self.budget, candidates.offset.size))
        perp = candidates.outputs.copy()
        if L:
            for _ in range(2):
                c = self.Q[:, :L].T @ perp
                perp -= self.Q[:, :L] @ c
                coefs[:L] += c
        return _Block(
            perp=perp,
            coefs=coefs,
            perp2=np.einsum("ij,ij->j", perp, perp),
            residual_dot=(perp.T @ self.E).T,  # = E^T g: E is orthogonal to the chosen span
            alive=candidates.norms2 > 0,
        )

    def append_block(self, candidates: _Candidates, block: _Block) -> None:
        """Take up to ``block_size`` units from the shortlist, best first."""
        start = self.L
        while self.L < self.budget and self.L - start < self.s["block_size"]:
            best = self.choose(candidates, block)
            if best < 0:
                break
            self.append(candidates, block, best)

    def choose(self, candidates: _Candidates, block: _Block) -> int:
        """The admissible candidate with the largest sum_q xi_q at the strictest r that admits
        one (recorded in ``unit_r``), or -1."""
        norms2 = candidates.norms2
        eligible = block.alive & (block.perp2 > (self.s["min_independence"] ** 2) * norms2)
        if not eligible.any():
            return -1
        energy = np.einsum("ij,ij->j", self.E, self.E)
        safe = np.where(norms2 > 0, norms2, 1.0)
        for r in self.s["r_values"]:
            mu = (1.0 - r) / (self.L + 1.0)
            xi = block.residual_dot**2 / safe - (1.0 - r - mu) * energy[:, None]
            admissible = eligible & (xi > 0).all(axis=0)
            if admissible.any():
                self.unit_r.append(r)
                return int(np.argmax(np.where(admissible, xi.sum(axis=0), -np.inf)))
        return -1

    # 4. the QR append: the residual and the remaining candidates lose their q component
    def append(self, candidates: _Candidates, block: _Block, best: int) -> None:
        L = self.L
        g = block.perp[:, best]
        norm = math.sqrt(float(g @ g))
        q = g / norm
        self.Q[:, L] = q
        self.R[:, L] = block.coefs[:, best]
        self.R[L, L] = norm
        self.W[:, L], self.b[L] = candidates.weights[:, best], candidates.offset[best]
        qE = q @ self.E
        self.E -= np.outer(q, qE)
        qG = q @ block.perp
        block.perp -= np.outer(q, qG)
        block.coefs[L] += qG
        block.residual_dot -= np.outer(qE, qG)
        block.perp2 = np.maximum(block.perp2 - qG**2, 0.0)
        block.alive[best] = False
        self.L += 1

    def close_block(self) -> str | None:
        """Stop rules after a block that took units: the condition bound (keeping the longest
        prefix that respects it) and a residual that stopped falling; records the history."""
        stop = None
        condition = _gram_condition(self.R, self.L)
        if condition > self.s["max_condition"]:
            while self.L > 1 and condition > self.s["max_condition"]:
                self.L -= 1
                condition = _gram_condition(self.R, self.L)
            Q = self.Q[:, : self.L]
            self.E = self.Y - Q @ (Q.T @ self.Y)
            stop = "condition bound"
        residual = float(np.vdot(self.E, self.E))
        history = self.history
        previous = history["residual"][-1] if history["residual"] else self.target
        history["units"].append(self.L)
        history["residual"].append(residual)
        # LAPACK's condition estimate varies in its last bits between runs on the same input:
        # kept to 6 digits, so the saved report (and a model file's bytes) stay reproducible.
        history["condition"].append(float(f"{condition:.6g}"))
        if stop is None and previous - residual < self.s["tol"] * self.target:
            stop = "residual stopped falling"
        return stop


class GuidedProjection(Layer):
    """A frozen layer ``h = act(x W + b) [T]`` whose units were chosen by SCN's criterion.

    Build it with :meth:`fit`; it is stored as its chosen units (W, b and the upper-triangular
    T), so a saved model reloads it without the data that guided it.
    """

    kind = "guided"

    def __init__(
        self,
        weights: np.ndarray,
        offset: np.ndarray,
        transform: np.ndarray | None,
        activation: str,
        seed: int,
        settings: dict[str, Any],
        report: dict[str, Any] | None = None,
    ) -> None:
        # C order whatever the source (a selection, a model file): the same memory layout
        # gives BLAS the same path, so a loaded layer computes the same bits.
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        offset = np.ascontiguousarray(offset, dtype=np.float64)
        if weights.ndim != 2 or offset.shape != (weights.shape[1],) or weights.shape[1] < 1:
            raise ValueError(
                f"inconsistent guided layer: weights {weights.shape}, offset {offset.shape}"
            )
        m = weights.shape[1]
        if transform is not None:
            transform = np.ascontiguousarray(transform, dtype=np.float64)
            if transform.shape != (m, m):
                raise ValueError(f"guided transform has shape {transform.shape}, expected {m, m}")
        self.weights = weights
        self.offset = offset
        self.transform_matrix = transform
        self.activation = check_activation(activation)
        self.seed = int(seed)
        self.settings = settings
        self.report = report or {}
        self.n_features = weights.shape[0]
        self.n_components = m
        self.fit_seconds: float | None = None

    # ------------------------------------------------------------------ selection
    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y_index: np.ndarray,
        n_components: int = 2000,
        seed: int = 0,
        activation: str | None = None,
        **params: Any,
    ) -> GuidedProjection:
        """Select up to ``n_components`` units on (X, y_index); see the module docstring.

        ``y_index`` holds class indices 0..C-1. Same data, seed and settings give the same
        layer bit for bit. The layer may end with fewer units than asked (a stop rule fired:
        ``report["stop_reason"]`` says which).
        """
        s = check_settings(params)
        activation = check_activation(
            default_activation(cls.kind) if activation is None else activation
        )
        if isinstance(n_components, bool) or int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components!r}")
        X, y_index = _check_guiding_data(X, y_index)
        tic = time.perf_counter()
        rng = np.random.default_rng(seed)
        if X.shape[0] > s["max_samples"]:
            rows = np.sort(rng.choice(X.shape[0], size=s["max_samples"], replace=False))
            X, y_index = X[rows], y_index[rows]
        selection = _Selection(X, y_index, int(n_components), s, activation)
        stop = selection.run(rng)
        L = selection.L
        if L == 0:
            raise ValueError(
                "the guided projection found no admissible unit on this data; check the labels "
                "(a single class cannot guide) or widen r_values / scales"
            )
        if L < int(n_components) and stop == "budget":
            stop = "sample count"
        n = X.shape[0]
        transform = None
        if s["orthogonalize"]:
            R = selection.R[:L, :L]
            transform = linalg.solve_triangular(R, np.eye(L) * math.sqrt(n), lower=False)
        report = {
            "n_guiding_samples": n,
            "n_guiding_classes": selection.n_classes,
            "units_requested": int(n_components),
            "stop_reason": stop,
            "history": selection.history,
            "unit_r": selection.unit_r[:L],
        }
        W, b = selection.W[:, :L].copy(), selection.b[:L].copy()
        layer = cls(W, b, transform, activation, seed, s, report)
        layer.fit_seconds = time.perf_counter() - tic  # kept out of config(): files stay stable
        return layer

    # ------------------------------------------------------------------ application
    def parameters(self) -> dict[str, np.ndarray]:
        return self.arrays()

    def apply(self, X: Any, xp: Any, params: dict[str, Any]) -> Any:
        Z = X @ params["weights"]
        Z += params["offset"]
        Z = activate(Z, self.activation, xp)
        if "transform" in params:
            Z = Z @ params["transform"]
        return Z

    # ------------------------------------------------------------------ storage
    def config(self) -> dict[str, Any]:
        """JSON-ready description; the units themselves are in :meth:`arrays`."""
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "n_components": self.n_components,
            "seed": self.seed,
            "activation": self.activation,
            "settings": self.settings,
            "report": self.report,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The chosen units: W (d, M), b (M,) and, when orthogonalised, T (M, M)."""
        out = {"weights": self.weights, "offset": self.offset}
        if self.transform_matrix is not None:
            out["transform"] = self.transform_matrix
        return out

    @classmethod
    def build_bytes(cls, config: dict[str, Any]) -> int:
        """Bytes of the arrays a saved layer of this config holds (W, b and T), which loading
        it allocates; fitting one needs the guiding data besides."""
        d = check_size("n_features", config.get("n_features"))
        m = check_size("n_components", config.get("n_components"))
        settings = config.get("settings")
        orthogonal = bool(
            (settings if isinstance(settings, dict) else {}).get("orthogonalize", True)
        )
        return _FLOAT * (d * m + m + (m * m if orthogonal else 0))

    @classmethod
    def from_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> GuidedProjection:
        """Rebuild a saved layer; the arrays are required (the units are not reproducible
        from the seed without the guiding data)."""
        if config.get("kind") != "guided":
            raise ValueError(f"not a guided projection config: kind {config.get('kind')!r}")
        arrays = arrays or {}
        if "weights" not in arrays or "offset" not in arrays:
            raise ValueError("a guided projection needs its saved arrays 'weights' and 'offset'")
        unexpected = sorted(set(arrays) - {"weights", "offset", "transform"})
        if unexpected:
            raise ValueError(f"a guided projection has no arrays {unexpected}")
        settings = check_settings(dict(config.get("settings", {})))
        if settings["orthogonalize"] != ("transform" in arrays):
            raise ValueError("guided projection: 'transform' array does not match its settings")
        layer = cls(
            arrays["weights"],
            arrays["offset"],
            arrays.get("transform"),
            config["activation"],
            config.get("seed", 0),
            settings,
            config.get("report"),
        )
        if (layer.n_features, layer.n_components) != (
            config.get("n_features"),
            config.get("n_components"),
        ):
            raise ValueError(
                f"guided projection arrays ({layer.n_features} x {layer.n_components}) do not "
                f"match the config ({config.get('n_features')} x {config.get('n_components')})"
            )
        return layer

    def __repr__(self) -> str:
        return (
            f"GuidedProjection(n_features={self.n_features}, n_components={self.n_components}, "
            f"activation={self.activation!r}, orthogonalize={self.transform_matrix is not None})"
        )
