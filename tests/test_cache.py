"""Feature cache: no re-encoding, resume after a kill, no stale or damaged features served."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from conftest import require
from forgetless.cache import (
    ENV_VAR,
    FEATURES,
    MANIFEST,
    CacheDamagedWarning,
    FeatureCache,
    dataset_features,
    default_cache_dir,
    inputs_fingerprint,
)
from forgetless.cli import main
from forgetless.data import load_dataset
from forgetless.encoders import Encoder, load_encoder


class Counting(Encoder):
    """Wraps a real encoder and counts what it is asked to encode; may fail after a budget."""

    def __init__(self, inner: Encoder, fail_after: int | None = None) -> None:
        self.inner = inner
        self.name, self.dim, self.modality = inner.name, inner.dim, inner.modality
        self.items = 0
        self.fail_after = fail_after

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        if self.fail_after is not None and self.items >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.items += len(batch)
        return self.inner.encode(batch, progress=False)


@pytest.fixture(scope="module")
def digits() -> Any:
    return load_dataset("digits")


def test_second_run_encodes_nothing_and_returns_identical_features(tmp_path, digits) -> None:
    cache = FeatureCache(tmp_path)
    first = Counting(load_encoder("raw"))
    a = np.array(cache.features(first, digits.train.inputs, chunk_size=200))
    assert first.items == len(digits.train)
    second = Counting(load_encoder("raw"))
    b = cache.features(second, digits.train.inputs, chunk_size=200)
    assert second.items == 0
    assert isinstance(b, np.memmap) and not b.flags.writeable
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, load_encoder("raw").encode(digits.train.inputs))
    (manifest,) = [json.loads(m.read_text()) for m in tmp_path.glob(f"*/{MANIFEST}")]
    assert manifest["encoder"]["fingerprint"] == load_encoder("raw").fingerprint()
    assert manifest["inputs_fingerprint"] == inputs_fingerprint(digits.train.inputs)
    assert manifest["complete"] and len(manifest["chunks"]) == 7  # 1347 rows / 200


def test_real_encoder_is_not_called_on_a_cache_hit(tmp_path, efficientnet, fashion_mnist) -> None:
    images = fashion_mnist.test.inputs[:64]
    cache = FeatureCache(tmp_path)
    first = cache.features(efficientnet, images, chunk_size=32)
    counting = Counting(efficientnet)
    again = cache.features(counting, images, chunk_size=32)
    assert counting.items == 0
    np.testing.assert_array_equal(first, again)


def test_resume_after_interruption_encodes_only_the_rest(tmp_path, digits) -> None:
    cache = FeatureCache(tmp_path)
    dying = Counting(load_encoder("raw"), fail_after=300)
    with pytest.raises(KeyboardInterrupt):
        cache.features(dying, digits.train.inputs, chunk_size=100)
    (entry,) = cache.entries()
    assert not entry.complete
    resumed = Counting(load_encoder("raw"))
    feats = cache.features(resumed, digits.train.inputs, chunk_size=100)
    assert resumed.items == len(digits.train) - 300
    np.testing.assert_array_equal(feats, load_encoder("raw").encode(digits.train.inputs))
    assert cache.entries()[0].complete


def test_resume_after_the_process_is_killed(tmp_path, digits) -> None:
    """SIGKILL a real encoding process mid-run; the next run picks up its chunks."""
    script = textwrap.dedent(
        f"""
        import time
        from forgetless.cache import FeatureCache
        from forgetless.data import load_dataset
        from forgetless.encoders import load_encoder

        class SlowList(list):  # the same images, handed out slowly
            def __getitem__(self, index):
                if isinstance(index, slice):
                    time.sleep(0.2)
                return super().__getitem__(index)

        inputs = SlowList(load_dataset("digits").train.inputs)
        cache = FeatureCache({str(tmp_path)!r})
        cache.features(load_encoder("raw"), inputs, chunk_size=50, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = [
                len(json.loads(m.read_text())["chunks"])
                for m in tmp_path.glob(f"*/{MANIFEST}")
                if m.stat().st_size
            ]
            if done and done[0] >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the encoding process never wrote a chunk")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (manifest,) = [json.loads(m.read_text()) for m in tmp_path.glob(f"*/{MANIFEST}")]
    written = len(manifest["chunks"])
    assert not manifest["complete"] and written >= 3
    resumed = Counting(load_encoder("raw"))
    inputs = list(digits.train.inputs)
    feats = FeatureCache(tmp_path).features(resumed, inputs, chunk_size=50, progress=False)
    assert 0 < resumed.items <= len(inputs) - 50 * written
    np.testing.assert_array_equal(feats, load_encoder("raw").encode(digits.train.inputs))


def test_changed_preprocessing_or_inputs_never_serve_stale_features(tmp_path, digits) -> None:
    cache = FeatureCache(tmp_path)
    cache.features(load_encoder("raw"), digits.train.inputs)
    resized = Counting(load_encoder("raw", size=4))
    feats = cache.features(resized, digits.train.inputs)
    assert resized.items == len(digits.train) and feats.shape == (len(digits.train), 16)
    changed = digits.train.inputs.copy()
    changed[0, 0, 0] ^= 1
    same_encoder = Counting(load_encoder("raw"))
    cache.features(same_encoder, changed)
    assert same_encoder.items == len(digits.train)
    assert len(cache.entries()) == 3


def test_image_files_are_keyed_by_content_changes(tmp_path, digits) -> None:
    pil = require("PIL.Image", "pip install pillow")
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"{i}.png"))
        pil.fromarray(digits.train.inputs[i]).save(paths[-1])
    cache = FeatureCache(tmp_path / "cache")
    before = np.array(cache.features(load_encoder("raw"), paths))
    pil.fromarray(255 - digits.train.inputs[0]).save(paths[0])
    os.utime(paths[0], ns=(time.time_ns(), time.time_ns() + 10**9))
    after = cache.features(load_encoder("raw"), paths)
    assert not np.array_equal(before[0], after[0])
    np.testing.assert_array_equal(before[1:], after[1:])


