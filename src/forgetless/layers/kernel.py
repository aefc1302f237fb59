"""Guided kernel layer: the infinite random ReLU layer, compressed to M features by the first batch.

A random ReLU layer ``relu(x W)``, ``W ~ N(0, I / d)``, approximates the arc-cosine kernel
``k(x, x') = |x| |x'| J(cos t) / (2 pi d)`` with ``J(c) = sin t + (pi - t) c`` (Cho & Saul 2009):
the wider the layer, the closer its ridge head comes to kernel ridge regression with ``k``, which
is why RanPAC needs thousands of units. This layer computes ``k`` exactly against N *landmarks*
and keeps the M directions of largest variance (Nystroem features; Williams & Seeger 2001):

    h(x) = k(x, S) T,   T = L^-T (N = M, from the Cholesky factor K_SS = L L^T)
                        or U_M diag(w_M)^(-1/2) (N > M, the top M eigenpairs of K_SS)

so ``h(x) . h(x')`` is the best rank-M approximation of ``k`` the landmarks allow.

``flatten`` (0 by default: plain Nystroem) trades the kernel's steeply falling spectrum for a
flatter one (through the eigenpairs, also where N = M would need only a Cholesky factor): each
direction is also scaled by
``w^(-flatten/2)``, so on the landmarks the features have variances ``w^(1 - flatten)``, and the
matrix the ridge head factorises is better conditioned (flatten = 0.5: 5-23x at M = 1000 and 2000
on five datasets) for about the same accuracy (-0.65 to +0.48 points; ``benchmarks/guided.py``).

The landmarks are where the guidance comes in, and they are *not* samples. The first batch gives
a model of the class population: its class means spread around their mean with covariance B
(between classes), samples spread around their class mean with covariance W (pooled within
classes). Landmarks are drawn from that model: ``N / draws_per_class`` pseudo-classes, each a
mean drawn from ``N(mu, B)``, each with ``draws_per_class`` points drawn around it from
``N(0, W)``. So classes that arrive later, unseen, are expected to look like new draws of the same
population, and the layer reserves directions for them. The draws are Gaussian combinations of
many centred rows (``sum_i z_i (x_i - m_c(i)) / sqrt(n - C)`` has covariance exactly W), so no
landmark is a training sample and none can be read back as one. B and W span only the first
batch's rows, so ``shrinkage`` (default ``"oas"``, the oracle approximating shrinkage of each)
moves part of their variance onto every direction: a first batch of fewer rows than features
would otherwise leave the layer blind to whatever later inputs have outside its span.

The layer is frozen after the first batch: every later statistic is exact. It is saved as its
arrays (landmarks and T, float32: the layer is defined by the rounded arrays), since they depend
on the guiding data.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((300, 5)); y = (X[:, 0] * X[:, 1] > 0).astype(int)
>>> layer = GuidedKernelProjection.fit(X, y, n_components=40, seed=0)
>>> H = layer.transform(X)
>>> H.shape, layer.report["n_guiding_classes"]
((300, 40), 2)
>>> again = GuidedKernelProjection.from_config(layer.config(), layer.arrays())
>>> bool((again.transform(X) == H).all()), again.same_as(layer)
(True, True)
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Any

import numpy as np
from scipy import linalg

from forgetless.layers.base import Layer, check_size
from forgetless.layers.guided import DEFAULTS as UNITS_DEFAULTS
from forgetless.linalg import oas_shrinkage_of_rows

# features keep |x|^2 finite (about 2^+-512, learner.check_input_scale to overflow): a fit
# brings them to unit scale by 2^k with |k| <= 520; a file saying more was not written by one
_MAX_SCALE_EXPONENT = 600
METHOD = "kernel"
DEFAULTS: dict[str, Any] = {
    "method": METHOD,
    "n_landmarks": None,
    "draws_per_class": 20,
    "max_samples": 20000,
    "flatten": 0.0,
    "linear": 0.0,
    "shrinkage": "oas",
}
"""Settings of ``projection="guided"`` with ``method="kernel"`` (the default method):
``n_landmarks`` N (None: :func:`default_landmarks`), ``draws_per_class`` points per
pseudo-class, ``max_samples`` rows of the first batch the class population is estimated from
(drawn at random beyond it), ``flatten`` in [0, 1] how far the kept directions' spectrum is
flattened (0: plain Nystroem; 1: whitened on the landmarks), ``linear`` >= 0 the weight of the
linear kernel ``x . x'`` added to the ReLU layer's kernel (whose value at ``x = x'`` is
``pi |x|^2``), ``shrinkage`` in [0, 1] or ``"oas"`` how far the class population's
covariances B and W are shrunk toward isotropic ones of the same trace before the landmarks are
drawn (:func:`population_draws`)."""
# what files written before a setting existed were built with (kept apart from DEFAULTS so that
# a later default cannot change what old files mean)
_LEGACY = {"flatten": 0.0, "linear": 0.0, "shrinkage": 0.0}
_LANDMARK_CAP = 4000  # build 6-11 s at M = 2000 on 2 cores (benchmarks/guided.py --timing)


def default_landmarks(m: int) -> int:
    """N for ``n_landmarks=None``: ``max(M, min(2 M, 4000))``.

    Twice as many landmarks as directions estimate the M directions better
    (``benchmarks/guided.py``, M = 2000, mean of 3 seeds, five datasets: -0.2 to +0.4 points
    against N = M with the default head, 0.0 to +0.8 with the regression rule) for one N x N
    eigendecomposition; past 4000 landmarks that costs more than it gives, and N = M needs only
    one Cholesky factorisation.

    >>> default_landmarks(500), default_landmarks(3000), default_landmarks(8000)
    (1000, 4000, 8000)
    """
    return max(m, min(2 * m, _LANDMARK_CAP))


_FLOAT = 8  # bytes per float64 (what an engine derives from the float32 arrays)
_JITTER = 1e-10  # relative diagonal shift keeping the landmarks' Cholesky factor defined
_NOISE_ROWS = 1024  # the shrinkage's isotropic draws are added this many landmarks at a time
MAX_LANDMARKS = 20_000  # an N x N float64 kernel matrix: 3.2 GB at this bound, ~5x that to fit
MAX_LINEAR = 1e6  # there the ReLU kernel's share is about 3e-6: the layer is nearly linear


def landmarks_for(settings: dict[str, Any], m: int) -> int:
    """The landmarks N a kernel layer of width ``m`` draws with these (checked) settings, or a
    ValueError: fewer than its width, or more than :data:`MAX_LANDMARKS`."""
    n = settings["n_landmarks"] if settings["n_landmarks"] is not None else default_landmarks(m)
    if n < m:
        raise ValueError(f"n_landmarks ({n}) must be >= n_components ({m})")
    if n > MAX_LANDMARKS:  # n_components that large asks for as many landmarks
        raise ValueError(
            f"the guided kernel layer needs {n} landmarks for n_components={m}, more than "
            f"{MAX_LANDMARKS} (an N x N kernel matrix); lower n_components"
        )
    return n


def check_kernel_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The kernel settings with defaults filled in, or a ValueError naming the setting."""
    unknown = sorted(set(params) - set(DEFAULTS))
    units_only = sorted(set(unknown) & set(UNITS_DEFAULTS))
    if units_only:
        raise ValueError(
            f"projection_params {units_only} belong to the guided method 'units'; add "
            "'method': 'units' to use it (the default method, 'kernel', takes "
            f"{', '.join(k for k in DEFAULTS if k != 'method')})"
        )
    if unknown:
        raise ValueError(
            f"unknown projection_params {unknown} for projection='guided', method='kernel'; "
            f"known: {', '.join(DEFAULTS)}"
        )
    s = {**DEFAULTS, **params}
    if s["method"] != METHOD:
        raise ValueError(f"not the kernel method: {s['method']!r}")
    if s["n_landmarks"] is not None:
        s["n_landmarks"] = check_size("n_landmarks", s["n_landmarks"])
    if s["n_landmarks"] is not None and s["n_landmarks"] > MAX_LANDMARKS:
        raise ValueError(
            f"n_landmarks must be at most {MAX_LANDMARKS} (an N x N kernel matrix), got "
            f"{s['n_landmarks']}"
        )
    s["draws_per_class"] = check_size("draws_per_class", s["draws_per_class"])
    s["max_samples"] = check_size("max_samples", s["max_samples"])
    if s["max_samples"] < 2:
        raise ValueError(f"max_samples must be >= 2, got {s['max_samples']}")
    flatten = s["flatten"]
    if isinstance(flatten, bool) or not isinstance(flatten, numbers.Real) or not 0 <= flatten <= 1:
        raise ValueError(f"flatten must be a number in [0, 1], got {flatten!r:.60}")
    s["flatten"] = float(flatten)
    linear = s["linear"]
    if (
        isinstance(linear, bool)
        or not isinstance(linear, numbers.Real)
        or not 0 <= linear <= MAX_LINEAR
    ):
        raise ValueError(f"linear must be a number in [0, {MAX_LINEAR:g}], got {linear!r:.60}")
    s["linear"] = float(linear)
    shrinkage = s["shrinkage"]
    oas = isinstance(shrinkage, str) and shrinkage == "oas"
    if not oas and (
        isinstance(shrinkage, bool)
        or not isinstance(shrinkage, numbers.Real)
        or not 0 <= shrinkage <= 1
    ):
        raise ValueError(f"shrinkage must be a number in [0, 1] or 'oas', got {shrinkage!r:.60}")
    s["shrinkage"] = "oas" if oas else float(shrinkage)
    return s


