"""The adapted encoder: which encoders adapt, the frozen result, and its files.

:func:`adaptable_methods` says which methods can adapt an encoder (and refuses an adapted
one, which :class:`AdaptedEncoder` is); an :class:`AdaptedEncoder` is its base with the
adapted tensors in place, saved as safetensors (or npz) beside ``adapter.json`` with their
sha256, loaded back by :func:`load_adapted_encoder` after every check, and a save removes
what earlier saves killed part-way left.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.adaptation.backends import backend_module, effnet_tail, shared_front
from forgetless.adaptation.recipes import (
    CAN_ADAPT,
    RECIPES,
    AdaptationNotSupportedError,
    Recipe,
    check_method,
    family_of,
)
from forgetless.encoders import located
from forgetless.encoders.base import Encoder
from forgetless.persistence import file_sha256, folder_lock, make_folder, sync_folder
from forgetless.persistence import write_json_atomic as _write_json

FORMAT = 1


FORMAT_KEEP_PLAIN = 2  # the files of an encoder with keep_plain (format 1 has no such key)
METADATA = "adapter.json"


class AdaptedWeightsError(ValueError):
    """A saved adapted encoder is missing, damaged, altered, or belongs to other base weights."""

    __module__ = "forgetless.adaptation"  # its public place, shown in tracebacks


def adaptable_methods(encoder: Any, readout: str | None = None) -> dict[str, Recipe]:
    """The methods that can adapt ``encoder`` (an encoder or a registry name), default first.

    The default can depend on what the encoder reads out (its ``readout``; for a registry
    name, ``readout`` or the name's default): MiniLM reading every layer (``"layers"``, its
    default) trains every layer (``lora-all``), reading the last layer only the last two
    (``lora``), as measured best for each (``benchmarks/adaptation.py``).

    Raises :class:`AdaptationNotSupportedError` for an encoder that cannot be adapted.

    >>> next(iter(adaptable_methods("minilm"))), next(iter(adaptable_methods("minilm", "last")))
    ('lora-all', 'lora')
    """
    if isinstance(encoder, AdaptedEncoder):
        raise AdaptationNotSupportedError(
            f"encoder {encoder.name!r} is already adapted ({encoder.method} on its first session); "
            "an encoder is adapted once, before any later session: adapt the base encoder "
            "instead, or use this one frozen as it is"
        )
    family = family_of(encoder)
    if family is None:
        name = encoder if isinstance(encoder, str) else getattr(encoder, "name", encoder)
        raise AdaptationNotSupportedError(
            f"encoder {name!r} cannot be adapted: it has no trainable torch network this module "
            f"knows; adaptable: {CAN_ADAPT}"
        )
    recipes = dict(RECIPES[family])
    if family == "transformer":
        if isinstance(encoder, str):
            from forgetless.encoders import READOUTS

            readout = readout or READOUTS.get(encoder, ("last",))[0]
        else:
            readout = getattr(encoder, "readout", "last")
        if readout not in ("last", "layers"):
            raise ValueError(f"readout must be one of 'last', 'layers', got {readout!r}")
        default = "lora-all" if readout == "layers" else "lora"
        recipes = {default: recipes[default], **recipes}
    return recipes


def tensors_digest(tensors: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes of ``tensors`` (in name order).

    >>> tensors_digest({"a": np.zeros(2, np.float32)}) == tensors_digest({"a": np.zeros(2)})
    False
    """
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(f"{len(name)}:{name}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def info_digest(info: dict[str, Any]) -> str:
    """sha256 of ``info`` as adapter.json holds it (its JSON text, keys sorted): the training
    record a save writes beside the tensors, so an edit to it is caught on load like an edit
    to them.

    >>> info_digest({"epochs": 10, "best": (3,)}) == info_digest({"best": [3], "epochs": 10})
    True
    """
    stored = json.loads(json.dumps(info))  # what a save writes and a load reads back
    return hashlib.sha256(json.dumps(stored, sort_keys=True).encode()).hexdigest()


def _has_safetensors() -> bool:
    import importlib.util

    return importlib.util.find_spec("safetensors") is not None


def _write_tensors(path: Path, tensors: dict[str, np.ndarray], fmt: str) -> None:
    """Write to a new temporary name (random, created exclusively: never through a planted
    link, never shared by two savers), then rename: a crash leaves no half-written file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    # adapter.json's mode (0o666 less the umask): safetensors' save_file would replace the
    # file by one readable by its owner only, and others could read the JSON but not load it
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if fmt == "safetensors":
                from safetensors.numpy import save

                f.write(save(arrays))
            else:
                np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def _read_tensors(path: Path, fmt: str) -> dict[str, np.ndarray]:
    if fmt == "safetensors":
        from safetensors.numpy import load_file

        return dict(load_file(str(path)))
    import zipfile

    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:  # np.savez stores members as they are
        for member in archive.infolist():
            if member.compress_type != zipfile.ZIP_STORED or member.file_size > size:
                raise ValueError(
                    f"member {member.filename!r} is compressed or larger than the file itself "
                    "(this writer stores tensors as they are)"
                )
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


_SAVED_OPTIONS = {"image_size", "resize", "readout", "normalize", "name"}  # _registry_spec's


def _registry_spec(encoder: Encoder) -> tuple[str, dict[str, Any]]:
    """The registry name and options that rebuild ``encoder`` (what decides its features)."""
    if family_of(encoder) == "efficientnet":
        prep = encoder.prep
        options: dict[str, Any] = {"image_size": prep.size, "resize": prep.resize}
    else:
        options = {"normalize": bool(getattr(encoder, "normalize", False))}
    if encoder.readout is not None:  # files written before readouts name none: "head"/"last"
        options["readout"] = encoder.readout
    name = encoder.name
    if family_of(encoder) == "transformer" and not (
        name == "minilm" or name.startswith("sentence-transformers:")
    ):  # a name of the caller's own, which the registry does not know: its folder, that name
        options["name"] = name
        name = f"sentence-transformers:{Path(encoder.folder).absolute()}"
    elif located(name) != name:  # a relative folder: found from anywhere, under its own name
        options["name"] = name
        name = located(name)
    return name, options


class AdaptedEncoder(Encoder):
    """A base encoder with adapted tensors in place of some of its weights; frozen.

    Encodes like its base (same preprocessing, width, modality); with ``keep_plain`` it
    returns ``[plain features, adapted features]`` (width ``2 * base.dim``; for EfficientNet the
    shared frozen front runs once per batch and both tails run on it). Its fingerprint covers
    the base encoder's fingerprint, the method, ``keep_plain`` and a sha256 of the adapted
    tensors, so the feature cache never mixes adapted and plain features, nor two adaptations.
    """

    # Its place before adaptation.py became a package: the fingerprint names the class
    # (Encoder.fingerprint), so saved adapters and cached features keep theirs.
    __module__ = "forgetless.adaptation"

    adapted = True

    def __init__(
        self,
        base: Encoder,
        method: str,
        tensors: dict[str, np.ndarray],
        info: dict[str, Any] | None = None,
        *,
        keep_plain: bool = False,
    ) -> None:
        if not isinstance(base, Encoder):
            raise TypeError(f"base must be an encoder (load_encoder), got {type(base).__name__}")
        recipes = adaptable_methods(base)  # refuses raw, ONNX and adapted encoders
        check_method(method, recipes, base.name)
        if not isinstance(keep_plain, (bool, np.bool_)):
            raise ValueError(f"keep_plain must be True or False, got {keep_plain!r}")
        if info is not None and not isinstance(info, dict):
            raise TypeError(f"info must be a dict (the training record), got {type(info).__name__}")
        try:  # as a save writes it and a load reads it back: a bad record fails here, not there
            self.info = json.loads(json.dumps(info or {}))
        except (TypeError, ValueError, RecursionError) as err:
            raise ValueError(
                f"info must hold only JSON values (Python numbers, texts, lists, dicts): {err}"
            ) from None
        self.base_name = base.name
        self.base_fingerprint = base.fingerprint()
        self.base_spec = _registry_spec(base)
        self.method = method
        self.tensors = {k: np.ascontiguousarray(v) for k, v in sorted(tensors.items())}
        self.tensors_sha256 = tensors_digest(self.tensors)
        self.keep_plain = bool(keep_plain)
        self._inner = copy.deepcopy(base)
        _apply(backend_module(self._inner), self.tensors, self.base_name)
        # with keep_plain: the unchanged network, and the first block the tensors change
        self._plain = copy.deepcopy(base) if self.keep_plain else None
        self._shared = shared_front(base, self.tensors) if self.keep_plain else 0
        self.name = f"{base.name}+{method}" + ("+plain" if self.keep_plain else "")
        self.dim = None if base.dim is None else base.dim * (2 if self.keep_plain else 1)
        self.modality = base.modality
        self.batch_size = base.batch_size

    def preprocessing(self) -> dict[str, Any]:
        return self._inner.preprocessing()

    def weights_id(self) -> str:
        payload: dict[str, Any] = {
            "base": self.base_fingerprint,
            "method": self.method,
            "tensors": self.tensors_sha256,
        }
        if self.keep_plain:  # absent otherwise: earlier adapters keep their fingerprints
            payload["keep_plain"] = True
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "adapted": {
                "base": self.base_name,
                "base_fingerprint": self.base_fingerprint,
                "method": self.method,
                "keep_plain": self.keep_plain,
                "tensors_sha256": self.tensors_sha256,
            },
        }

    def _encode_batch(self, batch: Sequence[Any]) -> np.ndarray:
        if self._plain is None:
            return self._inner._encode_batch(batch)
        if self._shared > 0:  # EfficientNet: the unchanged front once, then both tails
            import torch

            plain, adapted = self._plain.model, self._inner.model
            x = plain._swish(plain._bn0(plain._conv_stem(self._plain._tensor(batch))))
            for block in plain._blocks[: self._shared]:
                x = block(x)
            both = [effnet_tail(net, x, self._shared) for net in (plain, adapted)]
            return torch.cat(both, dim=1).float().cpu().numpy()
        return np.concatenate(
            [self._plain._encode_batch(batch), self._inner._encode_batch(batch)], axis=1
        )

    @contextlib.contextmanager
    def _runtime(self) -> Iterator[None]:
        with self._inner._runtime():
            yield

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the adapted tensors and their metadata into folder ``path``.

        The tensors go to ``weights-<sha256[:16]>.safetensors`` (``.npz`` without the
        ``safetensors`` package; never pickle), then ``adapter.json`` names that file and its
        sha256; each file is written aside and renamed, and the JSON last, so a crash leaves
        the previous save or this one. Saves into one folder take turns (a ``.lock`` file
        there), so each removes the tensor file the save before it wrote; a ``.lock`` there that
        is not a plain file raises :class:`~forgetless.persistence.ModelFileError`. Returns the
        JSON's path.
        """
        folder = Path(path)
        make_folder(folder)  # (the new names outlive a power cut too)
        # One saver at a time: two overlapping saves would each remove only the file the
        # adapter.json named before them, and one tensor file would stay behind.
        with folder_lock(folder, "the adapted encoder"):
            self._write(folder)
        return folder / METADATA

    def _write(self, folder: Path) -> None:
        fmt = "safetensors" if _has_safetensors() else "npz"
        name = f"weights-{self.tensors_sha256[:16]}.{fmt}"
        previous = _named_tensors_file(folder / METADATA)
        base_name, options = self.base_spec
        # The whole record first (info, its digest): one that cannot be written as JSON fails
        # before any file is, instead of leaving a tensor file no adapter.json names.
        try:
            info_sha256 = info_digest(self.info)
        except (TypeError, ValueError, RecursionError) as err:
            raise ValueError(
                f"info must hold only JSON values (Python numbers, texts, lists, dicts): {err}; "
                "nothing was saved"
            ) from None
        payload = {
            # format 2 adds keep_plain, which a format-1 reader would ignore: it refuses it
            "format": FORMAT_KEEP_PLAIN if self.keep_plain else FORMAT,
            "kind": "forgetless adapted encoder",
            "base": {"name": base_name, "options": options, "fingerprint": self.base_fingerprint},
            "method": self.method,
            "keep_plain": self.keep_plain,
            "fingerprint": self.fingerprint(),
            "tensors": {
                "file": name,
                "format": fmt,
                "sha256": self.tensors_sha256,
                "names": sorted(self.tensors),
            },
            "info": self.info,
            "info_sha256": info_sha256,
        }
        _write_tensors(folder / name, self.tensors, fmt)
        payload["tensors"]["file_sha256"] = file_sha256(folder / name)[0]
        _write_json(folder / METADATA, payload)
        if previous is not None and previous != name:  # the earlier save's, no longer named
            (folder / previous).unlink(missing_ok=True)
        _remove_leftovers(folder, keep=name)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **runtime: Any) -> AdaptedEncoder:
        """See :func:`load_adapted_encoder`."""
        return load_adapted_encoder(path, **runtime)


