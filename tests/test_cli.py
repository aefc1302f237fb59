"""The command line on user mistakes: one line on stderr naming the problem and where it is,
exit code 2, and nothing encoded or trained (so no run is lost to a typo found at the end)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import forgetless.cache
import forgetless.experiment
from forgetless.cli import main

GOOD = 'dataset = "digits"\nmethods = ["ncm"]\nseeds = [0]\n'
CI = '[scenario]\nkind = "class-incremental"\n'
# name -> (config file, its text or None for no file, words the error line must hold)
CASES = {
    "malformed-toml": ("bad.toml", GOOD + "[scenario\nkind = 1\n", ["not valid TOML", "line 4"]),
    "malformed-yaml": ("bad.yaml", "dataset: digits\nscenario: {kind: [\n", ["not valid YAML"]),
    "yaml-list": ("list.yaml", "- dataset\n- digits\n", ["mapping", "list"]),
    "yaml-key-twice": (  # PyYAML kept the last silently: the run took seeds [2]
        "twice.yaml",
        "dataset: digits\nseeds: [0, 1]\nmethods: [ncm]\nseeds: [2]\n",
        ["not valid YAML", "'seeds' is given twice", "line 4"],
    ),
    "image-size-too-small": (  # it passed, and the encoder failed after the data loaded
        "small.toml",
        GOOD + 'encoder = "efficientnet-lite0"\nencoder_options = {image_size = 5}\n',
        ["encoder_options.image_size = 5", "[32, 1024]"],
    ),
    "raw-size-too-large": (  # 4 GB of pixels per batch, found only once loaded
        "large.toml",
        GOOD + "encoder_options = {size = 2000}\n",
        ["encoder_options.size = 2000", "[4, 64]"],
    ),
    "scenario-key": (
        "scenario.toml",
        GOOD + CI + "increment = 2\nincrememt = 3\n",
        ["scenario.incrememt", "valid keys", "increment"],
    ),
    "learner-key": (
        "learner.toml",
        GOOD + "[learner]\nn_componets = 300\n",
        ["learner.n_componets", "valid keys", "n_components"],
    ),
    "sgd-key": ("sgd.toml", GOOD + "[sgd]\nepoch = 3\n", ["sgd.epoch", "valid keys", "epochs"]),
    "missing-file": ("missing.toml", None, ["no such config file"]),
    "json-suffix": ("run.json", '{"dataset": "digits"}', [".json", ".toml"]),
    "increment-0": ("inc0.toml", GOOD + CI + "increment = 0\n", ["scenario.increment", ">= 1"]),
    "increment-negative": (
        "incm2.toml",
        GOOD + CI + "increment = -2\n",
        ["scenario.increment = -2", ">= 1"],
    ),
    "initial-too-large": (
        "initial.toml",
        GOOD + CI + "initial = 20\nincrement = 2\n",
        ["scenario.initial = 20", "10 classes"],
    ),
    "seeds-not-a-list": (
        "seeds.toml",
        'dataset = "digits"\nseeds = "abc"\n',
        ['seeds = "abc"', "list of integers"],
    ),
    "n-components-negative": (
        "ncomp.toml",
        GOOD + "[learner]\nn_components = -5\n",
        ["n_components", "-5"],
    ),
    "output-is-a-file": ("out.toml", GOOD + 'output = "{out}"\n', ["output", "existing file"]),
    # a few hundred bytes of aliases of aliases: billions of values once walked (gigabytes)
    "yaml-alias-bomb": (
        "bomb.yaml",
        "dataset: digits\nmethods: [&a0 [x, x, x, x, x, x, x, x, x]"
        + "".join(f", &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9))
        + "]\n",
        ["expands to more than 100,000 values"],
    ),
    "toml-nested-too-deep": (  # RecursionError tracebacks, in the parser or in the messages
        "deep.toml",
        GOOD + "[learner]\nalpha = " + "[" * 900 + "]" * 900 + "\n",
        ["nests deeper than can be read"],
    ),
    "encoder-option-type": (  # a truthy string: the raw encoder read colour, silently
        "color.toml",
        GOOD + 'encoder = "raw"\nencoder_options = { color = "false" }\n',
        ['encoder_options.color = "false" must be true or false'],
    ),
    "transforms-of-lists": (  # a TypeError traceback in the data loader
        "domains.toml",
        GOOD + '[scenario]\nkind = "domain-incremental"\ntransforms = [["original"]]\n',
        ["unknown transforms [['original']]"],
    ),
    "fourier-gamma-beyond-the-layer": (
        "gamma.toml",
        GOOD + '[learner]\nprojection = "fourier"\ngamma = 1e300\n',
        ["learner.gamma", "1e+100"],
    ),
    "subset-too-large": (
        "subset.toml",
        GOOD + "[subset]\ntrain = 1000000\n",
        ["subset.train = 1000000", "1347 train rows"],
    ),
    "subset-below-one-per-class": (
        "few.toml",
        GOOD + "[subset]\ntest = 3\n",
        ["subset.test = 3", "at least one per class"],
    ),
    "transforms-twice": (
        "twice.toml",
        GOOD + '[scenario]\nkind = "domain-incremental"\ntransforms = ["original", "original"]\n',
        ["scenario.domains", "'original' more than once"],
    ),
    "step-without-test-rows": (
        "tiny.toml",
        GOOD + "[subset]\ntrain = 200\ntest = 10\n"
        '[scenario]\nkind = "domain-incremental"\n'
        'transforms = ["original", "rotate90", "invert", "noise", "flip", "blur"]\n',
        ["step 4 of 6", "no test rows"],
    ),
}


@pytest.fixture
def no_work(monkeypatch):
    """Encoding, training or (with ``run=True``) the run itself fail the test if reached."""

    def forbid(what):
        def fail(*args, **kwargs):
            raise AssertionError(f"{what} ran for a bad config")

        return fail

    monkeypatch.setattr(forgetless.cache, "dataset_features", forbid("encoding"))
    monkeypatch.setattr(forgetless.experiment, "_run_method", forbid("training"))
    return lambda: monkeypatch.setattr(forgetless.experiment, "run", forbid("the run"))


def one_error_line(capsys, command: str = "run") -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"forgetless {command}: error: ")
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_bad_config_is_one_line_and_exit_2_before_any_work(case, tmp_path, capsys, no_work):
    name, text, words = CASES[case]
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    path = tmp_path / name
    if text is not None:
        path.write_text(text.replace("{out}", str(afile)))
    if case == "output-is-a-file":
        no_work()  # nothing at all may run: the results would be lost at the end
    argv = ["run", "--config", str(path), "--quiet"]
    if case != "output-is-a-file":
        argv += ["--output", str(tmp_path / "run")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert str(path) in line  # the file ...
    for word in words:  # ... and the key, what is wrong and what is valid
        assert word in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--increment", "0"], ["--increment: ", "scenario.increment = 0"]),
        (["--n-components", "-5"], ["--n-components: ", "n_components"]),
        (["--seeds", "-1"], ["--seeds: ", "seeds = [-1]"]),
        (["--methods", "ewc"], ["--methods: ", "unknown methods ['ewc']; known: forgetless"]),
        (["--scenario", "few-shot"], ["--scenario: ", "few-shot", "base"]),
    ],
)
def test_a_bad_flag_is_named_instead_of_the_file(flags, words, tmp_path, capsys, no_work):
    path = tmp_path / "good.toml"
    path.write_text(GOOD + CI + "increment = 2\n")
    argv = ["run", "--config", str(path), "--output", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert str(path) not in line
    for word in words:
        assert word in line


@pytest.mark.parametrize(
    "argv, command, words",
    [
        (["learn", "pets.model", "photos", "--image-sise", "112"], "learn",
         ["unrecognized arguments: --image-sise 112; did you mean --image-size?"]),
        (["predict", "pets.model", "photos", "--topk", "2"], "predict",
         ["--topk 2; did you mean --top-k?"]),
        (["run", "--incremnt", "5"], "run", ["did you mean --increment?"]),
        (["cache", "clear", "--yse"], "cache clear", ["--yse; did you mean --yes?"]),
        (["predict", "pets.model", "--text", "hi", "more.csv"], "predict",
         ["unrecognized arguments: more.csv; give the INPUT before the options"]),
        (["predict", "pets.model", "photos", "--format", "xml"], "predict",
         ["argument --format: invalid choice: 'xml'"]),
        (["forget", "pets.model", "--class"], "forget",
         ["argument --class: expected at least one argument"]),
    ],
)  # fmt: skip
def test_a_misspelt_flag_or_bad_value_is_one_line_naming_the_command(
    argv, command, words, tmp_path, capsys, no_work, monkeypatch
) -> None:
    # argparse printed the usage block first, and named neither the command nor the flag meant
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line = one_error_line(capsys, command)
    assert line.endswith(f"(see forgetless {command} --help)")
    for word in words:
        assert word in line
    assert not list(tmp_path.iterdir())  # nothing written


class Reached(Exception):
    """The run was reached: validation let the config through."""


def test_a_flag_overrides_a_bad_value_in_the_file(tmp_path, monkeypatch):
    path = tmp_path / "inc0.toml"
    path.write_text(GOOD + CI + "increment = 0\n")

    def reached(config):
        raise Reached(config.scenario["increment"])

    monkeypatch.setattr(forgetless.experiment, "run", reached)
    with pytest.raises(Reached, match="5"):
        main(["run", "--config", str(path), "--increment", "5", "--output", str(tmp_path / "r")])


def test_the_scenario_flag_keeps_the_files_table_of_its_kind(tmp_path, monkeypatch):
    """--scenario class-incremental on a file with increment = 2 silently ran one step of
    all classes: the file's table was replaced by the bare kind."""
    path = tmp_path / "inc2.toml"
    path.write_text(GOOD + CI + "increment = 2\n")

    def reached(config):
        raise Reached(config.scenario)

    monkeypatch.setattr(forgetless.experiment, "run", reached)
    out = str(tmp_path / "r")
    with pytest.raises(Reached, match="'increment': 2"):
        main(["run", "--config", str(path), "--scenario", "class-incremental", "--output", out])
    with pytest.raises(Reached, match="^{'kind': 'domain-incremental'}$"):  # other keys
        main(["run", "--config", str(path), "--scenario", "domain-incremental", "--output", out])