def arc_cosine_kernel(A: np.ndarray, B: np.ndarray, linear: float = 0.0) -> np.ndarray:
    """``|a| |b| J(cos t)`` for every pair of rows: the order-1 arc-cosine kernel up to the
    constant ``1 / (2 pi d)``, i.e. what an infinitely wide ``relu(x W)`` layer computes; plus
    ``linear * a . b`` where ``linear`` is not 0.

    >>> import numpy as np
    >>> x = np.array([[3.0, 4.0]])
    >>> float(arc_cosine_kernel(x, x)[0, 0]) == 25 * np.pi   # t = 0: J = pi
    True
    """
    na = np.sqrt(np.einsum("ij,ij->i", A, A))
    nb = np.sqrt(np.einsum("ij,ij->i", B, B))
    cos = (A @ B.T) / (np.outer(na, nb) + 1e-300)
    shape = _arc_cosine_shape(cos)  # cos is clipped into [-1, 1] in place
    if linear:
        shape += linear * cos
    return np.outer(na, nb) * shape


def _arc_cosine_shape(cos: np.ndarray) -> np.ndarray:
    """``J(c) = sqrt(1 - c^2) + (pi - arccos c) c`` (c clipped into [-1, 1], in place)."""
    np.clip(cos, -1.0, 1.0, out=cos)
    return np.sqrt(1.0 - cos * cos) + (np.pi - np.arccos(cos)) * cos


