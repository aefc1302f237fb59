"""Model files (persistence.py): round trip, same bytes, checksums, hostile files, SIGKILL.

Hostile files are loaded in a child process that measures its peak RSS: every one must raise
ModelFileError, from read_model_file and from ContinualClassifier.load, with a peak RSS under
RSS_LIMIT_MB (importing forgetless alone takes ~220 MB), whatever sizes the file declares.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from forgetless import ContinualClassifier, ModelFileError, persistence
from forgetless.persistence import WRITER_KEYS, read_model_file, write_model_file

RSS_LIMIT_MB = 300
SRC = str(Path(persistence.__file__).resolve().parents[1])


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "weights": rng.standard_normal((4, 3)),
        "weights32": rng.standard_normal(5).astype(np.float32),
        "counts": np.arange(3, dtype=np.int64),
        "small.ints": np.arange(4, dtype=np.int32),
        "big_endian": np.arange(3, dtype=">i8"),
        "flags": np.array([True, False]),
        "bytes_": np.arange(5, dtype=np.uint8),
        "labels": np.array(["cat", "dog", "ému"]),
        "scalar": np.float64(2.5),
        "empty": np.zeros((0, 7)),
        "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
    }


METADATA = {"alpha": 0.5, "params": {"head": "ridge", "grid": (1, 2)}, "classes": [0, 1, 2]}


def _kind_version(path: Path) -> tuple[str, int]:
    with zipfile.ZipFile(path) as archive:
        doc = json.loads(archive.read("metadata.json"))
    return doc["format"], doc["format_version"]


def _canonical_sha256(doc: dict) -> str:
    """The documented metadata checksum: canonical JSON of all but metadata_sha256."""
    body = {k: v for k, v in doc.items() if k != "metadata_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------------------ round trip
def test_round_trip_and_standard_npz(tmp_path):
    path = tmp_path / "m.bin"
    arrays = _arrays()
    write_model_file(path, METADATA, arrays, kind="test-kind", version=7)
    metadata, loaded = read_model_file(path, kind="test-kind", version=7)
    assert metadata == {
        "alpha": 0.5,
        "params": {"head": "ridge", "grid": [1, 2]},
        "classes": [0, 1, 2],
    }
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        got = loaded[name]
        assert got.shape == np.shape(array) and got.flags.writeable and got.flags.c_contiguous
        assert got.dtype == np.asarray(array).dtype.newbyteorder("<")
        np.testing.assert_array_equal(got, array)
    # A standard zip and .npz: other tools read it, no pickle needed.
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert [i.compress_type for i in archive.infolist()] == [zipfile.ZIP_STORED] * 12
        doc = json.loads(archive.read("metadata.json"))
    assert set(WRITER_KEYS) <= set(doc) and doc["metadata_sha256"] == _canonical_sha256(doc)
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["labels"], arrays["labels"])


def test_same_inputs_same_bytes(tmp_path):
    arrays = _arrays()
    write_model_file(tmp_path / "a", METADATA, arrays, kind="k", version=1)
    reordered = dict(reversed(list(arrays.items())))
    write_model_file(
        tmp_path / "b", dict(reversed(list(METADATA.items()))), reordered, kind="k", version=1
    )
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_zip64_records_round_trip(tmp_path, monkeypatch):
    """Members and directories past 2 GiB use ZIP64 fields; exercised with a tiny limit."""
    monkeypatch.setattr(persistence, "_ZIP64_LIMIT", 64)
    path = tmp_path / "m.bin"
    write_model_file(path, METADATA, _arrays(), kind="k", version=1)
    _, loaded = read_model_file(path, kind="k", version=1)
    np.testing.assert_array_equal(loaded["weights"], _arrays()["weights"])
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    blob = bytearray(path.read_bytes())
    for offset in random.Random(1).sample(range(len(blob)), 60):
        blob[offset] ^= 0x10
        path.write_bytes(bytes(blob))
        with pytest.raises(ModelFileError):
            read_model_file(path, kind="k", version=1)
        blob[offset] ^= 0x10


def test_writer_refuses_what_the_reader_would(tmp_path):
    path = tmp_path / "m.bin"
    cases = [
        ({"format": "x"}, {}),
        ({"x": float("nan")}, {}),
        ({"deep": json.loads("[" * 70 + "]" * 70)}, {}),
        ({}, {"bad/name": np.zeros(1)}),
        ({}, {".hidden": np.zeros(1)}),
        ({}, {"objects": np.array([None, 1], dtype=object)}),
        ({}, {"complex": np.zeros(2, dtype=complex)}),
    ]
    for metadata, arrays in cases:
        with pytest.raises((ValueError, TypeError)):
            write_model_file(path, metadata, arrays, kind="k", version=1)
    with pytest.raises(ValueError):
        write_model_file(path, {}, {}, kind="", version=1)
    with pytest.raises(ValueError):
        write_model_file(path, {}, {}, kind="k", version=True)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_missing_file_and_wrong_kind_or_version(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_model_file(tmp_path / "missing", kind="k", version=1)
    with pytest.raises(FileNotFoundError):
        ContinualClassifier.load(tmp_path / "missing")
    path = tmp_path / "m.bin"
    write_model_file(path, {}, {}, kind="k", version=2)
    with pytest.raises(ModelFileError, match="'k' version 2, expected 'other' version 2"):
        read_model_file(path, kind="other", version=2)
    with pytest.raises(ModelFileError, match="version 2, expected 'k' version 1.*newer"):
        read_model_file(path, kind="k", version=1)


def test_files_of_the_previous_format_version_are_refused_clearly(tmp_path):
    """Version 1 (zipfile-written, no metadata checksum) says which version wrote it."""
    fitted, path = _fitted_model(tmp_path)
    kind, version = _kind_version(path)
    members = _members(path)
    old = json.loads(members["metadata.json"])
    for key in ("arrays", "metadata_sha256"):
        old.pop(key)
    old.update(format_version=1, library_version="0.1.0")
    members["metadata.json"] = json.dumps(old).encode()
    _zip(path, members)
    for load in (
        lambda: read_model_file(path, kind=kind, version=version),
        lambda: ContinualClassifier.load(path),
    ):
        with pytest.raises(
            ModelFileError, match=r"version 1, expected .*forgetless 0\.1\.0.*re-save"
        ):
            load()


# --------------------------------------------------------------------- metadata checksum
def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(path: Path, members: dict[str, bytes]) -> None:
    """Rewrite with zipfile (valid zip, CRCs recomputed; the metadata checksum is not)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _edit_metadata(source: Path, target: Path, edit) -> None:
    members = _members(source)
    doc = json.loads(members["metadata.json"])
    result = edit(doc)
    members["metadata.json"] = result if isinstance(result, bytes) else json.dumps(doc).encode()
    _zip(target, members)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["classes"].__setitem__(0, 5),  # one label
        lambda d: d["params"].__setitem__("head", "lda"),
        lambda d: d.__setitem__("alpha", 0.25),
        lambda d: d.__setitem__("extra", 1),
        lambda d: d.pop("params"),
        lambda d: d["arrays"]["weights"].__setitem__("shape", [3, 4]),
        lambda d: d["arrays"]["counts"].__setitem__("sha256", "0" * 64),
    ],
    ids=["label", "head", "alpha", "added-key", "removed-key", "table-shape", "table-sha"],
)
def test_metadata_checksum_catches_edits(tmp_path, edit):
    path = tmp_path / "m.bin"
    write_model_file(path, METADATA, _arrays(), kind="k", version=1)
    _edit_metadata(path, path, edit)
    with pytest.raises(ModelFileError, match="metadata checksum mismatch"):
        read_model_file(path, kind="k", version=1)


