"""torchvision classification models as encoders: ``torchvision:<model name>``.

The default ImageNet weights must already be in torch's hub cache (where torchvision puts
them) or be passed as a file; the classifier's last linear layer is replaced by identity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.encoders.base import (
    EncoderNotAvailableError,
    TorchEncoder,
    file_digest,
    missing_package,
)
from forgetless.encoders.images import ImagePreprocessing


def _strip_head(net: Any) -> int:
    """Replace the last ``nn.Linear`` with identity; return its input width (the feature dim)."""
    import torch

    last_name, last = None, None
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Linear):
            last_name, last = name, module
    if last is None or last_name is None:
        raise EncoderNotAvailableError("no linear classifier head found to strip")
    parent = net
    *path, leaf = last_name.split(".")
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, torch.nn.Identity())
    return int(last.in_features)


class TorchvisionEncoder(TorchEncoder):
    """Penultimate-layer features of a torchvision model with its weights' own transforms."""

    modality = "image"

    def __init__(
        self,
        model: str,
        weights: str | Path | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        super().__init__(device=device, threads=threads)
        try:
            import torch
            import torchvision
        except ImportError as exc:
            raise missing_package("torchvision (a build matching torch==2.13.0)") from exc
        try:
            enum = torchvision.models.get_model_weights(model)
        except (ValueError, KeyError) as exc:
            raise EncoderNotAvailableError(f"torchvision has no model {model!r}") from exc
        spec = enum.DEFAULT
        if weights is None:
            target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(spec.url)
            if not target.is_file():
                raise EncoderNotAvailableError(
                    f"torchvision weights for {model!r} are not on this machine. Download "
                    f"{spec.url} to {target} (or pass weights='/path/to/file.pth')"
                )
            weights = target
        self.weights_path = Path(weights)
        if not self.weights_path.is_file():
            raise EncoderNotAvailableError(f"weights file {self.weights_path} not found")
        net = torchvision.models.get_model(model, weights=None)
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        self.dim = _strip_head(net)
        self.model = net.eval().to(self.device)
        self._pin_weights()
        t = spec.transforms()
        crop = int(t.crop_size[0])
        resize = int(t.resize_size[0])
        self.prep = ImagePreprocessing(
            size=crop,
            resize="crop",
            crop_fraction=crop / resize,
            mean=tuple(255.0 * m for m in t.mean),  # type: ignore[arg-type]
            std=tuple(255.0 * s for s in t.std),  # type: ignore[arg-type]
            resample="bicubic" if "BICUBIC" in str(t.interpolation) else "bilinear",
        )
        self.name = f"torchvision:{model}"
        self.batch_size = batch_size

    def preprocessing(self) -> dict[str, Any]:
        return self.prep.as_dict()

    def weights_id(self) -> str:
        return file_digest(self.weights_path)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        import torch

        x = torch.from_numpy(self.prep(batch)).to(self.device)
        return self.model(x).reshape(len(batch), -1).float().cpu().numpy()