def population_draws(
    X: np.ndarray,
    y_index: np.ndarray,
    n_draws: int,
    per_class: int,
    rng: np.random.Generator,
    shrinkage: float | str = 0.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``n_draws`` points from the class-population model of (X, y_index): pseudo-class means
    ``mu + sum_c z_c (m_c - mu) / sqrt(C - 1)`` (covariance B), points around them
    ``sum_i z_i (x_i - m_c(i)) / sqrt(n - C)`` (covariance W). With one class, the means spread
    like the points (B = W); with one row per class, the points spread like the means.

    ``shrinkage`` r draws from ``(1 - r) B + r tr(B) / d I`` and ``(1 - r) W + r tr(W) / d I``
    instead (``"oas"``: each r by the oracle approximating shrinkage formula, from the rows).
    B and W span at most C - 1 and n - C directions: unshrunk, every landmark lies in the
    first batch's span, and the layer sees an input only through its part in that span.

    Classes are taken in the order they first appear in the rows, not by their index: a class's
    index follows its label's sort order, and the draw must not change when classes are only
    renamed (``y_index`` 2, 0 and 0, 1 on the same rows give the same draws).

    >>> X = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 1.0], [6.0, 3.0]])
    >>> a, _ = population_draws(X, np.array([2, 0, 2, 0]), 3, 1, np.random.default_rng(0))
    >>> b, _ = population_draws(X, np.array([0, 1, 0, 1]), 3, 1, np.random.default_rng(0))
    >>> bool(np.array_equal(a, b))
    True
    """
    _, first, by_index, counts = np.unique(
        y_index, return_index=True, return_inverse=True, return_counts=True
    )
    order = np.argsort(first, kind="stable")  # classes in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    inverse, counts = rank[by_index], counts[order]
    n_classes = order.size
    means = np.zeros((n_classes, X.shape[1]))
    np.add.at(means, inverse, X)
    means /= counts[:, None]
    centre = means.mean(axis=0)
    between = (means - centre) / math.sqrt(max(n_classes - 1, 1))
    within = (X - means[inverse]) / math.sqrt(max(X.shape[0] - n_classes, 1))
    if n_classes < 2:
        between = within
    if X.shape[0] == n_classes:
        within = between
    per_class = min(per_class, n_draws)  # more per class than draws: one pseudo-class
    n_means = -(-n_draws // per_class)
    if shrinkage == "oas":
        shrink_between = oas_shrinkage_of_rows(between)
        shrink_within = shrink_between if within is between else oas_shrinkage_of_rows(within)
    else:
        shrink_between = shrink_within = float(shrinkage)
    pseudo_means = rng.standard_normal((n_means, between.shape[0])) @ between
    spread = rng.standard_normal((n_draws, within.shape[0])) @ within
    # drawn after the unshrunk parts, and only where used: shrinkage 0 draws what it always did
    shrunk = [(pseudo_means, shrink_between, between), (spread, shrink_within, within)]
    for part, shrink, factor in shrunk:
        if shrink > 0:
            part *= math.sqrt(1.0 - shrink)
            top = float(np.abs(factor).max(initial=0.0))  # its squares may overflow
            unit = factor / top if top > 0 else factor
            size = top * math.sqrt(shrink * float(np.einsum("ij,ij->", unit, unit)) / X.shape[1])
            for start in range(0, part.shape[0], _NOISE_ROWS):  # no second N x d array
                block = part[start : start + _NOISE_ROWS]
                block += size * rng.standard_normal(block.shape)
    draws = np.repeat(centre + pseudo_means, per_class, axis=0)[:n_draws] + spread
    report = {
        "n_guiding_classes": int(n_classes),
        "n_pseudo_classes": int(n_means),
        **({"shrinkage": [shrink_between, shrink_within]} if shrinkage else {}),
    }
    return draws, report


def nystroem_transform(K: np.ndarray, m: int, flatten: float = 0.0) -> tuple[np.ndarray, str]:
    """T (N, m) with ``k(x, S) T`` the Nystroem features of the landmark kernel matrix K (N, N):
    ``L^-T`` from a Cholesky factor when m = N and ``flatten`` = 0 (one factorisation), else the
    top m eigenpairs ``U w^(-(1 + flatten) / 2)``, scaled so that the features' mean square on
    the landmarks is what plain Nystroem gives (``flatten`` changes their spectrum, not their
    size). Directions with a non-positive eigenvalue (a degenerate draw) are refused.

    >>> import numpy as np
    >>> S = np.random.default_rng(0).standard_normal((30, 4)); K = arc_cosine_kernel(S, S)
    >>> T, _ = nystroem_transform(K, 10, flatten=0.5); H = K @ T
    >>> w = np.linalg.eigvalsh(H.T @ H)   # the landmarks' features: variances ~ w_K^(1/2)
    >>> top = np.linalg.eigvalsh(K)[::-1][:10]
    >>> bool(np.isclose(w.max() / w.min(), np.sqrt(top[0] / top[-1]), rtol=1e-6))
    True
    """
    n = K.shape[0]
    shift = _JITTER * np.trace(K) / n
    K = K + shift * np.eye(n)
    L = _cholesky_or_none(K) if m == n and not flatten else None  # flatten needs eigenpairs
    # every pivot above the shift: n independent directions, and L^-T is their basis; else
    # (a degenerate draw) the eigendecomposition below says which directions exist
    if L is not None and np.diag(L).min() ** 2 > 10 * shift:
        return linalg.solve_triangular(L, np.eye(n), lower=True).T, "cholesky"
    values, vectors = np.linalg.eigh(K)
    values, vectors = values[::-1][:m], vectors[:, ::-1][:, :m]
    if not values[-1] > _JITTER * values[0]:
        raise ValueError(
            f"the guided kernel layer found fewer than {m} independent directions in its "
            "landmarks; lower n_components, or raise n_landmarks (unless the first batch's "
            "features span fewer directions themselves)"
        )
    if not flatten:
        return vectors / np.sqrt(values), "eigh"
    # sum of w (plain features' energy on the landmarks) / sum of w^(1 - flatten)
    size = math.sqrt(values.sum() / (values ** (1.0 - flatten)).sum())
    return vectors * (size / values ** ((1.0 + flatten) / 2.0)), "eigh"


def _cholesky_or_none(K: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of K, or None where rounding leaves K not positive definite."""
    try:
        return linalg.cholesky(K, lower=True)
    except linalg.LinAlgError:
        return None


