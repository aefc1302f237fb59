"""Progress where the user looks: a tqdm bar on a terminal, tqdm.auto's widget in a Jupyter
kernel, plain periodic lines in logs (stderr a file or a pipe), nothing with progress=False."""

from __future__ import annotations

import io
import sys
import types

import numpy as np
import pytest

from forgetless.encoders import base
from forgetless.encoders.base import Encoder, LogProgress, in_notebook, progress_bar, progress_mode


class Slow(Encoder):
    """An encoder of 4-wide features, one batch of 10 items at a time."""

    name, dim, modality, batch_size = "slow", 4, "image", 10

    def _encode_batch(self, batch):
        return np.ones((len(batch), 4))


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def kernel(monkeypatch):
    """A fake Jupyter kernel: IPython's get_ipython() returns a shell configured by IPKernelApp."""
    shell = types.SimpleNamespace(config={"IPKernelApp": {"connection_file": "k.json"}})
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", fake)
    return shell


def test_the_mode_follows_where_stderr_goes(monkeypatch, kernel):
    assert in_notebook()
    assert progress_mode(None) == "notebook" and progress_mode(True) == "notebook"
    assert progress_mode(False) == "off"
    kernel.config = {"TerminalIPythonApp": {}}  # IPython in a terminal is not a notebook
    assert not in_notebook()
    monkeypatch.delitem(sys.modules, "IPython")
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress_mode(None) == "bar"
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_mode(None) == "log" and progress_mode(True) == "bar"
    assert progress_mode(False) == "off"


def test_a_notebook_gets_the_tqdm_auto_widget(monkeypatch, kernel):
    import tqdm.auto

    made = []

    class Recorder:
        def __init__(self, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    progress_bar(10, "slow", None, "img")
    progress_bar(10, "slow", False, "img")
    assert [m["disable"] for m in made] == [False, True]


def test_logs_get_a_line_per_tenth_with_items_per_second(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(base, "LOG_QUIET_S", 0.0)
    Slow().encode(list(range(100)))
    lines = err.getvalue().splitlines()
    assert len(lines) == 10, lines  # 10 %, 20 %, ..., 90 % and the closing line
    assert lines[0].startswith("slow: 10/100 img (10 %), ") and "img/s" in lines[0]
    assert lines[-1].startswith("slow: 100/100 img in ")
    err.truncate(0)
    err.seek(0)
    Slow().encode(list(range(100)), progress=False)
    assert err.getvalue() == ""


def test_quick_runs_leave_logs_silent(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    Slow().encode(list(range(100)))  # well under LOG_QUIET_S
    assert err.getvalue() == ""


def test_slow_runs_write_every_30_seconds_between_tenths():
    times = iter([0.0, 40.0, 80.0, 81.0]).__next__
    out = io.StringIO()
    bar = LogProgress(1000, "minilm", "text", stream=out, clock=times)
    bar.update(10)  # 1 %, 40 s in: the time rule
    bar.update(10)  # 2 %, 40 s later: again
    bar.close()
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "minilm: 10/1000 text (1 %), 0.2 text/s, ~3960 s left"
    assert lines[1].startswith("minilm: 20/1000 text (2 %)")
    assert lines[2] == "minilm: 20/1000 text in 81 s (0.2 text/s)"
    assert len(lines) == 3
