"""timm image models as encoders: ``timm:<model name>`` with weights already on this machine."""

from __future__ import annotations

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
from forgetless.encoders.hub import cached_hf_file
from forgetless.encoders.images import ImagePreprocessing

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


class TimmEncoder(TorchEncoder):
    """Pooled pre-logits features of a timm model, with its own evaluation preprocessing.

    ``weights`` is a local ``.safetensors``/``.pth`` file; without it the model's hub weights
    must already be in the Hugging Face cache.
    """

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
            import timm
        except ImportError as exc:
            raise missing_package("timm") from exc
        if weights is None:
            cfg = timm.models.get_pretrained_cfg(model)
            hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
            found = cached_hf_file(hub_id, WEIGHT_FILES) if hub_id else None
            if found is None:
                raise EncoderNotAvailableError(
                    f"timm weights for {model!r} are not on this machine. On a machine with "
                    f"network run `huggingface-cli download {hub_id or model}`, or pass "
                    "weights='/path/to/weights.safetensors'"
                )
            weights = found
        self.weights_path = Path(weights)
        if not self.weights_path.is_file():
            raise EncoderNotAvailableError(f"weights file {self.weights_path} not found")
        net = timm.create_model(
            model,
            pretrained=True,
            num_classes=0,
            pretrained_cfg_overlay={"file": str(self.weights_path)},
        )
        self.model = net.eval().to(self.device)
        self._pin_weights()
        data = timm.data.resolve_data_config({}, model=net)
        _, height, _ = data["input_size"]
        self.prep = ImagePreprocessing(
            size=int(height),
            resize="crop",
            crop_fraction=float(data.get("crop_pct", 0.875)),
            mean=tuple(255.0 * m for m in data["mean"]),  # type: ignore[arg-type]
            std=tuple(255.0 * s for s in data["std"]),  # type: ignore[arg-type]
            resample="bicubic" if data.get("interpolation") == "bicubic" else "bilinear",
        )
        self.name = f"timm:{model}"
        self.dim = int(net.num_features)
        self.batch_size = batch_size

    def preprocessing(self) -> dict[str, Any]:
        return self.prep.as_dict()

    def weights_id(self) -> str:
        return file_digest(self.weights_path)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        import torch

        x = torch.from_numpy(self.prep(batch)).to(self.device)
        return self.model(x).float().cpu().numpy()
