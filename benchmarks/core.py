"""Benchmark of the core learner; writes JSON. Not a test: timings depend on the machine.

    python benchmarks/core.py                      # full run (~15 min on 2 cores)
    python benchmarks/core.py --quick              # small sizes, a minute or two
    python benchmarks/core.py --only refit --sizes 2000 5000

Measures, in one run:
1. ``gram``: Gram accumulation (syrk into float64) in GFLOP/s against this run's numpy
   matrix-multiply rate on the same shapes (goal: >= 70 %), plus end-to-end (projection + sums).
2. ``refit``: one task's head refit with automatic lambda at several M, against a RanPAC-style
   refit of the same statistics (17 dense solves over lambda = 1e-8 ... 1e8 scored on a held-out
   20 % kept as its own statistics, then one more solve on everything), with test accuracy of
   both on Fashion-MNIST (raw pixels through the random layer). Cold = first task's refit,
   warm = refit after one more task arrives: the default search again, and with
   ``warm_start=True`` (a walk of factorisations from the previous lambda).
4. ``float32``: the float32 compute mode's error against float64 (Gram, coefficients,
   predictions) and its fit time.
5. ``classes``: statistics, refit and prediction time against the number of classes (100 to
   10,000; synthetic Gaussian classes in 768-d).
3. ``memory``: peak resident memory while streaming n x 768 features at M = 4096 from a
   memory-mapped file, for several n up to 1,000,000 (``--memory-sizes``), each in a fresh
   process (goal: flat in n).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from forgetless import ContinualClassifier, __version__
from forgetless._lambda_search import select_alpha
from forgetless.layers import RandomProjection
from forgetless.linalg import ridge_solve
from forgetless.statistics import SufficientStatistics

RESULTS = Path(__file__).parent / "results"


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def bench_gram(n: int, m: int, d: int = 768) -> dict:
    rng = np.random.default_rng(0)
    H = np.maximum(rng.standard_normal((n, m)), 0.0)
    y = rng.integers(0, 10, n)
    flops_syrk = n * m * (m + 1)  # useful flops of H^T H (symmetric half, counted once)
    H @ H[:64].T  # warm up BLAS threads
    _, t_gemm = _timed(lambda: H.T @ H)
    gemm_rate = 2.0 * n * m * m / t_gemm  # what numpy's matmul achieves on the full product
    stats = SufficientStatistics(m)
    chunk = max(1, (1 << 23) // m)

    def accumulate():
        for s in range(0, n, chunk):
            stats.add(H[s : s + chunk], y[s : s + chunk], n_classes=10)

    _, t_syrk = _timed(accumulate)
    # As a rate of the full matrix product it replaces (2 n m^2 flops for numpy's H^T H):
    effective_rate = 2.0 * n * m * m / t_syrk
    X = rng.standard_normal((n, d))
    clf = ContinualClassifier(projection="orthogonal", n_components=m, random_state=0)
    _, t_e2e = _timed(lambda: clf.partial_fit(X, y))
    return {
        "n": n,
        "M": m,
        "numpy_matmul_HtH_seconds": t_gemm,
        "numpy_matmul_GFLOPs": gemm_rate / 1e9,
        "gram_accumulate_seconds": t_syrk,
        "gram_accumulate_GFLOPs_syrk_flops": flops_syrk / t_syrk / 1e9,
        "gram_accumulate_vs_numpy_matmul": effective_rate / gemm_rate,
        "end_to_end_partial_fit_seconds": t_e2e,
        "end_to_end_samples_per_second": n / t_e2e,
    }


def _fashion(n_train: int | None):
    from forgetless.data import load_dataset

    ds = load_dataset("fashion-mnist")
    Xtr = ds.train.inputs.reshape(len(ds.train), -1).astype(np.float64) / 255.0
    Xte = ds.test.inputs.reshape(len(ds.test), -1).astype(np.float64) / 255.0
    ytr, yte = ds.train.labels, ds.test.labels
    if n_train is not None:
        Xtr, ytr = Xtr[:n_train], ytr[:n_train]
    return Xtr, ytr, Xte, yte


def _ranpac_refit(
    stats_fit: SufficientStatistics, stats_val: SufficientStatistics, full: SufficientStatistics
) -> tuple[float, np.ndarray]:
    """RanPAC's recipe on sums: 17 solves on 80 %, validation MSE on 20 %, refit on all."""
    G, Q = stats_fit.gram, stats_fit.class_sums
    Gv, Qv, nv = stats_val.gram, stats_val.class_sums, stats_val.n_samples
    best, best_mse = None, np.inf
    for lam in 10.0 ** np.arange(-8, 9):
        W = np.linalg.solve(G + lam * np.eye(G.shape[0]), Q)
        mse = nv - 2.0 * np.vdot(W, Qv) + np.vdot(W, Gv @ W)  # ||Y_v - H_v W||^2 from sums
        if mse < best_mse:
            best, best_mse = lam, mse
    return best, np.linalg.solve(full.gram + best * np.eye(G.shape[0]), full.class_sums)


