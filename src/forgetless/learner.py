"""The estimator users hold: a frozen layer, additive statistics and an analytic head.

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
>>> bool(np.allclose(clf.coef_, joint.coef_, rtol=1e-9, atol=1e-9 * abs(joint.coef_).max()))
True
>>> clf.score(X[1200:], y[1200:]) > 0.9
True
"""

from __future__ import annotations

import copy
import math
import os
import reprlib
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from forgetless.engine import make_engine
from forgetless.heads import DECISIONS, HEADS, OWM_ORDER_ERROR, Head, head_params, make_head
from forgetless.layers import (
    ACTIVATIONS,
    PROJECTIONS,
    KernelWidthWarning,
    build_bytes,
    check_layer_params,
    fit_bytes,
    layer_from_config,
    layer_mismatches,
    make_layer,
    resolve_projection,
)
from forgetless.linalg import OffsetRoundingWarning, serialised
from forgetless.persistence import ModelFileError, read_model_file, write_model_file
from forgetless.statistics import SufficientStatistics, packed_diagonal
from forgetless.validation import (
    check_classes,
    check_feature_names,
    check_features,
    check_label_family,
    check_labels,
    feature_names,
    label_family,
    user_stacklevel,
)

# Numeric settings, where a bool would pass scikit-learn's Interval check as 0 or 1.
_NUMBERS = ("n_components", "gamma", "alpha", "shrinkage", "chunk_size", "random_state")
# The statistics belong to the layer these settings build: they cannot change after fitting.
_LAYER_PARAMS = (
    "projection",
    "n_components",
    "activation",
    "bias",
    "projection_scale",
    "gamma",
    "projection_params",
    "per_class_gram",
    "random_state",
)
# Settings that change only speed (or where the work runs), not the model: learners differing
# in them may merge, and they may change at any time.
_SPEED_PARAMS = ("chunk_size", "device", "compute_dtype", "warm_start")
_FITTED = (
    "n_features_in_",
    "feature_names_in_",
    "seed_",
    "projection_",
    "statistics_",
    "head_",
    "classes_",
    "single_sums_",
    "_stale",
    "_fitted_params",
    "_warned",  # the numerical-health warnings given (each once per learner)
)
_SMALLEST_ALPHA = float(np.finfo(np.float64).tiny)  # 1 / alpha must not overflow
DEFAULT_N_COMPONENTS = 2000  # the layer's width unless given (forgetless run's too)
MODEL_KIND = "forgetless-model"
MODEL_VERSION = 3  # 3: G stored as its factor (few samples) or packed triangle
READABLE_VERSIONS = (2,)  # older versions this one still reads (2: G as a full upper triangle)
# Building a layer from a model file may allocate at most this much unless the caller allows
# more: the file holds only the layer's seed, so its size does not bound the cost.
MAX_LAYER_BYTES = 2 << 30


