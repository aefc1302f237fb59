"""First-session adaptation: tune a small part of a pretrained encoder once, on the first task only.

The built-in encoders were trained on other data (ImageNet photos, sentence pairs) than the
tasks they serve here (glyphs, clothing, dictionary glosses). A short, parameter-efficient
adaptation on the first task's data (RanPAC's "phase 1", APER) moves the features towards the
domain; the encoder is then frozen for every later task, so the analytic learners stay exact
(an adapted encoder is just another frozen encoder). Later tasks never adapt it again.

Only part of the network is trained (its last blocks or layers; with ``lora-all``, low-rank
updates of every layer): the frozen front runs once over the first task's inputs and its
outputs (the activations entering the trained part) are kept, so an epoch runs only the trained
part, which keeps adaptation CPU-friendly. A temporary linear head is trained
with cross-entropy beside it (``last-stages``, the image default, adds a supervised
contrastive term, which pulls each class's features together in every direction: what later
classes' learners read; any method that trains can, ``contrastive``), with early stopping on a
stratified validation fifth; the head is then discarded.

Two options apply to any method: ``refresh_norms`` first replaces the running statistics of
every batch norm by the first task's (AdaBN; the ``norms`` method does only that), and
``keep_plain`` returns the plain encoder's features beside the adapted ones (APER's
aggregation; width ``2 * dim``), so classes unlike the first task's keep the generic features.
For images the default, ``last-stages``, trains the last three stages on each first-task image
and seven moved copies of it (``views``), which let it train longer before it overfits a few
hundred images, with the contrastive term, and keeps the plain features beside (measured best
on held-out rows of the training data, benchmarks/adaptation.py ``--validation``); the other
recipes keep neither option on.

Training always serves the last map or layer (the temporary head reads the default readout's
features); an encoder built with another readout (``readout="stages"`` or ``"layers"``) then
reads that out of the adapted network, earlier stages or layers included.

>>> from forgetless.encoders import load_encoder
>>> adapt_encoder(load_encoder("raw"), [np.zeros((2, 2))] * 2, [0, 1])
Traceback (most recent call last):
...
forgetless.adaptation.AdaptationNotSupportedError: encoder 'raw' cannot be adapted: ...
>>> sorted(adaptable_methods("efficientnet-lite0"))
['last-stage', 'last-stages', 'norms', 'ssf']
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import secrets
import stat
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.encoders import located
from forgetless.encoders.base import Encoder, progress_bar
from forgetless.encoders.sentence import tokenize, transformer_network
from forgetless.persistence import file_sha256, folder_lock, make_folder, sync_folder
from forgetless.persistence import write_json_atomic as _write_json
from forgetless.validation import check_labels

FORMAT = 1
VIEW_BUDGET = 3000  # at most this many cached training copies (inputs x views) in all
# Fewer first-task classes than this train no weight: a classifier of two classes learns one
# decision, and tuning the encoder to it made later classes worse (docs/adaptation.md:
# Fashion-MNIST's two-class first task, validation rows).
MIN_CLASSES = 3
# The adapted encoder is kept only when the validation rows show it beats the unchanged one
# beyond chance: a one-sided paired test of the per-row losses at this level, the choice of the
# best epoch among those tried on the same rows included (_paired_evidence). On a small first
# task a slightly lower validation loss is noise, and an encoder tuned on noise served later
# classes worse (openclipart, 123-183 first-task images).
SIGNIFICANCE = 0.05
PERMUTATIONS = 9999  # random sign flips of the evidence's permutation test
_EXHAUSTIVE_ROWS = 12  # up to this many held-out rows, every flip instead (2^12)
# The image default's contrastive weight (Recipe.contrastive), chosen on held-out training rows
# (benchmarks/adaptation.py --validation, latin-glyphs, seeds 0-2; docs/adaptation.md).
# With it, the plain features beside the adapted ones (keep_plain) led without
# them for the ridge, NCM and LDA, on held-out rows and on the test split, so last-stages
# keeps them too.
CONTRASTIVE = 2.0
FORMAT_KEEP_PLAIN = 2  # the files of an encoder with keep_plain (format 1 has no such key)
METADATA = "adapter.json"


class AdaptationNotSupportedError(ValueError):
    """This encoder (or this method for it) cannot be adapted; the message says what can."""


class AdaptedWeightsError(ValueError):
    """A saved adapted encoder is missing, damaged, altered, or belongs to other base weights."""


@dataclass(frozen=True)
class Recipe:
    """How one method trains: what is trained, for how long, and how fast."""

    method: str
    epochs: int
    learning_rate: float
    batch_size: int = 32
    weight_decay: float = 1e-4
    patience: int = 3  # epochs without a better validation loss before stopping
    label_smoothing: float = 0.1
    # Refresh every batch norm's running statistics on the first task's inputs before training
    # (AdaBN: no gradient step; batch-norm networks only).
    refresh_norms: bool = False
    # Encode as [plain features, adapted features] (width 2 d), as APER does: classes unlike
    # the first task's keep the generic features.
    keep_plain: bool = False
    # Training copies of each input: the input itself and views - 1 randomly moved ones
    # (:func:`random_affine`; images only), cached through the frozen front once, at most
    # VIEW_BUDGET copies in all (fewer views for larger first tasks).
    views: int = 1
    # Weight of a supervised contrastive term beside the cross-entropy
    # (:func:`supervised_contrastive`, on the features the temporary head reads): it pulls
    # each class's features together and pushes the others' away, in every direction, where
    # cross-entropy stops once the first task's few classes are told apart.
    contrastive: float = 0.0
    temperature: float = 0.1  # of the contrastive term's cosine similarities


# encoder family -> method -> its default recipe (the first method is the family's default).
# The defaults were measured with benchmarks/adaptation.py (docs/adaptation.md);
# the image default was chosen with its --validation mode (held-out training data, not test).
_RECIPES: dict[str, dict[str, Recipe]] = {
    "efficientnet": {
        "last-stages": Recipe(
            "last-stages",
            epochs=10,
            learning_rate=3e-4,
            views=8,
            contrastive=CONTRASTIVE,
            keep_plain=True,
        ),
        "last-stage": Recipe("last-stage", epochs=6, learning_rate=1e-4),
        "ssf": Recipe("ssf", epochs=10, learning_rate=3e-3),
        # batch-norm statistics only: no weight is trained (epochs=0)
        "norms": Recipe("norms", epochs=0, learning_rate=0.0, refresh_norms=True),
    },
    "transformer": {
        "lora": Recipe("lora", epochs=10, learning_rate=1e-3),
        # no label smoothing: a first task of a few separable classes is learned at once, and
        # smoothed targets then stop the training signal (held-out rows, six seeds)
        "lora-all": Recipe("lora-all", epochs=10, learning_rate=3e-3, label_smoothing=0.0),
        "last-layers": Recipe("last-layers", epochs=10, learning_rate=1e-4),
    },
}
_CAN_ADAPT = (
    "efficientnet-lite0 (methods: last-stages, last-stage, ssf, norms) and "
    "sentence-transformers encoders with a BERT-like transformer such as minilm (methods: lora, "
    "lora-all, last-layers)"
)


def _family(encoder: Any) -> str | None:
    """Which backend adapts ``encoder`` (an object or a registry name), or None."""
    name = encoder if isinstance(encoder, str) else type(encoder).__name__
    if name in ("efficientnet-lite0", "EfficientNetLite0"):
        return "efficientnet"
    if name in ("minilm", "SentenceTransformerEncoder") or str(name).startswith(
        "sentence-transformers:"
    ):
        return "transformer"
    return None


def adaptable_methods(encoder: Any, readout: str | None = None) -> dict[str, Recipe]:
    """The methods that can adapt ``encoder`` (an encoder or a registry name), default first.

    The default can depend on what the encoder reads out (its ``readout``; for a registry
    name, ``readout`` or the name's default): MiniLM reading every layer (``"layers"``, its
    default) trains every layer (``lora-all``), reading the last layer only the last two
    (``lora``), as measured best for each (``benchmarks/adaptation.py``).

    Raises :class:`AdaptationNotSupportedError` for an encoder that cannot be adapted.

    >>> next(iter(adaptable_methods("minilm"))), next(iter(adaptable_methods("minilm", "last")))
    ('lora-all', 'lora')
    """
    if isinstance(encoder, AdaptedEncoder):
        raise AdaptationNotSupportedError(
            f"encoder {encoder.name!r} is already adapted ({encoder.method} on its first session); "
            "an encoder is adapted once, before any later session: adapt the base encoder "
            "instead, or use this one frozen as it is"
        )
    family = _family(encoder)
    if family is None:
        name = encoder if isinstance(encoder, str) else getattr(encoder, "name", encoder)
        raise AdaptationNotSupportedError(
            f"encoder {name!r} cannot be adapted: it has no trainable torch network this module "
            f"knows; adaptable: {_CAN_ADAPT}"
        )
    recipes = dict(_RECIPES[family])
    if family == "transformer":
        if isinstance(encoder, str):
            from forgetless.encoders import READOUTS

            readout = readout or READOUTS.get(encoder, ("last",))[0]
        else:
            readout = getattr(encoder, "readout", "last")
        if readout not in ("last", "layers"):
            raise ValueError(f"readout must be one of 'last', 'layers', got {readout!r}")
        default = "lora-all" if readout == "layers" else "lora"
        recipes = {default: recipes[default], **recipes}
    return recipes


# --------------------------------------------------------------------------------------------
# Backends: how to split an encoder into a frozen front (run once) and a trained tail.


class _Backend(ABC):
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


class _EfficientNetBackend(_Backend):
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


VIEW_DRAWS = 64
"""Moved copies draw their moves in blocks of this many images (the encoder's default batch
size, which drew them when each batch drew its own), so they do not depend on ``batch_size``."""


def random_affine(
    images: Any,
    generator: Any,
    rotation: float = 15.0,
    scale: float = 0.1,
    shift: float = 0.08,
) -> Any:
    """Each image of a batch ``(n, channels, height, width)`` rotated by up to ``rotation``
    degrees, scaled by up to ``scale`` and shifted by up to ``shift`` of its size, each drawn
    uniformly from ``generator``; the border's pixels fill what moves in. A few hundred
    first-task images train the last stage of a network for more epochs before it overfits
    when each is seen in several such copies (no flips: they change glyphs and text).

    >>> import torch
    >>> x = torch.rand(4, 3, 16, 16)
    >>> same = random_affine(x, torch.Generator().manual_seed(0), rotation=0, scale=0, shift=0)
    >>> bool(torch.allclose(same, x, atol=1e-5))
    True
    >>> a = random_affine(x, torch.Generator().manual_seed(1))
    >>> bool(torch.equal(a, random_affine(x, torch.Generator().manual_seed(1))))
    True
    """
    draws = _affine_block(images.shape[0], generator, images.dtype, rotation, scale, shift)
    return apply_affine(images, *draws)


def affine_draws(n: int, generator: Any) -> tuple[Any, Any, Any]:
    """(angle, zoom, offset) of :func:`random_affine` for ``n`` images, drawn in blocks of
    :data:`VIEW_DRAWS`: image i's move does not depend on how the images are batched."""
    import torch

    blocks = [
        _affine_block(min(VIEW_DRAWS, n - start), generator, torch.float32)
        for start in range(0, n, VIEW_DRAWS)
    ]
    return tuple(torch.cat(parts) for parts in zip(*blocks, strict=True))  # type: ignore[return-value]