# What a save writes and nothing else does: tensor files, and their temporary names.
_TENSOR_FILE = re.compile(r"weights-[0-9a-f]{16}\.(safetensors|npz)")
_TENSOR_TEMP = re.compile(r"\.weights-[0-9a-f]{16}\.(safetensors|npz)\.[0-9a-f]{16}\.tmp")


def _remove_leftovers(folder: Path, keep: str) -> None:
    """Remove what saves killed part-way left (their temporary files; tensor files written
    before their adapter.json): under the save's lock no other save is writing, and only
    names of this module's own pattern are touched."""
    for entry in folder.iterdir():
        leftover = _TENSOR_TEMP.fullmatch(entry.name) or (
            _TENSOR_FILE.fullmatch(entry.name) and entry.name != keep
        )
        if leftover and not entry.is_symlink() and entry.is_file():
            entry.unlink(missing_ok=True)


def _named_tensors_file(meta_path: Path) -> str | None:
    """The tensor file an existing adapter.json names (a plain weights-* name), else None:
    a save removes that one only, never other files of the folder."""
    try:
        name = json.loads(meta_path.read_text())["tensors"]["file"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    ok = isinstance(name, str) and name == Path(name).name and name.startswith("weights-")
    return name if ok else None


def _apply(module: Any, tensors: dict[str, np.ndarray], base_name: str) -> None:
    """Put ``tensors`` into ``module``'s state, after checking every name, shape and dtype."""
    import torch

    state = module.state_dict()
    for name, arr in tensors.items():
        if name not in state:
            raise AdaptedWeightsError(
                f"adapted tensor {name!r} is not a weight of {base_name}; "
                "these tensors were made for another network"
            )
        if tuple(state[name].shape) != arr.shape or str(state[name].dtype) != str(
            torch.from_numpy(arr).dtype
        ):
            raise AdaptedWeightsError(
                f"adapted tensor {name!r} is {arr.dtype}{list(arr.shape)} but {base_name} "
                f"has {state[name].dtype}{list(state[name].shape)}"
            )
    with torch.no_grad():
        for name, arr in tensors.items():
            state[name].copy_(torch.from_numpy(np.array(arr)))


def load_adapted_encoder(
    path: str | os.PathLike[str], *, base: Encoder | None = None, **runtime: Any
) -> AdaptedEncoder:
    """Rebuild an adapted encoder saved by :meth:`AdaptedEncoder.save` in folder ``path``.

    The base encoder comes from the registry (``runtime`` adds options such as ``device`` or
    ``threads``), or is ``base``, loaded by the caller: the encoder it was adapted from, for
    instance from the new place of a model folder that moved. Its fingerprint, the tensor
    file's sha256 and the tensors' own digest are checked before use: a damaged or altered
    file, or other base weights, raise :class:`AdaptedWeightsError`.
    """
    if base is not None and runtime:
        raise ValueError(
            f"give runtime options ({', '.join(sorted(runtime))}) to the base encoder's "
            "load_encoder, not beside base"
        )
    if base is not None and (not isinstance(base, Encoder) or isinstance(base, AdaptedEncoder)):
        raise TypeError(
            "base must be the plain encoder the file was adapted from (load_encoder), got "
            f"{type(base).__name__}"
        )
    fixed = sorted(set(runtime) & _SAVED_OPTIONS)
    if fixed:  # else refused later as "other weights or preprocessing", blaming the file
        raise ValueError(
            f"load_adapted_encoder cannot change {', '.join(fixed)}: the saved encoder was "
            "adapted with its own, which its features depend on; pass only runtime options "
            "such as device or threads"
        )
    folder = Path(path)
    meta_path = folder / METADATA if folder.is_dir() else folder
    folder = meta_path.parent
    for _ in range(2):  # a save replaced the files meanwhile: read its new ones
        try:
            return _load_adapted(meta_path, folder, runtime, base)
        except _TensorsGone:
            pass
    return _load_adapted(meta_path, folder, runtime, base)


class _TensorsGone(AdaptedWeightsError):
    """The tensor file the metadata names is not there (perhaps replaced by a save)."""


def _plain_file(path: Path, what: str, missing: AdaptedWeightsError) -> None:
    """Refuse a link, a folder, a pipe or a device where a file this module wrote belongs;
    raise ``missing`` where there is nothing."""
    if path.is_symlink():
        raise AdaptedWeightsError(f"{path} is a symbolic link; {what} is a plain file")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise missing from None
    if not stat.S_ISREG(mode):
        raise AdaptedWeightsError(f"{path} is not a regular file; {what} is a plain file")


def _load_adapted(
    meta_path: Path, folder: Path, runtime: dict[str, Any], given: Encoder | None
) -> AdaptedEncoder:
    from forgetless.encoders import READOUTS, EncoderNotAvailableError, load_encoder, relocated

    _plain_file(
        meta_path,
        "adapter.json",
        AdaptedWeightsError(
            f"{meta_path} does not exist; give the folder AdaptedEncoder.save wrote"
        ),
    )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise AdaptedWeightsError(f"{meta_path} is not readable JSON: {err}") from None
    try:
        base, tensors_meta, method = meta["base"], meta["tensors"], meta["method"]
        keep_plain = meta.get("keep_plain", False)
        recorded = meta["fingerprint"]  # every save writes it: without it, edits would pass
        fmt_ok = type(meta.get("format")) is int and meta["format"] in (FORMAT, FORMAT_KEEP_PLAIN)
        if not fmt_ok or not isinstance(keep_plain, bool):
            raise AdaptedWeightsError(f"{meta_path} has format {meta.get('format')!r}")
        if meta.get("kind") != "forgetless adapted encoder":
            raise AdaptedWeightsError(f"{meta_path} is not an adapted-encoder file (its kind)")
        if keep_plain and meta["format"] != FORMAT_KEEP_PLAIN:
            raise AdaptedWeightsError(
                f"{meta_path} has format {FORMAT}, which has no keep_plain (altered?)"
            )
        file = folder / Path(tensors_meta["file"]).name
        fmt = tensors_meta["format"]
        expected_file, expected_tensors = tensors_meta["file_sha256"], tensors_meta["sha256"]
        base_name, options = base["name"], base["options"]
        info = meta.get("info", {})
        info_sha = meta.get("info_sha256")  # files written before it was recorded have none
        names = tensors_meta["names"]
        texts = (method, base_name, expected_file, expected_tensors, base["fingerprint"], recorded)
        if not all(isinstance(value, str) for value in texts):
            raise TypeError("method, base name, hashes and fingerprints must be strings")
        if not (isinstance(options, dict) and isinstance(info, dict)):
            raise TypeError("base options and info must be tables")
        if info_sha is not None and not isinstance(info_sha, str):
            raise TypeError("info_sha256 must be a string")
        options = dict(options)
    except (KeyError, TypeError) as err:
        raise AdaptedWeightsError(f"{meta_path} is not an adapted-encoder file ({err})") from None
    if fmt not in ("safetensors", "npz"):
        raise AdaptedWeightsError(f"{meta_path}: unknown tensor format {fmt!r}")
    if info_sha is not None and info_digest(info) != info_sha:
        raise AdaptedWeightsError(
            f"{meta_path}: its info (the training record) does not match its recorded sha256 "
            "(altered?)"
        )
    unknown = sorted(set(options) - _SAVED_OPTIONS)
    if unknown:  # e.g. threads or device: runtime options, never saved (:func:`_registry_spec`)
        raise AdaptedWeightsError(
            f"{meta_path}: base options {unknown} are not ones a save writes (altered?); pass "
            "runtime options such as threads or device to load_adapted_encoder"
        )
    if family_of(base_name) is None:
        raise AdaptedWeightsError(
            f"{meta_path} names base encoder {base_name!r}, which no method adapts"
        )
    if method not in RECIPES[family_of(base_name)]:
        raise AdaptedWeightsError(
            f"{meta_path} names method {method!r}, which does not adapt {base_name}: the file "
            "was altered"
        )
    _plain_file(file, "the tensor file", _TensorsGone(f"{file} is missing; {meta_path} names it"))
    actual = file_sha256(file)[0]
    if actual != expected_file:
        raise AdaptedWeightsError(
            f"{file} is damaged or was altered: sha256 {actual[:16]}..., "
            f"{meta_path.name} expects {expected_file[:16]}...; adapt the encoder again"
        )
    try:
        tensors = _read_tensors(file, fmt)
    except Exception as err:  # a library's own parse error: say which file
        raise AdaptedWeightsError(f"{file} cannot be read: {err}") from None
    if tensors_digest(tensors) != expected_tensors:
        raise AdaptedWeightsError(f"{file}: its tensors do not match their recorded sha256")
    if not (isinstance(names, list) and names == sorted(tensors)):
        raise AdaptedWeightsError(
            f"{meta_path} lists other tensors than {file.name} holds (altered?)"
        )
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise AdaptedWeightsError(f"{file}: tensor {name!r} holds NaN or infinity")
    if base_name in READOUTS:  # written before readouts: the last map or layer only
        options.setdefault("readout", READOUTS[base_name][1])
    try:
        encoder = given if given is not None else load_encoder(base_name, **{**options, **runtime})
    except (TypeError, ValueError) as err:
        raise AdaptedWeightsError(
            f"{meta_path} names base encoder {base_name!r} with options {options}, which cannot "
            f"be built: {err}"
        ) from None
    except EncoderNotAvailableError as err:
        raise EncoderNotAvailableError(
            f"{meta_path} was adapted from {base_name}, which cannot be loaded: "
            f"{str(err).rstrip('.')}. If its folder or file moved, load it from its new place "
            "and pass it: load_adapted_encoder(path, base=load_encoder(NEW))"
        ) from None
    if encoder.decoding(1).fingerprint() == base["fingerprint"] != encoder.fingerprint():
        # adapted before image decoding had a version: the base decodes as it did then
        encoder = encoder.decoding(1)
    if encoder.fingerprint() != base["fingerprint"]:
        # the same weights at another place (a moved folder, or a relative name recorded by an
        # earlier release, which names itself by its absolute place now): under the name then
        moved = relocated(encoder, base_name, base["fingerprint"], options.get("name"))
        encoder = encoder if moved is None else moved
    if encoder.fingerprint() != base["fingerprint"]:
        raise AdaptedWeightsError(
            f"{meta_path} was adapted from {base_name} with fingerprint "
            f"{base['fingerprint'][:16]}..., but "
            f"{'the base given' if given is not None else base_name + ' here'} has "
            f"{encoder.fingerprint()[:16]}... (other weights or preprocessing)"
        )
    try:
        adapted = AdaptedEncoder(encoder, method, tensors, info, keep_plain=keep_plain)
    except (TypeError, ValueError) as err:
        raise AdaptedWeightsError(f"{meta_path}: {err}") from None
    # Everything that shapes the features is in the fingerprint: metadata altered anywhere
    # (method, keep_plain, ...) gives another one than the file recorded.
    if adapted.fingerprint() != recorded:
        raise AdaptedWeightsError(
            f"{meta_path} records fingerprint {recorded[:16]}..., but what it "
            f"describes has {adapted.fingerprint()[:16]}...: the file was altered"
        )
    return adapted
