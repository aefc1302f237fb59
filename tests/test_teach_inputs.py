"""What a user teaches, read from folders and tables: each file once, JSON lines as JSON reads
them, and one-line errors for values that are not text or class names."""

from __future__ import annotations

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require
from forgetless.teach_inputs import InputError, collect, read_table


def test_a_link_back_up_the_tree_does_not_read_files_again(tmp_path):
    """A symlink loop (cat/back -> ..) must not learn dog's files again under 'cat'."""
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        (tmp_path / "pets" / name / "a.txt").write_text(f"a {name}")
    os.symlink("..", tmp_path / "pets" / "cat" / "back")
    batch = collect([str(tmp_path / "pets")], "text", labels="required")
    assert sorted(batch.items) == ["a cat", "a dog"]
    assert batch.counts() == {"cat": 1, "dog": 1}


@pytest.mark.parametrize("link", ["kitty", "dog/more"])
def test_a_folder_reached_from_two_class_folders_is_refused(tmp_path, link):
    """Two class folders that are links to one folder (or a link in dog/ to cat's folder)
    gave the texts to the first class only, silently: now a one-line error naming both."""
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.txt").write_text("a cat")
    (tmp_path / "pets" / "dog").mkdir(parents=True)
    (tmp_path / "pets" / "dog" / "b.txt").write_text("a dog")
    (tmp_path / "pets" / "cat").symlink_to(store)
    (tmp_path / "pets" / link).symlink_to(store)
    pets = tmp_path / "pets"
    with pytest.raises(InputError, match="^" + re.escape(f"{pets / link} leads to {pets / 'cat'}")):
        collect([str(pets)], "text", labels="required")
    # With one label for everything (or when forgetting), the folder is read once, no error.
    assert collect([str(pets)], "text", labels="required", label="pet").counts() == {"pet": 2}
    assert sorted(collect([str(pets)], "text", labels="optional").items) == ["a cat", "a dog"]


def test_json_lines_keep_characters_that_are_line_breaks_elsewhere(tmp_path):
    """U+2028 and U+0085 are valid inside JSON strings; lines end at newlines only."""
    path = tmp_path / "notes.jsonl"
    rows = [{"text": "a\u2028b", "label": "x"}, {"text": "c\x85d", "label": "y"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n")
    batch = collect([str(path)], "text", labels="required")
    assert batch.items == ["a\u2028b", "c\x85d"]


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"text": {"a": 1}, "label": "x"}, "holds dict"),
        ({"text": float("nan"), "label": "x"}, "holds float"),
        ({"text": "fine", "label": True}, "is not a class name"),
        ({"text": "fine", "label": [1, 2]}, "is not a class name"),
    ],
)
def test_json_values_that_are_not_text_or_names_are_refused(tmp_path, row, problem):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row))
    with pytest.raises(InputError, match=problem):
        collect([str(path)], "text", labels="required")


def test_whole_numbers_are_class_names_and_deep_nesting_is_refused(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"text": "seven", "label": 7}))
    assert collect([str(path)], "text", labels="required").counts() == {"7": 1}
    path.write_text('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InputError, match="nested too deeply"):
        collect([str(path)], "text", labels="required")


def test_a_named_pipe_in_a_class_folder_is_skipped_not_read(tmp_path):
    """Reading a pipe would block forever; the folder's files are read without it."""
    (tmp_path / "notes" / "cat").mkdir(parents=True)
    (tmp_path / "notes" / "cat" / "a.txt").write_text("a cat")
    os.mkfifo(tmp_path / "notes" / "cat" / "pipe.txt")
    batch = collect([str(tmp_path / "notes")], "text", labels="required")
    assert batch.items == ["a cat"]


def test_a_bad_row_is_named_by_its_data_row_and_its_line_in_the_file(tmp_path):
    """Blank rows and a header shift the file's lines; an error gives both, and the samples
    keep their data-row names."""
    path = tmp_path / "notes.csv"
    path.write_text('text,label\n\nfirst,a\n,,\n"two\nlines",b\n,c\n')
    with pytest.raises(InputError, match=r"notes\.csv:3 \(line 7\): empty 'text'"):
        collect([str(path)], "text", labels="required")
    path.write_text('text,label\n\nfirst,a\n"two\nlines",b\n')
    batch = collect([str(path)], "text", labels="required")
    assert [s.rsplit("/", 1)[1] for s in batch.sources] == ["notes.csv:1", "notes.csv:2"]
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "a", "label": "x"}\n\n{"text": 3, "label": "y"}\n')
    with pytest.raises(InputError, match=r"rows\.jsonl:2 \(line 3\): 'text' holds int"):
        collect([str(rows)], "text", labels="required")