def _affine_block(
    n: int,
    generator: Any,
    dtype: Any,
    rotation: float = 15.0,
    scale: float = 0.1,
    shift: float = 0.08,
) -> tuple[Any, Any, Any]:
    import torch

    def uniform(*shape: int) -> Any:
        return torch.rand(*shape, generator=generator, dtype=dtype) * 2.0 - 1.0

    angle = uniform(n) * (rotation * math.pi / 180.0)
    zoom = 1.0 + uniform(n) * scale
    offset = uniform(n, 2) * (2.0 * shift)  # grid coordinates span 2 per image side
    return angle, zoom, offset


def apply_affine(images: Any, angle: Any, zoom: Any, offset: Any) -> Any:
    """``images`` moved by per-image rotation ``angle`` (radians), ``zoom`` and ``offset``."""
    import torch

    n = images.shape[0]
    angle, zoom, offset = (t.to(images.dtype) for t in (angle, zoom, offset))
    theta = torch.zeros(n, 2, 3, dtype=images.dtype)
    theta[:, 0, 0] = torch.cos(angle) / zoom
    theta[:, 0, 1] = -torch.sin(angle) / zoom
    theta[:, 1, 0] = torch.sin(angle) / zoom
    theta[:, 1, 1] = torch.cos(angle) / zoom
    theta[:, :, 2] = offset
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(
        images, grid.to(images.device), padding_mode="border", align_corners=False
    )


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


class _TransformerBackend(_Backend):
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
                f"with attention); adaptable: {_CAN_ADAPT}"
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


def _backend(encoder: Encoder, method: str) -> _Backend:
    family = _family(encoder)
    cls = _EfficientNetBackend if family == "efficientnet" else _TransformerBackend
    return cls(encoder, method)


# --------------------------------------------------------------------------------------------
# Tensors: hashing, files.


