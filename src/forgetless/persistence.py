"""Model files: named arrays and JSON metadata in one zip, under checksums, written atomically.

This module moves ``(metadata, arrays)`` to and from a file and knows nothing of the learner:
what a model file holds, and whether its values make sense, is the caller's business.

A file is a standard ``.npz`` archive (``np.load(path, allow_pickle=False)`` reads it) of
uncompressed members: ``metadata.json`` first, then one ``<name>.npy`` per array in name order,
with fixed timestamps and attributes, so the same inputs always give the same bytes, on any
platform and Python version (the zip records are written here, not by :mod:`zipfile`).
``metadata.json`` holds the caller's metadata plus four keys the writer owns
(:data:`WRITER_KEYS`):

* ``format`` and ``format_version``: the caller's ``kind`` and ``version``;
* ``arrays``: ``{name: {"sha256", "shape", "dtype"}}`` for every array;
* ``metadata_sha256``: the sha256 of the canonical JSON of everything else (sorted keys, no
  spaces, ASCII), so an edit of any metadata value or of the array table is detected.

:func:`read_model_file` trusts nothing in the file. Before reading more than the metadata it
checks the zip records (stored members only, no encryption, no duplicates or directories, every
size within the file) and bounds the metadata's size, nesting and item count. Before allocating
an array it checks the declared shape and dtype against the bytes stored and the ``.npy``
header, so memory stays bounded by the file's size (plus ~10x the metadata's size for parsing
its JSON, at most ~150 MB under the default limits). Then every CRC and sha256 is checked, and
last every zip record must be byte for byte the one :func:`write_model_file` writes: a single
changed byte anywhere in a file is detected. Each problem raises :class:`ModelFileError` naming
it. Nothing in a file can run code (no pickle). The checksums catch corruption and accidental
edits; they are no signature (whoever can write a file can recompute them).

:func:`write_model_file` writes a temporary file next to the target, fsyncs it and renames it
over the target: a crash mid-write leaves the previous file intact, and the next write of that
target removes the temporary files of writers that were killed.

>>> import os, tempfile
>>> import numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "example.bin")
>>> arrays = {"weights": np.arange(6.0).reshape(2, 3), "labels": np.array(["cat", "dog"])}
>>> write_model_file(path, {"alpha": 0.5}, arrays, kind="example", version=1)
>>> metadata, loaded = read_model_file(path, kind="example", version=1)
>>> metadata
{'alpha': 0.5}
>>> loaded["weights"]
array([[0., 1., 2.],
       [3., 4., 5.]])
>>> loaded["labels"].tolist()
['cat', 'dog']
>>> read_model_file(path, kind="example", version=2)
Traceback (most recent call last):
...
forgetless.persistence.ModelFileError: ...version 1, expected 'example' version 2...
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import stat
import struct
import sys
import tokenize
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, NamedTuple

import numpy as np

__all__ = [
    "MAX_METADATA_BYTES",
    "ModelFileError",
    "WRITER_KEYS",
    "read_model_file",
    "write_model_file",
]

# Keys of metadata.json that the writer owns; the caller's metadata may not use them.
WRITER_KEYS = ("format", "format_version", "arrays", "metadata_sha256")
MAX_METADATA_BYTES = 16 << 20
# Parsing JSON costs at most ~100 bytes of Python objects per item: these bounds keep a hostile
# metadata.json to ~100 MB and the parser far from the recursion limit, while real metadata
# (hundreds of items, depth < 10) stays far below them.
MAX_JSON_DEPTH = 64
MAX_JSON_ITEMS = 1_000_000
MAX_ARRAYS = 10_000
_MAX_NDIM = 32
_MAX_NPY_HEADER = 65_535
_MAX_UNICODE_CHARS = 65_536
# Fixed-size numeric dtypes (little-endian) and unicode strings: nothing that can hold objects.
_NUMERIC_DTYPES = frozenset(
    ["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
)
_UNICODE_DTYPE = re.compile(r"<U([1-9][0-9]{0,5})\Z")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_METADATA = "metadata.json"
_CHUNK = 1 << 20
_NPY_MAGIC = b"\x93NUMPY"
_SCAN = 1 << 18  # bytes of JSON text scanned at a time

# ZIP records (APPNOTE 6.3). Every member: stored, no flags, 1980-01-01 00:00:00, made on Unix
# as a regular rw-r--r-- file; ZIP64 fields only where a size or offset needs them.
_LOCAL = struct.Struct("<4s5H3L2H")  # sig, version, flags, method, time, date, crc, sizes, lens
_CENTRAL = struct.Struct("<4s2B5H3L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_SIG_LOCAL, _SIG_CENTRAL = b"PK\x03\x04", b"PK\x01\x02"
_SIG_END, _SIG_END64, _SIG_LOCATOR64 = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"
_DOS_TIME, _DOS_DATE = 0, (0 << 9) | (1 << 5) | 1
_UNIX, _ATTRIBUTES = 3, 0o100644 << 16
_ZIP64_LIMIT = (1 << 31) - 1  # as zipfile: sizes and offsets above it go to ZIP64 fields
_MAX_CENTRAL_ENTRY = _CENTRAL.size + 256 + 28  # longest name + a full ZIP64 extra field
# General-purpose flags: 0x1 encrypted, 0x20 patched data, 0x40 strong encryption, 0x2000
# encrypted central directory.
_ENCRYPTED = 0x1 | 0x20 | 0x40 | 0x2000


class ModelFileError(ValueError):
    """A model file is truncated, altered, malformed or of another format or version."""


# ---------------------------------------------------------------------------------- writing
def write_model_file(
    path: str | os.PathLike,
    metadata: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    *,
    kind: str,
    version: int,
) -> None:
    """Write ``metadata`` (JSON-able) and ``arrays`` to ``path`` atomically.

    Refuses (``ValueError``/``TypeError``) what :func:`read_model_file` would refuse: metadata
    using :data:`WRITER_KEYS`, not JSON (NaN included) or over the default limits; array names
    outside ``[A-Za-z0-9_][A-Za-z0-9_.-]*``; dtypes other than bool, integers, floats and
    unicode strings. Big-endian arrays are stored little-endian.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, not {kind!r}")
    if type(version) is not int or version < 0:
        raise ValueError(f"version must be a non-negative integer, not {version!r}")
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping, not {type(metadata).__name__}")
    reserved = sorted(set(WRITER_KEYS) & set(metadata))
    if reserved:
        raise ValueError(f"metadata keys {reserved} are reserved for the model file's writer")
    if len(arrays) > MAX_ARRAYS:
        raise ValueError(f"{len(arrays)} arrays; a model file holds at most {MAX_ARRAYS}")
    members = [_array_member(name, array) for name, array in sorted(arrays.items())]
    doc = dict(metadata)
    doc.update(
        format=kind,
        format_version=version,
        arrays={
            m.name.removesuffix(".npy"): {
                "sha256": m.sha256,
                "shape": list(m.array.shape),
                "dtype": m.array.dtype.str,
            }
            for m in members
        },
    )
    # Normalise through the reader's parser (tuples become lists, every limit applies), so the
    # checksum is over exactly what a reader will see.
    try:
        doc = _parse_json(json.dumps(doc, allow_nan=False).encode("utf-8"))
    except ModelFileError as err:
        raise ValueError(f"metadata cannot be stored: {err}") from None
    doc["metadata_sha256"] = _metadata_sha256(doc)
    blob = json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=True).encode("ascii")
    if len(blob) > MAX_METADATA_BYTES:
        raise ValueError(
            f"metadata takes {len(blob)} bytes, over the {MAX_METADATA_BYTES} a reader accepts; "
            "store large values as arrays"
        )
    meta = _Member(_METADATA, b"", None, blob, zlib.crc32(blob), "")
    _atomic_write(path, [meta, *members])