def test_edited_label_or_alpha_of_a_model_is_refused(tmp_path):
    _, path = _fitted_model(tmp_path)
    for edit in (
        lambda d: d["params"].__setitem__("head", "lda"),
        lambda d: d["params"].__setitem__("alpha", 1e3),
    ):
        _edit_metadata(path, tmp_path / "edited.fl", edit)
        with pytest.raises(ModelFileError, match="metadata checksum mismatch"):
            ContinualClassifier.load(tmp_path / "edited.fl")


# ----------------------------------------------------------------------- stale temp files
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "model.fl"
    dead = tmp_path / f".model.fl.tmp-{_dead_pid()}-0123abcd"
    live = tmp_path / f".model.fl.tmp-{os.getppid()}-0123abcd"  # the test runner's parent
    other = tmp_path / f".other.fl.tmp-{_dead_pid()}-0123abcd"
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    write_model_file(target, {}, {}, kind="k", version=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.fl", live.name, other.name])


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model.fl"
    write_model_file(target, {"v": 1}, {}, kind="k", version=1)
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_model_file(target, {"v": 2}, {"a": np.zeros(10)}, kind="k", version=1)
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["model.fl"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_save_leaves_previous_or_new_model_and_no_temp(tmp_path):
    """A writer killed mid-save: the target is one of the two models, byte for byte."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((700, 10)), np.arange(700) % 4
    models = [  # 5.8 MB each; the NCM head needs no factorisation, so fitting is quick
        ContinualClassifier(
            n_components=1200, projection="gaussian", head="ncm", random_state=s
        ).fit(X, y)
        for s in (1, 2)
    ]
    target = tmp_path / "model.fl"
    refs = set()
    for model in models:
        model.save(target)
        refs.add(target.read_bytes())
    assert len(refs) == 2 and 5e6 < len(min(refs, key=len)) < 2e7
    schedule, left_behind = random.Random(0), 0
    # At least 5 kills, and on until one has interrupted a save: how long a temp file lives
    # depends on the machine and its load (50 kills without one: saves are not interruptible).
    for attempt in range(50):
        if attempt >= 5 and left_behind:
            break
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: save the two models in turn until killed
            try:
                os.close(read_end)
                os.write(write_end, b"ready")
                while True:
                    for model in models:
                        model.save(target)
            finally:
                os._exit(1)
        os.close(write_end)
        assert os.read(read_end, 5) == b"ready"
        os.close(read_end)
        temp = f".model.fl.tmp-{pid}-"
        deadline = time.monotonic() + 20
        while not any(n.startswith(temp) for n in os.listdir(tmp_path)):  # a save under way
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        time.sleep(schedule.uniform(0, 0.002))  # then at a seeded moment, often mid-save
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)  # reaped: the pid is dead, not a zombie
        assert target.read_bytes() in refs
        left_behind += any(n.startswith(temp) for n in os.listdir(tmp_path))
        models[0].save(target)  # the next successful save removes the dead writer's temp file
        assert [p.name for p in tmp_path.iterdir()] == ["model.fl"]
    assert left_behind  # some kills did interrupt a save (and its temp file was cleaned up)
    loaded = ContinualClassifier.load(target)
    np.testing.assert_array_equal(loaded.predict(X[:20]), models[0].predict(X[:20]))


# ------------------------------------------------------------------------ hostile files
def _fitted_model(tmp_path: Path) -> tuple[ContinualClassifier, Path]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = np.arange(60) % 3
    clf = ContinualClassifier(n_components=32).fit(X, y)
    path = tmp_path / "model.fl"
    clf.save(path)
    return clf, path


def _raw_zip(entries: list[tuple]) -> bytes:
    """A zip built by hand: (name, data, method, crc, uncompressed size, flags) per member."""
    out, central = bytearray(), bytearray()
    for name, data, method, crc, size, flags in entries:
        raw = name.encode()
        header = (b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(data), size, len(raw))
        central += struct.pack(
            "<4s2B5H3L5H2L", b"PK\x01\x02", 20, 3, *header[1:], 0, 0, 0, 0, 0o100644 << 16, len(out)
        )
        central += raw
        out += struct.pack("<4s5H3L2H", *header, 0) + raw + data
    end = struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0
    )
    return bytes(out + central + end)


def _stored(members: dict[str, bytes]) -> list[tuple]:
    return [(n, d, 0, zlib.crc32(d), len(d), 0) for n, d in members.items()]


def _deflated_zeros(size: int) -> bytes:
    """A raw DEFLATE stream of ``size`` zero bytes, about size / 1000 long: one fully flushed
    1 MiB block repeated (each decodes alone), then the final empty block."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert zlib.decompressobj(-15).decompress(block) == bytes(1 << 20)
    return block * (size >> 20) + compressor.flush(zlib.Z_FINISH)


def _npy(shape: tuple, descr: str = "<i8", data: bytes = b"", fortran: bool = False) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": descr, "fortran_order": fortran, "shape": shape}
    )
    return header.getvalue() + data


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    """Name -> file: a real model truncated, flipped, edited, forged in every way listed."""
    _, path = _fitted_model(tmp_path)
    blob = path.read_bytes()
    members = _members(path)
    doc = json.loads(members["metadata.json"])
    counts = next(n for n in members if n.endswith("counts.npy"))
    cases: dict[str, bytes] = {}
    for offset in sorted({*range(0, len(blob), 97), *range(len(blob) - 120, len(blob))}):
        cases[f"truncated@{offset}"] = blob[:offset]
    rng = random.Random(0)
    for offset in sorted(rng.sample(range(len(blob)), 300)):
        flipped = bytearray(blob)
        flipped[offset] ^= rng.randrange(1, 256)
        cases[f"flip@{offset}"] = bytes(flipped)
    cases["appended"] = blob + b"\0"
    cases["prepended"] = b"\0" + blob
    cases["empty"] = b""
    cases["text"] = b"hello"

    def with_metadata(data: bytes) -> bytes:
        return _raw_zip(_stored({**members, "metadata.json": data}))

    def with_doc(edit, recompute: bool = False) -> bytes:
        new = json.loads(members["metadata.json"])
        edit(new)
        if recompute:
            new["metadata_sha256"] = _canonical_sha256(new)
        return with_metadata(json.dumps(new).encode())

    cases["metadata=[]"] = with_metadata(b"[]")
    cases["metadata=null"] = with_metadata(b"null")
    cases["metadata-not-json"] = with_metadata(b"{'a': 1}")
    cases["metadata-not-utf8"] = with_metadata(b'{"a": "\xff"}')
    cases["metadata-nan"] = with_doc(lambda d: d.__setitem__("x", float("nan")))
    cases["metadata-huge-number"] = with_metadata(members["metadata.json"][:-1] + b', "x": 1e999}')
    cases["metadata-huge-int"] = with_metadata(
        members["metadata.json"][:-1] + b', "x": ' + b"9" * 5000 + b"}"
    )
    cases["metadata-duplicate-key"] = with_metadata(b'{"format": 1, "format": 2}')
    cases["metadata-10000-deep"] = with_metadata(b'{"x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    cases["metadata-100000-deep-unclosed"] = with_metadata(b"[" * 100_000)
    cases["metadata-many-items"] = with_metadata(b"[" + b"{}," * 2_000_000 + b"{}]")
    cases["metadata-padded-over-cap"] = with_metadata(members["metadata.json"] + b" " * (17 << 20))
    cases["metadata-padded-string"] = with_doc(lambda d: d.__setitem__("pad", "x" * (8 << 20)))
    table = doc["arrays"]
    name = next(iter(table))
    cases["missing-sha256"] = with_doc(lambda d: d["arrays"][name].pop("sha256"))
    cases["missing-sha256-recomputed"] = with_doc(lambda d: d["arrays"][name].pop("sha256"), True)
    cases["sha256-not-hex"] = with_doc(
        lambda d: d["arrays"][name].__setitem__("sha256", "z" * 64), True
    )
    cases["arrays-as-list"] = with_doc(lambda d: d.__setitem__("arrays", list(d["arrays"])), True)
    cases["arrays-missing"] = with_doc(lambda d: d.pop("arrays"), True)
    cases["checksum-missing"] = with_doc(lambda d: d.pop("metadata_sha256"))
    cases["checksum-int"] = with_doc(lambda d: d.__setitem__("metadata_sha256", 5))
    cases["format-other"] = with_doc(lambda d: d.__setitem__("format", "other"), True)
    cases["version-true"] = with_doc(lambda d: d.__setitem__("format_version", True), True)
    cases["version-newer"] = with_doc(lambda d: d.__setitem__("format_version", 99), True)
    cases["dtype-object"] = with_doc(lambda d: d["arrays"][name].__setitem__("dtype", "|O"), True)
    cases["dtype-huge-unicode"] = with_doc(
        lambda d: d["arrays"][name].__setitem__("dtype", "<U100000000"), True
    )
    cases["dtype-list"] = with_doc(lambda d: d["arrays"][name].__setitem__("dtype", ["<f8"]), True)
    cases["shape-negative"] = with_doc(lambda d: d["arrays"][name].__setitem__("shape", [-1]), True)
    cases["shape-bool"] = with_doc(lambda d: d["arrays"][name].__setitem__("shape", [True]), True)
    cases["shape-dict"] = with_doc(lambda d: d["arrays"][name].__setitem__("shape", {"a": 1}), True)
    cases["shape-10**12-declared"] = with_doc(
        lambda d: d["arrays"][counts[:-4]].__setitem__("shape", [10**12]), True
    )
    cases["shape-10**30-empty"] = with_doc(
        lambda d: d["arrays"][counts[:-4]].__setitem__("shape", [0, 10**30]), True
    )
    cases["array-name-path"] = with_doc(
        lambda d: d["arrays"].__setitem__("../x", d["arrays"].pop(name)), True
    )
    npy_count = np.lib.format.read_array(io.BytesIO(members[counts]))
    cases["npy-header-10**12"] = _raw_zip(
        _stored({**members, counts: _npy((10**12,), data=npy_count.tobytes())})
    )
    cases["npy-header-object"] = _raw_zip(
        _stored({**members, counts: _npy(npy_count.shape, "|O", npy_count.tobytes())})
    )
    cases["npy-header-fortran"] = _raw_zip(
        _stored(
            {**members, counts: _npy(npy_count.shape, "<i8", npy_count.tobytes(), fortran=True)}
        )
    )
    cases["npy-other-values"] = _raw_zip(
        _stored({**members, counts: _npy(npy_count.shape, "<i8", bytes(npy_count.nbytes))})
    )
    stream = _deflated_zeros(1 << 30)
    assert len(stream) < 2 << 20  # the file stays small; its member would inflate to 1 GiB
    # (CRC left 0: nothing may get as far as checking it.)
    cases["deflate-1GiB"] = _raw_zip(
        [e if e[0] != counts else (counts, stream, 8, 0, 1 << 30, 0) for e in _stored(members)]
    )
    cases["deflate-real"] = _raw_zip(
        [
            (n, zlib.compress(d)[2:-4], 8, zlib.crc32(d), len(d), 0)
            if n == counts
            else (n, d, 0, zlib.crc32(d), len(d), 0)
            for n, d in members.items()
        ]
    )
    cases["encrypted-flag"] = _raw_zip(
        [(n, d, m, c, s, 1 if n == counts else f) for n, d, m, c, s, f in _stored(members)]
    )
    cases["duplicate-member"] = _raw_zip(_stored(members) + _stored({counts: members[counts]}))
    cases["directory-member"] = _raw_zip(_stored(members) + _stored({"dir/": b""}))
    cases["extra-member"] = _raw_zip(_stored({**members, "extra.npy": members[counts]}))
    cases["extra-member-text"] = _raw_zip(_stored({**members, "notes.txt": b"hi"}))
    cases["missing-member"] = _raw_zip(_stored({n: d for n, d in members.items() if n != counts}))
    cases["no-metadata"] = _raw_zip(
        _stored({n: d for n, d in members.items() if n != "metadata.json"})
    )
    _zip(tmp_path / "rewritten.fl", members)  # same content, zipfile's own headers
    cases["zipfile-rewritten"] = (tmp_path / "rewritten.fl").read_bytes()
    cases["member-size-lie"] = _raw_zip(
        [(n, d, 0, c, s + 10**9 if n == counts else s, f) for n, d, m, c, s, f in _stored(members)]
    )
    files = {}
    for i, (case, data) in enumerate(cases.items()):
        files[case] = tmp_path / f"hostile-{i}.fl"
        files[case].write_bytes(data)
    return files


# Run in a child: load every file both ways; report each outcome and each case's peak RSS.
_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a regression errs, not swaps

def peak_rss_mb():
    # This process's own peak: on Linux ru_maxrss also counts the parent's peak, inherited
    # through (v)fork and exec; VmHWM belongs to this process's memory map alone.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def reset_peak():  # Linux: VmHWM restarts from the current RSS; elsewhere peaks accumulate
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass

from forgetless import ContinualClassifier
from forgetless.persistence import read_model_file
cases, kind, version = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
out = {}
for case, path in cases.items():
    reset_peak()
    results = {}
    for how, load in (("read", lambda: read_model_file(path, kind=kind, version=version)),
                      ("load", lambda: ContinualClassifier.load(path))):
        try:
            load()
            results[how] = ["loaded", "", ""]
        except BaseException as err:
            cause = type(err.__cause__).__name__ if err.__cause__ is not None else ""
            results[how] = [type(err).__name__, str(err)[:300], cause]
    results["peak_mb"] = peak_rss_mb()
    out[case] = results
print(json.dumps(out))
"""


def _run_child(files: dict[str, Path], kind: str, version: int) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    args = [
        sys.executable,
        "-c",
        _CHILD,
        json.dumps({k: str(v) for k, v in files.items()}),
        kind,
        str(version),
    ]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_hostile_files_raise_model_file_error_with_bounded_memory(tmp_path):
    files = _hostile_files(tmp_path)
    kind, version = _kind_version(tmp_path / "model.fl")
    out = _run_child(files, kind, version)
    wrong = {
        case: r
        for case, r in out.items()
        if "ModelFileError" != r["read"][0] or "ModelFileError" != r["load"][0]
    }
    assert not wrong, f"{len(wrong)} hostile files not refused with ModelFileError: {wrong}"
    # Specific checks named every problem: the reader's catch-all never fired (it would have
    # set __cause__), so nothing was caught by running out of memory or stack either.
    backstop = {case: r["read"] for case, r in out.items() if r["read"][2]}
    assert not backstop, backstop
    peaks = sorted((r["peak_mb"], case) for case, r in out.items())
    assert peaks[-1][0] < RSS_LIMIT_MB, f"peak RSS (MB) of the worst cases: {peaks[-3:]}"
    named = {
        "deflate-1GiB": "compressed",
        "encrypted-flag": "encrypted",
        "duplicate-member": "duplicate member",
        "directory-member": "unexpected directory",
        "metadata-10000-deep": "nests 10001 levels",
        "metadata-padded-over-cap": "max_metadata_bytes",
        "npy-header-10**12": r"header says \[1000000000000\]",
        "shape-10**12-declared": "its member holds",
        "metadata=[]": "must hold a JSON object",
        "missing-sha256": "exactly sha256, shape and dtype",
        "arrays-as-list": "array table must be a JSON object",
        "version-newer": "version 99, expected",
        "zipfile-rewritten": "written by another tool",
    }
    for case, pattern in named.items():
        message = out[case]["read"][1]
        assert re.search(pattern, message), (case, message)


# ---------------------------------------------------- semantic validation (the learner's)
def _forge(source: Path, target: Path, edit_metadata=None, edit_arrays=None) -> None:
    """A container-valid file (checksums recomputed) whose values are wrong."""
    kind, version = _kind_version(source)
    metadata, arrays = read_model_file(source, kind=kind, version=version)
    if edit_metadata:
        edit_metadata(metadata)
    if edit_arrays:
        edit_arrays(arrays)
    write_model_file(target, metadata, arrays, kind=kind, version=version)


def _array_named(arrays: dict, suffix: str) -> str:
    return next(name for name in arrays if name.endswith(suffix))


def _set_array(suffix: str, change):
    def edit(arrays):
        name = _array_named(arrays, suffix)
        arrays[name] = change(arrays[name])

    return edit


def _layer(metadata: dict) -> dict:
    return metadata.get("layer") or metadata["projection"]


SEMANTIC = {  # semantic: learner
    "labels-not-unique": (None, _set_array("classes", lambda a: np.array([0, 0, 1]))),
    "labels-unsorted": (None, _set_array("classes", lambda a: a[::-1].copy())),
    "labels-too-few": (None, _set_array("classes", lambda a: a[:2].copy())),
    "labels-nan": (None, _set_array("classes", lambda a: np.array([0.0, np.nan, 2.0]))),
    "labels-inf": (None, _set_array("classes", lambda a: np.array([0.0, 1.0, np.inf]))),
    "params-invalid": (lambda m: m["params"].__setitem__("n_components", -5), None),
    "params-unknown": (lambda m: m["params"].__setitem__("radius", 3), None),
    "counts-negative": (None, _set_array("counts", lambda a: -a)),
    "gram-nan": (None, _set_array("gram_packed", lambda a: np.where(a == a.max(), np.nan, a))),
    "gram-packed-length": (None, _set_array("gram_packed", lambda a: a[:-1].copy())),
    "gram-negative-diagonal": (None, _set_array("gram_packed", lambda a: -a)),
    "class-sums-shape": (None, _set_array("class_sums", lambda a: a[:, :2])),
    "layer-units": (lambda m: _layer(m).__setitem__("n_components", 31), None),
    "layer-huge-input": (
        lambda m: (
            _layer(m).__setitem__("n_features", 10**9),
            m.__setitem__("n_features_in", 10**9),
            m["params"].__setitem__("projection", "orthogonal"),  # as its layer says
        ),
        None,
    ),
}
# what each refusal names (load() turns any error into ModelFileError: the message says which
# check refused the file)
SEMANTIC_MESSAGES = {
    "labels-not-unique": "class labels must be unique and sorted",
    "labels-unsorted": "class labels must be unique and sorted",
    "labels-too-few": "2 labels for 3 statistics columns",
    "labels-nan": "class labels must be finite",
    "labels-inf": "class labels must be finite",
    "params-invalid": "'n_components' parameter .* must be an int",
    "params-unknown": "the parameters do not match",
    "counts-negative": "every class must have a positive sample count",
    "gram-nan": "'gram_packed' is not finite",
    "gram-packed-length": r"packed G has shape \(527,\), not \(528,\)",
    "gram-negative-diagonal": "G must have a non-negative diagonal",
    "class-sums-shape": "inconsistent statistics",
    "layer-units": "the layer has 31 units but the statistics 32",
    "layer-huge-input": r"its layer would allocate [0-9.]+ GiB \(more than max_layer_bytes",
}


@pytest.fixture(scope="module")
def semantic_outcomes(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("semantic")
    _, path = _fitted_model(tmp_path)
    files = {}
    for case, (edit_metadata, edit_arrays) in SEMANTIC.items():
        files[case] = tmp_path / f"{case}.fl"
        _forge(path, files[case], edit_metadata, edit_arrays)
    kind, version = _kind_version(path)
    return _run_child(files, kind, version)


def test_semantic_cases_are_valid_containers(semantic_outcomes):
    """The container is fine: judging the values is the learner's job, not the reader's."""
    read = {case: r["read"][0] for case, r in semantic_outcomes.items()}
    assert read == dict.fromkeys(SEMANTIC, "loaded")


@pytest.mark.parametrize(
    "case",
    [case for case in SEMANTIC],
)
def test_semantically_wrong_files_are_refused_by_the_learner(semantic_outcomes, case):
    """Container-valid files with wrong values: the learner refuses them (semantic: learner),
    without allocating much (a layer or labels sized by the metadata alone)."""
    outcome = semantic_outcomes[case]
    assert outcome["load"][0] == "ModelFileError", outcome["load"]
    assert re.search(SEMANTIC_MESSAGES[case], outcome["load"][1]), outcome["load"]
    assert outcome["peak_mb"] < RSS_LIMIT_MB, outcome


def test_max_layer_bytes_bounds_the_layer_a_load_rebuilds(tmp_path):
    clf, path = _fitted_model(tmp_path)  # an orthogonal layer of 32 units on 5 features
    with pytest.raises(ModelFileError, match=r"more than max_layer_bytes=1000\); pass a larger"):
        ContinualClassifier.load(path, max_layer_bytes=1000)
    loaded = ContinualClassifier.load(path, max_layer_bytes=10**6)
    X = np.random.default_rng(1).standard_normal((5, 5))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", 5), ("activation", "tanh"), ("bias", True), ("scale", "ranpac"), ("gamma", 0.5)],
)
def test_a_layer_other_than_its_parameters_build_is_refused(tmp_path, key, value):
    """A file whose layer settings (its signature made to match) differ from what its
    parameters and seed build: its sums were summed under another layer, so it is refused,
    naming the setting, where it loaded and predicted otherwise."""
    from forgetless.layers import layer_from_config

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), np.arange(60) % 3
    ContinualClassifier(projection="gaussian", n_components=32).fit(X, y).save(tmp_path / "a.fl")

    def edit(metadata):
        metadata["layer"][key] = value
        metadata["layer_signature"] = layer_from_config(metadata["layer"]).signature()

    _forge(tmp_path / "a.fl", tmp_path / "b.fl", edit)
    with pytest.raises(ModelFileError, match=f"does not match the parameters and seed: {key}"):
        ContinualClassifier.load(tmp_path / "b.fl")


@pytest.mark.parametrize("head", ["rls", "owm"])
def test_head_arrays_of_another_alpha_or_sums_are_refused(tmp_path, head):
    """A recursive head's P (and the RLS head's W) must be those of the file's sums and alpha:
    arrays of another alpha, or a W not solving the sums, loaded and predicted as another
    model than the file says (a later forget re-derived them from the sums)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((90, 6)) + (np.arange(90) % 3)[:, None], np.arange(90) % 3
    settings = dict(head=head, projection="orthogonal", n_components=40, random_state=0)
    model = ContinualClassifier(alpha=100.0, **settings)
    for start in range(0, 90, 9):  # recursive updates: the file's own arrays load
        model.partial_fit(X[start : start + 9], y[start : start + 9], classes=[0, 1, 2])
    model.save(tmp_path / "a.fl")
    ContinualClassifier.load(tmp_path / "a.fl")
    ContinualClassifier(alpha=1.0, **settings).fit(X, y).save(tmp_path / "other.fl")
    _, other = read_model_file(tmp_path / "other.fl", kind="forgetless-model", version=3)
    for name in ("head.P", "head.W"):
        if name == "head.W" and head == "owm":
            continue  # its coefficients depend on the order of the tasks, not on the sums alone
        _forge(
            tmp_path / "a.fl", tmp_path / "b.fl",
            edit_arrays=lambda arrays, name=name: arrays.__setitem__(name, other[name]),
        )  # fmt: skip
        with pytest.raises(ModelFileError, match=f"head's {name[-1]} "):
            ContinualClassifier.load(tmp_path / "b.fl")


def test_per_class_gram_matrices_that_do_not_make_g_are_refused(tmp_path):
    """A file whose kept G_c are not the classes' own (here one scaled by 50) loaded, and
    forget_classes then subtracted it into a G of negative diagonal without a word."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((90, 6)) + (np.arange(90) % 3)[:, None], np.arange(90) % 3
    clf = ContinualClassifier(n_components=20, per_class_gram=True, random_state=0).fit(X, y)
    clf.save(tmp_path / "a.fl")
    ContinualClassifier.load(tmp_path / "a.fl").forget_classes([0])  # the file's own: fine

    def scale_first(arrays):
        arrays["statistics.class_grams_packed"] = arrays["statistics.class_grams_packed"].copy()
        arrays["statistics.class_grams_packed"][0] *= 50.0

    _forge(tmp_path / "a.fl", tmp_path / "b.fl", edit_arrays=scale_first)
    with pytest.raises(ModelFileError, match="per-class Gram matrices do not sum to G"):
        ContinualClassifier.load(tmp_path / "b.fl")


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda m, a: m["params"].__setitem__("projection_params", {"method": "units"}),
         "method 'kernel' \\(expected 'units'\\)"),
        (lambda m, a: m["params"].__setitem__("projection_params", {"flatten": 1.0}),
         "settings.flatten 0.0 \\(expected 1.0\\)"),
        (lambda m, a: m["params"].__setitem__("n_components", 500),
         "n_components 24 \\(expected 500\\)"),
        (lambda m, a: m["layer"]["settings"].__setitem__("n_landmarks", 25),
         "48 landmarks, but its settings"),
        (lambda m, a: m["layer"].__setitem__("scale_exponent", -1100),
         "scale_exponent must be an integer in \\[-600, 600\\]"),
    ],
)  # fmt: skip
def test_a_guided_layer_other_than_its_parameters_build_is_refused(tmp_path, edit, words):
    """The learner's settings were never compared with its guided layer: files whose params
    named another method, flatten or width, or whose landmarks disagreed with their settings,
    loaded (and a scale_exponent of -1100 was a raw OverflowError)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)) + (np.arange(60) % 3)[:, None], np.arange(60) % 3
    ContinualClassifier(projection="guided", n_components=24, random_state=0).fit(X, y).save(
        tmp_path / "a.fl"
    )
    _forge(tmp_path / "a.fl", tmp_path / "b.fl", lambda m: edit(m, None))
    with pytest.raises(ModelFileError, match=words):
        ContinualClassifier.load(tmp_path / "b.fl")