class ContinualClassifier(ClassifierMixin, BaseEstimator):
    """Exemplar-free continual classifier on frozen features, trained in closed form.

    Parameters
    ----------
    projection : ``"auto"`` (default: an orthogonal ReLU layer of M units where it is at least
        twice as wide as the features, none on wider features;
        :func:`forgetless.layers.resolve_projection` says why), ``"orthogonal"``,
        ``"gaussian"``, ``"hadamard"``, ``"fourier"``, ``"guided"`` (built from the first
        batch, then frozen: by default the wide ReLU layer's kernel compressed to M features,
        :mod:`forgetless.layers.kernel`) or ``"none"`` (a linear probe on the encoder
        features). See :mod:`forgetless.layers`. ``projection_.kind`` says which was built.
    n_components : width M of the layer.
    activation : ``"relu"``, ``"gelu"``, ``"tanh"``, ``"sigmoid"``, ``"identity"``; ``None`` picks
        the layer's default (relu; cos for fourier; identity for none). Where
        ``projection="auto"`` builds no layer, the features stay as they are.
    bias : add a random bias before the activation (not where ``projection="auto"`` builds
        no layer, as ``activation``).
    projection_scale : ``"unit"`` (weights / sqrt(d)) or ``"ranpac"`` (RanPAC's N(0, 1)).
    gamma : RBF width of the fourier layer (default 1 / d).
    projection_params : settings of ``projection="guided"``: ``{"method": "kernel"}`` (the
        default; ``n_landmarks``, ``draws_per_class``, ``max_samples``, ``flatten``, ``linear``,
        ``shrinkage`` of the class population the landmarks are drawn from: ``"oas"`` or a number
        in [0, 1])
        or ``{"method": "units", ...}`` (data-shaped and SCN-selected random units).
    head : ``"ridge"`` (default), ``"rls"``, ``"ncm"``, ``"lda"`` or ``"owm"`` (orthogonal
        weight modification, a task-order-dependent comparison head). See
        :mod:`forgetless.heads`.
    alpha : ridge penalty lambda, or ``"auto"`` to choose it from all statistics so far (an
        estimate of the leave-one-out classification error; GCV beyond 512 classes).
        ``head="rls"`` and ``"owm"`` need a number > 0.
    alphas : optional list of lambdas for ``alpha="auto"`` to choose from.
    warm_start : start each refit's lambda search from the previous lambda (``alpha="auto"``):
        faster refits, but on a curve with several minima the choice may then differ from a
        fresh fit's, so the model is no longer identical to joint training, and it depends on
        when the head was refitted (a refit happens at the first prediction after new data).
        Model files keep the walk's start, so a loaded learner goes on as the saved one would.
        Off by default.
        (While at most ``n_components / 2`` samples are in, every refit searches globally
        anyway: it is cheaper there, see :class:`forgetless.linalg.RowSpace`.)
    decision : how ``head="ridge"`` scores classes from its solve: ``"regression"`` (the
        one-hot regression's outputs), ``"discriminant"`` (linear discriminant analysis with
        the within-class covariance penalised by the same lambda, from the same solve), or
        ``"auto"`` (default): the discriminant once the classes hold 8 samples on average,
        the regression below that. Needs ``fit_intercept``
        (see :class:`~forgetless.heads.RidgeHead`). Where the discriminant is undefined (one
        class, or a fit that interpolates the classes, as with one sample each) it scores by
        the regression, whichever is asked; ``head_.decision_`` says which scored.
    fit_intercept : fit an unpenalised intercept (``head="ridge"``), computed exactly from the
        sums by centring them. ``rls`` and ``owm`` have no intercept (as RanPAC and ACIL).
    shrinkage : LDA covariance shrinkage, ``"oas"`` or a number in [0, 1].
    per_class_gram : keep one Gram matrix per class (C x M^2 memory) so ``forget_classes`` can
        remove a class exactly without its data.
    compute_dtype : ``"float64"`` (default, exact) or ``"float32"`` (projection and rank-k
        updates in float32, still accumulated in float64).
    chunk_size : rows projected at a time (default: about 64 MiB of projected features);
        another value sums other row blocks, so G differs by float64 rounding.
    device : ``None`` (numpy) or a torch device (``"cpu"``, ``"cuda"``): projection, Gram
        accumulation and the ridge head's factorisations run in torch there (see
        :mod:`forgetless.engine`); statistics stay float64. A model saved with
        ``device="cuda"`` loads anywhere with ``ContinualClassifier.load(path, device=None)``.
    random_state : integer seed of the layer. ``None`` draws one (then ``seed_`` tells it);
        learners can only merge when their seeds agree.

    Settings may change after fitting (``set_params``) where the statistics allow it: the
    head's settings (``head``, ``alpha``, ``alphas``, ``fit_intercept``, ``decision``,
    ``shrinkage``) take effect at the next prediction, rebuilt from the sums (except switching
    to ``"owm"``, whose weights depend on the task order); speed settings at the next call; the
    layer's settings cannot change (the sums belong to the layer) and the next call says so.

    What is guaranteed: for a fixed ``alpha`` the model after any sequence of ``partial_fit``,
    ``merge`` and ``forget`` equals a fresh fit on the net data (to float64 rounding, ~1e-9
    relative), whatever the ``decision`` (both rules are functions of the sums; ``"auto"``
    switches on the class counts). With ``alpha="auto"`` lambda is a deterministic function of
    the sums, so the same sequence of batches always gives the same model, and a fresh fit on
    the same data chooses the same lambda unless two candidate lambdas score within rounding of
    each other.
    Bit-for-bit determinism holds for the same data, seed and BLAS thread count on one machine.
    The same projected rows give the same sums whatever the thread count; the projection itself
    is BLAS's matrix product, which some OpenBLAS kernels round differently per thread count,
    so across thread counts G agrees to ~1e-16 relative, not always bit for bit.
    """

    _parameter_constraints: dict = {
        "projection": [StrOptions(set(PROJECTIONS))],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS)), None],
        "bias": ["boolean"],
        "projection_scale": [StrOptions({"unit", "ranpac"})],
        "gamma": [Interval(Real, 0, 1e100, closed="right"), None],  # sqrt(2 gamma) W stays finite
        "projection_params": [dict, None],
        "head": [StrOptions(set(HEADS))],
        "alpha": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "alphas": ["array-like", None],
        "warm_start": ["boolean"],
        "fit_intercept": ["boolean"],
        "decision": [StrOptions(set(DECISIONS))],
        "shrinkage": [StrOptions({"oas"}), Interval(Real, 0, 1, closed="both")],
        "per_class_gram": ["boolean"],
        "compute_dtype": [StrOptions({"float64", "float32"})],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str, None],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both"), None],
    }

    def __init__(
        self,
        projection: str = "auto",
        n_components: int = DEFAULT_N_COMPONENTS,
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
        decision: str = "auto",
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
        self.decision = decision
        self.shrinkage = shrinkage
        self.per_class_gram = per_class_gram
        self.compute_dtype = compute_dtype
        self.chunk_size = chunk_size
        self.device = device
        self.random_state = random_state

    # ------------------------------------------------------------------ settings
    def _checked_params(self) -> dict[str, Any]:
        """Every parameter, checked before any work; errors name the parameter."""
        for name in _NUMBERS:  # what scikit-learn's Interval gets wrong
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)):  # taken for 1
                raise ValueError(f"{name} must be a number, not a bool ({value!r})")
            if isinstance(value, Real) and not isinstance(
                value, (int, float, np.integer, np.floating)
            ):  # a Fraction: numpy's TypeError inside the check
                raise ValueError(
                    f"{name} must be an int or a float, got {type(value).__name__} {value!r}; "
                    f"pass float({value!r})"
                )
        with np.errstate(over="ignore"):  # a float32 gamma against 1e100: inf, rightly passed
            self._validate_params()
        # A copy: a projection_params dict changed in place later must not change what the
        # learner recorded as fitted (it would pass the changed-after-fitting check).
        try:
            params = copy.deepcopy(self.get_params())
        except (TypeError, copy.Error) as err:  # a generator, a lock: nothing a file can hold
            raise ValueError(
                f"projection_params must hold plain values (numbers, text, lists): {err}"
            ) from None
        if params["gamma"] is not None:  # a numpy number: a plain one for the file's JSON
            params["gamma"] = float(params["gamma"])
        if params["alphas"] is not None:
            values = params["alphas"]
            listed = not isinstance(values, (str, bytes, dict, set, frozenset))
            try:
                given = np.asarray(values, dtype=object) if listed else np.array([[]])
            except (TypeError, ValueError):
                given = np.array([[]])
            numbers = [
                v
                for v in given.ravel()
                if isinstance(v, Real) and not isinstance(v, (bool, np.bool_))
            ]
            alphas = np.asarray(numbers, dtype=np.float64)
            if (
                given.ndim != 1
                or alphas.size == 0
                or alphas.size != given.size
                or not np.all(np.isfinite(alphas))
                or not np.all(alphas >= _SMALLEST_ALPHA)
            ):
                raise ValueError(
                    "alphas must be a non-empty 1-D list of finite numbers of at least "
                    f"{_SMALLEST_ALPHA:.3g} (the smallest normal float64), got {values!r}"
                )
        alpha = params["alpha"]
        if alpha != "auto" and not _finite_float(alpha):
            raise ValueError(f"alpha must be 'auto' or a finite number, got {reprlib.repr(alpha)}")
        if HEADS[params["head"]].recursive and alpha != "auto" and alpha < _SMALLEST_ALPHA:
            raise ValueError(
                f"head={params['head']!r} starts from P = I / alpha: alpha must be at least "
                f"{_SMALLEST_ALPHA:.3g} (the smallest normal float64), got {alpha!r}"
            )
        if HEADS[params["head"]].needs_fixed_alpha and (
            params["alpha"] == "auto" or not params["alpha"] > 0
        ):
            raise ValueError(
                f"head={params['head']!r} needs a fixed alpha > 0, got {params['alpha']!r}"
            )
        if params["decision"] == "discriminant" and not params["fit_intercept"]:
            raise ValueError(
                "decision='discriminant' needs fit_intercept=True (the discriminant is built "
                "from the centred sums)"
            )
        check_layer_params(
            params["projection"],
            params["activation"],
            params["projection_params"],
            params["n_components"],
        )
        return params

    def _sync_params(self, params: dict[str, Any]) -> None:
        """Apply settings changed since fitting (``set_params``), or refuse those that cannot."""
        fitted = self._fitted_params
        changed = [k for k in _LAYER_PARAMS if not _same(params[k], fitted[k])]
        if changed:
            raise ValueError(
                f"{', '.join(changed)} changed after fitting, but the statistics belong to the "
                f"layer fitted with the old value; set it back, or call fit to start over"
            )
        wanted = head_params(params)
        if not _same(wanted, head_params(fitted)):
            if not HEADS[params["head"]].order_free or not self.head_.order_free:
                raise ValueError(OWM_ORDER_ERROR)
            self.head_ = self._fresh_head(params, self.statistics_)
            self._stale = True
        self._fitted_params = params

    def _fresh_head(self, params: dict[str, Any], stats: SufficientStatistics) -> Head:
        """A head for these statistics: recursive heads are rebuilt from the sums at once."""
        head = make_head(params, stats.n_components)
        if head.recursive and stats.n_classes:
            head.fit(stats)
        return head

    def _engine(self) -> Any:
        """The compute engine (numpy or torch) for the current device and dtype, made once."""
        key = (self.device, self.compute_dtype)
        cached = self.__dict__.get("_engine_cache")
        if cached is None or cached[0] != key:
            cached = (key, make_engine(*key))
            self.__dict__["_engine_cache"] = cached
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_engine_cache", None)  # device handles are remade, never pickled or copied
        return state

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "statistics_")

    def _prepared(self) -> dict[str, Any]:
        """Checked parameters of a fitted learner, with pending setting changes applied."""
        check_is_fitted(self)
        params = self._checked_params()
        self._sync_params(params)
        return params

    # ------------------------------------------------------------------ learning
    def _new_state(
        self, params: dict[str, Any], X: np.ndarray, y_index: np.ndarray, names: Any
    ) -> dict[str, Any]:
        """Fresh fitted attributes for a first batch (nothing assigned yet). Only a guided
        layer looks at the batch itself; random layers need just its width."""
        kind = resolve_projection(params["projection"], X.shape[1], params["n_components"])
        build = fit_bytes(kind, X.shape[1], params["n_components"], params["projection_params"])
        check_memory(kind, X.shape[1], params["n_components"], build)
        seed = params["random_state"]
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**32))
        layer = make_layer(
            kind,
            n_features=X.shape[1],
            n_components=params["n_components"],
            seed=int(seed),
            **_layer_settings(params, kind),
            params=params["projection_params"],
            X=X,
            y_index=y_index,
        )
        stats = SufficientStatistics(layer.n_outputs, 0, params["per_class_gram"])
        return {
            "n_features_in_": X.shape[1],
            "feature_names_in_": names,
            "seed_": int(seed),
            "projection_": layer,
            "statistics_": stats,
            "single_sums_": params["compute_dtype"] == "float32",
            "head_": make_head(params, layer.n_outputs),
            "classes_": np.array([]),
            "_stale": True,
            "_fitted_params": params,
        }

    def _single_sums(self) -> bool:
        """Whether the sums carry float32's rounding (learned or merged with float32 products
        at any time): a forget's check then allows for it."""
        return bool(self.__dict__.get("single_sums_", False))

    def _commit(self, state: dict[str, Any]) -> None:
        """Install fitted attributes computed without error (the only place state changes)."""
        if state.get("feature_names_in_", True) is None:
            state = dict(state)
            del state["feature_names_in_"]
            self.__dict__.pop("feature_names_in_", None)
        self.__dict__.update(state)

    def _warn_once(
        self, kind: str, message: str | None, category: type = OffsetRoundingWarning
    ) -> None:
        """Warn ``message`` (where there is one) once per learner and ``kind``, at the user's
        line: a stream of batches would repeat it at every batch or refit."""
        warned = self.__dict__.get("_warned", set())
        if message is None or kind in warned:
            return
        warnings.warn(message, category, stacklevel=user_stacklevel())
        self._warned = warned | {kind}  # only once the warning has not raised

    def _features_in(self, X: Any, reset: bool) -> tuple[np.ndarray, Any]:
        """(checked X, its column names); on a fitted learner names are checked, not taken."""
        if reset:
            names = feature_names(X)
        else:
            check_feature_names(self, X)
            names = getattr(self, "feature_names_in_", None)
        fitted = not reset
        return check_features(X, self.n_features_in_ if fitted else None, self), names

    @serialised
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

    @serialised
    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> ContinualClassifier:
        """Learn one more batch. New classes may appear in any call; no task id is needed.

        ``classes`` is accepted for scikit-learn compatibility: when given, every label in ``y``
        must be among them. ``classes_`` lists the classes that have samples. A batch that is
        refused (bad values, a wrong width, features so large the sums would overflow) leaves
        the learner as it was.
        """
        params = self._checked_params()
        fitted = self.__sklearn_is_fitted__()
        if fitted:
            self._sync_params(params)
        X, names = self._features_in(X, reset=not fitted)
        check_input_scale(X, params["compute_dtype"])
        labels = check_labels(y, X.shape[0], type(self).__name__)
        if classes is not None:
            classes = check_classes(classes)
            numeric = {"int", "float", "bool"}  # compared as numbers, as before (not stored)
            families = {label_family(classes), label_family(labels)}
            if len(families) > 1 and not families <= numeric:
                raise ValueError(
                    f"y has {label_family(labels)} labels but classes lists "
                    f"{label_family(classes)} labels"
                )
            unknown = np.setdiff1d(labels, classes)
            if unknown.size:
                raise ValueError(f"y has labels {unknown.tolist()} that are not in classes")
        old_classes = self.classes_ if fitted else np.array([])
        check_label_family(labels, old_classes)
        new_classes = np.union1d(old_classes, labels) if old_classes.size else np.unique(labels)
        index = np.searchsorted(new_classes, labels)
        added = np.setdiff1d(new_classes, old_classes)
        positions = np.searchsorted(old_classes, added)

        state = self.__dict__ if fitted else self._new_state(params, X, index, names)
        layer, head, stats = state["projection_"], state["head_"], state["statistics_"]
        engine = self._engine()
        if head.recursive:  # kept current row by row, on a copy until everything succeeded
            head = copy.deepcopy(head)
            head.insert_classes(positions)
            batch = SufficientStatistics(
                layer.n_outputs,
                new_classes.size,
                stats.per_class_gram,
                compact=stats.stays_compact(X.shape[0]),
            )
            for start, stop, H in engine.features(layer, X, self.chunk_size):
                batch.add(H, index[start:stop])
                if not batch.all_finite():  # before the head multiplies overflowing rows
                    raise _overflow()
                head.observe(np.asarray(H, dtype=np.float64), index[start:stop])
            head.end_batch()
            if not (np.isfinite(head.coef_).all() and np.isfinite(head.P).all()):
                raise _overflow()
        else:
            batch = engine.statistics(
                layer,
                X,
                index,
                new_classes.size,
                stats.per_class_gram,
                self.chunk_size,
                compact=stats.stays_compact(X.shape[0]),
            )
        if not batch.all_finite() or not stats.can_absorb(batch, positions):
            raise _overflow()
        _check_not_underflowing(batch, params["compute_dtype"])
        if fitted:
            _check_same_scale(batch, stats)
        # Before the commit: where warnings are errors, the call raises with nothing learned.
        self._warn_once("layer", layer.advice(X), KernelWidthWarning)

        # Everything is checked and computed: commit (nothing below can fail).
        if not fitted:
            self._commit(state)
        self.statistics_.insert_classes(positions)
        self.statistics_ += batch
        self.single_sums_ = self._single_sums() or params["compute_dtype"] == "float32"
        self.classes_ = new_classes
        self.head_ = head
        self._stale = True
        return self

    def _refit_head(self) -> None:
        if self._stale:
            if self.statistics_.n_classes == 0:
                raise ValueError("the learner has no classes left to predict")
            self._warn_once(
                "offset",
                _centring_message(
                    self.statistics_,
                    self._single_sums(),
                    centred=getattr(self.head_, "fit_intercept", True),
                ),
            )
            if not self.head_.recursive:  # recursive heads are kept current batch by batch
                self.head_.fit(self.statistics_, ops=self._engine().linalg)
            self._stale = False

    # ------------------------------------------------------------------ prediction
    @serialised
    def decision_function(self, X: Any) -> np.ndarray:
        """Scores (n, C); for two classes, the score of ``classes_[1]`` minus ``classes_[0]``."""
        scores = self._scores(X)
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def _score_chunks(self, X: np.ndarray, argmax: bool = False) -> Any:
        """(start, stop, scores or their argmax) chunk by chunk; a linear head scores inside
        the engine (on a device only n x C scores cross back, not n x M features)."""
        head, engine, layer = self.head_, self._engine(), self.projection_
        if head.linear:
            chunks = engine.scores(
                layer, X, head.coef_, head.intercept_, self.chunk_size, argmax=False
            )
        else:
            chunks = (
                (start, stop, head.decision_function(np.asarray(H, dtype=np.float64)))
                for start, stop, H in engine.features(layer, X, self.chunk_size)
            )
        for start, stop, scores in chunks:
            if not np.isfinite(scores).all():
                raise ValueError(
                    "the scores overflow: X's features are too large for this model "
                    "(check the encoder's output scale)"
                )
            yield start, stop, scores.argmax(1) if argmax else scores

    def _checked_X(self, X: Any) -> np.ndarray:
        self._prepared()
        X, _ = self._features_in(X, reset=False)
        self._refit_head()
        return X

    def _scores(self, X: Any) -> np.ndarray:
        X = self._checked_X(X)
        out = np.empty((X.shape[0], self.classes_.size))
        for start, stop, scores in self._score_chunks(X):
            out[start:stop] = scores
        return out

    @serialised
    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest score, computed chunk by chunk (no n x C intermediate)."""
        X = self._checked_X(X)
        out = np.empty(X.shape[0], dtype=np.int64)
        for start, stop, best in self._score_chunks(X, argmax=True):
            out[start:stop] = best
        return self.classes_[out]

    @serialised
    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the scores. A posterior for ``head="lda"``; otherwise uncalibrated."""
        return softmax(self._scores(X), axis=1)

    # ------------------------------------------------------------------ fitted views
    @property
    @serialised
    def coef_(self) -> np.ndarray:
        """Head weights (C, M): one row per class over the M projected features (the input
        features themselves where no layer is built), laid out as scikit-learn's linear models
        lay theirs, so its feature-selection tools (``RFE``, ``SelectFromModel``) read one
        weight per feature. (The head keeps them as ``head_.coef_``, (M, C).)"""
        self._prepared()
        self._refit_head()
        return self.head_.coef_.T

    @property
    @serialised
    def intercept_(self) -> np.ndarray:
        self._prepared()
        self._refit_head()
        return self.head_.intercept_

    @property
    @serialised
    def alpha_(self) -> float | None:
        """The ridge penalty in use (chosen from the sums for ``alpha="auto"``); None: ncm/lda."""
        self._prepared()
        self._refit_head()
        return getattr(self.head_, "alpha_", None)

    @property
    def n_samples_seen_(self) -> int:
        check_is_fitted(self)
        return self.statistics_.n_samples

    # ------------------------------------------------------------------ merge and forget
    def _require_order_free(self) -> None:
        if not self.head_.order_free:
            raise ValueError(OWM_ORDER_ERROR)

    @serialised
    def merge(self, other: ContinualClassifier) -> ContinualClassifier:
        """Add another learner's statistics: as if this learner had also seen its data.

        Every check runs before anything changes: same settings, seed, input width, feature
        names, label type and the same layer (guided layers are compared unit by unit, since
        each is selected on its own first batch). A learner that has not been fitted adds
        nothing (given the same settings).
        """
        if not isinstance(other, ContinualClassifier):
            raise TypeError(f"can only merge a ContinualClassifier, got {type(other).__name__}")
        if other is self:
            raise ValueError(
                "a learner cannot merge itself: its data would count twice (merge a copy if "
                "that is meant)"
            )
        params = self._checked_params()
        if not HEADS[params["head"]].order_free:
            raise ValueError(OWM_ORDER_ERROR)
        other_fitted = other.__sklearn_is_fitted__()
        theirs = other._prepared() if other_fitted else other._checked_params()
        differ = sorted(
            k for k in params if k not in _SPEED_PARAMS and not _same(params[k], theirs[k])
        )
        if differ:
            raise ValueError(f"cannot merge learners with different settings: {', '.join(differ)}")
        if not other_fitted:
            return self  # it has seen no data: nothing to add
        if not self.__sklearn_is_fitted__():
            state = copy.deepcopy(_fitted_state(other))
            # the head is this learner's own (its speed settings, warm_start among them, may
            # differ from the other's): built afresh from the sums, solved at the next predict
            head = self._fresh_head(params, state["statistics_"])
            self._commit(state | {"_fitted_params": params, "head_": head, "_stale": True})
            return self
        self._sync_params(params)
        self._require_order_free()
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
        if not _same(
            getattr(self, "feature_names_in_", None), getattr(other, "feature_names_in_", None)
        ):
            raise ValueError("cannot merge learners fitted on different feature names")
        if not self.projection_.same_as(other.projection_):
            why = (
                "a guided layer is selected on each learner's first batch; merge learners that "
                "started from one layer, e.g. copies of it"
                if "guided" in (self.projection_.kind, other.projection_.kind)
                else "one may come from a file of an earlier release, whose rules built another "
                "layer for these settings"
            )
            raise ValueError(
                f"cannot merge learners with different layers: {self.projection_!r} and "
                f"{other.projection_!r} differ ({why})"
            )
        if other.classes_.size == 0:
            return self  # its classes were all forgotten: nothing to add
        check_label_family(other.classes_, self.classes_, "the other learner")
        # a learner whose classes were all forgotten takes the other's as they are (a union
        # with its empty array would cast them to that array's type: bools to ints, ints to
        # strings)
        union = (
            other.classes_.copy()
            if self.classes_.size == 0
            else np.union1d(self.classes_, other.classes_)
        )
        mine = _with_classes(
            self.statistics_, np.searchsorted(self.classes_, np.setdiff1d(union, self.classes_))
        )
        incoming = _with_classes(
            other.statistics_,
            np.searchsorted(other.classes_, np.setdiff1d(union, other.classes_)),
        )
        if not mine.can_absorb(incoming, np.array([], dtype=np.int64)):
            raise _overflow()
        _check_same_scale(other.statistics_, self.statistics_)
        mine += incoming
        head = self._fresh_head(params, mine) if self.head_.recursive else self.head_
        single = self._single_sums() or other._single_sums()
        self._commit(
            {
                "statistics_": mine,
                "classes_": union,
                "head_": head,
                "single_sums_": single,
                "_stale": True,
            }
        )
        return self

    @serialised
    def forget(self, X: Any, y: Any) -> ContinualClassifier:
        """Remove samples it was trained on, exactly. A class left with no samples disappears.

        Refuses (state unchanged) labels it never learned, more samples of a class than it
        has, and any removal after which the sums are those of no real data (a negative
        diagonal, a moment matrix that is not positive semi-definite): so rows never learned,
        or forgotten twice, are refused when their removal shows in the sums. With
        ``per_class_gram=True`` each class's own sums are checked too; without it, only the
        pooled ones, so a row never learned that hides in the span of the learned rows (of any
        class, weighed by the class sums) passes: sums alone cannot tell it apart. With more
        samples than units nearly every row does, so there the check catches few mistakes;
        a model folder (:class:`forgetless.teachable.TeachableModel`) keeps fingerprints.
        """
        params = self._prepared()
        self._require_order_free()
        X, _ = self._features_in(X, reset=False)
        labels = check_labels(y, X.shape[0], type(self).__name__)
        check_label_family(labels, self.classes_)
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
        batch = self._engine().statistics(
            self.projection_,
            X,
            index,
            self.classes_.size,
            self.statistics_.per_class_gram,
            self.chunk_size,
            # rows forgotten from a factor: their own factor, so that what is left stays one
            compact=self.statistics_.factored,
            learning=False,
        )
        self._subtract(params, batch, "these samples")
        return self

    @serialised
    def forget_statistics(
        self, statistics: SufficientStatistics, classes: Any
    ) -> ContinualClassifier:
        """Remove sums kept elsewhere (e.g. one class's statistics, recorded when it was
        learned), exactly, without the data: the inverse of merging them. Column ``i`` of
        ``statistics`` holds the sums of ``classes[i]`` (in the order given: sums recorded with
        sorted columns go with sorted ``classes``); the same checks as :meth:`forget`."""
        params = self._prepared()
        self._require_order_free()
        classes = check_classes(classes)
        check_label_family(classes, self.classes_, "classes")
        if classes.size != np.unique(classes).size or statistics.n_classes != classes.size:
            raise ValueError("classes must be unique labels, one per statistics column")
        if statistics.n_components != self.statistics_.n_components:
            raise ValueError(
                f"statistics of width {statistics.n_components} for a layer of "
                f"{self.statistics_.n_components}"
            )
        unknown = np.setdiff1d(classes, self.classes_)
        if unknown.size:
            raise ValueError(f"cannot forget classes never learned: {unknown.tolist()}")
        columns = np.searchsorted(self.classes_, classes)  # classes_ is sorted
        sums = np.zeros((statistics.n_components, self.classes_.size))
        counts = np.zeros(self.classes_.size, dtype=np.int64)
        sums[:, columns], counts[columns] = statistics.class_sums, statistics.counts
        # sums of few rows kept as their factor remove as one, so what is left stays compact
        aligned = (
            SufficientStatistics.from_factor(statistics.factor, sums, counts)
            if statistics.factored
            else SufficientStatistics.from_sums(statistics.gram_upper, sums, counts)
        )
        if self.statistics_.per_class_gram:
            raise ValueError(
                "with per_class_gram=True use forget_classes (the class Gram matrices are kept)"
            )
        self._subtract(params, aligned, "these statistics")
        return self

    def _subtract(self, params: dict[str, Any], removed: SufficientStatistics, what: str) -> None:
        """Subtract sums (columns aligned with ``classes_``) if the result is what real data
        can give; emptied classes disappear. Nothing changes when refused."""
        if not removed.all_finite():
            raise _overflow()
        remaining = self.statistics_.minus(removed)
        self._check_removal(params, remaining, what)
        remaining.downdate_factor(self.statistics_, removed)  # few rows left: compact again
        remaining.zero_if_empty()  # checked first: zeros would pass any check
        # sums removed with float32 products leave float32's rounding in what remains
        single = params["compute_dtype"] == "float32"
        self._commit_removal(params, remaining, np.flatnonzero(remaining.counts == 0), single)

    def _check_removal(
        self, params: dict[str, Any], remaining: SufficientStatistics, what: str
    ) -> None:
        """Refuse (nothing changed) a removal after which the sums are those of no data."""
        # float32 products (now, or in sums learned or merged before) round to about 1e-7
        float32 = params["compute_dtype"] == "float32" or self._single_sums()
        try:
            remaining.check_attainable(self.statistics_, 1e-5 if float32 else 1e-9)
        except ValueError as err:
            raise ValueError(
                f"cannot forget {what}: {err}, so they were not all learned (or were already "
                "forgotten; rows that differ from the learned ones by rounding, such as a "
                "float32 copy or features encoded again, count as other rows); nothing was "
                "changed"
            ) from err

    @serialised
    def forget_classes(self, classes: Any) -> ContinualClassifier:
        """Remove whole classes exactly, without their data (needs ``per_class_gram=True``)."""
        params = self._prepared()
        self._require_order_free()
        classes = check_classes(classes)
        check_label_family(classes, self.classes_, "classes")
        unknown = np.setdiff1d(classes, self.classes_)
        if unknown.size:
            raise ValueError(f"cannot forget classes never learned: {unknown.tolist()}")
        if not self.per_class_gram:
            raise ValueError(
                "forget_classes needs per_class_gram=True (one Gram matrix kept per class); "
                "without it, call forget(X, y) with all of the class's training samples"
            )
        index = np.searchsorted(self.classes_, classes)
        remaining = self.statistics_.copy()
        for c in index:
            remaining.subtract_class(int(c))
        # the kept G_c are checked when a file is read; sums merged from elsewhere may not be
        self._check_removal(params, remaining, "these classes")
        self._commit_removal(params, remaining, index)
        return self

    def _commit_removal(
        self,
        params: dict[str, Any],
        remaining: SufficientStatistics,
        emptied: np.ndarray,
        single_products: bool = False,
    ) -> None:
        """Install statistics after a removal, dropping emptied classes; a recursive head is
        re-derived from the sums (exact, where a Woodbury downdate would lose precision)."""
        if emptied.size:
            remaining.remove_classes(emptied)
        self._warn_once("forget", _removal_message(self.statistics_, remaining))
        head = self.head_
        if head.recursive:
            head = make_head(params, remaining.n_components)
            if remaining.n_classes:
                head.fit(remaining)
        self._commit(
            {
                "statistics_": remaining,
                "classes_": np.delete(self.classes_, emptied),
                "head_": head,
                "single_sums_": self._single_sums() or single_products,
                "_stale": True,
            }
        )

    # ------------------------------------------------------------------ assembly from sums
    @classmethod
    @serialised
    def from_statistics(
        cls, like: ContinualClassifier, statistics: SufficientStatistics, classes: Any
    ) -> ContinualClassifier:
        """A learner with ``like``'s settings and layer holding these sums (columns follow the
        sorted ``classes``): how sums computed elsewhere (workers, sites) join a learner, through
        :meth:`merge` and its checks."""
        params = like._checked_params()
        if not like.__sklearn_is_fitted__():
            raise ValueError(
                "like must be a fitted learner (the sums' layer and feature width are its own): "
                "fit it on a batch first"
            )
        if statistics.per_class_gram != params["per_class_gram"]:
            raise ValueError(
                f"the statistics {'keep' if statistics.per_class_gram else 'keep no'} per-class "
                f"Gram matrices but like has per_class_gram={params['per_class_gram']}: sum them "
                "with the same setting"
            )
        classes = check_classes(classes)  # the label types partial_fit accepts
        if not np.array_equal(np.unique(classes), classes):
            raise ValueError("classes must be sorted, unique labels, one per statistics column")
        if statistics.n_classes != classes.size:
            raise ValueError(f"{classes.size} classes for {statistics.n_classes} columns")
        layer = like.projection_
        if statistics.n_components != layer.n_outputs:
            raise ValueError(
                f"statistics of width {statistics.n_components} for a layer of {layer.n_outputs}"
            )
        if not statistics.all_finite():
            raise _overflow()
        if np.any(statistics.counts < 0):
            raise ValueError("the statistics count fewer than no samples in some class")
        # sums no rows can give (a file's are checked the same way when it is read)
        diagonal = statistics.diagonal()
        if np.any(diagonal < -ROUNDING * max(float(np.abs(diagonal).max(initial=0.0)), 1.0)):
            raise ValueError("the statistics' G has a negative diagonal: no data gives it")
        try:
            _check_cauchy_schwarz(
                diagonal, statistics.class_sums, statistics.counts, statistics.gram_upper
            )
        except ModelFileError as err:
            raise ValueError(str(err)) from None
        _check_not_underflowing(statistics, params["compute_dtype"])
        keep = statistics.counts > 0
        stats = statistics.copy()
        stats.remove_classes(np.flatnonzero(~keep))
        new = cls(**params)
        new._commit(
            {
                "n_features_in_": like.n_features_in_,
                "feature_names_in_": getattr(like, "feature_names_in_", None),
                "seed_": like.seed_,
                "projection_": layer,
                "statistics_": stats,
                "head_": new._fresh_head(params, stats),
                "classes_": classes[keep],
                "single_sums_": params["compute_dtype"] == "float32",
                "_stale": True,
                "_fitted_params": params,
            }
        )
        return new

    @serialised
    def _first_layer(self, n_features: int) -> ContinualClassifier:
        """An empty fitted learner whose layer needs no data (random kinds), for sums computed
        elsewhere; a guided layer must be selected on a first batch with ``partial_fit``."""
        if self.__sklearn_is_fitted__():
            return self
        params = self._checked_params()
        if params["projection"] == "guided":
            raise ValueError("fit the guided layer on a first batch with partial_fit first")
        new = clone(self)
        empty = np.empty((0, n_features))
        new._commit(new._new_state(params, empty, np.empty(0, dtype=np.int64), None))
        return new

    # ------------------------------------------------------------------ persistence
    @serialised
    def save(self, path: str | os.PathLike) -> None:
        """Write the model atomically: arrays and JSON metadata under one checksum, no pickle."""
        from forgetless import __version__

        if not self.__sklearn_is_fitted__():
            raise ValueError("cannot save an unfitted learner; call fit or partial_fit first")
        params = self._prepared()
        arrays = {f"statistics.{k}": v for k, v in self.statistics_.to_arrays().items()}
        arrays.update({f"layer.{k}": v for k, v in self.projection_.arrays().items()})
        arrays.update({f"head.{k}": v for k, v in self.head_.arrays().items()})
        names = getattr(self, "feature_names_in_", None)
        metadata = {
            "library_version": __version__,
            "estimator": type(self).__name__,
            "params": {k: _json_ready(v) for k, v in params.items()},
            "seed": self.seed_,
            "n_features_in": self.n_features_in_,
            "feature_names_in": None if names is None else [str(n) for n in names],
            "layer": self.projection_.config(),
            "layer_signature": self.projection_.signature(),
            "single_precision_sums": self._single_sums(),
        }
        peak = self.statistics_.peak_to_keep()
        if peak is not None:
            # the largest diagonal the sums went through before a removal, above the diagonal
            # now: the margin of the next forget's check (in the metadata, which earlier
            # releases read past: their files stay readable)
            metadata["peak_diagonal"] = peak
        metadata |= {
            # where the next warm walk starts (the last refit's lambda): without it a loaded
            # learner would search afresh and could settle on another lambda
            "warm_start_alpha": (
                getattr(self.head_, "alpha_", None)
                if self.warm_start and params["alpha"] == "auto"
                else None
            ),
            # that lambda was chosen for these very sums (no batch since): a loaded learner
            # solves there, as the saved one predicts, instead of walking on from it
            # (only a warm walk reads it: otherwise false, so that a file does not depend on
            # whether the learner predicted before it was saved)
            "warm_start_settled": bool(self.warm_start and params["alpha"] == "auto")
            and (not self._stale or self.head_.settled_alpha(self.statistics_) is not None),
        }
        arrays["classes"] = self.classes_
        write_model_file(path, metadata, arrays, kind=MODEL_KIND, version=MODEL_VERSION)

    @classmethod
    @serialised
    def load(
        cls,
        path: str | os.PathLike,
        device: str | None = "as-saved",
        max_layer_bytes: int = MAX_LAYER_BYTES,
    ) -> ContinualClassifier:
        """Read a model written by :meth:`save`, checking every value before building anything.

        ``device`` overrides the saved device: ``load(path, device=None)`` runs a model trained
        with ``device="cuda"`` on a machine without a GPU. A malformed, altered or inconsistent
        file raises :class:`~forgetless.persistence.ModelFileError` naming the problem.
        ``max_layer_bytes`` bounds what rebuilding the layer from its seed may allocate.
        """
        path = os.fspath(path)
        metadata, arrays = read_model_file(
            path, kind=MODEL_KIND, version=MODEL_VERSION, also=READABLE_VERSIONS
        )
        try:
            return cls._assemble(metadata, arrays, device, max_layer_bytes)
        except ModelFileError as err:
            raise ModelFileError(f"{path}: {err}") from err
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as err:
            raise ModelFileError(f"{path}: inconsistent model file: {err}") from err

    @classmethod
    def _assemble(
        cls,
        metadata: dict[str, Any],
        arrays: dict[str, np.ndarray],
        device: Any,
        max_layer_bytes: int,
    ) -> ContinualClassifier:
        """The learner a model file describes; every value is checked first (ModelFileError)."""
        params = metadata["params"]
        if isinstance(params, dict) and "decision" not in params:
            # Written before the ridge head had ``decision``: it scored by the regression.
            params = {**params, "decision": "regression"}
        if not isinstance(params, dict) or sorted(params) != sorted(cls().get_params()):
            raise ModelFileError("the parameters do not match this version's ContinualClassifier")
        if device != "as-saved":
            params = {**params, "device": device}
        clf = cls(**params)
        params = clf._checked_params()

        def part(prefix: str) -> dict[str, np.ndarray]:
            return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}

        known = ("statistics.", "layer.", "head.")
        stray = sorted(k for k in arrays if k != "classes" and not k.startswith(known))
        if stray:
            raise ModelFileError(f"unexpected arrays {stray}")
        stats_arrays = part("statistics.")
        stats = _checked_statistics(stats_arrays, params["per_class_gram"])
        m, c = stats.n_components, stats.n_classes
        classes = _checked_labels(arrays.get("classes"), c)
        n_features = metadata["n_features_in"]
        if not isinstance(n_features, int) or n_features < 1:
            raise ModelFileError(f"n_features_in must be a positive integer, not {n_features!r}")
        seed = metadata["seed"]
        if type(seed) is not int or not 0 <= seed < 2**32:
            raise ModelFileError(f"seed must be an integer in [0, 2^32), not {seed!r}")
        if params["random_state"] is not None and params["random_state"] != seed:
            raise ModelFileError(
                f"seed {seed} is not the parameters' random_state {params['random_state']}"
            )
        config = metadata["layer"]
        if not isinstance(config, dict):
            raise ModelFileError("the layer's configuration is not a table")
        kind = resolve_projection(params["projection"], n_features, params["n_components"])
        if config.get("kind") != kind or config.get("n_features") != n_features:
            raise ModelFileError(
                f"the layer ({config.get('kind')!r}, {config.get('n_features')!r} inputs) does "
                f"not match the parameters ({kind!r}, {n_features} inputs)"
            )
        if config.get("n_components") != m and kind != "none":
            raise ModelFileError(
                f"the layer has {config.get('n_components')!r} units but the statistics {m}"
            )
        layer_arrays = part("layer.")
        cost = build_bytes(config)
        if cost > max_layer_bytes:
            raise ModelFileError(
                f"rebuilding its layer would allocate {cost / 2**30:.1f} GiB (more than "
                f"max_layer_bytes={max_layer_bytes}); pass a larger max_layer_bytes if you "
                "trust the file"
            )
        layer = layer_from_config(config, layer_arrays)
        if layer.n_outputs != m or layer.n_features != n_features:
            raise ModelFileError(f"the layer's shape does not match the statistics ({m} units)")
        _check_layer_settings(layer, params, kind, seed)
        signature = np.asarray(metadata["layer_signature"], dtype=np.float64)
        # relative to the signature's own size (a layer for features of 1e12 gives ~1e-14)
        size = float(np.abs(signature).max(initial=0.0)) if np.isfinite(signature).all() else 0.0
        if not np.allclose(layer.signature(), signature, rtol=1e-6, atol=1e-9 * size):
            raise ModelFileError(
                "the layer's saved arrays do not give the signature saved with them (altered?)"
                if layer_arrays
                else "this numpy/forgetless build regenerates a different random layer from the "
                "saved seed; load it with the versions that saved it"
            )
        # files written before the record: their sums are float32's if their setting says so
        single = metadata.get("single_precision_sums", params["compute_dtype"] == "float32")
        if not isinstance(single, bool):
            raise ModelFileError(f"single_precision_sums must be true or false, not {single!r}")
        if "peak_diagonal" in metadata:  # sums a removal left (files before it: as they are)
            peak = metadata["peak_diagonal"]
            if not (isinstance(peak, float) and math.isfinite(peak) and peak >= 0):
                raise ModelFileError(
                    f"peak_diagonal must be a number of at least 0, not {reprlib.repr(peak)}"
                )
            stats.after_removal(peak)
        names = metadata.get("feature_names_in")
        if names is not None:
            if not (isinstance(names, list) and len(names) == n_features):
                raise ModelFileError(f"feature_names_in must list {n_features} names")
            if not all(isinstance(n, str) for n in names):
                raise ModelFileError("feature_names_in must be strings")
            if len(set(names)) != len(names):
                raise ModelFileError("feature_names_in names a feature twice")
            names = np.asarray(names, dtype=object)
        head = make_head(params, m)
        start = metadata.get("warm_start_alpha")
        if start is not None:
            if not (isinstance(start, float) and math.isfinite(start) and start > 0):
                raise ModelFileError(
                    f"warm_start_alpha must be a positive number, not {reprlib.repr(start)}"
                )
            settled = metadata.get("warm_start_settled", False)  # older files: walk on
            if not isinstance(settled, bool):
                raise ModelFileError(f"warm_start_settled must be true or false, not {settled!r}")
            if params["warm_start"] and params["alpha"] == "auto":
                head.alpha_ = float(start)  # the walk resumes where the saved learner's would
                if settled:
                    head.settle(float(start), stats)
        head_arrays = part("head.")
        if head.recursive:
            head.restore(head_arrays, stats, single)
        elif head_arrays:
            raise ModelFileError(f"unexpected arrays for head {head.name!r}: {sorted(head_arrays)}")
        clf._commit(
            {
                "n_features_in_": n_features,
                "feature_names_in_": names,
                "seed_": seed,
                "projection_": layer,
                "statistics_": stats,
                "head_": head,
                "classes_": classes,
                "single_sums_": single,
                "_stale": True,
                "_fitted_params": params,
            }
        )
        return clf


