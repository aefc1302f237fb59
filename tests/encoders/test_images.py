"""Image preprocessing: transparency, grayscale, resizing policies and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require
from forgetless.encoders.images import ImagePreprocessing, to_rgb


@pytest.fixture(autouse=True)
def _pillow() -> None:
    require("PIL", "pip install pillow")


def test_transparency_becomes_white_and_gray_becomes_rgb(tmp_path) -> None:
    from PIL import Image

    rgba = np.zeros((3, 3, 4), dtype=np.uint8)
    rgba[1, 1] = (255, 0, 0, 255)  # one opaque red pixel on a transparent page
    out = np.asarray(to_rgb(rgba))
    assert out[0, 0].tolist() == [255, 255, 255] and out[1, 1].tolist() == [255, 0, 0]
    path = tmp_path / "p.png"
    Image.fromarray(rgba).convert("P").save(path, transparency=0)
    assert to_rgb(str(path)).mode == "RGB"
    gray = np.asarray(to_rgb(np.arange(12, dtype=np.uint8).reshape(3, 4)))
    assert gray.shape == (3, 4, 3) and (gray[..., 0] == gray[..., 2]).all()
    floats = np.asarray(to_rgb(np.full((2, 2), 0.5)))
    assert floats[0, 0, 0] == 128


def test_resize_policies_keep_what_they_promise() -> None:
    wide = np.zeros((20, 60), dtype=np.uint8)  # black, wide
    pad = ImagePreprocessing(size=30, resize="pad").image(wide)
    assert pad.shape == (30, 30, 3) and pad[0, 0].tolist() == [255, 255, 255]  # white margins
    assert pad[15, 15].tolist() == [0, 0, 0]
    crop = ImagePreprocessing(size=30, resize="crop", crop_fraction=1.0).image(wide)
    assert crop.shape == (30, 30, 3) and crop.max() == 0  # all image, no margin
    squash = ImagePreprocessing(size=30).image(wide)
    assert squash.shape == (30, 30, 3)
    with pytest.raises(ValueError, match="resize must be"):
        ImagePreprocessing(size=8, resize="zoom").image(wide)  # type: ignore[arg-type]


def test_normalisation_layout_and_channel_order() -> None:
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    nchw = ImagePreprocessing(size=4, mean=(0, 0, 0), std=(255, 255, 255))([red])
    assert nchw.shape == (1, 3, 4, 4) and nchw.dtype == np.float32
    assert nchw[0, 0].min() == 1.0 and nchw[0, 2].max() == 0.0
    bgr = ImagePreprocessing(size=4, mean=(0, 0, 0), std=(1, 1, 1), channels="BGR", layout="NHWC")(
        [red]
    )
    assert bgr.shape == (1, 4, 4, 3) and bgr[0, 0, 0].tolist() == [0.0, 0.0, 255.0]


def test_huge_images_are_shrunk_before_work() -> None:
    big = np.full((3000, 2000, 3), 200, dtype=np.uint8)
    assert max(to_rgb(big, max_side=100).size) < 400
    assert ImagePreprocessing(size=50).image(big)[0, 0].tolist() == [200, 200, 200]


def test_raw_pixels_of_an_rgba_array_are_its_grey_image(tmp_path) -> None:
    """With color=False an RGBA (or grey + alpha) array was flattened as it was: 4 values per
    pixel, transparency not flattened onto white, unlike the same image given as a file."""
    from PIL import Image

    from forgetless.encoders.raw import RawPixels

    rgba = np.zeros((8, 8, 4), dtype=np.uint8)  # fully transparent
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    encoder = RawPixels()
    as_array, as_file = encoder.encode([rgba]), encoder.encode([str(tmp_path / "clear.png")])
    assert as_array.shape == (1, 64) and np.array_equal(as_array, as_file)
    assert np.all(as_array == 1.0)  # white


def test_a_truncated_image_is_named_and_bad_batch_sizes_are_refused(tmp_path) -> None:
    from PIL import Image

    from forgetless.encoders.raw import RawPixels

    Image.fromarray(np.full((64, 64, 3), 90, dtype=np.uint8)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    encoder = RawPixels(size=8)
    with pytest.raises(OSError, match="cannot read image .*cut.png"):
        encoder.encode([str(tmp_path / "whole.png"), str(tmp_path / "cut.png")])
    for size in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size must be a whole number"):
            encoder.encode([str(tmp_path / "whole.png")], batch_size=size)
    with pytest.raises(TypeError, match="one string"):
        encoder.encode(str(tmp_path / "whole.png"))


def test_premultiplied_alpha_modes_are_read() -> None:
    """PIL cannot convert 'La' or 'RGBa' to RGB directly: such images raised ValueError."""
    from PIL import Image

    for mode in ("La", "RGBa"):
        assert to_rgb(Image.new(mode, (3, 3))).mode == "RGB"