class _Member(NamedTuple):
    name: str
    header: bytes  # .npy header, or b"" for metadata.json
    array: np.ndarray | None
    data: bytes  # metadata.json's bytes, or b"" for an array
    crc: int
    sha256: str

    @property
    def size(self) -> int:
        return len(self.header) + (self.array.nbytes if self.array is not None else len(self.data))


def _array_member(name: Any, array: Any) -> _Member:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"array name {name!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]* (at most 200 chars)"
        )
    a = np.asarray(array)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    if not a.flags.c_contiguous:
        a = a.copy(order="C")  # not np.ascontiguousarray, which makes 0-d arrays 1-d
    if _dtype_error(a.dtype.str) or a.ndim > _MAX_NDIM:
        raise ValueError(
            f"array {name!r}: dtype {a.dtype} with {a.ndim} dims cannot be stored "
            f"(bool, integers, floats, unicode; at most {_MAX_NDIM} dims)"
        )
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": a.dtype.str, "fortran_order": False, "shape": a.shape}
    )
    header = buffer.getvalue()
    crc, digest, flat = zlib.crc32(header), hashlib.sha256(), _byte_view(a)
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK]
        crc = zlib.crc32(chunk, crc)
        digest.update(chunk)
    return _Member(f"{name}.npy", header, a, b"", crc, digest.hexdigest())


def _byte_view(array: np.ndarray) -> np.ndarray:
    """The C-order bytes of a contiguous array, without a copy."""
    return array.reshape(-1).view(np.uint8)


def _npy_bytes(array: np.ndarray) -> bytes:
    """A whole ``.npy`` member in memory (for tests that forge files)."""
    member = _array_member("array", array)
    return member.header + _byte_view(member.array).tobytes()


