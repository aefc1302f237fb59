"""The fixed layers between the encoder and the statistics, and the one place that builds them.

``make_layer`` builds a layer from the learner's settings (a guided layer also needs the first
batch it is selected on); ``layer_from_config`` rebuilds a saved one, after ``build_bytes`` has
said what that would cost. Every layer is a :class:`Layer`: the same chunking, storage and
identity (``same_as``), and a map written once for numpy and torch (:mod:`.xp`).

>>> import numpy as np
>>> layer = make_layer("hadamard", n_features=6, n_components=16, seed=3)
>>> saved = layer.config()
>>> build_bytes(saved) < 10_000
True
>>> layer_from_config(saved, layer.arrays()).same_as(layer)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgetless.layers.base import ACTIVATIONS, Layer, check_activation, default_activation
from forgetless.layers.guided import DEFAULTS as GUIDED_DEFAULTS
from forgetless.layers.guided import GuidedProjection, check_settings, supervisory_scores
from forgetless.layers.kernel import DEFAULTS as KERNEL_DEFAULTS
from forgetless.layers.kernel import GuidedKernelProjection, check_kernel_settings, landmarks_for
from forgetless.layers.random import RANDOM_KINDS, KernelWidthWarning, RandomProjection
from forgetless.layers.xp import NUMPY, NumpyOps, TorchOps, fwht

KINDS = (*RANDOM_KINDS, "guided")
PROJECTIONS = ("auto", *KINDS)
"""What a learner's ``projection`` may be: a layer kind, or ``"auto"``
(:func:`resolve_projection`)."""
AUTO_LIFT = 2
"""``projection="auto"`` adds the random layer only when it is at least this many times as wide
as the features (:func:`resolve_projection`)."""

__all__ = [
    "KernelWidthWarning",
    "ACTIVATIONS",
    "GUIDED_DEFAULTS",
    "GUIDED_METHODS",
    "KERNEL_DEFAULTS",
    "KINDS",
    "NUMPY",
    "PROJECTIONS",
    "RANDOM_KINDS",
    "GuidedKernelProjection",
    "GuidedProjection",
    "Layer",
    "NumpyOps",
    "RandomProjection",
    "TorchOps",
    "build_bytes",
    "fit_bytes",
    "check_layer_params",
    "default_activation",
    "fwht",
    "layer_class",
    "layer_from_config",
    "layer_mismatches",
    "make_layer",
    "resolve_projection",
    "supervisory_scores",
]


GUIDED_METHODS = ("kernel", "units")
"""How ``projection="guided"`` uses its first batch (``projection_params={"method": ...}``):
``"kernel"`` (default) the ReLU layer's kernel on landmarks drawn from the batch's class
population (:mod:`.kernel`); ``"units"`` random units shaped and selected on the batch
(:mod:`.guided`)."""


def guided_method(settings: Any, default: str = "kernel") -> str:
    """The guided method named in ``settings`` (projection_params, or a saved layer config,
    whose default is ``"units"``: files saved before the kernel method existed)."""
    method = (settings or {}).get("method", default) if isinstance(settings, dict) else default
    if method not in GUIDED_METHODS:
        raise ValueError(
            f"unknown guided method {method!r}; choose one of {', '.join(GUIDED_METHODS)}"
        )
    return method


def layer_class(kind: Any, settings: Any = None, default_method: str = "kernel") -> type[Layer]:
    """The class that builds layers of ``kind`` (for ``guided``, of the method in
    ``settings``)."""
    if kind == "guided":
        if guided_method(settings, default_method) == "kernel":
            return GuidedKernelProjection
        return GuidedProjection
    if kind in RANDOM_KINDS:
        return RandomProjection
    raise ValueError(f"unknown projection {kind!r}; choose one of {', '.join(KINDS)}")


def resolve_projection(kind: str, n_features: int, n_components: int) -> str:
    """The layer kind a learner's ``projection`` setting builds on features of ``n_features``.

    ``"auto"`` is an orthogonal random ReLU layer when it lifts the features, being at least
    :data:`AUTO_LIFT` times as wide, and no layer otherwise: a random layer earns its place by
    lifting narrow features into a wider space, and on features about as wide as itself it did
    not pay.
    Measured on validation rows of the built-in datasets: on raw pixels (64 and 784 values) the
    2000-unit layer is ahead by up to 4 points; on the built-in encoders' several-depth
    features (1,904 and 2,304 values) the ridge without it is ahead at almost every sample
    size, by 4.6 points on latin-glyphs (3 seeds). Other kinds are returned as they are.

    >>> resolve_projection("auto", n_features=784, n_components=2000)
    'orthogonal'
    >>> resolve_projection("auto", n_features=1904, n_components=2000)
    'none'
    >>> resolve_projection("gaussian", n_features=1904, n_components=2000)
    'gaussian'
    """
    if kind != "auto":
        return kind
    return "orthogonal" if n_components >= AUTO_LIFT * n_features else "none"


def check_layer_params(
    kind: str,
    activation: str | None = None,
    params: dict[str, Any] | None = None,
    n_components: int | None = None,
) -> None:
    """Refuse layer settings that cannot go together, before any work: an unknown kind or
    activation, cos outside the fourier layer (or another activation inside it),
    ``projection_params`` for a layer other than guided or with unknown or invalid settings,
    and (given the width) a guided kernel layer's landmarks out of bounds.
    ``"auto"`` is checked as the random kinds it resolves to."""
    if kind == "auto":
        kind = "orthogonal"
    layer_class(kind)
    if activation is not None:
        check_activation(activation)
        if kind == "fourier" and activation != "cos":
            raise ValueError("the fourier projection uses cos; leave activation=None")
        if kind != "fourier" and activation == "cos":
            raise ValueError("activation='cos' belongs to projection='fourier'")
    if kind == "guided" and layer_class(kind, params) is GuidedKernelProjection:
        if activation not in (None, "relu"):
            raise ValueError(
                "projection='guided' (method 'kernel') is the ReLU layer's kernel; leave "
                "activation=None, or choose projection_params={'method': 'units'}"
            )
        settings = check_kernel_settings({"method": "kernel", **dict(params or {})})
        if n_components is not None:
            landmarks_for(settings, int(n_components))
    elif params:
        if kind != "guided":
            raise ValueError(
                f"projection_params {sorted(params)} apply only to projection='guided'"
            )
        check_settings(_without_method(params))


def _without_method(params: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if k != "method"}


def make_layer(
    kind: str,
    n_features: int,
    n_components: int,
    seed: int,
    activation: str | None = None,
    bias: bool = False,
    scale: str = "unit",
    gamma: float | None = None,
    params: dict[str, Any] | None = None,
    X: np.ndarray | None = None,
    y_index: np.ndarray | None = None,
) -> Layer:
    """Build a layer. Random kinds need only their settings; ``guided`` is built from
    (X, y_index), the data of the first batch, and is frozen afterwards (it ignores ``bias``,
    ``scale`` and ``gamma``; ``params`` are its settings: ``{"method": ...}`` and that
    method's settings, ``KERNEL_DEFAULTS`` or ``GUIDED_DEFAULTS``)."""
    if kind == "guided":
        if X is None or y_index is None:
            raise ValueError("the guided projection is built from labelled data (X, y)")
        if np.ndim(X) == 2 and np.shape(X)[1] != n_features:
            raise ValueError(f"X has {np.shape(X)[1]} features, not n_features={n_features}")
        cls = layer_class(kind, params)
        settings = dict(params or {}) if cls is GuidedKernelProjection else _without_method(params)
        return cls.fit(
            X, y_index, n_components=n_components, seed=seed, activation=activation, **settings
        )
    if params:
        raise ValueError(f"projection_params {sorted(params)} apply only to projection='guided'")
    return RandomProjection(kind, n_features, n_components, seed, activation, bias, scale, gamma)


def layer_mismatches(
    config: dict[str, Any],
    kind: str,
    n_features: int,
    n_components: int,
    seed: int,
    activation: str | None = None,
    bias: bool = False,
    scale: str = "unit",
    gamma: float | None = None,
    params: dict[str, Any] | None = None,
) -> list[str]:
    """What in a saved layer's ``config`` the settings a learner builds it with would not give
    ("name saved (expected ...)"; empty where it is that layer): a random layer's every setting
    (:meth:`RandomProjection.settings_for`); a guided layer's seed, method, the
    ``projection_params`` given, and its width (the kernel method's is ``n_components``, the
    units method's at most that). A model file's layer is checked with it."""
    if kind != "guided":
        expected = RandomProjection.settings_for(
            kind, n_features, n_components, seed, activation, bias, scale, gamma
        )
        return [
            f"{k} {config.get(k)!r} (expected {v!r})"
            for k, v in expected.items()
            if config.get(k) != v
        ]
    out = [] if config.get("seed") == seed else [f"seed {config.get('seed')!r} (expected {seed})"]
    wanted = layer_class("guided", params)
    if _saved_class(config) is not wanted:
        saved_method = guided_method(config, "units")
        return [*out, f"method {saved_method!r} (expected {guided_method(params)!r})"]
    given = _without_method(params)
    if given:
        checked = (
            check_kernel_settings({"method": "kernel", **given})
            if wanted is GuidedKernelProjection
            else check_settings(given)
        )
        saved = config.get("settings") if isinstance(config.get("settings"), dict) else {}
        out += [
            f"settings.{k} {saved.get(k)!r} (expected {checked[k]!r})"
            for k in given
            if saved.get(k) != checked[k]
        ]
    width = config.get("n_components")
    kernel = wanted is GuidedKernelProjection
    if width != n_components if kernel else not (isinstance(width, int) and width <= n_components):
        out.append(
            f"n_components {width!r} (expected {'' if kernel else 'at most '}{n_components})"
        )
    return out


def fit_bytes(
    kind: str, n_features: int, n_components: int, params: dict[str, Any] | None = None
) -> int:
    """Peak bytes that making a layer of this kind and size on a first batch allocates, roughly:
    a random layer's draws (:func:`build_bytes`), a guided kernel layer's landmark kernel and its
    eigendecomposition (measured: about five N x N float64 arrays); 0 for the units method."""
    if kind == "guided":
        if layer_class(kind, params) is not GuidedKernelProjection:
            return 0
        settings = check_kernel_settings({"method": "kernel", **dict(params or {})})
        n = landmarks_for(settings, n_components)
        return 8 * 5 * n * n
    config = {"kind": kind, "n_features": n_features, "n_components": n_components, "bias": True}
    return build_bytes(config)


def build_bytes(config: dict[str, Any]) -> int:
    """Bytes that rebuilding the layer of a saved ``config`` would allocate (an upper estimate;
    ValueError for a config that names no known kind or no valid widths)."""
    if not isinstance(config, dict):
        raise ValueError(f"a layer config is a dict, got {type(config).__name__}")
    return _saved_class(config).build_bytes(config)


def layer_from_config(config: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Layer:
    """Rebuild a saved layer from its JSON configuration and arrays."""
    if not isinstance(config, dict):
        raise ValueError(f"a layer config is a dict, got {type(config).__name__}")
    return _saved_class(config).from_config(config, arrays or {})


def _saved_class(config: dict[str, Any]) -> type[Layer]:
    """The class of a saved layer: a guided config without ``method`` predates the kernel
    method, so it holds units."""
    return layer_class(config.get("kind"), config, default_method="units")
