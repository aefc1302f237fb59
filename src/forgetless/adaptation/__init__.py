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

Its modules, one concept each:

- ``recipes``: :class:`Recipe`, each encoder family's methods and their measured defaults;
- ``backends``: each family's frozen front and trained tail (EfficientNet stages, LoRA);
- ``views``: the moved copies of images (random affine draws) and how many train;
- ``encoder``: :func:`adaptable_methods`, the frozen :class:`AdaptedEncoder` and its files;
- ``training``: :func:`adapt_encoder`: its checks, the loop, the evidence test.

>>> from forgetless.encoders import load_encoder
>>> adapt_encoder(load_encoder("raw"), [np.zeros((2, 2))] * 2, [0, 1])
Traceback (most recent call last):
...
forgetless.adaptation.AdaptationNotSupportedError: encoder 'raw' cannot be adapted: ...
>>> sorted(adaptable_methods("efficientnet-lite0"))
['last-stage', 'last-stages', 'norms', 'ssf']
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (used by the doctest above)

# Beside __all__, the other public names adaptation.py had stay importable from here
# (noqa: F401). Patch a name in the module that defines it.
from forgetless.adaptation.encoder import (  # noqa: F401
    FORMAT,
    FORMAT_KEEP_PLAIN,
    METADATA,
    AdaptedEncoder,
    AdaptedWeightsError,
    adaptable_methods,
    info_digest,
    load_adapted_encoder,
    tensors_digest,
)
from forgetless.adaptation.recipes import (  # noqa: F401
    CONTRASTIVE,
    AdaptationNotSupportedError,
    Recipe,
)
from forgetless.adaptation.training import (  # noqa: F401
    MIN_CLASSES,
    PERMUTATIONS,
    SIGNIFICANCE,
    adapt_encoder,
    supervised_contrastive,
)
from forgetless.adaptation.views import (  # noqa: F401
    VIEW_BUDGET,
    VIEW_DRAWS,
    affine_draws,
    apply_affine,
    random_affine,
    views_for,
)

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