def _layer_settings(params: dict[str, Any], kind: str, earlier: bool = False) -> dict[str, Any]:
    """The settings a learner with these parameters gives its layer of this kind (besides
    widths, seed and ``projection_params``); ``earlier``: the rule of releases before "auto"
    left unlifted features as they are (files of theirs hold that layer)."""
    # "auto" building no layer leaves the features as they are: its activation and bias are
    # the random layer's, which it did not build
    unlifted = params["projection"] == "auto" and kind == "none" and not earlier
    return {
        "activation": None if unlifted else params["activation"],
        "bias": False if unlifted else params["bias"],
        "scale": params["projection_scale"],
        "gamma": params["gamma"],
    }


def _check_layer_settings(layer: Any, params: dict[str, Any], kind: str, seed: int) -> None:
    """A model file's layer is the one its parameters and seed build (ModelFileError):
    :func:`forgetless.layers.layer_mismatches`."""
    saved = layer.config()
    rules = (False, True) if params["projection"] == "auto" and kind == "none" else (False,)
    found = [
        layer_mismatches(
            saved,
            kind,
            layer.n_features,
            params["n_components"],
            seed,
            **_layer_settings(params, kind, earlier),
            params=params["projection_params"],
        )
        for earlier in rules
    ]
    if not all(found):
        return
    raise ModelFileError("the layer does not match the parameters and seed: " + ", ".join(found[0]))


