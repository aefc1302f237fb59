"""Sufficient statistics of a ridge / LDA / NCM head: additive, mergeable, removable sums.

With one-hot targets Y, everything the heads need is a sum over samples:

- ``G = H^T H`` (M x M), the Gram matrix, accumulated as a symmetric rank-k update (upper
  triangle only);
- ``Q = H^T Y`` (M x C), which for one-hot targets *is* the matrix of class sums ``s_c``;
- ``counts`` (C,), the samples per class, so ``n = counts.sum()`` and ``||Y||_F^2 = n``;
- optionally ``G_c`` per class, for exact removal of a whole class without its data.

All sums are float64. Adding a batch adds its sums, forgetting subtracts them, and two learners
with the same projection merge by adding: no sample is stored.

While fewer samples than half the width have been added, G is kept as its triangular factor R
(``G = R^T R``, R of n x M, the R of a QR factorisation of the stacked rows): a model file then
holds n x M values instead of G's M (M + 1) / 2, so files grow with what was learned. A batch
bound for sums that keep G whole is summed by a rank-k update, never factorised. R reveals
exactly what G does (any rotation of the rows gives the same G), and G is always computed from
it the same way, so a saved and reloaded model is the same model, bit for bit. Past that size
G is kept as its upper triangle; a subtraction gives the triangle too, unless the rows
subtracted were some of the factor's and the factor of those left matches it
(:meth:`SufficientStatistics.downdate_factor`).

>>> import numpy as np
>>> H = np.arange(12.0).reshape(4, 3)
>>> a = SufficientStatistics(3); a.add(H[:2], np.array([0, 1]), n_classes=2)
>>> b = SufficientStatistics(3); b.add(H[2:], np.array([1, 1]), n_classes=2)
>>> a += b
>>> bool(np.allclose(a.gram, H.T @ H)), a.counts.tolist()
(True, [1, 3])
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg, sparse
from scipy.linalg import blas, lapack

from forgetless.linalg import one_thread


def _gram_into(acc: np.ndarray, H: np.ndarray, sign: float = 1.0) -> None:
    """``acc[upper] += sign * H^T H`` in place: a symmetric rank-k update (BLAS syrk).

    ``acc`` is Fortran-ordered float64 and only its upper triangle is maintained. syrk does half
    the flops of a full product; on this machine it computes G ~1.2x faster than numpy's
    ``H.T @ H`` (benchmarks/core.py). H may be float32: the update then runs in float32 and is
    added to the float64 accumulator.
    """
    if H.shape[0] == 0:
        return
    if H.dtype == np.float32:
        part = blas.ssyrk(1.0, H.T, trans=0, lower=0)  # H.T is (M, k), F-ordered: no copy
        acc += sign * np.triu(part).astype(np.float64)
        return
    out = blas.dsyrk(
        sign, np.asarray(H, dtype=np.float64).T, beta=1.0, c=acc, trans=0, lower=0, overwrite_c=1
    )
    if not np.shares_memory(out, acc):  # BLAS worked on a copy: write it back
        acc[...] = out


def _stacked_factor(R: np.ndarray, H: np.ndarray) -> np.ndarray:
    """The triangular factor of ``[R; H]``: R' (r + k, M) with ``R'^T R' = R^T R + H^T H``.

    R (r, M) is upper trapezoidal and r + k <= M. The first r columns are a triangle plus new
    rows (LAPACK's triangular-pentagonal QR), the same rotation is applied to the rest, and what
    is left of the new rows is factorised on its own: O(k r M), not O((r + k)^2 M).

    >>> rng = np.random.default_rng(0)
    >>> H = rng.standard_normal((5, 8))
    >>> R = _stacked_factor(_stacked_factor(np.zeros((0, 8)), H[:2]), H[2:])
    >>> R.shape, bool(np.allclose(R.T @ R, H.T @ H)), bool(np.tril(R, -1).any())
    ((5, 8), True, False)
    """
    # LAPACK's Householder updates round differently with the BLAS thread count; the sums are
    # promised bit for bit whatever it is, so they run on one thread (small: rows <= M / 2).
    with one_thread():
        return _stacked_factor_here(R, H)


def _stacked_factor_here(R: np.ndarray, H: np.ndarray) -> np.ndarray:
    r, m = R.shape
    k = H.shape[0]
    H = np.array(H, dtype=np.float64, order="F")
    if r == 0:
        return np.ascontiguousarray(linalg.qr(H, mode="r", check_finite=False)[0])
    block = min(32, r)
    head, v, t, info = lapack.dtpqrt(
        0, block, np.asfortranarray(R[:, :r]), H[:, :r], overwrite_a=1, overwrite_b=1
    )
    if info != 0:  # pragma: no cover - LAPACK argument errors only
        raise RuntimeError(f"dtpqrt failed (info={info})")
    out = np.zeros((r + k, m))
    out[:r, :r] = np.triu(head)
    if r < m:
        top, rest, info = lapack.dtpmqrt(
            0, v, t, np.asfortranarray(R[:, r:]), H[:, r:], trans="T", overwrite_a=1,
            overwrite_b=1,
        )  # fmt: skip
        if info != 0:  # pragma: no cover
            raise RuntimeError(f"dtpmqrt failed (info={info})")
        out[:r, r:] = top
        out[r:, r:] = linalg.qr(rest, mode="r", check_finite=False)[0]
    return out


# How far a downdated factor's G may be from the subtracted one: this share of the lambda
# search's rounding floor (SufficientStatistics.downdate_factor).
_DOWNDATE_SHARE = 1 / 16


def _downdated_factor(R: np.ndarray, F: np.ndarray, rounding: float = 1e-9) -> np.ndarray | None:
    """The factor of ``R^T R - F^T F`` with one row fewer per row of F, where the k rows of F
    were among the n rows that R sums: forgetting some of few samples keeps the sums compact.

    The rows' coordinates C in R's row space (F = C R) give R^T R - F^T F = R^T (I - C^T C) R.
    Rows learned apart from each other (R's triangle not singular) each take one direction of
    that space whole (C's singular values are 1): what is left is R's rows in the other n - k
    directions, triangularised, O(n^2 M). Otherwise (duplicates, dependent rows) the Gram
    matrix of D = (I - C^T C)^1/2 R loses k dimensions, found by two n x n eigendecompositions.
    None (the caller keeps G whole) where F lies outside R's row space, I - C^T C is not
    positive semi-definite to ``rounding`` or the span does not lose k dimensions: then F's
    rows were not all among R's, whatever sums alone can show.

    >>> rng = np.random.default_rng(0); H = rng.standard_normal((5, 12))
    >>> R = _stacked_factor(np.zeros((0, 12)), H)
    >>> kept = _downdated_factor(R, H[[1, 3]])
    >>> kept.shape, bool(np.allclose(kept.T @ kept, H[[0, 2, 4]].T @ H[[0, 2, 4]]))
    ((3, 12), True)
    >>> _downdated_factor(R, rng.standard_normal((1, 12))) is None  # never learned
    True
    """
    n, k = R.shape[0], F.shape[0]
    if k == 0 or k > n:
        return R.copy() if k == 0 else None
    empty = np.zeros((0, R.shape[1]))
    with one_thread():  # bits independent of the BLAS thread count, as _stacked_factor's
        diagonal = np.abs(np.diagonal(R[:, :n]))
        apart = diagonal.min() > 1e-10 * diagonal.max()
        if apart:  # F[:, :n] = C T with T R's leading triangle
            coordinates = linalg.solve_triangular(
                R[:, :n], F[:, :n].T, trans="T", check_finite=False
            ).T
        else:
            coordinates = linalg.lstsq(R.T, F.T, cond=1e-10, check_finite=False)[0].T
        if np.linalg.norm(F - coordinates @ R) > 1e-8 * np.linalg.norm(F):
            return None
        _, sizes, directions = np.linalg.svd(coordinates, full_matrices=False)
        if sizes[0] > 1.0 + rounding:
            return None  # more of a direction removed than R holds: sums of no data
        if apart and sizes[-1] >= 1.0 - rounding:
            rest = linalg.qr(directions.T, check_finite=False)[0][:, k:]  # the other directions
            return _stacked_factor(empty, rest.T @ R)
        w, V = np.linalg.eigh(np.eye(n) - coordinates.T @ coordinates)
        if w[0] < -rounding:
            return None
        D = (np.sqrt(np.maximum(w, 0.0))[:, None] * V.T) @ R
        s, U = np.linalg.eigh(D @ D.T)
        if s[:k].sum() > rounding * max(float(s.sum()), 1e-300):
            return None
        return _stacked_factor(empty, U[:, k:].T @ D)


def _gram_of_factor(R: np.ndarray) -> np.ndarray:
    """``R^T R``'s upper triangle, Fortran-ordered (the lower triangle is zero)."""
    m = R.shape[1]
    if R.shape[0] == 0:
        return np.zeros((m, m), order="F")
    return blas.dsyrk(1.0, np.asfortranarray(R.T), trans=0, lower=0)


def pack_upper(upper: np.ndarray) -> np.ndarray:
    """The upper triangle column by column (LAPACK's packed storage): M (M + 1) / 2 values.

    >>> pack_upper(np.array([[1.0, 2.0], [9.0, 3.0]])).tolist()
    [1.0, 2.0, 3.0]
    """
    m = upper.shape[0]
    packed = np.empty(m * (m + 1) // 2)
    for j in range(m):
        start = j * (j + 1) // 2
        packed[start : start + j + 1] = upper[: j + 1, j]
    return packed


def unpack_upper(packed: np.ndarray, m: int) -> np.ndarray:
    """Inverse of :func:`pack_upper`: an (M, M) Fortran-ordered matrix, zero below the diagonal."""
    if packed.shape != (m * (m + 1) // 2,):
        raise ValueError(f"a packed triangle of width {m} has {m * (m + 1) // 2} values")
    upper = np.zeros((m, m), order="F")
    for j in range(m):
        start = j * (j + 1) // 2
        upper[: j + 1, j] = packed[start : start + j + 1]
    return upper


def packed_diagonal(m: int) -> np.ndarray:
    """Positions of the diagonal in :func:`pack_upper`'s order."""
    j = np.arange(m)
    return j * (j + 3) // 2


def _max_abs(stats: SufficientStatistics) -> float:
    if stats.n_components == 0:
        return 0.0
    if stats._factor is not None:  # |G_ij| <= max_j G_jj, the squared column norms of R
        gram = float(np.einsum("ij,ij->j", stats._factor, stats._factor).max(initial=0.0))
    else:
        gram = _largest_magnitude(stats._upper())
    return max(gram, _largest_magnitude(stats.class_sums))


def _largest_magnitude(array: np.ndarray) -> float:
    """max |a| without a temporary array (two passes over G instead of an M x M copy)."""
    if array.size == 0:
        return 0.0
    return float(max(-array.min(), array.max()))


_BLOCK = 256  # tile size for the transpose: both tiles stay in cache


def symmetrize_upper(upper: np.ndarray) -> np.ndarray:
    """Full symmetric matrix from one whose upper triangle holds the values (copied tile by
    tile: a whole-matrix transpose strides through memory and costs several times more).

    >>> symmetrize_upper(np.array([[1.0, 2.0], [9.0, 3.0]])).tolist()
    [[1.0, 2.0], [2.0, 3.0]]
    """
    m = upper.shape[0]
    full = np.array(upper, dtype=np.float64, order="F", copy=True)
    for start in range(0, m, _BLOCK):
        stop = min(start + _BLOCK, m)
        # Within a diagonal tile, its upper triangle mirrored; below it, the tiles above it.
        tile = full[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        tile[lower] = tile.T[lower]
        full[stop:, start:stop] = upper[start:stop, stop:].T
    return full


class SufficientStatistics:
    """Float64 sums over the projected samples seen so far, with one column per class.

    Only the upper triangle of G is maintained (``gram`` returns the full matrix); while few
    samples are in, it is computed from their triangular factor (see the module docstring).
    Columns follow the learner's sorted ``classes_``; :meth:`insert_classes` and
    :meth:`remove_classes` keep them aligned when labels appear or disappear.
    """

    def __init__(
        self,
        n_components: int,
        n_classes: int = 0,
        per_class_gram: bool = False,
        compact: bool = True,
    ):
        m = int(n_components)
        self.n_components = m
        self.per_class_gram = bool(per_class_gram)
        self._gram_upper = np.zeros((m, m), order="F")
        # R with G = R^T R while it has at most M // 2 rows (none with per-class matrices, nor
        # for a batch headed for sums that are no longer compact: compact=False)
        keep_factor = compact and not per_class_gram
        self._factor: np.ndarray | None = np.zeros((0, m)) if keep_factor else None
        self._gram_stale = False  # G not yet recomputed from a changed factor
        self.class_sums = np.zeros((m, n_classes))
        self.counts = np.zeros(n_classes, dtype=np.int64)
        self._class_grams: list[np.ndarray] = (
            [np.zeros((m, m), order="F") for _ in range(n_classes)] if per_class_gram else []
        )
        # The largest diagonal value G held before its removals (0: none since the sums were
        # last exactly zero; :meth:`peak`): the rounding a removal leaves is relative to it,
        # not to what is left. Between removals G's diagonal only grows, so this and the
        # diagonal now give the largest value the sums went through.
        self.peak_diagonal = 0.0

    @classmethod
    def from_sums(
        cls,
        gram_upper: np.ndarray,
        class_sums: np.ndarray,
        counts: np.ndarray,
        class_grams_upper: np.ndarray | None = None,
    ) -> SufficientStatistics:
        """Statistics from sums computed elsewhere (a device, a worker, a model file).

        ``gram_upper`` (M, M) holds G in its upper triangle (the rest is ignored); per-class
        Gram matrices, when given, are stacked (C, M, M) the same way. Shapes are checked.
        """
        gram = np.asarray(gram_upper, dtype=np.float64)
        m = gram.shape[0] if gram.ndim == 2 else -1
        if gram.shape != (m, m):
            raise ValueError(f"inconsistent statistics: gram {gram.shape} is not square")
        new = cls._with_sums(m, class_sums, counts, class_grams_upper)
        new._gram_upper = np.triu(gram).copy(order="F")
        new._factor = None
        return new

    @classmethod
    def from_factor(
        cls, factor: np.ndarray, class_sums: np.ndarray, counts: np.ndarray
    ) -> SufficientStatistics:
        """Statistics whose G is ``factor^T factor`` (a model file's compact form): ``factor``
        (n, M) is upper trapezoidal with one row per sample and n <= M // 2."""
        factor = np.asarray(factor, dtype=np.float64)
        m = factor.shape[1] if factor.ndim == 2 else -1
        new = cls._with_sums(m, class_sums, counts, None)
        if factor.shape != (new.n_samples, m) or new.n_samples > m // 2:
            raise ValueError(
                f"a factor of G has one row per sample and at most M // 2 rows: got "
                f"{factor.shape} for {new.n_samples} samples and M = {m}"
            )
        if np.tril(factor, -1).any():
            raise ValueError("the factor of G must be upper trapezoidal")
        new._factor = np.ascontiguousarray(factor.copy())
        new._gram_stale = True
        return new

    @classmethod
    def _with_sums(
        cls, m: int, class_sums: Any, counts: Any, class_grams_upper: Any
    ) -> SufficientStatistics:
        sums = np.asarray(class_sums, dtype=np.float64)
        counts = np.asarray(counts)
        if counts.ndim != 1 or counts.dtype.kind not in "iu":
            raise ValueError(
                f"counts must be a 1-D integer array, got {counts.dtype} {counts.shape}"
            )
        c = counts.shape[0]
        if m < 0 or sums.shape != (m, c):
            raise ValueError(
                f"inconsistent statistics: width {m}, class_sums {sums.shape}, "
                f"counts {counts.shape}"
            )
        new = cls(0, 0, class_grams_upper is not None)
        new.n_components = m
        new.class_sums = sums.copy()
        new.counts = counts.astype(np.int64)
        if class_grams_upper is not None:
            grams = np.asarray(class_grams_upper, dtype=np.float64)
            if grams.shape != (c, m, m):
                raise ValueError(
                    f"per-class Gram matrices have shape {grams.shape}, not {(c, m, m)}"
                )
            new._class_grams = [np.triu(g).copy(order="F") for g in grams]
        return new

    # ------------------------------------------------------------------ views
    def _upper(self) -> np.ndarray:
        """G's upper triangle, recomputed from the factor when that changed."""
        if self._gram_stale:
            self._gram_upper = _gram_of_factor(self._factor)
            self._gram_stale = False
        return self._gram_upper

    @property
    def gram_upper(self) -> np.ndarray:
        """G's upper triangle (Fortran order; below the diagonal is unspecified). Read-only."""
        view = self._upper().view()
        view.flags.writeable = False
        return view

    @property
    def factored(self) -> bool:
        """Whether G is kept as its triangular factor (few samples: a compact model file)."""
        return self._factor is not None

    @property
    def factor(self) -> np.ndarray | None:
        """R (n × M, upper trapezoidal) with G = RᵀR while G is kept factored, else None.
        Read-only."""
        if self._factor is None:
            return None
        view = self._factor.view()
        view.flags.writeable = False
        return view

    @property
    def n_classes(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def gram(self) -> np.ndarray:
        """G = H^T H, symmetric (a fresh array)."""
        return symmetrize_upper(self._upper())

    def diagonal(self) -> np.ndarray:
        """G's diagonal, (M,): the factor's column norms squared while G is kept factored."""
        if self._factor is not None:
            return np.einsum("ij,ij->j", self._factor, self._factor)
        return np.diagonal(self._gram_upper).copy()

    @property
    def feature_sum(self) -> np.ndarray:
        """Sum of all projected samples, (M,)."""
        return self.class_sums.sum(axis=1)

    def class_gram(self, index: int) -> np.ndarray:
        """G_c for one class column (needs ``per_class_gram=True``)."""
        if not self.per_class_gram:
            raise ValueError("per-class Gram matrices are not kept (per_class_gram=False)")
        return symmetrize_upper(self._class_grams[index])

    # ------------------------------------------------------------------ accumulation
    def stays_compact(self, extra_rows: int) -> bool:
        """Whether G is still kept as its factor after ``extra_rows`` more samples (a batch
        bound for these sums is then computed as a factor too; otherwise as a rank-k update)."""
        return (
            self._factor is not None
            and self._factor.shape[0] + extra_rows <= self.n_components // 2
        )

    def _densify(self) -> np.ndarray:
        """Keep G as its upper triangle from now on; returns it."""
        upper = self._upper()
        self._factor = None
        return upper

    def add(self, H: np.ndarray, y_index: np.ndarray, n_classes: int | None = None) -> None:
        """Add a chunk of projected rows ``H`` (k, M) with class column indices ``y_index``."""
        if n_classes is not None and n_classes > self.n_classes:
            self.insert_classes(np.full(n_classes - self.n_classes, self.n_classes))
        if H.shape[0] == 0:
            return
        if H.dtype == np.float64 and self.stays_compact(H.shape[0]):
            self._factor = _stacked_factor(self._factor, H)
            self._gram_stale = True
        else:  # float32 rows keep their float32 update (compute_dtype="float32")
            _gram_into(self._densify(), H)
        # Class sums through a sparse (present classes x k) indicator: O(k M), and no dense
        # (k x C) one-hot matrix however many classes there are.
        present, inverse = np.unique(y_index, return_inverse=True)
        indicator = sparse.csr_matrix(
            (np.ones(H.shape[0]), (inverse, np.arange(H.shape[0]))),
            shape=(present.size, H.shape[0]),
        )
        self.class_sums[:, present] += np.asarray(indicator @ H, dtype=np.float64).T
        if self.peak_diagonal:
            self._settle_peak(self.peak_diagonal)
        self.counts += np.bincount(y_index, minlength=self.n_classes)
        if self.per_class_gram:
            for c in np.unique(y_index):
                _gram_into(self._class_grams[c], H[y_index == c])

    def peak(self) -> float:
        """The largest diagonal value these sums went through (removed rows' included)."""
        return max(self.peak_diagonal, float(self.diagonal().max(initial=0.0)))

    def _settle_peak(self, peak: float) -> None:
        """Keep ``peak`` only where it is above the diagonal now (else the diagonal says it):
        so sums reloaded from a file, which keeps it only then, go on exactly as these."""
        diagonal = float(self.diagonal().max(initial=0.0))
        self.peak_diagonal = float(peak) if peak > diagonal else 0.0

    def _combine(self, other: SufficientStatistics, sign: float) -> None:
        if other.n_components != self.n_components or other.n_classes != self.n_classes:
            raise ValueError(
                f"statistics of shape (M={other.n_components}, C={other.n_classes}) cannot be "
                f"combined with (M={self.n_components}, C={self.n_classes})"
            )
        if self.per_class_gram and not other.per_class_gram:
            raise ValueError("the other statistics keep no per-class Gram matrices")
        if sign > 0:  # each side's removals left rounding relative to its own peak
            peak = min(self.peak_diagonal + other.peak_diagonal, float(np.finfo(float).max))
        else:
            peak = self.peak()
        if sign > 0 and other._factor is not None and self.stays_compact(other._factor.shape[0]):
            if other._factor.shape[0]:
                self._factor = _stacked_factor(self._factor, other._factor)
                self._gram_stale = True
        else:
            combine = np.add if sign > 0 else np.subtract  # in place, without a temporary
            upper = self._densify()
            combine(upper, other._upper(), out=upper)
        combine_sums = np.add if sign > 0 else np.subtract
        combine_sums(self.class_sums, other.class_sums, out=self.class_sums)
        self.counts += int(sign) * other.counts
        self._settle_peak(peak)
        if self.per_class_gram:
            for mine, theirs in zip(self._class_grams, other._class_grams, strict=True):
                mine += sign * theirs

    def __iadd__(self, other: SufficientStatistics) -> SufficientStatistics:
        self._combine(other, 1.0)
        return self

    def __isub__(self, other: SufficientStatistics) -> SufficientStatistics:
        self._combine(other, -1.0)
        return self

    # ------------------------------------------------------------------ class columns
    def insert_classes(self, positions: np.ndarray) -> None:
        """Insert empty class columns before the given column positions (``np.insert`` rules)."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size == 0:
            return
        self.class_sums = np.insert(self.class_sums, positions, 0.0, axis=1)
        self.counts = np.insert(self.counts, positions, 0)
        if self.per_class_gram:
            m = self.n_components
            # np.insert semantics: each position refers to the original indexing.
            grams = list(self._class_grams)
            for offset, pos in enumerate(sorted(positions.tolist())):
                grams.insert(pos + offset, np.zeros((m, m), order="F"))
            self._class_grams = grams

    def remove_classes(self, indices: np.ndarray) -> None:
        """Drop class columns (their samples' contributions must already be subtracted)."""
        indices = np.asarray(indices, dtype=np.int64)
        self.class_sums = np.delete(self.class_sums, indices, axis=1)
        self.counts = np.delete(self.counts, indices)
        if self.per_class_gram:
            drop = set(indices.tolist())
            self._class_grams = [g for i, g in enumerate(self._class_grams) if i not in drop]

    def subtract_class(self, index: int) -> None:
        """Remove every sample of one class exactly, using its kept G_c."""
        if not self.per_class_gram:
            raise ValueError("exact class removal needs per_class_gram=True")
        self.peak_diagonal = self.peak()
        self._densify()
        self._gram_upper -= self._class_grams[index]
        self._class_grams[index][:] = 0.0
        self.class_sums[:, index] = 0.0
        self.counts[index] = 0
        self._settle_peak(self.peak_diagonal)
        self.zero_if_empty()  # exact per-class removal: nothing left to check

    def all_finite(self) -> bool:
        """Whether every sum is finite (a batch of huge features can overflow G)."""
        if self._factor is not None:
            gram_finite = bool(np.isfinite(_max_abs(self)))  # G's entries are below its diagonal's
        else:
            gram_finite = bool(np.isfinite(self._gram_upper).all())
        return bool(
            gram_finite
            and np.isfinite(self.class_sums).all()
            and all(np.isfinite(g).all() for g in self._class_grams)
        )

    def can_absorb(self, other: SufficientStatistics, positions: np.ndarray) -> bool:
        """Whether adding ``other`` (after inserting class columns at ``positions``) keeps every
        sum finite; checked from magnitudes, forming the sum only when they come near overflow."""
        big = np.finfo(np.float64).max / 4
        if max(_max_abs(self), _max_abs(other)) < big:
            return True
        widened = self.copy()
        widened.insert_classes(positions)
        return bool(
            np.isfinite(widened._upper() + other._upper()).all()
            and np.isfinite(widened.class_sums + other.class_sums).all()
        )

    def minus(self, other: SufficientStatistics) -> SufficientStatistics:
        """``self - other`` as new statistics; ``self`` is untouched (for a checked forget)."""
        if other.n_components != self.n_components or other.n_classes != self.n_classes:
            raise ValueError("statistics of different shapes cannot be subtracted")
        new = SufficientStatistics(self.n_components, 0, self.per_class_gram)
        new._gram_upper = self._upper() - other._upper()
        new._factor = None
        new.class_sums = self.class_sums - other.class_sums
        new.counts = self.counts - other.counts
        new._settle_peak(self.peak())
        if self.per_class_gram:
            pairs = zip(self._class_grams, other._class_grams, strict=True)
            new._class_grams = [a - b for a, b in pairs]
        return new

    def downdate_factor(self, before: SufficientStatistics, removed: SufficientStatistics) -> bool:
        """Keep G as the factor of the rows left, where these sums are ``before.minus(removed)``
        (checked first: :meth:`check_attainable` runs on the subtraction) and both kept
        factors: the downdated factor (:func:`_downdated_factor`) replaces G where its G is the
        subtracted one to rounding (a sixteenth of the M eps of G's largest diagonal value
        that the lambda search counts as zero, plus what n sums of ``before``'s size round
        to, the subtraction's own error: a factor rounded further could move lambda away from
        a fresh fit's choice). Returns whether it did; G stays whole otherwise, as before."""
        if before._factor is None or removed._factor is None or self.per_class_gram:
            return False
        try:
            factor = _downdated_factor(before._factor, removed._factor)
        except np.linalg.LinAlgError:  # a factorisation that did not converge: G stays whole
            return False
        if factor is None or factor.shape[0] != self.n_samples:
            return False
        gram = _gram_of_factor(factor)
        eps = np.finfo(np.float64).eps
        allowed = eps * (
            _DOWNDATE_SHARE * self.n_components * float(np.diag(self._gram_upper).max())
            + before.n_samples * float(np.diag(before._upper()).max())
        )
        if np.abs(gram - self._gram_upper).max(initial=0.0) > allowed:
            return False
        self._factor, self._gram_upper, self._gram_stale = factor, gram, False
        return True

    def zero_if_empty(self) -> None:
        """With no row left, make every sum exactly what no rows sum to, not the rounding
        that subtracting leaves (call once the subtraction is known to be real)."""
        if not self.counts.any():
            self._zero_sums()

    def _zero_sums(self) -> None:
        """Every sum exactly zero, as no rows sum to (G again the empty factor of a new
        learner, so its file is as small); the class columns kept."""
        m = self.n_components
        self._gram_upper = np.zeros((m, m), order="F")
        self._factor = None if self.per_class_gram else np.zeros((0, m))
        self._gram_stale = False
        self.class_sums[:] = 0.0
        for gram in self._class_grams:
            gram[:] = 0.0
        self.peak_diagonal = 0.0  # exactly zero: no rounding left

    def check_attainable(self, before: SufficientStatistics, rounding: float = 1e-9) -> None:
        """Refuse sums no real data can produce (after subtracting rows from ``before``).

        Real data give counts >= 0 and a positive semi-definite moment matrix
        ``[[G, Q], [Q^T, diag(counts)]]`` (the sum of ``[h; y][h; y]^T`` over samples). Checked
        by one Cholesky factorisation of its Schur complement G - Q diag(counts)^-1 Q^T (M x M,
        the within-class scatter: the same verdict as the whole (M + C) x (M + C) matrix's,
        whose cost grew with the cube of the classes), with a margin of ``rounding`` times
        the largest diagonal value ``before`` went through (``peak_diagonal``: rows forgotten
        earlier left their rounding; 1e-9 for float64 products, float32 ones round to about
        1e-7) on G and of 1e-9 times ``before``'s samples on the counts. What
        sums cannot reveal: rows never learned whose removal leaves such a matrix (e.g. a row
        inside the span of rows of its class) pass; only fingerprints of the learned samples
        could tell.
        """
        bad = np.flatnonzero(self.counts < 0)
        if bad.size:
            raise ValueError(
                f"class column {int(bad[0])} would have {int(self.counts[bad[0]])} samples"
            )
        diagonal = np.diag(self._upper())
        # Rounding is relative to the largest sums the subtractions went through, not to each
        # entry (an entry already near zero carries the residue of earlier removals).
        margin = rounding * max(before.peak(), 1e-300)
        if np.any(diagonal < -margin):
            raise ValueError("the diagonal of G would become negative")
        m, c = self.n_components, self.n_classes
        count_margin = 1e-9 * max(before.n_samples, 1)
        # [[G + a I, Q], [Q^T, N + b I]] is positive definite iff N + b I is (a diagonal of
        # counts >= 0 plus b > 0) and so is its Schur complement G + a I - Q (N + b I)^-1 Q^T.
        weighted = self.class_sums / np.sqrt(self.counts.astype(np.float64) + count_margin)
        schur = np.array(self._upper(), order="F")
        schur -= weighted @ weighted.T  # (only the upper triangle is read)
        schur[np.diag_indices(m)] += margin
        try:
            linalg.cholesky(schur, lower=False, overwrite_a=True, check_finite=False)
        except linalg.LinAlgError as err:
            raise ValueError(
                "the statistics would no longer be positive semi-definite (those of no data)"
            ) from err
        shift = np.concatenate([np.full(m, margin), [count_margin]])
        if self.per_class_gram and before.per_class_gram and before.n_classes == c:
            # Each class's own sums obey the same law: [[G_k, s_k], [s_k^T, n_k]] >= 0.
            for k in np.flatnonzero(self.counts != before.counts):
                own = np.zeros((m + 1, m + 1), order="F")
                own[:m, :m] = self._class_grams[k]
                own[:m, m] = self.class_sums[:, k]
                own[m, m] = float(self.counts[k])
                own[np.diag_indices(m + 1)] += shift[: m + 1]
                try:
                    linalg.cholesky(own, lower=False, overwrite_a=True, check_finite=False)
                except linalg.LinAlgError as err:
                    raise ValueError(
                        f"the sums of class column {int(k)} would no longer be positive "
                        "semi-definite (those of no data of that class)"
                    ) from err

    def copy(self) -> SufficientStatistics:
        new = SufficientStatistics(self.n_components, 0, self.per_class_gram)
        new._gram_upper = self._gram_upper.copy(order="F")
        new._factor = None if self._factor is None else self._factor.copy()
        new._gram_stale = self._gram_stale
        new.class_sums = self.class_sums.copy()
        new.counts = self.counts.copy()
        new._class_grams = [g.copy(order="F") for g in self._class_grams]
        new.peak_diagonal = self.peak_diagonal
        return new

    # ------------------------------------------------------------------ storage
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The sums as named arrays: G as its factor (few samples) or packed upper triangle."""
        if self._factor is not None:
            arrays = {"gram_factor": self._factor}
        else:
            arrays = {"gram_packed": pack_upper(self._gram_upper)}
        arrays.update(class_sums=self.class_sums, counts=self.counts)
        if self.per_class_gram:
            m = self.n_components
            arrays["class_grams_packed"] = (
                np.stack([pack_upper(g) for g in self._class_grams])
                if self._class_grams
                else np.zeros((0, m * (m + 1) // 2))
            )
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SufficientStatistics:
        """Inverse of :meth:`to_arrays` (also reads the full upper triangles of older files)."""
        sums, counts = arrays["class_sums"], arrays["counts"]
        if "gram_factor" in arrays:
            return cls.from_factor(arrays["gram_factor"], sums, counts)
        m = np.shape(sums)[0]
        grams = arrays.get("class_grams_upper")
        if "class_grams_packed" in arrays:
            packed = np.asarray(arrays["class_grams_packed"])
            grams = (
                np.stack([unpack_upper(p, m) for p in packed])
                if len(packed)
                else (np.zeros((0, m, m)))
            )
        gram = arrays.get("gram_upper")
        if gram is None:
            gram = unpack_upper(np.asarray(arrays["gram_packed"], dtype=np.float64), m)
        return cls.from_sums(gram, sums, counts, grams)

    def after_removal(self, peak_diagonal: float) -> SufficientStatistics:
        """These sums as what a removal left, from sums that reached ``peak_diagonal`` (a
        model file's record of it)."""
        self._settle_peak(float(peak_diagonal))
        return self

    def peak_to_keep(self) -> float | None:
        """What a model file must keep to restore :meth:`peak`: the peak before removals where
        it is above the diagonal now (else None: the diagonal gives it)."""
        return self.peak_diagonal or None