def bench_refit(m: int, n_train: int | None) -> dict:
    Xtr, ytr, Xte, yte = _fashion(n_train)
    layer = RandomProjection("orthogonal", Xtr.shape[1], m, seed=0)
    first = ytr < 8  # task 1: classes 0-7; task 2: classes 8-9 arrive
    rng = np.random.default_rng(0)
    val_mask = rng.random(len(ytr)) < 0.2

    def stats_of(mask: np.ndarray, n_classes: int) -> SufficientStatistics:
        s = SufficientStatistics(m)
        idx = np.flatnonzero(mask)
        for start in range(0, idx.size, 2048):
            rows = idx[start : start + 2048]
            s.add(layer.transform(Xtr[rows]), ytr[rows], n_classes=n_classes)
        return s

    out: dict = {"M": m, "n_train": int(len(ytr))}
    H_test = layer.transform(Xte)
    for phase, mask, classes in (("cold", first, 8), ("warm", np.ones_like(first), 10)):
        full = stats_of(mask, classes)
        fit_part = stats_of(mask & ~val_mask, classes)
        val_part = stats_of(mask & val_mask, classes)
        seen = yte < classes

        # forgetless: GCV on all statistics, as the ridge head does it: the default search
        # (one eigendecomposition + one solve); in the warm phase also warm_start=True (a walk
        # of factorisations from the cold choice).
        def ours(start: float | None, full: SufficientStatistics = full) -> tuple:
            tic = time.perf_counter()
            best, path = select_alpha(full.gram, full.class_sums, full.n_samples, start=start)
            coef = best.coef
            if coef is None:
                coef = ridge_solve(full.gram, full.class_sums, best.alpha)
            return best, path, coef, time.perf_counter() - tic

        best, path, coef, t_select = ours(None)
        acc_ours = float(((H_test[seen] @ coef).argmax(1) == yte[seen]).mean())
        warm = {}
        if phase == "warm":
            w_best, w_path, w_coef, t_warm = ours(out["cold"]["forgetless_alpha"])
            warm = {
                "warm_start_seconds": t_warm,
                "warm_start_alpha": w_best.alpha,
                "warm_start_lambdas_tried": len(w_path),
                "warm_start_test_accuracy": float(
                    ((H_test[seen] @ w_coef).argmax(1) == yte[seen]).mean()
                ),
            }
        tic = time.perf_counter()
        lam_rp, W_rp = _ranpac_refit(fit_part, val_part, full)
        t_rp = time.perf_counter() - tic
        acc_rp = float(((H_test[seen] @ W_rp).argmax(1) == yte[seen]).mean())
        tic = time.perf_counter()
        ridge_solve(full.gram, full.class_sums, 1.0)
        t_one_solve = time.perf_counter() - tic
        out[phase] = {
            "classes": classes,
            "forgetless_seconds": t_select,
            "forgetless_alpha": best.alpha,
            "forgetless_lambdas_tried": len(path),
            "forgetless_test_accuracy": acc_ours,
            "ranpac_style_seconds": t_rp,
            "ranpac_style_alpha": float(lam_rp),
            "ranpac_style_test_accuracy": acc_rp,
            "speedup": t_rp / t_select,
            "one_cholesky_solve_seconds": t_one_solve,
            **warm,
        }
        if warm:
            out[phase]["warm_start_speedup"] = t_rp / warm["warm_start_seconds"]
        print(f"  refit M={m} {phase}: {out[phase]}", flush=True)
    return out


def bench_float32(m: int, n_train: int) -> dict:
    """float32 compute (projection + Gram in float32, float64 accumulation) against float64."""
    Xtr, ytr, Xte, yte = _fashion(n_train)
    out: dict = {"M": m, "n_train": n_train}
    models = {}
    for dtype in ("float64", "float32"):
        clf = ContinualClassifier(
            projection="orthogonal", n_components=m, alpha=1.0, compute_dtype=dtype, random_state=0
        )
        tic = time.perf_counter()
        clf.fit(Xtr, ytr)
        out[f"{dtype}_fit_seconds"] = time.perf_counter() - tic
        out[f"{dtype}_test_accuracy"] = float(clf.score(Xte, yte))
        models[dtype] = clf
    a, b = models["float64"], models["float32"]
    out["gram_relative_error"] = float(
        np.linalg.norm(a.statistics_.gram - b.statistics_.gram) / np.linalg.norm(a.statistics_.gram)
    )
    out["coef_relative_error"] = float(np.linalg.norm(a.coef_ - b.coef_) / np.linalg.norm(a.coef_))
    out["prediction_agreement"] = float((a.predict(Xte) == b.predict(Xte)).mean())
    print("  float32:", out, flush=True)
    return out


