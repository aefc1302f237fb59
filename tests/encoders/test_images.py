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


def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path) -> None:
    """Phones store a portrait photo as a landscape image and a tag saying 'turn me': read
    without the turn, the same object came out sideways from photo to photo."""
    from PIL import Image

    pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high
    pixels[:, :10] = 255  # a white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    upright = np.asarray(to_rgb(path))
    assert upright.shape == (40, 20, 3)  # turned: 20 wide, 40 high
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50  # the band now on top
    assert np.asarray(to_rgb(path, decode=1)).shape == (20, 40, 3)  # as before: not turned
    with Image.open(path) as opened:  # a PIL image with the tag is turned the same way
        np.testing.assert_array_equal(np.asarray(to_rgb(opened)), upright)


def test_sixteen_bit_pixels_keep_their_brightness(tmp_path) -> None:
    """16-bit grey was stretched so that its brightest pixel became white: a dim scene and a
    bright one gave the same pixels. Now 65535 is white and 257 is 1, in files and arrays."""
    from PIL import Image

    dim = np.full((4, 4), 257 * 40, dtype=np.uint16)
    dim[0, 0] = 257 * 80
    path = tmp_path / "dim.png"
    Image.fromarray(dim).save(path)
    for image in (path, dim):
        grey = np.asarray(to_rgb(image))[..., 0]
        assert grey[0, 0] == 80 and grey[1, 1] == 40
    assert np.asarray(to_rgb(path, decode=1))[0, 0, 0] == 255  # as before: stretched
    assert np.asarray(to_rgb(dim, decode=1))[1, 1, 0] == 255  # as before: clipped
    with pytest.raises(ValueError, match="decode must be 1 or 2"):
        to_rgb(dim, decode=3)


def test_the_decoding_is_part_of_every_image_fingerprint() -> None:
    """Features decoded two ways must never share a cache entry or a model; version 1 adds
    nothing to the preprocessing, so what was cached or taught before keeps its key."""
    from forgetless.encoders.raw import RawPixels

    assert ImagePreprocessing().as_dict()["decode"] == 2
    assert "decode" not in ImagePreprocessing(decode=1).as_dict()
    raw = RawPixels(size=8)
    before = raw.decoding(1)
    assert before.decode == 1 and raw.decode == 2  # a view: the encoder itself is unchanged
    assert before.preprocessing() == {"size": 8, "color": False, "scale": "1/255"}
    assert raw.fingerprint() != before.fingerprint()
    assert raw.decoding(2) is raw
    with pytest.raises(ValueError, match="decode must be 1 or 2"):
        raw.decoding(0)


def test_nan_or_infinite_pixels_are_refused(tmp_path) -> None:
    """They were learned as black (NaN) or white (inf) images, where NaN features are refused
    everywhere else; a float image file (TIFF mode F) is named."""
    from PIL import Image

    for value in (np.nan, np.inf, -np.inf):
        bad = np.full((8, 8), 0.5)
        bad[3, 3] = value
        with pytest.raises(ValueError, match="image array has NaN or infinite values"):
            to_rgb(bad)
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((8, 8), np.nan, dtype=np.float32), mode="F").save(path)
    for decode in (1, 2):
        with pytest.raises(ValueError, match=r"float.tif has NaN or infinite pixel values"):
            to_rgb(path, decode=decode)
    with pytest.raises(ValueError, match="^image has NaN or infinite pixel values"):
        to_rgb(Image.open(path))  # a PIL image: no name to give
    assert np.asarray(to_rgb(np.full((8, 8), 0.5))).max() == 128  # finite floats still read
