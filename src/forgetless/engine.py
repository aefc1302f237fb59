"""Where a learner's features and sums are computed: numpy on the host, or torch on a device.

A learner makes one engine from its ``device`` and ``compute_dtype`` (:func:`make_engine`) and
asks it for four things: projected chunks (``features``), a batch's sums (``statistics``), the
scores of a linear head (``scores``) and the Cholesky operations its head factorises with
(``linalg``). Both engines apply the layer through its own ``apply`` on an array namespace
(:mod:`forgetless.layers.xp`), so they run the same code and agree to float rounding.

The torch engine moves a layer's parameters to the device once (cached per layer object),
projects chunks of X there and accumulates the Gram matrix on the device in float64; it crosses
to the host once per batch. With ``compute_dtype="float32"`` the projection and the products
run in float32 (TF32 on GPUs that allow it) and are accumulated in float64. Its ``linalg`` runs
the ridge head's factorisations (the GCV search over lambda and the solve) on the device in
float64; the statistics themselves stay on the host.

>>> import numpy as np
>>> from forgetless.layers import make_layer
>>> layer = make_layer("hadamard", n_features=5, n_components=12, seed=0)
>>> engine = make_engine(None, "float64")
>>> X = np.random.default_rng(0).standard_normal((10, 5))
>>> stats = engine.statistics(layer, X, np.arange(10) % 2, 2, False, None)
>>> H = layer.transform(X)
>>> bool(np.allclose(stats.gram, H.T @ H)), stats.counts.tolist()
(True, [5, 5])
>>> [start for start, stop, chunk in engine.features(layer, X, chunk_size=4)]
[0, 4, 8]
"""

from __future__ import annotations

import math
import re
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from forgetless._install import install_line
from forgetless.layers.base import Layer
from forgetless.layers.xp import NUMPY, TorchOps
from forgetless.linalg import HOST
from forgetless.statistics import SufficientStatistics

COMPUTE_DTYPES = {"float64": np.float64, "float32": np.float32}
_DEVICES = "None (numpy), 'cpu', 'cuda' or 'cuda:<index>'"
_DEVICE_PATTERN = re.compile(r"(cpu|cuda)(:\d+)?")
_INSTALL = install_line("torch", "torch==2.13.0")


def make_engine(device: str | None, compute_dtype: str = "float64") -> Engine:
    """The engine for a learner's ``device`` (``None``: numpy) and ``compute_dtype``.

    ValueError for an unknown dtype or device, or ``"cuda"`` on a machine without a GPU;
    ImportError naming the install line when a device is asked for and torch is missing.

    >>> make_engine(None, "float32")
    NumpyEngine(compute_dtype='float32')
    >>> make_engine("tpu", "float64")
    Traceback (most recent call last):
    ...
    ValueError: device='tpu' is not a torch device forgetless supports; choose None (numpy), ...
    """
    if not isinstance(compute_dtype, str) or compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be 'float64' or 'float32', got {compute_dtype!r}")
    if device is None:
        return NumpyEngine(compute_dtype)
    if not isinstance(device, str) or not _DEVICE_PATTERN.fullmatch(device):
        raise ValueError(
            f"device={device!r} is not a torch device forgetless supports; choose {_DEVICES}"
        )
    return TorchEngine(device, compute_dtype)


def _torch() -> Any:
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"device= needs PyTorch: {_INSTALL}") from err
    return torch


def _check_labels(y_index: Any, n_rows: int, n_classes: int) -> np.ndarray:
    """Class column indices, one per row, each in [0, n_classes): checked on the host, since a
    bad index on a GPU is a device-side assertion rather than an error."""
    y_index = np.asarray(y_index)
    if y_index.shape != (n_rows,) or (n_rows and y_index.dtype.kind not in "iu"):
        raise ValueError(f"y_index must hold one class index per row of X, got {y_index.shape}")
    if n_rows and (y_index.min() < 0 or y_index.max() >= n_classes):
        raise ValueError(
            f"class indices must lie in [0, {n_classes}), got {y_index.min()}..{y_index.max()}"
        )
    return y_index.astype(np.int64, copy=False)


