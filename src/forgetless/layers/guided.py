"""Guided projection, method "units": random units shaped, and optionally selected, by the first
batch (``projection_params={"method": "units", ...}``; the default method is
:mod:`forgetless.layers.kernel`).

A plain random layer needs a large width M to be expressive, and a large M makes ``G = H^T H``
ill-conditioned and the solve slow (M^3). This layer uses the first batch the learner sees (at
most ``max_samples`` rows, drawn at random) to decide how its units are drawn, then freezes them,
so every later statistic stays exact (``partial_fit`` after it equals one fit on everything with
the same layer). ``docs/guided.md`` derives each step; ``benchmarks/guided.py`` measures them.

The layer is ``h = act((x / |x|) W + b) [T on the selected units]``:

1. ``input_norm="l2"`` (default): rows are scaled to unit norm first (``"none"``: as given).
2. The weight distribution (``weights``): ``"isotropic"`` draws ``w = u / spread`` with
   ``u ~ N(0, I / d)`` on inputs centred by the guiding mean; ``"covariance"`` draws
   ``w = S^(1/2) u`` with S the guiding rows' covariance shrunk toward its mean eigenvalue by
   ``shrinkage``, each unit scaled so its pre-activation has RMS 1 on those rows; ``"auto"``
   (default) holds out a quarter of the guiding rows and keeps the shape whose trial layer of
   ``min(M, 500)`` units classifies them better (:func:`choose_weights`). Offsets centre the
   pre-activation at ``base_bias * v``, ``v ~ U[-1, 1]``.
3. ``base`` (default 1.0) is the fraction of the M units drawn from that distribution as they
   are; the remaining ``(1 - base) M`` are *selected* SCN-style (Wang & Li 2017, as SCL-MGSM
   uses it) from candidates of the same distribution, block by block:

   a. Draw ``n_candidates`` units, spread over every (``lam`` in ``scales``, ``beta`` in
      ``bias_ranges``) pair; score them against the residual ``E = Y - H_L W_L``:
      ``xi_q = (e_q^T g)^2 / (g^T g) - (1 - r - mu_L) e_q^T e_q``, ``mu_L = (1 - r) / (L + 1)``;
      admissible when every ``xi_q > 0`` at the strictest ``r`` of ``r_values`` that admits
      one; the largest ``sum_q xi_q`` is taken.
   b. Gram-Schmidt against the chosen units (the QR append ``E <- E - q (q^T E)``, no
      re-solve); nearly dependent candidates (``||g_perp|| < min_independence ||g||``) refused.
   c. Stop at the budget (capped by the guiding rows: no more outputs can be independent on
      them, ``"sample count"``), when a block lowers ``||E||^2`` by less than ``tol ||Y||^2``,
      after ``patience`` draws without an admissible unit, or past ``max_condition``.

   With ``orthogonalize=True`` the selected units are output through ``T = sqrt(n) R^-1``
   from the selection's QR (their Gram matrix on the guiding rows is exactly ``n I``).

``base=0, input_norm="none", weights="isotropic"`` is the pure selection of earlier versions
(``LEGACY``: files saved before these settings existed load with it). Why the default draws and
does not select: on held-out data the selected units overfit the first task's residual and help
no later class (measured by ``benchmarks/guided.py``, variant ``guided-select``). The width is
capped by the guiding rows only for the selected part. ``fit_seconds`` holds the build time (not
saved, so files stay stable).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 5)); y = (X[:, 0] * X[:, 1] > 0).astype(int)
>>> layer = GuidedProjection.fit(X, y, n_components=40, seed=0, block_size=10, base=0.0)
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
from forgetless.validation import is_real

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
    "input_norm": "l2",
    "weights": "auto",
    "shrinkage": 0.1,
    "base": 1.0,
    "base_bias": 1.0,
}
"""Settings of ``projection="guided"`` with ``method="units"`` (``projection_params`` of the
learner, besides ``"method"``)."""

LEGACY = {"input_norm": "none", "weights": "isotropic", "base": 0.0}
"""What a layer saved before these settings existed used (filled in when such a file loads);
also the pure SCN selection of earlier versions."""
INPUT_NORMS = ("l2", "none")
WEIGHT_SHAPES = ("auto", "covariance", "isotropic")
_PROBE_UNITS = 500  # width of the trial layers weights="auto" compares
_TINY = 1e-30  # added to squared row norms: a zero row maps to act(b), not to NaN
MAX_CANDIDATES = 100_000  # candidates are a d x n_candidates block: past this, memory runs out

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
    if not _whole(s["max_samples"]) or s["max_samples"] < 2:  # 2.0 too (files kept it so)
        raise ValueError(f"max_samples must be an integer >= 2, got {s['max_samples']!r}")
    s["max_samples"] = int(s["max_samples"])
    if s["n_candidates"] > MAX_CANDIDATES:
        raise ValueError(f"n_candidates must be at most {MAX_CANDIDATES}, got {s['n_candidates']}")
    for name in ("scales", "bias_ranges", "r_values"):
        given = s[name]
        many = isinstance(given, (list, tuple)) or (isinstance(given, np.ndarray) and given.ndim)
        listed = (
            list(given)
            if many
            else [given.item() if np.ndim(given) == 0 and hasattr(given, "item") else given]
        )
        if not listed or not all(is_real(v) and _finite(v) for v in listed):
            raise ValueError(f"{name} must be a non-empty list of numbers, got {given!r}")
        s[name] = [float(v) for v in listed]
    if min(s["scales"]) <= 0:
        raise ValueError(f"scales must be > 0, got {s['scales']}")
    if min(s["bias_ranges"]) < 0:
        raise ValueError(f"bias_ranges must be >= 0, got {s['bias_ranges']}")
    r = s["r_values"]
    if min(r) <= 0 or max(r) >= 1 or any(b <= a for a, b in zip(r, r[1:], strict=False)):
        raise ValueError(f"r_values must increase strictly inside (0, 1), got {r}")
    for name in ("tol", "min_independence"):
        if not (is_real(s[name]) and 0 <= s[name] < 1):
            raise ValueError(f"{name} must be in [0, 1), got {s[name]!r}")
        s[name] = float(s[name])
    if not (is_real(s["max_condition"]) and _finite(s["max_condition"]) and s["max_condition"] > 1):
        raise ValueError(f"max_condition must be a finite number > 1, got {s['max_condition']!r}")
    s["max_condition"] = float(s["max_condition"])
    if not (isinstance(s["orthogonalize"], (bool, np.bool_)) or s["orthogonalize"] in (0, 1)):
        raise ValueError(f"orthogonalize must be True or False, got {s['orthogonalize']!r}")
    s["orthogonalize"] = bool(s["orthogonalize"])
    for name, allowed in (("input_norm", INPUT_NORMS), ("weights", WEIGHT_SHAPES)):
        if not isinstance(s[name], str) or s[name] not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {s[name]!r}")
    for name, low, high in (("shrinkage", 0.0, 1.0), ("base", 0.0, 1.0), ("base_bias", 0.0, 1e6)):
        value = s[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
        if not low <= float(value) <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
        s[name] = float(value)
    return s


def _finite(value: Any) -> bool:
    """A finite float (an integer too large for a float is not)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _whole(value: Any) -> bool:
    """An integer, or a float that is one (2.0), and not a bool."""
    if isinstance(value, (float, np.floating)):
        return math.isfinite(value) and float(value).is_integer()
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_guiding_data(X: Any, y_index: Any) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y_index = np.asarray(y_index)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"the guided projection needs X of shape (n >= 2, d), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinity")
    if y_index.shape != (X.shape[0],) or y_index.dtype.kind not in "iu" or y_index.min() < 0:
        raise ValueError("y_index must hold one non-negative class index per row of X")
    # Units are shaped by the batch's spread and norms, through squares and floors that
    # underflow or overflow far from unit scale (constant outputs, silently): refused there.
    top = float(np.abs(X).max())
    unit = X / top if top > 0 else X
    rms = top * math.sqrt(float(np.mean(np.einsum("ij,ij->i", unit, unit))))
    if 0 < rms and not 1e-60 <= rms <= 1e60:
        raise ValueError(
            f"the guided layer (method 'units') needs features of moderate scale; these have "
            f"root-mean-square row norm {rms:.1e}: rescale them (e.g. standardise)"
        )
    return X, y_index


