"""Frozen pretrained encoders behind one interface: ``encode(inputs) -> float32 (n, dim)``.

``load_encoder(name, **kw)`` builds a built-in encoder or an adapter for a model whose
weights are already on this machine:

* built in: ``efficientnet-lite0``, ``opennsfw-resnet50``, ``minilm``, ``raw``, and
  ``features`` (rows of numbers used as they are: data encoded elsewhere);
* adapters: ``timm:<name>``, ``torchvision:<name>``, ``hf:<model id or folder>``,
  ``open_clip:<arch>:<tag or file>``, ``sentence-transformers:<id or folder>``,
  ``onnx:<path>[:<output>]``.

Missing packages or weights raise :class:`EncoderNotAvailableError` saying what to install
or where the weights go; nothing is downloaded at encode time.

>>> enc = load_encoder("raw")
>>> enc.encode(np.zeros((2, 8, 8), dtype=np.uint8)).shape
(2, 64)
>>> list_encoders()[:4]
['efficientnet-lite0', 'opennsfw-resnet50', 'minilm', 'raw']
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np  # noqa: F401  (used by the doctest above)

from forgetless.encoders.base import Encoder, EncoderNotAvailableError, check_batch_size

_BUILTIN = ("efficientnet-lite0", "opennsfw-resnet50", "minilm", "raw", "features")
_ADAPTERS = ("timm", "torchvision", "hf", "open_clip", "sentence-transformers", "onnx")
# What a built-in encoder can read out: its default (the last map or layer and earlier ones,
# each part divided by its own norm), then the last map or layer only (the only readout of
# earlier releases, so files that name no readout mean it). Read by the config check, without
# torch.
READOUTS: dict[str, tuple[str, str]] = {
    "efficientnet-lite0": ("stages", "head"),
    "minilm": ("layers", "last"),
}

IMAGE_SIZES = {"efficientnet-lite0": (32, 1024), "raw": (4, 64)}
"""The image sides (pixels) the built-in image encoders accept (``--image-size``, or the
option ``IMAGE_SIZE_OPTION`` names): EfficientNet's stride-32 stages need 32 pixels; raw colour
pixels of 64 x 64 are already 12,288 values per image, whose statistics (no layer on features
that wide) take 1.2 GB."""

IMAGE_SIZE_OPTION = {"efficientnet-lite0": "image_size", "raw": "size"}


def list_encoders() -> list[str]:
    """Built-in encoder names, then adapter prefixes (``"timm:"``, ...)."""
    return [*_BUILTIN, *(f"{a}:" for a in _ADAPTERS)]


def _builtin(name: str) -> Callable[..., Encoder]:
    if name == "efficientnet-lite0":
        from forgetless.encoders.efficientnet import EfficientNetLite0

        return EfficientNetLite0
    if name == "opennsfw-resnet50":
        from forgetless.encoders.onnx import opennsfw_resnet50

        return opennsfw_resnet50
    if name == "minilm":
        from forgetless.encoders.sentence import minilm

        return minilm
    if name == "features":
        from forgetless.encoders.features import FeatureRows

        return FeatureRows
    from forgetless.encoders.raw import RawPixels

    return RawPixels


def load_encoder(name: str, /, **kwargs: Any) -> Encoder:
    """Build encoder ``name``; keyword arguments (``device``, ``threads``, ``batch_size``,
    ``image_size``, ...) go to its constructor. Modules load lazily, so only the chosen
    family's packages need to be installed."""
    if "batch_size" in kwargs:  # refused here, not at the first encode
        check_batch_size(kwargs["batch_size"])
    if name in _BUILTIN:
        return _builtin(name)(**kwargs)
    family, sep, spec = name.partition(":")
    if not sep or not spec or family not in _ADAPTERS:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(list_encoders())}")
    if family == "timm":
        from forgetless.encoders.timm import TimmEncoder

        return TimmEncoder(spec, **kwargs)
    if family == "torchvision":
        from forgetless.encoders.torchvision import TorchvisionEncoder

        return TorchvisionEncoder(spec, **kwargs)
    if family == "hf":
        from forgetless.encoders.hf import HuggingFaceEncoder

        return HuggingFaceEncoder(spec, **kwargs)
    if family == "open_clip":
        from forgetless.encoders.open_clip import OpenClipEncoder

        arch, _, tag = spec.partition(":")
        if not tag:
            raise ValueError(f"{name!r}: write open_clip:<arch>:<pretrained tag or file>")
        return OpenClipEncoder(arch, tag, **kwargs)
    if family == "sentence-transformers":
        from forgetless.encoders.sentence import SentenceTransformerEncoder

        return SentenceTransformerEncoder(spec, **kwargs)
    from forgetless.encoders.onnx import OnnxEncoder, parse_onnx_spec

    path, output = parse_onnx_spec(spec)
    return OnnxEncoder(path, output=output, **kwargs)


