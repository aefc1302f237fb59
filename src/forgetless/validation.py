"""Input checks with errors that name the problem, run before any state changes.

>>> import numpy as np
>>> check_labels(["cat", "dog"], 2).tolist()
['cat', 'dog']
>>> check_labels(["cat", 3], 2)
Traceback (most recent call last):
...
ValueError: y mixes label types (int and str); use one type for all labels
"""

from __future__ import annotations

import inspect
import numbers
import os
import re
import sys
from typing import Any

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_feature_names, _get_feature_names, column_or_1d


def is_real(value: Any) -> bool:
    """A real number that a float holds, Python's or numpy's, and no bool (which Python counts
    as 0 or 1): the check of a number read from a file or passed as a setting, before its range
    is checked (NaN and infinity pass here, for the range check to refuse; an integer of 400
    digits does not, as no float holds it).

    >>> [is_real(v) for v in (1, 2.5, np.float32(1), float("nan"), True, "3", None, 10**400)]
    [True, True, True, True, False, False, False, False]
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True


def is_integer(value: Any) -> bool:
    """An integer, Python's or numpy's, and no bool (JSON's ``true`` is not 1 here).

    >>> [is_integer(v) for v in (3, np.int64(3), 3.0, True)]
    [True, True, False, False]
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_features(X: Any, n_features: int | None, estimator: Any = None) -> np.ndarray:
    """A finite, dense, 2-D float array with at least one row and the expected width, in C
    order (the layers that reduce over the rows, guided ones, add in memory order: the same
    values in another layout would otherwise give another model)."""
    X = check_array(
        X,
        accept_sparse=False,
        dtype=(np.float64, np.float32),
        order="C",
        ensure_2d=True,
        ensure_all_finite=True,
        ensure_min_samples=1,
        estimator=estimator,
    )
    if n_features is not None and X.shape[1] != n_features:
        name = type(estimator).__name__ if estimator is not None else "the learner"
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting {n_features} features as input."
        )
    return X


def _label_kind(value: Any) -> str:
    if isinstance(value, (str, np.str_)):
        return "str"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    return type(value).__name__


def check_labels(y: Any, n_samples: int, estimator_name: str = "ContinualClassifier") -> np.ndarray:
    """Class labels as a 1-D array of one type (numbers or strings), one per sample."""
    if y is None:
        raise ValueError(f"{estimator_name} requires y to be passed, but the target y is None.")
    if not isinstance(y, (list, tuple, np.ndarray)) and hasattr(y, "__array__"):
        y = np.asarray(y)  # a pandas Series or Categorical: strings arrive as objects
    if isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) and y.dtype == object):
        kinds = {_label_kind(v) for v in np.asarray(y, dtype=object).ravel()}
        numeric = {"int", "float"}  # True would count as 1: bools mix with nothing
        if len(kinds) > 1 and not kinds <= numeric:
            raise ValueError(
                f"y mixes label types ({' and '.join(sorted(kinds))}); use one type for all labels"
            )
        if kinds == {"str"}:
            if any(str(v).endswith("\x00") for v in np.asarray(y, dtype=object).ravel()):
                raise ValueError(
                    "y has a label ending in the NUL character ('\\x00'), which numpy's strings "
                    "drop: 'a' and 'a\\x00' would be one class; remove it"
                )
            y = np.asarray(y, dtype=str)
        elif kinds <= numeric | {"bool"}:
            y = np.asarray(np.asarray(y, dtype=object).tolist())
        else:
            raise ValueError(f"unsupported label type {' and '.join(sorted(kinds))} in y")
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0]} labels")
    if y.dtype.kind not in "biufU" or (y.dtype.kind == "f" and y.dtype.itemsize > 8):
        raise ValueError(
            f"y has labels of type {y.dtype}, which a model file cannot store; use integers, "
            "floats (at most 64-bit) or strings"
        )
    if y.dtype.kind in "fc":
        check_array(y, ensure_2d=False, dtype=None, ensure_all_finite=True, input_name="y")
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        example = y[np.flatnonzero(y != np.round(y))[0]]
        raise ValueError(
            f"Unknown label type: continuous (y holds numbers that are not whole, e.g. "
            f"{float(example)}): class labels are whole numbers or strings; a continuous target "
            "is a regression, not classes"
        )
    if y.dtype.kind == "f" and np.any(np.abs(y) >= 2.0**63):
        example = y[np.flatnonzero(np.abs(y) >= 2.0**63)[0]]
        raise ValueError(
            f"y holds the whole number {float(example):g}, beyond what class labels can be "
            "(|label| < 2^63, a 64-bit integer); use smaller numbers or strings"
        )
    if y.dtype.kind not in "U":
        check_classification_targets(y)
    elif type_of_target(y) not in ("binary", "multiclass"):
        raise ValueError(f"y has unsupported target type {type_of_target(y)!r}")
    return y


