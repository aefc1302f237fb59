"""Moved copies of images ("views"): random affine draws, and how many copies train.

A few hundred first-task images train for more epochs before the network overfits them
when each is also seen in randomly rotated, scaled and shifted copies
(:func:`random_affine`); :func:`views_for` caps the copies at :data:`VIEW_BUDGET` in all.
"""

from __future__ import annotations

import math
from typing import Any

VIEW_BUDGET = 3000  # at most this many cached training copies (inputs x views) in all


VIEW_DRAWS = 64
"""Moved copies draw their moves in blocks of this many images (the encoder's default batch
size, which drew them when each batch drew its own), so they do not depend on ``batch_size``."""


def random_affine(
    images: Any,
    generator: Any,
    rotation: float = 15.0,
    scale: float = 0.1,
    shift: float = 0.08,
) -> Any:
    """Each image of a batch ``(n, channels, height, width)`` rotated by up to ``rotation``
    degrees, scaled by up to ``scale`` and shifted by up to ``shift`` of its size, each drawn
    uniformly from ``generator``; the border's pixels fill what moves in. A few hundred
    first-task images train the last stage of a network for more epochs before it overfits
    when each is seen in several such copies (no flips: they change glyphs and text).

    >>> import torch
    >>> x = torch.rand(4, 3, 16, 16)
    >>> same = random_affine(x, torch.Generator().manual_seed(0), rotation=0, scale=0, shift=0)
    >>> bool(torch.allclose(same, x, atol=1e-5))
    True
    >>> a = random_affine(x, torch.Generator().manual_seed(1))
    >>> bool(torch.equal(a, random_affine(x, torch.Generator().manual_seed(1))))
    True
    """
    draws = _affine_block(images.shape[0], generator, images.dtype, rotation, scale, shift)
    return apply_affine(images, *draws)


def affine_draws(n: int, generator: Any) -> tuple[Any, Any, Any]:
    """(angle, zoom, offset) of :func:`random_affine` for ``n`` images, drawn in blocks of
    :data:`VIEW_DRAWS`: image i's move does not depend on how the images are batched."""
    import torch

    blocks = [
        _affine_block(min(VIEW_DRAWS, n - start), generator, torch.float32)
        for start in range(0, n, VIEW_DRAWS)
    ]
    return tuple(torch.cat(parts) for parts in zip(*blocks, strict=True))  # type: ignore[return-value]


def _affine_block(
    n: int,
    generator: Any,
    dtype: Any,
    rotation: float = 15.0,
    scale: float = 0.1,
    shift: float = 0.08,
) -> tuple[Any, Any, Any]:
    import torch

    def uniform(*shape: int) -> Any:
        return torch.rand(*shape, generator=generator, dtype=dtype) * 2.0 - 1.0

    angle = uniform(n) * (rotation * math.pi / 180.0)
    zoom = 1.0 + uniform(n) * scale
    offset = uniform(n, 2) * (2.0 * shift)  # grid coordinates span 2 per image side
    return angle, zoom, offset


def apply_affine(images: Any, angle: Any, zoom: Any, offset: Any) -> Any:
    """``images`` moved by per-image rotation ``angle`` (radians), ``zoom`` and ``offset``."""
    import torch

    n = images.shape[0]
    angle, zoom, offset = (t.to(images.dtype) for t in (angle, zoom, offset))
    theta = torch.zeros(n, 2, 3, dtype=images.dtype)
    theta[:, 0, 0] = torch.cos(angle) / zoom
    theta[:, 0, 1] = -torch.sin(angle) / zoom
    theta[:, 1, 0] = torch.sin(angle) / zoom
    theta[:, 1, 1] = torch.cos(angle) / zoom
    theta[:, :, 2] = offset
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    return torch.nn.functional.grid_sample(
        images, grid.to(images.device), padding_mode="border", align_corners=False
    )


def views_for(views: int, n_train: int) -> int:
    """How many copies of each of ``n_train`` inputs train: ``views``, fewer where that would
    cache more than VIEW_BUDGET (an epoch's cost grows with the copies; a large first task
    needs them less), at least one.

    >>> views_for(8, 320), views_for(8, 480), views_for(8, 3000), views_for(1, 10)
    (8, 6, 1, 1)
    """
    return max(1, min(int(views), VIEW_BUDGET // max(int(n_train), 1)))