def _physical_memory() -> int | None:
    """The memory this process may use in bytes: the machine's, or its container's limit
    (cgroup) when lower; None where the system does not say."""
    try:
        total = int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(limit) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def check_memory(kind: str, n_features: int, n_components: int, build: int = 0) -> None:
    """Refuse up front a width whose sums cannot fit in this machine's memory: the M x M
    float64 G (and a random layer's d x M weights), or ``build`` bytes that making the layer
    takes first (:func:`forgetless.layers.fit_bytes`), would otherwise fail deep inside, or get
    the process killed once the pages are touched.

    >>> check_memory("gaussian", 100, 2000)   # 32 MB: fine
    >>> check_memory("gaussian", 100, 10**9)
    Traceback (most recent call last):
    ...
    ValueError: n_components=1000000000 needs ... for G (M x M float64) ...
    """
    width = n_features if kind == "none" else n_components
    sums = 8 * (width * width + (0 if kind == "none" else n_features * width))
    have = _physical_memory()
    if have is None or max(sums, build) <= have:
        return
    what = (
        f"{n_features} features without a layer (projection='none')"
        if kind == "none"
        else f"n_components={n_components}"
    )
    if build > sums:  # making the layer is what does not fit, not G
        raise ValueError(
            f"building the {kind} layer ("
            + ("" if kind == "guided" else f"{n_features} features, ")
            + f"{what}) takes about "
            f"{build / 2**30:,.0f} GiB, more than the {have / 2**30:,.0f} GiB of memory this "
            "process may use; choose "
            + ("fewer landmarks or a smaller n_components" if kind == "guided" else
               "projection='gaussian' (no d x d blocks) or fewer features")
        )  # fmt: skip
    raise ValueError(
        f"{what} needs {sums / 2**30:,.0f} GiB for G (M x M float64) and the layer, more "
        f"than the {have / 2**30:,.0f} GiB of memory this process may use; choose a smaller "
        + ("feature width or a layer" if kind == "none" else "n_components")
    )


