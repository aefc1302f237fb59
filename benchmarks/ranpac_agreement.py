"""RanPAC's procedure in ``forgetless.evaluation.peers`` against its authors' own functions.

    python benchmarks/ranpac_agreement.py --upstream PATH   # PATH: a checkout of RanPAC's code

Writes ``benchmarks/results/ranpac_agreement.json``. PATH is a clone of
github.com/RanPAC/RanPAC (checked at commit 012927f); nothing of it is kept in this project. Its
``Learner.replace_fc`` and ``Learner.optimise_ridge_parameter`` (RanPAC.py), ``CosineLinear``
(inc_net.py) and ``target2onehot`` (utils/toolkit.py) are read from PATH and run as they are,
in torch float32, with one change: their ``.cuda()`` calls and ``device='cuda'`` arguments are
dropped so that they run on the CPU. Around them stand only what a run hands them: a network
whose backbone is the identity (the encoder's features are the input), a loader that yields the
task's rows in the order our procedure shuffles them (the first 80 % fit, the rest score λ), a
new ``CosineLinear`` head per task, and our random weights ``W_rand``. The features are those
``forgetless run`` hands the ``ranpac`` method (``forgetless.experiment.method_features``: the
encoder's, as they come); the class order is the run's, classes numbered in order of arrival.
The configs' cases are joined by runs of ``benchmarks/lambda_selection.py``'s protocol
(``--lambda-selection``; by default digits' raw pixels at M = 4,000, seed 1, where a λ of 0.1
makes the float32 solve of the accumulated G fail).

After every task: the λ each chose, the largest difference of the output weights (relative to
their largest entry), the share of equal predictions on the test rows of the classes seen, both
accuracies, and the held-out error of each chosen λ recomputed in float64. Where two λ of
RanPAC's grid score within float32 rounding of each other, the two LU solvers (torch's, and
LAPACK's through scipy) can break the tie differently.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import platform
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from peers import load
from torch.nn import functional

from forgetless.evaluation.peers import RanPAC
from forgetless.experiment import make_scenarios, method_features

OUT = Path(__file__).resolve().parent / "results" / "ranpac_agreement.json"
CASES = {  # dataset -> width
    "digits/raw": 1000,
    "openclipart/efficientnet-lite0": 2000,
    "latin-glyphs/efficientnet-lite0": 2000,
    "wordnet/minilm": 2000,
}
TAKEN = {  # upstream file -> the definitions run from it
    "RanPAC.py": ("replace_fc", "optimise_ridge_parameter"),
    "inc_net.py": ("CosineLinear",),
    "utils/toolkit.py": ("target2onehot",),
}


class _OnCPU(ast.NodeTransformer):
    """``x.cuda()`` becomes ``x``; ``device='cuda'`` becomes ``device='cpu'``."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "cuda" and not node.args:
            return func.value
        for keyword in node.keywords:
            if keyword.arg == "device" and getattr(keyword.value, "value", None) == "cuda":
                keyword.value = ast.Constant("cpu")
        return node


def upstream(path: Path) -> dict:
    """The definitions of TAKEN, compiled from the files under ``path``."""
    namespace: dict = {"torch": torch, "np": np, "F": functional, "nn": torch.nn,
                       "logging": logging, "math": __import__("math")}  # fmt: skip
    for file, names in TAKEN.items():
        tree = ast.parse((path / file).read_text(), filename=str(path / file))
        found = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in names:
                found.setdefault(node.name, node)
        missing = set(names) - set(found)
        if missing:
            raise SystemExit(f"{path / file} has no {', '.join(sorted(missing))}: another RanPAC?")
        module = ast.fix_missing_locations(_OnCPU().visit(ast.Module(list(found.values()), [])))
        exec(compile(module, str(path / file), "exec"), namespace)  # noqa: S102 - their code
    return namespace


def checkout_commit(path: Path) -> str:
    """The commit of the checkout at ``path`` (git), else what a plain copy can say."""
    try:
        found = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "a copy without git history (commit not recorded)"
    return found.stdout.strip()