def test_damaged_chunk_is_detected_and_only_it_is_rebuilt(tmp_path, digits) -> None:
    cache = FeatureCache(tmp_path)
    good = np.array(cache.features(load_encoder("raw"), digits.train.inputs, chunk_size=100))
    (features,) = tmp_path.glob(f"*/{FEATURES}")
    with open(features, "r+b") as f:  # flip bytes well inside the data (third chunk)
        f.seek(features.stat().st_size - good.nbytes + 250 * good.shape[1] * 4)
        f.write(b"\xff\xff\xff\xff")
    counting = Counting(load_encoder("raw"))
    with pytest.warns(CacheDamagedWarning, match="damaged"):
        again = cache.features(counting, digits.train.inputs, chunk_size=100)
    assert counting.items == 100
    np.testing.assert_array_equal(again, good)


@pytest.mark.parametrize("damage", ["truncate", "empty", "manifest"])
def test_damaged_files_are_rebuilt(tmp_path, digits, damage: str) -> None:
    """Including an empty features file (a full disk, a crash), which raised EOFError at
    every later run."""
    cache = FeatureCache(tmp_path)
    good = np.array(cache.features(load_encoder("raw"), digits.test.inputs))
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    if damage in ("truncate", "empty"):
        with open(folder / FEATURES, "r+b") as f:
            f.truncate(1000 if damage == "truncate" else 0)
    else:
        (folder / MANIFEST).write_text('{"format": 1, "key": ')
    counting = Counting(load_encoder("raw"))
    with pytest.warns(CacheDamagedWarning):
        again = cache.features(counting, digits.test.inputs)
    assert counting.items == len(digits.test)
    np.testing.assert_array_equal(again, good)


