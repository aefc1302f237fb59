"""The estimator users hold: a frozen random layer, additive statistics and an analytic head.

``ContinualClassifier`` learns each batch in closed form. Because it keeps only sums over the
projected samples, the model after any sequence of ``partial_fit`` calls equals the model fit on
everything at once, learners trained apart ``merge`` by adding their sums, and samples or whole
classes are ``forget``-ed by subtracting them.

>>> from sklearn.datasets import load_digits
>>> X, y = load_digits(return_X_y=True)
>>> clf = ContinualClassifier(n_components=500, random_state=0)
>>> for task in ([0, 1], [2, 3], [4, 5], [6, 7], [8, 9]):   # five class-incremental tasks
...     seen = np.isin(y[:1200], task)
...     clf = clf.partial_fit(X[:1200][seen], y[:1200][seen])
>>> joint = ContinualClassifier(n_components=500, alpha=clf.alpha_, random_state=0)
>>> joint = joint.fit(X[:1200], y[:1200])
>>> bool(np.allclose(clf.coef_, joint.coef_, rtol=1e-9, atol=1e-12))
True
>>> clf.score(X[1200:], y[1200:]) > 0.9
True
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from forgetless.heads import (
    HEADS,
    HOST,
    OWM_ORDER_ERROR,
    LDAHead,
    NCMHead,
    OWMHead,
    RidgeHead,
    RLSHead,
)
from forgetless.projection import make_projection
from forgetless.statistics import SufficientStatistics
from forgetless.validation import check_features, check_labels, label_family

_COMPUTE_DTYPES = {"float64": np.float64, "float32": np.float32}
# Parameters that change only speed, not the model: learners differing in them may merge.
_MERGE_EXEMPT = ("chunk_size", "device", "warm_start")
_FITTED = ("n_features_in_", "seed_", "projection_", "statistics_", "head_", "classes_", "_stale")


class ContinualClassifier(ClassifierMixin, BaseEstimator):
    """Exemplar-free continual classifier on frozen features, trained in closed form.

    Parameters
    ----------
    projection : ``"orthogonal"`` (default), ``"gaussian"``, ``"hadamard"``, ``"fourier"``,
        ``"guided"`` (units selected on the first batch, see :mod:`forgetless.guided`) or
        ``"none"`` (a linear probe on the encoder features). See :mod:`forgetless.projection`.
    n_components : width M of the random layer.
    activation : ``"relu"``, ``"gelu"``, ``"tanh"``, ``"sigmoid"``, ``"identity"``; ``None`` picks
        the layer's default (relu; cos for fourier; identity for none).
    bias : add a random bias before the activation.
    projection_scale : ``"unit"`` (weights / sqrt(d)) or ``"ranpac"`` (RanPAC's N(0, 1)).
    gamma : RBF width of the fourier layer (default 1 / d).
    projection_params : settings of ``projection="guided"`` (see :mod:`forgetless.guided`).
    head : ``"ridge"`` (default), ``"rls"``, ``"ncm"``, ``"lda"`` or ``"owm"`` (orthogonal
        weight modification, a task-order-dependent comparison head). See
        :mod:`forgetless.heads`.
    alpha : ridge penalty lambda, or ``"auto"`` to choose it by GCV from all statistics so far.
        ``head="rls"`` needs a number.
    alphas : optional grid for ``alpha="auto"``; by default a bracket search (few factorisations).
    warm_start : start each refit's lambda search from the previous lambda (``alpha="auto"``):
        faster refits, but on a GCV curve with several minima the choice may then differ from a
        fresh fit's, so the model is no longer identical to joint training. Off by default.
    fit_intercept : fit an unpenalised intercept (``head="ridge"``), computed exactly from the
        sums by centring them. ``rls`` and ``owm`` have no intercept (as RanPAC and ACIL).
    shrinkage : LDA covariance shrinkage, ``"oas"`` or a number in [0, 1].
    per_class_gram : keep one Gram matrix per class (C x M^2 memory) so ``forget_classes`` can
        remove a class exactly without its data.
    compute_dtype : ``"float64"`` (default, exact) or ``"float32"`` (projection and rank-k
        updates in float32, still accumulated in float64).
    chunk_size : rows projected at a time (default: about 64 MiB of projected features).
    device : ``None`` (numpy) or a torch device (``"cpu"``, ``"cuda"``): the projection and the
        Gram accumulation run in torch there (see :mod:`forgetless.torch_backend`), and so do
        the ridge head's Cholesky factorisations and GCV search; statistics and solves stay
        float64. A model saved with ``device="cuda"`` loads anywhere with
        ``ContinualClassifier.load(path, device=None)``.
    random_state : integer seed of the random layer. ``None`` draws one (then ``seed_`` tells it);
        learners can only merge when their seeds agree.
    """

    def __init__(
        self,
        projection: str = "orthogonal",
        n_components: int = 2000,
        activation: str | None = None,
        bias: bool = False,
        projection_scale: str = "unit",
        gamma: float | None = None,
        projection_params: dict[str, Any] | None = None,
        head: str = "ridge",
        alpha: float | str = "auto",
        alphas: Any = None,
        warm_start: bool = False,
        fit_intercept: bool = True,
        shrinkage: float | str = "oas",
        per_class_gram: bool = False,
        compute_dtype: str = "float64",
        chunk_size: int | None = None,
        device: str | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.projection = projection
        self.n_components = n_components
        self.activation = activation
        self.bias = bias
        self.projection_scale = projection_scale
        self.gamma = gamma
        self.projection_params = projection_params
        self.head = head
        self.alpha = alpha
        self.alphas = alphas
        self.warm_start = warm_start
        self.fit_intercept = fit_intercept
        self.shrinkage = shrinkage
        self.per_class_gram = per_class_gram
        self.compute_dtype = compute_dtype
        self.chunk_size = chunk_size
        self.device = device
        self.random_state = random_state

    # ------------------------------------------------------------------ construction helpers
    def _dtype(self) -> type:
        if self.compute_dtype not in _COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype must be 'float64' or 'float32', got {self.compute_dtype!r}"
            )
        return _COMPUTE_DTYPES[self.compute_dtype]

    def _make_head(self, n_components: int) -> Any:
        if self.head == "ridge":
            if not (self.alpha == "auto" or (not isinstance(self.alpha, str) and self.alpha >= 0)):
                raise ValueError(f"alpha must be 'auto' or a number >= 0, got {self.alpha!r}")
            return RidgeHead(self.alpha, self.alphas, self.fit_intercept, self.warm_start)
        if self.head == "rls":
            return RLSHead(self.alpha, n_components)
        if self.head == "ncm":
            return NCMHead()
        if self.head == "lda":
            return LDAHead(self.shrinkage)
        if self.head == "owm":
            return OWMHead(self.alpha, n_components)
        raise ValueError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")

    def _new_state(self, X: np.ndarray, y_index: np.ndarray) -> dict[str, Any]:
        """Fresh fitted attributes for a first batch (nothing assigned yet). Only a guided
        layer looks at the batch itself; random layers need just its width."""
        self._dtype()
        if self.random_state is None:
            seed = int(np.random.SeedSequence().entropy % (2**32))
        elif isinstance(self.random_state, (int, np.integer)):
            seed = int(self.random_state)
        else:
            raise ValueError(
                f"random_state must be an int or None (it is saved with the model), "
                f"got {type(self.random_state).__name__}"
            )
        layer = make_projection(
            self.projection,
            n_features=X.shape[1],
            n_components=self.n_components,
            seed=seed,
            activation=self.activation,
            bias=self.bias,
            scale=self.projection_scale,
            gamma=self.gamma,
            params=self.projection_params,
            X=X,
            y_index=y_index,
        )
        return {
            "n_features_in_": X.shape[1],
            "seed_": seed,
            "projection_": layer,
            "statistics_": SufficientStatistics(layer.n_outputs, 0, self.per_class_gram),
            "head_": self._make_head(layer.n_outputs),
            "classes_": np.array([]),
            "_stale": True,
        }

    def _backend(self, layer: Any) -> Any:
        from forgetless.torch_backend import TorchBackend

        return TorchBackend(layer, self.device, self._dtype())

    def _linalg(self) -> Any:
        """Where the ridge head's factorisations run: LAPACK on the host, or the torch device."""
        if self.device is None:
            return HOST
        from forgetless.torch_backend import TorchLinalg

        return TorchLinalg(self.device)

    def _features(self, X: np.ndarray, layer: Any = None) -> Any:
        """(start, stop, H) chunks of the projected X, on the numpy path or the torch device."""
        layer = self.projection_ if layer is None else layer
        if self.device is not None:
            return self._backend(layer).features(X, self.chunk_size)
        return layer.iter_transform(X, self._dtype(), self.chunk_size)

    def _score_chunks(self, X: np.ndarray, argmax: bool = False) -> Any:
        """(start, stop, scores or their argmax) chunk by chunk. On a torch device a linear
        head scores there, so only n x C scores (or n labels) cross to the host, not n x M."""
        head = self.head_
        if self.device is not None and getattr(head, "linear", False):
            backend = self._backend(self.projection_)
            yield from backend.scores(X, head.coef_, head.intercept_, self.chunk_size, argmax)
            return
        for start, stop, H in self._features(X):
            scores = head.decision_function(np.asarray(H, dtype=np.float64))
            yield start, stop, scores.argmax(1) if argmax else scores

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "statistics_")

    # ------------------------------------------------------------------ learning
    def fit(self, X: Any, y: Any) -> ContinualClassifier:
        """Fit a fresh learner on (X, y): the same as a new learner plus one ``partial_fit``."""
        saved = {k: self.__dict__.pop(k) for k in _FITTED if k in self.__dict__}
        try:
            self.partial_fit(X, y)
            self._refit_head()
        except BaseException:
            for key in _FITTED:
                self.__dict__.pop(key, None)
            self.__dict__.update(saved)
            raise
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> ContinualClassifier:
        """Learn one more batch. New classes may appear in any call; no task id is needed.

        ``classes`` is accepted for scikit-learn compatibility: when given, every label in ``y``
        must be among them. ``classes_`` lists the classes that have samples.
        """
        fitted = self.__sklearn_is_fitted__()
        X = check_features(X, self.n_features_in_ if fitted else None, self)
        labels = check_labels(y, X.shape[0], type(self).__name__)
        if classes is not None:
            unknown = np.setdiff1d(labels, np.asarray(classes))
            if unknown.size:
                raise ValueError(f"y has labels {unknown.tolist()} that are not in classes")
        old_classes = self.classes_ if fitted else np.array([])
        if old_classes.size and label_family(old_classes) != label_family(labels):
            raise ValueError(
                f"y has labels of type {labels.dtype} but this learner was trained on labels of "
                f"type {old_classes.dtype}; unseen label type"
            )
        new_classes = np.union1d(old_classes, labels) if old_classes.size else np.unique(labels)
        index = np.searchsorted(new_classes, labels)
        added = np.setdiff1d(new_classes, old_classes)
        positions = (
            np.searchsorted(old_classes, added)
            if old_classes.size
            else np.zeros(added.size, dtype=np.int64)
        )
        state = self.__dict__ if fitted else self._new_state(X, index)
        layer = state["projection_"]
        batch = SufficientStatistics(layer.n_outputs, new_classes.size, self.per_class_gram)
        head = state["head_"]
        rls = copy.deepcopy(head) if isinstance(head, RLSHead) else None
        if rls is not None:
            rls.insert_classes(positions)
        if self.device is not None and rls is None:  # sums accumulated on the device
            batch = self._backend(layer).statistics(
                X, index, new_classes.size, self.per_class_gram, self.chunk_size
            )
        else:
            for start, stop, H in self._features(X, layer):
                batch.add(H, index[start:stop])
                if rls is not None:
                    rls.update(np.asarray(H, dtype=np.float64), index[start:stop])
        if isinstance(rls, OWMHead):
            rls.finish_task()  # one partial_fit call is one OWM task

        # Everything is checked and computed: commit.
        if not fitted:
            self.__dict__.update(state)
        self.statistics_.insert_classes(positions)
        self.statistics_ += batch
        self.classes_ = new_classes
        if rls is not None:
            self.head_ = rls
        self._stale = True
        return self

    def _refit_head(self) -> None:
        if self._stale:
            if self.statistics_.n_classes == 0:
                raise ValueError("the learner has no classes left to predict")
            # An RLS head is kept current batch by batch; the others solve from the sums.
            if isinstance(self.head_, RidgeHead) and not isinstance(self.head_, RLSHead):
                self.head_.fit(self.statistics_, ops=self._linalg())
            elif not isinstance(self.head_, RLSHead):
                self.head_.fit(self.statistics_)
            self._stale = False

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X: Any) -> np.ndarray:
        """Scores (n, C); for two classes, the score of ``classes_[1]`` minus ``classes_[0]``."""
        scores = self._scores(X)
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = check_features(X, self.n_features_in_, self)
        self._refit_head()
        out = np.empty((X.shape[0], self.classes_.size))
        for start, stop, scores in self._score_chunks(X):
            out[start:stop] = scores
        return out

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest score, computed chunk by chunk (no n x C intermediate)."""
        check_is_fitted(self)
        X = check_features(X, self.n_features_in_, self)
        self._refit_head()
        out = np.empty(X.shape[0], dtype=np.int64)
        for start, stop, best in self._score_chunks(X, argmax=True):
            out[start:stop] = best
        return self.classes_[out]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the scores. A posterior for ``head="lda"``; otherwise uncalibrated."""
        return softmax(self._scores(X), axis=1)

    # ------------------------------------------------------------------ fitted views
    @property
    def coef_(self) -> np.ndarray:
        """Head weights (M, C) over the projected features."""
        check_is_fitted(self)
        self._refit_head()
        return self.head_.coef_

    @property
    def intercept_(self) -> np.ndarray:
        check_is_fitted(self)
        self._refit_head()
        return self.head_.intercept_

    @property
    def alpha_(self) -> float | None:
        """The ridge penalty in use (chosen by GCV when ``alpha="auto"``); None for ncm/lda."""
        check_is_fitted(self)
        self._refit_head()
        return getattr(self.head_, "alpha_", None)

    @property
    def n_samples_seen_(self) -> int:
        check_is_fitted(self)
        return self.statistics_.n_samples

    # ------------------------------------------------------------------ merge and forget
    def merge(self, other: ContinualClassifier) -> ContinualClassifier:
        """Add another learner's statistics: as if this learner had also seen its data."""
        if not isinstance(other, ContinualClassifier):
            raise TypeError(f"can only merge a ContinualClassifier, got {type(other).__name__}")
        if self.head == "owm":
            raise ValueError(OWM_ORDER_ERROR)
        check_is_fitted(other)
        mine = {k: v for k, v in self.get_params().items() if k not in _MERGE_EXEMPT}
        theirs = {k: v for k, v in other.get_params().items() if k not in _MERGE_EXEMPT}
        differ = sorted(k for k in mine if not _same(mine[k], theirs[k]))
        if differ:
            raise ValueError(f"cannot merge learners with different settings: {', '.join(differ)}")
        if not self.__sklearn_is_fitted__():
            self.__dict__.update(copy.deepcopy(_fitted_state(other)))
            return self
        if other.seed_ != self.seed_:
            raise ValueError(
                f"cannot merge learners with different random layers (seed {self.seed_} vs "
                f"{other.seed_}); give both the same random_state"
            )
        if other.n_features_in_ != self.n_features_in_:
            raise ValueError(
                f"cannot merge learners with different input widths ({self.n_features_in_} vs "
                f"{other.n_features_in_})"
            )
        if (
            other.classes_.size
            and self.classes_.size
            and (label_family(other.classes_) != label_family(self.classes_))
        ):
            raise ValueError("cannot merge learners whose labels have different types")
        union = np.union1d(self.classes_, other.classes_)
        incoming = other.statistics_.copy()
        incoming.insert_classes(
            np.searchsorted(other.classes_, np.setdiff1d(union, other.classes_))
        )
        self.statistics_.insert_classes(
            np.searchsorted(self.classes_, np.setdiff1d(union, self.classes_))
        )
        self.statistics_ += incoming
        self.classes_ = union
        self._after_bulk_change()
        return self

    def forget(self, X: Any, y: Any) -> ContinualClassifier:
        """Remove samples it was trained on, exactly. A class left with no samples disappears.

        Refuses (state unchanged) labels it never learned or more samples of a class than it has.
        """
        check_is_fitted(self)
        X = check_features(X, self.n_features_in_, self)
        labels = check_labels(y, X.shape[0], type(self).__name__)
        if label_family(labels) != label_family(self.classes_):
            raise ValueError(
                f"y has labels of type {labels.dtype}; this learner has {self.classes_.dtype}"
            )
        unknown = np.setdiff1d(labels, self.classes_)
        if unknown.size:
            raise ValueError(f"cannot forget labels never learned: {unknown.tolist()}")
        index = np.searchsorted(self.classes_, labels)
        removing = np.bincount(index, minlength=self.classes_.size)
        too_many = np.flatnonzero(removing > self.statistics_.counts)
        if too_many.size:
            c = too_many[0]
            raise ValueError(
                f"cannot remove {removing[c]} samples of class {self.classes_[c].item()!r}: "
                f"only {self.statistics_.counts[c]} were learned"
            )
        batch = SufficientStatistics(
            self.statistics_.n_components, self.classes_.size, self.per_class_gram
        )
        rls = copy.deepcopy(self.head_) if isinstance(self.head_, RLSHead) else None
        for start, stop, H in self._features(X):
            batch.add(H, index[start:stop])
            if rls is not None:
                rls.downdate(np.asarray(H, dtype=np.float64))
        self.statistics_ -= batch
        emptied = np.flatnonzero(self.statistics_.counts == 0)
        if rls is not None:
            rls.coef_ = rls.P @ self.statistics_.class_sums
            rls.remove_classes(emptied)
            self.head_ = rls
        self._drop_classes(emptied)
        self._stale = True
        return self

    def forget_classes(self, classes: Any) -> ContinualClassifier:
        """Remove whole classes exactly, without their data (needs ``per_class_gram=True``)."""
        check_is_fitted(self)
        if self.head == "owm":
            raise ValueError(OWM_ORDER_ERROR)
        classes = np.atleast_1d(np.asarray(classes))
        if classes.size and label_family(classes) != label_family(self.classes_):
            raise ValueError(
                f"classes have type {classes.dtype}; this learner has {self.classes_.dtype}"
            )
        unknown = np.setdiff1d(classes, self.classes_)
        if unknown.size:
            raise ValueError(f"cannot forget classes never learned: {unknown.tolist()}")
        if not self.per_class_gram:
            raise ValueError(
                "forget_classes needs per_class_gram=True (one Gram matrix kept per class); "
                "without it, call forget(X, y) with all of the class's training samples"
            )
        index = np.searchsorted(self.classes_, classes)
        for c in index:
            self.statistics_.subtract_class(int(c))
        self._drop_classes(index)
        self._after_bulk_change()
        return self

    def _drop_classes(self, index: np.ndarray) -> None:
        if index.size:
            self.statistics_.remove_classes(index)
            self.classes_ = np.delete(self.classes_, index)

    def _after_bulk_change(self) -> None:
        """Statistics changed wholesale (merge, class removal): an RLS head recomputes P."""
        if isinstance(self.head_, RLSHead):
            self.head_.fit(self.statistics_)
        self._stale = True

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically (npz arrays + JSON metadata, no pickle)."""
        from forgetless.persistence import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = "as-saved") -> ContinualClassifier:
        """Read a model written by :meth:`save`, verifying its checksums.

        ``device`` overrides the saved device: ``load(path, device=None)`` runs a model trained
        with ``device="cuda"`` on a machine without a GPU.
        """
        from forgetless.persistence import load_model

        return load_model(path, device=device)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def _fitted_state(clf: ContinualClassifier) -> dict[str, Any]:
    return {k: clf.__dict__[k] for k in _FITTED}