def test_labels_and_texts_that_cannot_be_written_as_utf8_are_refused(tmp_path):
    """A lone surrogate (a JSON escape, or a name in another encoding) was learned, then
    broke every print of the model, for good."""
    path = tmp_path / "s.jsonl"
    path.write_text('{"text": "a note", "label": "x\\ud800"}\n')
    with pytest.raises(InputError, match="label is not valid Unicode"):
        collect([str(path)], "text", labels="required")
    path.write_text('{"text": "a \\ud800 note", "label": "x"}\n')
    with pytest.raises(InputError, match="'text' is not valid Unicode"):
        collect([str(path)], "text", labels="required")
    with pytest.raises(InputError, match="--text number 1 is not valid Unicode"):
        collect([], "text", labels="ignored", texts=["caf" + chr(0xDCE9)])
    with pytest.raises(InputError, match="--label: the label is not valid Unicode"):
        collect([], "text", labels="required", texts=["x"], label="b" + chr(0xDCE9) + "d")


@pytest.mark.parametrize("label", ["a\tb", "red\x1b[31m", "a\u2028b", "a\x85b", "a\x00b"])
def test_a_label_is_one_line_without_control_characters(tmp_path, label):
    with pytest.raises(InputError, match="control or line character"):
        collect([], "text", labels="required", texts=["x"], label=label)


@pytest.mark.parametrize(
    "label",
    ["New\xa0York", "10\u202fkg", "\u6771\u3000\u4eac", "\U0001f469\u200d\U0001f4bb", "a\u200fb"],
)
def test_spaces_and_joiners_of_other_scripts_are_text(label):
    """No-break and ideographic spaces, emoji joined by ZWJ, a right-to-left mark."""
    assert collect([], "text", labels="required", texts=["x"], label=label).labels == [label]


def test_a_column_named_twice_is_refused_not_read_as_its_last(tmp_path):
    """'text,label,label' learned each row under the second label column, silently."""
    table = tmp_path / "dup.csv"
    table.write_text("text,label,label\nhello dog,animal,food\n")
    with pytest.raises(InputError, match="names the column 'label' twice"):
        collect([str(table)], "text", labels="required")
    lines = tmp_path / "dup.jsonl"
    lines.write_text('{"text": "hello dog", "label": "animal", "label": "tool"}\n')
    with pytest.raises(InputError, match="names the column 'label' twice \\(line 1\\)"):
        collect([str(lines)], "text", labels="required")
    # a column or key repeated that is not read stays as it was: accepted
    table.write_text("text,label,note,note\nhello dog,animal,a,b\n")
    lines.write_text('{"text": "hello dog", "label": "animal", "meta": {"k": 1, "k": 2}}\n')
    for path in (table, lines):
        assert collect([str(path)], "text", labels="required").labels == ["animal"]
    lines.write_text('{"text": "x", "label": "a", "n": ' + "9" * 5000 + "}\n")
    with pytest.raises(InputError, match="line 1 cannot be read"):
        collect([str(lines)], "text", labels="required")
    table.write_text("text,label\nhello dog,animal\n")
    with pytest.raises(InputError, match="both name 'text'"):
        collect([str(table)], "text", labels="required", label_column="text")


def test_a_pipe_given_as_an_input_is_refused_not_read(tmp_path):
    """Reading it would block for ever (folders already skip such files)."""
    pipe = tmp_path / "p.png"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="not a regular file"):
        collect([str(pipe)], "image", labels="ignored")
    table = tmp_path / "t.csv"
    os.mkfifo(table)
    with pytest.raises(InputError, match="not a regular file"):
        collect([str(table)], "text", labels="ignored")


def test_an_image_too_large_to_decode_is_one_line(tmp_path):
    require("PIL", "pip install pillow")
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("1", (20000, 10000)).save(path)  # 200 megapixels: past Pillow's bomb limit
    with pytest.raises(InputError, match="too large to read as an image .*; downscale it or"):
        collect([str(path)], "image", labels="ignored")


