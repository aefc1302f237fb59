"""Model files: arrays in an ``.npz`` zip, metadata in JSON, no pickle, written atomically.

A model file is a standard ``.npz`` archive (readable with ``np.load(path, allow_pickle=False)``)
holding the statistics (and an RLS head's P and W) plus one entry ``metadata.json``: format and
library versions, the estimator's parameters, its seed, the class labels and the sha256 of every
array. Nothing in it can run code when loaded. Entries are written in a fixed order with fixed
timestamps, so the same model always gives the same bytes.

Saving writes a temporary file next to the target, fsyncs it and renames it over the target: a
crash mid-save leaves the previous file intact.

>>> import numpy as np, tempfile, os
>>> from forgetless import ContinualClassifier
>>> X = np.random.default_rng(0).standard_normal((40, 6)); y = np.arange(40) % 3
>>> clf = ContinualClassifier(n_components=32).fit(X, y)
>>> path = os.path.join(tempfile.mkdtemp(), "model.fl")
>>> clf.save(path)
>>> bool((ContinualClassifier.load(path).predict(X) == clf.predict(X)).all())
True
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from forgetless.heads import RLSHead
from forgetless.projection import projection_from_config
from forgetless.statistics import SufficientStatistics

FORMAT = "forgetless-model"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class ModelFileError(ValueError):
    """A model file is missing, truncated, altered or of an unknown format."""


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _labels_to_json(classes: np.ndarray) -> dict[str, Any]:
    return {"dtype": classes.dtype.str, "values": classes.tolist()}


def _labels_from_json(entry: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(entry["dtype"])
    if dtype.kind not in "biufU":
        raise ModelFileError(f"unsupported label dtype {dtype} in model file")
    return np.asarray(entry["values"], dtype=dtype)


def save_model(clf: Any, path: str | os.PathLike) -> None:
    """Write ``clf`` to ``path`` atomically (see the module docstring for the format)."""
    from forgetless import __version__

    if not clf.__sklearn_is_fitted__():
        raise ValueError("cannot save an unfitted learner; call fit or partial_fit first")
    arrays = clf.statistics_.to_arrays()
    arrays.update({f"projection.{k}": v for k, v in clf.projection_.arrays().items()})
    if isinstance(clf.head_, RLSHead):
        arrays["rls_P"] = clf.head_.P
        arrays["rls_W"] = clf.head_.coef_
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "estimator": type(clf).__name__,
        "params": {
            k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in clf.get_params().items()
        },
        "seed": clf.seed_,
        "n_features_in": clf.n_features_in_,
        "projection": clf.projection_.config(),
        "projection_signature": clf.projection_.signature(),
        "classes": _labels_to_json(clf.classes_),
        "arrays": {
            name: {"sha256": _sha256(a), "shape": list(a.shape), "dtype": a.dtype.str}
            for name, a in sorted(arrays.items())
        },
    }
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".fl", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
                info = zipfile.ZipInfo(_METADATA, date_time=_FIXED_TIME)
                archive.writestr(info, json.dumps(metadata, sort_keys=True, indent=1))
                for name, array in sorted(arrays.items()):
                    info = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_TIME)
                    archive.writestr(info, _npy_bytes(array))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if _METADATA not in names:
                raise ModelFileError(f"{path} is not a forgetless model (no {_METADATA})")
            metadata = json.loads(archive.read(_METADATA).decode("utf-8"))
            arrays = {}
            for name in names:
                if name == _METADATA:
                    continue
                with archive.open(name) as member:
                    data = io.BytesIO(member.read())
                arrays[name.removesuffix(".npy")] = np.lib.format.read_array(
                    data, allow_pickle=False
                )
    except FileNotFoundError:
        raise
    except ModelFileError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        UnicodeDecodeError,
        KeyError,
    ) as err:
        raise ModelFileError(f"{path} is truncated or corrupted: {err}") from err
    return metadata, arrays


AS_SAVED = "as-saved"


def load_model(path: str | os.PathLike, device: str | None = AS_SAVED) -> Any:
    """Read a model file, verifying format, checksums and the random layer.

    ``device`` replaces the saved one (``None`` for numpy, ``"cpu"``, ``"cuda"``), e.g. to use a
    model trained on a GPU on a machine without one; the statistics are the same either way.
    """
    from forgetless.learner import ContinualClassifier

    path = os.fspath(path)
    metadata, arrays = _read(path)
    if metadata.get("format") != FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: unknown format {metadata.get('format')!r} "
            f"version {metadata.get('format_version')!r}"
        )
    expected = metadata.get("arrays", {})
    if sorted(expected) != sorted(arrays):
        raise ModelFileError(
            f"{path}: arrays {sorted(arrays)} do not match the metadata {sorted(expected)}"
        )
    for name, array in arrays.items():
        if _sha256(array) != expected[name]["sha256"]:
            raise ModelFileError(f"{path}: checksum mismatch for array {name!r} (file altered)")
    try:
        params = dict(metadata["params"])
        if device != AS_SAVED:
            params["device"] = device
        clf = ContinualClassifier(**params)
        layer = projection_from_config(
            metadata["projection"],
            {
                k.removeprefix("projection."): v
                for k, v in arrays.items()
                if k.startswith("projection.")
            },
        )
        stats = SufficientStatistics.from_arrays(arrays)
        classes = _labels_from_json(metadata["classes"])
        head = clf._make_head(layer.n_outputs)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: inconsistent model file: {err}") from err
    if not np.allclose(layer.signature(), metadata["projection_signature"], rtol=1e-6, atol=1e-9):
        raise ModelFileError(
            f"{path}: this numpy/forgetless build regenerates a different random layer from the "
            "saved seed; load it with the versions that saved it"
        )
    if classes.shape[0] != stats.n_classes:
        raise ModelFileError(f"{path}: {classes.shape[0]} labels but {stats.n_classes} columns")
    if isinstance(head, RLSHead):
        head.P, head.coef_ = arrays["rls_P"], arrays["rls_W"]
        head.intercept_ = np.zeros(head.coef_.shape[1])
    clf.__dict__.update(
        n_features_in_=int(metadata["n_features_in"]),
        seed_=int(metadata["seed"]),
        projection_=layer,
        statistics_=stats,
        head_=head,
        classes_=classes,
        _stale=True,
    )
    return clf
