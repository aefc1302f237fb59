"""The main job end to end: a run on real data, its metrics, its files, its errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from forgetless.cli import main
from forgetless.evaluation.metrics import (
    average_incremental_accuracy,
    backward_transfer,
    forgetting,
    min_accuracy,
    stability_gap,
    worst_case_accuracy,
)
from forgetless.experiment import ConfigError, RunConfig, make_scenarios, run


def test_metrics_on_a_hand_computed_matrix():
    A = np.array([[0.9, np.nan, np.nan], [0.7, 0.8, np.nan], [0.6, 0.5, 0.95]])
    # forgetting: task 0: max(0.9, 0.7) - 0.6 = 0.3; task 1: 0.8 - 0.5 = 0.3
    assert forgetting(A) == pytest.approx(0.3)
    # BWT: (0.6 - 0.9 + 0.5 - 0.8) / 2
    assert backward_transfer(A) == pytest.approx(-0.3)
    assert average_incremental_accuracy([0.9, 0.75, 0.7]) == pytest.approx(0.7833333)
    trace = np.array(
        [
            [0.9, np.nan, np.nan],
            [0.3, 0.1, np.nan],
            [0.7, 0.8, np.nan],
            [0.2, 0.6, 0.4],
            [0.6, 0.5, 0.95],
        ]
    )
    its, ends = np.array([10, 12, 20, 25, 30]), [10, 20, 30]
    # min-ACC after task 2: task 0 fell to 0.2, task 1 to 0.5 after it was learned
    assert min_accuracy(trace, its, ends, 2) == pytest.approx(0.35)
    assert worst_case_accuracy(A, trace, its, ends, 2) == pytest.approx(0.95 / 3 + 2 / 3 * 0.35)
    # gaps: switch 1: 0.9 - 0.3 = 0.6; switch 2: mean(0.7 - 0.2, 0.8 - 0.5) = 0.4
    assert stability_gap(trace, its, ends) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def digits_run():
    config = RunConfig(
        dataset="digits",
        encoder="raw",
        methods=["forgetless", "joint", "ncm", "sgd-finetune", "sgd-replay"],
        learner={"n_components": 1000},
        seeds=[0],
        progress=False,
    )
    return run(config)


def test_analytic_learner_matches_joint_and_sgd_forgets(digits_run):
    methods = digits_run["methods"]
    ours = methods["forgetless"]["summary"]["final_accuracy"]["mean"]
    joint = methods["joint"]["summary"]["final_accuracy"]["mean"]
    assert abs(ours - joint) <= 0.001  # within 0.1 points of the joint upper bound
    assert ours > 0.95
    # Not only at the end: after every step (alpha by GCV) the model is the joint one.
    ours_steps = methods["forgetless"]["seeds"]["0"]["accuracy_matrix"]
    joint_steps = methods["joint"]["seeds"]["0"]["accuracy_matrix"]
    assert ours_steps == joint_steps
    assert methods["forgetless"]["summary"]["forgetting"]["mean"] < 0.02
    sgd = methods["sgd-finetune"]["summary"]
    assert sgd["forgetting"]["mean"] > 0.3  # a real class-incremental scenario
    assert sgd["stability_gap"]["mean"] > 0.1
    assert (
        methods["sgd-replay"]["summary"]["final_accuracy"]["mean"] > sgd["final_accuracy"]["mean"]
    )


def test_results_schema(digits_run):
    seed = digits_run["methods"]["forgetless"]["seeds"]["0"]
    A = seed["accuracy_matrix"]
    assert len(A) == 5 and A[0][1] is None and A[4][4] is not None
    assert len(seed["accuracy_seen"]) == 5 and len(seed["step_seconds"]) == 5
    assert set(seed["per_class_accuracy"]) == {str(c) for c in range(10)}
    steps = digits_run["scenarios"]["0"]["steps"]
    assert [len(s["classes"]) for s in steps] == [2, 2, 2, 2, 2]
    assert digits_run["config"]["dataset"] == "digits"
    json.dumps(digits_run)  # serialisable as is


def test_cli_run_writes_json_csv_png_html(tmp_path):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--dataset",
            "digits",
            "--methods",
            "forgetless",
            "sgd-finetune",
            "--n-components",
            "300",
            "--increment",
            "5",
            "--seeds",
            "0",
            "1",
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]["forgetless"]["seeds"]) == {"0", "1"}
    assert json.loads((out / "config.json").read_text())["seeds"] == [0, 1]
    with open(out / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["forgetless", "sgd-finetune"]
    for name in (
        "accuracy_by_step.png",
        "continual_evaluation.png",
        "accuracy_matrix_forgetless.png",
    ):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "forgetless" in page
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").exists()


def test_config_file_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'dataset = "digits"\nseeds = [3]\nmethods = ["ncm"]\n'
        '[scenario]\nkind = "few-shot"\nbase = 4\nways = 2\nshots = 5\n'
    )
    config = RunConfig.from_file(path)
    assert config.scenario["kind"] == "few-shot" and config.seeds == [3]
    results = run(config)
    assert len(results["methods"]["ncm"]["seeds"]["3"]["accuracy_seen"]) == 4


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(dataset="mnist9"), "unknown dataset 'mnist9'; known: digits"),
        (dict(encoder="resnet9000"), "unknown encoder 'resnet9000'; known: "),
        (dict(methods=["ewc++"]), "unknown methods \\['ewc\\+\\+'\\]; known: forgetless"),
        (
            dict(scenario={"kind": "tasks"}),
            "unknown scenario kind 'tasks'; known: class-incremental",
        ),
    ],
)
def test_bad_config_lists_valid_names(change, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**change).validate()


def test_bad_config_file(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('dataset = "digits"\nmethod = ["ncm"]\n')
    with pytest.raises(ValueError, match="unknown config keys \\['method'\\]"):
        RunConfig.from_file(path)
    assert main(["run", "--dataset", "nope", "--quiet"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(scenario="few-shot"), 'scenario = "few-shot" must be a table'),
        (dict(encoder="timm:"), "unknown encoder 'timm:'"),
        (dict(seeds=[0, 0]), "seeds = \\[0, 0\\] lists 0 twice"),
        (dict(methods=["ncm", "ncm"]), 'lists "ncm" twice'),
        (dict(eval_every=-1), "eval_every = -1 must be an integer >= 0"),
        (
            dict(scenario={"kind": "online-blurry", "blurry": 1.5}),
            "scenario.blurry = 1.5 must be a number in \\[0, 1\\)",
        ),
        (
            dict(scenario={"kind": "few-shot", "base": 4, "ways": 2}),
            '\\[scenario\\] for kind "few-shot" needs shots',
        ),
        (dict(subset={"train": 0}), "subset.train = 0 must be an integer >= 1"),
        (
            dict(dataset_options={"test_fraction": 1.0}),
            "dataset_options.test_fraction = 1.0 must be a number in \\(0, 1\\)",
        ),
        (
            dict(dataset_options={"root": "x"}),
            "unknown key dataset_options.root; valid keys in \\[dataset_options\\] for dataset "
            '"digits": test_fraction, seed',
        ),
        (dict(encoder_options={"sise": 8}), "unknown key encoder_options.sise; .*: size, color"),
        (
            dict(encoder="efficientnet-lite0", encoder_options={"readout": "layers"}),
            'encoder_options.readout = "layers" must be one of "stages", "head"',
        ),
        (
            dict(dataset="wordnet", encoder="minilm", encoder_options={"readout": "stages"}),
            'encoder_options.readout = "stages" must be one of "layers", "last"',
        ),
        (dict(learner={"alpha": -1}), "learner.alpha .*'alpha' parameter .* Got -1"),
        (dict(learner={"projection": "orthogonl"}), "learner.projection .*among .*gaussian"),
        (dict(learner={"random_state": 3}), "learner.random_state is set from seeds"),
        # found only after the data was loaded, as a traceback
        (dict(learner={"device": "tpu"}), "learner.device .*'tpu' is not a torch device"),
        (dict(learner={"n_components": 10**8}), "learner.n_components .*GiB for G"),
        (
            dict(methods=["ranpac"], learner={"n_components": 10**8}),
            "learner.n_components: .*GiB for G",
        ),
        (dict(sgd={"momentum": 1.0}), "sgd.momentum = 1.0 must be a number in \\[0, 1\\)"),
        (dict(seeds=[2**32]), "seeds = \\[4294967296\\] must be a list of integers from 0 to"),
    ],
)
def test_bad_values_name_the_key_and_the_valid_range(change, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**change).validate(output=False)


def test_a_run_from_flags_alone_has_the_learners_own_width():
    """``forgetless run --dataset ... --encoder ...`` without a width: the width
    ``ContinualClassifier()`` has, so raw 28 x 28 pixels get its layer (a width of 1,000 was
    less than twice their 784 values: no layer, 0.5 to 4 points lower)."""
    from forgetless import ContinualClassifier
    from forgetless.layers import resolve_projection

    width = RunConfig().learner["n_components"]
    assert width == ContinualClassifier().n_components == 2000
    assert resolve_projection("auto", 784, width) == "orthogonal"


def test_learner_settings_with_only_peer_methods_are_checked():
    """The peers read learner.n_components only: its value is checked, other keys would be
    ignored and are refused by name."""
    with pytest.raises(ConfigError, match="learner.n_components: .*Got -5"):
        RunConfig(methods=["ranpac"], learner={"n_components": -5}).validate(output=False)
    with pytest.raises(ConfigError, match="learner.n_components: .*Got 'abc'"):
        RunConfig(methods=["ranpac"], learner={"n_components": "abc"}).validate(output=False)
    with pytest.raises(ConfigError, match="learner.alpha = 123 would be ignored: .*ranpac"):
        RunConfig(methods=["ranpac"], learner={"alpha": 123}).validate(output=False)
    RunConfig(methods=["ranpac"], learner={"n_components": 500}).validate(output=False)


def test_learner_settings_the_methods_override_are_errors():
    with pytest.raises(ConfigError, match='learner.head = "lda" would be ignored: .*ncm: "ncm"'):
        RunConfig(methods=["forgetless", "ncm"], learner={"head": "lda"}).validate(output=False)


def test_scenarios_the_labels_cannot_make_are_config_errors():
    y = np.repeat(np.arange(4), 3)
    config = RunConfig(scenario={"kind": "class-incremental", "initial": 5, "increment": 1})
    with pytest.raises(ConfigError, match="scenario.initial = 5 is too large: .* 4 classes"):
        make_scenarios(config, y, y)
    config = RunConfig(scenario={"kind": "few-shot", "base": 2, "ways": 1, "shots": 5})
    with pytest.raises(ConfigError, match="scenario: class . has 3 training samples < 5 shots"):
        make_scenarios(config, y, y)
    config = RunConfig(scenario={"kind": "few-shot", "base": 2, "ways": 3, "shots": 1})
    with pytest.raises(ConfigError, match="scenario.ways = 3 is too large: .* 2 after the 2 base"):
        make_scenarios(config, y, y)
    config = RunConfig(scenario={"kind": "domain-incremental"}, seeds=[0, 1])
    with pytest.raises(ConfigError, match="has no domains"):
        make_scenarios(config, y, y)
    config.scenario = {"kind": "class-incremental", "increment": 2}
    assert sorted(make_scenarios(config, y, y)) == [0, 1]
    config.scenario = {"kind": "class-incremental", "increment": 100}
    with pytest.raises(ConfigError, match="scenario.increment = 100 is too large: .* 4 classes"):
        make_scenarios(config, y, y)
    config.scenario = {"kind": "class-incremental", "increment": 2, "order": [{"a": 1}, {"a": 2}]}
    with pytest.raises(ConfigError, match=r"scenario.order: .*\{'a': 1\} is no class label"):
        make_scenarios(config, y, y)
    # True ran as class 1 and 1.0 as class 1 (recorded as floats); None failed on sorting
    for odd in ([True, False, 2, 3], [0.0, 1.0, 2.0, 3.0], [None, 1, 2, 3]):
        config.scenario["order"] = odd
        with pytest.raises(ConfigError, match=f"{odd[0]!r} is no class label") as caught:
            make_scenarios(config, y, y)
        assert caught.value.key == "scenario.order"


def test_yaml_config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "dataset: digits\nseeds: [3]\nmethods: [ncm]\n"
        "scenario: {kind: few-shot, base: 4, ways: 2, shots: 5}\n"
    )
    config = RunConfig.from_file(path)
    config.validate(output=False)
    assert config.scenario["kind"] == "few-shot" and config.seeds == [3]


def test_online_blurry_run_has_anytime_evaluation():
    config = RunConfig(
        dataset="digits",
        methods=["forgetless", "sgd-finetune"],
        scenario={"kind": "online-blurry", "n_tasks": 5, "blurry": 0.1, "batch_size": 32},
        learner={"n_components": 300, "alpha": 1.0},
        eval_every=5,
        seeds=[0],
        progress=False,
    )
    results = run(config)
    ours = results["methods"]["forgetless"]["seeds"]["0"]
    iterations, ends = ours["trace"]["iterations"], ours["trace"]["task_end"]
    # evaluated every 5 stream batches, not only at the task ends
    assert set(range(5, ends[-1] + 1, 5)) <= set(iterations) and len(iterations) > len(ends)
    assert ours["final_accuracy"] > 0.9


def test_every_task_end_is_an_evaluation_so_min_acc_sees_where_tasks_ended():
    """SGD is evaluated every eval_every iterations; a task ending between two evaluations
    used to be missed, so min-ACC could exceed the accuracy the task was left at. Now each
    task's end is in the trace, min-ACC is at most the final accuracy on earlier tasks, and a
    run of one task leaves forgetting, BWT and the stability gap undefined (blank), not 0."""
    config = RunConfig(
        dataset="digits",
        methods=["forgetless", "sgd-finetune"],
        learner={"n_components": 300, "alpha": 1.0},
        eval_every=7,
        seeds=[0],
        progress=False,
    )
    results = run(config)
    for name in ("forgetless", "sgd-finetune"):
        seed = results["methods"][name]["seeds"]["0"]
        trace = seed["trace"]
        assert set(trace["task_end"]) <= set(trace["iterations"])
        A = np.array(seed["accuracy_matrix"], dtype=float)
        final_on_earlier = np.nanmean(A[-1, :-1])
        assert seed["min_accuracy"] <= final_on_earlier + 1e-12
    single_task = {"kind": "class-incremental", "initial": 0, "increment": 10}
    one = run(
        RunConfig(
            dataset="digits",
            methods=["forgetless"],
            scenario=single_task,
            seeds=[0, 1],
            progress=False,
        )
    )
    seed = one["methods"]["forgetless"]["seeds"]["0"]
    assert seed["forgetting"] is None and seed["backward_transfer"] is None
    assert "forgetting" not in one["methods"]["forgetless"]["summary"]
    from forgetless.evaluation.report import summary_table

    header, rows = summary_table(one)
    assert "forgetting" not in header and "final acc" in header
    assert "±" in rows[0][header.index("final acc")]  # two seeds: mean ± population std


def test_every_shipped_config_is_valid():
    from pathlib import Path

    configs = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))
    assert len(configs) >= 5
    for path in configs:
        RunConfig.from_file(path).validate()


def test_domain_incremental_run_on_transformed_digits():
    config = RunConfig(
        dataset="digits",
        methods=["forgetless", "sgd-finetune"],
        scenario={
            "kind": "domain-incremental",
            "domains": "transforms",
            "transforms": ["original", "rotate90", "invert"],
        },
        learner={"n_components": 500},
        seeds=[0],
        progress=False,
    )
    results = run(config)
    steps = results["scenarios"]["0"]["steps"]
    assert len(steps) == 3 and all(len(s["classes"]) == 10 for s in steps)
    ours = results["methods"]["forgetless"]["summary"]
    sgd = results["methods"]["sgd-finetune"]["summary"]
    assert ours["final_accuracy"]["mean"] > 0.85
    assert ours["forgetting"]["mean"] < sgd["forgetting"]["mean"]


def test_ranpac_method_runs_ranpacs_own_procedure():
    """``ranpac`` in ``forgetless run``: RanPAC's procedure (N(0, 1) unscaled layer, ReLU,
    float32 sums, lambda of lowest MSE on the last fifth of the shuffled current task among
    10^-8..10^8, then solve(G + lambda I, Q)), checked against a direct transcription."""
    from scipy import linalg

    from forgetless.evaluation.peers import RANPAC_LAMBDAS, RanPAC

    config = RunConfig(
        dataset="digits",
        encoder="raw",
        methods=["ranpac", "forgetless"],
        learner={"n_components": 300},
        seeds=[0],
        progress=False,
    )
    results = run(config)
    entry = results["methods"]["ranpac"]["seeds"]["0"]
    assert len(entry["accuracy_seen"]) == 5 and entry["final_accuracy"] > 0.8

    rng = np.random.default_rng(3)
    X = rng.standard_normal((240, 6))
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0)
    model = RanPAC(n_components=50, seed=4, chunk_size=17)
    W_rand = np.random.default_rng(4).standard_normal((6, 50), dtype=np.float32)
    G, Q = np.zeros((50, 50), np.float32), np.zeros((50, 4), np.float32)
    for task, (Xt, yt) in enumerate([(X[y < 2], y[y < 2]), (X[y >= 2], y[y >= 2])]):
        model.partial_fit(Xt, yt)
        order = np.random.default_rng([4, task]).permutation(yt.size)
        H = np.maximum(Xt[order].astype(np.float32) @ W_rand, 0)
        Y = np.eye(4, dtype=np.float32)[yt[order]]
        cut = int(0.8 * yt.size)
        losses = [
            np.mean(
                (
                    H[cut:]
                    @ linalg.solve(H[:cut].T @ H[:cut] + lam * np.eye(50), H[:cut].T @ Y[:cut])
                    - Y[cut:]
                )
                ** 2
            )
            for lam in RANPAC_LAMBDAS
        ]
        G, Q = G + H.T @ H, Q + H.T @ Y
        lam = RANPAC_LAMBDAS[int(np.argmin(losses))]
        assert model.alpha_ == lam
        W = linalg.solve(G + lam * np.eye(50, dtype=np.float32), Q)
        np.testing.assert_allclose(model.coef_, W[:, : model.classes_.size], rtol=2e-3, atol=1e-4)


def test_joint_in_an_online_stream_counts_the_batches_it_saw():
    """The joint upper bound refits once per task on everything seen; in an online-blurry
    stream its trace must still count the stream's batches, as the other methods' do, or
    min-ACC, WC-ACC and the stability gap came out blank (its task ends were all 0)."""
    config = RunConfig(
        dataset="digits",
        methods=["forgetless", "joint"],
        learner={"n_components": 150},
        subset={"train": 400, "test": 200},
        scenario={"kind": "online-blurry", "n_tasks": 3, "blurry": 0.2, "batch_size": 20},
        seeds=[0],
        progress=False,
    )
    results = run(config)
    ours, joint = (results["methods"][m]["seeds"]["0"] for m in ("forgetless", "joint"))
    assert joint["trace"]["task_end"] == ours["trace"]["task_end"]
    assert joint["trace"]["task_end"][0] > 0
    for metric in ("min_accuracy", "worst_case_accuracy", "stability_gap"):
        assert joint[metric] is not None, metric
        assert metric in results["methods"]["joint"]["summary"]


def test_scenarios_refuse_what_would_count_nowhere_or_train_nothing():
    y = np.repeat(np.arange(4), 3)
    domains = (np.repeat(["a", "b"], 6), np.repeat(["a", "b", "c"], 4))
    config = RunConfig(scenario={"kind": "domain-incremental"})
    with pytest.raises(ConfigError, match="domain c has test rows but no training rows"):
        make_scenarios(config, y, y, domains)
    assert len(make_scenarios(config, y, y, (domains[0], domains[0]))[0].steps) == 2
    # a stream too short for its tasks: steps 5 and 6 of 10 would have no training rows
    y = np.repeat(np.arange(10), 2)
    config = RunConfig(scenario={"kind": "online-blurry", "n_tasks": 10, "blurry": 0.75})
    with pytest.raises(ConfigError, match="step 5 of 10 has no training rows"):
        make_scenarios(config, y, y)
    # SGD tunes its learning rate on held-out rows of the first step: one row leaves none
    y = np.array([0, 1, 1, 2, 2])
    scenario = {"kind": "class-incremental", "increment": 1, "order": [0, 1, 2]}
    config = RunConfig(methods=["forgetless", "sgd-finetune"], scenario=scenario)
    with pytest.raises(ConfigError, match="sgd-finetune tunes .* that step has 1; set sgd.lr"):
        make_scenarios(config, y, y)
    config.sgd = {"lr": 0.1}
    assert len(make_scenarios(config, y, y)[0].steps) == 3


def test_sgd_tuning_always_holds_rows_out(monkeypatch):
    """A few rows can draw no held-out row (seed 2 draws none of 3): every learning rate then
    scored NaN and the first one was kept as if tuned. A fifth (at least one) is held out."""
    from forgetless import experiment
    from forgetless.evaluation.baselines import SGDHead

    held_out = []
    score = SGDHead.score
    monkeypatch.setattr(
        SGDHead, "score", lambda self, X, y: held_out.append(len(y)) or score(self, X, y)
    )
    X, y = np.random.default_rng(0).standard_normal((3, 4)), np.array([0, 1, 0])
    experiment._tune_lr({"method": "finetune"}, X, y, seed=2)
    assert held_out and min(held_out) == 1


def test_glyph_style_domains_survive_a_subset():
    """Glyph styles come from the training split's layout (one block of images per font face):
    a subset taken first broke the layout (IndexError); each kept row now keeps its face's
    style."""
    from forgetless.data import stratified_sample
    from forgetless.experiment import _domains, prepare_dataset

    settings = dict(
        dataset="latin-glyphs",
        encoder="raw",
        dataset_options={"max_faces": 40},
        scenario={"kind": "domain-incremental", "domains": "glyph-style"},
    )
    whole = prepare_dataset(RunConfig(**settings))
    part = prepare_dataset(RunConfig(**settings, subset={"train": 620, "test": 124}))
    rows = stratified_sample(whole.train.labels, 620, seed=0)
    assert len(part.train.labels) == len(_domains(part)[0]) == 620
    assert _domains(part)[0].tolist() == _domains(whole)[0][rows].tolist()
    assert len(set(_domains(part)[0])) == 4


def test_a_learner_setting_a_method_replaces_is_reported():
    """learner.alpha applies to forgetless, while forgetless-rls keeps its own alpha = 1.0:
    the run warns, naming the method, and records what each method ran with."""
    config = RunConfig(
        dataset="digits",
        encoder="raw",
        methods=["forgetless", "forgetless-rls", "ncm"],
        learner={"n_components": 100, "alpha": 1000.0},
        subset={"train": 300, "test": 150},
        seeds=[0],
        progress=False,
    )
    with pytest.warns(
        UserWarning,
        match=r"learner.alpha = 1000.0 does not apply to forgetless-rls \(alpha = 1.0\)",
    ):
        results = run(config)
    from forgetless.experiment import method_settings

    stream = RunConfig(scenario={"kind": "online-blurry"}, sgd={"epochs": 5})
    assert method_settings("sgd-finetune", stream)["epochs"] == 1  # one pass over a stream
    settings = {m: e["settings"] for m, e in results["methods"].items()}
    assert settings["forgetless"]["alpha"] == 1000.0 and settings["forgetless-rls"]["alpha"] == 1.0
    assert settings["ncm"] == {"n_components": 100, "alpha": 1000.0, "head": "ncm"}


def test_step_times_leave_the_anytime_evaluations_out(monkeypatch):
    """With eval_every=1 the evaluations inside an online step were timed as training (3.4x
    the time for the same model); now only learning is. A clock that jumps 1,000 s during
    every evaluation of more than one row (a step's refit predicts one) must not show."""
    import time as time_module
    import types

    import forgetless.experiment
    from forgetless import ContinualClassifier

    jumped = []
    clock = types.SimpleNamespace(perf_counter=lambda: time_module.perf_counter() + sum(jumped))
    monkeypatch.setattr(forgetless.experiment, "time", clock)
    predict = ContinualClassifier.predict

    def evaluated(self, X):
        if len(X) > 1:
            jumped.append(1000.0)
        return predict(self, X)

    monkeypatch.setattr(ContinualClassifier, "predict", evaluated)
    config = RunConfig(
        dataset="digits",
        methods=["forgetless"],
        scenario={"kind": "online-blurry", "n_tasks": 3, "blurry": 0.1, "batch_size": 64},
        learner={"n_components": 100, "alpha": 1.0},
        eval_every=1,
        seeds=[0],
        progress=False,
    )
    results = run(config)
    seconds = results["methods"]["forgetless"]["seeds"]["0"]["total_seconds"]
    assert len(jumped) > 10 and 0 < seconds < 1000


def _feature_rows(path):
    """Four classes that feature rows separate perfectly, and no pixel reading does (small
    values around -5 and 0: the raw encoder clipped them to 0..255 and rounded)."""
    rng = np.random.default_rng(0)
    y = np.tile([0, 1, 2, 3], 10)
    X = rng.normal(size=(40, 6)) * 0.01 - 5.0 * (y[:, None] == np.arange(6))
    np.savez(path, x_train=X[:32], y_train=y[:32], x_test=X[32:], y_test=y[32:])
    return path


def test_feature_rows_are_used_as_they_are_and_no_pixel_encoder_reads_them(
    tmp_path, capsys, monkeypatch
):
    """An arrays file of feature rows ran through the raw encoder as pixels (at chance on rows
    that separate the classes perfectly); a text encoder given an image folder encoded the
    files' paths, which hold the class names (100 % on noise)."""
    from forgetless.cache import ENV_VAR

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    data = _feature_rows(tmp_path / "rows.npz")
    common = ["run", "--dataset", "arrays", "--dataset-option", f"path={data}", "--increment",
              "2", "--methods", "ncm", "--seeds", "0", "--quiet"]  # fmt: skip
    code = main([*common, "--encoder", "raw", "--output", str(tmp_path / "raw")])
    err = capsys.readouterr().err
    assert code == 2 and "holds feature rows" in err and "use encoder features" in err
    assert len(err.strip().splitlines()) == 1
    code = main([*common, "--encoder", "features", "--output", str(tmp_path / "rows")])
    assert code == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "rows" / "results.json").read_text())
    assert results["methods"]["ncm"]["seeds"]["0"]["final_accuracy"] == 1.0
    folder = tmp_path / "imgs"
    from PIL import Image

    for split, count in (("train", 6), ("test", 2)):
        for name in ("cat", "dog"):
            (folder / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (8, 8), i * 20).save(folder / split / name / f"{i}.png")
    config = RunConfig(dataset="image-folder", dataset_options={"root": str(folder)},
                       encoder="minilm", output=str(tmp_path / "x"), progress=False)  # fmt: skip
    from forgetless.data import load_dataset
    from forgetless.experiment import _check_modality

    class Text:
        modality = "text"

    with pytest.raises(ConfigError, match='holds images, but encoder "minilm" reads texts'):
        _check_modality(config, load_dataset("image-folder", root=str(folder)), Text())


