"""The projection and the Gram accumulation on torch tensors (``ContinualClassifier(device=...)``).

The layer is the same one :mod:`forgetless.projection` builds from the seed (its weights are
moved to the device once); chunks of X are projected and their rank-k products accumulated on
the device into a float64 Gram matrix, which crosses to the host once per ``partial_fit`` call.
With ``compute_dtype="float32"`` the projection and the products run in float32 (TF32 on GPUs
that allow it) and are accumulated in float64. Heads and solves stay in float64 on the host.

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


class TorchBackend:
    """Projection and sums of one layer on one torch device."""

    def __init__(self, layer: Any, device: str, dtype: Any) -> None:
        torch = _torch()
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but no CUDA device is available here")
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
        for start, stop in self.layer.chunks(X.shape[0], chunk_size):
            H = self.transform(X[start:stop])
            gram += (H.T @ H).to(torch.float64)
            sums.index_add_(1, index[start:stop], H.T.to(torch.float64))
            if per_class_gram:  # rare and memory-heavy: reuse the host path per class
                Hn = H.to(torch.float64).cpu().numpy()
                for c in np.unique(y_index[start:stop]):
                    rows = Hn[y_index[start:stop] == c]
                    batch._class_grams[c] += np.triu(rows.T @ rows)
        batch._gram_upper = np.asfortranarray(np.triu(gram.cpu().numpy()))
        batch.class_sums = sums.cpu().numpy()
        batch.counts = np.bincount(y_index, minlength=n_classes).astype(np.int64)
        return batch

    def features(self, X: np.ndarray, chunk_size: int | None) -> Any:
        """Yield (start, stop, H as a float64 numpy chunk) for prediction and RLS."""
        for start, stop in self.layer.chunks(X.shape[0], chunk_size):
            yield start, stop, self.transform(X[start:stop]).to(self.torch.float64).cpu().numpy()