def test_a_large_image_pillow_reads_is_learned_without_its_warning(tmp_path):
    """Between Pillow's pixel limit and twice it, Pillow reads the image but warns in two lines
    each time it is opened (twice per file in a learn): read quietly."""
    require("PIL", "pip install pillow")
    import warnings

    from PIL import Image

    from forgetless.encoders.images import to_rgb

    path = tmp_path / "large.png"
    Image.new("1", (12000, 8000)).save(path)  # 96 megapixels: over the limit, under twice it
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        batch = collect([str(path)], "image", labels="ignored")
        assert max(to_rgb(batch.items[0], max_side=224).size) < 1000  # read, shrunk


def test_a_link_to_nothing_is_named_as_such(tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match="link to nothing"):
        collect([str(loop)], "image", labels="ignored")


def test_a_missing_input_says_what_the_command_takes(tmp_path):
    """learn needs labels (class folders, a table's label column, or --label); predict and
    forget read files, folders or tables, labelled or not."""
    missing = str(tmp_path / "nosuch")
    with pytest.raises(InputError, match="nosuch does not exist; give a folder of class subf"):
        collect([missing], "image", labels="required")
    for labels in ("ignored", "optional"):
        with pytest.raises(InputError, match=r"give files, a folder of them, or a \.csv/\.tsv"):
            collect([missing], "image", labels=labels)


def test_a_row_with_more_fields_than_the_header_is_refused_not_relabelled(tmp_path):
    """'a kettle, for boiling water,tool' was learned as 'a kettle' under the class 'for boiling
    water', the real label dropped."""
    table = tmp_path / "r.csv"
    table.write_text("text,label\nhello dog,animal\na kettle, for boiling water,tool\n")
    with pytest.raises(InputError, match=r"r\.csv line 3 has 3 fields but the header has 2; .*"):
        collect([str(table)], "text", labels="required")
    table.write_text('text,label\nhello dog,animal,\n"a kettle, for boiling water",tool\n')
    assert collect([str(table)], "text", labels="required").labels == ["animal", "tool"]
    tabs = tmp_path / "r.tsv"
    tabs.write_text("text\tlabel\nhello\tdog\tanimal\n")
    with pytest.raises(InputError, match="holds a tab in double quotes"):
        collect([str(tabs)], "text", labels="required")


def test_a_label_in_either_unicode_form_is_one_class(tmp_path):
    """macOS names folders in decomposed form (e + combining accent): the same name typed on
    the command line is the same class, not a second one that prints alike."""
    decomposed, composed = "cafe\u0301", "caf\u00e9"
    (tmp_path / "notes" / decomposed).mkdir(parents=True)
    (tmp_path / "notes" / decomposed / "a.txt").write_text("an espresso bar")
    table = tmp_path / "t.csv"
    table.write_text(f"text,label\nlatte,{decomposed}\n")
    for batch in (
        collect([str(tmp_path / "notes")], "text", labels="required"),
        collect([str(table)], "text", labels="required"),
        collect([], "text", labels="required", texts=["x"], label=decomposed),
    ):
        assert batch.labels == [composed]


def test_a_quote_that_never_closes_is_named_with_its_line(tmp_path):
    # the rest of the file became one field, and the error said "empty label"
    path = tmp_path / "t.csv"
    path.write_text('text,label\nhello,greet\n"bye now,leave\nsee you,leave\n')
    with pytest.raises(InputError, match='t.csv line 3: a double quote \\(\\"\\) opens a text'):
        read_table(path)
    path.write_text('text,label\n12" ruler,tool\n"a ""quoted"" word",x\n')  # as spreadsheets write
    rows, _, _ = read_table(path)
    assert [r["text"] for r in rows] == ['12" ruler', 'a "quoted" word']


def test_a_header_name_with_spaces_around_it_is_named_as_such(tmp_path):
    """A header "text, label": the column is " label", and the error said there was no
    'label' among "text, label"."""
    path = tmp_path / "t.csv"
    path.write_text("text, label\nan owl hooted, animal\n")
    with pytest.raises(InputError, match=r"names its column ' label', with spaces around 'label'"):
        collect([str(path)], "text", labels="required")
    path.write_text("text,topic \nan owl hooted,animal\n")
    with pytest.raises(InputError, match=r"its columns: text, 'topic '\)"):
        collect([str(path)], "text", labels="required")


def test_a_long_text_in_a_csv_is_read_as_in_jsonl(tmp_path):
    """csv's 128 KiB field limit refused a text that JSON lines and .txt files take."""
    import csv

    long = "word " * 60_000
    path = tmp_path / "t.csv"
    path.write_text(f'text,label\n"{long}",essay\nshort,note\n')
    limit = csv.field_size_limit()
    batch = collect([str(path)], "text", labels="required")
    assert batch.items == [long.strip(), "short"] and csv.field_size_limit() == limit