class Engine:
    """What both engines share: the layer-parameter cache and the checks of each call."""

    device: str | None
    linalg: Any

    def __init__(self, xp: Any, compute_dtype: str) -> None:
        self.xp = xp
        self.compute_dtype = compute_dtype
        self.dtype = np.dtype(COMPUTE_DTYPES[compute_dtype])
        # A layer's parameters converted for this engine, dropped with the layer.
        self._cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __reduce__(self) -> tuple:
        # Device handles and cached tensors are remade, never pickled or copied.
        return make_engine, (self.device, self.compute_dtype)

    def parameters(self, layer: Layer) -> dict[str, Any]:
        """The layer's parameters on this engine's device and dtype (converted once)."""
        params = self._cache.get(layer)
        if params is None:
            params = self.xp.parameters(layer.parameters(), self.dtype)
            self._cache[layer] = params
        return params

    def project(self, layer: Layer, X: np.ndarray) -> Any:
        """H for one chunk of rows, as an array of this engine's namespace."""
        return layer.apply(self.xp.asarray(X, self.dtype), self.xp, self.parameters(layer))

    def _chunks(self, layer: Layer, n_rows: int, chunk_size: int | None) -> Iterator:
        return layer.chunks(n_rows, chunk_size)

    def features(
        self, layer: Layer, X: Any, chunk_size: int | None = None
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, H)`` with H a numpy chunk (float64; float32 on the numpy
        engine with ``compute_dtype="float32"``), for heads that need the features."""
        X = layer.check_input(X)
        for start, stop in self._chunks(layer, X.shape[0], chunk_size):
            yield start, stop, self._to_host(self.project(layer, X[start:stop]))

    def _to_host(self, H: Any) -> np.ndarray:
        return H

    def scores(
        self,
        layer: Layer,
        X: Any,
        coef: np.ndarray,
        intercept: np.ndarray,
        chunk_size: int | None = None,
        argmax: bool = False,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, H @ coef + intercept)`` in float64 (or its row argmax) for a
        linear head; on a device only these n x C numbers cross to the host."""
        X = layer.check_input(X)
        coef = np.asarray(coef, dtype=np.float64)
        intercept = np.asarray(intercept, dtype=np.float64)
        if coef.ndim != 2 or coef.shape[0] != layer.n_outputs or intercept.shape != coef.shape[1:]:
            raise ValueError(
                f"a linear head over {layer.n_outputs} features needs coef ({layer.n_outputs}, C) "
                f"and intercept (C,), got {coef.shape} and {intercept.shape}"
            )
        yield from self._scores(layer, X, coef, intercept, chunk_size, argmax)

    def _scores(self, layer, X, coef, intercept, chunk_size, argmax) -> Iterator:
        for start, stop, H in self.features(layer, X, chunk_size):
            S = np.asarray(H, dtype=np.float64) @ coef + intercept
            yield start, stop, S.argmax(1) if argmax else S

    def statistics(
        self,
        layer: Layer,
        X: Any,
        y_index: Any,
        n_classes: int,
        per_class_gram: bool = False,
        chunk_size: int | None = None,
        compact: bool = True,
        learning: bool = True,
    ) -> SufficientStatistics:
        """The sums of one batch: G, the class sums and counts (and per-class G_c), float64.
        ``compact=False`` when they will join sums that keep G whole: no factor is built.
        ``learning=False`` for rows to be forgotten: they were learned, in whatever batch, so
        a layer's demands on a batch to learn from (a scale it resolves) do not apply."""
        X = layer.check_input(X, learning=learning)
        y_index = _check_labels(y_index, X.shape[0], int(n_classes))
        return self._statistics(
            layer, X, y_index, int(n_classes), bool(per_class_gram), chunk_size, bool(compact)
        )

    def _statistics(self, layer, X, y_index, n_classes, per_class_gram, chunk_size, compact) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        device = "" if self.device is None else f"{self.device!r}, "
        return f"{type(self).__name__}({device}compute_dtype={self.compute_dtype!r})"


