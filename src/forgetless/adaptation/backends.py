"""Backends: how to split an encoder into a frozen front (run once) and a trained tail.

One per encoder family: EfficientNet-Lite0 (its last stages, or their norms' scale and
shift) and BERT-like sentence transformers (their last layers, or LoRA updates). Also the
EfficientNet tail that an adapted encoder with ``keep_plain`` runs twice on one shared front.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from forgetless.adaptation.recipes import CAN_ADAPT, AdaptationNotSupportedError, family_of
from forgetless.adaptation.views import affine_draws, apply_affine
from forgetless.encoders.base import Encoder, progress_bar
from forgetless.encoders.sentence import tokenize, transformer_network


class Backend(ABC):
    """One encoder family: cached front outputs, the tail that turns them into features, and
    the parameters a method trains. Works on its own copy of the encoder's network."""

    def __init__(self, encoder: Encoder, method: str) -> None:
        self.encoder = encoder  # a private deep copy
        self.method = method

    @abstractmethod
    def module(self) -> Any:
        """The torch module whose state dict the adapted tensors are part of."""

    @abstractmethod
    def front(
        self, inputs: Sequence[Any], progress: bool | None, views: int = 1, seed: int = 0
    ) -> list[Any]:
        """Per-sample outputs of the frozen front (computed once, without gradients); with
        ``views`` > 1, those of each input and of views - 1 moved copies (view after view)."""

    @abstractmethod
    def tail(self, items: list[Any]) -> Any:
        """Features ``(len(items), dim)`` of a batch of front outputs, through the trained part."""

    @abstractmethod
    def trainable(self) -> list[Any]:
        """Switch on the method's parameters (adding any it needs); return them."""

    @abstractmethod
    def train_mode(self, training: bool) -> None:
        """Put the trained part in training or evaluation mode."""

    def finish(self) -> None:
        """Fold anything the method added back into the network's own weights."""
        return None

    def refresh_norms(self, inputs: Sequence[Any], progress: bool | None) -> None:
        """Replace the batch norms' running statistics by the first task's (AdaBN)."""
        raise AdaptationNotSupportedError(
            f"refresh_norms needs batch norms, and {self.encoder.name!r} has none; "
            "it applies to efficientnet-lite0"
        )


class _EfficientNetBackend(Backend):
    """EfficientNet-Lite0: the frozen front is the stem and the first blocks.

    ``last-stages`` trains every weight of blocks 8-15 (the last three stages) and the head
    convolution, ``last-stage`` those of blocks 11-15 and the head convolution; ``ssf``
    trains only the scale and shift of their batch norms, which is SSF's scale-and-shift after
    each normalisation, folded into the norms' own affine weights (nothing is added to the
    network); ``norms`` trains nothing and only refreshes the running statistics of every
    batch norm on the first task's inputs (AdaBN), which any method can do first. Batch norms
    keep their running statistics (evaluation mode) while training: the cached front outputs
    arrive in small class-sorted batches whose statistics would differ from the whole data's,
    and a frozen norm is an affine map, so the features do not depend on how a batch is
    composed.
    """

    # block where training starts
    first_trained = {"ssf": 8, "last-stages": 8, "last-stage": 11, "norms": 16}
    bn_train = False  # batch statistics while training (measured worse; kept for benchmarks)

    def module(self) -> Any:
        return self.encoder.model

    def _parts(self) -> list[Any]:
        m = self.encoder.model
        return [*m._blocks[self.first_trained[self.method] :], m._conv_head, m._bn1]

    def front(
        self, inputs: Sequence[Any], progress: bool | None, views: int = 1, seed: int = 0
    ) -> list[Any]:
        import torch

        m = self.encoder.model.eval()
        start = self.first_trained[self.method]
        out = []
        size = self.encoder.batch_size
        generator = torch.Generator().manual_seed(seed)
        total = views * len(inputs)
        with torch.no_grad(), progress_bar(total, "caching inputs", progress, "img") as bar:
            for view in range(views):
                # each image's move, drawn in blocks of VIEW_DRAWS whatever the batch size
                moves = affine_draws(len(inputs), generator) if view else None
                for begin in range(0, len(inputs), size):
                    x = self.encoder._tensor(inputs[begin : begin + size])
                    if moves is not None:
                        x = apply_affine(x, *(part[begin : begin + len(x)] for part in moves))
                    x = m._swish(m._bn0(m._conv_stem(x)))
                    for block in m._blocks[:start]:
                        x = block(x)
                    out.extend(x.unbind(0))
                    bar.update(len(x))
        return out

    def tail(self, items: list[Any]) -> Any:
        import torch

        m = self.encoder.model
        start = self.first_trained[self.method]
        x = torch.stack(items)
        rate = m._global_params.drop_connect_rate or 0.0
        for idx in range(start, len(m._blocks)):
            # stochastic depth as in the model's own training (inactive in evaluation mode)
            x = m._blocks[idx](x, drop_connect_rate=rate * idx / len(m._blocks))
        x = m._swish(m._bn1(m._conv_head(x)))
        return x.mean(dim=(2, 3))

    def trainable(self) -> list[Any]:
        import torch

        params: list[Any] = []
        if self.method == "norms":
            return params
        for part in self._parts():
            for module in part.modules():
                is_norm = isinstance(module, torch.nn.BatchNorm2d)
                for p in module.parameters(recurse=False):
                    if self.method in ("last-stage", "last-stages") or is_norm:
                        p.requires_grad_(True)
                        params.append(p)
        return params

    def refresh_norms(self, inputs: Sequence[Any], progress: bool | None) -> None:
        import torch

        m = self.encoder.model.eval()
        norms = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
        momenta = [mod.momentum for mod in norms]
        for mod in norms:  # a plain average over the batches (momentum None), batch statistics
            mod.reset_running_stats()
            mod.momentum = None
            mod.train()
        # equal batches, as the plain average weighs every batch alike
        size = math.ceil(len(inputs) / math.ceil(len(inputs) / self.encoder.batch_size))
        try:
            with (
                torch.no_grad(),
                progress_bar(len(inputs), "refreshing norms", progress, "img") as bar,
            ):
                for begin in range(0, len(inputs), size):
                    m.extract_features(self.encoder._tensor(inputs[begin : begin + size]))
                    bar.update(min(size, len(inputs) - begin))
        finally:
            for mod, momentum in zip(norms, momenta, strict=True):
                mod.momentum = momentum
            m.eval()

    def train_mode(self, training: bool) -> None:
        import torch

        for part in self._parts():
            part.train(training)
            for module in part.modules():  # frozen statistics: see the class docstring
                if isinstance(module, torch.nn.BatchNorm2d) and not self.bn_train:
                    module.eval()


