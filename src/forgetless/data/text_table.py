"""Users' own texts: a CSV or JSON Lines file (or a train and a test file) of text and label.

Files are read as ``forgetless learn`` reads its tables (``forgetless.teach_inputs.read_table``):
UTF-8 with or without a byte order mark, cells of any length. A row whose text or label is
missing, empty or not a string is refused naming the file and line, never read as "None".
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np

from forgetless.data.base import (
    Dataset,
    DatasetFileError,
    DatasetNotFoundError,
    Split,
    stratified_split,
)
from forgetless.teach_inputs import TABLE_SUFFIXES, InputError, read_table  # one table reader

_INTEGER = re.compile(r"-?[0-9]+")


def read_text_table(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[str]]:
    """Texts and label names from a ``.csv``/``.tsv`` with a header or a ``.jsonl``.

    Blank lines and rows are left out. JSON labels may be strings or integers; texts are strings.

    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = os.path.join(d, "t.jsonl")
    ...     with open(p, "w") as f:
    ...         _ = f.write('{"text": "hi", "label": "greet"}\\n{"text": "bye", "label": 2}\\n')
    ...     read_text_table(p)
    (['hi', 'bye'], ['greet', '2'])
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"text table {path} not found")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DatasetFileError(
            f"{path}: expected a .csv, .tsv or .jsonl file of texts and labels; save the table "
            "as one and name it so"
        )
    try:
        cells, _, lines = read_table(path)
    except InputError as err:
        raise DatasetFileError(str(err)) from None
    rows = list(zip(lines, cells, strict=True))
    if not rows:
        raise DatasetFileError(
            f"{path} has no rows; give one row per text, with its {text_column!r} and "
            f"{label_column!r}"
        )
    texts, labels = [], []
    for line, row in rows:
        twice = sorted({text_column, label_column} & getattr(row, "repeated", set()))
        if twice:  # csv and json keep the last of them, silently
            raise DatasetFileError(
                f"{path} names the column {twice[0]!r} twice; which one is meant? give each "
                "column its own name"
            )
        for column in (text_column, label_column):
            if column not in row:
                has = ", ".join(repr(c) for c in row)
                raise DatasetFileError(
                    f"{path} line {line} lacks column {column!r} (it has {has}); name the "
                    "columns with the options text_column= and label_column="
                )
        texts.append(_cell(path, line, row[text_column], "text"))
        labels.append(_cell(path, line, row[label_column], "label"))
    return texts, labels


def _cell(path: Path, line: int, value: object, what: str) -> str:
    """A text or label as a string: a missing, blank or other value is refused, not named
    "None" or by its repr. Labels may be JSON integers too."""
    if isinstance(value, int) and not isinstance(value, bool) and what == "label":
        return str(value)
    if value is None:
        raise DatasetFileError(
            f"{path} line {line} has no {what} (the row ends before it, or it is null); give "
            "every row a text and a label, or leave the row out"
        )
    if not isinstance(value, str):
        kind = (
            "an object"
            if isinstance(value, dict)
            else "a list"
            if isinstance(value, list)
            else "true/false"
            if isinstance(value, bool)
            else "a number"
        )
        raise DatasetFileError(
            f"{path} line {line}: the {what} is {kind}, not a string; give every {what} as a "
            f"string{' or an integer' if what == 'label' else ''}"
        )
    if not value.strip():
        raise DatasetFileError(
            f"{path} line {line} has an empty {what}; give every row a text and a label, or "
            "leave the row out"
        )
    # Labels as taught labels are: without the spaces around them ("hello, greet" in a CSV
    # typed by hand) and in Unicode's composed form, so one class is one class however typed.
    return unicodedata.normalize("NFC", value.strip()) if what == "label" else value


def class_order(names: set[str]) -> list[str]:
    """Label names sorted, as integers when every one is an ASCII integer ("-12", "7").

    Names equal as integers but spelled differently ("1" and "01") stay distinct classes,
    ordered by spelling, so the order never depends on Python's string hashing.

    >>> class_order({"10", "9", "01", "1", "-0", "0"})
    ['-0', '0', '01', '1', '9', '10']
    >>> class_order({"10", "9", "²"})
    ['10', '9', '²']
    """
    if all(_INTEGER.fullmatch(n) for n in names):
        return sorted(names, key=lambda n: (Decimal(n), n))  # Decimal: no digit limit, as int
    return sorted(names)


def load_text_table(
    path: str | Path,
    test_path: str | Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
    license: str = "unknown (user data)",
) -> Dataset:
    """A text dataset from one table split per class by ``seed``, or from a train and a test table.

    Classes are the sorted label names (integer labels are sorted as numbers: :func:`class_order`).
    """
    texts, names = read_text_table(path, text_column, label_column)
    if test_path is not None:
        test_texts, test_names = read_text_table(test_path, text_column, label_column)
    else:
        test_texts, test_names = [], []
    classes = class_order(set(names) | set(test_names))
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup[n] for n in names], dtype=np.int64)
    if test_path is not None:
        train = Split(texts, y)
        test = Split(test_texts, np.array([lookup[n] for n in test_names], dtype=np.int64))
    else:
        tr, te = stratified_split(y, test_fraction, seed)
        train = Split([texts[i] for i in tr], y[tr])
        test = Split([texts[i] for i in te], y[te])
    _warn_copies(train.inputs, test.inputs, test_path or path)
    return Dataset(
        name=name or Path(path).stem,
        modality="text",
        classes=classes,
        train=train,
        test=test,
        source=str(path) + (f" + {test_path}" if test_path else ""),
        license=license,
        info={"seed": seed, "test_fraction": None if test_path else test_fraction},
    )


def _warn_copies(train: list[str], test: list[str], where: str | Path) -> None:
    """Warn where test texts are also training texts (a table with repeated rows, split in
    two, puts copies on both sides): a score on them measures memory, not new texts."""
    seen = {t.strip() for t in train}
    copies = [t for t in test if t.strip() in seen]
    if copies:
        from forgetless.validation import user_stacklevel

        warnings.warn(
            f"{len(copies)} of the {len(test)} test texts are training texts too (e.g. "
            f"{copies[0].strip()[:60]!r}): accuracy on them measures memory, not how a model "
            f"does on new texts; remove the repeated rows from {where}",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