def tensors_digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``tensors`` (in name order).

    >>> tensors_digest({"a": np.zeros(2, np.float32)}) == tensors_digest({"a": np.zeros(2)})
    False
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(f"{len(name)}:{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def info_digest(info: dict[str, Any]) -> str:
    """sha256 of ``info`` as adapter.json holds it (its JSON text, keys sorted): the training
    record a save writes beside the tensors, so an edit to it is caught on load like an edit
    to them.

    >>> info_digest({"epochs": 10, "best": (3,)}) == info_digest({"best": [3], "epochs": 10})
    True
    """
    stored = json.loads(json.dumps(info))  # what a save writes and a load reads back
    return hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()


def _has_safetensors() -> bool:
    import importlib.util

    return importlib.util.find_spec("safetensors") is not None


def _write_tensors(path: Path, tensors: dict[str, np.ndarray], fmt: str) -> None:
    """Write to a new temporary name (random, created exclusively: never through a planted
    link, never shared by two savers), then rename: a crash leaves no half-written file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    # adapter.json's mode (0o666 less the umask): safetensors' save_file would replace the
    # file by one readable by its owner only, and others could read the JSON but not load it
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if fmt == "safetensors":
                from safetensors.numpy import save

                f.write(save(arrays))
            else:
                np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def _read_tensors(path: Path, fmt: str) -> dict[str, np.ndarray]:
    if fmt == "safetensors":
        from safetensors.numpy import load_file

        return dict(load_file(str(path)))
    import zipfile

    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:  # np.savez stores members as they are
        for member in archive.infolist():
            if member.compress_type != zipfile.ZIP_STORED or member.file_size > size:
                raise ValueError(
                    f"member {member.filename!r} is compressed or larger than the file itself "
                    "(this writer stores tensors as they are)"
                )
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


_SAVED_OPTIONS = {"image_size", "resize", "readout", "normalize", "name"}  # _registry_spec's


def _registry_spec(encoder: Encoder) -> tuple[str, dict[str, Any]]:
    """The registry name and options that rebuild ``encoder`` (what decides its features)."""
    if _family(encoder) == "efficientnet":
        prep = encoder.prep
        options: dict[str, Any] = {"image_size": prep.size, "resize": prep.resize}
    else:
        options = {"normalize": bool(getattr(encoder, "normalize", False))}
    if encoder.readout is not None:  # files written before readouts name none: "head"/"last"
        options["readout"] = encoder.readout
    name = encoder.name
    if _family(encoder) == "transformer" and not (
        name == "minilm" or name.startswith("sentence-transformers:")
    ):  # a name of the caller's own, which the registry does not know: its folder, that name
        options["name"] = name
        name = f"sentence-transformers:{Path(encoder.folder).absolute()}"
    elif located(name) != name:  # a relative folder: found from anywhere, under its own name
        options["name"] = name
        name = located(name)
    return name, options


# --------------------------------------------------------------------------------------------
# The adapted encoder.


class AdaptedEncoder(Encoder):
    """A base encoder with adapted tensors in place of some of its weights; frozen.

    Encodes like its base (same preprocessing, width, modality); with ``keep_plain`` it
    returns ``[plain features, adapted features]`` (width ``2 * base.dim``; for EfficientNet the
    shared frozen front runs once per batch and both tails run on it). Its fingerprint covers
    the base encoder's fingerprint, the method, ``keep_plain`` and a sha256 of the adapted
    tensors, so the feature cache never mixes adapted and plain features, nor two adaptations.
    """

    adapted = True

    def __init__(
        self,
        base: Encoder,
        method: str,
        tensors: dict[str, np.ndarray],
        info: dict[str, Any] | None = None,
        *,
        keep_plain: bool = False,
    ) -> None:
        if not isinstance(base, Encoder):
            raise TypeError(f"base must be an encoder (load_encoder), got {type(base).__name__}")
        recipes = adaptable_methods(base)  # refuses raw, ONNX and adapted encoders
        _check_method(method, recipes, base.name)
        if not isinstance(keep_plain, (bool, np.bool_)):
            raise ValueError(f"keep_plain must be True or False, got {keep_plain!r}")
        if info is not None and not isinstance(info, dict):
            raise TypeError(f"info must be a dict (the training record), got {type(info).__name__}")
        try:  # as a save writes it and a load reads it back: a bad record fails here, not there
            self.info = json.loads(json.dumps(info or {}))
        except (TypeError, ValueError, RecursionError) as err:
            raise ValueError(
                f"info must hold only JSON values (Python numbers, texts, lists, dicts): {err}"
            ) from None
        self.base_name = base.name
        self.base_fingerprint = base.fingerprint()
        self.base_spec = _registry_spec(base)
        self.method = method
        self.tensors = {k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}
        self.tensors_sha256 = tensors_digest(self.tensors)
        self.keep_plain = bool(keep_plain)
        self._inner = copy.deepcopy(base)
        _apply(_backend_module(self._inner), self.tensors, self.base_name)
        # with keep_plain: the unchanged network, and the first block the tensors change
        self._plain = copy.deepcopy(base) if self.keep_plain else None
        self._shared = _shared_front(base, self.tensors) if self.keep_plain else 0
        self.name = f"{base.name}+{method}" + ("+plain" if self.keep_plain else "")
        self.dim = None if base.dim is None else base.dim * (2 if self.keep_plain else 1)
        self.modality = base.modality
        self.batch_size = base.batch_size

    def preprocessing(self) -> dict[str, Any]:
        return self._inner.preprocessing()

    def weights_id(self) -> str:
        payload: dict[str, Any] = {
            "base": self.base_fingerprint,
            "method": self.method,
            "tensors": self.tensors_sha256,
        }
        if self.keep_plain:  # absent otherwise: earlier adapters keep their fingerprints
            payload["keep_plain"] = True
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "adapted": {
                "base": self.base_name,
                "base_fingerprint": self.base_fingerprint,
                "method": self.method,
                "keep_plain": self.keep_plain,
                "tensors_sha256": self.tensors_sha256,
            },
        }

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        if self._plain is None:
            return self._inner._encode_batch(batch)
        if self._shared > 0:  # EfficientNet: the unchanged front once, then both tails
            import torch

            plain, adapted = self._plain.model, self._inner.model
            x = plain._swish(plain._bn0(plain._conv_stem(self._plain._tensor(batch))))
            for block in plain._blocks[: self._shared]:
                x = block(x)
            both = [_effnet_tail(net, x, self._shared) for net in (plain, adapted)]
            return torch.cat(both, dim=1).float().cpu().numpy()
        return np.concatenate(
            [self._plain._encode_batch(batch), self._inner._encode_batch(batch)], axis=1
        )

    @contextlib.contextmanager
    def _runtime(self) -> Iterator[None]:
        with self._inner._runtime():
            yield

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the adapted tensors and their metadata into folder ``path``.

        The tensors go to ``weights-<sha256[:16]>.safetensors`` (``.npz`` without the
        ``safetensors`` package; never pickle), then ``adapter.json`` names that file and its
        sha256; each file is written aside and renamed, and the JSON last, so a crash leaves
        the previous save or this one. Saves into one folder take turns (a ``.lock`` file
        there), so each removes the tensor file the save before it wrote; a ``.lock`` there that
        is not a plain file raises :class:`~forgetless.persistence.ModelFileError`. Returns the
        JSON's path.
        """
        folder = Path(path)
        make_folder(folder)  # (the new names outlive a power cut too)
        # One saver at a time: two overlapping saves would each remove only the file the
        # adapter.json named before them, and one tensor file would stay behind.
        with folder_lock(folder, "the adapted encoder"):
            self._write(folder)
        return folder / METADATA

    def _write(self, folder: Path) -> None:
        fmt = "safetensors" if _has_safetensors() else "npz"
        name = f"weights-{self.tensors_sha256[:16]}.{fmt}"
        previous = _named_tensors_file(folder / METADATA)
        base_name, options = self.base_spec
        # The whole record first (info, its digest): one that cannot be written as JSON fails
        # before any file is, instead of leaving a tensor file no adapter.json names.
        try:
            info_sha256 = info_digest(self.info)
        except (TypeError, ValueError, RecursionError) as err:
            raise ValueError(
                f"info must hold only JSON values (Python numbers, texts, lists, dicts): {err}; "
                "nothing was saved"
            ) from None
        payload = {
            # format 2 adds keep_plain, which a format-1 reader would ignore: it refuses it
            "format": FORMAT_KEEP_PLAIN if self.keep_plain else FORMAT,
            "kind": "forgetless adapted encoder",
            "base": {"name": base_name, "options": options, "fingerprint": self.base_fingerprint},
            "method": self.method,
            "keep_plain": self.keep_plain,
            "fingerprint": self.fingerprint(),
            "tensors": {
                "file": name,
                "format": fmt,
                "sha256": self.tensors_sha256,
                "names": sorted(self.tensors),
            },
            "info": self.info,
            "info_sha256": info_sha256,
        }
        _write_tensors(folder / name, self.tensors, fmt)
        payload["tensors"]["file_sha256"] = file_sha256(folder / name)[0]
        _write_json(folder / METADATA, payload)
        if previous is not None and previous != name:  # the earlier save's, no longer named
            (folder / previous).unlink(missing_ok=True)
        _remove_leftovers(folder, keep=name)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **runtime: Any) -> AdaptedEncoder:
        """See :func:`load_adapted_encoder`."""
        return load_adapted_encoder(path, **runtime)