SMALLEST_SCALE = {"float64": 1e-60, "float32": 1e-15}
"""The largest root mean square of a batch's projected features (the rows entering the sums)
must be at least this (or 0). Below it their products approach the compute type's smallest
normal number (about 1e-308 and 1e-38): G loses the sums' digits while the class sums keep
theirs (a model that predicts nothing useful and whose file no check accepts), and in float64
the lambda search's inverse powers overflow first. Layers that rescale their input (the guided
kernel layer) make features of any scale fine, down to :func:`check_input_scale`'s floor."""


def check_input_scale(X: np.ndarray, compute_dtype: str) -> None:
    """Refuse inputs so small that their squares underflow in ``compute_dtype`` (non-zero, with
    the largest below the square root of its smallest normal number: about 1e-154 in float64,
    1e-19 in float32). No layer keeps them: their products round to 0 (G = 0 passes the checks
    on the sums, and the model predicts at chance), and layers that rescale their input divide
    by norms that are 0."""
    floor = math.sqrt(float(np.finfo(compute_dtype).tiny))
    magnitude = float(np.abs(X).max(initial=0.0))
    if 0.0 < magnitude < floor:
        raise _underflow(
            compute_dtype,
            f"the largest in magnitude is {magnitude:.3g}, below {floor:.1e}, where their "
            "squares underflow",
        )


