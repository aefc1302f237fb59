"""Latin glyphs: 62 classes (A-Z, a-z, 0-9) rendered from the fonts installed on this machine.

An EMNIST-like image set that needs no download: each installed font face that draws all 62
characters gives one image per class. Faces are split between train and test by font family, so
a test image is always in a typeface the learner never saw.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forgetless.data.base import Dataset, DatasetNotFoundError, Split, stable_fraction

CHARACTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
INSTALL = (
    "apt-get install -y $(cat .ci/latin-font-packages.txt)  "
    "(the repo's list of Debian font packages; any fonts in font_dirs= work too)"
)
_RENDER_SIZE = 48  # font size the glyphs are drawn at before they are cropped and scaled
_MISSING = "\U0010fffd"  # a private-use code point no text font maps: draws the .notdef glyph


@dataclass(frozen=True)
class FontFace:
    """One face of one font file (``.ttc`` collections hold several)."""

    path: str
    index: int
    family: str
    style: str


def font_files(font_dirs: Sequence[str | Path] = FONT_DIRS) -> list[Path]:
    """Every TrueType/OpenType file under ``font_dirs``, sorted so runs agree."""
    found: set[Path] = set()
    for d in font_dirs:
        root = Path(d)
        if root.is_dir():
            found.update(p for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    return sorted(p for p in found if p.is_file())


def _faces_in(path: Path) -> Iterator[tuple[int, object]]:
    from PIL import ImageFont

    collection = path.suffix.lower() in (".ttc", ".otc")
    index = 0
    while True:
        try:
            font = ImageFont.truetype(str(path), _RENDER_SIZE, index=index)
        except (OSError, ValueError):
            return  # an unreadable file, or past the last face of a collection
        yield index, font
        if not collection:
            return
        index += 1


def _draw(font: object, char: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    side = 3 * _RENDER_SIZE
    canvas = Image.new("L", (side, side), 0)
    ImageDraw.Draw(canvas).text((side / 2, side / 2), char, fill=255, font=font, anchor="mm")
    return np.asarray(canvas)


def _crop(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.max(axis=1))
    cols = np.flatnonzero(ink.max(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _place(crop: np.ndarray, side: int, size: int) -> np.ndarray:
    """Centre ``crop`` in a ``side``-pixel black square and scale that to ``size``."""
    from PIL import Image

    h, w = crop.shape
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = crop
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.LANCZOS))


def render_face(font: object, size: int, margin: float = 0.1) -> np.ndarray | None:
    """The 62 glyphs of one face as ``(62, size, size)`` ``uint8``, or None if any is missing.

    Each glyph is centred on its ink; all glyphs of a face share one scale, set by its tallest or
    widest glyph plus ``margin`` on each side, so letter case stays visible in the size.

    A glyph is missing when it draws nothing or draws the face's ``.notdef`` box; faces that draw
    fewer than 50 distinct shapes (symbol fonts that map letters to one picture) are rejected too.
    """
    try:
        notdef = _draw(font, _MISSING)
        inks = [_draw(font, c) for c in CHARACTERS]
    except (OSError, ValueError):
        return None  # FreeType could not render this face
    for ink in inks:
        if not ink.any() or np.array_equal(ink, notdef):
            return None
    if len({ink.tobytes() for ink in inks}) < 50:
        return None
    # One scale per face (from its largest glyph) keeps "o" smaller than "O", as in print.
    crops = [_crop(ink) for ink in inks]
    side = int(np.ceil(max(max(c.shape) for c in crops) * (1.0 + 2.0 * margin)))
    return np.stack([_place(c, side, size) for c in crops])


def load_latin_glyphs(
    image_size: int = 28,
    test_fraction: float = 0.2,
    seed: int = 0,
    font_dirs: Sequence[str | Path] = FONT_DIRS,
    max_faces: int | None = None,
    progress: bool | None = None,
) -> Dataset:
    """Glyph images, white ink on black, ``(n, image_size, image_size)`` ``uint8``.

    Each font family goes wholly to train or to test by a hash of its name and ``seed``, so the
    split is deterministic and stays put when fonts are added. Faces that fail to load or render,
    that lack any of the 62 characters, or that repeat an earlier (family, style) are skipped.
    ``max_faces`` keeps only the first faces in path order (for quick looks). Rendering every
    installed font takes ~15 s; a progress bar shows on a terminal (or with ``progress=True``).

    >>> ds = load_latin_glyphs(image_size=32)  # doctest: +SKIP
    >>> ds.num_classes, ds.train.inputs.shape[1:]  # doctest: +SKIP
    (62, (32, 32))
    """
    try:
        from PIL import ImageFont  # noqa: F401
    except ImportError:
        raise DatasetNotFoundError("latin-glyphs needs Pillow: pip install pillow") from None
    from forgetless.encoders.base import progress_bar

    files = font_files(font_dirs)
    if not files:
        raise DatasetNotFoundError(f"No font files under {list(map(str, font_dirs))}. {INSTALL}")
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    faces: dict[str, list[FontFace]] = {"train": [], "test": []}
    seen: set[tuple[str, str]] = set()
    bar = progress_bar(len(files), "latin-glyphs", progress, unit="font")
    for path in files:
        bar.update(1)
        for index, font in _faces_in(path):
            try:
                family, style = font.getname()  # type: ignore[attr-defined]
            except (OSError, ValueError):
                continue
            key = (family or path.stem, style or "")
            if key in seen:
                continue
            glyphs = render_face(font, image_size)
            if glyphs is None:
                continue
            seen.add(key)
            split = "test" if stable_fraction(key[0], seed) < test_fraction else "train"
            images[split].append(glyphs)
            faces[split].append(FontFace(str(path), index, key[0], key[1]))
            if max_faces is not None and len(seen) >= max_faces:
                break
        if max_faces is not None and len(seen) >= max_faces:
            break
    bar.close()
    if not images["train"] or not images["test"]:
        raise DatasetNotFoundError(
            f"Only {len(seen)} usable font faces under {list(map(str, font_dirs))}: "
            f"too few to make both splits. Install fonts with: {INSTALL}"
        )

    def split(name: str) -> Split:
        stacked = np.concatenate(images[name])
        labels = np.tile(np.arange(len(CHARACTERS), dtype=np.int64), len(images[name]))
        return Split(stacked, labels)

    return Dataset(
        name="latin-glyphs",
        modality="image",
        classes=list(CHARACTERS),
        train=split("train"),
        test=split("test"),
        source=f"glyphs rendered with Pillow/FreeType from {len(seen)} installed font faces",
        license="the fonts' licenses (Debian main: free licenses such as OFL, GPL, Apache)",
        info={
            "image_size": image_size,
            "seed": seed,
            "test_fraction": test_fraction,
            # One entry per image block of 62: which face drew it.
            "train_faces": [f.__dict__ for f in faces["train"]],
            "test_faces": [f.__dict__ for f in faces["test"]],
        },
    )