# What a save writes and nothing else does: tensor files, and their temporary names.
_TENSOR_FILE = re.compile(r"weights-[0-9a-f]{16}\.(safetensors|npz)")
_TENSOR_TEMP = re.compile(r"\.weights-[0-9a-f]{16}\.(safetensors|npz)\.[0-9a-f]{16}\.tmp")


def _remove_leftovers(folder: Path, keep: str) -> None:
    """Remove what saves killed part-way left (their temporary files; tensor files written
    before their adapter.json): under the save's lock no other save is writing, and only
    names of this module's own pattern are touched."""
    for entry in folder.iterdir():
        leftover = _TENSOR_TEMP.fullmatch(entry.name) or (
            _TENSOR_FILE.fullmatch(entry.name) and entry.name != keep
        )
        if leftover and not entry.is_symlink() and entry.is_file():
            entry.unlink(missing_ok=True)


def _named_tensors_file(meta_path: Path) -> str | None:
    """The tensor file an existing adapter.json names (a plain weights-* name), else None:
    a save removes that one only, never other files of the folder."""
    try:
        name = json.loads(meta_path.read_text())["tensors"]["file"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    ok = isinstance(name, str) and name == Path(name).name and name.startswith("weights-")
    return name if ok else None


def _effnet_tail(model: Any, x: Any, start: int) -> Any:
    """EfficientNet blocks ``start:`` and the head on front outputs ``x``, pooled; the same
    operations as the model's own ``extract_features`` (stochastic depth is off: eval mode)."""
    rate = model._global_params.drop_connect_rate
    for idx in range(start, len(model._blocks)):
        scaled = rate * float(idx) / len(model._blocks) if rate else rate
        x = model._blocks[idx](x, drop_connect_rate=scaled)
    return model._swish(model._bn1(model._conv_head(x))).mean(dim=(2, 3))


def _shared_front(base: Encoder, tensors: dict[str, np.ndarray]) -> int:
    """How many EfficientNet blocks come before the first one ``tensors`` change (0: the stem
    changes, or another family, whose plain and adapted networks then run apart)."""
    if _family(base) != "efficientnet" or base.last_only() is not base:
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


def _backend_module(encoder: Encoder) -> Any:
    """The torch module the adapted tensors' names refer to (as the backends define it)."""
    if _family(encoder) == "efficientnet":
        return encoder.model
    return transformer_network(encoder.model)


def _apply(module: Any, tensors: dict[str, np.ndarray], base_name: str) -> None:
    """Put ``tensors`` into ``module``'s state, after checking every name, shape and dtype."""
    import torch

    state = module.state_dict()
    for name, arr in tensors.items():
        if name not in state:
            raise AdaptedWeightsError(
                f"adapted tensor {name!r} is not a weight of {base_name}; "
                "these tensors were made for another network"
            )
        if tuple(state[name].shape) != arr.shape or str(state[name].dtype) != str(
            torch.from_numpy(arr).dtype
        ):
            raise AdaptedWeightsError(
                f"adapted tensor {name!r} is {arr.dtype}{list(arr.shape)} but {base_name} "
                f"has {state[name].dtype}{list(state[name].shape)}"
            )
    with torch.no_grad():
        for name, arr in tensors.items():
            state[name].copy_(torch.from_numpy(np.array(arr)))


def load_adapted_encoder(
    path: str | os.PathLike[str], *, base: Encoder | None = None, **runtime: Any
) -> AdaptedEncoder:
    """Rebuild an adapted encoder saved by :meth:`AdaptedEncoder.save` in folder ``path``.

    The base encoder comes from the registry (``runtime`` adds options such as ``device`` or
    ``threads``), or is ``base``, loaded by the caller: the encoder it was adapted from, for
    instance from the new place of a model folder that moved. Its fingerprint, the tensor
    file's sha256 and the tensors' own digest are checked before use: a damaged or altered
    file, or other base weights, raise :class:`AdaptedWeightsError`.
    """
    if base is not None and runtime:
        raise ValueError(
            f"give runtime options ({', '.join(sorted(runtime))}) to the base encoder's "
            "load_encoder, not beside base"
        )
    if base is not None and (not isinstance(base, Encoder) or isinstance(base, AdaptedEncoder)):
        raise TypeError(
            "base must be the plain encoder the file was adapted from (load_encoder), got "
            f"{type(base).__name__}"
        )
    fixed = sorted(set(runtime) & _SAVED_OPTIONS)
    if fixed:  # else refused later as "other weights or preprocessing", blaming the file
        raise ValueError(
            f"load_adapted_encoder cannot change {', '.join(fixed)}: the saved encoder was "
            "adapted with its own, which its features depend on; pass only runtime options "
            "such as device or threads"
        )
    folder = Path(path)
    meta_path = folder / METADATA if folder.is_dir() else folder
    folder = meta_path.parent
    for _ in range(2):  # a save replaced the files meanwhile: read its new ones
        try:
            return _load_adapted(meta_path, folder, runtime, base)
        except _TensorsGone:
            pass
    return _load_adapted(meta_path, folder, runtime, base)


class _TensorsGone(AdaptedWeightsError):
    """The tensor file the metadata names is not there (perhaps replaced by a save)."""


def _plain_file(path: Path, what: str, missing: AdaptedWeightsError) -> None:
    """Refuse a link, a folder, a pipe or a device where a file this module wrote belongs;
    raise ``missing`` where there is nothing."""
    if path.is_symlink():
        raise AdaptedWeightsError(f"{path} is a symbolic link; {what} is a plain file")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise missing from None
    if not stat.S_ISREG(mode):
        raise AdaptedWeightsError(f"{path} is not a regular file; {what} is a plain file")


def _load_adapted(
    meta_path: Path, folder: Path, runtime: dict[str, Any], given: Encoder | None
) -> AdaptedEncoder:
    from forgetless.encoders import READOUTS, EncoderNotAvailableError, load_encoder, relocated

    _plain_file(
        meta_path,
        "adapter.json",
        AdaptedWeightsError(
            f"{meta_path} does not exist; give the folder AdaptedEncoder.save wrote"
        ),
    )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise AdaptedWeightsError(f"{meta_path} is not readable JSON: {err}") from None
    try:
        base, tensors_meta, method = meta["base"], meta["tensors"], meta["method"]
        keep_plain = meta.get("keep_plain", False)
        recorded = meta["fingerprint"]  # every save writes it: without it, edits would pass
        fmt_ok = type(meta.get("format")) is int and meta["format"] in (FORMAT, FORMAT_KEEP_PLAIN)
        if not fmt_ok or not isinstance(keep_plain, bool):
            raise AdaptedWeightsError(f"{meta_path} has format {meta.get('format')!r}")
        if meta.get("kind") != "forgetless adapted encoder":
            raise AdaptedWeightsError(f"{meta_path} is not an adapted-encoder file (its kind)")
        if keep_plain and meta["format"] != FORMAT_KEEP_PLAIN:
            raise AdaptedWeightsError(
                f"{meta_path} has format {FORMAT}, which has no keep_plain (altered?)"
            )
        file = folder / Path(tensors_meta["file"]).name
        fmt = tensors_meta["format"]
        expected_file, expected_tensors = tensors_meta["file_sha256"], tensors_meta["sha256"]
        base_name, options = base["name"], base["options"]
        info = meta.get("info", {})
        info_sha = meta.get("info_sha256")  # files written before it was recorded have none
        names = tensors_meta["names"]
        texts = (method, base_name, expected_file, expected_tensors, base["fingerprint"], recorded)
        if not all(isinstance(value, str) for value in texts):
            raise TypeError("method, base name, hashes and fingerprints must be strings")
        if not (isinstance(options, dict) and isinstance(info, dict)):
            raise TypeError("base options and info must be tables")
        if info_sha is not None and not isinstance(info_sha, str):
            raise TypeError("info_sha256 must be a string")
        options = dict(options)
    except (KeyError, TypeError) as err:
        raise AdaptedWeightsError(f"{meta_path} is not an adapted-encoder file ({err})") from None
    if fmt not in ("safetensors", "npz"):
        raise AdaptedWeightsError(f"{meta_path}: unknown tensor format {fmt!r}")
    if info_sha is not None and info_digest(info) != info_sha:
        raise AdaptedWeightsError(
            f"{meta_path}: its info (the training record) does not match its recorded sha256 "
            "(altered?)"
        )
    unknown = sorted(set(options) - _SAVED_OPTIONS)
    if unknown:  # e.g. threads or device: runtime options, never saved (:func:`_registry_spec`)
        raise AdaptedWeightsError(
            f"{meta_path}: base options {unknown} are not ones a save writes (altered?); pass "
            "runtime options such as threads or device to load_adapted_encoder"
        )
    if _family(base_name) is None:
        raise AdaptedWeightsError(
            f"{meta_path} names base encoder {base_name!r}, which no method adapts"
        )
    if method not in _RECIPES[_family(base_name)]:
        raise AdaptedWeightsError(
            f"{meta_path} names method {method!r}, which does not adapt {base_name}: the file "
            "was altered"
        )
    _plain_file(file, "the tensor file", _TensorsGone(f"{file} is missing; {meta_path} names it"))
    actual = file_sha256(file)[0]
    if actual != expected_file:
        raise AdaptedWeightsError(
            f"{file} is damaged or was altered: sha256 {actual[:16]}..., "
            f"{meta_path.name} expects {expected_file[:16]}...; adapt the encoder again"
        )
    try:
        tensors = _read_tensors(file, fmt)
    except Exception as err:  # a library's own parse error: say which file
        raise AdaptedWeightsError(f"{file} cannot be read: {err}") from None
    if tensors_digest(tensors) != expected_tensors:
        raise AdaptedWeightsError(f"{file}: its tensors do not match their recorded sha256")
    if not (isinstance(names, list) and names == sorted(tensors)):
        raise AdaptedWeightsError(
            f"{meta_path} lists other tensors than {file.name} holds (altered?)"
        )
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise AdaptedWeightsError(f"{file}: tensor {name!r} holds NaN or infinity")
    if base_name in READOUTS:  # written before readouts: the last map or layer only
        options.setdefault("readout", READOUTS[base_name][1])
    try:
        encoder = given if given is not None else load_encoder(base_name, **{**options, **runtime})
    except (TypeError, ValueError) as err:
        raise AdaptedWeightsError(
            f"{meta_path} names base encoder {base_name!r} with options {options}, which cannot "
            f"be built: {err}"
        ) from None
    except EncoderNotAvailableError as err:
        raise EncoderNotAvailableError(
            f"{meta_path} was adapted from {base_name}, which cannot be loaded: "
            f"{str(err).rstrip('.')}. If its folder or file moved, load it from its new place "
            "and pass it: load_adapted_encoder(path, base=load_encoder(NEW))"
        ) from None
    if encoder.decoding(1).fingerprint() == base["fingerprint"] != encoder.fingerprint():
        # adapted before image decoding had a version: the base decodes as it did then
        encoder = encoder.decoding(1)
    if encoder.fingerprint() != base["fingerprint"]:
        # the same weights at another place (a moved folder, or a relative name recorded by an
        # earlier release, which names itself by its absolute place now): under the name then
        moved = relocated(encoder, base_name, base["fingerprint"], options.get("name"))
        encoder = encoder if moved is None else moved
    if encoder.fingerprint() != base["fingerprint"]:
        raise AdaptedWeightsError(
            f"{meta_path} was adapted from {base_name} with fingerprint "
            f"{base['fingerprint'][:16]}..., but "
            f"{'the base given' if given is not None else base_name + ' here'} has "
            f"{encoder.fingerprint()[:16]}... (other weights or preprocessing)"
        )
    try:
        adapted = AdaptedEncoder(encoder, method, tensors, info, keep_plain=keep_plain)
    except (TypeError, ValueError) as err:
        raise AdaptedWeightsError(f"{meta_path}: {err}") from None
    # Everything that shapes the features is in the fingerprint: metadata altered anywhere
    # (method, keep_plain, ...) gives another one than the file recorded.
    if adapted.fingerprint() != recorded:
        raise AdaptedWeightsError(
            f"{meta_path} records fingerprint {recorded[:16]}..., but what it "
            f"describes has {adapted.fingerprint()[:16]}...: the file was altered"
        )
    return adapted


# --------------------------------------------------------------------------------------------
# Training.


def _validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) rows: each class keeps at least one training row.

    >>> tr, va = _validation_split(np.array([0] * 10 + [1] * 5), 0.2, seed=0)
    >>> len(tr), len(va), np.bincount(np.array([0] * 10 + [1] * 5)[va]).tolist()
    (12, 3, [2, 1])
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        rows = rows[rng.permutation(len(rows))]
        n_val = min(len(rows) - 1, int(round(fraction * len(rows))))
        if fraction > 0 and len(rows) >= 2:
            n_val = max(1, n_val)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