class GuidedKernelProjection(Layer):
    """Nystroem features of the ReLU layer's kernel on landmarks drawn from the first batch's
    class population (see the module docstring). Build it with :meth:`fit`."""

    kind = "guided"

    def __init__(
        self,
        landmarks: np.ndarray,
        transform: np.ndarray,
        seed: int,
        settings: dict[str, Any],
        report: dict[str, Any] | None = None,
        scale_exponent: int = 0,
    ) -> None:
        if not (
            isinstance(scale_exponent, (int, np.integer))
            and not isinstance(scale_exponent, (bool, np.bool_))
            and abs(scale_exponent) <= _MAX_SCALE_EXPONENT
        ):
            raise ValueError(
                f"guided kernel layer: scale_exponent must be an integer in "
                f"[-{_MAX_SCALE_EXPONENT}, {_MAX_SCALE_EXPONENT}], got {scale_exponent!r}"
            )
        self.scale_exponent = int(scale_exponent)  # the layer reads x / 2^scale_exponent
        landmarks, transform = np.asarray(landmarks), np.asarray(transform)
        if landmarks.dtype != np.float32 or transform.dtype != np.float32:
            raise ValueError(
                "guided kernel layer: landmarks and transform are stored as float32, got "
                f"{landmarks.dtype} and {transform.dtype}"
            )
        landmarks = np.ascontiguousarray(landmarks)
        transform = np.ascontiguousarray(transform)
        if landmarks.ndim != 2 or transform.ndim != 2 or transform.shape[0] != landmarks.shape[0]:
            raise ValueError(
                f"guided kernel layer: landmarks {landmarks.shape} and transform "
                f"{transform.shape} do not fit together"
            )
        if transform.shape[1] > transform.shape[0] or landmarks.shape[1] < 1:
            raise ValueError(f"guided kernel layer: transform {transform.shape} is not (N, M<=N)")
        if not (np.all(np.isfinite(landmarks)) and np.all(np.isfinite(transform))):
            raise ValueError("guided kernel layer: its arrays contain NaN or infinity")
        self.landmarks, self.transform_matrix = landmarks, transform
        self.n_features, self.n_components = landmarks.shape[1], transform.shape[1]
        self.activation = "relu"
        self.seed = int(seed)
        self.settings = settings
        self.report = dict(report or {})
        self.fit_seconds = 0.0

    @classmethod
    def fit(
        cls,
        X: Any,
        y_index: Any,
        n_components: int,
        seed: int = 0,
        activation: str | None = None,
        **params: Any,
    ) -> GuidedKernelProjection:
        """Estimate the class population on (X, y_index), draw the landmarks, keep M directions.

        ``activation`` must be None or ``"relu"``: the layer is the ReLU layer's kernel."""
        tic = time.perf_counter()
        if activation not in (None, "relu"):
            raise ValueError(
                "the guided kernel layer is the ReLU layer's kernel; leave activation=None "
                "(or use projection_params={'method': 'units'} for other activations)"
            )
        s = check_kernel_settings({"method": METHOD, **params})
        m = check_size("n_components", n_components)
        X = np.asarray(X, dtype=np.float64)
        y_index = np.asarray(y_index)
        if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
            raise ValueError(f"the guided projection needs X of shape (n >= 2, d), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinity")
        if y_index.shape != (X.shape[0],) or y_index.dtype.kind not in "iu" or y_index.min() < 0:
            raise ValueError("y_index must hold one non-negative class index per row of X")
        n_landmarks = landmarks_for(s, m)
        rng = np.random.default_rng(seed)
        if X.shape[0] > s["max_samples"]:
            rows = np.sort(rng.choice(X.shape[0], size=s["max_samples"], replace=False))
            X, y_index = X[rows], y_index[rows]
        landmarks, report = population_draws(
            X, y_index, n_landmarks, s["draws_per_class"], rng, s["shrinkage"]
        )
        # T scales like 1 / |x|^2 and is stored in float32: for features far from unit scale
        # (beyond 2^+-20) the landmarks are brought to unit scale by a power of two 2^k (exact)
        # and the layer reads x / 2^k (the kernel is homogeneous: the same features).
        with np.errstate(over="ignore"):
            rms = math.sqrt(float(np.mean(np.einsum("ij,ij->i", landmarks, landmarks))))
        if not math.isfinite(rms):  # the kernel's |x|^2 cannot be computed (nor applied)
            raise ValueError(
                "X's features are too large for the guided kernel layer: their squares "
                f"overflow float64 (largest magnitude {float(np.abs(X).max()):.3g}; about 1e154 "
                "at most); scale them down (e.g. standardise them)"
            )
        exponent = 0
        if rms > 0 and not 2.0**-20 <= rms <= 2.0**20:
            exponent = round(math.log2(rms))
            landmarks = landmarks * 2.0**-exponent
        K = arc_cosine_kernel(landmarks, landmarks, s["linear"])
        transform, route = nystroem_transform(K, m, s["flatten"])
        # features of order 1: |h(x)|^2 ~ M for a typical landmark (the lambda search is
        # scale-free; this keeps float32 engines and condition numbers readable)
        transform *= math.sqrt(m / max(float(np.mean(np.diag(K))), 1e-300))
        report.update(n_guiding_samples=int(X.shape[0]), n_landmarks=n_landmarks, route=route)
        # The layer *is* its float32 arrays (half the file; a layer is any fixed map, so the
        # rounding changes which layer, never the exactness of its statistics).
        layer = cls(
            landmarks.astype(np.float32), transform.astype(np.float32), seed, s, report, exponent
        )
        layer.fit_seconds = time.perf_counter() - tic  # kept out of config(): files stay stable
        return layer

    # ------------------------------------------------------------------ application
    def parameters(self) -> dict[str, np.ndarray]:
        landmarks = self.landmarks.astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", landmarks, landmarks))
        return {
            # unit landmark directions (d, N) and their norms folded into T
            "directions": (landmarks / np.maximum(norms, 1e-300)[:, None]).T.copy(),
            "transform": self.transform_matrix.astype(np.float64)
            * (norms * 2.0**-self.scale_exponent)[:, None],
            "ones": np.ones(self.n_features),
        }

    def apply(self, X: Any, xp: Any, params: dict[str, Any]) -> Any:
        # rows beyond ~1e154 overflow |x|^2 into inf and NaN features, which the learner
        # refuses as an overflow: no warning on the way
        with np.errstate(over="ignore", invalid="ignore"):
            norms = ((X * X) @ params["ones"]) ** 0.5
            cos = X @ params["directions"]
            # a zero row has cos 0 (and K 0): the floor is one float32 keeps too (1e-300 is 0
            # there, and 0 / 0 a NaN that refused exact zeros, which are data)
            cos /= (norms + (1e-300 if "64" in str(X.dtype) else 1e-37))[:, None]
            K = xp.arc_cosine(cos)  # cos is clipped into [-1, 1] in place
            if self.settings["linear"]:
                K += self.settings["linear"] * cos
            K *= norms[:, None]
            return K @ params["transform"]

    # ------------------------------------------------------------------ storage
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": METHOD,
            "n_features": self.n_features,
            "n_components": self.n_components,
            "seed": self.seed,
            "activation": self.activation,
            "settings": self.settings,
            "report": self.report,
            # only where not 0, so files of layers at unit scale stay as they were
            **({"scale_exponent": self.scale_exponent} if self.scale_exponent else {}),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The landmarks (N, d) and the Nystroem transform T (N, M), float32."""
        return {"landmarks": self.landmarks, "transform": self.transform_matrix}

    @classmethod
    def build_bytes(cls, config: dict[str, Any]) -> int:
        """Bytes of the saved arrays, the parameters an engine derives from them and one
        N x N kernel matrix: what loading or fitting such a layer allocates, roughly."""
        d = check_size("n_features", config.get("n_features"))
        m = check_size("n_components", config.get("n_components"))
        settings = config.get("settings")
        n = (settings if isinstance(settings, dict) else {}).get("n_landmarks")
        n = default_landmarks(m) if n is None else max(check_size("n_landmarks", n), m)
        return _FLOAT * (2 * (n * d + n * m) + n * n)

    @classmethod
    def from_config(
        cls, config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
    ) -> GuidedKernelProjection:
        """Rebuild a saved layer from its config and arrays (both checked)."""
        if config.get("kind") != "guided" or config.get("method") != METHOD:
            raise ValueError("not a guided kernel layer config")
        arrays = arrays or {}
        if set(arrays) != {"landmarks", "transform"}:
            raise ValueError(
                "a guided kernel layer needs exactly its arrays 'landmarks' and 'transform', "
                f"got {sorted(arrays)}"
            )
        settings = check_kernel_settings({**_LEGACY, **dict(config.get("settings") or {})})
        report = config.get("report")
        layer = cls(
            arrays["landmarks"],
            arrays["transform"],
            config.get("seed", 0),
            settings,
            report if isinstance(report, dict) else None,
            config.get("scale_exponent", 0),
        )
        layer.check_config_shape(config)
        given, m = settings.get("n_landmarks"), layer.n_components
        expected = default_landmarks(m) if given is None else max(int(given), m)  # as fit draws
        if layer.landmarks.shape[0] != expected:
            raise ValueError(
                f"guided kernel layer: {layer.landmarks.shape[0]} landmarks, but its settings "
                f"(n_landmarks={given}, {m} units) make {expected}"
            )
        return layer

    def __repr__(self) -> str:
        return (
            f"GuidedKernelProjection(n_features={self.n_features}, "
            f"n_components={self.n_components}, n_landmarks={self.landmarks.shape[0]})"
        )
