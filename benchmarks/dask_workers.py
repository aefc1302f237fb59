"""Scaling with Dask workers, and the cost of the tree reduction; writes JSON.

    python benchmarks/dask_workers.py                    # 100,000 x 768, M = 2048; 1, 2 workers
    python benchmarks/dask_workers.py --n 20000 --m 512  # a quick run

The features are generated on the workers and persisted there before timing (a partition
"lives" on its worker), so the timings are those of ``partial_fit_dask``: projection and sums
per partition where it lives, then the tree reduction. Each worker is one process with one
thread (Dask's nanny sets OMP/OPENBLAS_NUM_THREADS=1); the in-process baselines run numpy with 1
and with 2 BLAS threads on the same rows. Reported per worker count:

- ``fit_s``: the whole ``partial_fit_dask`` call, and ``speedup`` against 1 worker;
- ``map_s`` / ``reduce_s``: the per-partition sums computed and held on the workers, then the tree
  reduction of those (M x M float64 each) and the transfer of the result;
- ``max_rel_diff_coef``: against the single-process fit (exactness, float64).
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

RESULTS = Path(__file__).parent / "results"


def _data(n: int, d: int, chunk: int, classes: int):
    import dask.array as da

    rng = da.random.default_rng(0)
    y = rng.integers(0, classes, size=n, chunks=chunk)
    centres = np.random.default_rng(1).standard_normal((classes, d)).astype(np.float32)
    X = rng.standard_normal((n, d), chunks=(chunk, d), dtype=np.float32) * 3.0
    X = X + da.from_array(centres)[y]
    return X.rechunk((chunk, d)), y


def run_workers(n_workers: int, X, y, params: dict, split_every: int) -> tuple[dict, np.ndarray]:
    import dask
    from distributed import Client, LocalCluster, wait

    from forgetless import distributed as fd

    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        Xp, yp = client.persist([X, y])
        wait([Xp, yp])
        clf = ContinualClassifier(**params)
        start = time.perf_counter()
        fd.partial_fit_dask(clf, Xp, yp, client=client, split_every=split_every)
        fit_s = time.perf_counter() - start
        coef = clf.coef_

        # The same work in two timed halves: sums held on the workers, then the reduction.
        classes = clf.classes_
        config = fd._layer_config(clf.__dict__)
        parts = [
            dask.delayed(fd.partition_statistics, pure=True)(xb, yb, classes, config)
            for xb, yb in zip(Xp.to_delayed().ravel(), yp.to_delayed().ravel(), strict=True)
        ]
        start = time.perf_counter()
        held = client.persist(parts)
        wait(held)
        map_s = time.perf_counter() - start
        start = time.perf_counter()
        client.compute(fd._tree_sum(held, split_every)).result()
        reduce_s = time.perf_counter() - start
    row = {
        "workers": n_workers,
        "partitions": len(parts),
        "fit_s": fit_s,
        "map_s": map_s,
        "reduce_s": reduce_s,
        "reduce_share": reduce_s / (map_s + reduce_s),
    }
    return row, coef


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--m", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--split-every", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS / "dask_workers.json"))
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    X, y = _data(args.n, args.d, args.chunk, args.classes)
    Xn, yn = (a.compute() for a in (X, y))
    params = dict(projection="orthogonal", n_components=args.m, alpha=1.0, random_state=0)

    baselines = {}
    for threads in (1, 2):
        with threadpool_limits(threads):
            clf = ContinualClassifier(**params)
            start = time.perf_counter()
            clf.partial_fit(Xn, yn)
            baselines[threads] = time.perf_counter() - start
            reference = clf.coef_
        print(f"in-process numpy, {threads} BLAS thread(s): {baselines[threads]:.2f} s", flush=True)

    rows = []
    for w in args.workers:
        row, coef = run_workers(w, X, y, params, args.split_every)
        row["max_rel_diff_coef"] = float(np.abs(coef - reference).max() / np.abs(reference).max())
        rows.append(row)
        print(
            f"{w} worker(s): fit {row['fit_s']:.2f} s  (map {row['map_s']:.2f} s, reduce "
            f"{row['reduce_s']:.2f} s over {row['partitions']} partitions); "
            f"coef rel diff {row['max_rel_diff_coef']:.1e}",
            flush=True,
        )
    base = next((r["fit_s"] for r in rows if r["workers"] == 1), None)
    for r in rows:
        r["speedup_vs_1_worker"] = base / r["fit_s"] if base else None
        r["vs_in_process_1_thread"] = baselines[1] / r["fit_s"]
    config = {
        "n": args.n,
        "d": args.d,
        "M": args.m,
        "chunk_rows": args.chunk,
        "gram_MiB_per_partition": args.m * args.m * 8 / 2**20,
        "in_process_s": {"1_thread": baselines[1], "2_threads": baselines[2]},
        "results": rows,
    }
    # One file for every configuration run; a rerun of the same (n, M) replaces its entry.
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    configs = [c for c in doc.get("configs", []) if (c["n"], c["M"]) != (args.n, args.m)]
    doc = {
        "benchmark": "dask_workers",
        "forgetless": __version__,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "configs": sorted([*configs, config], key=lambda c: (c["M"], c["n"])),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