def test_a_guided_layer_for_large_features_checks_its_signature(tmp_path):
    # its signature (features of a unit-scale probe) is ~1e-14: an absolute tolerance of 1e-9
    # let a negated, reversed transform load
    rng = np.random.default_rng(0)
    X, y = (rng.standard_normal((60, 5)) + (np.arange(60) % 3)[:, None]) * 1e12, np.arange(60) % 3
    ContinualClassifier(projection="guided", n_components=24, random_state=0).fit(X, y).save(
        tmp_path / "a.fl"
    )

    def negate(arrays):
        arrays["layer.transform"] = -arrays["layer.transform"][::-1].copy()

    _forge(tmp_path / "a.fl", tmp_path / "b.fl", edit_arrays=negate)
    with pytest.raises(ModelFileError, match="saved arrays do not give the signature"):
        ContinualClassifier.load(tmp_path / "b.fl")


def test_a_units_layer_with_non_finite_or_non_float_arrays_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)) + (np.arange(60) % 3)[:, None], np.arange(60) % 3
    settings = dict(projection="guided", projection_params={"method": "units"}, random_state=3)
    ContinualClassifier(n_components=20, **settings).fit(X, y).save(tmp_path / "a.fl")
    for name, change, words in (
        ("layer.offset", lambda a: np.where(np.arange(a.size) < 3, -np.inf, a), "not finite"),
        ("layer.weights", lambda a: a > 0, "floating point"),
    ):
        _forge(tmp_path / "a.fl", tmp_path / "b.fl", edit_arrays=_set_array(name, change))
        with pytest.raises(ModelFileError, match=words):
            ContinualClassifier.load(tmp_path / "b.fl")


