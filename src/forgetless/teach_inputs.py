"""What a practitioner points the teachable model at: folders, tables and files, checked.

:func:`collect` turns the command line's ``INPUT...`` into one :class:`Batch` of samples: the
item an encoder reads (an image path or a text), where it came from (the path, or
``table.csv:3`` for the third data row of a table; its errors also give the row's line in the
file), its label when there is one, and its
**fingerprint**: the sha256 of an image file's bytes, or of a text's UTF-8 bytes (surrounding
whitespace stripped). Inputs are

* a folder of class subfolders: ``photos/cat/1.jpg`` is labelled ``cat`` (for ``predict`` and
  ``forget`` every file under the folder is an input, labels are not needed);
* a ``.csv``/``.tsv`` (with a header) or ``.jsonl`` table of texts: ``--text-column``
  (default ``text``) and ``--label-column`` (default ``label``);
* single files (images, or ``.txt`` files holding one text each) with ``--label``;
* texts typed on the command line (``--text "..."``, repeatable; with ``--label`` to learn).

Every mistake raises :class:`InputError` with one sentence naming the input and what to do,
before anything is encoded.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "t.csv").write_text("text,label\\nhello there,greet\\nsee you,bye\\n")
>>> batch = collect([str(d / "t.csv")], "text", labels="required")
>>> batch.items, batch.labels, batch.sources[1].endswith("t.csv:2")
(['hello there', 'see you'], ['greet', 'bye'], True)
>>> collect([str(d / "t.csv")], "text", labels="required", label_column="topic")
Traceback (most recent call last):
...
forgetless.teach_inputs.InputError: ...t.csv has no column 'topic' (its columns: text, label)...
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
TEXT_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson")
MAX_LABEL_CHARS = 200
Labels = Literal["required", "optional", "ignored"]


class InputError(ValueError):
    """A user's input cannot be used; the message names it and says what to do."""


@dataclass
class Batch:
    """Samples to encode, with where each came from, its label (or None) and fingerprint."""

    modality: str
    items: list[Any] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)
    fingerprints: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Any, source: str, label: str | None, fingerprint: bytes) -> None:
        self.items.append(item)
        self.sources.append(source)
        self.labels.append(label)
        self.fingerprints.append(fingerprint)

    def subset(self, index: Sequence[int]) -> Batch:
        new = Batch(self.modality)
        for i in index:
            new.add(self.items[i], self.sources[i], self.labels[i], self.fingerprints[i])
        return new

    def relabelled(self, labels: Sequence[str | None]) -> Batch:
        """The same samples under ``labels`` (one per sample)."""
        if len(labels) != len(self):
            raise ValueError(f"{len(labels)} labels for {len(self)} samples")
        new = Batch(self.modality)
        for item, source, label, fingerprint in zip(
            self.items, self.sources, labels, self.fingerprints, strict=True
        ):
            new.add(item, source, label, fingerprint)
        return new

    def counts(self) -> dict[str, int]:
        """Samples per label, labels sorted."""
        names, counts = np.unique(np.array([str(lab) for lab in self.labels]), return_counts=True)
        return {str(n): int(c) for n, c in zip(names, counts, strict=True)}


def text_fingerprint(text: str) -> bytes:
    """sha256 of a text as it is learned (UTF-8, surrounding whitespace stripped)."""
    return hashlib.sha256(text.strip().encode("utf-8")).digest()