def _without(field: str) -> Callable[[dict[str, Any]], Any]:
    return lambda m: {k: v for k, v in m.items() if k != field}


def _with(**fields: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda m: {**m, **fields}


def _chunks(change: Callable[[dict[str, str]], Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda m: {**m, "chunks": change(dict(m["chunks"]))}


# Manifests that parse as JSON but cannot describe the entry (1347 rows of 64 in chunks of 200).
MALFORMED_MANIFESTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "not an object": lambda m: [m],
    "chunks missing": _without("chunks"),
    "shape missing": _without("shape"),
    "complete missing": _without("complete"),
    "tag missing": _without("tag"),
    "encoder missing": _without("encoder"),
    "chunks a list": lambda m: {**m, "chunks": list(m["chunks"].values())},
    "chunk digests not strings": _chunks(lambda c: dict.fromkeys(c, 1)),
    "shape a string": _with(shape="1347x64"),
    "shape 1-d": _with(shape=[1347]),
    "n a float": _with(n=1347.0),
    "chunk_size a float": _with(chunk_size=200.0),
    "format a bool": _with(format=True),
    "complete a string": _with(complete="yes"),
    "tag a number": _with(tag=5),
    "encoder a string": _with(encoder="raw"),
    "negative n": _with(n=-1347),
    "negative chunk_size": _with(chunk_size=-200),
    "negative dim": _with(shape=[1347, -64]),
    "shape rows differ from n": _with(shape=[1000, 64]),
    "chunk off the grid": _chunks(lambda c: {**c, "7": c["0"]}),
    "chunk past the end": _chunks(lambda c: {**c, "1400": c["0"]}),
    "complete with a chunk missing": _chunks(lambda c: {k: v for k, v in c.items() if k != "400"}),
    "chunks without a shape": _with(shape=None, complete=False),
}


@pytest.mark.parametrize("damage", list(MALFORMED_MANIFESTS))
def test_malformed_manifest_counts_as_not_cached(tmp_path, digits, damage: str) -> None:
    """Any manifest that cannot describe the entry is reported and the entry re-encoded whole."""
    inputs = digits.train.inputs
    cache = FeatureCache(tmp_path)
    good = np.array(cache.features(load_encoder("raw"), inputs, chunk_size=200))
    (path,) = tmp_path.glob(f"*/{MANIFEST}")
    path.write_text(json.dumps(MALFORMED_MANIFESTS[damage](json.loads(path.read_text()))))
    counting = Counting(load_encoder("raw"))
    with pytest.warns(CacheDamagedWarning, match="malformed cache manifest"):
        again = cache.features(counting, inputs, chunk_size=200)
    assert counting.items == len(inputs)
    np.testing.assert_array_equal(again, good)
    rebuilt = json.loads(path.read_text())
    assert rebuilt["complete"] and rebuilt["shape"] == [len(inputs), 64]
    assert sorted(map(int, rebuilt["chunks"])) == list(range(0, len(inputs), 200))
    with warnings.catch_warnings():  # and the rebuilt entry is served as it is
        warnings.simplefilter("error")
        served = Counting(load_encoder("raw"))
        np.testing.assert_array_equal(cache.features(served, inputs, chunk_size=200), good)
    assert served.items == 0 and len(cache.entries()) == 1


def test_well_formed_manifests_raise_no_warning(tmp_path, digits) -> None:
    """Empty inputs, a partial entry and another chunk size are not malformed."""
    cache = FeatureCache(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            empty = cache.features(load_encoder("raw"), digits.test.inputs[:0])
            assert empty.shape[0] == 0
        dying = Counting(load_encoder("raw"), fail_after=200)
        with pytest.raises(KeyboardInterrupt):
            cache.features(dying, digits.test.inputs, chunk_size=100)
        resumed = Counting(load_encoder("raw"))
        cache.features(resumed, digits.test.inputs, chunk_size=100)
        assert resumed.items == len(digits.test) - 200
        rechunked = Counting(load_encoder("raw"))
        cache.features(rechunked, digits.test.inputs, chunk_size=50)
        assert rechunked.items == len(digits.test)  # another chunk size: a new fill, silently


def test_verify_off_skips_rehashing_but_still_serves(tmp_path, digits, monkeypatch) -> None:
    import forgetless.cache as cache_module

    cache = FeatureCache(tmp_path)
    a = np.array(cache.features(load_encoder("raw"), digits.test.inputs))
    hashed = []
    sha = cache_module._sha
    monkeypatch.setattr(cache_module, "_sha", lambda block: hashed.append(1) or sha(block))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = cache.features(load_encoder("raw"), digits.test.inputs, verify=False)
    np.testing.assert_array_equal(a, b)
    assert hashed == []  # served without hashing a chunk
    np.testing.assert_array_equal(cache.features(load_encoder("raw"), digits.test.inputs), a)
    assert hashed  # a verified read hashes its chunks


def test_location_from_argument_env_var_and_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert FeatureCache().root == tmp_path / "env" == default_cache_dir()
    assert FeatureCache(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "forgetless"


def test_dataset_features_tags_both_splits(tmp_path, digits) -> None:
    cache = FeatureCache(tmp_path)
    train, test = dataset_features(load_encoder("raw"), digits, cache)
    assert train.shape == (len(digits.train), 64) and test.shape == (len(digits.test), 64)
    assert sorted(e.tag for e in cache.entries()) == ["digits/test", "digits/train"]


def test_progress_bar_only_when_asked_or_on_a_terminal(tmp_path, digits, capsys) -> None:
    cache = FeatureCache(tmp_path)
    cache.features(load_encoder("raw"), digits.test.inputs, tag="quiet")
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest
    cache.features(load_encoder("raw"), digits.train.inputs, tag="loud", progress=True)
    err = capsys.readouterr().err
    assert "raw loud" in err and "img/s" in err and "1347/1347" in err


def test_cli_lists_and_clears(tmp_path, digits, capsys) -> None:
    cache = FeatureCache(tmp_path)
    dataset_features(load_encoder("raw"), digits, cache)
    (tmp_path / "keep-me.txt").write_text("not a cache entry")
    assert main(["cache", "--dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and "digits/train" in out and "1347x64" in out
    assert main(["cache", "--dir", str(tmp_path), "clear"]) == 1  # stdin is not a terminal
    assert len(cache.entries()) == 2
    assert main(["cache", "clear", "--dir", str(tmp_path), "--yes"]) == 0  # --dir after, too
    assert cache.entries() == [] and (tmp_path / "keep-me.txt").exists()
    assert "deleted 2 entries" in capsys.readouterr().out


def test_list_and_clear_count_the_same_entries_whatever_their_manifest(
    tmp_path, digits, capsys
) -> None:
    """A manifest saying "updated": 1e300 made `cache list` a traceback; folders whose manifest
    cannot be read were hidden by list, then deleted by clear (1 announced, 3 deleted)."""
    cache = FeatureCache(tmp_path)
    dataset_features(load_encoder("raw"), digits, cache)
    first, second = (entry.path / "manifest.json" for entry in cache.entries())
    manifest = json.loads(first.read_text())
    first.write_text(json.dumps({**manifest, "updated": 1e300}))
    second.write_text("{not json")
    assert main(["cache", "--dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "2 entries" in out and "unreadable manifest" in out
    assert main(["cache", "--dir", str(tmp_path), "clear"]) == 1
    assert "would delete 2 entries" in capsys.readouterr().out
    assert main(["cache", "--dir", str(tmp_path), "clear", "--yes"]) == 0
    assert "deleted 2 entries" in capsys.readouterr().out


def test_inputs_whose_width_changes_between_chunks_are_named(tmp_path) -> None:
    # raw pixels of two image sizes in two chunks: numpy's "could not broadcast" before
    small = [np.zeros((8, 8), dtype=np.uint8)] * 4
    large = [np.zeros((16, 16), dtype=np.uint8)] * 4
    with pytest.raises(ValueError, match="256 values per input from input 4 on, but 64 before"):
        FeatureCache(tmp_path).features(load_encoder("raw"), small + large, chunk_size=4)
    with pytest.raises(ValueError, match="from input 4 on, but 64 before"):
        load_encoder("raw").encode(small + large, batch_size=4)


def test_clear_leaves_an_entry_being_filled_and_a_waiting_writer_starts_afresh(
    tmp_path, digits
) -> None:
    """`cache clear` deleted an entry another process was filling (which then died on its
    missing files). A held entry is now left; a writer whose entry was deleted while it
    waited for the lock fills a new one."""
    from forgetless.cache import _locked

    cache = FeatureCache(tmp_path)
    encoder = load_encoder("raw")
    cache.features(encoder, digits.test.inputs, tag="a", progress=False)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    with _locked(folder / ".lock"):  # as a filling process holds it
        assert cache.clear() == (0, 0, 1)
        assert folder.exists()
    deleted, freed, busy = cache.clear()
    assert (deleted, busy) == (1, 0) and freed > 0 and not folder.exists()
    import shutil
    import threading

    expected = encoder.encode(digits.test.inputs, progress=False)
    got = {}
    with _locked(folder / ".lock"):  # a clear holds the lock; a writer waits on it
        writer = threading.Thread(
            target=lambda: got.update(f=cache.features(encoder, digits.test.inputs, tag="a"))
        )
        writer.start()
        time.sleep(0.5)
        shutil.rmtree(folder)  # ... and deletes the entry before letting go
    writer.join(30)
    assert np.array_equal(got["f"], expected) and (folder / MANIFEST).exists()


def test_a_manifest_saying_complete_as_text_is_listed_as_partial(tmp_path, digits) -> None:
    cache = FeatureCache(tmp_path)
    cache.features(load_encoder("raw"), digits.test.inputs, tag="a", progress=False)
    (manifest,) = tmp_path.glob(f"*/{MANIFEST}")
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**doc, "complete": "false"}))
    assert [e.complete for e in cache.entries()] == [False]


def test_features_are_mapped_while_the_entry_is_locked(tmp_path, monkeypatch):
    """Another process may start the entry afresh (another chunk size: it unlinks the file and
    writes a new, unfilled one) the moment the lock is free. The features returned are those
    filled under the lock, never the rival's file."""
    import contextlib

    import forgetless.cache as cache_module

    encoder = load_encoder("raw")
    X = np.random.default_rng(1).integers(0, 255, (40, 16, 16), dtype=np.uint8)
    truth = np.asarray(encoder.encode(X))
    real = cache_module._locked

    @contextlib.contextmanager
    def rival_restarts_after(path):
        with real(path):
            yield
        features = path.parent / cache_module.FEATURES
        features.unlink()
        np.save(features, np.zeros_like(truth))  # the rival's file, not filled yet

    monkeypatch.setattr(cache_module, "_locked", rival_restarts_after)
    got = np.array(FeatureCache(tmp_path / "cache").features(encoder, X, progress=False))
    np.testing.assert_array_equal(got, truth)


def test_a_planted_link_as_an_entry_lock_is_removed_not_followed(tmp_path) -> None:
    """A ``.lock`` that is a symbolic link is never opened through (that would create or lock
    a file elsewhere): the link is removed with a warning and the features served."""
    cache = FeatureCache(tmp_path / "cache")
    encoder = load_encoder("raw")
    X = np.random.default_rng(2).integers(0, 255, (12, 8, 8), dtype=np.uint8)
    first = np.array(cache.features(encoder, X, progress=False))
    (lock,) = (tmp_path / "cache").glob("*/.lock")
    target = tmp_path / "elsewhere"
    lock.unlink()
    lock.symlink_to(target)
    with pytest.warns(CacheDamagedWarning, match="was a link"):
        again = np.array(cache.features(encoder, X, progress=False))
    np.testing.assert_array_equal(again, first)
    assert not target.exists() and not lock.is_symlink()


def test_the_inputs_key_follows_what_is_encoded(tmp_path, monkeypatch):
    """Keys that missed a change returned the features of other images: PIL images keyed by
    str(image) (a memory address), an array of paths by the names alone, a file replaced with
    its mtime kept (cp -p, tar x, rsync -a) or a relative path read from another folder."""
    import os

    from PIL import Image

    from forgetless.cache import inputs_fingerprint

    image = Image.fromarray(np.zeros((8, 8), dtype=np.uint8))
    before = inputs_fingerprint([image])
    image.putpixel((0, 0), 255)  # edited in place: the same object, other pixels
    assert inputs_fingerprint([image]) != before
    palette = image.convert("P")
    recoloured = palette.copy()
    recoloured.putpalette([255 - v for v in palette.getpalette()])
    assert inputs_fingerprint([recoloured]) != inputs_fingerprint([palette])

    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((8, 8), len(name), np.uint8)).save(tmp_path / name / "a.png")
    path = tmp_path / "one" / "a.png"
    as_list = inputs_fingerprint([str(path)])
    assert inputs_fingerprint(np.array([str(path)])) == as_list  # an array of paths: the same
    assert inputs_fingerprint(np.array([path], dtype=object)) == as_list
    stat = path.stat()
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(path)  # same size, then the old mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert inputs_fingerprint([str(path)]) != as_list
    keys = set()
    for name in ("one", "two"):
        monkeypatch.chdir(tmp_path / name)
        keys.add(inputs_fingerprint(["a.png"]))
    assert len(keys) == 2  # the same relative name, two files


def test_listing_and_clearing_survive_odd_entries(tmp_path, digits, capsys) -> None:
    """A manifest holding a JSON list crashed `cache list` and `cache clear` (the commands
    meant to repair the cache); an entry that is a link to another folder is not this cache's
    to list or delete (clearing it crashed in rmtree)."""
    cache = FeatureCache(tmp_path / "cache")
    cache.features(load_encoder("raw"), digits.test.inputs)
    odd = tmp_path / "cache" / ("0" * 32)
    odd.mkdir()
    (odd / MANIFEST).write_text("[]")
    elsewhere = tmp_path / "elsewhere" / ("e" * 32)
    elsewhere.mkdir(parents=True)
    (elsewhere / MANIFEST).write_text("{}")
    (tmp_path / "cache" / ("e" * 32)).symlink_to(elsewhere)
    assert main(["cache", "list", "--dir", str(tmp_path / "cache")]) == 0
    listed = capsys.readouterr().out
    assert "unreadable manifest" in listed and "eeeeeeeeeeee" not in listed
    assert main(["cache", "clear", "--dir", str(tmp_path / "cache"), "--yes"]) == 0
    assert "deleted 2 entries" in capsys.readouterr().out
    assert (elsewhere / MANIFEST).exists()  # the link's target is untouched


def test_an_encode_that_failed_leaves_no_folder_that_clear_keeps(tmp_path, capsys) -> None:
    """An encode that failed on its first chunk left a folder holding only its lock: neither
    listed nor removed by `cache clear`."""
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(ValueError, match="not finite"):
        cache.features(load_encoder("features"), np.array([[np.nan, 1.0]]))
    left = [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
    assert main(["cache", "list", "--dir", str(tmp_path / "cache")]) == 0
    assert "0 entries" in capsys.readouterr().out or not left
    assert main(["cache", "clear", "--dir", str(tmp_path / "cache"), "--yes"]) == 0
    assert "deleted 0 entries" in capsys.readouterr().out
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