@pytest.mark.parametrize("head", ["rls", "owm"])
def test_a_recursive_head_of_float32_sums_loads(tmp_path, head):
    # its sums carry float32 products while P is updated from float64 rows: a backward error
    # of about 1e-8, which the check made for float64 sums refused
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    clf = ContinualClassifier(
        projection="orthogonal", n_components=100, head=head, alpha=1.0,
        compute_dtype="float32", random_state=0,
    ).fit(X[:200] / 16, y[:200])  # fmt: skip
    clf.save(tmp_path / "a.fl")
    loaded = ContinualClassifier.load(tmp_path / "a.fl")
    np.testing.assert_array_equal(loaded.predict(X[200:300] / 16), clf.predict(X[200:300] / 16))


@pytest.mark.parametrize(
    "value, words",
    [
        (-1.0, "peak_diagonal must be a number of at least 0, not -1.0"),
        ("big", "peak_diagonal must be a number of at least 0, not 'big'"),
        ([1.0], "peak_diagonal must be a number of at least 0"),
    ],
)
def test_a_peak_diagonal_no_sums_went_through_is_refused(tmp_path, value, words):
    """The largest diagonal the sums went through, kept after a removal (the margin of the next
    forget's check is relative to it), in the metadata, where files of earlier releases hold
    nothing: learners that removed nothing write none, so those releases read their files."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((90, 6)) + (np.arange(90) % 3)[:, None], np.arange(90) % 3
    X[:45, 0] *= 10.0  # each batch has its own largest feature: a sum of the batches' largest
    X[45:, 1] *= 10.0  # diagonal values (this stop's first version) is above the sums' own
    clf = ContinualClassifier(projection="none", alpha=1.0, random_state=0)
    clf.partial_fit(X[:45], y[:45]).partial_fit(X[45:], y[45:])
    clf.save(tmp_path / "learned.fl")
    metadata, arrays = read_model_file(tmp_path / "learned.fl", kind="forgetless-model", version=3)
    assert "peak_diagonal" not in metadata and not any("peak" in name for name in arrays)
    clf.forget(X[:60], y[:60])
    clf.save(tmp_path / "a.fl")
    metadata, _ = read_model_file(tmp_path / "a.fl", kind="forgetless-model", version=3)
    assert metadata["peak_diagonal"] == clf.statistics_.peak_diagonal
    loaded = ContinualClassifier.load(tmp_path / "a.fl")  # the file's own: fine
    assert loaded.statistics_.peak_diagonal == clf.statistics_.peak_diagonal
    edit = lambda metadata: metadata.__setitem__("peak_diagonal", value)  # noqa: E731
    _forge(tmp_path / "a.fl", tmp_path / "b.fl", edit_metadata=edit)
    with pytest.raises(ModelFileError, match=words):
        ContinualClassifier.load(tmp_path / "b.fl")


def test_a_reloaded_learner_forgets_and_merges_into_the_same_file(tmp_path):
    """The peak the sums went through is what a file keeps of it: a learner saved and loaded
    before a forget (as every forgetless command does) writes the file the one that stayed in
    memory writes, and so after a merge."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((400, 10)) + (np.arange(400) % 4)[:, None], np.arange(400) % 4
    X[:200, 0] *= 10.0
    X[200:, 1] *= 10.0
    kw = dict(projection="none", alpha=1.0, random_state=0)
    kept = ContinualClassifier(**kw).partial_fit(X[:200], y[:200]).partial_fit(X[200:], y[200:])
    ContinualClassifier(**kw).fit(X, y).save(tmp_path / "saved.fl")
    kept.save(tmp_path / "kept0.fl")
    reloaded = ContinualClassifier.load(tmp_path / "kept0.fl")
    for clf in (kept, reloaded):
        clf.forget(X[:50], y[:50])
    kept.save(tmp_path / "a.fl")
    reloaded.save(tmp_path / "b.fl")
    assert (tmp_path / "a.fl").read_bytes() == (tmp_path / "b.fl").read_bytes()
    other = ContinualClassifier(**kw).partial_fit(X[100:300], y[100:300])
    other.forget(X[100:150], y[100:150])
    for clf, name in ((kept, "c.fl"), (ContinualClassifier.load(tmp_path / "b.fl"), "d.fl")):
        clf.merge(other).save(tmp_path / name)
    assert (tmp_path / "c.fl").read_bytes() == (tmp_path / "d.fl").read_bytes()
