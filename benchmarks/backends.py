"""Backend comparison: numpy against the torch backend (CPU or GPU); writes JSON.

    python benchmarks/backends.py                        # numpy + torch CPU, M = 2000, 4000
    python benchmarks/backends.py --sizes 10000 20000    # on a GPU machine: adds cuda runs

For each backend and width M, on synthetic 768-d features of 100 Gaussian classes (the cost
does not depend on the values):

- ``fit_samples_per_s``: rows per second through ``partial_fit`` (projection + float64 sums,
  including the Gram matrix's trip to the host), after one warm-up call;
- ``refit_auto_s``: the head's refit with alpha="auto" (GCV search from the sums: what every
  refit costs by default) and ``refit_warm_s`` after one more batch with ``warm_start=True``
  (search from the previous lambda); ``refit_fixed_s``: one solve at a fixed
  lambda; ``predict_samples_per_s``;
- for float32 / TF32 runs, the relative error of G and of the coefficients against float64 on
  the same device.

Timings depend on the machine; the JSON records which one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from forgetless import ContinualClassifier, __version__
from forgetless.linalg import ridge_solve

RESULTS = Path(__file__).parent / "results"


def _sync(device: str | None) -> None:
    if device is not None and device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _timed(fn, device: str | None) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _data(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    centres = np.random.default_rng(12345).standard_normal((classes, d))  # same classes for all
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return centres[y] + 5.0 * rng.standard_normal((n, d)), y


def bench(backend: dict, m: int, n: int, d: int = 768, classes: int = 100) -> dict:
    device, dtype, tf32 = backend["device"], backend["compute_dtype"], backend.get("tf32", False)
    if device is not None:
        import torch

        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    X, y = _data(n, d, classes, seed=0)
    X2, y2 = _data(n, d, classes, seed=1)
    Xt, yt = _data(min(n, 20000), d, classes, seed=2)
    # warm_start=True: the first refit is the default (a search from the sums alone), the
    # second one is warm-started from the first lambda.
    params = dict(
        projection="orthogonal",
        n_components=m,
        compute_dtype=dtype,
        device=device,
        random_state=0,
        warm_start=True,
    )
    clf = ContinualClassifier(**params)
    t_first = _timed(lambda: clf.partial_fit(X[:256], y[:256]), device)  # layer build + warm-up
    t_fit = _timed(lambda: clf.partial_fit(X, y), device)
    t_cold = _timed(clf._refit_head, device)
    n_alphas = len(clf.head_.gcv_path_)
    clf.partial_fit(X2, y2)
    t_warm = _timed(clf._refit_head, device)
    n_alphas_warm = len(clf.head_.gcv_path_)
    alpha = clf.alpha_
    t_pred = _timed(lambda: clf.predict(Xt), device)
    acc = float((clf.predict(Xt) == yt).mean())
    stats, ops = clf.statistics_, clf._engine().linalg
    # One solve at a fixed lambda, G built where the solve runs (as the learner's refit does).
    t_fixed = _timed(lambda: ridge_solve(ops.gram(stats), stats.class_sums, alpha, ops), device)
    out = {
        **{k: v for k, v in backend.items()},
        "M": m,
        "n": n,
        "d": d,
        "classes": classes,
        "first_call_s": t_first,
        "fit_s": t_fit,
        "fit_samples_per_s": n / t_fit,
        "refit_auto_s": t_cold,
        "refit_auto_lambdas_tried": n_alphas,
        "refit_warm_s": t_warm,
        "refit_warm_lambdas_tried": n_alphas_warm,
        "refit_fixed_s": t_fixed,
        "alpha": alpha,
        "predict_samples_per_s": Xt.shape[0] / t_pred,
        "accuracy": acc,
    }
    return out, clf


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--n", type=int, default=20000, help="rows per batch (torch/GPU runs)")
    parser.add_argument("--n-numpy", type=int, default=None, help="rows per batch for numpy")
    parser.add_argument("--skip-numpy", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "backends.json"))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of an existing --out file that this run does not measure again",
    )
    args = parser.parse_args()

    backends: list[dict] = [] if args.skip_numpy else [{"name": "numpy", "device": None}]
    try:
        import torch

        gpu = torch.cuda.is_available()
        backends += (
            [
                {"name": "cuda float64", "device": "cuda"},
                {"name": "cuda float32", "device": "cuda", "compute_dtype": "float32"},
                {"name": "cuda tf32", "device": "cuda", "compute_dtype": "float32", "tf32": True},
            ]
            if gpu
            else [{"name": "torch cpu float64", "device": "cpu"}]
        )
        device_name = torch.cuda.get_device_name(0) if gpu else None
        torch_version = torch.__version__
    except ImportError:
        device_name = torch_version = None
    for b in backends:
        b.setdefault("compute_dtype", "float64")

    results: list[dict] = []
    kept: list[dict] = []
    if args.merge and Path(args.out).exists():
        measured = {(b["name"], m) for b in backends for m in args.sizes}
        kept = [
            r
            for r in json.loads(Path(args.out).read_text())["results"]
            if (r["name"], r["M"]) not in measured
        ]
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "gpu": device_name,
        "torch": torch_version,
        "numpy": np.__version__,
    }

    def write() -> None:  # after every row, so a run cut short keeps what it measured
        doc = {"benchmark": "backends", "forgetless": __version__, "machine": machine}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        rows = sorted(kept + results, key=lambda r: (r["M"], r["name"] != "numpy", r["name"]))
        Path(args.out).write_text(json.dumps({**doc, "results": rows}, indent=2) + "\n")

    for m in args.sizes:
        reference = None
        for b in backends:
            n = args.n_numpy if (b["device"] is None and args.n_numpy) else args.n
            row, clf = bench(b, m, n)
            if b["device"] == "cuda" and b["compute_dtype"] == "float64":
                reference = clf
            elif reference is not None and b["compute_dtype"] == "float32":
                row["gram_relative_error"] = relative_error(
                    clf.statistics_.gram, reference.statistics_.gram
                )
                row["coef_relative_error"] = relative_error(clf.coef_, reference.coef_)
                row["same_alpha_as_float64"] = clf.alpha_ == reference.alpha_
            results.append(row)
            write()
            print(
                f"{row['name']:>18} M={m:>6} n={n:>7}: fit {row['fit_samples_per_s']:>10.0f} rows/s"
                f"  refit auto {row['refit_auto_s']:7.2f} s ({row['refit_auto_lambdas_tried']}"
                f" lambdas), warm {row['refit_warm_s']:7.2f} s, fixed {row['refit_fixed_s']:6.2f}"
                f" s  predict {row['predict_samples_per_s']:>9.0f} rows/s"
                f"  acc {row['accuracy']:.3f}",
                flush=True,
            )
    print("wrote", args.out)


if __name__ == "__main__":
    main()