def test_an_image_of_values_that_are_not_finite_is_refused_by_name(tmp_path):
    pil = require("PIL.Image", "pip install pillow")
    import numpy as np

    folder = tmp_path / "imgs" / "a"
    folder.mkdir(parents=True)
    values = np.full((8, 8), np.nan, dtype=np.float32)
    pil.fromarray(values, mode="F").save(folder / "nan.tiff")
    with pytest.raises(InputError, match=r"nan.tiff holds pixel values that are not finite"):
        collect([str(tmp_path / "imgs")], "image", labels="required")


def test_a_readme_beside_class_folders_of_images_does_not_make_them_mixed(tmp_path):
    """A README.txt beside class folders of images made the first learn refuse them as "both
    images and texts" (teach them to two models), though the README is no sample."""
    pil = require("PIL.Image", "pip install pillow")
    import numpy as np

    from forgetless.teach_inputs import guess_modality

    for name in ("red", "blue"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        pil.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "photos" / name / "a.png")
    (tmp_path / "photos" / "README.txt").write_text("credits")
    assert guess_modality([str(tmp_path / "photos")]) == "image"
    # with --label every file under the folder is a sample: a README in a subfolder beside
    # loose images learned the folder as one text, dropping the images
    loose = tmp_path / "loose"
    (loose / "credits").mkdir(parents=True)
    for i in range(3):
        pil.fromarray(np.zeros((4, 4, 3), np.uint8)).save(loose / f"{i}.png")
    (loose / "credits" / "README.txt").write_text("credits")
    with pytest.raises(InputError, match="both images and texts"):
        guess_modality([str(loose)], by_class=False)
    (tmp_path / "photos" / "red" / "note.txt").write_text("a note")  # texts in a class folder
    with pytest.raises(InputError, match="both images and texts.*--encoder"):
        guess_modality([str(tmp_path / "photos")])


def _reachable_files(root):
    """Oracle for walk_files: (real folder, name) of every file in every real folder reachable
    from ``root`` through folders and links to folders, each real folder once."""
    found, seen, queue = set(), set(), [os.path.realpath(root)]
    while queue:
        here = queue.pop()
        if here in seen:
            continue
        seen.add(here)
        for entry in os.scandir(here):
            if entry.is_dir():
                queue.append(os.path.realpath(entry.path))
            elif entry.is_file():
                found.add((here, entry.name))
    return found


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    folders=st.lists(st.sampled_from(["a", "b", "a/c", "b/d", "a/c/e"]), max_size=5),
    files=st.lists(st.sampled_from(["", "a", "b", "a/c", "b/d"]), max_size=6),
    links=st.lists(
        st.tuples(
            st.sampled_from(["", "a", "b", "a/c"]),  # where the link is
            st.sampled_from(["", "a", "b", "a/c", "b/d", "../outside", "../outside/in"]),
        ),
        max_size=4,
    ),
)
def test_walk_files_reads_every_reachable_folder_once(folders, files, links):
    """Any tree of folders and links (loops, links up the tree, two links to one folder,
    links out of the tree): every file of every reachable folder comes back exactly once, it
    ends, and each link it did not follow leads where the folder was read."""
    import tempfile
    from pathlib import Path

    from forgetless.teach_inputs import walk_files

    with tempfile.TemporaryDirectory() as tmp:
        root, outside = Path(tmp, "root"), Path(tmp, "outside")
        for folder in ["", "a", "b", *folders]:
            (root / folder).mkdir(parents=True, exist_ok=True)
        (outside / "in").mkdir(parents=True)
        (outside / "o.txt").write_text("o")
        (outside / "in" / "i.txt").write_text("i")
        for n, folder in enumerate(files):
            if (root / folder).is_dir():
                (root / folder / f"f{n}.txt").write_text(str(n))
        for n, (where, target) in enumerate(links):
            if (root / where).is_dir() and (root / target).is_dir():
                (root / where / f"link{n}").symlink_to(root / target)
        found, aliases = walk_files(root)
        keys = [(os.path.realpath(p.parent), p.name) for p in found]
        assert len(keys) == len(set(keys)) and set(keys) == _reachable_files(root)
        assert found == sorted(found) and all(p.is_relative_to(root) for p in found)
        for link, first in aliases:
            assert os.path.realpath(link) == os.path.realpath(first)