def check_unicode(text: str, what: str) -> str:
    """``text`` if it can be written as UTF-8 (a lone surrogate, from a JSON escape or a file
    name or argument in another encoding, cannot: it would be saved, then break every print).

    >>> check_unicode("caf" + chr(0xDCE9), "--text 1")
    Traceback (most recent call last):
    ...
    forgetless.teach_inputs.InputError: --text 1 is not valid Unicode ...
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{what} is not valid Unicode (a character at {text.encode('utf-8', 'replace')[:40]!r}"
            " is a lone surrogate: text or a name in another encoding); write it as UTF-8"
        ) from None
    return text


def check_label(label: Any, where: str) -> str:
    """A label name: a non-empty string of at most 200 characters, one line (no tabs,
    escapes or line separators: they would break the outputs), in Unicode's composed form
    (NFC), so a name typed on one system and a folder named on another (macOS writes é as e and
    a combining accent) are one class.

    >>> check_label("cafe\u0301", "--label") == "caf\u00e9"
    True
    """
    text = str(label).strip() if label is not None else ""
    if not text:
        raise InputError(f"{where}: empty label; give every sample a class name")
    check_unicode(text, f"{where}: the label")
    text = unicodedata.normalize("NFC", text)
    if len(text) > MAX_LABEL_CHARS:
        raise InputError(
            f"{where}: label {text[:40]!r}... is longer than {MAX_LABEL_CHARS} characters"
        )
    odd = next((ch for ch in text if unicodedata.category(ch) in _BREAKING), None)
    if odd is not None:
        raise InputError(
            f"{where}: label {text[:40]!r} holds the control or line character {odd!r}; a "
            "label is one line without tabs, escapes or line breaks"
        )
    return text


# Control characters (tab, ESC, NUL, U+0085) and line or paragraph separators break the
# outputs' lines and columns; other spaces and format characters (emoji joiners) are text.
_BREAKING = ("Cc", "Zl", "Zp")


def guess_modality(inputs: Sequence[str], by_class: bool = True) -> str:
    """``"image"`` or ``"text"`` from what the inputs hold (for a model's first ``learn``).
    ``by_class``: a folder's samples are in its class subfolders (no ``--label``), so files
    beside them are no samples; otherwise every file under it is one."""
    kinds = set()
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            # What the class subfolders hold decides; loose files beside them (a README.txt
            # beside class folders of images) are no samples of a class.
            files, _ = walk_files(path)
            nested = {_kind(p) for p in files if len(p.relative_to(path).parts) > 1} - {None}
            every = {_kind(p) for p in files} - {None}
            kinds |= (nested or every) if by_class else every
        elif path.suffix.lower() in TABLE_SUFFIXES + TEXT_SUFFIXES:
            kinds.add("text")
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            kinds.add("image")
    if len(kinds) == 1:
        return kinds.pop()
    if not kinds:
        _missing(inputs)
        raise InputError(
            f"cannot tell whether {' '.join(inputs)[:200]} holds images or texts; give image "
            "files, a .csv/.jsonl table or .txt files, or choose the encoder with --encoder"
        )
    raise InputError(
        f"{' '.join(inputs)[:200]} holds both images and texts; a model reads one kind: teach "
        "them to two models, or choose the encoder with --encoder"
    )


def _missing(inputs: Sequence[str], labels: Labels = "required") -> None:
    """A one-line error for the first input that does not exist, saying what may be given."""
    for raw in inputs:
        path = Path(raw)
        if path.exists():
            continue
        if path.is_symlink():
            raise InputError(f"{raw} is a link to nothing (broken, or a loop of links)")
        what = (
            "a folder of class subfolders, a .csv/.tsv/.jsonl table, or files with --label"
            if labels == "required"
            else "files, a folder of them, or a .csv/.tsv/.jsonl table"
        )
        raise InputError(f"{raw} does not exist; give {what}")


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in TEXT_SUFFIXES:
        return "text"
    return None


def walk_files(folder: Path) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """Every file under ``folder``, sorted, as paths under ``folder``; and the links to
    folders that were read at another place, as (link, where its target was read).

    Links are followed, to files and to folders. Each real folder is read once: at its own
    place when it lies under ``folder``, else through the first link to it in sorted order;
    a later way to the same folder (a loop back up the tree, or a second link to one folder)
    adds nothing and is returned with the place it was read at, so that a caller reading
    classes from folder names can refuse one folder read as two classes. Hidden names (a
    leading ".") are skipped, and so are named pipes, sockets and devices (reading one could
    block); a link to nothing is kept, so that reading it says what is wrong.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Path(d, "cat").mkdir()
    ...     _ = Path(d, "cat", "x.png").write_bytes(b"")
    ...     Path(d, "cat", "again").symlink_to(d)  # a loop: read once
    ...     Path(d, "kitty").symlink_to(Path(d, "cat"))  # read at its own place, cat/
    ...     files, aliases = walk_files(Path(d))
    ...     [p.relative_to(d).as_posix() for p in files]
    ...     [(a.relative_to(d).as_posix(), b.relative_to(d).as_posix()) for a, b in aliases]
    ['cat/x.png']
    [('cat/again', '.'), ('kitty', 'cat')]
    """
    found: list[Path] = []
    read_at = {os.path.realpath(folder): folder}
    links: list[Path] = []  # links to folders, followed once every folder of their own is read
    aliases: list[tuple[Path, Path]] = []

    def read(top: Path) -> None:  # ``top`` and the folders in it that are not links
        stack = [top]
        while stack:
            here = stack.pop()
            try:
                entries = sorted(os.scandir(here), key=lambda e: e.name)
            except OSError:  # unreadable: left out, as ``rglob`` does
                continue
            inner = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                path = here / entry.name
                if entry.is_dir():  # a link to a folder counts too
                    if entry.is_symlink():
                        links.append(path)
                    elif os.path.realpath(path) in read_at:
                        aliases.append((path, read_at[os.path.realpath(path)]))
                    else:
                        read_at[os.path.realpath(path)] = path
                        inner.append(path)
                elif entry.is_file() or (entry.is_symlink() and not os.path.exists(path)):
                    found.append(path)
            stack.extend(reversed(inner))

    read(folder)
    while links:
        links.sort(reverse=True)
        link = links.pop()
        target = os.path.realpath(link)
        if target in read_at:
            aliases.append((link, read_at[target]))
        else:
            read_at[target] = link
            read(link)
    return sorted(found), sorted(aliases)


def read_as_two_classes(aliases: Iterable[tuple[Path, Path]], root: Path, depth: int) -> str | None:
    """Why a folder's files would belong to two classes, or None: a link in class folder A
    that leads to a folder read in class folder B (two class folders that are links to one
    folder, say) gave B's files to B only, silently. Loops back up the tree, and second ways
    into a folder of the same class, are not such a case.

    >>> print(read_as_two_classes([(Path("/r/kitty"), Path("/r/cat"))], Path("/r"), 1))
    /r/kitty leads to /r/cat, whose files are read as class 'cat'; a sample has one class: ...
    >>> read_as_two_classes([(Path("/r/cat/up"), Path("/r"))], Path("/r"), 1) is None
    True
    """
    for link, first in aliases:
        here, there = _folder_class(link, root, depth), _folder_class(first, root, depth)
        if here is not None and there is not None and here != there:
            return (
                f"{link} leads to {first}, whose files are read as class {there!r}; a sample "
                f"has one class: remove the link, or copy the files meant for {here!r} into it"
            )
    return None


def _folder_class(folder: Path, root: Path, depth: int) -> str | None:
    """The class a folder's files get (its first ``depth`` folders below ``root``), or None
    above the class folders."""
    parts = folder.relative_to(root).parts
    return class_name(parts[:depth]) if len(parts) >= depth else None


def class_name(folders: Sequence[str]) -> str:
    """The class that nested class folders name: each without the spaces around it and in
    Unicode's composed form (NFC), as taught labels are (macOS names folders decomposed: é as
    e and a combining accent), joined by "/".

    >>> class_name(["animals ", "cafe\u0301"]) == "animals/caf\u00e9"
    True
    """
    return "/".join(unicodedata.normalize("NFC", part.strip()) for part in folders)


def _special(path: Path) -> bool:
    """A named pipe, socket or device: reading it could block or never end, so folders skip
    it (a missing target is not special: reading it says what is wrong)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def collect(
    inputs: Sequence[str],
    modality: str,
    *,
    labels: Labels,
    label: str | None = None,
    text_column: str = "text",
    label_column: str = "label",
    texts: Sequence[str] = (),
) -> Batch:
    """The samples of ``inputs`` for a model reading ``modality`` (``"image"``/``"text"``),
    then the ``texts`` given on the command line (``--text``).

    ``labels="required"`` (learn, evaluate): every sample needs a label, from ``label``, its
    class subfolder or the table's label column. ``"optional"`` (forget): only ``label`` is
    used, folders are read whole. ``"ignored"`` (predict): no labels.

    >>> collect([], "text", labels="ignored", texts=["  a short note "]).items
    ['a short note']
    >>> collect([], "image", labels="ignored", texts=["a note"])
    Traceback (most recent call last):
    ...
    forgetless.teach_inputs.InputError: --text gives texts, but this model reads images; ...
    """
    if not inputs and not texts:
        raise InputError('no INPUT given; name a folder, a table or files (or --text "...")')
    if label is not None:
        label = check_label(label, "--label")
    if texts and modality != "text":
        raise InputError(
            f"--text gives texts, but this model reads {modality}s; give image files or folders"
        )
    if texts and labels == "required" and label is None:
        raise InputError("--text needs --label NAME (the class of the texts) to be learned")
    batch = Batch(modality)
    for raw in inputs:
        path = Path(raw)
        _missing([raw], labels)
        if path.is_dir():
            _folder(batch, path, modality, labels, label)
        elif path.suffix.lower() in TABLE_SUFFIXES:
            if _special(path):
                raise InputError(f"{raw} is not a regular file (a pipe, socket or device)")
            if modality != "text":
                raise InputError(
                    f"{raw} is a table of texts but this model reads images; give image files "
                    "or folders"
                )
            _table(batch, path, labels, label, text_column, label_column)
        else:
            if _special(path):
                raise InputError(
                    f"{raw} is not a regular file (a pipe, socket or device); give files or folders"
                )
            kind = _kind(path)
            if kind is None:
                known = ", ".join(IMAGE_SUFFIXES if modality == "image" else TEXT_SUFFIXES)
                raise InputError(
                    f"{raw} is not a file this model reads ({modality}s: {known}"
                    + (", or a .csv/.jsonl table" if modality == "text" else "")
                    + ")"
                )
            if kind != modality:
                raise InputError(
                    f"{raw} is a{'n' if kind == 'image' else ''} {kind} file but "
                    f"this model reads {modality}s"
                )
            if labels == "required" and label is None:
                raise InputError(
                    f"{raw} is a single file: say its class with --label NAME (or put it in a "
                    "folder of class subfolders)"
                )
            _file(batch, path, raw, modality, label)
    for n, raw in enumerate(texts, 1):
        text = str(raw).strip()
        if not text:
            raise InputError(f"--text number {n} is empty; write the text between quotes")
        check_unicode(text, f"--text number {n}")
        batch.add(text, text_source(text), label, text_fingerprint(text))
    if not len(batch):
        raise InputError(f"{' '.join(inputs)[:200]} holds no {modality}s")
    return batch


