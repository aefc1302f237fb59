"""Feature rows used as they are: for data already encoded elsewhere (an ``arrays`` dataset's
float rows), so the learners read exactly the numbers given."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from forgetless.encoders.base import Encoder


class FeatureRows(Encoder):
    """Each input is a row of numbers, returned as float32 (the feature cache's type).

    >>> FeatureRows().encode(np.array([[0.5, -2.0], [3.0, 1e-3]])).tolist()
    [[0.5, -2.0], [3.0, 0.0010000000474974513]]
    >>> FeatureRows().encode(np.array([[np.nan, 1.0]]))
    Traceback (most recent call last):
    ...
    ValueError: feature rows hold values that are not finite (NaN or infinity); ...
    """

    modality = "array"

    def __init__(self, batch_size: int = 4096) -> None:
        self.name = "features"
        self.batch_size = batch_size
        self.dim = None  # the rows' own width

    def preprocessing(self) -> dict[str, Any]:
        return {"rows": "float32"}

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        try:
            rows = np.asarray(batch)
        except ValueError:  # rows of several lengths
            raise ValueError("feature rows must all have the same length") from None
        if rows.ndim != 2 or rows.dtype.kind not in "biuf":
            raise ValueError(
                f"feature rows must be numbers, one row of the same length per sample; got "
                f"{rows.dtype} values of shape {rows.shape}"
            )
        if rows.dtype.kind == "f" and not np.isfinite(rows).all():
            raise ValueError(
                "feature rows hold values that are not finite (NaN or infinity); replace or "
                "drop those rows"
            )
        largest = float(np.abs(rows).max(initial=0.0))
        if largest > float(np.finfo(np.float32).max):
            raise ValueError(
                f"feature rows hold values up to {largest:.3g}, beyond float32's range; scale "
                "them down"
            )
        return rows.astype(np.float32)
