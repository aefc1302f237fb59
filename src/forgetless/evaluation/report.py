"""Turn a run's ``results.json`` into CSV tables, PNG plots and one self-contained HTML page.

``write_report(run_dir)`` (also ``forgetless report RUN_DIR``) reads ``results.json`` and writes

- ``summary.csv``: one row per method, mean and std over seeds of every summary metric;
- ``accuracy_by_step.csv``: accuracy on all classes seen after each step, per method and seed;
- ``accuracy_by_step.png``: those curves (mean over seeds, std as a band);
- ``accuracy_matrix_<method>.png``: heatmaps of A[i][j] (first seed);
- ``continual_evaluation.png``: accuracy on the first task while training continues (per
  iteration for the gradient baselines, per step for the analytic methods): the stability gap;
- ``report.html``: the tables and the plots (embedded), readable offline.

A method that failed on a seed (``failed`` in its results) is reported as failed there, with
the step and the error; it has no plots for the seeds it failed on.

Plots need matplotlib (``pip install -e ".[report]"``); without it the CSV and HTML are
still written and the page says what is missing.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from forgetless._install import install_line

_LABELS = {
    "final_accuracy": "final acc",
    "average_incremental_accuracy": "avg inc acc",
    "forgetting": "forgetting",
    "backward_transfer": "BWT",
    "min_accuracy": "min-ACC",
    "worst_case_accuracy": "WC-ACC",
    "stability_gap": "stability gap",
    "total_seconds": "time (s)",
    "peak_memory_MiB": "peak MiB",
}
_PERCENT = {
    "final_accuracy",
    "average_incremental_accuracy",
    "forgetting",
    "backward_transfer",
    "min_accuracy",
    "worst_case_accuracy",
    "stability_gap",
}


def _fmt(metric: str, stats: dict[str, float] | None, seeds: int | None = None) -> str:
    """mean ± std (the population std over the seeds), with the count where seeds are missing
    (a metric a seed could not define)."""
    if not stats:
        return ""
    scale = 100.0 if metric in _PERCENT else 1.0
    digits = 1 if metric in _PERCENT else 2
    text = f"{scale * stats['mean']:.{digits}f}"
    counted = stats.get("seeds")  # absent in results written before it was recorded
    if (counted is None and stats["std"] > 0) or (counted is not None and counted > 1):
        text += f" ± {scale * stats['std']:.{digits}f}"
    if counted is not None and seeds is not None and counted < seeds:
        text += f" (n={counted})"
    return text


def summary_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the per-method summary (percentages for accuracies; mean ± the
    population std over seeds)."""
    metrics = [m for m in _LABELS if any(m in e["summary"] for e in results["methods"].values())]
    header = ["method"] + [_LABELS[m] for m in metrics]
    rows = []
    for name, entry in results["methods"].items():
        failed = entry.get("failed") or {}
        seeds = len(entry.get("seeds", {})) + len(failed)
        cells = [_fmt(m, entry["summary"].get(m), seeds) for m in metrics]
        if failed and not entry.get("seeds"):  # every seed failed: no number to show
            cells = ["failed"] + [""] * (len(metrics) - 1) if metrics else []
        rows.append([f"{name} (failed)" if failed and not metrics else name] + cells)
    return header, rows


def failure_lines(results: dict[str, Any]) -> list[str]:
    """One line per method and seed that failed: the step and the error. Empty when none did.

    >>> failed = {"0": {"step": 3, "steps": 5, "error": "FloatingPointError: overflow"}}
    >>> failure_lines({"methods": {"slda": {"seeds": {}, "failed": failed}}})
    ['slda failed on seed 0 at step 3 of 5: FloatingPointError: overflow']
    """
    lines = []
    for name, entry in results["methods"].items():
        for seed, info in (entry.get("failed") or {}).items():
            step = info.get("step") or 0
            where = f"at step {step} of {info.get('steps', '?')}" if step else "before step 1"
            if info.get("pass") == "memory":
                where += " (in the untimed pass measuring memory)"
            lines.append(f"{name} failed on seed {seed} {where}: {info.get('error', '?')}")
    return lines


def domain_order_lines(results: dict[str, Any]) -> list[str]:
    """For a domain-incremental run, one line per seed with its domains in the order taught
    (the columns of its accuracy matrix); empty for other runs.

    >>> domain_order_lines({"scenarios": {"0": {"domain_order": ["invert", "original"]}}})
    ['seed 0: invert, original']
    """
    return [
        f"seed {seed}: {', '.join(map(str, scenario['domain_order']))}"
        for seed, scenario in results["scenarios"].items()
        if scenario.get("domain_order") is not None
    ]