def _atomic_write(path: str, members: list[_Member]) -> None:
    def write(handle: BinaryIO) -> None:
        offset, central = 0, []
        for member in members:
            name = member.name.encode("ascii")
            local = _local_record(name, member.crc, member.size, offset)
            handle.write(local)
            handle.write(member.header)
            if member.array is None:
                handle.write(member.data)
            else:
                flat = _byte_view(member.array)
                for start in range(0, flat.size, _CHUNK):
                    handle.write(flat[start : start + _CHUNK])
            central.append(_central_record(name, member.crc, member.size, offset))
            offset += len(local) + member.size
        directory_bytes = b"".join(central)
        handle.write(directory_bytes)
        handle.write(_end_records(len(members), len(directory_bytes), offset))

    _replace_atomically(path, write)


def writable_target(path: Any) -> str:
    """``path`` as a text path a file can be written to, or an error that names the problem
    (before any temporary file exists): not text, empty, a folder, something other than a
    regular file (a device, a pipe: writing would replace it), a name too long, or a folder
    that does not exist. A link to a regular file is replaced by the new file, as ``mv`` does.

    >>> writable_target("")
    Traceback (most recent call last):
    ...
    ValueError: the path is empty; name a file to write
    """
    if isinstance(path, (bytes, bytearray)) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the path must be text (str or os.PathLike), not {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"the path must be text, not {type(path).__name__}")
    if not path.strip():
        raise ValueError("the path is empty; name a file to write")
    if path.endswith(("/", os.sep)):
        raise IsADirectoryError(f"{path} names a folder; name a file (e.g. {path}model.fl)")
    if len(os.fsencode(os.path.basename(path))) > 255:
        raise ValueError(
            f"the file name is longer than 255 bytes: {os.path.basename(path)[:40]}..."
        )
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path[:200]}: {err.strerror}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{path} is a folder; name a file (e.g. {path}/model.fl)")
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(
            f"{path} is not a regular file (a device, pipe or socket); writing would replace "
            "it, so name another path"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"the folder {directory} does not exist; create it first")
    return path


def _replace_atomically(path: str, write: Callable[[Any], None], text: bool = False) -> None:
    """Write ``path`` through a new temporary file (random name, created exclusively: never
    through a planted link, never shared by two writers; those of killed writers removed),
    fsynced and renamed over it: a reader sees the old file or the new one, never half."""
    path = writable_target(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)[:200]  # room for the suffix within a file name's 255 bytes
    _remove_stale_temps(directory, base)
    tmp = os.path.join(directory, f".{base}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w" if text else "wb", buffering=-1 if text else _CHUNK) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    sync_folder(directory)  # make the rename itself durable


def file_sha256(path: str | os.PathLike[str], expected_bytes: int | None = None) -> tuple[str, int]:
    """(sha256, size) of the regular file ``path``; where its size is not ``expected_bytes``,
    ('', size) without reading it (a file put in another's place may be huge)."""
    digest, size = hashlib.sha256(), 0
    # O_NONBLOCK: a named pipe put in a file's place opens at once, then is refused below
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    with open(path, "rb", opener=lambda p, flags: os.open(p, flags | nonblocking)) as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ModelFileError(f"{path} is not a regular file (a device, pipe or socket)")
        if expected_bytes is not None and status.st_size != expected_bytes:
            return "", int(status.st_size)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def make_folder(folder: str | os.PathLike[str]) -> bool:
    """Create ``folder`` and any missing folders above it, each name made durable (the folder
    holding it fsynced, so it outlives a power cut like the files later written in it).
    Returns whether ``folder`` itself was created."""
    folder = os.path.abspath(folder)
    missing = []
    while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    for created in reversed(missing):
        os.makedirs(created, exist_ok=True)
        sync_folder(os.path.dirname(created))
    return bool(missing)


def sync_folder(directory: str | os.PathLike[str]) -> None:
    """fsync a folder, so that the names created, renamed or removed in it survive a power
    cut (where the platform allows opening a folder; elsewhere a no-op)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _version(size: int, offset: int) -> int:
    return 45 if size > _ZIP64_LIMIT or offset > _ZIP64_LIMIT else 20


def _local_record(name: bytes, crc: int, size: int, offset: int) -> bytes:
    """The local file header the writer puts before a member's bytes."""
    size32, extra = size, b""
    if size > _ZIP64_LIMIT:
        size32, extra = 0xFFFFFFFF, struct.pack("<2H2Q", 1, 16, size, size)
    version = _version(size, offset)
    fields = (_SIG_LOCAL, version, 0, 0, _DOS_TIME, _DOS_DATE, crc, size32, size32)
    return _LOCAL.pack(*fields, len(name), len(extra)) + name + extra