def test_inputs_the_encoder_cannot_read_are_one_line(tmp_path, capsys, monkeypatch):
    """Images of two sizes through the raw encoder without a size: a traceback."""
    from PIL import Image

    from forgetless.cache import ENV_VAR

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (tmp_path / "imgs" / split / name).mkdir(parents=True)
            for i, side in enumerate((8, 10)):
                Image.new("L", (side, side), i).save(tmp_path / "imgs" / split / name / f"{i}.png")
    argv = ["run", "--dataset", "image-folder", "--dataset-option", f"root={tmp_path / 'imgs'}",
            "--encoder", "raw", "--increment", "1", "--methods", "ncm", "--seeds", "0",
            "--quiet", "--output", str(tmp_path / "r")]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot encode dataset" in err and "images differ in size" in err


def test_guided_layers_that_cannot_be_built_are_config_errors():
    """A guided layer's width beyond its landmarks, and a first batch of one row, passed the
    config check and failed with a traceback after the dataset was encoded."""
    y = np.repeat(np.arange(4), 3)
    config = RunConfig(
        methods=["forgetless-guided"],
        scenario={"kind": "online-blurry", "batch_size": 1, "n_tasks": 2},
        learner={"n_components": 200},
    )
    with pytest.raises(ConfigError, match="first batch it learns, and that batch has 1 row"):
        make_scenarios(config, y, y)
    for learner, words in (
        ({"n_components": 30000}, "needs 30000 landmarks for n_components=30000"),
        ({"n_components": 100, "projection_params": {"n_landmarks": 50}},
         r"n_landmarks \(50\) must be >= n_components \(100\)"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            RunConfig(methods=["forgetless-guided"], learner=learner).validate()


def test_a_guided_layer_too_large_to_build_is_a_config_error(monkeypatch):
    """On an 8 GiB machine, 20,000 landmarks passed the config check (which counted G only)
    and were refused by the learner after the dataset was encoded."""
    import forgetless.learner as learner_module

    monkeypatch.setattr(learner_module, "_physical_memory", lambda: 8 << 30)
    learner = {"n_components": 1000, "projection_params": {"n_landmarks": 20000}}
    with pytest.raises(ConfigError, match="building the guided layer .* fewer landmarks"):
        RunConfig(methods=["forgetless-guided"], learner=learner).validate()


def _recording_slda(monkeypatch, extra=None):
    """Patch Deep SLDA's partial_fit to record, per call, its instance (numbered), its rows and
    whether tracemalloc was tracing; ``extra(self, X, y, tracing)`` runs first."""
    import tracemalloc

    from forgetless.evaluation.peers import SLDA

    calls = []
    learn = SLDA.partial_fit

    def recorded(self, X, y):
        tracing = tracemalloc.is_tracing()
        if not hasattr(self, "number"):  # ids are reused once an instance is gone
            self.number = len({c["model"] for c in calls})
        calls.append({"model": self.number, "rows": len(X), "tracing": tracing, "seed": self.seed})
        if extra is not None:
            extra(self, X, y, tracing)
        return learn(self, X, y)

    monkeypatch.setattr(SLDA, "partial_fit", recorded)
    return calls


def _slda_config(**changes):
    settings = {
        "dataset": "digits",
        "methods": ["slda"],
        "scenario": {"kind": "class-incremental", "increment": 2},
        "seeds": [0],
        "progress": False,
        **changes,
    }
    return RunConfig(**settings)


def test_steps_are_timed_without_tracemalloc_and_memory_comes_from_a_separate_pass(monkeypatch):
    """tracemalloc's bookkeeping slowed methods that allocate often up to 14 times (Deep
    SLDA's reported seconds were 0.05 for 0.004 of work), so times compared unequally. The
    steps are timed with it off; the peak memory comes from a second pass under it, on a
    fresh instance, untimed (a clock jumping 1,000 s there must not show), whose accuracies
    are not used (that instance learns shuffled labels here)."""
    import time as time_module
    import types

    import forgetless.experiment

    jumped = []
    clock = types.SimpleNamespace(perf_counter=lambda: time_module.perf_counter() + sum(jumped))
    monkeypatch.setattr(forgetless.experiment, "time", clock)

    def memory_pass_differs(self, X, y, tracing):
        if tracing:
            jumped.append(1000.0)
            y[:] = np.random.default_rng(0).permutation(y)  # a copy: X[rows], y[rows]

    calls = _recording_slda(monkeypatch, memory_pass_differs)
    results = run(_slda_config())
    seed = results["methods"]["slda"]["seeds"]["0"]
    assert seed["peak_memory_MiB"] > 0 and 0 < seed["total_seconds"] < 1000
    assert results["methods"]["slda"]["summary"]["peak_memory_MiB"]["mean"] > 0
    assert results["measurement"]["separate_memory_pass"] is True
    models = list(dict.fromkeys(c["model"] for c in calls))
    steps = [c for c in calls if c["rows"] > forgetless.experiment.WARM_UP_ROWS]
    timed = [c for c in steps if not c["tracing"]]
    traced = [c for c in steps if c["tracing"]]
    assert len(timed) == len(traced) == 5  # every step once in each pass
    assert len({c["model"] for c in timed}) == len({c["model"] for c in traced}) == 1
    assert timed[0]["model"] != traced[0]["model"]  # a fresh instance for the memory pass
    assert models.index(timed[0]["model"]) < models.index(traced[0]["model"])  # timed first

    calls.clear()
    without = run(_slda_config(measure_memory=False))  # no second pass, no memory
    assert not any(c["tracing"] for c in calls) and not jumped[5:]
    alone = without["methods"]["slda"]["seeds"]["0"]
    assert alone["peak_memory_MiB"] is None
    assert "peak_memory_MiB" not in without["methods"]["slda"]["summary"]
    assert without["measurement"]["separate_memory_pass"] is False
    for key in ("accuracy_matrix", "accuracy_seen", "per_class_accuracy", "trace"):
        assert seed[key] == alone[key]  # the memory pass changed no accuracy
    with pytest.raises(ConfigError, match="measure_memory"):
        _slda_config(measure_memory="yes").validate(output=False)


def test_each_method_warms_up_untimed_before_its_first_job(monkeypatch):
    """The first (method, seed) of a run paid the process's one-time costs (lazy imports,
    the first BLAS calls) in its first step: 0.18 s against 0.07 s for the same work later.
    Each method first learns a handful of rows on an instance it throws away, untimed (a
    clock jumping 1,000 s there must not show), once per run; one that cannot learn from so
    few rows only skips its warm-up."""
    import time as time_module
    import types

    import forgetless.experiment

    jumped = []
    clock = types.SimpleNamespace(perf_counter=lambda: time_module.perf_counter() + sum(jumped))
    monkeypatch.setattr(forgetless.experiment, "time", clock)

    def warm_up_is_slow(self, X, y, tracing):
        if len(calls) == 1:
            jumped.append(1000.0)

    calls = _recording_slda(monkeypatch, warm_up_is_slow)
    results = run(_slda_config(seeds=[0, 1], measure_memory=False))
    first, timed = calls[0], calls[1]
    assert jumped and first["rows"] <= forgetless.experiment.WARM_UP_ROWS
    assert first["model"] != timed["model"] and timed["rows"] > first["rows"]
    assert len(calls) == 1 + 2 * 5  # one warm-up, then five steps per seed
    assert all(0 < r["total_seconds"] < 1000 for r in results["methods"]["slda"]["seeds"].values())

    def warm_up_fails(self, X, y, tracing):
        if len(X) <= forgetless.experiment.WARM_UP_ROWS:
            raise ValueError("too few rows")

    calls = _recording_slda(monkeypatch, warm_up_fails)
    again = run(_slda_config(seeds=[0, 1], measure_memory=False))
    assert len(calls) == 11 and "failed" not in again["methods"]["slda"]
    assert (
        again["methods"]["slda"]["seeds"]["0"]["accuracy_matrix"]
        == (results["methods"]["slda"]["seeds"]["0"]["accuracy_matrix"])
    )


def test_a_domain_incremental_run_records_the_domains_in_the_order_taught(tmp_path):
    """The domain order changes with the seed, and the results named none: the columns of an
    accuracy matrix could not be traced to a domain. Each seed's scenario lists its domain
    per step and its ``domain_order``; the report shows the order."""
    from forgetless.evaluation.report import write_report
    from forgetless.experiment import prepare_dataset, save_results

    config = RunConfig(
        dataset="digits",
        methods=["ncm"],
        scenario={"kind": "domain-incremental", "transforms": ["original", "rotate90", "invert"]},
        learner={"n_components": 100},
        seeds=[0, 1, 2],
        subset={"train": 600, "test": 300},
        measure_memory=False,
        progress=False,
    )
    results = run(config)
    dataset = prepare_dataset(config)
    domain_train = np.asarray(dataset.info["domain_train"])
    built = make_scenarios(
        config,
        np.asarray(dataset.train.labels),
        np.asarray(dataset.test.labels),
        (domain_train, np.asarray(dataset.info["domain_test"])),
    )
    orders = []
    for seed in config.seeds:
        described = results["scenarios"][str(seed)]
        taught = [str(domain_train[step.train][0]) for step in built[seed].steps]
        assert all(
            set(domain_train[step.train]) == {d}
            for step, d in zip(built[seed].steps, taught, strict=True)
        )
        assert described["domain_order"] == taught
        assert [step["domain"] for step in described["steps"]] == taught
        orders.append(taught)
    assert len({tuple(order) for order in orders}) > 1  # the seeds teach different orders
    save_results(json.loads(json.dumps(results)), tmp_path)
    write_report(tmp_path)
    page = (tmp_path / "report.html").read_text()
    for seed, order in zip(config.seeds, orders, strict=True):
        assert f"seed {seed}: {', '.join(order)}" in page


def test_a_method_that_fails_loses_no_other_result(tmp_path, monkeypatch, capsys):
    """A method raising at a step killed the run with a traceback and wrote nothing: every
    finished method was lost. The failure is recorded (seed, step, error, traceback), the
    other methods and seeds run on, the files are written, the exit status is 1 with one
    line naming the method, and the report shows it as failed."""
    from forgetless.evaluation.peers import ACIL

    def fails_on_seed_0_at_step_2(self, X, y, tracing):
        if self.seed == 0 and sum(c["model"] == self.number for c in calls) == 2:
            raise FloatingPointError("overflow in the covariance")

    calls = _recording_slda(monkeypatch, fails_on_seed_0_at_step_2)

    def always(self, X, y):
        raise np.linalg.LinAlgError("singular")

    monkeypatch.setattr(ACIL, "partial_fit", always)
    out = tmp_path / "run"
    argv = ["run", "--dataset", "digits", "--increment", "2", "--n-components", "100"]
    argv += ["--methods", "ncm", "slda", "acil", "--seeds", "0", "1", "--output", str(out)]
    assert main([*argv, "--quiet"]) == 1
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()[-1]
    assert error.startswith("forgetless run: error: slda, acil failed")
    assert "slda failed on seed 0 at step 2 of 5: FloatingPointError" in captured.out
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]["ncm"]["seeds"]) == {"0", "1"}
    assert "failed" not in results["methods"]["ncm"]
    slda = results["methods"]["slda"]
    assert set(slda["seeds"]) == {"1"} and set(slda["failed"]) == {"0"}
    assert slda["failed"]["0"]["step"] == 2 and "overflow" in slda["failed"]["0"]["error"]
    assert "FloatingPointError" in slda["failed"]["0"]["traceback"]
    assert slda["summary"]["final_accuracy"]["seeds"] == 1
    acil = results["methods"]["acil"]
    assert acil["seeds"] == {} and [f["step"] for f in acil["failed"].values()] == [1, 1]
    page = (out / "report.html").read_text()
    assert "acil failed on seed 1 at step 1 of 5: LinAlgError: singular" in page
    with open(out / "summary.csv") as handle:
        assert [r["method"] for r in csv.DictReader(handle)] == ["ncm", "slda", "acil"]
    assert main(["report", str(out)]) == 0
    assert (out / "accuracy_matrix_slda.png").exists()
    assert not (out / "accuracy_matrix_acil.png").exists()
    only_failed = tmp_path / "only-failed"  # no method left to plot: still a report
    only_failed.mkdir()
    (only_failed / "results.json").write_text(json.dumps({**results, "methods": {"acil": acil}}))
    assert main(["report", str(only_failed)]) == 0
    assert "acil failed on seed 0 at step 1" in (only_failed / "report.html").read_text()
