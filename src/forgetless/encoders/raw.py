"""Raw pixels as features: the no-model baseline every encoder should beat."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from forgetless.encoders.base import Encoder, check_flag, check_whole
from forgetless.encoders.images import to_rgb


class RawPixels(Encoder):
    """Flattened pixels scaled to [0, 1]; grayscale unless ``color``.

    ``size`` resizes every image to ``size x size`` first (needed for images of mixed sizes);
    None keeps arrays as they are.

    >>> import numpy as np
    >>> RawPixels().encode(np.full((2, 3, 3), 255, dtype=np.uint8)).tolist()[0][:3]
    [1.0, 1.0, 1.0]
    >>> RawPixels(size=4, color=True).dim
    48
    """

    modality = "image"

    def __init__(self, size: int | None = None, color: bool = False, batch_size: int = 256):
        from forgetless.encoders import IMAGE_SIZES

        self.size = None if size is None else check_whole("size", size, *IMAGE_SIZES["raw"])
        self.color = check_flag("color", color)
        self.name = "raw"
        self.batch_size = batch_size
        self.dim = self.size * self.size * (3 if self.color else 1) if self.size else None

    def preprocessing(self) -> dict[str, Any]:
        decode = {} if self.decode == 1 else {"decode": self.decode}
        return {"size": self.size, "color": self.color, "scale": "1/255", **decode}

    def _one(self, image: Any) -> np.ndarray:
        if self.size is None and isinstance(image, np.ndarray) and image.dtype == np.uint8:
            rgb = image.ndim == 3 and image.shape[2] == 3
            if (self.color and rgb) or (not self.color and image.ndim == 2):
                return image.reshape(-1)  # already what is wanted (RGBA etc. go through PIL)
        img = to_rgb(image, decode=self.decode)
        if self.size is not None:
            from PIL import Image

            img = img.resize((self.size, self.size), Image.Resampling.BILINEAR)
        if not self.color:
            img = img.convert("L")
        return np.asarray(img).reshape(-1)

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        rows = [self._one(im) for im in batch]
        if len({r.shape for r in rows}) > 1:
            raise ValueError("images differ in size; pass size= to resize them to one size")
        return np.stack(rows).astype(np.float32) / 255.0