@contextlib.contextmanager
def _deterministic(seed: int, threads: int | None) -> Iterator[None]:
    """Seeded, deterministic torch (restored afterwards), at a fixed thread count."""
    import torch

    before_threads = torch.get_num_threads()
    before_det = torch.are_deterministic_algorithms_enabled()
    before_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    rng_state = torch.get_rng_state()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before_det, warn_only=before_warn)
        torch.set_num_threads(before_threads)
        torch.set_rng_state(rng_state)


def _check_inputs(encoder: Encoder, inputs: Sequence[Any], labels: Any) -> np.ndarray:
    if not hasattr(inputs, "__len__") or not hasattr(inputs, "__getitem__"):
        raise TypeError(
            f"adapt_encoder reads its inputs more than once: give a list or array, not a "
            f"{type(inputs).__name__} (list(inputs) makes one)"
        )
    n = len(inputs)
    if labels is None:
        raise ValueError(f"adapt_encoder needs one label per input, got {n} inputs and None")
    try:
        y = np.asarray(labels)
    except ValueError:  # ragged: lists of different lengths
        raise ValueError("adapt_encoder needs one label per input: a flat list of labels") from None
    if n == 0:
        raise ValueError("adapt_encoder needs the first task's inputs, but got none")
    if y.ndim != 1 or len(y) != n:
        raise ValueError(
            f"adapt_encoder got {n} inputs but {len(y) if y.ndim == 1 else y.shape} labels; "
            "give one label per input"
        )
    if getattr(encoder, "modality", None) == "text":  # as encode() reads them, not str(x)
        for i, t in enumerate(inputs):
            if not isinstance(t, str):
                raise TypeError(f"input {i} is {type(t).__name__} {str(t)[:40]!r}, not a text")
    y = check_labels(labels, n, "adapt_encoder")  # one type, no NaN, as the learner's
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"adapt_encoder needs at least 2 classes to train a classifier, but every label "
            f"is {classes[0]!r}; adapt on a first task with several classes"
        )
    return np.searchsorted(classes, y)