class NumpyEngine(Engine):
    """The host engine: numpy, scipy's BLAS for the sums and LAPACK for the head."""

    device = None

    def __init__(self, compute_dtype: str = "float64") -> None:
        super().__init__(NUMPY, compute_dtype)
        self.linalg = HOST

    def _statistics(self, layer, X, y_index, n_classes, per_class_gram, chunk_size, compact) -> Any:
        batch = SufficientStatistics(layer.n_outputs, n_classes, per_class_gram, compact)
        for start, stop, H in self.features(layer, X, chunk_size):
            batch.add(H, y_index[start:stop])  # a symmetric rank-k update per chunk
        return batch


class TorchEngine(Engine):
    """Projection, sums and linear scores on a torch device (``"cpu"``, ``"cuda"``...)."""

    def __init__(self, device: str, compute_dtype: str = "float64") -> None:
        torch = _torch()
        self.device = device
        self.torch = torch
        self.place = _check_device(torch, device)
        super().__init__(TorchOps(torch, self.place), compute_dtype)
        self.linalg = TorchLinalg(device)

    def _chunks(self, layer: Layer, n_rows: int, chunk_size: int | None) -> Iterator:
        """Rows per chunk: the numpy default on the CPU; ~512 MiB of features on a GPU, where
        small chunks leave the device idle between launches."""
        if chunk_size is None and self.place.type != "cpu":
            chunk_size = max(1, (1 << 26) // max(layer.n_outputs, 1))
        return layer.chunks(n_rows, chunk_size)

    def _to_host(self, H: Any) -> np.ndarray:
        return H.to(self.torch.float64).cpu().numpy()

    def _scores(self, layer, X, coef, intercept, chunk_size, argmax) -> Iterator:
        torch = self.torch
        W = torch.as_tensor(coef, dtype=torch.float64, device=self.place)
        b = torch.as_tensor(intercept, dtype=torch.float64, device=self.place)
        for start, stop in self._chunks(layer, X.shape[0], chunk_size):
            S = torch.addmm(b, self.project(layer, X[start:stop]).to(torch.float64), W)
            yield start, stop, (S.argmax(1) if argmax else S).cpu().numpy()

    def _statistics(self, layer, X, y_index, n_classes, per_class_gram, chunk_size, compact) -> Any:
        torch = self.torch  # G whole: the device computes it as one product
        m = layer.n_outputs
        gram = torch.zeros((m, m), dtype=torch.float64, device=self.place)
        sums = torch.zeros((m, n_classes), dtype=torch.float64, device=self.place)
        index = torch.as_tensor(y_index, device=self.place)
        # Per-class Gram matrices (rare, C x M^2) are kept on the host, not on the device.
        class_grams = np.zeros((n_classes, m, m)) if per_class_gram else None
        for start, stop in self._chunks(layer, X.shape[0], chunk_size):
            H = self.project(layer, X[start:stop])
            if H.dtype == torch.float64:
                gram.addmm_(H.T, H)  # in place: no M x M temporary per chunk
            else:
                gram += (H.T @ H).to(torch.float64)
            H64 = H.to(torch.float64)
            sums.index_add_(1, index[start:stop], H64.T)
            if class_grams is not None:
                rows = y_index[start:stop]
                for c in np.unique(rows):
                    Hc = H64[torch.as_tensor(rows == c, device=self.place)]
                    class_grams[c] += (Hc.T @ Hc).cpu().numpy()
        return SufficientStatistics.from_sums(
            gram.cpu().numpy(),
            sums.cpu().numpy(),
            np.bincount(y_index, minlength=n_classes).astype(np.int64),
            class_grams,
        )


def _check_device(torch: Any, device: str) -> Any:
    try:
        place = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(
            f"device={device!r} is not a torch device forgetless supports; choose {_DEVICES}"
        ) from err
    if place.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but no CUDA device is available here; use device=None "
                "(numpy) or 'cpu' (set_params, or ContinualClassifier.load(path, device=None))"
            )
        if place.index is not None and place.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA "
                "device(s); choose 'cuda' or an index below that"
            )
    return place


