"""Hugging Face ``transformers`` models as encoders: ``hf:<model id or folder>``.

Text models give the attention-masked mean of the last hidden states; vision models (those
whose folder has an image processor) give the pooled output, or the mean over patch tokens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from forgetless.encoders import located
from forgetless.encoders.base import TorchEncoder, missing_package, texts_of, tree_digest
from forgetless.encoders.hub import local_hf_model, quiet_loading
from forgetless.encoders.images import to_rgb


class HuggingFaceEncoder(TorchEncoder):
    """A local or cached ``transformers`` model (never downloaded at encode time)."""

    def __init__(
        self,
        model: str | Path,
        modality: Literal["text", "image"] | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        super().__init__(device=device, threads=threads)
        try:
            import transformers
        except ImportError as exc:
            raise missing_package("transformers", extra="text") from exc
        self.folder = local_hf_model(str(model), marker="config.json")
        has_image_processor = (self.folder / "preprocessor_config.json").is_file()
        self.modality = modality or ("image" if has_image_processor else "text")
        if self.modality == "image":
            self.processor = transformers.AutoImageProcessor.from_pretrained(
                str(self.folder), local_files_only=True
            )
        else:
            self.processor = transformers.AutoTokenizer.from_pretrained(
                str(self.folder), local_files_only=True
            )
        with quiet_loading():
            net = transformers.AutoModel.from_pretrained(str(self.folder), local_files_only=True)
        self.model = net.eval().to(self.device)
        self._pin_weights()
        config = json.loads((self.folder / "config.json").read_text())
        self.dim = config.get("hidden_size") or config.get("hidden_sizes", [None])[-1]
        self.name = located(f"hf:{model}")  # a relative folder: where it is
        self.max_length = max_length
        self.batch_size = batch_size

    def preprocessing(self) -> dict[str, Any]:
        if self.modality == "text":
            return {"max_length": self.max_length, "pooling": "mean"}
        decode = {} if self.decode == 1 else {"decode": self.decode}
        return {"processor": self.processor.to_dict(), "pooling": "pooler_or_mean", **decode}

    def weights_id(self) -> str:
        return tree_digest(self.folder)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        if self.modality == "text":
            enc = self.processor(
                texts_of(batch),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            pixels = self.processor(
                [to_rgb(im, decode=self.decode) for im in batch], return_tensors="pt"
            )
            out = self.model(**pixels.to(self.device))
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                pooled = out.last_hidden_state.mean(1)
            pooled = pooled.reshape(len(batch), -1)
        return pooled.float().cpu().numpy()