def test_the_scenario_flag_completes_a_table_that_names_no_kind(tmp_path, monkeypatch, capsys):
    """A [scenario] table without kind, given its kind by --scenario, kept its keys out (one
    step of all classes instead of steps of 5); a file value that is no table, under a flag,
    is one line naming the file (it was a traceback)."""
    path = tmp_path / "nokind.toml"
    path.write_text(GOOD + "[scenario]\nincrement = 5\n")

    def reached(config):
        raise Reached(config.scenario)

    monkeypatch.setattr(forgetless.experiment, "run", reached)
    out = str(tmp_path / "r")
    with pytest.raises(Reached, match="'increment': 5"):
        main(["run", "--config", str(path), "--scenario", "class-incremental", "--output", out])
    for text, flag, problem in (
        ('scenario = "class-incremental"\n', ["--scenario", "few-shot"], "scenario = "),
        ('first_session_adaptation = "yes"\n', ["--adapt"], "first_session_adaptation = "),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(text + GOOD)
        assert main(["run", "--config", str(bad), *flag, "--output", out]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"forgetless run: error: {bad}: {problem}"), err
        assert "must be a table" in err and "\n" not in err


def test_demo_runs_configs_demo_digits(tmp_path, monkeypatch):
    """``forgetless demo`` is configs/demo-digits.toml (1,000 units keep it quick), whatever
    width a run from flags alone takes."""
    from pathlib import Path

    import tomllib

    def reached(config):
        raise Reached(config)

    monkeypatch.setattr(forgetless.experiment, "run", reached)
    with pytest.raises(Reached) as got:
        main(["demo", "--output", str(tmp_path / "d")])
    config = got.value.args[0]
    demo = Path(__file__).parents[1] / "configs" / "demo-digits.toml"
    shipped = tomllib.loads(demo.read_text())
    assert config.learner == shipped["learner"] == {"n_components": 1000}
    assert (config.dataset, config.encoder, config.methods) == (
        shipped["dataset"], shipped["encoder"], shipped["methods"],
    )  # fmt: skip


def test_demo_with_an_output_file_runs_nothing(tmp_path, capsys, no_work):
    no_work()
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["demo", "--output", str(afile)]) == 2
    assert "--output: " in one_error_line(capsys, "demo")


