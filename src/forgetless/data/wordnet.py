"""WordNet glosses labelled by lexicographer file: 45 classes of text (``noun.animal``, ...).

A real, offline text-classification set from Debian's ``wordnet-base``: every synset's gloss
(definition and examples), labelled by the lexicographer file its synset was filed in.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from forgetless.data.base import Dataset, DatasetNotFoundError, Split, stratified_split

DEFAULT_ROOT = Path("/usr/share/wordnet")
INSTALL = "apt-get install -y wordnet-base"
# WordNet's lexnames file, which Debian does not ship: lex_filenum -> name.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
]  # fmt: skip


_EXAMPLES = re.compile(r';\s*"')  # where a gloss's quoted usage examples begin


def parse_data_line(
    line: str, include_words: bool = False, examples: bool = False
) -> tuple[int, str] | None:
    """``(lex_filenum, text)`` of one ``data.*`` line, or None for the license header.

    >>> line = '00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is; "it is"'
    >>> parse_data_line(line)
    (3, 'that which is')
    >>> parse_data_line(line, include_words=True, examples=True)
    (3, 'entity: that which is; "it is"')
    """
    if line.startswith("  ") or " | " not in line:
        return None
    head, gloss = line.split(" | ", 1)
    fields = head.split()
    lex = int(fields[1])
    text = gloss.strip()
    if not examples:
        definition = _EXAMPLES.split(text, maxsplit=1)[0].strip()
        text = definition or text
    if include_words:
        count = int(fields[3], 16)
        words = [w.replace("_", " ") for w in fields[4 : 4 + 2 * count : 2]]
        # Adjective markers such as "(a)" are syntax, not words.
        words = [w.split("(")[0] for w in words]
        text = f"{', '.join(words)}: {text}"
    return lex, text


def load_wordnet(
    root: str | Path | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    include_words: bool = False,
    examples: bool = False,
) -> Dataset:
    """117,659 glosses in 45 lexicographer-file classes, split per class by ``seed``.

    By default the text is the gloss's definition; ``examples`` keeps its quoted usage
    sentences too (they talk about other things and cost MiniLM + ridge ~3 points), and
    ``include_words`` prefixes the synset's words.

    >>> ds = load_wordnet()  # doctest: +SKIP
    >>> ds.num_classes, len(ds.train) + len(ds.test)  # doctest: +SKIP
    (45, 117659)
    """
    root = Path(root) if root is not None else DEFAULT_ROOT
    texts: list[str] = []
    labels: list[int] = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{pos}"
        if not path.is_file():
            raise DatasetNotFoundError(f"WordNet file {path} not found. Install it with: {INSTALL}")
        with open(path, encoding="latin-1") as f:
            for line in f:
                parsed = parse_data_line(line, include_words, examples)
                if parsed is not None:
                    labels.append(parsed[0])
                    texts.append(parsed[1])
    y = np.array(labels, dtype=np.int64)
    train, test = stratified_split(y, test_fraction, seed)
    return Dataset(
        name="wordnet",
        modality="text",
        classes=list(LEXNAMES),
        train=Split([texts[i] for i in train], y[train]),
        test=Split([texts[i] for i in test], y[test]),
        source=f"Princeton WordNet 3.0 data files in {root}",
        license="WordNet 3.0 license (BSD-like)",
        info={
            "root": str(root),
            "seed": seed,
            "include_words": include_words,
            "examples": examples,
        },
    )