def text_source(text: str, limit: int = 40) -> str:
    """How a text given with ``--text`` is named in outputs: itself, quoted, shortened.

    >>> text_source("a rather long sentence that goes on and on and on")
    '"a rather long sentence that goes on ..."'
    """
    one_line = " ".join(text.split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 4].rstrip() + " ..."
    return f'"{one_line}"'


def _folder(batch: Batch, root: Path, modality: str, labels: Labels, label: str | None) -> None:
    files, aliases = walk_files(root)
    wrong = [p for p in files if _kind(p) not in (None, modality)]
    usable = [p for p in files if _kind(p) == modality]
    if not usable:
        hint = ", ".join(IMAGE_SUFFIXES if modality == "image" else TEXT_SUFFIXES)
        extra = (
            f" (it holds {_kind(wrong[0])} files; this model reads {modality}s)" if wrong else ""
        )
        raise InputError(f"{root} holds no {modality} files ({hint}){extra}")
    by_class = labels == "required" and label is None
    if by_class:
        twice = read_as_two_classes(aliases, root, 1)
        if twice is not None:
            raise InputError(twice)
        loose = [p for p in usable if len(p.relative_to(root).parts) < 2]
        if loose:
            raise InputError(
                f"{loose[0]} is not in a class subfolder: put files in {root}/<class>/, or give "
                "--label NAME for all of them"
            )
    for p in usable:
        name = label
        if by_class:
            name = check_label(p.relative_to(root).parts[0], str(p))
        _file(batch, p, str(p), modality, name)