class UpstreamLearner:
    """The state ``replace_fc`` reads and writes (RanPAC.py's ``Learner`` after ``setup_RP``)."""

    def __init__(self, code: dict, W_rand: np.ndarray, total_classes: int) -> None:
        self.code, self.M = code, W_rand.shape[1]
        self.args = {"use_RP": True, "M": self.M}
        self.W_rand = torch.as_tensor(W_rand)
        self.total_classnum, self.is_dil = total_classes, False
        self.Q = torch.zeros(self.M, total_classes)
        self.G = torch.zeros(self.M, self.M)
        self._network = SimpleNamespace(convnet=lambda x: x, fc=None)
        self._network.eval = lambda: self._network

    def task(self, X: np.ndarray, labels: np.ndarray, classes_seen: int, batch: int = 48):
        fc = self.code["CosineLinear"](X.shape[1], classes_seen)  # update_fc: a new head
        self._network.fc = fc
        loader = [
            (None, torch.as_tensor(X[i : i + batch]), torch.as_tensor(labels[i : i + batch]))
            for i in range(0, len(labels), batch)
        ]
        self.lam = None
        original = self.code["optimise_ridge_parameter"]

        def choose(features, Y):
            self.lam = float(original(self, features, Y))
            return self.lam

        self.optimise_ridge_parameter = choose
        self.code["replace_fc"](self, loader)

    def scores(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._network.fc(torch.as_tensor(X))["logits"].numpy()


def held_out_mse(X: np.ndarray, y: np.ndarray, ours: RanPAC, lams: set) -> dict:
    """RanPAC's λ score (fit on the first 80 % of the shuffled task, mean squared error on the
    rest) in float64, at the λ either chose: how near a tie their choices are."""
    H = np.maximum(np.asarray(X, dtype=np.float64) @ ours.W_rand.astype(np.float64), 0.0)
    Y = np.zeros((y.size, ours.classes_.size))
    Y[np.arange(y.size), np.searchsorted(ours.classes_, y)] = 1.0
    n_fit = int(y.size * 0.8)
    G, Q = H[:n_fit].T @ H[:n_fit], H[:n_fit].T @ Y[:n_fit]
    out = {}
    for lam in sorted(lams):
        W = np.linalg.solve(G + lam * np.eye(G.shape[0]), Q)
        out[lam] = float(((H[n_fit:] @ W - Y[n_fit:]) ** 2).mean())
    return out


def compare(code: dict, X, y, Xt, yt, scenario, width: int, seed: int) -> list[dict]:
    order = np.concatenate([np.unique(y[s.train]) for s in scenario.steps])
    relabel = np.empty(order.max() + 1, dtype=int)
    relabel[order] = np.arange(order.size)
    y, yt = relabel[y], relabel[yt]
    ours = RanPAC(n_components=width, seed=seed)
    theirs, steps = None, []
    Xf, Xtf = np.asarray(X, dtype=np.float32), np.asarray(Xt, dtype=np.float32)
    for i, step in enumerate(scenario.steps):
        rows = step.train
        # The shuffle ours draws for this task (RanPAC's loader shuffles each task).
        shuffled = rows[np.random.default_rng([seed, i]).permutation(rows.size)]
        ours.partial_fit(X[rows], y[rows])
        theirs = theirs or UpstreamLearner(code, ours.W_rand, order.size)
        theirs.task(Xf[shuffled], y[shuffled], ours.classes_.size)
        seen = scenario.seen_test(i)
        a = np.asarray(ours.decision_function(Xtf[seen]), dtype=np.float64)
        b = np.asarray(theirs.scores(Xtf[seen]), dtype=np.float64)
        pa, pb = ours.classes_[a.argmax(axis=1)], ours.classes_[b.argmax(axis=1)]
        Wo = theirs._network.fc.weight.data.numpy().T
        mse = held_out_mse(X[shuffled], y[shuffled], ours, {ours.alpha_, theirs.lam})
        steps.append({
            "step": i,
            "lambda_ours": ours.alpha_,
            "lambda_upstream": theirs.lam,
            "coef_rel_diff": float(np.abs(ours.coef_ - Wo).max() / np.abs(Wo).max()),
            "predictions_agree": float((pa == pb).mean()),
            "accuracy_ours": float((pa == yt[seen]).mean()),
            "accuracy_upstream": float((pb == yt[seen]).mean()),
            "held_out_mse_float64": {f"{lam:g}": value for lam, value in mse.items()},
        })  # fmt: skip
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", type=Path, required=True, help="a checkout of RanPAC")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument(
        "--lambda-selection", nargs="*", default=["digits/raw:4000:1"], metavar="NAME:M:SEED",
        help="also runs of benchmarks/lambda_selection.py (its subsets and 6-step scenario)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(2)
    code = upstream(args.upstream)
    results = {
        "upstream": f"github.com/RanPAC/RanPAC @ {checkout_commit(args.upstream)} (RanPAC.py: "
        "replace_fc, optimise_ridge_parameter; inc_net.py: CosineLinear; utils/toolkit.py: "
        "target2onehot)",
        "how": __doc__.split("\n\n", 2)[2].strip(),
        "machine": f"{platform.machine()}, torch {torch.__version__}",
        # ours solves through numpy/scipy's BLAS: its float32 near-ties depend on the threads
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "torch_threads": torch.get_num_threads(),
        "runs": [],
    }
    for case in args.cases:
        config, data = load(case)
        seed = 0  # the config's first class order
        scenario = make_scenarios(config, data["y_train"], data["y_test"])[seed]
        first = scenario.steps[0].train
        X, Xt = method_features("ranpac", data["X_train"], data["X_test"], first)
        steps = compare(code, X, data["y_train"], Xt, data["y_test"], scenario, CASES[case], seed)
        results["runs"].append({"dataset": case, "M": CASES[case], "seed": seed, "steps": steps})
        print(
            f"{case:32s} λ ours/upstream "
            + " ".join(f"{s['lambda_ours']:g}/{s['lambda_upstream']:g}" for s in steps)
            + f"; agree ≥ {100 * min(s['predictions_agree'] for s in steps):.2f} %, final % "
            f"{100 * steps[-1]['accuracy_ours']:.2f} / {100 * steps[-1]['accuracy_upstream']:.2f}",
            flush=True,
        )
        args.out.write_text(json.dumps(results, indent=1))
    for spec in args.lambda_selection:
        import lambda_selection

        from forgetless.scenarios import class_incremental

        name, width, seed = spec.split(":")
        X, y, Xt, yt, initial, increment = lambda_selection.load(name)
        scenario = class_incremental(y, yt, initial=initial, increment=increment, seed=int(seed))
        X, Xt = method_features("ranpac", X, Xt, scenario.steps[0].train)
        steps = compare(code, X, y, Xt, yt, scenario, int(width), int(seed))
        results["runs"].append({"dataset": name, "M": int(width), "seed": int(seed),
                                "protocol": "lambda_selection.py", "steps": steps})  # fmt: skip
        print(f"{spec}: λ ours/upstream " + " ".join(
            f"{s['lambda_ours']:g}/{s['lambda_upstream']:g}" for s in steps
        ) + " accuracy ours/upstream " + " ".join(
            f"{100 * s['accuracy_ours']:.1f}/{100 * s['accuracy_upstream']:.1f}" for s in steps
        ), flush=True)  # fmt: skip
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