def _central_record(name: bytes, crc: int, size: int, offset: int) -> bytes:
    """The central directory entry the writer writes for a member."""
    size32, offset32, wide = size, offset, []
    if size > _ZIP64_LIMIT:
        size32, wide = 0xFFFFFFFF, [size, size]
    if offset > _ZIP64_LIMIT:
        offset32, wide = 0xFFFFFFFF, [*wide, offset]
    extra = struct.pack(f"<2H{len(wide)}Q", 1, 8 * len(wide), *wide) if wide else b""
    version = _version(size, offset)
    fixed = (_SIG_CENTRAL, version, _UNIX, version, 0, 0, _DOS_TIME, _DOS_DATE, crc)
    sizes = (size32, size32, len(name), len(extra), 0, 0, 0, _ATTRIBUTES, offset32)
    return _CENTRAL.pack(*fixed, *sizes) + name + extra


def _end_records(count: int, size: int, offset: int) -> bytes:
    """ZIP64 end records (only when needed) and the end-of-central-directory record."""
    records = b""
    if count >= 0xFFFF or size > _ZIP64_LIMIT or offset > _ZIP64_LIMIT:
        records = _END64.pack(_SIG_END64, 44, 45, 45, 0, 0, count, count, size, offset)
        records += _LOCATOR64.pack(_SIG_LOCATOR64, 0, offset + size, 1)
    count16 = count if count < 0xFFFF else 0xFFFF
    size32 = size if size <= _ZIP64_LIMIT else 0xFFFFFFFF
    offset32 = offset if offset <= _ZIP64_LIMIT else 0xFFFFFFFF
    return records + _END.pack(_SIG_END, 0, 0, count16, count16, size32, offset32, 0)


def _remove_stale_temps(directory: str, base: str) -> None:
    """Delete temp files of ``base`` whose writer died (SIGKILL, power loss), not live ones."""
    pattern = re.compile(rf"\.{re.escape(base)}\.tmp-([1-9][0-9]{{0,9}})-[0-9a-f]{{8}}\Z")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match and not _pid_alive(int(match.group(1))):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process on this host; when unsure, say alive (keep the file)."""
    if pid == os.getpid() or os.name != "posix":  # os.kill on Windows would terminate it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True


# ---------------------------------------------------------------------------------- reading
def read_model_file(
    path: str | os.PathLike,
    *,
    kind: str,
    version: int,
    also: tuple[int, ...] = (),
    max_metadata_bytes: int = MAX_METADATA_BYTES,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The caller's metadata (without :data:`WRITER_KEYS`) and the arrays of a model file.

    ``version`` is the caller's current format version; ``also`` lists older versions it still
    reads (the metadata then says which one under ``format_version``).

    Raises ``FileNotFoundError`` (and other ``OSError``) when the file cannot be opened, and
    :class:`ModelFileError` for anything wrong with its content, found before anything larger
    than the file is allocated. The arrays are fresh, writable and C-contiguous; their values
    are not checked (that is the caller's job).
    """
    path = os.fspath(path)
    # O_NONBLOCK: a named pipe opens at once (then refused below) instead of waiting for a writer
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    try:
        handle = open(path, "rb", opener=lambda p, flags: os.open(p, flags | nonblocking))
    except IsADirectoryError:
        raise IsADirectoryError(f"{path} is a folder, not a model file") from None
    with handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise ModelFileError(f"{path} is not a regular file (a device, pipe or socket)")
        try:
            return _read(_File(handle, path), kind, version, also, max_metadata_bytes)
        except ModelFileError:
            raise
        except Exception as err:  # backstop for whatever the checks missed: still a bad file
            raise ModelFileError(
                f"{path} is truncated or corrupted ({type(err).__name__}: {err})"
            ) from err


class _Entry(NamedTuple):
    name: str
    crc: int
    size: int
    offset: int


class _File:
    """Bounded reads of an open model file; a read past its end is a truncated file."""

    def __init__(self, handle: BinaryIO, path: str) -> None:
        self.handle, self.path = handle, path
        self.size = os.fstat(handle.fileno()).st_size

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def read(self, offset: int, n: int, what: str) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ModelFileError(
                f"{self.path} is truncated or corrupted ({what}: {n} bytes at offset {offset} "
                f"in a file of {self.size})"
            )
        self.handle.seek(offset)
        data = self.handle.read(n)
        if len(data) != n:
            raise ModelFileError(f"{self.path} is truncated or corrupted ({what} ends early)")
        return data

    def read_into(self, offset: int, out: np.ndarray, what: str) -> None:
        if offset < 0 or offset + out.size > self.size:
            raise ModelFileError(f"{self.path} is truncated or corrupted ({what})")
        self.handle.seek(offset)
        for start in range(0, out.size, _CHUNK):
            view = memoryview(out[start : start + _CHUNK])
            if self.handle.readinto(view) != len(view):
                raise ModelFileError(f"{self.path} is truncated or corrupted ({what} ends early)")