def _check_not_underflowing(batch: SufficientStatistics, compute_dtype: str) -> None:
    """Refuse a batch whose projected features are too small for the sums (``SMALLEST_SCALE``):
    their largest root mean square, or class sums that their G cannot hold (Cauchy-Schwarz:
    products that underflowed to zero while the sums did not)."""
    floor = SMALLEST_SCALE[compute_dtype]
    diagonal = batch.diagonal()
    largest = math.sqrt(float(diagonal.max(initial=0.0)) / max(batch.n_samples, 1))
    if 0.0 < largest < floor or _class_sums_exceed_gram(diagonal, batch.class_sums, batch.counts):
        raise _underflow(
            compute_dtype,
            f"after the layer their largest root mean square is {largest:.3g}, below "
            f"{floor:.0e}, where their products underflow and G loses its digits",
        )


SCALE_RATIO = 1e7
"""A batch whose projected features' largest root mean square differs from the learned sums' by
more than this factor (either way) is refused: its squares and the learned ones differ by more
than 1e14, so float64 sums keep few or none of the smaller side's digits (a batch 1e20 times
larger made every later prediction fail in the lambda search, and forgetting it again did not
bring the model back)."""


# Centring sums keeps a fraction f = trace(G - n m m^T) / trace(G) of their size; with rounding
# eps (float64, or float32 where the sums are of float32 products), eps / f above this leaves
# the rows' spread fewer than four significant digits: warned (ordinary features: f ~ 0.1-1).
_CENTRING_DIGITS = 1e-4
# A ridge without an intercept scores lambda from 1e-10 trace(G) up: below this f, the rows'
# spread lies under the lattice, behind the offset's one large eigenvalue.
_UNCENTRED_SPREAD = 1e-8