class _LoRA:
    """A low-rank update ``B A`` beside a frozen linear layer; merged into its weight at the end.

    Built as a forward hook, so the network's modules (and state-dict names) never change.
    """

    def __init__(self, linear: Any, rank: int, alpha: float, generator: Any) -> None:
        import torch

        self.linear = linear
        self.scale = alpha / rank
        bound = 1.0 / math.sqrt(linear.in_features)
        a = (torch.rand(rank, linear.in_features, generator=generator) * 2 - 1) * bound
        self.A = torch.nn.Parameter(a)
        self.B = torch.nn.Parameter(torch.zeros(linear.out_features, rank))
        self.handle = linear.register_forward_hook(self._hook)

    def _hook(self, module: Any, args: tuple[Any, ...], output: Any) -> Any:
        return output + (args[0] @ self.A.T @ self.B.T) * self.scale

    def merge(self) -> None:
        import torch

        self.handle.remove()
        with torch.no_grad():
            self.linear.weight += (self.B @ self.A) * self.scale


class _TransformerBackend(Backend):
    """A sentence-transformers model over a BERT-like encoder: the frozen front is the
    embeddings and the layers before the first trained one (the embeddings alone for
    ``lora-all``); hidden states entering the trained layers are kept per text (unpadded) and
    re-padded per batch. Pooling and normalisation are the model's own modules.

    ``lora`` adds rank-8 LoRA updates to the attention's query and value of the last two layers
    (merged into their weights afterwards), ``lora-all`` the same in every layer (each layer's
    output is read out with ``readout="layers"``); ``last-layers`` trains every weight of the
    last layer.
    """

    trained_layers = {"lora": 2, "lora-all": None, "last-layers": 1}  # None: every layer
    rank, alpha = 8, 16.0

    def __init__(self, encoder: Encoder, method: str) -> None:
        super().__init__(encoder, method)
        bert = transformer_network(encoder.model)
        layers = getattr(getattr(bert, "encoder", None), "layer", None)
        if layers is None or not hasattr(layers[0], "attention"):
            raise AdaptationNotSupportedError(
                f"encoder {encoder.name!r} is not a BERT-like transformer (no encoder.layer "
                f"with attention); adaptable: {CAN_ADAPT}"
            )
        self.bert, self.layers = bert, layers
        trained = self.trained_layers[method]
        self.start = 0 if trained is None else max(0, len(layers) - trained)
        self.lora: list[_LoRA] = []

    def module(self) -> Any:
        return self.bert

    def _tokenize(self, texts: list[str]) -> dict[str, Any]:
        return tokenize(self.encoder.model, texts)

    def front(
        self, inputs: Sequence[Any], progress: bool | None, views: int = 1, seed: int = 0
    ) -> list[Any]:
        import torch

        if views != 1:
            raise AdaptationNotSupportedError("text inputs have no moved copies: use views = 1")
        st = self.encoder.model.eval()
        captured: list[Any] = []

        def grab(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            captured.append(args[0] if args else kwargs["hidden_states"])

        handle = self.layers[self.start].register_forward_pre_hook(grab, with_kwargs=True)
        out = []
        try:
            with (
                torch.no_grad(),
                progress_bar(len(inputs), "caching inputs", progress, "text") as bar,
            ):
                for begin in range(0, len(inputs), 32):
                    texts = [str(t) for t in inputs[begin : begin + 32]]
                    features = self._tokenize(texts)
                    features = {
                        k: v.to(self.encoder.device) if hasattr(v, "to") else v
                        for k, v in features.items()
                    }
                    captured.clear()
                    st[0](features)
                    hidden, mask = captured[0], features["attention_mask"]
                    for row in range(len(texts)):
                        length = int(mask[row].sum())
                        out.append(hidden[row, :length].clone())
                    bar.update(len(texts))
        finally:
            handle.remove()
        return out

    def tail(self, items: list[Any]) -> Any:
        import torch

        longest = max(len(h) for h in items)
        dim = items[0].shape[1]
        hidden = items[0].new_zeros((len(items), longest, dim))
        mask = torch.zeros((len(items), longest), dtype=torch.long, device=hidden.device)
        for row, h in enumerate(items):
            hidden[row, : len(h)] = h
            mask[row, : len(h)] = 1
        # The classic additive mask: 0 where attended, the dtype's minimum at padding.
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for layer in self.layers[self.start :]:
            hidden = layer(hidden, attention_mask=additive)
            if isinstance(hidden, tuple):  # older transformers return (hidden, ...)
                hidden = hidden[0]
        features: dict[str, Any] = {"token_embeddings": hidden, "attention_mask": mask}
        for module in list(self.encoder.model)[1:]:  # pooling, normalisation, ...
            features = module(features)
        emb = features["sentence_embedding"]
        if getattr(self.encoder, "normalize", False):
            emb = torch.nn.functional.normalize(emb, dim=1)
        return emb

    def trainable(self) -> list[Any]:
        import torch

        if self.method == "last-layers":
            params = [p for layer in self.layers[self.start :] for p in layer.parameters()]
            for p in params:
                p.requires_grad_(True)
            return params
        generator = torch.Generator().manual_seed(int(torch.initial_seed()) % 2**63)
        params = []
        for layer in self.layers[self.start :]:
            attention = layer.attention.self
            for linear in (attention.query, attention.value):
                lora = _LoRA(linear, self.rank, self.alpha, generator)
                self.lora.append(lora)
                params += [lora.A, lora.B]
        return params

    def train_mode(self, training: bool) -> None:
        for layer in self.layers[self.start :]:
            layer.train(training)  # dropout while training

    def finish(self) -> None:
        for lora in self.lora:
            lora.merge()
        self.lora = []


def backend_for(encoder: Encoder, method: str) -> Backend:
    family = family_of(encoder)
    cls = _EfficientNetBackend if family == "efficientnet" else _TransformerBackend
    return cls(encoder, method)


def effnet_tail(model: Any, x: Any, start: int) -> Any:
    """EfficientNet blocks ``start:`` and the head on front outputs ``x``, pooled; the same
    operations as the model's own ``extract_features`` (stochastic depth is off: eval mode)."""
    rate = model._global_params.drop_connect_rate
    for idx in range(start, len(model._blocks)):
        scaled = rate * float(idx) / len(model._blocks) if rate else rate
        x = model._blocks[idx](x, drop_connect_rate=scaled)
    return model._swish(model._bn1(model._conv_head(x))).mean(dim=(2, 3))


def shared_front(base: Encoder, tensors: dict[str, np.ndarray]) -> int:
    """How many EfficientNet blocks come before the first one ``tensors`` change (0: the stem
    changes, or another family, whose plain and adapted networks then run apart)."""
    if family_of(base) != "efficientnet" or base.last_only() is not base:
        return 0  # (the shared tail pools the last map only)
    blocks = len(base.model._blocks)
    first = blocks
    for name in tensors:
        parts = name.split(".")
        if parts[0] == "_blocks":
            first = min(first, int(parts[1]))
        elif parts[0] not in ("_conv_head", "_bn1", "_fc"):
            return 0
    return first


def backend_module(encoder: Encoder) -> Any:
    """The torch module the adapted tensors' names refer to (as the backends define it)."""
    if family_of(encoder) == "efficientnet":
        return encoder.model
    return transformer_network(encoder.model)
