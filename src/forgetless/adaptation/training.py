"""Training: :func:`adapt_encoder`, its input checks, the loop, and the evidence test.

The frozen front's outputs are cached once; the tail and a temporary linear head train on
them (cross-entropy, plus :func:`supervised_contrastive` where the recipe asks), with early
stopping on stratified held-out rows (:func:`_validation_split`). The best epoch is kept only
when a paired sign-flip permutation test of its per-row losses (:func:`_paired_evidence`)
beats the unchanged encoder beyond chance.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from forgetless.adaptation.backends import Backend, backend_for
from forgetless.adaptation.encoder import AdaptedEncoder, adaptable_methods
from forgetless.adaptation.recipes import (
    AdaptationNotSupportedError,
    Recipe,
    check_method,
    family_of,
)
from forgetless.adaptation.views import views_for
from forgetless.encoders.base import Encoder, progress_bar
from forgetless.validation import check_labels, is_integer, is_real

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
    check_method(method, recipes, encoder.name)
    recipe = recipes[method]
    if not is_integer(seed) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if epochs is not None:
        if not is_integer(epochs) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        recipe = _replace(recipe, epochs=int(epochs))
    if learning_rate is not None:
        if not (is_real(learning_rate) and 0 < learning_rate < math.inf):
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
        if not is_integer(views) or views < 1:
            raise ValueError(f"views must be an integer >= 1, got {views!r}")
        recipe = _replace(recipe, views=int(views))
    if contrastive is not None:
        if not (is_real(contrastive) and 0 <= contrastive < math.inf):
            raise ValueError(f"contrastive must be a number >= 0, got {contrastive!r}")
        recipe = _replace(recipe, contrastive=float(contrastive))
    if recipes[method].epochs == 0 and contrastive:
        raise ValueError(f"method {method!r} trains no weight; leave contrastive out")
    if recipes[method].epochs == 0 and not recipe.refresh_norms:
        raise ValueError(
            f"method {method!r} trains no weight and only refreshes batch-norm statistics: "
            "refresh_norms=False would leave the encoder unchanged"
        )
    if recipe.views > 1 and family_of(encoder) != "efficientnet":
        raise AdaptationNotSupportedError(
            f"views > 1 makes moved copies of images, and {encoder.name!r} does not encode "
            "images; use views=1"
        )
    if recipes[method].epochs == 0 and views is not None and views > 1:
        raise ValueError(f"method {method!r} trains no weight; leave views out")
    if recipe.refresh_norms and family_of(encoder) != "efficientnet":
        raise AdaptationNotSupportedError(
            f"refresh_norms needs batch norms, and {encoder.name!r} has none; "
            "it applies to efficientnet-lite0"
        )
    if not (is_real(validation_fraction) and 0 <= validation_fraction < 1):
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    if not is_integer(min_classes) or min_classes < 2:
        raise ValueError(f"min_classes must be an integer >= 2, got {min_classes!r}")
    if not is_real(significance):
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
        backend = backend_for(copy.deepcopy(encoder), method)
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


def _check_split(backend: Backend, encoder: Encoder, inputs: Sequence[Any]) -> None:
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


def _replace(recipe: Recipe, **changes: Any) -> Recipe:
    return Recipe(**{**asdict(recipe), **changes})


def _train(
    backend: Backend,
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