def adapt_encoder(
    encoder: Encoder,
    inputs: Sequence[Any],
    labels: Any,
    method: str | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    seed: int = 0,
    validation_fraction: float = 0.2,
    progress: bool | None = None,
    *,
    keep_plain: bool | None = None,
    refresh_norms: bool | None = None,
    views: int | None = None,
    contrastive: float | None = None,
    min_classes: int = MIN_CLASSES,
    significance: float = SIGNIFICANCE,
) -> AdaptedEncoder:
    """Adapt ``encoder`` on the first task (``inputs``, ``labels``); return it frozen.

    ``method``, ``epochs``, ``learning_rate``, ``keep_plain``, ``refresh_norms``, ``views`` and
    ``contrastive`` default to the measured best for the encoder (:func:`adaptable_methods`
    lists the recipes). ``contrastive`` > 0 adds a supervised contrastive term of that weight
    to the cross-entropy (:func:`supervised_contrastive`).
    ``views`` > 1 (images) trains on each input and ``views`` - 1 randomly moved copies
    (:func:`random_affine`), fewer where that would exceed VIEW_BUDGET copies (:func:`views_for`).
    A first task with fewer than ``min_classes`` classes trains no weight (a warning says so;
    ``refresh_norms`` still applies), so the encoder comes back unchanged. A
    stratified ``validation_fraction`` of the inputs is held out: training stops once its loss
    has not improved for a few epochs, and the best epoch's weights are kept (epoch 0, the
    unchanged encoder, included), but only when their per-row validation losses beat the
    unchanged encoder's beyond chance, the choice of the best among the epochs tried included
    (a one-sided paired permutation test at ``significance``, :func:`_paired_evidence`; 1.0
    keeps any improvement); otherwise a warning says so and the encoder comes back unchanged.
    ``refresh_norms`` first replaces every batch norm's running statistics by the first
    task's (AdaBN, no gradient step); ``keep_plain`` makes the adapted
    encoder return the plain encoder's features beside the adapted ones (width ``2 * dim``,
    plain first, as APER does; when no weight changed, the plain features once). The same seed
    gives the same weights on the same machine at the same torch thread count and encoder
    ``batch_size`` (convolutions round differently with both).
    ``encoder`` itself is not changed.

    Raises :class:`AdaptationNotSupportedError` for an encoder (or method) that cannot be
    adapted, including an already adapted one, and ``ValueError`` for unusable inputs.
    """
    if isinstance(encoder, str):  # a registry name: adaptable_methods takes it, training not
        raise TypeError(
            f"adapt_encoder needs an encoder, not the name {encoder!r}; pass "
            f"load_encoder({encoder!r})"
        )
    if not isinstance(encoder, Encoder):
        raise TypeError(
            f"adapt_encoder needs an encoder (load_encoder), got {type(encoder).__name__}"
        )
    recipes = adaptable_methods(encoder)  # refuses what cannot be adapted, torch or not
    import torch

    method = next(iter(recipes)) if method is None else method
    _check_method(method, recipes, encoder.name)
    recipe = recipes[method]
    if not _is_int(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if epochs is not None:
        if not _is_int(epochs) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        recipe = _replace(recipe, epochs=int(epochs))
    if learning_rate is not None:
        if not (_is_number(learning_rate) and 0 < learning_rate < math.inf):
            raise ValueError(f"learning_rate must be a number > 0, got {learning_rate!r}")
        recipe = _replace(recipe, learning_rate=float(learning_rate))
    if recipes[method].epochs == 0 and (epochs is not None or learning_rate is not None):
        raise ValueError(f"method {method!r} trains no weight; leave epochs and learning_rate out")
    for key, value in (("keep_plain", keep_plain), ("refresh_norms", refresh_norms)):
        if value is not None:
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{key} must be True or False, got {value!r}")
            recipe = _replace(recipe, **{key: bool(value)})
    if views is not None:
        if not _is_int(views) or views < 1:
            raise ValueError(f"views must be an integer >= 1, got {views!r}")
        recipe = _replace(recipe, views=int(views))
    if contrastive is not None:
        if not (_is_number(contrastive) and 0 <= contrastive < math.inf):
            raise ValueError(f"contrastive must be a number >= 0, got {contrastive!r}")
        recipe = _replace(recipe, contrastive=float(contrastive))
    if recipes[method].epochs == 0 and contrastive:
        raise ValueError(f"method {method!r} trains no weight; leave contrastive out")
    if recipes[method].epochs == 0 and not recipe.refresh_norms:
        raise ValueError(
            f"method {method!r} trains no weight and only refreshes batch-norm statistics: "
            "refresh_norms=False would leave the encoder unchanged"
        )
    if recipe.views > 1 and _family(encoder) != "efficientnet":
        raise AdaptationNotSupportedError(
            f"views > 1 makes moved copies of images, and {encoder.name!r} does not encode "
            "images; use views=1"
        )
    if recipes[method].epochs == 0 and views is not None and views > 1:
        raise ValueError(f"method {method!r} trains no weight; leave views out")
    if recipe.refresh_norms and _family(encoder) != "efficientnet":
        raise AdaptationNotSupportedError(
            f"refresh_norms needs batch norms, and {encoder.name!r} has none; "
            "it applies to efficientnet-lite0"
        )
    if not (_is_number(validation_fraction) and 0 <= validation_fraction < 1):
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    if not _is_int(min_classes) or min_classes < 2:
        raise ValueError(f"min_classes must be an integer >= 2, got {min_classes!r}")
    if not _is_number(significance):
        raise ValueError(f"significance must be a number in (0, 1], got {significance!r}")
    if not 0 < significance <= 1:  # NaN fails this too
        raise ValueError(f"significance must be a number in (0, 1], got {significance!r}")
    # Plain Python numbers from here on: numpy's reach torch's seeding and the saved record.
    seed, min_classes = int(seed), int(min_classes)
    validation_fraction, significance = float(validation_fraction), float(significance)
    y = _check_inputs(encoder, inputs, labels)
    n_classes = int(y.max()) + 1
    skipped = None
    if recipe.epochs > 0 and n_classes < min_classes:
        skipped = (
            f"the first task has {n_classes} classes, fewer than min_classes={min_classes}: "
            "no weight was trained (tuned to so few classes, an encoder served later classes "
            "worse); pass min_classes=2 to train anyway"
        )
        warnings.warn(f"adapt_encoder: {skipped}", UserWarning, stacklevel=2)
        recipe = _replace(recipe, epochs=0)
    began = time.perf_counter()
    threads = getattr(encoder, "threads", None)
    with _deterministic(seed, threads):
        backend = _backend(copy.deepcopy(encoder), method)
        network = backend.module()
        before = {k: v.detach().clone() for k, v in network.state_dict().items()}
        for p in network.parameters():
            p.requires_grad_(False)
        _check_split(backend, encoder, inputs)
        if recipe.refresh_norms:  # in a seeded order, so batches mix the classes
            order = np.random.default_rng(seed).permutation(len(y))
            backend.refresh_norms(_take(inputs, order), progress)
        trained, history, cache_seconds, views, evidence = 0, [], 0.0, 1, None
        rejected = False  # training ran and its weights are not kept (nothing trained: the
        # refreshed norms, where asked for, stay, as the docstring says)
        if recipe.epochs > 0:
            train_rows, val_rows = _validation_split(y, validation_fraction, seed)
            if len(val_rows) == 0 and validation_fraction > 0:
                # no class has two samples: nothing can be held out to choose an epoch or to
                # test the gain, and in-sample rows would pass any test
                skipped = (
                    "no class of the first task has two samples, so none can be held out to "
                    "choose an epoch or test the gain: no weight was trained"
                )
                warnings.warn(f"adapt_encoder: {skipped}", UserWarning, stacklevel=2)
                recipe = _replace(recipe, epochs=0)
            elif len(val_rows) == 0:
                val_rows = train_rows  # validation_fraction=0: select on the training loss
            elif 0.5 ** len(val_rows) >= significance:
                # the evidence test's smallest p-value is 2^-rows: no gain could pass
                skipped = (
                    f"only {len(val_rows)} rows can be held out, too few for any gain to pass "
                    f"the evidence test at significance={significance} (its smallest p-value "
                    f"is 2^-{len(val_rows)}): no weight was trained; pass a larger "
                    "significance to train anyway"
                )
                warnings.warn(f"adapt_encoder: {skipped}", UserWarning, stacklevel=2)
                recipe = _replace(recipe, epochs=0)
        if recipe.epochs > 0:
            views = views_for(recipe.views, len(train_rows))
            # The moved copies are drawn from their own seeded generator (seed + 2).
            train_cache = backend.front(_take(inputs, train_rows), progress, views, seed + 2)
            val_cache = backend.front(_take(inputs, val_rows), progress)
            cache_seconds = time.perf_counter() - began
            params = backend.trainable()
            trained, history, evidence = _train(
                backend,
                params,
                (train_cache, np.tile(y[train_rows], views)),
                (val_cache, y[val_rows]),
                n_classes,
                recipe,
                seed,
                progress,
                encoder.name,
                significance,
            )
            backend.finish()
            rejected = bool(evidence["rejected"]) or trained == 0
            if evidence["rejected"]:
                skipped = (
                    f"the adapted encoder's validation loss ({evidence['adapted_loss']:.4f}, "
                    f"epoch {evidence['best_epoch']}) did not beat the unchanged encoder's "
                    f"({evidence['plain_loss']:.4f}) beyond chance (one-sided p = "
                    f"{evidence['p_value']:.3f} >= significance={significance}, the best of "
                    f"{evidence['epochs_compared']} epochs): no weight was kept; pass "
                    "significance=1.0 to keep any improvement"
                )
                warnings.warn(f"adapt_encoder: {skipped}", UserWarning, stacklevel=2)
            elif trained == 0:
                skipped = (
                    "no epoch beat the unchanged encoder's loss on the held-out rows: no "
                    "weight was kept"
                )
                warnings.warn(f"adapt_encoder: {skipped}", UserWarning, stacklevel=2)
        if rejected:  # trained weights turned down: unchanged means unchanged, norms too
            network.load_state_dict(before)
        after = network.state_dict()
        tensors = {
            k: after[k].detach().cpu().numpy().copy()
            for k in after  # a norm's batch counter does not change what it computes
            if not torch.equal(after[k], before[k]) and not k.endswith("num_batches_tracked")
        }
    info = {
        "method": method,
        "recipe": asdict(recipe),
        "seed": seed,
        "samples": len(y),
        "classes": n_classes,
        "validation_fraction": validation_fraction,
        "views": views,
        "skipped": skipped,
        "best_epoch": trained,
        "evidence": evidence,
        "epochs_run": max(0, len(history) - 1),
        "history": history,
        "cache_seconds": round(cache_seconds, 3),
        "seconds": round(time.perf_counter() - began, 3),
    }
    # Nothing changed (no epoch beat the plain encoder): the plain features, once, not twice.
    keep_plain = recipe.keep_plain and bool(tensors)
    return AdaptedEncoder(encoder, method, tensors, info, keep_plain=keep_plain)


def _take(inputs: Sequence[Any], rows: np.ndarray) -> Sequence[Any]:
    """``inputs`` at ``rows`` (an array indexed at once, any other sequence item by item)."""
    if isinstance(inputs, np.ndarray):
        return inputs[rows]
    return [inputs[int(i)] for i in rows]


def _check_split(backend: _Backend, encoder: Encoder, inputs: Sequence[Any]) -> None:
    """The front and tail together must give the encoder's own features; a library update
    that changed the network's structure is caught here, not by silently worse features."""
    import torch

    rows = list(range(min(4, len(inputs))))
    sample = _take(inputs, np.asarray(rows))
    cached = backend.front(sample, False)
    backend.train_mode(False)
    with torch.no_grad():
        ours = backend.tail(cached).cpu().numpy()
    theirs = encoder.last_only().encode(sample, progress=False)
    err = float(np.abs(ours - theirs).max() / (np.abs(theirs).max() + 1e-12))
    if not err < 1e-3:
        raise RuntimeError(
            f"adapting {encoder.name}: its network split into a cached front and a trained part "
            f"does not reproduce its features (relative difference {err:.2g}); the model "
            "library may have changed its structure"
        )


def _check_method(method: Any, recipes: dict[str, Recipe], name: str) -> None:
    """``method`` must name one of ``recipes`` (a text: a list would not hash)."""
    if not isinstance(method, str) or method not in recipes:
        raise AdaptationNotSupportedError(
            f"method {method!r} cannot adapt {name!r}; choose one of {', '.join(recipes)}"
        )


def _is_number(value: Any) -> bool:
    """A real number (numpy's too), and not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _is_int(value: Any) -> bool:
    """An integer, and not a bool (which Python counts as one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _replace(recipe: Recipe, **changes: Any) -> Recipe:
    return Recipe(**{**asdict(recipe), **changes})


def views_for(views: int, n_train: int) -> int:
    """How many copies of each of ``n_train`` inputs train: ``views``, fewer where that would
    cache more than VIEW_BUDGET (an epoch's cost grows with the copies; a large first task
    needs them less), at least one.

    >>> views_for(8, 320), views_for(8, 480), views_for(8, 3000), views_for(1, 10)
    (8, 6, 1, 1)
    """
    return max(1, min(int(views), VIEW_BUDGET // max(int(n_train), 1)))


def _train(
    backend: _Backend,
    params: list[Any],
    train: tuple[list[Any], np.ndarray],
    validation: tuple[list[Any], np.ndarray],
    n_classes: int,
    recipe: Recipe,
    seed: int,
    progress: bool | None,
    name: str,
    significance: float = SIGNIFICANCE,
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    """Train the tail and a temporary head on ``train`` (front outputs, labels), keeping the
    epoch of lowest loss on ``validation``; restore it, or epoch 0 (the unchanged encoder) when
    the epochs' per-row losses do not beat epoch 0's beyond chance, the choice of the best one
    included (:func:`_paired_evidence`).
    Returns (kept epoch, history, evidence)."""
    import torch

    train_cache, val_cache = train[0], validation[0]
    train_targets = torch.from_numpy(train[1].astype(np.int64))
    val_targets = torch.from_numpy(validation[1].astype(np.int64))

    def features(cached: list[Any], rows: np.ndarray) -> Any:
        out = []
        for begin in range(0, len(rows), 128):
            out.append(backend.tail([cached[i] for i in rows[begin : begin + 128]]))
        return torch.cat(out)

    # The head starts as a linear probe on the unchanged features, so the first gradient steps
    # adapt the encoder to a sensible classifier instead of a random one (LP-FT).
    backend.train_mode(False)
    with torch.no_grad():
        probe = features(train_cache, np.arange(len(train_cache)))
    dim = probe.shape[1]
    head = torch.nn.Linear(dim, n_classes)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01)
        head.bias.zero_()
    _fit_probe(head, probe, train_targets, recipe)

    def evaluate() -> tuple[float, float, np.ndarray]:
        backend.train_mode(False)
        with torch.no_grad():
            logits = head(features(val_cache, np.arange(len(val_cache))))
            rows = torch.nn.functional.cross_entropy(logits, val_targets, reduction="none")
            acc = (logits.argmax(1) == val_targets).double().mean()
        return float(rows.mean()), float(acc), rows.double().numpy()

    def snapshot() -> list[Any]:
        return [p.detach().clone() for p in [*params, *head.parameters()]]

    val_loss, val_acc, plain_rows = evaluate()
    history: list[dict[str, Any]] = [  # epoch 0: the unchanged encoder (no training loss)
        {"epoch": 0, "train_loss": None, "val_loss": val_loss, "val_accuracy": val_acc}
    ]
    best, best_loss, best_state = 0, val_loss, snapshot()
    plain_state = best_state
    epoch_rows = []  # every trained epoch's per-row validation losses: the evidence's choices
    optimizer = torch.optim.AdamW(
        [{"params": params}, {"params": list(head.parameters()), "lr": recipe.learning_rate}],
        lr=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
    )
    steps_per_epoch = math.ceil(len(train_cache) / recipe.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=recipe.epochs * steps_per_epoch
    )
    rng = np.random.default_rng(seed + 1)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    with progress_bar(
        recipe.epochs, f"adapting {name} ({recipe.method})", progress, "epoch"
    ) as bar:
        for epoch in range(1, recipe.epochs + 1):
            backend.train_mode(True)
            order = rng.permutation(len(train_cache))
            total = 0.0
            for begin in range(0, len(order), recipe.batch_size):
                rows = order[begin : begin + recipe.batch_size]
                batch = backend.tail([train_cache[i] for i in rows])
                targets = train_targets[torch.from_numpy(rows)]
                loss = loss_fn(head(batch), targets)
                if recipe.contrastive > 0:
                    loss = loss + recipe.contrastive * supervised_contrastive(
                        batch, targets, recipe.temperature
                    )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(rows)
            val_loss, val_acc, val_rows = evaluate()
            epoch_rows.append(val_rows)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / len(order),
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                }
            )
            postfix = getattr(bar, "set_postfix", None)  # tqdm; plain log lines have none
            if postfix is not None:
                postfix(loss=f"{total / len(order):.3f}", val_acc=f"{val_acc:.3f}")
            bar.update(1)
            if val_loss < best_loss - 1e-6:
                best, best_loss, best_state = epoch, val_loss, snapshot()
            elif epoch - best >= recipe.patience:
                break
    evidence = {
        "best_epoch": best,
        # the flips from their own stream (the held-out rows came from seed's)
        **_paired_evidence(
            plain_rows, np.array(epoch_rows).reshape(-1, len(plain_rows)), [seed, 3]
        ),
    }
    evidence["rejected"] = bool(best > 0 and evidence["p_value"] >= significance)
    kept = plain_state if evidence["rejected"] else best_state
    with torch.no_grad():
        for p, value in zip([*params, *head.parameters()], kept, strict=True):
            p.copy_(value)
    backend.train_mode(False)
    return (0 if evidence["rejected"] else best), history, evidence


def supervised_contrastive(features: Any, labels: Any, temperature: float = 0.1) -> Any:
    """The supervised contrastive loss (Khosla et al. 2020, "SupCon", L_out) of a batch: for
    each row, minus the mean log-probability, under a softmax of cosine similarities / the
    temperature over the other rows, of the rows of its own class; rows alone in their class
    in the batch are left out (0 when all are).

    >>> import torch
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> apart = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]])
    >>> mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.01], [0.01, 1.0]])
    >>> bool(supervised_contrastive(apart, labels) < supervised_contrastive(mixed, labels))
    True
    """
    import torch

    labels = torch.as_tensor(labels, device=features.device)
    unit = torch.nn.functional.normalize(features, dim=1)
    similarity = unit @ unit.T / temperature
    own = torch.eye(len(labels), dtype=torch.bool, device=similarity.device)
    similarity = similarity.masked_fill(own, -math.inf)  # a row is not its own positive
    log_prob = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~own
    count = positive.sum(dim=1)
    kept = count > 0
    if not bool(kept.any()):
        return features.sum() * 0.0
    per_row = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -(per_row[kept] / count[kept]).mean()


def _paired_evidence(
    plain: np.ndarray, epochs: np.ndarray, seed: Any = 0, draws: int = PERMUTATIONS
) -> dict[str, Any]:
    """How surely the best of the trained epochs beats the unchanged encoder on the same
    held-out rows: ``plain`` holds its per-row losses, ``epochs`` (one row per epoch tried)
    the trained epochs'. The mean losses of the unchanged encoder and of the best epoch, and
    the one-sided p-value of a paired sign-flip permutation test whose statistic is the
    *largest* mean gain over the epochs: under no effect each row's gains are as likely
    flipped, the same flip for every epoch. Testing the best epoch alone would ignore that it
    was chosen on these rows (on 25 rows, ten epochs tried, the best one's own test says
    p < 0.05 far more often than one time in twenty). ``draws`` random flips, seeded
    (deterministic per ``seed``); every flip where the rows are few enough to list them all.
    An epoch with a non-finite loss (training diverged) is never the best one: it is left out;
    a non-finite loss of the unchanged encoder leaves nothing to compare (p = 1).

    >>> plain = np.array([1.0, 1.2, 0.9, 1.1, 1.0, 1.3, 0.8, 1.0, 1.1, 0.9, 1.2, 1.0])
    >>> e = _paired_evidence(plain, np.stack([plain - 0.02, plain - 0.5]))
    >>> e["p_value"] < 0.001, e["epochs_compared"]
    (True, 2)
    >>> _paired_evidence(np.array([1.0, 0.2]), np.array([[0.2, 1.0]]))["p_value"]
    0.75
    """
    plain = np.asarray(plain, dtype=np.float64)
    gains = plain[None, :] - np.asarray(epochs, dtype=np.float64).reshape(-1, plain.size)
    gains = gains[np.isfinite(gains).all(axis=1)]  # none where plain's losses are not finite
    n = plain.size
    if gains.shape[0] == 0 or n == 0:
        plain_loss = float(plain.mean()) if n and np.isfinite(plain).all() else None
        return {"plain_loss": plain_loss, "adapted_loss": None,
                "rows": n, "epochs_compared": 0, "p_value": 1.0}  # fmt: skip
    means = gains.mean(axis=1)
    observed = float(means.max())
    # a flip's statistic reaching the observed one, to rounding
    reach = observed - 1e-12 * max(1.0, float(np.abs(gains).max()))

    def reaching(signs: np.ndarray) -> int:
        return int(((signs @ gains.T / n).max(axis=1) >= reach).sum())

    if n <= _EXHAUSTIVE_ROWS:  # every flip: the exact p-value
        counted = reaching(1.0 - 2.0 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1))
        total = 2**n
    else:  # the observed signs count as one draw, so p >= 1 / (draws + 1)
        rng = np.random.default_rng(seed)
        counted, total = 1, draws + 1
        block = max(1, min(1000, 2**17 // n))  # flips per block: at most ~1 MB of signs
        for begin in range(0, draws, block):
            bits = rng.integers(0, 2, size=(min(block, draws - begin), n), dtype=np.int8)
            counted += reaching(1.0 - 2.0 * bits)
    best = int(np.argmax(means))
    return {
        "plain_loss": float(plain.mean()),
        "adapted_loss": float(plain.mean() - means[best]),
        "rows": n,
        "epochs_compared": int(gains.shape[0]),
        "p_value": counted / total,
    }


def _fit_probe(head: Any, features: Any, targets: Any, recipe: Recipe, steps: int = 200) -> None:
    """Full-batch training of the head alone on fixed features (cheap: no encoder pass)."""
    import torch

    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(head(features), targets)
        loss.backward()
        optimizer.step()


__all__ = [
    "AdaptationNotSupportedError",
    "AdaptedEncoder",
    "AdaptedWeightsError",
    "Recipe",
    "adapt_encoder",
    "adaptable_methods",
    "load_adapted_encoder",
    "supervised_contrastive",
    "tensors_digest",
]