# Families whose names can hold a place on disk, a model folder or weights file (else a hub id
# or tag): the name a model records says where its encoder is found.
_PLACED = ("sentence-transformers", "hf", "onnx", "open_clip")


def _place(name: str) -> tuple[str, str, str] | None:
    """``(before, place, after)`` with ``name == before + place + after``, where ``place`` is
    the folder, file or hub id the name holds; None for names that hold none."""
    family, sep, spec = name.partition(":")
    if not sep or not spec or family not in _PLACED:
        return None
    if family == "onnx":
        from forgetless.encoders.onnx import parse_onnx_spec

        path, _ = parse_onnx_spec(spec)
        return "onnx:", path, spec[len(path) :]
    if family == "open_clip":
        arch, _, tag = spec.partition(":")
        return f"open_clip:{arch}:", tag, ""
    return f"{family}:", spec, ""


def located(name: str) -> str:
    """``name`` with a relative path to a local folder or file made absolute, so that what
    records it finds the encoder from any working directory; other names as they are.

    >>> located("minilm"), located("sentence-transformers:/models/mine")
    ('minilm', 'sentence-transformers:/models/mine')
    >>> located("hf:no-such-folder-here")  # a hub id (or nothing here): as it is
    'hf:no-such-folder-here'

    A place is what the family's loader takes as one, a folder (``hf:``,
    ``sentence-transformers:``) or a file (``onnx:``, ``open_clip:``): a folder ``openai``
    here leaves ``open_clip:ViT-B-32:openai`` the tag it is.
    """
    place = _place(name)
    if place is None:
        return name
    before, where, after = place
    try:
        local = Path(where).expanduser()
    except RuntimeError:  # ~user with no home here: the loader says it is not found
        return name
    found = local.is_file() if before.startswith(("onnx:", "open_clip:")) else local.is_dir()
    if not where or (local.is_absolute() and str(local) == where) or not found:
        return name
    return f"{before}{local.absolute()}{after}"


def place_of(name: str) -> str | None:
    """The folder, file or hub id ``name`` holds (None: a name that holds none).

    >>> place_of("onnx:/m/net.onnx:out"), place_of("open_clip:RN50:openai"), place_of("minilm")
    ('/m/net.onnx', 'openai', None)
    """
    place = _place(name)
    return None if place is None else place[1]


def can_move(name: str, recorded: str) -> bool:
    """Whether ``name`` may name, at another place, the encoder recorded as ``recorded``:
    both hold a place, in the same family (and open_clip architecture). An ONNX output may be
    named or left to the file's default: the fingerprint's preprocessing holds the one read.

    >>> can_move("hf:/new/bert", "hf:/old/bert"), can_move("hf:/new/bert", "minilm")
    (True, False)
    >>> can_move("onnx:/new/net.onnx:out", "onnx:/old/net.onnx")
    True
    """
    here, there = _place(name), _place(recorded)
    return here is not None and there is not None and here[0] == there[0]


def relocated(
    encoder: Encoder, recorded: str, fingerprint: str, named: str | None = None
) -> Encoder | None:
    """``encoder`` renamed ``named`` (default ``recorded``) where that name gives it
    ``fingerprint``: the same weights and preprocessing found at another place than the one
    ``recorded`` holds (a moved model folder or weights file); else None. Only the place may
    differ: the family (and open_clip's architecture) must be the same. An ONNX encoder names
    itself by its file's name and output (``onnx:net.onnx:out``), which is what its
    fingerprint holds: the name the recorded file gives is tried too (a file renamed).
    """
    place = _place(recorded)
    if place is None or not can_move(str(getattr(encoder, "name", "")), recorded):
        return None
    names = [named or recorded]
    if place[0] == "onnx:":
        output = place[2][1:] or str(getattr(encoder, "output", ""))
        names.append(f"onnx:{Path(place[1]).name}:{output}")
    for name in names:
        moved = copy.copy(encoder)
        moved.name = name
        if moved.fingerprint() == fingerprint:
            return moved
    return None


__all__ = [
    "IMAGE_SIZES",
    "IMAGE_SIZE_OPTION",
    "READOUTS",
    "Encoder",
    "EncoderNotAvailableError",
    "list_encoders",
    "load_encoder",
    "can_move",
    "place_of",
    "located",
    "relocated",
]
