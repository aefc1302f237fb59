"""``forgetless demo``: a class-incremental run on scikit-learn's digits (needs no download).

Ten digit classes arrive in five tasks of two, in an order shuffled by the seed. After each task
every method is tested on the test images of all classes seen so far. Methods:

- ``forgetless ridge``: orthogonal random layer + ridge head with GCV lambda (this library);
- ``forgetless ncm`` / ``forgetless lda``: the same statistics read by other heads;
- ``joint ridge``: the same learner refit on all data seen so far (the upper bound);
- ``sgd fine-tune``: a linear head trained by SGD on each task in turn (the lower bound).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from forgetless.evaluation.metrics import (
    average_incremental_accuracy,
    backward_transfer,
    final_accuracy,
    forgetting,
)
from forgetless.learner import ContinualClassifier


def _methods(seed: int) -> dict[str, Any]:
    common = dict(projection="orthogonal", n_components=2000, random_state=seed)
    return {
        "forgetless ridge": ContinualClassifier(head="ridge", **common),
        "forgetless ncm": ContinualClassifier(head="ncm", **common),
        "forgetless lda": ContinualClassifier(head="lda", **common),
        "sgd fine-tune": SGDClassifier(loss="log_loss", alpha=1e-4, random_state=seed),
    }


def run_demo(seed: int = 0, output_dir: str = "runs/demo", n_tasks: int = 5) -> dict[str, Any]:
    """Run the comparison, print a table, write ``results.json``; return the results."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(X_train)  # a fixed preprocessing, fit once like an encoder
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    order = np.random.default_rng(seed).permutation(10)
    tasks = np.array_split(order, n_tasks)

    results: dict[str, Any] = {"seed": seed, "class_order": order.tolist(), "methods": {}}
    methods = _methods(seed)
    joint_seen: list[float] = []
    for name, model in methods.items():
        A = np.full((n_tasks, n_tasks), np.nan)
        seen_acc, seconds = [], 0.0
        for i, task in enumerate(tasks):
            train = np.isin(y_train, task)
            start = time.perf_counter()
            if isinstance(model, SGDClassifier):
                for _ in range(5):  # a few epochs per task, no protection against forgetting
                    model.partial_fit(X_train[train], y_train[train], classes=np.arange(10))
            else:
                model.partial_fit(X_train[train], y_train[train])
                model.predict(X_test[:1])  # include the lazy head refit in the step time
            seconds += time.perf_counter() - start
            for j in range(i + 1):
                test = np.isin(y_test, tasks[j])
                A[i, j] = model.score(X_test[test], y_test[test])
            test_seen = np.isin(y_test, np.concatenate(tasks[: i + 1]))
            seen_acc.append(model.score(X_test[test_seen], y_test[test_seen]))
        results["methods"][name] = _summary(A, seen_acc, seconds)
    for i in range(n_tasks):  # the upper bound: refit on everything seen so far
        seen_classes = np.concatenate(tasks[: i + 1])
        joint = ContinualClassifier(n_components=2000, random_state=seed).fit(
            X_train[np.isin(y_train, seen_classes)], y_train[np.isin(y_train, seen_classes)]
        )
        test_seen = np.isin(y_test, seen_classes)
        joint_seen.append(joint.score(X_test[test_seen], y_test[test_seen]))
    results["methods"]["joint ridge (upper bound)"] = _summary(None, joint_seen, float("nan"))
    _print_table(results)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "results.json")
    with open(path, "w") as handle:
        json.dump(results, handle, indent=1, allow_nan=True)
    print(f"\nwrote {path}")
    return results


def _summary(A: np.ndarray | None, seen: list[float], seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "accuracy_seen": [round(a, 4) for a in seen],
        "final_accuracy": final_accuracy(seen),
        "average_incremental_accuracy": average_incremental_accuracy(seen),
        "train_seconds": seconds,
    }
    if A is not None:
        out["accuracy_matrix"] = [[None if np.isnan(v) else round(v, 4) for v in row] for row in A]
        out["forgetting"] = forgetting(A)
        out["backward_transfer"] = backward_transfer(A)
    return out


def _print_table(results: dict[str, Any]) -> None:
    print(f"digits, class-incremental, 5 tasks, class order {results['class_order']}")
    header = f"{'method':<28}{'final':>8}{'avg inc':>9}{'forgetting':>12}{'time s':>9}"
    print(header)
    print("-" * len(header))
    for name, m in results["methods"].items():
        forget = m.get("forgetting")
        seconds = m["train_seconds"]
        forget_text = "" if forget is None else f"{100 * forget:.1f}"
        time_text = "" if np.isnan(seconds) else f"{seconds:.2f}"
        print(
            f"{name:<28}{100 * m['final_accuracy']:>7.1f}%"
            f"{100 * m['average_incremental_accuracy']:>8.1f}%{forget_text:>12}{time_text:>9}"
        )
