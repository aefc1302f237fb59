"""The projection and the Gram accumulation on torch tensors (``ContinualClassifier(device=...)``).

The layer is the same one :mod:`forgetless.projection` builds from the seed (its weights are
moved to the device once); chunks of X are projected and their rank-k products accumulated on
the device into a float64 Gram matrix, which crosses to the host once per ``partial_fit`` call.
With ``compute_dtype="float32"`` the projection and the products run in float32 (TF32 on GPUs
that allow it) and are accumulated in float64. The ridge head's factorisations (the GCV search
over lambda and the final solve) run on the device too, in float64 (:class:`TorchLinalg`); the
statistics themselves are kept on the host.

On the CPU the results match the numpy path to float rounding (tested).

>>> import numpy as np
>>> from forgetless.projection import RandomProjection
>>> layer = RandomProjection("hadamard", 5, 12, seed=0)
>>> X = np.random.default_rng(0).standard_normal((4, 5))
>>> backend = TorchBackend(layer, "cpu", np.float64)
>>> bool(np.allclose(backend.transform(X).numpy(), layer.transform(X)))
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from forgetless.statistics import SufficientStatistics


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            "device= needs PyTorch: pip install 'forgetless[torch]' (torch==2.13.0)"
        ) from err
    return torch


def _fwht(torch: Any, X: Any) -> Any:
    n, d = X.shape
    Y = X.clone()
    h = 1
    while h < d:
        view = Y.view(n, d // (2 * h), 2, h)
        first = view[:, :, 0, :].clone()
        view[:, :, 0, :] += view[:, :, 1, :]
        view[:, :, 1, :] = first - view[:, :, 1, :]
        h *= 2
    return Y / math.sqrt(d)


def _check_device(torch: Any, device: str) -> None:
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device={device!r} is not a torch device; use None (numpy), 'cpu' or 'cuda'"
        ) from err
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but no CUDA device is available here; use device=None (numpy) "
            "or 'cpu' (set_params, or ContinualClassifier.load(path, device=None))"
        )


class TorchLinalg:
    """The ridge head's Cholesky operations (see :class:`forgetless.linalg.HostLinalg`) in float64
    on a torch device: on a GPU the GCV search over lambda costs a few device factorisations.

    The condition number is estimated from the factor's diagonal, (max u_ii / min u_ii)^2, a
    lower bound of the true one (LAPACK's estimator has no torch counterpart).

    >>> import numpy as np
    >>> from forgetless.linalg import ridge_solve
    >>> ridge_solve(np.eye(2) * 3.0, np.ones((2, 1)), 1.0, TorchLinalg("cpu")).ravel().tolist()
    [0.25, 0.25]
    """

    def __init__(self, device: str) -> None:
        torch = _torch()
        _check_device(torch, device)
        self.torch, self.device = torch, torch.device(device)

    def asarray(self, array: Any) -> Any:
        if isinstance(array, self.torch.Tensor):
            return array.to(device=self.device, dtype=self.torch.float64)
        return self.torch.as_tensor(np.asarray(array), dtype=self.torch.float64, device=self.device)

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.cpu().numpy() if isinstance(tensor, self.torch.Tensor) else tensor

    def gram(self, stats: SufficientStatistics, mean: np.ndarray | None = None) -> Any:
        """G symmetrised (and centred) on the device from the stored upper triangle: one
        host-to-device copy and no M x M work on the host."""
        torch = self.torch
        lower = self.asarray(np.ascontiguousarray(stats._gram_upper.T))  # no copy if F-ordered
        gram = torch.tril(lower)
        gram += torch.tril(lower, -1).T
        if mean is not None:
            gram.addr_(self.asarray(mean), self.asarray(mean), alpha=-float(stats.n_samples))
        return gram

    def trace(self, gram: Any) -> float:
        return float(gram.diagonal().sum())

    def spectrum(self, gram: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        eigenvalues, vectors = self.torch.linalg.eigh(self.asarray(gram))
        rotated = vectors.T @ self.asarray(targets)
        return self.to_numpy(eigenvalues), self.to_numpy((rotated * rotated).sum(dim=1))

    def shifted_cholesky(self, gram: Any, alpha: float) -> tuple | None:
        A = gram.clone()
        A.diagonal().add_(alpha)
        upper, info = self.torch.linalg.cholesky_ex(A, upper=True)
        if int(info) != 0:
            return None
        return upper, A

    def cho_solve(self, upper: Any, targets: Any) -> Any:
        return self.torch.cholesky_solve(targets, upper, upper=True)

    def probe_norms(self, upper: Any, probes: Any) -> Any:
        half = self.torch.linalg.solve_triangular(upper.T, probes, upper=False)
        return (half * half).sum(dim=0)

    def inverse_norm2(self, upper: Any) -> float:
        eye = self.torch.eye(upper.shape[0], dtype=upper.dtype, device=upper.device)
        inverse = self.torch.linalg.solve_triangular(upper, eye, upper=True)
        return float((inverse * inverse).sum())

    def vdot(self, a: Any, b: Any) -> float:
        return float((a * b).sum())

    def condition(self, upper: Any, matrix: Any) -> float:
        diagonal = upper.diagonal().abs()
        low = float(diagonal.min())
        return math.inf if low <= 0 else (float(diagonal.max()) / low) ** 2


class TorchBackend:
    """Projection and sums of one layer on one torch device."""

    def __init__(self, layer: Any, device: str, dtype: Any) -> None:
        torch = _torch()
        _check_device(torch, device)
        if layer.kind == "guided":
            raise ValueError("device= supports the random layers; use device=None for guided")
        self.torch, self.layer, self.device = torch, layer, torch.device(device)
        self.dtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64

        def put(array: np.ndarray | None) -> Any:
            if array is None:
                return None
            return torch.as_tensor(np.asarray(array), dtype=self.dtype, device=self.device)

        self.weights = put(getattr(layer, "weights", None))
        self.offset = put(getattr(layer, "offset", None))
        self.signs = put(getattr(layer, "_signs", None))

    # ------------------------------------------------------------------ projection
    def _linear(self, X: Any) -> Any:
        torch, layer = self.torch, self.layer
        if layer.kind == "none":
            Z = X.clone()
        elif layer.kind == "hadamard":
            n, d = X.shape
            padded = layer._padded
            Xp = torch.zeros((n, padded), dtype=X.dtype, device=X.device)
            Xp[:, :d] = X
            blocks = []
            for s1, s2, s3 in self.signs:
                blocks.append(_fwht(torch, _fwht(torch, _fwht(torch, Xp * s3) * s2) * s1))
            Z = torch.cat(blocks, dim=1)[:, : layer.n_components]
            Z = Z * (math.sqrt(padded) * layer._unit)
        else:
            Z = X @ self.weights
        if self.offset is not None:
            Z = Z + self.offset
        return Z

    def transform(self, X: np.ndarray) -> Any:
        """H = activation(X W + b) as a tensor on the device."""
        torch = self.torch
        Xt = torch.as_tensor(np.asarray(X), dtype=self.dtype, device=self.device)
        Z = self._linear(Xt)
        act = self.layer.activation
        if act == "relu":
            Z = torch.relu(Z)
        elif act == "gelu":
            Z = torch.nn.functional.gelu(Z)
        elif act == "tanh":
            Z = torch.tanh(Z)
        elif act == "sigmoid":
            Z = torch.sigmoid(Z)
        elif act == "cos":
            Z = torch.cos(Z) * math.sqrt(2.0 / self.layer.n_components)
        return Z

    def _chunk(self, chunk_size: int | None) -> int | None:
        """Rows per chunk: the numpy default on the CPU; ~512 MiB of features on a GPU, where
        small chunks leave the device idle between launches."""
        if chunk_size is not None or self.device.type == "cpu":
            return chunk_size
        return max(1, (1 << 26) // max(self.layer.n_outputs, 1))

    # ------------------------------------------------------------------ sums
    def statistics(
        self,
        X: np.ndarray,
        y_index: np.ndarray,
        n_classes: int,
        per_class_gram: bool,
        chunk_size: int | None,
    ) -> SufficientStatistics:
        """The batch's sums; the Gram matrix is accumulated on the device in float64."""
        torch = self.torch
        m = self.layer.n_outputs
        gram = torch.zeros((m, m), dtype=torch.float64, device=self.device)
        sums = torch.zeros((m, n_classes), dtype=torch.float64, device=self.device)
        index = torch.as_tensor(y_index, device=self.device)
        batch = SufficientStatistics(m, n_classes, per_class_gram)
        for start, stop in self.layer.chunks(X.shape[0], self._chunk(chunk_size)):
            H = self.transform(X[start:stop])
            if H.dtype == torch.float64:
                gram.addmm_(H.T, H)  # in place: no M x M temporary per chunk
            else:
                gram += (H.T @ H).to(torch.float64)
            sums.index_add_(1, index[start:stop], H.T.to(torch.float64))
            if per_class_gram:  # rare and memory-heavy: reuse the host path per class
                Hn = H.to(torch.float64).cpu().numpy()
                for c in np.unique(y_index[start:stop]):
                    rows = Hn[y_index[start:stop] == c]
                    batch._class_grams[c] += np.triu(rows.T @ rows)
        # The upper triangle in Fortran order, as the numpy path keeps it, made on the device.
        batch._gram_upper = torch.triu(gram).T.contiguous().cpu().numpy().T
        batch.class_sums = sums.cpu().numpy()
        batch.counts = np.bincount(y_index, minlength=n_classes).astype(np.int64)
        return batch

    def scores(
        self,
        X: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        chunk_size: int | None,
        argmax: bool = False,
    ) -> Any:
        """Yield (start, stop, H @ coef + intercept in float64, or its row argmax)."""
        torch = self.torch
        W = torch.as_tensor(coef, dtype=torch.float64, device=self.device)
        b = torch.as_tensor(intercept, dtype=torch.float64, device=self.device)
        for start, stop in self.layer.chunks(X.shape[0], self._chunk(chunk_size)):
            S = torch.addmm(b, self.transform(X[start:stop]).to(torch.float64), W)
            yield start, stop, (S.argmax(1) if argmax else S).cpu().numpy()

    def features(self, X: np.ndarray, chunk_size: int | None) -> Any:
        """Yield (start, stop, H as a float64 numpy chunk) for prediction and RLS."""
        for start, stop in self.layer.chunks(X.shape[0], self._chunk(chunk_size)):
            yield start, stop, self.transform(X[start:stop]).to(self.torch.float64).cpu().numpy()
