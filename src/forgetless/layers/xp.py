"""The few array operations a layer needs, for numpy and for torch: layers are written once.

A layer's linear map and activation (:meth:`forgetless.layers.base.Layer.apply`) and the fast
Walsh-Hadamard transform below use only these methods, plain slicing, ``@``, ``+=`` and ``*=``.
So the numpy path and a torch device run the same code, and a new layer kind needs no second
implementation. The operations may reuse their argument's memory (``relu(Z)`` may overwrite
``Z``); a layer only passes arrays it owns.

>>> import numpy as np
>>> x = np.array([[1.0, 0.0, 0.0, 0.0]])
>>> fwht(x)
array([[0.5, 0.5, 0.5, 0.5]])
>>> bool(np.allclose(fwht(fwht(x)), x))
True
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import special

# Rows the Hadamard layer transforms at a time on the numpy path: ~512 KiB per buffer, so its
# 3 log2(d') passes per block run in the CPU cache instead of main memory (~2x faster).
_CACHE_BYTES = 1 << 19


class NumpyOps:
    """The array namespace on the host (numpy and scipy)."""

    name = "numpy"

    def asarray(self, array: Any, dtype: Any) -> np.ndarray:
        return np.asarray(array, dtype=dtype)

    def to_numpy(self, array: np.ndarray) -> np.ndarray:
        return array

    def parameters(self, params: dict[str, np.ndarray], dtype: Any) -> dict[str, np.ndarray]:
        """A layer's arrays in the compute dtype (no copy when they already are)."""
        return {name: np.asarray(value, dtype=dtype) for name, value in params.items()}

    def empty(self, shape: tuple[int, ...], like: np.ndarray) -> np.ndarray:
        return np.empty(shape, dtype=like.dtype)

    def zeros(self, shape: tuple[int, ...], like: np.ndarray) -> np.ndarray:
        return np.zeros(shape, dtype=like.dtype)

    def copy(self, array: np.ndarray) -> np.ndarray:
        """A C-ordered copy (in-place transforms reshape it, which must give views)."""
        return np.array(array, order="C", copy=True)

    def multiply(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.multiply(a, b, out=out)

    def subtract(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.subtract(a, b, out=out)

    def block_rows(self, n_rows: int, width: int, like: np.ndarray) -> int:
        """Rows to process together so one (rows x width) buffer stays in the CPU cache."""
        return max(1, _CACHE_BYTES // (max(width, 1) * like.itemsize))

    def relu(self, Z: np.ndarray) -> np.ndarray:
        return np.maximum(Z, 0, out=Z)

    def gelu(self, Z: np.ndarray) -> np.ndarray:
        return Z * 0.5 * (1.0 + special.erf(Z / math.sqrt(2.0)))

    def tanh(self, Z: np.ndarray) -> np.ndarray:
        return np.tanh(Z, out=Z)

    def sigmoid(self, Z: np.ndarray) -> np.ndarray:
        return special.expit(Z, out=Z)

    def cos(self, Z: np.ndarray) -> np.ndarray:
        return np.cos(Z, out=Z)

    def arc_cosine(self, C: np.ndarray) -> np.ndarray:
        """``sqrt(1 - c^2) + (pi - arccos c) c`` of cosines C (clipped in place): the shape of
        the ReLU layer's kernel (:mod:`forgetless.layers.kernel`)."""
        np.clip(C, -1.0, 1.0, out=C)
        return np.sqrt(1.0 - C * C) + (math.pi - np.arccos(C)) * C


class TorchOps:
    """The same namespace on a torch device; ``torch`` is passed in (it is an optional extra)."""

    name = "torch"

    def __init__(self, torch: Any, device: Any) -> None:
        self.torch, self.device = torch, torch.device(device)

    def _dtype(self, dtype: Any) -> Any:
        return self.torch.float32 if np.dtype(dtype) == np.float32 else self.torch.float64

    def asarray(self, array: Any, dtype: Any) -> Any:
        if isinstance(array, self.torch.Tensor):
            return array.to(device=self.device, dtype=self._dtype(dtype))
        with warnings.catch_warnings():
            # A read-only input (a memory map, a broadcast view) is fine: layers never write to
            # their input, only to arrays they create.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            # contiguous: torch takes no view with negative strides (X[::-1], np.flip)
            return self.torch.as_tensor(
                np.ascontiguousarray(array), dtype=self._dtype(dtype), device=self.device
            )

    def to_numpy(self, array: Any) -> np.ndarray:
        return array.cpu().numpy()

    def parameters(self, params: dict[str, np.ndarray], dtype: Any) -> dict[str, Any]:
        return {name: self.asarray(value, dtype) for name, value in params.items()}

    def empty(self, shape: tuple[int, ...], like: Any) -> Any:
        return self.torch.empty(shape, dtype=like.dtype, device=like.device)

    def zeros(self, shape: tuple[int, ...], like: Any) -> Any:
        return self.torch.zeros(shape, dtype=like.dtype, device=like.device)

    def copy(self, array: Any) -> Any:
        return array.clone(memory_format=self.torch.contiguous_format)

    def multiply(self, a: Any, b: Any, out: Any) -> Any:
        return self.torch.mul(a, b, out=out)

    def subtract(self, a: Any, b: Any, out: Any) -> Any:
        return self.torch.sub(a, b, out=out)

    def block_rows(self, n_rows: int, width: int, like: Any) -> int:
        """All rows at once: on a GPU small pieces leave the device idle between launches."""
        return max(1, n_rows)

    def relu(self, Z: Any) -> Any:
        return self.torch.relu_(Z)

    def gelu(self, Z: Any) -> Any:
        return self.torch.nn.functional.gelu(Z)  # the exact, erf-based form

    def tanh(self, Z: Any) -> Any:
        return Z.tanh_()

    def sigmoid(self, Z: Any) -> Any:
        return Z.sigmoid_()

    def cos(self, Z: Any) -> Any:
        return Z.cos_()

    def arc_cosine(self, C: Any) -> Any:
        C = C.clamp_(-1.0, 1.0)
        return self.torch.sqrt(1.0 - C * C) + (math.pi - self.torch.arccos(C)) * C


NUMPY = NumpyOps()


def fwht_(Z: Any, xp: Any = NUMPY, scratch: Any = None) -> Any:
    """Normalised Walsh-Hadamard transform of the rows of ``Z`` *in place* (C-ordered, length a
    power of two). ``scratch`` (flat, at least ``Z.size // 2`` elements) avoids an allocation
    per level. Each level computes ``(a + b, a - b)`` then the result is divided by sqrt(d):
    the same floating-point operations on every namespace and for any row blocking."""
    n, d = Z.shape
    if d & (d - 1):
        raise ValueError(f"fwht needs a power-of-two length, got {d}")
    if scratch is None:
        scratch = xp.empty((n * d // 2,), like=Z)
    h = 1
    while h < d:
        view = Z.reshape(n, d // (2 * h), 2, h)  # a view: Z is C-ordered
        first = scratch[: n * d // 2].reshape(n, d // (2 * h), h)
        first[...] = view[:, :, 0, :]
        view[:, :, 0, :] += view[:, :, 1, :]
        xp.subtract(first, view[:, :, 1, :], out=view[:, :, 1, :])
        h *= 2
    Z /= math.sqrt(d)
    return Z


def fwht(X: Any, xp: Any = NUMPY) -> Any:
    """Normalised fast Walsh-Hadamard transform along the last axis (length a power of two).

    The transform is orthogonal and its own inverse; ``X`` is not modified.
    """
    return fwht_(xp.copy(X), xp)
