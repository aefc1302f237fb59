"""Host linear algebra for the heads: checked Cholesky solves and the ill-conditioning warning.

Every solve of ``(G + lambda I) W = Q`` goes through :func:`ridge_solve`: Cholesky first (with
LAPACK's condition estimate), an eigendecomposition fallback for a matrix that is not numerically
positive definite, and an :class:`IllConditionedWarning` naming the condition number either way.
:class:`HostLinalg` is the set of operations the lambda search needs; a torch engine provides
the same methods on a device (:mod:`forgetless.engine`).

>>> import numpy as np
>>> ridge_solve(np.eye(2) * 3.0, np.ones((2, 1)), 1.0).ravel().tolist()
[0.25, 0.25]
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import linalg
from scipy.linalg import lapack
from threadpoolctl import ThreadpoolController

# Above this condition number of G + lambda I the solve is flagged (float64 keeps ~4 digits).
CONDITION_WARNING = 1e12


_CONTROLLER: list[ThreadpoolController] = []


def one_thread() -> Any:
    """A context in which BLAS runs on one thread: for small factorisations (threads would
    spend more time meeting than working) and where the bits must not depend on the thread
    count. The thread pools are inspected once (that costs a millisecond)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)


class IllConditionedWarning(UserWarning):
    """The regularised Gram matrix is close to singular; results may be inaccurate."""


class HostLinalg:
    """The Cholesky operations the ridge head needs, on numpy arrays (LAPACK via scipy).

    The torch engine (:mod:`forgetless.engine`) has the same methods on a device, so the same
    lambda search runs on a GPU when the learner has ``device="cuda"`` (the Krylov search only
    multiplies ``gram @ block`` there; ``rotated_spectrum``, where an engine lacks it, runs on
    the host).
    """

    def asarray(self, array: np.ndarray) -> np.ndarray:
        return np.asarray(array, dtype=np.float64)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def gram(self, stats: Any, mean: np.ndarray | None = None) -> np.ndarray:
        """The symmetric G of the statistics, centred (G - n m m^T) when the mean m is given."""
        gram = stats.gram
        if mean is not None:
            gram -= stats.n_samples * np.outer(mean, mean)
        return gram

    def trace(self, gram: np.ndarray) -> float:
        return float(np.trace(gram))

    def spectrum(self, gram: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues s of G and the energies ||(V^T Q)_i||^2 along its eigenvectors."""
        eigenvalues, vectors = linalg.eigh(gram, driver="evd", check_finite=False)
        rotated = vectors.T @ targets
        return eigenvalues, np.einsum("ij,ij->i", rotated, rotated)

    def rotated_spectrum(
        self, gram: np.ndarray, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues s of G and V^T Q itself (M x C; the loo criterion needs cross terms)."""
        eigenvalues, vectors = linalg.eigh(gram, driver="evd", check_finite=False)
        return eigenvalues, vectors.T @ targets

    def shifted_cholesky(self, gram: np.ndarray, alpha: float) -> tuple | None:
        """(U, A) with A = G + alpha I = U^T U, or None when A is not positive definite."""
        A = np.array(gram, dtype=np.float64, copy=True)
        A[np.diag_indices(A.shape[0])] += alpha
        try:
            upper, _ = linalg.cho_factor(A, lower=False, check_finite=False)
        except linalg.LinAlgError:
            return None
        return upper, A

    def cho_solve(self, upper: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return linalg.cho_solve((upper, False), targets, check_finite=False)

    def probe_norms(self, upper: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """||U^-T z||^2 for each probe column z."""
        half = linalg.solve_triangular(upper, probes, trans="T", check_finite=False)
        return np.einsum("ij,ij->j", half, half)

    def inverse_norm2(self, upper: np.ndarray) -> float:
        """||U^-1||_F^2 = tr(A^-1), exactly."""
        inverse = np.triu(lapack.dtrtri(upper, lower=0)[0])
        return float(np.vdot(inverse, inverse))

    def vdot(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.vdot(a, b))

    def condition(self, upper: np.ndarray, matrix: np.ndarray) -> float:
        """LAPACK's 1-norm condition estimate of A from its Cholesky factor."""
        anorm = float(np.abs(matrix).sum(axis=0).max())
        rcond, info = lapack.dpocon(upper, anorm, uplo="U")
        return math.inf if info != 0 or rcond <= 0 else 1.0 / float(rcond)


HOST = HostLinalg()


def ridge_solve(
    gram: np.ndarray,
    targets: np.ndarray,
    alpha: float,
    ops: HostLinalg = HOST,
    hint: str = "increase alpha",
) -> np.ndarray:
    """Solve (G + alpha I) W = Q by Cholesky; fall back to an eigendecomposition.

    The fallback (for a matrix that is not numerically positive definite) drops eigenvalues below
    machine precision, i.e. returns the minimum-norm solution. Either path warns with the
    condition number when it exceeds ``CONDITION_WARNING`` and says what to do (``hint``).
    ``ops`` runs the Cholesky path on another device (a torch engine's ``linalg``); the
    fallback stays on the host.

    >>> import numpy as np
    >>> ridge_solve(np.eye(2) * 3.0, np.ones((2, 1)), 1.0).ravel().tolist()
    [0.25, 0.25]
    """
    m = gram.shape[0]
    factored = ops.shifted_cholesky(ops.asarray(gram), alpha)
    if factored is None:
        A = np.array(ops.to_numpy(gram), dtype=np.float64, copy=True)
        A[np.diag_indices(m)] += alpha
        evals, evecs = linalg.eigh(A)
        top = max(float(evals.max()), 0.0)
        keep = evals > top * m * np.finfo(np.float64).eps
        cond = math.inf if not keep.all() else top / float(evals.min())
        warnings.warn(
            f"G + {alpha:.3g} I is not positive definite (condition number {cond:.3g}); "
            f"using the minimum-norm eigen-solution; {hint}.",
            IllConditionedWarning,
            stacklevel=3,
        )
        inv = np.where(keep, 1.0 / np.where(keep, evals, 1.0), 0.0)
        return evecs @ (inv[:, None] * (evecs.T @ targets))
    upper, A = factored
    cond = ops.condition(upper, A)
    if cond > CONDITION_WARNING:
        warnings.warn(
            f"G + {alpha:.3g} I has condition number {cond:.3g} > {CONDITION_WARNING:.0g}; "
            f"the solution may be inaccurate; {hint} or reduce n_components.",
            IllConditionedWarning,
            stacklevel=3,
        )
    return ops.to_numpy(ops.cho_solve(upper, ops.asarray(targets)))