def _read(
    file: _File, kind: str, version: int, also: tuple[int, ...], max_metadata_bytes: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    count, directory_size, directory_offset = _end_of_archive(file)
    entries = _central_directory(file, count, directory_size, directory_offset)
    by_name = {e.name: e for e in entries}
    meta = by_name.get(_METADATA)
    if meta is None:
        raise file.error(f"not a model file (no {_METADATA})")
    if meta.size > max_metadata_bytes:
        raise file.error(
            f"{_METADATA} takes {meta.size} bytes, more than max_metadata_bytes="
            f"{max_metadata_bytes}"
        )
    raw = file.read(_data_offset(file, meta), meta.size, _METADATA)
    if zlib.crc32(raw) != meta.crc:
        raise ModelFileError(f"{file.path} is truncated or corrupted (CRC of {_METADATA})")
    try:
        doc = _parse_json(raw)
    except ModelFileError as err:
        raise file.error(str(err)) from None
    _check_format(file, doc, kind, version, also)
    table = _checked_table(file, doc)
    if doc["metadata_sha256"] != _metadata_sha256(doc):
        raise file.error("metadata checksum mismatch (metadata or its array table was edited)")
    expected = {_METADATA} | {f"{name}.npy" for name in table}
    if set(by_name) != expected:
        missing, extra = sorted(expected - set(by_name)), sorted(set(by_name) - expected)
        raise file.error(f"members missing {missing}, unexpected {extra}")
    arrays = {
        name: _read_array(file, by_name[f"{name}.npy"], name, *entry)
        for name, entry in table.items()
    }
    # Last, so that content errors (and files of older versions) are named as such.
    _check_layout(file, entries, directory_size, directory_offset)
    metadata = {k: v for k, v in doc.items() if k not in WRITER_KEYS}
    if also:
        metadata["format_version"] = doc["format_version"]
    return metadata, arrays


def _end_of_archive(file: _File) -> tuple[int, int, int]:
    """Member count, size and offset of the central directory, from the file's last bytes."""
    if file.size < _END.size:
        raise ModelFileError(f"{file.path} is truncated or corrupted (not a zip: too short)")
    end = _END.unpack(file.read(file.size - _END.size, _END.size, "end record"))
    if end[0] != _SIG_END:
        raise ModelFileError(
            f"{file.path} is truncated or corrupted (not a zip: no end-of-archive record at "
            "the end of the file)"
        )
    _, disk, disk_with_directory, count, total, size, offset, comment = end
    if disk or disk_with_directory or count != total or comment:
        raise file.error("zip end record is not a single-disk archive without comment")
    tail = file.size - _END.size
    overflow = count == 0xFFFF or size == 0xFFFFFFFF or offset == 0xFFFFFFFF
    locator_at = tail - _LOCATOR64.size
    # ZIP64 records sit between the directory and the end record when a field above overflows
    # (or, in other writers' files, whenever the directory does not end at the end record).
    if (overflow or offset + size != tail) and locator_at >= 0:
        locator = _LOCATOR64.unpack(file.read(locator_at, _LOCATOR64.size, "zip64 locator"))
        if locator[0] != _SIG_LOCATOR64:
            raise ModelFileError(f"{file.path} is truncated or corrupted (zip64 locator)")
        end64_at = locator[2]
        end64 = _END64.unpack(file.read(end64_at, _END64.size, "zip64 end record"))
        if end64[0] != _SIG_END64:
            raise ModelFileError(f"{file.path} is truncated or corrupted (zip64 end record)")
        count, size, offset, tail = end64[6], end64[8], end64[9], end64_at
    if count > MAX_ARRAYS + 1:
        raise file.error(f"{count} members, at most {MAX_ARRAYS + 1} allowed")
    if offset + size != tail or size > count * _MAX_CENTRAL_ENTRY:
        raise ModelFileError(
            f"{file.path} is truncated or corrupted (central directory of {size} bytes at "
            f"{offset} does not end where the end records start, at {tail})"
        )
    return count, size, offset


def _central_directory(file: _File, count: int, size: int, offset: int) -> list[_Entry]:
    """The members, each checked to be stored, unencrypted, uniquely named and in the file."""
    data = file.read(offset, size, "central directory")
    entries: list[_Entry] = []
    seen: set[str] = set()
    position = 0
    for _ in range(count):
        if position + _CENTRAL.size > len(data):
            raise ModelFileError(f"{file.path} is truncated or corrupted (central directory)")
        record = _CENTRAL.unpack_from(data, position)
        sig, flags, method, crc = record[0], record[4], record[5], record[8]
        compressed, size32, name_length, extra_length, comment_length = record[9:14]
        offset32 = record[17]
        if sig != _SIG_CENTRAL:
            raise ModelFileError(f"{file.path} is truncated or corrupted (central directory)")
        start = position + _CENTRAL.size
        raw_name = data[start : start + name_length]
        extra = data[start + name_length : start + name_length + extra_length]
        position = start + name_length + extra_length + comment_length
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            raise file.error(f"member name {raw_name[:60]!r} is not ASCII") from None
        if name != _METADATA and not (name.endswith(".npy") and _NAME.match(name[:-4])):
            what = "directory" if name.endswith("/") else "member"
            raise file.error(f"unexpected {what} {name[:60]!r}")
        if name in seen:
            raise file.error(f"duplicate member {name!r}")
        seen.add(name)
        if flags & _ENCRYPTED:
            raise file.error(f"member {name!r} is encrypted (flags {flags:#x})")
        if method != 0:
            raise file.error(
                f"member {name!r} is compressed (method {method}); model files hold stored "
                "members only"
            )
        size, member_offset = _zip64_values(file, name, extra, compressed, size32, offset32)
        if member_offset + _LOCAL.size + size > offset:
            raise ModelFileError(
                f"{file.path} is truncated or corrupted (member {name!r}: {size} bytes at "
                f"{member_offset} overlap the central directory at {offset})"
            )
        entries.append(_Entry(name, crc, size, member_offset))
    if position != len(data):
        raise ModelFileError(f"{file.path} is truncated or corrupted (central directory size)")
    if sum(e.size for e in entries) > file.size:
        raise ModelFileError(f"{file.path} is truncated or corrupted (member sizes)")
    return entries


def _zip64_values(
    file: _File, name: str, extra: bytes, compressed: int, size32: int, offset32: int
) -> tuple[int, int]:
    """A member's size and offset, from its ZIP64 extra field where the 32-bit ones overflow."""
    if compressed != size32:
        raise file.error(f"stored member {name!r}: {size32} bytes stored in {compressed}")
    wide = []
    while len(extra) >= 4:
        tag, length = struct.unpack_from("<2H", extra)
        if 4 + length > len(extra):
            raise ModelFileError(f"{file.path} is truncated or corrupted (extra field of {name!r})")
        if tag == 1:
            wide = list(struct.unpack_from(f"<{length // 8}Q", extra, 4))
        extra = extra[4 + length :]
    size, offset = size32, offset32
    try:
        if size32 == 0xFFFFFFFF:
            size = wide.pop(0)
            if wide.pop(0) != size:
                raise file.error(f"stored member {name!r}: zip64 sizes differ")
        if offset32 == 0xFFFFFFFF:
            offset = wide.pop(0)
    except IndexError:
        raise ModelFileError(f"{file.path} is truncated or corrupted (zip64 field)") from None
    return size, offset


def _data_offset(file: _File, entry: _Entry) -> int:
    local = _LOCAL.unpack(file.read(entry.offset, _LOCAL.size, f"{entry.name} header"))
    if local[0] != _SIG_LOCAL:
        raise ModelFileError(f"{file.path} is truncated or corrupted ({entry.name} header)")
    return entry.offset + _LOCAL.size + local[-2] + local[-1]


def _check_layout(file: _File, entries: list[_Entry], size: int, offset: int) -> None:
    """Every zip record byte for byte as the writer writes it, members back to back.

    Together with the CRCs and checksums of the content this makes every byte of the file
    checked: fields that zip readers ignore (times, attributes, versions) cannot change either.
    """
    names = [e.name for e in entries]
    if names != [_METADATA, *sorted(names[1:], key=lambda n: n.removesuffix(".npy"))]:
        raise file.error(f"members are not in the writer's order: {names[:4]}")
    position, central = 0, []
    for entry in entries:
        name = entry.name.encode("ascii")
        expected = _local_record(name, entry.crc, entry.size, position)
        found = file.read(position, len(expected), entry.name)
        if entry.offset != position or found != expected:
            raise file.error(
                f"zip header of member {entry.name!r} differs from what write_model_file "
                "writes (file altered or written by another tool)"
            )
        central.append(_central_record(name, entry.crc, entry.size, position))
        position += len(expected) + entry.size
    tail = b"".join(central) + _end_records(len(entries), size, offset)
    if position != offset or file.size != offset + len(tail):
        raise file.error("zip members are not back to back as write_model_file writes them")
    if file.read(offset, len(tail), "central directory") != tail:
        raise file.error(
            "zip central directory differs from what write_model_file writes (file altered or "
            "written by another tool)"
        )


def _parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, bounded nesting and item count, no NaN or infinity, unique keys."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ModelFileError(f"{_METADATA} is not UTF-8 ({err})") from None
    depth, items = _json_shape(raw)
    if items > MAX_JSON_ITEMS:
        raise ModelFileError(f"{_METADATA} has over {MAX_JSON_ITEMS} JSON items")
    if depth > MAX_JSON_DEPTH:
        raise ModelFileError(f"{_METADATA} nests {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_not_json,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError) as err:
        raise ModelFileError(f"{_METADATA} is not valid JSON ({err})") from None


def _json_shape(raw: bytes) -> tuple[int, int]:
    """Nesting depth and item count (brackets, commas, colons outside strings) of JSON text.

    Counted in fixed-size chunks with numpy, so that neither memory nor time depends on how
    the text is built, before the parser (which recurses and builds objects) sees it.
    """
    # Escapes are the only way a string holds a quote: drop escaped backslashes, then escaped
    # quotes; every quote left opens or closes a string.
    codes = np.frombuffer(raw.replace(b"\\\\", b"").replace(b'\\"', b""), dtype=np.uint8)
    depth = deepest = items = in_string = 0
    for start in range(0, codes.size, _SCAN):
        chunk = codes[start : start + _SCAN]
        strings = (np.cumsum(chunk == 34, dtype=np.int32) + in_string) & 1
        outside = strings == 0
        opens = outside & ((chunk == 91) | (chunk == 123))
        closes = outside & ((chunk == 93) | (chunk == 125))
        items += int(np.count_nonzero(opens))
        items += int(np.count_nonzero(outside & ((chunk == 44) | (chunk == 58))))
        levels = depth + np.cumsum(opens, dtype=np.int32) - np.cumsum(closes, dtype=np.int32)
        deepest = max(deepest, int(levels.max()))
        depth, in_string = int(levels[-1]), int(strings[-1])
    return deepest, items


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [k for k, _ in pairs]
        raise ValueError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return result


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows a float")
    return value


def _metadata_sha256(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k != "metadata_sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _check_format(file: _File, doc: Any, kind: str, version: int, also: tuple[int, ...]) -> None:
    if not isinstance(doc, dict):
        raise file.error(f"{_METADATA} must hold a JSON object, not {type(doc).__name__}")
    found, found_version = doc.get("format"), doc.get("format_version")
    if found == kind and type(found_version) is int and found_version in (version, *also):
        return
    message = f"format {found!r} version {found_version!r}, expected {kind!r} version {version}"
    if found == kind and type(found_version) is int and found_version < version:
        writer = doc.get("library_version")
        by = f"forgetless {writer}" if isinstance(writer, str) else "the version that wrote it"
        message += (
            f"; the file was written by an older version ({by}): load it with that version, "
            "or refit the model and re-save it with this one"
        )
    elif found == kind and type(found_version) is int:
        message += "; the file was written by a newer version: upgrade to read it"
    raise file.error(message)


def _checked_table(file: _File, doc: dict[str, Any]) -> dict[str, tuple[str, tuple, str]]:
    """The array table as name -> (sha256, shape, dtype), every field checked."""
    checksum = doc.get("metadata_sha256")
    if not isinstance(checksum, str) or not _SHA256.match(checksum):
        raise file.error("metadata_sha256 missing or not 64 lowercase hex digits")
    table = doc.get("arrays")
    if not isinstance(table, dict):
        raise file.error(f"the array table must be a JSON object, not {type(table).__name__}")
    if len(table) > MAX_ARRAYS:
        raise file.error(f"{len(table)} arrays, at most {MAX_ARRAYS} allowed")
    checked = {}
    for name, entry in table.items():
        where = f"array {name[:60]!r}"
        if not _NAME.match(name):
            raise file.error(f"{where}: not a valid array name")
        if not isinstance(entry, dict) or sorted(entry) != ["dtype", "sha256", "shape"]:
            raise file.error(f"{where}: table entry must have exactly sha256, shape and dtype")
        sha, shape, dtype = entry["sha256"], entry["shape"], entry["dtype"]
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise file.error(f"{where}: sha256 must be 64 lowercase hex digits")
        if not (
            isinstance(shape, list)
            and len(shape) <= _MAX_NDIM
            and all(type(n) is int and n >= 0 for n in shape)
        ):
            raise file.error(f"{where}: shape must be a list of at most {_MAX_NDIM} integers >= 0")
        problem = _dtype_error(dtype)
        if problem:
            raise file.error(f"{where}: {problem}")
        if _nbytes(tuple(max(n, 1) for n in shape), dtype) >= 1 << 62:
            raise file.error(f"{where}: shape {shape} is too large")
        checked[name] = (sha, tuple(shape), dtype)
    return checked


def _dtype_error(dtype: Any) -> str | None:
    if not isinstance(dtype, str):
        return f"dtype must be a string, not {type(dtype).__name__}"
    match = _UNICODE_DTYPE.match(dtype)
    if dtype in _NUMERIC_DTYPES or (match and int(match.group(1)) <= _MAX_UNICODE_CHARS):
        return None
    return (
        f"dtype {dtype[:40]!r} is not allowed (little-endian bool, integers, floats or "
        f"unicode up to {_MAX_UNICODE_CHARS} characters)"
    )


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    match = _UNICODE_DTYPE.match(dtype)
    itemsize = 4 * int(match.group(1)) if match else int(dtype[2:])
    count = 1
    for n in shape:
        count *= n
    return count * itemsize


def _read_array(
    file: _File, entry: _Entry, name: str, sha: str, shape: tuple[int, ...], dtype: str
) -> np.ndarray:
    """One ``.npy`` member, its header checked against the table before allocating it."""
    where = f"array {name!r}"
    nbytes = _nbytes(shape, dtype)
    # Magic (6) + version (2) + header length (2) + header, then exactly the data.
    if not nbytes + 10 <= entry.size <= nbytes + 10 + _MAX_NPY_HEADER:
        raise file.error(
            f"{where}: declared {list(shape)} {dtype} ({nbytes} bytes) but its member holds "
            f"{entry.size} bytes"
        )
    start = _data_offset(file, entry)
    prefix = file.read(start, 10, entry.name)
    if prefix[:8] != _NPY_MAGIC + b"\x01\x00":
        raise file.error(f"{where}: not a version 1.0 .npy member")
    (header_length,) = struct.unpack("<H", prefix[8:])
    if 10 + header_length + nbytes != entry.size:
        raise file.error(
            f"{where}: .npy header of {header_length} bytes does not leave room for exactly "
            f"the declared {list(shape)} {dtype} in a member of {entry.size} bytes"
        )
    header = file.read(start + 10, header_length, entry.name)
    try:
        found_shape, fortran, found_dtype = np.lib.format.read_array_header_1_0(
            io.BytesIO(prefix[8:] + header), max_header_size=_MAX_NPY_HEADER + 1
        )
    except (ValueError, SyntaxError, TypeError, tokenize.TokenError) as err:
        raise file.error(f"{where}: invalid .npy header ({err})") from None
    if found_shape != shape or found_dtype.str != dtype or fortran is not False:
        raise file.error(
            f"{where}: .npy header says {list(found_shape)} {found_dtype.str} "
            f"(fortran_order={fortran}) but the table says {list(shape)} {dtype}"
        )
    array = np.empty(shape, dtype=np.dtype(dtype))
    flat = _byte_view(array)
    file.read_into(start + 10 + header_length, flat, entry.name)
    crc, digest = zlib.crc32(header, zlib.crc32(prefix)), hashlib.sha256()
    for begin in range(0, flat.size, _CHUNK):
        chunk = flat[begin : begin + _CHUNK]
        crc = zlib.crc32(chunk, crc)
        digest.update(chunk)
    if crc != entry.crc or digest.hexdigest() != sha:
        raise file.error(f"checksum mismatch for array {name!r} (file altered)")
    return array


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> None:
    """Write JSON atomically (:func:`_replace_atomically`): a reader sees the old file or the
    new one, never half of one."""
    _replace_atomically(path, lambda f: json.dump(payload, f, indent=1, sort_keys=True), text=True)


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str], what: str = "the model") -> Iterator[None]:
    """One writer at a time in ``folder`` (a POSIX advisory lock on its ``.lock`` file; a
    killed writer releases it). ``what`` names the folder's contents in messages. A lock
    taken on a file that was removed or replaced meanwhile (a failed first save removes its
    folder) is taken again on the file the path names now."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent writers are the user's risk
        yield
        return
    path = os.path.join(os.fspath(folder), LOCK_FILE)
    # O_NONBLOCK: a named pipe planted there is refused at once instead of waiting for a reader
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    waited = False
    while True:
        try:  # never through a link: a planted .lock would create or lock a file elsewhere
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            raise ModelFileError(
                f"{os.fspath(folder)} does not exist (any more: another process may have "
                "removed it); nothing was written"
            ) from None
        except PermissionError:
            raise ModelFileError(
                f"permission denied: {path}, the lock file of {what}, cannot be opened for "
                "writing; nothing was written"
            ) from None
        except OSError as err:
            raise ModelFileError(
                f"{path} cannot be opened as the lock file of {what} ({err.strerror}); "
                "it must be a plain file inside the folder"
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ModelFileError(
                f"{path} is not a plain file (a pipe, device or socket), so it cannot be the "
                f"lock file of {what}; remove it"
            )
        handle = os.fdopen(fd, "a")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    print(
                        f"waiting for another writer of {what} in {os.fspath(folder)}...",
                        file=sys.stderr,
                    )
                    waited = True
                fcntl.flock(handle, fcntl.LOCK_EX)
            if _names_same_file(path, os.fstat(fd)):
                break
        except BaseException:
            handle.close()
            raise
        handle.close()  # the file was removed or replaced while we waited: lock the new one
    with handle:
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _names_same_file(path: str, opened: os.stat_result) -> bool:
    try:
        now = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)


LOCK_FILE = ".lock"
"""The lock file :func:`folder_lock` keeps in a folder (a model's, an adapted encoder's)."""