def _centring_message(
    stats: SufficientStatistics, single: bool, centred: bool = True
) -> str | None:
    """What to tell a user whose rows lie so far from their mean, against their spread, that the
    centred sums every head reads (the ridge's G - n m m^T, LDA's scatter, the cosine of NCM's
    means) keep fewer than four digits of it (None where they keep more): predictions then
    follow rounding, often to chance, where centring the inputs first would have kept every
    digit. A ridge fitted without an intercept (``centred=False``) is told from a smaller
    offset on, where its lambda lattice no longer reaches the spread."""
    if stats.n_samples < 2:
        return None
    spread, total = _spread_and_size(stats)
    if not total > 0.0:
        return None
    eps = float(np.finfo(np.float32 if single else np.float64).eps)
    kept = spread / total
    if not (eps > _CENTRING_DIGITS * kept or (not centred and kept < _UNCENTRED_SPREAD)):
        return None
    return (
        f"the rows lie far from their mean for {'float32' if single else 'float64'} sums: "
        f"their spread about it is {kept:.2g} of their size (a common offset about "
        f"{1.0 / math.sqrt(max(kept, 1e-300)):.1g} times their spread, after the layer, or "
        "rows nearly all alike), and centring the sums leaves it fewer than four significant "
        "digits, so predictions may follow rounding. Subtract a typical row from every input "
        "(centre the features) before learning."
    )


def _spread_and_size(stats: SufficientStatistics) -> tuple[float, float]:
    """(trace of G about the rows' mean, trace of G): the rows' spread and their size, each a
    sum of squares over every feature (the first clipped at 0 where rounding left it below)."""
    n = float(max(stats.n_samples, 1))
    size = float(np.asarray(stats.diagonal(), dtype=np.float64).sum())
    spread = size - float(np.square(np.asarray(stats.feature_sum) / math.sqrt(n)).sum())
    return max(spread, 0.0), size


def _removal_message(before: SufficientStatistics, remaining: SufficientStatistics) -> str | None:
    """What to tell a user who forgot rows so much larger than the rows left that the rounding
    the float64 sums took from them (eps times the size they summed to) exceeds 1e-4 of the
    left rows' spread (None otherwise): the sums left are then not those a fresh fit on the
    left rows would have."""
    if remaining.n_samples < 2:
        return None
    spread = _spread_and_size(remaining)[0]
    rounding = float(np.finfo(np.float64).eps) * _spread_and_size(before)[1]
    if rounding <= _CENTRING_DIGITS * spread:
        return None
    return (
        f"the forgotten rows were far larger than the rows left: the sums kept rounding of "
        f"about {rounding:.3g} from them, more than {_CENTRING_DIGITS:.0e} of the spread left "
        f"({spread:.3g}), so this model may differ from one learned on the rows left alone; "
        "learn those rows again in a new learner for that model, and keep rows of one scale, "
        "centred, in one learner"
    )


def _largest_rms(stats: SufficientStatistics) -> float:
    return math.sqrt(float(stats.diagonal().max(initial=0.0)) / max(stats.n_samples, 1))


def _check_same_scale(batch: SufficientStatistics, learned: SufficientStatistics) -> None:
    new, old = _largest_rms(batch), _largest_rms(learned)
    if new > 0.0 and old > 0.0 and not 1.0 / SCALE_RATIO <= new / old <= SCALE_RATIO:
        raise ValueError(
            "X's features are on another scale than the ones learned: after the layer their "
            f"largest root mean square is {new:.3g}, against {old:.3g} learned (a ratio beyond "
            f"{SCALE_RATIO:.0e}, where float64 sums cannot keep the smaller side's digits); "
            "check the encoder and the preprocessing (the same scaling for every batch); "
            "nothing was changed"
        )


def _underflow(compute_dtype: str, why: str) -> ValueError:
    return ValueError(
        f"X's features are too small for compute_dtype={compute_dtype!r}: {why}; scale them "
        "up (e.g. standardise them)"
        + (' or use compute_dtype="float64"' if compute_dtype == "float32" else "")
        + "; nothing was changed"
    )


def _overflow() -> ValueError:
    return ValueError(
        "the batch's statistics would not be finite (overflow): X's features are too large "
        "(check the encoder's output scale); nothing was changed"
    )


def _with_classes(stats: SufficientStatistics, positions: np.ndarray) -> SufficientStatistics:
    """A copy of ``stats`` with empty class columns inserted (``np.insert`` rules)."""
    new = stats.copy()
    new.insert_classes(positions)
    return new


def _same(a: Any, b: Any) -> bool:
    """Whether two settings or arrays mean the same, as a model file keeps them: a tuple and
    the list JSON makes of it are the same, 1 and 1.0 too, True and 1 are not.

    >>> _same({"scales": (0.5, 1)}, {"scales": [0.5, 1.0]}), _same(1, 1.0), _same(True, 1)
    (True, True, False)
    """
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if a is None or b is None:
            return False
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and bool(np.all(a == b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, z) for x, z in zip(a, b, strict=True))
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        # np.True_ is True (a saved file holds the bool), but True is not 1
        return isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_)) and a == b
    return bool(a == b)


def _finite_float(value: Any) -> bool:
    """A number a float holds, finite (an integer of 400 digits is not one)."""
    try:
        return math.isfinite(float(value))
    except (OverflowError, TypeError, ValueError):
        return False


def _fitted_state(clf: ContinualClassifier) -> dict[str, Any]:
    return {k: clf.__dict__[k] for k in _FITTED if k in clf.__dict__}