def bench_classes(class_counts: list[int], m: int = 2048, d: int = 768) -> list[dict]:
    """Cost against the number of classes C: Q is M x C, prediction is chunked."""
    rows = []
    for c in class_counts:
        rng = np.random.default_rng(0)
        n = max(20_000, 5 * c)
        centers = rng.standard_normal((c, d))
        y = np.arange(n) % c
        X = centers[y] + 5.0 * rng.standard_normal((n, d))
        Xt = centers[np.arange(5_000) % c] + 5.0 * rng.standard_normal((5_000, d))
        clf = ContinualClassifier(projection="orthogonal", n_components=m, random_state=0)
        tic = time.perf_counter()
        clf.partial_fit(X, y)
        t_stats = time.perf_counter() - tic
        tic = time.perf_counter()
        clf.predict(Xt[:1])  # the head refit, lambda by GCV
        t_refit = time.perf_counter() - tic
        tic = time.perf_counter()
        accuracy = float((clf.predict(Xt) == np.arange(5_000) % c).mean())
        t_predict = time.perf_counter() - tic
        rows.append(
            {
                "classes": c,
                "n_train": n,
                "M": m,
                "statistics_seconds": t_stats,
                "refit_seconds": t_refit,
                "predict_5000_seconds": t_predict,
                "alpha": clf.alpha_,
                "test_accuracy": accuracy,
            }
        )
        print("  classes:", rows[-1], flush=True)
    return rows


def _memory_child(n: int, m: int, d: int, path: str) -> None:
    y = np.arange(n) % 100
    clf = ContinualClassifier(projection="orthogonal", n_components=m, alpha=1.0, random_state=0)
    chunk = 8192
    start_time = time.perf_counter()
    for s in range(0, n, chunk):
        # Map the file for one chunk only: a mapping kept open would count every page read so
        # far in this process's resident memory, which is the page cache, not the learner.
        X = np.load(path, mmap_mode="r")
        block = np.array(X[s : min(s + chunk, n)])
        del X
        clf.partial_fit(block, y[s : s + chunk])
    seconds = time.perf_counter() - start_time
    # VmHWM is this process's own peak; ru_maxrss would carry over the parent's peak.
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    print(json.dumps({"n": n, "peak_rss_MiB": peak_kib / 1024, "seconds": seconds}))


def bench_memory(sizes: list[int], m: int = 4096, d: int = 768) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "features.npy")
        big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(max(sizes), d))
        rng = np.random.default_rng(0)
        for s in range(0, max(sizes), 50_000):
            e = min(s + 50_000, max(sizes))
            big[s:e] = rng.standard_normal((e - s, d), dtype=np.float32)
        big.flush()
        del big
        for n in sizes:
            here = str(Path(__file__).parent)
            code = (
                f"import sys; sys.path.insert(0, {here!r}); from core import _memory_child; "
                f"_memory_child({n}, {m}, {d}, {path!r})"
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"memory run n={n} failed:\n{out.stderr}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  memory: {rows[-1]}", flush=True)
    expected = (m * m * 8 * 3 + 8192 * m * 8 * 3) / 2**20  # G, batch G, a copy; chunk buffers
    return {
        "M": m,
        "d": d,
        "rows": rows,
        "model_MiB_G": m * m * 8 / 2**20,
        "rough_bound_MiB": expected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parts_known = ["gram", "refit", "memory", "float32", "classes"]
    parser.add_argument("--only", choices=parts_known, action="append")
    parser.add_argument("--sizes", type=int, nargs="*", help="M values of the refit part")
    parser.add_argument(
        "--memory-sizes",
        type=int,
        nargs="*",
        help="rows of the memory part (default 25k..200k; 1000000 for the full claim); rows of "
        "other sizes already in --out are kept",
    )
    parser.add_argument("--out", default=str(RESULTS / "core.json"))
    args = parser.parse_args()
    parts = args.only or parts_known
    result: dict = {
        "library_version": __version__,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
        },
        "quick": args.quick,
    }
    if "gram" in parts:
        result["gram"] = [
            bench_gram(20_000 if args.quick else 50_000, m)
            for m in ([1000] if args.quick else [2000, 4096])
        ]
        print("gram:", result["gram"], flush=True)
    if "refit" in parts:
        sizes = args.sizes or ([500, 1000] if args.quick else [2000, 5000, 10000])
        result["refit"] = [bench_refit(m, 10_000 if args.quick else None) for m in sizes]
    if "memory" in parts:
        sizes = args.memory_sizes or (
            [10_000, 20_000] if args.quick else [25_000, 50_000, 100_000, 200_000]
        )
        result["memory"] = bench_memory(sizes, m=1024 if args.quick else 4096)
        out = Path(args.out)
        previous = json.loads(out.read_text()).get("memory") if out.exists() else None
        if previous and previous["M"] == result["memory"]["M"]:
            kept = [r for r in previous["rows"] if r["n"] not in sizes]
            result["memory"]["rows"] = sorted(kept + result["memory"]["rows"], key=lambda r: r["n"])
    if "float32" in parts:
        result["float32"] = bench_float32(
            500 if args.quick else 2000, 5_000 if args.quick else 20_000
        )
    if "classes" in parts:
        result["classes"] = bench_classes(
            [100, 300] if args.quick else [100, 1000, 3000, 10000], m=512 if args.quick else 2048
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text()) if out.exists() and args.only else {}
    existing.update(result)
    out.write_text(json.dumps(existing, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