class TorchLinalg:
    """The ridge head's Cholesky operations (see :class:`forgetless.linalg.HostLinalg`) in float64
    on a torch device: on a GPU the GCV search over lambda costs a few device factorisations.

    The condition number is estimated from the factor's diagonal, (max u_ii / min u_ii)^2, a
    lower bound of the true one (LAPACK's estimator has no torch counterpart).
    """

    def __init__(self, device: str) -> None:
        torch = _torch()
        self.torch, self.device = torch, _check_device(torch, device)

    def __reduce__(self) -> tuple:
        return TorchLinalg, (str(self.device),)

    def asarray(self, array: Any) -> Any:
        if isinstance(array, self.torch.Tensor):
            return array.to(device=self.device, dtype=self.torch.float64)
        with warnings.catch_warnings():
            # read-only arrays (the statistics' views) are only read here
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return self.torch.as_tensor(
                np.asarray(array), dtype=self.torch.float64, device=self.device
            )

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return tensor.cpu().numpy() if isinstance(tensor, self.torch.Tensor) else tensor

    def gram(self, stats: SufficientStatistics, mean: np.ndarray | None = None) -> Any:
        """G symmetrised (and centred) on the device from the stored upper triangle: one
        host-to-device copy and no M x M work on the host."""
        torch = self.torch
        lower = self.asarray(np.ascontiguousarray(stats.gram_upper.T))  # no copy if F-ordered
        gram = torch.tril(lower)
        gram += torch.tril(lower, -1).T
        if mean is not None:
            gram.addr_(self.asarray(mean), self.asarray(mean), alpha=-float(stats.n_samples))
        return gram

    def trace(self, gram: Any) -> float:
        return float(gram.diagonal().sum())

    def product(self, gram: Any, block: Any) -> Any:
        return gram @ block.to(gram.dtype)

    def single(self, gram: Any, scale: float = 1.0) -> Any:
        return gram.float() if scale == 1.0 else (gram / scale).float()

    def norm1(self, gram: Any) -> float:
        return float(gram.abs().sum(dim=0).max())

    def spectrum(self, gram: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
        eigenvalues, vectors = self.torch.linalg.eigh(self.asarray(gram))
        rotated = vectors.T @ self.asarray(targets)
        return self.to_numpy(eigenvalues), self.to_numpy((rotated * rotated).sum(dim=1))

    def shifted_cholesky(self, gram: Any, alpha: float, out: Any = None) -> tuple | None:
        A = gram.clone()  # ``out`` (a reusable host buffer) is for the host's copies only
        A.diagonal().add_(alpha)
        upper, info = self.torch.linalg.cholesky_ex(A, upper=True)
        if int(info) != 0:
            return None
        return upper

    def single_cholesky(self, rough: Any, alpha: float) -> Any:
        rough.diagonal().add_(alpha)
        upper, info = self.torch.linalg.cholesky_ex(rough, upper=True)
        return None if int(info) != 0 else upper

    def cho_solve(self, upper: Any, targets: Any) -> Any:
        return self.torch.cholesky_solve(targets.to(upper.dtype), upper, upper=True)

    def probe_norms(self, upper: Any, probes: Any) -> Any:
        half = self.torch.linalg.solve_triangular(upper.T, probes.to(upper.dtype), upper=False)
        return (half * half).sum(dim=0)

    def inverse_norm2(self, upper: Any) -> float:
        eye = self.torch.eye(upper.shape[0], dtype=upper.dtype, device=upper.device)
        inverse = self.torch.linalg.solve_triangular(upper, eye, upper=True)
        return float((inverse * inverse).sum())

    def vdot(self, a: Any, b: Any) -> float:
        return float((a * b).sum())

    def condition(self, upper: Any, norm1: float) -> float:
        diagonal = upper.diagonal().abs()
        low = float(diagonal.min())
        return math.inf if low <= 0 else (float(diagonal.max()) / low) ** 2
