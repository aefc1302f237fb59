"""Turn any image input into the array a vision model expects (Pillow and numpy only).

Inputs may be file paths, ``PIL.Image`` objects or arrays (``H x W`` grayscale, ``H x W x 3``
RGB, ``H x W x 4`` RGBA). Transparency is composited onto white (clip art is drawn on a
transparent page), grayscale becomes three channels, and the image is resized to the model's
input size.

How files are decoded has a version (``decode``), part of every image encoder's fingerprint:

- 2 (today): a photo is turned upright by its EXIF orientation (phones store it sideways with a
  tag); 16-bit pixels (``uint16`` arrays, 16-bit PNG) are scaled by 255/65535, so the same scene
  gives the same pixels whatever its brightest point.
- 1: as releases before: no EXIF turn, 16-bit images stretched so their brightest pixel is 255,
  ``uint16`` arrays clipped at 255. A teachable model taught then keeps decoding this way, so its
  features stay comparable.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # RGB, in 0..255 pixel units
IMAGENET_STD = (58.395, 57.12, 57.375)
DECODE = 2  # the version of :func:`to_rgb` new encoders use (see the module's docstring)
_SIXTEEN_BIT = 255.0 / 65535.0


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        from forgetless.encoders.base import missing_package

        raise missing_package("pillow", extra="vision") from None
    return Image


_QUIET_OPEN = threading.Lock()  # warning filters are the process's: one opener at a time


@contextlib.contextmanager
def open_image(source: Any) -> Iterator[Any]:
    """``PIL.Image.open(source)`` without Pillow's ``DecompressionBombWarning``: images up to
    twice its pixel limit are read as Pillow reads them, without two lines of warning each;
    beyond that its ``DecompressionBombError`` still refuses them. Only the opening (where
    Pillow checks the size) holds the lock, so threads decode in parallel."""
    Image = _pil()
    with _QUIET_OPEN, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = Image.open(source)
    with im:
        yield im


def to_rgb(image: Any, max_side: int | None = None, decode: int = DECODE) -> Any:
    """A ``PIL.Image`` in RGB, upright, transparency flattened onto white.

    ``max_side`` lets huge files be shrunk by an integer factor before any other work;
    ``decode`` is the version of the decoding (the module's docstring).

    >>> rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # fully transparent  # doctest: +SKIP
    >>> np.asarray(to_rgb(rgba))[0, 0].tolist()  # needs Pillow  # doctest: +SKIP
    [255, 255, 255]
    """
    if decode not in (1, 2):
        raise ValueError(f"decode must be 1 or 2, got {decode!r}")
    Image = _pil()
    if isinstance(image, (str, os.PathLike)):
        with open_image(image) as im:
            try:
                im.load()
            except OSError as err:  # truncated files: name the file, not just the fault
                raise OSError(f"cannot read image {image}: {err}") from None
            img = im
    elif isinstance(image, np.ndarray):
        arr = image
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            raise ValueError("image array has NaN or infinite values")
        if arr.dtype != np.uint8:
            if decode >= 2 and arr.dtype == np.uint16:
                arr = arr * _SIXTEEN_BIT
            elif arr.size and float(np.nanmax(arr)) <= 1.0:
                arr = arr * 255.0
            arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        img = Image.fromarray(arr)
    elif isinstance(image, Image.Image):
        img = image
    else:
        raise TypeError(f"expected an image path, PIL image or array, got {type(image).__name__}")
    if decode >= 2:
        from PIL import ImageOps

        img = ImageOps.exif_transpose(img)  # the same image when it has no orientation tag
    if img.mode in ("La", "RGBa"):  # premultiplied alpha: PIL converts only its plain form
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    if img.mode == "F" and not np.isfinite(np.asarray(img)).all():
        where = f"image {image}" if isinstance(image, (str, os.PathLike)) else "image"
        raise ValueError(f"{where} has NaN or infinite pixel values")
    if decode < 2 and img.mode in ("I", "I;16", "I;16B", "F"):  # as releases before did
        arr = np.asarray(img, dtype=np.float64)
        top = float(arr.max()) or 1.0
        img = Image.fromarray(np.rint(arr * (255.0 / top)).astype(np.uint8))
    elif decode >= 2 and img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":  # as a float array: 0..1 is scaled, anything else clipped
            scaled = arr * 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else arr
        else:  # integer grey as PNG stores 16 bits (PIL reads them as I or I;16)
            scaled = arr * _SIXTEEN_BIT
        img = Image.fromarray(np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8))
    transparent = img.mode in ("RGBA", "LA", "PA") or (
        img.mode == "P" and "transparency" in img.info
    )
    img = img.convert("RGBA" if transparent else "RGB")
    if max_side is not None and max(img.size) > 2 * max_side:
        img = img.reduce(max(img.size) // (2 * max_side))
    if transparent:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img).convert("RGB")
    return img


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize, crop and normalise a batch of images into one ``float32`` array.

    ``resize``: "squash" stretches to ``size x size``; "crop" scales the shorter side to
    ``size / crop_fraction`` and centre-crops (the ImageNet evaluation recipe); "pad" fits the
    whole image inside the square on white. ``mean`` and ``std`` are per output channel, in
    0..255 pixel units; ``channels`` "BGR" reverses the order (Caffe models); ``layout``
    is "NCHW" (PyTorch) or "NHWC".

    >>> prep = ImagePreprocessing(size=4, mean=(0, 0, 0), std=(255, 255, 255))
    >>> x = prep([np.full((8, 8), 255, dtype=np.uint8)])  # needs Pillow  # doctest: +SKIP
    >>> x.shape, x.dtype, float(x.max())  # doctest: +SKIP
    ((1, 3, 4, 4), dtype('float32'), 1.0)
    """

    size: int = 224
    resize: Literal["squash", "crop", "pad"] = "squash"
    crop_fraction: float = 0.875
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channels: Literal["RGB", "BGR"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    resample: Literal["bilinear", "bicubic"] = "bicubic"
    decode: int = DECODE

    def __post_init__(self) -> None:
        # refused when made, not at the first image (and the size a plain int for manifests)
        whole = isinstance(self.size, (int, np.integer)) and not isinstance(self.size, bool)
        if not whole or self.size < 1:
            raise ValueError(f"image size must be a whole number >= 1, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        for name, allowed in (
            ("resize", ("squash", "crop", "pad")),
            ("channels", ("RGB", "BGR")),
            ("layout", ("NCHW", "NHWC")),
            ("resample", ("bilinear", "bicubic")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(map(repr, allowed))}, got "
                    f"{getattr(self, name)!r}"
                )

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, for fingerprints and manifests (``decode`` 1, the decoding before
        it had a version, adds nothing: those features and fingerprints stay as they were)."""
        doc = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if doc["decode"] == 1:
            del doc["decode"]
        return doc

    def image(self, image: Any) -> np.ndarray:
        """One image as ``uint8`` ``size x size x 3`` RGB after resizing."""
        Image = _pil()
        resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
        method = resample[self.resample]
        img = to_rgb(image, max_side=int(self.size / self.crop_fraction) + 1, decode=self.decode)
        s = self.size
        if self.resize == "squash":
            img = img.resize((s, s), method)
        elif self.resize == "crop":
            short = s / self.crop_fraction
            w, h = img.size
            scale = short / min(w, h)
            nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
            img = img.resize((nw, nh), method)
            left, top = (nw - s) // 2, (nh - s) // 2
            img = img.crop((left, top, left + s, top + s))
        elif self.resize == "pad":
            w, h = img.size
            scale = s / max(w, h)
            nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
            canvas = Image.new("RGB", (s, s), (255, 255, 255))
            canvas.paste(img.resize((nw, nh), method), ((s - nw) // 2, (s - nh) // 2))
            img = canvas
        else:
            raise ValueError(f"resize must be 'squash', 'crop' or 'pad', got {self.resize!r}")
        return np.asarray(img, dtype=np.uint8)

    def __call__(self, images: Sequence[Any]) -> np.ndarray:
        batch = np.stack([self.image(im) for im in images]).astype(np.float32)
        if self.channels == "BGR":
            batch = batch[..., ::-1]
        batch = (batch - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=np.float32)
