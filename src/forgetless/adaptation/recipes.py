"""Adaptation recipes: each method's training settings, per encoder family, and the checks.

:data:`RECIPES` maps an encoder family (:func:`family_of`: which backend adapts an encoder)
to its methods' measured defaults, a :class:`Recipe` each, the family's default first;
:func:`check_method` refuses a method the family does not have. Which methods one encoder
offers, readout included, is :func:`~forgetless.adaptation.encoder.adaptable_methods`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The image default's contrastive weight (Recipe.contrastive), chosen on held-out training rows
# (benchmarks/adaptation.py --validation, latin-glyphs, seeds 0-2; docs/adaptation.md).
# With it, the plain features beside the adapted ones (keep_plain) led without
# them for the ridge, NCM and LDA, on held-out rows and on the test split, so last-stages
# keeps them too.
CONTRASTIVE = 2.0


class AdaptationNotSupportedError(ValueError):
    """This encoder (or this method for it) cannot be adapted; the message says what can."""

    __module__ = "forgetless.adaptation"  # its public place, shown in tracebacks


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
RECIPES: dict[str, dict[str, Recipe]] = {
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
CAN_ADAPT = (
    "efficientnet-lite0 (methods: last-stages, last-stage, ssf, norms) and "
    "sentence-transformers encoders with a BERT-like transformer such as minilm (methods: lora, "
    "lora-all, last-layers)"
)


def family_of(encoder: Any) -> str | None:
    """Which backend adapts ``encoder`` (an object or a registry name), or None."""
    name = encoder if isinstance(encoder, str) else type(encoder).__name__
    if name in ("efficientnet-lite0", "EfficientNetLite0"):
        return "efficientnet"
    if name in ("minilm", "SentenceTransformerEncoder") or str(name).startswith(
        "sentence-transformers:"
    ):
        return "transformer"
    return None


def check_method(method: Any, recipes: dict[str, Recipe], name: str) -> None:
    """``method`` must name one of ``recipes`` (a text: a list would not hash)."""
    if not isinstance(method, str) or method not in recipes:
        raise AdaptationNotSupportedError(
            f"method {method!r} cannot adapt {name!r}; choose one of {', '.join(recipes)}"
        )
