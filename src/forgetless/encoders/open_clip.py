"""OpenCLIP models as encoders: ``open_clip:<arch>:<pretrained tag or weights file>``.

Images go through the visual tower (``modality="image"``, the default) or texts through the
text tower (``modality="text"``); both land in the shared embedding space.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from forgetless.encoders import located
from forgetless.encoders.base import (
    EncoderNotAvailableError,
    TorchEncoder,
    file_digest,
    missing_package,
    texts_of,
)
from forgetless.encoders.hub import cached_hf_file
from forgetless.encoders.images import ImagePreprocessing

WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEncoder(TorchEncoder):
    """CLIP embeddings from ``open_clip`` with weights already on this machine."""

    def __init__(
        self,
        arch: str,
        pretrained: str,
        modality: Literal["image", "text"] = "image",
        batch_size: int = 32,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        super().__init__(device=device, threads=threads)
        try:
            import open_clip
        except ImportError as exc:
            raise missing_package("open_clip_torch") from exc
        path = Path(pretrained).expanduser()
        if not path.is_file():
            cfg = open_clip.get_pretrained_cfg(arch, pretrained) or {}
            hub = str(cfg.get("hf_hub", "")).rstrip("/")
            found = cached_hf_file(hub, WEIGHT_FILES) if hub else None
            if found is None:
                raise EncoderNotAvailableError(
                    f"OpenCLIP weights {arch}/{pretrained} are not on this machine. On a machine "
                    f"with network run `huggingface-cli download {hub or '<hub id>'}`, or pass "
                    f"the weights file: open_clip:{arch}:/path/to/open_clip_model.safetensors"
                )
            path = found
        self.weights_path = path
        model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=str(path))
        self.model = model.eval().to(self.device)
        self._pin_weights()
        self.modality = modality
        self.tokenizer = open_clip.get_tokenizer(arch) if modality == "text" else None
        visual = model.visual
        size = visual.image_size
        size = int(size[0] if isinstance(size, (tuple, list)) else size)
        mean = getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self.prep = ImagePreprocessing(
            size=size,
            resize="crop",
            crop_fraction=1.0,
            mean=tuple(255.0 * m for m in mean),  # type: ignore[arg-type]
            std=tuple(255.0 * s for s in std),  # type: ignore[arg-type]
        )
        self.name = located(f"open_clip:{arch}:{pretrained}")  # a relative file: where it is
        self.batch_size = batch_size
        # Both towers end in the shared embedding; one blank image tells its width.
        import torch

        with torch.inference_mode():
            blank = torch.zeros(1, 3, size, size, device=self.device)
            self.dim = int(model.encode_image(blank).shape[-1])

    def preprocessing(self) -> dict[str, Any]:
        if self.modality == "text":
            return {"tower": "text"}
        return {**self.prep.as_dict(), "tower": "image"}

    def weights_id(self) -> str:
        return file_digest(self.weights_path)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        import torch

        if self.modality == "text":
            assert self.tokenizer is not None
            feats = self.model.encode_text(self.tokenizer(texts_of(batch)).to(self.device))
        else:
            feats = self.model.encode_image(torch.from_numpy(self.prep(batch)).to(self.device))
        return feats.float().cpu().numpy()