def _normalised_rows(X: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """The rows as the layer sees them: unit Euclidean norm with ``input_norm="l2"``."""
    if settings["input_norm"] == "none":
        return X
    return X / np.sqrt(np.einsum("ij,ij->i", X, X) + _TINY)[:, None]


# ---------------------------------------------------------------------- the weight distribution
@dataclass
class _InputShape:
    """What the guiding rows say about the inputs: their mean, their RMS spread and, with
    ``weights="covariance"``, their covariance S shrunk toward its mean eigenvalue and that
    matrix's square root, which shapes the directions of the random weights."""

    mean: np.ndarray
    spread: float
    cov: np.ndarray | None
    root: np.ndarray | None

    @classmethod
    def of(cls, X: np.ndarray, settings: dict[str, Any]) -> _InputShape:
        mean = X.mean(axis=0)
        spread = math.sqrt(float(np.mean((X - mean) ** 2)))
        spread = spread if spread > 0 else 1.0
        if settings["weights"] == "isotropic":
            return cls(mean, spread, None, None)
        centred = X - mean
        values, vectors = np.linalg.eigh(centred.T @ centred / X.shape[0])
        values = np.maximum(values, 0.0)
        shrink = settings["shrinkage"]
        values = (1.0 - shrink) * values + shrink * max(float(values.mean()), 1e-300)
        cov = (vectors * values) @ vectors.T
        root = (vectors * np.sqrt(values)) @ vectors.T
        return cls(mean, spread, cov, root)

    def directions(self, u: np.ndarray, lam: np.ndarray | float) -> np.ndarray:
        """Weights from draws ``u ~ N(0, I / d)`` (d, K), scaled so that ``(x - mean) . w`` has
        RMS ``lam`` on the guiding rows (isotropic: on average over directions; covariance:
        w = S^(1/2) u, each column normalised exactly by sqrt(w^T S w))."""
        if self.root is None:
            return u * (lam / self.spread)
        w = self.root @ u
        rms = np.sqrt(np.maximum(np.einsum("ij,ij->j", w, self.cov @ w), 1e-300))
        return w * (lam / rms)

    def draw(self, rng: np.random.Generator, K: int, bias: float) -> tuple[np.ndarray, np.ndarray]:
        """K unselected units: weights (d, K) of unit RMS response and offsets centring the
        pre-activation at ``bias * v``, ``v ~ U[-1, 1]``."""
        d = self.mean.size
        u = rng.standard_normal((d, K)) / math.sqrt(d)
        v = rng.uniform(-1.0, 1.0, size=K)
        weights = self.directions(u, 1.0)
        return weights, bias * v - self.mean @ weights


def choose_weights(
    X: np.ndarray, y_index: np.ndarray, settings: dict[str, Any], activation: str, seed: int
) -> tuple[_InputShape, dict[str, Any]]:
    """``weights="auto"``: the shape whose trial layer classifies held-out guiding rows best.

    Both shapes are estimated on all guiding rows (their mean and covariance use no labels). A
    quarter of the rows of every class is held out; for each shape a trial layer of
    ``min(M, 500)`` units is drawn, a ridge head with intercept is solved on the other rows for
    7 lambdas, and the held-out accuracy at the best lambda is kept. Isotropic wins ties (and
    when fewer than two classes are held out). The trial uses its own random stream (from the
    seed), so the layer's own draws do not depend on the choice being made."""
    shapes = {
        name: _InputShape.of(X, {**settings, "weights": name})
        for name in ("isotropic", "covariance")
    }
    rng = np.random.default_rng([seed, 7])
    held = np.zeros(X.shape[0], dtype=bool)
    for c in np.unique(y_index):
        rows = np.flatnonzero(y_index == c)
        held[rng.permutation(rows)[: rows.size // 4]] = True
    if (~held).sum() < 2 or np.unique(y_index[held]).size < 2:
        return shapes["isotropic"], {"weights_chosen": "isotropic"}
    width = min(int(settings["_width"]), _PROBE_UNITS)
    Y = np.eye(int(y_index.max()) + 1)[y_index[~held]]
    scores: dict[str, float] = {}
    for name, shape in shapes.items():
        W, b = shape.draw(np.random.default_rng([seed, 8]), width, settings["base_bias"])
        H = activate(X[~held] @ W + b, activation)
        H_held = activate(X[held] @ W + b, activation)
        mean, prior = H.mean(axis=0), Y.mean(axis=0)
        values, vectors = np.linalg.eigh((H - mean).T @ (H - mean))
        proj = vectors.T @ ((H - mean).T @ (Y - prior))
        best = 0.0
        for lam in max(float(values[-1]), 1e-300) * np.logspace(-6, 0, 7):
            coef = vectors @ (proj / (np.maximum(values, 0.0) + lam)[:, None])
            pred = ((H_held - mean) @ coef + prior).argmax(axis=1)
            best = max(best, float((pred == y_index[held]).mean()))
        scores[name] = best
    chosen = "covariance" if scores["covariance"] > scores["isotropic"] else "isotropic"
    return shapes[chosen], {"weights_chosen": chosen, "held_out_accuracy": scores}


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
        self,
        X: np.ndarray,
        y_index: np.ndarray,
        budget: int,
        settings: dict,
        activation: str,
        shape: _InputShape,
    ) -> None:
        n, d = X.shape
        self.X, self.s, self.activation, self.shape = X, settings, activation, shape
        # Target columns for the classes present: a class the subsample (max_samples) left out
        # would be an all-zero column, and no unit could then pass the criterion.
        y_index = np.unique(y_index, return_inverse=True)[1].reshape(-1)
        self.n_classes = int(y_index.max()) + 1
        self.Y = np.zeros((n, self.n_classes))
        self.Y[np.arange(n), y_index] = 1.0
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
        weights = self.shape.directions(u, self.lam)
        offset = self.lam * self.beta * v - self.shape.mean @ weights
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
        given = [a for a in (weights, offset, transform) if a is not None]
        if any(np.asarray(a).dtype.kind != "f" for a in given):
            raise ValueError("a guided layer's weights, offset and transform are floating point")
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        offset = np.ascontiguousarray(offset, dtype=np.float64)
        if weights.ndim != 2 or offset.shape != (weights.shape[1],) or weights.shape[1] < 1:
            raise ValueError(
                f"inconsistent guided layer: weights {weights.shape}, offset {offset.shape}"
            )
        m = weights.shape[1]
        if transform is not None:
            transform = np.ascontiguousarray(transform, dtype=np.float64)
            k = transform.shape[0]
            if transform.shape != (k, k) or not 1 <= k <= m:
                raise ValueError(
                    f"guided transform has shape {transform.shape}, expected (k, k), k <= {m}"
                )
        if not all(np.all(np.isfinite(a)) for a in (weights, offset, transform) if a is not None):
            raise ValueError("a guided layer's weights, offset or transform are not finite")
        self.weights = weights
        self.offset = offset
        self.transform_matrix = transform
        self.activation = check_activation(activation)
        self.seed = int(seed)
        self.settings = settings
        self.report = report or {}
        self.n_features = weights.shape[0]
        self.n_components = m
        self.n_selected = int(
            self.report.get("n_selected_units", m if settings["base"] == 0 else 0)
        )
        if transform is not None:
            self.n_selected = transform.shape[0]
        if not 0 <= self.n_selected <= m:
            raise ValueError(f"a guided layer selects 0 to {m} of its units, not {self.n_selected}")
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
        X = _normalised_rows(X, s)
        n, m = X.shape[0], int(n_components)
        report: dict[str, Any] = {"n_guiding_samples": n, "units_requested": m}
        if s["weights"] == "auto":  # the shape that classifies held-out guiding rows better
            shape, trial = choose_weights(X, y_index, {**s, "_width": m}, activation, seed)
            report.update(trial)
        else:
            shape = _InputShape.of(X, s)
        n_base = int(round(s["base"] * m))
        W, b, transform = np.zeros((X.shape[1], 0)), np.zeros(0), None
        if n_base < m:  # 1. units selected by the SCN criterion (their width capped by n)
            selection = _Selection(X, y_index, m - n_base, s, activation, shape)
            stop = selection.run(rng)
            L = selection.L
            if L == 0 and n_base == 0:
                raise ValueError(
                    "the guided projection found no admissible unit on this data; check the "
                    "labels (a single class cannot guide) or widen r_values / scales"
                )
            if L < m - n_base and stop == "budget":
                stop = "sample count"
            if s["orthogonalize"] and L:
                R = selection.R[:L, :L]
                transform = linalg.solve_triangular(R, np.eye(L) * math.sqrt(n), lower=False)
            W, b = selection.W[:, :L].copy(), selection.b[:L].copy()
            report.update(
                n_guiding_classes=selection.n_classes,
                stop_reason=stop,
                history=selection.history,
                unit_r=selection.unit_r[:L],
            )
        else:
            report.update(n_guiding_classes=int(y_index.max()) + 1, stop_reason="base only")
        report["n_selected_units"] = int(W.shape[1])
        if n_base:  # 2. unselected units from the data-shaped distribution
            W_base, b_base = shape.draw(rng, n_base, s["base_bias"])
            W, b = np.hstack([W, W_base]), np.concatenate([b, b_base])
        report["n_base_units"] = n_base
        layer = cls(W, b, transform, activation, seed, s, report)
        layer.fit_seconds = time.perf_counter() - tic  # kept out of config(): files stay stable
        return layer

    # ------------------------------------------------------------------ application
    def parameters(self) -> dict[str, np.ndarray]:
        params = dict(self.arrays())
        if self.settings["input_norm"] == "l2":
            params["ones"] = np.ones(self.n_features)  # row norms as a product: any namespace
        return params

    def apply(self, X: Any, xp: Any, params: dict[str, Any]) -> Any:
        Z = X @ params["weights"]
        if "ones" in params:  # unit-norm rows: (x / |x|) W = (x W) / |x|
            # the squares taken at a power of two near the batch's largest value: the same
            # bits where they fit, and no overflow to inf (all rows then act(offset)) where
            # they would not, as in float32 beyond about 1e19
            top = float(abs(X).max()) if X.shape[0] else 0.0
            shift = max(math.frexp(top)[1], 0) if math.isfinite(top) else 0  # only down
            scaled = X * math.ldexp(1.0, -shift)
            squares = (scaled * scaled) @ params["ones"] + _TINY * math.ldexp(1.0, -2 * shift)
            Z /= (squares[:, None] ** 0.5) * math.ldexp(1.0, shift)
        Z += params["offset"]
        Z = activate(Z, self.activation, xp)
        if "transform" in params:
            k = self.n_selected
            if k == self.n_components:
                Z = Z @ params["transform"]
            else:  # only the selected units are orthogonalised
                Z[:, :k] = Z[:, :k] @ params["transform"]
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
        """The units: W (d, M), b (M,) and, when selected units are orthogonalised, T (k, k)
        for the first k (selected) units."""
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
        report = config.get("report")
        k = (report if isinstance(report, dict) else {}).get("n_selected_units", m)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= m:
            k = m  # an upper estimate whatever the report says
        return _FLOAT * (d * m + m + (int(k) ** 2 if orthogonal else 0) + d)

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
        # a layer saved before a setting existed used its legacy value
        settings = check_settings({**LEGACY, **dict(config.get("settings", {}))})
        report = config.get("report") or {}
        selected = report.get("n_selected_units", config.get("n_components"))
        if settings["orthogonalize"] and selected and "transform" not in arrays:
            raise ValueError("guided projection: 'transform' array does not match its settings")
        if "transform" in arrays and not settings["orthogonalize"]:
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
        layer.check_config_shape(config)
        return layer

    def __repr__(self) -> str:
        return (
            f"GuidedProjection(n_features={self.n_features}, n_components={self.n_components}, "
            f"activation={self.activation!r}, orthogonalize={self.transform_matrix is not None})"
        )