def _json_ready(value: Any) -> Any:
    """A parameter as JSON holds it, nested settings included (``projection_params`` given
    numpy numbers or fractions save as plain numbers, which is what the layer used)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_, np.integer, np.floating)):
        return value.item()
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_json_ready(item) for item in value]
    if isinstance(value, Real) and not isinstance(value, (bool, int, float)):
        return float(value)
    return value


def _checked_statistics(arrays: dict[str, np.ndarray], per_class_gram: bool) -> Any:
    """Statistics from a model file's arrays, refusing what no data could produce."""
    gram_forms = {"gram_factor", "gram_packed", "gram_upper"}  # upper: files of version 2
    class_forms = {"class_grams_packed", "class_grams_upper"}
    names = set(arrays)
    stored = names & gram_forms
    extra = names - gram_forms - class_forms - {"class_sums", "counts"}
    class_stored = names & class_forms
    if (
        len(stored) != 1
        or extra
        or not {"class_sums", "counts"} <= names
        or len(class_stored) != (1 if per_class_gram else 0)
        or ("gram_factor" in names and per_class_gram)
    ):
        raise ModelFileError(
            f"statistics arrays {sorted(arrays)}: expected one of {sorted(gram_forms)}, "
            "class_sums, counts" + (" and per-class Gram matrices" if per_class_gram else "")
        )
    counts = arrays["counts"]
    if counts.dtype.kind not in "iu" or counts.ndim != 1:
        raise ModelFileError("class counts must be a 1-D integer array")
    if np.any(counts <= 0):
        raise ModelFileError("every class must have a positive sample count")
    # Counts are exact in float64 up to 2**53 samples; past that (or wrapping around int64)
    # they are no count of real data.
    if np.any(counts > 2**53) or sum(int(c) for c in counts) > 2**53:
        raise ModelFileError("the class counts are larger than any data set")
    for name, array in arrays.items():
        if array.dtype.kind != "f" and name != "counts":
            raise ModelFileError(f"statistics array {name!r} must be floating point")
        if not np.isfinite(array).all():
            raise ModelFileError(f"statistics array {name!r} is not finite")
    sums = arrays["class_sums"]
    if sums.ndim != 2:
        raise ModelFileError(f"class sums must be a matrix, not of shape {sums.shape}")
    m = sums.shape[0]
    if "gram_factor" in arrays:
        try:
            stats = SufficientStatistics.from_factor(arrays["gram_factor"], sums, counts)
        except ValueError as err:
            raise ModelFileError(str(err)) from None
        if not stats.all_finite():
            raise ModelFileError("G overflows: the factor's values are too large")
        # G = R^T R obeys Cauchy-Schwarz by construction: only Q can be forged.
        _check_cauchy_schwarz(stats.diagonal(), stats.class_sums, stats.counts)
        return stats
    if "gram_packed" in arrays:
        packed = arrays["gram_packed"]
        if packed.shape != (m * (m + 1) // 2,):
            raise ModelFileError(
                f"packed G has shape {packed.shape}, not ({m * (m + 1) // 2},) for width {m}"
            )
        diagonal, magnitude = packed[packed_diagonal(m)], packed
    else:
        gram = arrays["gram_upper"]
        if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
            raise ModelFileError(f"G must be square, not {gram.shape}")
        if np.any(np.tril(gram, -1)):
            raise ModelFileError("G must be stored as an upper triangle")
        diagonal, magnitude = np.diag(gram), gram
    # Rounding after a forget can leave -1e-16 on the diagonal (float64), about -1e-7 of the
    # largest entry with compute_dtype="float32"; real data never leave more.
    rounding = ROUNDING * max(float(np.abs(magnitude).max(initial=0.0)), 1.0)
    if np.any(diagonal < -rounding):
        raise ModelFileError("G must have a non-negative diagonal")
    if "class_grams_packed" in arrays:
        packed = arrays["class_grams_packed"]
        if packed.shape != (counts.size, m * (m + 1) // 2):
            raise ModelFileError(f"packed per-class Gram matrices have shape {packed.shape}")
    try:
        stats = SufficientStatistics.from_arrays(arrays)
    except ValueError as err:
        raise ModelFileError(str(err)) from None
    _check_cauchy_schwarz(stats.diagonal(), stats.class_sums, stats.counts, stats._upper())
    if stats.per_class_gram:
        _check_class_grams(stats, rounding)
    return stats


def _check_class_grams(stats: SufficientStatistics, rounding: float) -> None:
    """Each kept G_c must be a class's own (a non-negative diagonal, Cauchy-Schwarz with its
    class sums) and together they must make G: ``forget_classes`` subtracts them."""
    upper = np.triu(stats.gram_upper)
    total = np.zeros_like(upper)
    for c in range(stats.n_classes):
        gram = np.triu(stats.class_gram(c))
        diagonal = np.diag(gram)
        if np.any(diagonal < -rounding):
            raise ModelFileError(f"the Gram matrix of class column {c} has a negative diagonal")
        _check_cauchy_schwarz(diagonal, stats.class_sums[:, [c]], stats.counts[[c]], gram)
        total += gram
    if np.abs(total - upper).max(initial=0.0) > rounding:
        raise ModelFileError("the per-class Gram matrices do not sum to G")


# The margin for rounding when a file's sums are checked, relative to G's largest entries:
# sums of float32 products (compute_dtype="float32") break the inequalities real data obey by
# about 1e-7 of them, float64 ones by 1e-15; what no data can give is off by far more.
ROUNDING = 1e-5


def _check_cauchy_schwarz(
    diagonal: np.ndarray,
    class_sums: np.ndarray,
    counts: np.ndarray,
    upper: np.ndarray | None = None,
) -> None:
    """Refuse sums that no rows can produce, by two inequalities every real G and Q obey:
    ``Q_jc^2 <= n_c G_jj`` and (given G's ``upper`` triangle) ``|G_jk| <= sqrt(G_jj G_kk)``
    (Cauchy-Schwarz), checked in O(M^2) with a margin for rounding. (A full check, a
    factorisation of the moment matrix, would cost as much as a solve on every load.)

    >>> import numpy as np
    >>> H = np.random.default_rng(0).standard_normal((5, 3))
    >>> G = H.T @ H
    >>> _check_cauchy_schwarz(np.diag(G), H.T @ np.ones((5, 1)), np.array([5]), np.triu(G))
    >>> _check_cauchy_schwarz(np.diag(G), 1e6 * np.ones((3, 1)), np.array([5]))
    Traceback (most recent call last):
    ...
    forgetless.persistence.ModelFileError: the class sums are larger than G allows ...
    """
    root = np.sqrt(np.maximum(diagonal, 0.0))
    slack = ROUNDING * max(float(root.max(initial=0.0)) ** 2, 1e-300)  # rounding of the sums
    rows = 0 if upper is None else upper.shape[0]
    for start in range(0, rows, 512):  # blocks of rows: no M x M temporary
        block = upper[start : start + 512]  # type: ignore[index]
        bound = np.outer(root[start : start + 512], root) * (1 + ROUNDING) + slack
        if np.any(np.abs(block) > bound):
            raise ModelFileError(
                "G is not the Gram matrix of any data (an entry exceeds the root of its "
                "diagonal entries' product)"
            )
    if _class_sums_exceed_gram(diagonal, class_sums, counts):
        raise ModelFileError(
            "the class sums are larger than G allows (|Q_jc| <= sqrt(n_c G_jj) for real data)"
        )


def _class_sums_exceed_gram(
    diagonal: np.ndarray, class_sums: np.ndarray, counts: np.ndarray
) -> bool:
    """Whether some class sum breaks ``Q_jc^2 <= n_c G_jj`` beyond rounding: no rows make such
    sums (a forged file, or products that underflowed while the sums did not)."""
    root = np.sqrt(np.maximum(diagonal, 0.0))
    slack = ROUNDING * max(float(root.max(initial=0.0)) ** 2, 1e-300)
    bound = root[:, None] * np.sqrt(counts.astype(np.float64))[None, :]
    return bool(np.any(np.abs(class_sums) > bound * (1 + ROUNDING) + np.sqrt(slack)))


def _checked_labels(classes: Any, n_classes: int) -> np.ndarray:
    if classes is None:
        raise ModelFileError("the class labels are missing")
    if classes.dtype.kind not in "biufU":
        raise ModelFileError(f"unsupported label dtype {classes.dtype}")
    if classes.ndim != 1 or classes.size != n_classes:
        raise ModelFileError(f"{classes.size} labels for {n_classes} statistics columns")
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise ModelFileError("class labels must be finite")
    if classes.size != np.unique(classes).size or not np.array_equal(np.sort(classes), classes):
        raise ModelFileError("class labels must be unique and sorted")
    return classes