def adaptation_lines(results: dict[str, Any]) -> list[str]:
    """One line per seed saying what first-session adaptation did: the epoch it kept and the
    evidence for it, or why the encoder came back unchanged (``+adapted`` rows then equal the
    plain ones). Empty for a run without adaptation.

    >>> kept = {"encoder": "minilm+lora", "best_epoch": 6, "epochs_run": 9, "adapt_seconds": 42,
    ...         "evidence": {"plain_loss": 0.307, "adapted_loss": 0.242, "rows": 117,
    ...                      "epochs_compared": 9, "p_value": 0.0001}}
    >>> line = adaptation_lines({"adaptation": {"0": kept}})[0]
    >>> line.startswith("seed 0: minilm+lora, epoch 6 of 9 kept (validation loss 0.307 -> 0.242")
    True
    >>> line.endswith("on 117 rows, best of 9 epochs, p = 0.0001), 42 s")
    True
    >>> adaptation_lines({"adaptation": {"1": {"best_epoch": 0, "skipped": "too few classes"}}})
    ['seed 1: nothing kept, the encoder is unchanged: too few classes']
    """
    lines = []
    for seed, info in (results.get("adaptation") or {}).items():
        if info.get("best_epoch", 0) > 0:
            e = info.get("evidence") or {}
            # runs before the permutation test have no epochs_compared (the best epoch alone)
            tried = f", best of {e['epochs_compared']} epochs" if "epochs_compared" in e else ""
            why = (
                f" (validation loss {e['plain_loss']:.3f} -> {e['adapted_loss']:.3f} on "
                f"{e['rows']} rows{tried}, p = {e['p_value']:.2g})"
                if "p_value" in e
                else ""
            )
            lines.append(
                f"seed {seed}: {info.get('encoder', 'adapted encoder')}, epoch "
                f"{info['best_epoch']} of {info.get('epochs_run', '?')} kept{why}, "
                f"{float(info.get('adapt_seconds', 0)):.0f} s"
            )
        elif info.get("unchanged") is False:  # batch-norm statistics only (refresh_norms)
            reason = f" ({info['skipped']})" if info.get("skipped") else ""
            lines.append(
                f"seed {seed}: {info.get('encoder', 'adapted encoder')}, batch-norm statistics "
                f"refreshed, no weight trained{reason}"
            )
        else:
            reason = info.get("skipped") or "no epoch beat the unchanged encoder"
            lines.append(f"seed {seed}: nothing kept, the encoder is unchanged: {reason}")
    return lines


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table for the terminal."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if i == 0 else h.rjust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def _write_csvs(results: dict[str, Any], out: Path) -> None:
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        metrics = list(_LABELS)
        writer.writerow(["method"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")])
        for name, entry in results["methods"].items():
            row = [name]
            for m in metrics:
                stats = entry["summary"].get(m)
                row += [stats["mean"], stats["std"]] if stats else ["", ""]
            writer.writerow(row)
    with open(out / "accuracy_by_step.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "seed", "step", "accuracy_seen", "step_seconds"])
        for name, entry in results["methods"].items():
            for seed, r in entry["seeds"].items():
                for i, (acc, sec) in enumerate(
                    zip(r["accuracy_seen"], r["step_seconds"], strict=True)
                ):
                    writer.writerow([name, seed, i + 1, acc, sec])


def _plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    reported = {name: e for name, e in results["methods"].items() if e["seeds"]}  # not failed
    if not reported:  # every method failed: nothing to plot
        return []
    for name, entry in reported.items():
        curves = np.array([r["accuracy_seen"] for r in entry["seeds"].values()]) * 100
        steps = np.arange(1, curves.shape[1] + 1)
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(steps, mean, marker="o", label=_legend_label(name))
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    ax.set_xticks(steps)
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy on all classes seen (%)")
    ax.set_title(f"{results['dataset']['name']} / {results['encoder']['name']}", parse_math=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_by_step.png", dpi=110)
    plt.close(fig)
    written.append("accuracy_by_step.png")

    for name, entry in reported.items():
        first = next(iter(entry["seeds"].values()))
        A = (
            np.array(
                [[np.nan if v is None else v for v in row] for row in first["accuracy_matrix"]]
            )
            * 100
        )
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
        image = ax.imshow(A, vmin=0, vmax=100, cmap="viridis")
        ax.set_xlabel("tested on step j")
        ax.set_ylabel("after step i")
        ax.set_title(f"A[i][j] (%): {name}", fontsize=9, parse_math=False)
        if A.shape[0] <= 12:
            for i in range(A.shape[0]):
                for j in range(i + 1):
                    ax.text(
                        j,
                        i,
                        f"{A[i, j]:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if A[i, j] < 60 else "black",
                    )
        fig.colorbar(image, ax=ax, fraction=0.046)
        fig.tight_layout()
        filename = f"accuracy_matrix_{_file_part(name)}.png"
        while filename in written:  # two names alike once made safe: keep both plots
            filename = filename.removesuffix(".png") + "_.png"
        fig.savefig(out / filename, dpi=100)
        plt.close(fig)
        written.append(filename)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, entry in reported.items():
        trace = next(iter(entry["seeds"].values()))["trace"]
        if not trace["iterations"]:
            continue
        first_task = [np.nan if row[0] is None else 100 * row[0] for row in trace["accuracy"]]
        ends = trace["task_end"]
        # Progress in tasks: iteration t inside task i maps to i + (t - start_i) / (end_i - start_i)
        starts = [0] + ends[:-1]
        x = []
        for t in trace["iterations"]:
            i = next((k for k, e in enumerate(ends) if t <= e), len(ends) - 1)
            span = max(ends[i] - starts[i], 1)
            x.append(i + (t - starts[i]) / span)
        ax.plot(x, first_task, marker="." if len(x) < 60 else None, label=_legend_label(name))
    ax.set_xlabel("tasks trained (switches at integers)")
    ax.set_ylabel("accuracy on the first task (%)")
    ax.set_title("continual evaluation: the stability gap")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "continual_evaluation.png", dpi=110)
    plt.close(fig)
    written.append("continual_evaluation.png")
    return written


def _legend_label(name: str) -> str:
    """A method name as a legend entry, as plain text: "$" is not maths, and a leading "_",
    which hides an entry, is kept visible."""
    label = name.replace("$", r"\$")
    return " " + label if label.startswith("_") else label


def _file_part(name: str) -> str:
    """``name`` as part of a file name in the run folder: no separators, no '..'.

    >>> _file_part("forgetless+adapted"), _file_part("../../etc/x")
    ('forgetless+adapted', '.._.._etc_x')
    """
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)[:100] or "_"


def _html(results: dict[str, Any], out: Path, images: list[str], note: str) -> None:
    header, rows = summary_table(results)
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    for row in rows:
        table += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
    table += "</table>"
    figures = ""
    for name in images:
        data = base64.b64encode((out / name).read_bytes()).decode("ascii")
        alt = html.escape(name, quote=True)
        figures += f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"></figure>'
    config = html.escape(json.dumps(results["config"], indent=1))
    failures = failure_lines(results)
    failed = (
        "<h2>Failed</h2><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in failures)
        + "</ul><p>A failed method has no results for that seed; the traceback of each failure "
        "is in results.json.</p>"
        if failures
        else ""
    )
    orders = domain_order_lines(results)
    domains = (
        " (domains in the order taught, the accuracy matrices' columns: "
        + html.escape("; ".join(orders))
        + ")"
        if orders
        else ""
    )
    measured = results.get("measurement") or {}
    if "separate_memory_pass" not in measured:  # results of an earlier version
        timing = "Time and peak memory from one pass, timed while tracemalloc traced it."
    else:
        timing = "Time: seconds of learning (evaluations left out), with tracemalloc off; " + (
            "peak memory from a separate, untimed pass of the same steps under tracemalloc."
            if measured["separate_memory_pass"]
            else "no memory measured."
        )
    adapted = adaptation_lines(results)
    adaptation = (
        "<h2>First-session adaptation</h2><ul>"
        + "".join(f"<li>{html.escape(line)}</li>" for line in adapted)
        + "</ul>"
        if adapted
        else ""
    )
    ds = results["dataset"]
    esc = lambda value: html.escape(str(value), quote=True)  # noqa: E731  (every value read)
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>forgetless report: {esc(ds["name"])}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}figure{{display:inline-block;margin:8px}}
img{{max-width:520px}}pre{{background:#f4f4f4;padding:8px;font-size:12px}}</style></head><body>
<h1>forgetless report</h1>
<p>Dataset <b>{esc(ds["name"])}</b> ({esc(ds["n_train"])} train / {esc(ds["n_test"])} test,
{len(ds["classes"])} classes; {esc(ds.get("source", ""))}), encoder
<b>{esc(results["encoder"]["name"])}</b> ({esc(results["encoder"]["dim"])}-d), scenario
<b>{esc(next(iter(results["scenarios"].values()))["name"])}</b>{domains}, seeds
{esc(", ".join(results["scenarios"]))}; forgetless {esc(results["library_version"])}.</p>
<h2>Summary (mean ± std over seeds: the population std, ddof = 0)</h2>{table}
{failed}
<p>Accuracies in %. Final and average incremental accuracy per test sample; forgetting and BWT
from the accuracy matrix A[i][j], means over tasks; min-ACC, WC-ACC and the stability gap from
evaluations during training (De Lange et al.), every task's end included. Methods evaluated only
at task ends (the analytic ones, which learn a task in one step) have no dip to show: their
stability gap is the mean drop from one task's end to the next. (n=k): k seeds defined it.
{esc(timing)}</p>
{adaptation}
{("<p><b>" + html.escape(note) + "</b></p>") if note else ""}
<h2>Plots</h2>{figures}
<h2>Configuration</h2><pre>{config}</pre></body></html>"""
    (out / "report.html").write_text(page)


MAX_RESULTS_BYTES = 1 << 30  # runs write megabytes; a link to /dev/zero would never end


def write_report(run_dir: str | Path) -> list[str]:
    """(Re)build the CSV tables, plots and HTML page of a run; return the files written."""
    out = Path(run_dir)
    path = out / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {out} a forgetless run directory?")
    if not path.is_file() or path.stat().st_size > MAX_RESULTS_BYTES:
        raise ResultsFileError(
            f"{path} is not a results file forgetless wrote (not a regular file of at most "
            f"{MAX_RESULTS_BYTES >> 20} MiB)"
        )
    try:
        results = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path} is not UTF-8 text: not a results file") from None
    except RecursionError:
        raise ResultsFileError(f"{path} nests too deeply: not a results file") from None
    if not (isinstance(results, dict) and isinstance(results.get("methods"), dict)):
        raise ResultsFileError(f"{path} is not a results file forgetless wrote (no methods)")
    if not results["methods"]:
        raise ResultsFileError(f"{path} holds no method's results: nothing to report")
    empty = [
        name
        for name, entry in results["methods"].items()
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("seeds"), dict)
            and (entry["seeds"] or entry.get("failed"))  # a failed method is reported so
        )
    ]
    if empty:  # run() writes every seed of every method; an edited or foreign file may not
        raise ResultsFileError(
            f"{path}: method {empty[0]!r} has no seed's results (edited, or not written by "
            "forgetless run); remove it to report the others"
        )
    # Built aside and moved in only when every file is made: a refused results file leaves the
    # previous report as it was.
    with tempfile.TemporaryDirectory(dir=out, prefix=".report-") as staging:
        built = Path(staging)
        try:
            _write_csvs(results, built)
            note = ""
            try:
                images = _plots(results, built)
            except ImportError:
                images, note = [], f"Plots need matplotlib: {install_line('report', 'matplotlib')}"
            _html(results, built, images, note)
        except (
            KeyError,
            TypeError,
            ValueError,
            IndexError,
            AttributeError,
            StopIteration,
            OverflowError,
        ) as err:
            raise ResultsFileError(
                f"{path} is not a results file forgetless wrote, or was edited "
                f"({type(err).__name__}: {str(err)[:120]})"
            ) from None
        written = ["summary.csv", "accuracy_by_step.csv", *images, "report.html"]
        for name in written:
            os.replace(built / name, out / name)
    # plots of an earlier run in this folder that this one does not have (another method
    # list; no plots at all without matplotlib): they would be read as this run's
    ours = ("accuracy_by_step.png", "continual_evaluation.png")
    for stale in out.glob("*.png"):
        own = stale.name in ours or stale.name.startswith("accuracy_matrix_")
        if own and stale.name not in written and not stale.is_symlink() and stale.is_file():
            stale.unlink()
    return written


class ResultsFileError(ValueError):
    """A results.json whose contents a report cannot be built from."""