def check_classes(classes: Any, what: str = "classes") -> np.ndarray:
    """Class labels a caller names (one label or a 1-D list), checked as :func:`check_labels`
    checks ``y``.

    >>> check_classes("cat").tolist(), check_classes([2, 1]).tolist()
    (['cat'], [2, 1])
    >>> check_classes([])
    Traceback (most recent call last):
    ...
    ValueError: classes is empty: name at least one class label
    """
    if classes is None:
        raise ValueError(f"{what} must name class labels, got None")
    if np.ndim(classes) > 1:
        raise ValueError(f"{what} must be one label or a 1-D list of labels")
    listed = [classes] if np.ndim(classes) == 0 else list(np.asarray(classes, dtype=object))
    if not listed:
        raise ValueError(f"{what} is empty: name at least one class label")
    try:
        return check_labels(listed, len(listed))
    except ValueError as err:
        raise ValueError(re.sub(r"\by\b", what, str(err))) from None


def label_family(labels: np.ndarray) -> str:
    """'str', 'bool', 'int' or 'float': label types that may not be mixed within one learner
    (mixing would coerce them: True would count as 1, integer classes would become floats).

    >>> import numpy as np
    >>> [label_family(np.array(v)) for v in ([1, 2], [True], ["a"], [0.5])]
    ['int', 'bool', 'str', 'float']
    """
    return {"U": "str", "S": "str", "b": "bool", "i": "int", "u": "int", "f": "float"}.get(
        labels.dtype.kind, str(labels.dtype)
    )


def check_label_family(labels: np.ndarray, learned: np.ndarray, what: str = "y") -> None:
    """Refuse labels of another type than the learner's classes (none learned: anything)."""
    joins_floats = (  # integers join float classes exactly (pandas' Int64 gave floats once)
        label_family(labels) == "int"
        and label_family(learned) == "float"
        and bool(np.all(np.abs(labels.astype(np.float64)) < 2.0**53))
    )
    if (
        learned.size
        and labels.size
        and label_family(labels) != label_family(learned)
        and not joins_floats
    ):
        raise ValueError(
            f"{what} has {label_family(labels)} labels ({labels.dtype}) but this learner was "
            f"trained on {label_family(learned)} labels ({learned.dtype}); unseen label type"
        )
    if (
        learned.size
        and labels.size
        and label_family(labels) == "int"
        and label_family(learned) == "int"
        and np.result_type(labels.dtype, learned.dtype).kind == "f"
    ):  # uint64 with signed integers: numpy would make every class a float
        raise ValueError(
            f"{what} has {labels.dtype} labels, which cannot join this learner's "
            f"{learned.dtype} classes without turning them into floats; cast them to "
            f"{learned.dtype}"
        )


def feature_names(X: Any) -> np.ndarray | None:
    """Column names of a DataFrame-like X (all strings), else None: as scikit-learn reads them."""
    return _get_feature_names(X)


def check_feature_names(estimator: Any, X: Any) -> None:
    """X's column names against ``estimator.feature_names_in_``, as scikit-learn checks them:
    other names or another order is an error; names on one side only, a warning."""
    _check_feature_names(estimator, X, reset=False)


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning name the first caller outside forgetless and
    scikit-learn (the user's line), for a warning issued by the function that calls this one."""
    import sklearn

    # forgetless's frames, and scikit-learn's (``score`` and other mixin methods call ours)
    inside = tuple(
        os.path.dirname(os.path.abspath(module.__file__)) + os.sep
        for module in (sys.modules[__name__.split(".")[0]], sklearn)
    )
    frame, level = inspect.currentframe(), 0
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    return max(level, 1)
