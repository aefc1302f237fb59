"""Users' own texts: a CSV or JSON Lines file (or a train and a test file) of text and label."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from forgetless.data.base import Dataset, DatasetNotFoundError, Split, stratified_split


def read_text_table(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[str]]:
    """Texts and label names from a ``.csv``/``.tsv`` with a header or a ``.jsonl``.

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
    rows: list[dict[str, object]]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    elif path.suffix.lower() in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
            rows = list(csv.DictReader(f, dialect=dialect))
    else:
        raise ValueError(f"{path}: expected a .csv, .tsv or .jsonl file")
    texts, labels = [], []
    for n, row in enumerate(rows, 1):
        if text_column not in row or label_column not in row:
            raise ValueError(f"{path} row {n} lacks column {text_column!r} or {label_column!r}")
        texts.append(str(row[text_column]))
        labels.append(str(row[label_column]))
    return texts, labels


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

    Classes are the sorted label names (numeric labels are sorted as numbers).
    """
    texts, names = read_text_table(path, text_column, label_column)
    if test_path is not None:
        test_texts, test_names = read_text_table(test_path, text_column, label_column)
    else:
        test_texts, test_names = [], []
    everything = set(names) | set(test_names)
    numeric = all(n.lstrip("-").isdigit() for n in everything)
    classes = sorted(everything, key=(lambda n: int(n)) if numeric else None)
    lookup = {c: i for i, c in enumerate(classes)}
    y = np.array([lookup[n] for n in names], dtype=np.int64)
    if test_path is not None:
        train = Split(texts, y)
        test = Split(test_texts, np.array([lookup[n] for n in test_names], dtype=np.int64))
    else:
        tr, te = stratified_split(y, test_fraction, seed)
        train = Split([texts[i] for i in tr], y[tr])
        test = Split([texts[i] for i in te], y[te])
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