def test_an_empty_output_is_refused_not_the_current_directory(tmp_path, capsys, no_work):
    """An unset shell variable ($OUTDIR) gives --output "": the run would overwrite the
    current directory's files."""
    no_work()
    assert main(["demo", "--output", ""]) == 2
    assert "output is empty; name a directory" in one_error_line(capsys, "demo")


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[scenario\n")
    proc = subprocess.run(
        [sys.executable, "-m", "forgetless.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"forgetless run: error: {path}: not valid TOML")


def test_output_cut_short_by_its_reader_stops_quietly(tmp_path):
    """`forgetless cache list | head -c 0`: the reader is gone before the first line; the
    command stops without a traceback (it printed BrokenPipeError's)."""
    import shlex

    (tmp_path / "cache").mkdir()
    command = f"{shlex.quote(sys.executable)} -m forgetless.cli cache list --dir " + shlex.quote(
        str(tmp_path / "cache")
    )
    proc = subprocess.run(
        ["sh", "-c", f"sleep 0.2 | {command} | head -c 0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr


def test_report_on_a_missing_or_broken_run_dir(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope" in one_error_line(capsys, "report")
    (tmp_path / "results.json").write_text("{")
    assert main(["report", str(tmp_path)]) == 2
    assert "results.json is not valid JSON" in one_error_line(capsys, "report")


@pytest.mark.parametrize("action", [["list"], ["clear", "--yes"]])
def test_cache_dir_that_is_a_file(action, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["cache", "--dir", str(afile), *action]) == 2
    assert "is a file" in one_error_line(capsys, "cache")
    assert afile.read_text() == "keep me"


def test_a_cache_folder_from_the_environment_that_is_a_file(tmp_path, monkeypatch, capsys):
    """$FORGETLESS_CACHE_DIR naming a file: `run` ended in a NotADirectoryError traceback
    after loading the data, and `cache list` showed an empty cache."""
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    monkeypatch.setenv("FORGETLESS_CACHE_DIR", str(afile))
    assert main(["cache", "list"]) == 2
    assert "FORGETLESS_CACHE_DIR) is a file" in one_error_line(capsys, "cache")
    path = tmp_path / "run.toml"
    path.write_text(GOOD)
    assert main(["run", "--config", str(path), "--output", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys)  # the environment's folder, not blamed on the file
    assert f"$FORGETLESS_CACHE_DIR: {afile} is a file" in line and str(path) not in line
    path.write_text(GOOD + f'cache_dir = "{afile}/sub"\n')
    assert main(["run", "--config", str(path), "--output", str(tmp_path / "r")]) == 2
    assert "lies under" in one_error_line(capsys)
    assert afile.read_text() == "keep me"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_shows_a_run_example(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "forgetless run --config configs/demo-digits.toml" in capsys.readouterr().out


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """results.json of a real run: digits, NCM, one seed, classes two at a time."""
    folder = tmp_path_factory.mktemp("run")
    config = folder / "run.toml"
    settings = f'progress = false\noutput = "{folder}/out"\n'
    config.write_text(settings + GOOD + CI + "increment = 2\n")
    assert main(["run", "--config", str(config)]) == 0
    return json.loads((folder / "out" / "results.json").read_text())


def test_report_escapes_every_value_of_a_hand_edited_results_file(small_run, tmp_path, capsys):
    """Values a page shows come from results.json, which a user may edit or receive: none
    may add markup to report.html, put '$' maths in a plot, or name a file outside."""
    results = json.loads(json.dumps(small_run))
    results["methods"]['x" onerror="alert(1)/../../y $\\frac$'] = results["methods"].pop("ncm")
    results["dataset"]["n_train"] = "<script>alert(2)</script>"
    results["encoder"]["dim"] = "<b>3</b>"
    run = tmp_path / "deep" / "run"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(results))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "<script>" not in page and "<b>3</b>" not in page and 'onerror="' not in page
    assert [p.name for p in tmp_path.iterdir()] == ["deep"]  # nothing written outside
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["run"]
    assert any(p.name.startswith("accuracy_matrix_x_") for p in run.iterdir())


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: [1, 2],
        lambda r: {**r, "methods": {}},
        lambda r: {**r, "scenarios": {}},
        lambda r: {**r, "dataset": {**r["dataset"], "classes": 7}},
        lambda r: {**r, "methods": {"ncm": {**r["methods"]["ncm"], "summary": "oops"}}},
        lambda r: {**r, "methods": {**r["methods"], "lda": {**r["methods"]["ncm"], "seeds": {}}}},
    ],
    ids=[
        "a-list", "no-methods", "no-scenarios", "classes-a-number", "summary-a-string",
        "a-method-without-seeds",
    ],
)  # fmt: skip
def test_report_on_a_malformed_results_file_is_one_line(small_run, tmp_path, capsys, edit):
    """... and the report built before from the good file is left as it was."""
    (tmp_path / "results.json").write_text(json.dumps(small_run))
    assert main(["report", str(tmp_path)]) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "results.json").write_text(json.dumps(edit(json.loads(json.dumps(small_run)))))
    assert main(["report", str(tmp_path)]) == 2
    line = one_error_line(capsys, "report")
    assert "results.json" in line
    edited = json.loads((tmp_path / "results.json").read_text())
    if isinstance(edited, dict) and "lda" in edited.get("methods", {}):
        assert "method 'lda' has no seed's results" in line  # an IndexError's text before
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "results.json"}
    assert after == {name: data for name, data in before.items() if name != "results.json"}


def test_a_class_with_test_rows_but_no_training_rows_is_refused(tmp_path, capsys, no_work):
    """Its test rows were silently left out of every accuracy."""
    import numpy as np

    x = np.random.default_rng(0).normal(size=(40, 5))
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(40) % 3, x_test=x[:8],
             y_test=np.arange(8) % 4)  # fmt: skip
    path = tmp_path / "run.toml"
    path.write_text(f'dataset = "arrays"\nencoder = "raw"\nmethods = ["ncm"]\n'
                    f'[dataset_options]\npath = "{tmp_path / "d.npz"}"\n')  # fmt: skip
    assert main(["run", "--config", str(path), "--output", str(tmp_path / "r")]) == 2
    assert "class '3' has test rows but no training rows" in one_error_line(capsys)


def test_repeated_list_flags_keep_every_value(tmp_path, monkeypatch):
    """`--seeds 0 --seeds 1` ran seed 1 only (the last flag won); the demo keeps 0 1 2 unless
    told otherwise."""

    def reached(config):
        raise Reached(config)

    monkeypatch.setattr(forgetless.experiment, "run", reached)
    argv = ["run", "--dataset", "digits", "--encoder", "raw", "--output", str(tmp_path / "r")]
    with pytest.raises(Reached) as got:
        main([*argv, "--seeds", "0", "--seeds", "1", "--methods", "ncm", "--methods", "lda"])
    assert got.value.args[0].seeds == [0, 1]
    assert got.value.args[0].methods == ["ncm", "lda"]
    for extra, seeds in (([], [0, 1, 2]), (["--seeds", "4", "--seeds", "5"], [4, 5])):
        with pytest.raises(Reached) as got:
            main(["demo", "--output", str(tmp_path / "d"), *extra])
        assert got.value.args[0].seeds == seeds


def test_a_report_without_matplotlib_says_what_to_install(small_run, tmp_path, capsys, monkeypatch):
    # the files line listed no PNG and said nothing of why
    (tmp_path / "results.json").write_text(json.dumps(small_run))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'no plots: they need matplotlib, pip install -e ".[report]"' in out
    assert not list(tmp_path.glob("*.png"))


def test_arrays_without_their_data_is_one_line_before_any_work(tmp_path, capsys, no_work):
    """`--dataset arrays` with no options ended in the loader's traceback, exit 1."""
    argv = ["run", "--dataset", "arrays", "--encoder", "raw", "--output", str(tmp_path / "r")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert 'dataset "arrays" needs its data' in line and "--dataset-option path=" in line


def test_dataset_options_from_the_command_line(tmp_path, capsys):
    """`--dataset-option KEY=VALUE` sets the config's dataset_options (no file needed for a
    user's own arrays); a bad key or a word without '=' is one line naming the flag."""
    import numpy as np
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    data = tmp_path / "digits.npz"
    np.savez(data, x_train=X[:1000], y_train=y[:1000], x_test=X[1000:1400], y_test=y[1000:1400])
    run = ["run", "--dataset", "arrays", "--encoder", "features", "--increment", "5"]
    run += ["--seeds", "0", "--methods", "ncm", "--quiet", "--output", str(tmp_path / "r")]
    assert main([*run, "--dataset-option", f"path={data}"]) == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["config"]["dataset_options"] == {"path": str(data)}
    assert results["dataset"]["n_train"] == 1000
    assert "replacing" not in capsys.readouterr().out
    (tmp_path / "r" / "accuracy_matrix_lda.png").write_bytes(b"an earlier run's plot")
    (tmp_path / "r" / "mine.png").write_bytes(b"the user's")
    assert main([*run, "--dataset-option", f"path={data}"]) == 0  # the same output again
    assert "(replacing the run that was there)" in capsys.readouterr().out
    assert not (tmp_path / "r" / "accuracy_matrix_lda.png").exists()  # no lda in this run
    assert (tmp_path / "r" / "mine.png").exists()
    assert main([*run, "--dataset-option", "pth=x.npz"]) == 2
    assert "--dataset-option: unknown key dataset_options.pth" in one_error_line(capsys)
    assert main([*run, "--dataset-option", "path"]) == 2
    assert "write KEY=VALUE" in one_error_line(capsys)
    twice = ["--dataset-option", f"path={data}", "--dataset-option", "path=other.npz"]
    assert main([*run, *twice]) == 2  # the last one won, silently
    assert "gives path twice" in one_error_line(capsys)
    numbered = tmp_path / "2024"  # a file named like a number stays a path
    numbered.write_bytes(data.read_bytes())
    assert main([*run, "--dataset-option", f"path={numbered}"]) == 0
    capsys.readouterr()
    assert main([*run, "--dataset-option", "path=2024"]) == 2  # (not read as the number 2024)
    assert "2024" in one_error_line(capsys)


def test_a_dataset_option_of_the_wrong_type_is_named(tmp_path, capsys, no_work):
    """`path = 3` in a config reached the loader and ended in a TypeError traceback."""
    config = tmp_path / "c.toml"
    config.write_text('dataset = "arrays"\ndataset_options = { path = 3 }\nencoder = "raw"\n')
    assert main(["run", "--config", str(config), "--output", str(tmp_path / "r")]) == 2
    assert "dataset_options.path = 3 must be a path" in one_error_line(capsys)


def test_python_dash_m_forgetless_is_the_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "forgetless", "run", "--dataset", "arrays", "--encoder", "raw"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith('forgetless run: error: dataset "arrays" needs its data')


def test_a_long_comparison_writes_progress_lines_to_a_log(tmp_path, capsys, monkeypatch):
    """stderr a file (a log, CI): plain progress lines while the methods run (it was silent
    for minutes after encoding); --quiet: none."""
    import forgetless.encoders.base

    monkeypatch.setattr(forgetless.encoders.base, "LOG_QUIET_S", 0.0)  # as if it ran long
    argv = ["run", "--dataset", "digits", "--encoder", "raw", "--methods", "ncm", "lda"]
    argv += ["--seeds", "0", "1", "--output", str(tmp_path / "r")]
    assert main(argv) == 0
    assert "runs: 4/4 run in" in capsys.readouterr().err
    assert main([*argv, "--quiet"]) == 0
    assert "runs:" not in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["dangling link", "results.json a folder"])
def test_an_output_the_run_could_not_write_is_refused_before_the_run(
    kind, tmp_path, capsys, no_work
):
    """A dangling link as --output, or a folder where results.json goes, passed the check:
    the whole run happened, then a traceback, and the results were lost."""
    out = tmp_path / "out"
    if kind == "dangling link":
        out.symlink_to(tmp_path / "nowhere")
    else:
        (out / "results.json").mkdir(parents=True)
    no_work()
    argv = ["run", "--dataset", "digits", "--encoder", "raw", "--output", str(out)]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert (
        "a link to nothing" if kind == "dangling link" else "holds a folder results.json"
    ) in line


def test_an_encoder_that_refuses_its_options_is_one_line(tmp_path, capsys, monkeypatch):
    """An option no table check knows (a device this machine lacks) failed inside the
    encoder with a traceback after the data was loaded."""
    import forgetless.encoders

    def refuses(name, **options):
        raise RuntimeError("Expected one of cpu, cuda, ... device type at start of device string")

    monkeypatch.setattr(forgetless.encoders, "load_encoder", refuses)
    config = tmp_path / "c.toml"
    config.write_text(GOOD + 'encoder = "raw"\nencoder_options = { batch_size = 8 }\n')
    assert main(["run", "--config", str(config), "--output", str(tmp_path / "r")]) == 2
    line = one_error_line(capsys)
    assert 'encoder "raw" cannot be built with encoder_options' in line and "device" in line
    argv = ["run", "--dataset", "digits", "--encoder", "raw", "--quiet"]  # no options given:
    assert main([*argv, "--methods", "ncm", "--output", str(tmp_path / "r")]) == 2
    assert 'encoder "raw" cannot be loaded: Expected' in one_error_line(capsys)  # its files


def test_a_damaged_cache_entry_is_one_line_naming_the_cache(tmp_path, capsys):
    """A folder in place of an entry's manifest ended in a traceback, then in a message about
    model files; the line names the cache and how to empty it."""
    cache = tmp_path / "cache"
    argv = ["run", "--dataset", "digits", "--encoder", "raw", "--methods", "ncm", "--seeds", "0"]
    argv += ["--quiet", "--output", str(tmp_path / "r")]
    config = tmp_path / "c.toml"
    config.write_text(f'cache_dir = "{cache}"\n')
    assert main([*argv, "--config", str(config)]) == 0
    capsys.readouterr()
    for entry in cache.iterdir():
        (entry / "manifest.json").unlink()
        (entry / "manifest.json").mkdir()
    assert main([*argv, "--config", str(config)]) == 2
    line = one_error_line(capsys)
    assert f"the feature cache {cache.resolve()} holds a damaged entry" in line
    assert "forgetless cache clear --dir" in line


def test_the_summary_does_not_depend_on_the_order_the_seeds_are_given(tmp_path, capsys):
    base = ["run", "--dataset", "digits", "--encoder", "raw", "--methods", "ncm", "--quiet"]
    runs = {}
    for name, seeds in (("up", ["0", "1", "2", "3", "4"]), ("down", ["4", "3", "2", "1", "0"])):
        assert main([*base, "--seeds", *seeds, "--output", str(tmp_path / name)]) == 0
        runs[name] = json.loads((tmp_path / name / "results.json").read_text())
    up, down = (runs[k]["methods"]["ncm"]["summary"] for k in ("up", "down"))
    for measured in ("total_seconds", "peak_memory_MiB"):  # timings differ between runs
        up.pop(measured), down.pop(measured)
    assert up == down  # bit for bit: the sums run in seed order


@pytest.mark.parametrize("damage", ["link to /dev/zero", "nested too deeply"])
def test_report_on_a_hostile_results_file_is_one_line(damage, small_run, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    if damage == "link to /dev/zero":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero here")
        (run / "results.json").symlink_to("/dev/zero")  # read to its end, it never ends
    else:
        (run / "results.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["report", str(run)]) == 2
    assert "not a results file" in one_error_line(capsys, "report")