def _file(batch: Batch, path: Path, source: str, modality: str, label: str | None) -> None:
    try:
        data = path.read_bytes()
    except OSError as err:
        if path.is_symlink() and not path.exists():
            raise InputError(
                f"{source} is a link to nothing (broken, or a loop of links); remove it"
            ) from None
        raise InputError(
            f"cannot read {source}: {err.strerror or err}; check its permissions"
        ) from None
    if modality == "text":
        try:
            text = data.decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            raise InputError(f"{source} is not UTF-8 text; save it as UTF-8") from None
        if not text:
            raise InputError(f"{source} is empty; remove it or write its text")
        batch.add(text, source, label, text_fingerprint(text))
        return
    _check_image(data, source)
    batch.add(str(path), source, label, hashlib.sha256(data).digest())


def _check_image(data: bytes, source: str) -> None:
    """Refuse a file Pillow cannot read as an image (checked from its bytes, before encoding)."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        return  # the encoder will say what to install
    from forgetless.encoders.images import open_image

    try:
        with open_image(io.BytesIO(data)) as im:
            im.verify()
        # verify() reads no pixel data of some formats (JPEG, BMP, TIFF, GIF, PPM): a file cut
        # short passed it and failed only when encoded, after the other inputs' encoding.
        # Decoding finds it; a JPEG decodes at an eighth of its size, which still reads it all.
        with open_image(io.BytesIO(data)) as im:
            if im.format == "JPEG":
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
            finite = im.mode != "F" or bool(np.isfinite(np.asarray(im)).all())
    except Image.DecompressionBombError as err:
        raise InputError(
            f"{source} is too large to read as an image ({err}); downscale it or remove it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        why = "cut short" if "truncated" in str(err) else err.__class__.__name__
        raise InputError(
            f"{source} is not a readable image ({why}); remove or replace it"
        ) from None
    if not finite:
        raise InputError(
            f"{source} holds pixel values that are not finite (NaN or infinity); replace them "
            "or remove the image"
        )


def _table(
    batch: Batch,
    path: Path,
    labels: Labels,
    label: str | None,
    text_column: str,
    label_column: str,
) -> None:
    rows, columns, lines = read_table(path)
    if not rows:
        raise InputError(f"{path} has no rows; add rows of {text_column!r} and {label_column!r}")
    need_label = labels == "required" and label is None
    if need_label and text_column == label_column:
        raise InputError(
            f"--text-column and --label-column both name {text_column!r}; the texts and their "
            "classes are two columns"
        )
    wanted = [text_column] + ([label_column] if need_label else [])
    for name in wanted:
        if name not in columns:
            flag = "--text-column" if name == text_column else "--label-column"
            spaced = [c for c in columns if isinstance(c, str) and c.strip() == name]
            if spaced:  # "text, label": the header's second name is " label"
                raise InputError(
                    f"{path} names its column {spaced[0]!r}, with spaces around {name!r}; remove "
                    f"them from the header (or pass {flag} {spaced[0]!r})"
                )
            shown = [c if c and c == c.strip() else repr(c) for c in map(str, columns)]
            raise InputError(
                f"{path} has no column {name!r} (its columns: {', '.join(shown) or 'none'}); "
                f"pass {flag} NAME"
                + (" or --label NAME for every row" if name == label_column else "")
            )
    for n, (row, line) in enumerate(zip(rows, lines, strict=True), 1):
        where = f"{path}:{n}"  # the sample's name: its data row
        twice = sorted(set(wanted) & getattr(row, "repeated", set()))
        if twice:
            raise InputError(
                f"{path} names the column {twice[0]!r} twice"
                + (f" (line {line})" if path.suffix.lower() in (".jsonl", ".ndjson") else "")
                + "; which one is meant? give each column its own name"
            )
        value = row.get(text_column)
        if line != n:  # blank rows or a header above: errors also give the file's line
            where = f"{where} (line {line})"
        if value is not None and not isinstance(value, str):  # JSONL numbers, lists, objects
            raise InputError(
                f"{where}: {text_column!r} holds "
                f"{'dict' if isinstance(value, dict) else type(value).__name__} "
                f"{str(dict(value) if isinstance(value, dict) else value)[:40]!r}, "
                "not text"
            )
        text = "" if value is None else value.strip()
        if not text:
            raise InputError(f"{where}: empty {text_column!r}; fill it or remove the row")
        check_unicode(text, f"{where}: {text_column!r}")
        name = label
        if need_label:
            raw = row.get(label_column)
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, (str, int))):
                raise InputError(
                    f"{where}: label {str(raw)[:40]!r} ({type(raw).__name__}) is not a class "
                    "name; give text or a whole number"
                )
            name = check_label(raw, f"{where} ({label_column!r})")
        batch.add(text, f"{path}:{n}", name, text_fingerprint(text))


class _Row(dict):
    """A table row, and the column names it holds more than once (CSV's reader and json keep
    the last value, silently: refused where the column is read)."""

    def __init__(self, values: Any, repeated: set[str]) -> None:
        super().__init__(values)
        self.repeated = repeated

    @classmethod
    def of_pairs(cls, pairs: list[tuple[str, Any]]) -> _Row:
        keys = [k for k, _ in pairs]
        return cls(pairs, {k for k in keys if keys.count(k) > 1})


def _refuse_unclosed_quote(path: Path, text: str, dialect: str) -> None:
    """A double quote that never closes makes the rest of the file one field (read so, it
    failed later as an empty label): say where it opens."""
    reader = csv.reader(io.StringIO(text, newline=""), dialect=dialect, strict=True)
    start = 1
    try:
        for _ in reader:
            start = reader.line_num + 1
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            raise InputError(
                f'{path} line {start}: a double quote (") opens a text that never closes; '
                'close it, or double a quote inside a quoted text ("")'
            ) from None
        # other irregularities are read as spreadsheets write them, as before


def read_table(path: Path) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """Rows, column names and each row's line in the file (where it ends) of a
    ``.csv``/``.tsv`` with a header or a ``.jsonl`` file; blank rows are left out."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save it as UTF-8") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows, columns, lines = [], {}, []
        # Lines end at "\n" only: JSON strings may hold U+2028, U+0085 and other characters
        # that str.splitlines would also split on.
        for n, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=_Row.of_pairs)
            except json.JSONDecodeError as err:
                raise InputError(f"{path} line {n} is not JSON ({err.msg})") from None
            except RecursionError:
                raise InputError(f"{path} line {n} is nested too deeply to read") from None
            except ValueError as err:  # e.g. an integer of more than 4,300 digits
                raise InputError(f"{path} line {n} cannot be read ({err})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path} line {n} is not a JSON object")
            rows.append(row)
            lines.append(n)
            columns.update(dict.fromkeys(row))
        return rows, list(columns), lines
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    # csv refuses fields beyond 128 KiB by default (a long text JSONL and .txt files take):
    # this file's fields may be as long as the file.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(text) + 1))
    try:
        return _csv_rows(path, text, dialect)
    finally:
        csv.field_size_limit(limit)


def _csv_rows(
    path: Path, text: str, dialect: str
) -> tuple[list[dict[str, Any]], list[str], list[int]]:
    """:func:`read_table` of a CSV or TSV file's text."""
    _refuse_unclosed_quote(path, text, dialect)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
        columns = list(reader.fieldnames or [])
        repeated = {c for c in columns if columns.count(c) > 1}
        rows, lines = [], []
        separator = "tab" if dialect == "excel-tab" else "comma"
        for row in reader:
            extra = row.pop(None, None)  # fields beyond the header's (DictReader's restkey)
            if extra and any(v.strip() for v in extra):  # empty ones: a trailing separator
                raise InputError(
                    f"{path} line {reader.line_num} has {len(columns) + len(extra)} fields but "
                    f"the header has {len(columns)}; put a text that holds a {separator} in "
                    'double quotes ("...")'
                )
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                rows.append(_Row(row, repeated))
                lines.append(reader.line_num)
    except csv.Error as err:
        raise InputError(f"{path} is not a valid table ({err})") from None
    return rows, columns, lines
