"""The evidence an adaptation must show before its weights are kept (numpy only: no torch)."""

from __future__ import annotations

import numpy as np

from forgetless.adaptation.training import _paired_evidence


def _null_cases(cases: int, rows: int, epochs: int, seed: int) -> list[tuple]:
    """Validation losses where training changed nothing but noise: per row, each epoch's loss
    is the unchanged encoder's plus a change as likely up as down, correlated across epochs
    (each epoch moves on from the last, as training does)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(cases):
        plain = rng.gamma(2.0, 0.3, rows)
        change = np.cumsum(rng.normal(0.0, 0.1, (epochs, rows)), axis=0)
        out.append((plain, plain + change))
    return out


def test_the_best_of_several_epochs_passes_by_chance_no_more_often_than_the_level() -> None:
    # 25 held-out rows (openclipart's first task), 8 epochs tried: the best epoch chosen on
    # these rows and tested alone passes at 5 % far more often than 5 % of the time; the test
    # of the largest gain over the epochs keeps to its level.
    cases = _null_cases(300, 25, 8, seed=0)
    alone = chosen = 0
    for plain, epochs in cases:
        best = int(np.argmin(epochs.mean(axis=1)))
        alone += _paired_evidence(plain, epochs[best : best + 1], draws=999)["p_value"] < 0.05
        chosen += _paired_evidence(plain, epochs, draws=999)["p_value"] < 0.05
    assert alone / len(cases) > 0.1  # 15 % (the z-test of the best epoch: 18 %)
    assert chosen / len(cases) < 0.08  # 5 % within sampling error (300 cases): 5.7 %


def test_a_real_gain_is_found_and_the_p_value_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    plain = rng.gamma(2.0, 0.3, 100)
    epochs = np.stack([plain - 0.05 + rng.normal(0, 0.1, 100) for _ in range(6)])
    first = _paired_evidence(plain, epochs, seed=3)
    assert first["p_value"] < 0.01 and first["epochs_compared"] == 6
    assert first["adapted_loss"] < first["plain_loss"]
    assert _paired_evidence(plain, epochs, seed=3) == first  # same seed, same p-value
    assert first["p_value"] >= 1 / 10000  # the observed flip counts: never 0


def test_few_rows_list_every_flip() -> None:
    # 3 rows, one epoch, every gain positive: only the observed signs (1 of 8) reach it
    plain = np.array([1.0, 1.0, 1.0])
    assert _paired_evidence(plain, np.array([[0.5, 0.6, 0.7]]))["p_value"] == 1 / 8
    # no epoch trained: nothing to keep
    assert _paired_evidence(plain, np.zeros((0, 3)))["p_value"] == 1.0


def test_a_diverged_epoch_is_no_evidence() -> None:
    # an epoch whose losses are NaN (training diverged) is left out, never counted as a gain
    plain = np.array([1.0, 0.9, 1.1, 1.0, 1.2])
    epochs = np.stack([plain - 0.01 * np.array([1, -1, 1, -1, 1]), np.full(5, np.nan)])
    e = _paired_evidence(plain, epochs)
    assert e["epochs_compared"] == 1 and e["p_value"] > 0.05
    assert np.isfinite(e["adapted_loss"])
    # the unchanged encoder's losses not finite: nothing to compare
    bad = _paired_evidence(np.array([np.nan, 1.0, 1.0]), np.array([[0.5, 0.5, 0.5]]))
    assert bad["p_value"] == 1.0 and bad["epochs_compared"] == 0 and bad["plain_loss"] is None


def test_the_random_flips_follow_the_seed() -> None:
    rng = np.random.default_rng(2)
    plain = rng.gamma(2.0, 0.3, 40)
    epochs = np.stack([plain + rng.normal(-0.02, 0.2, 40) for _ in range(3)])
    p = {s: _paired_evidence(plain, epochs, seed=s, draws=999)["p_value"] for s in (0, 1)}
    assert p[0] != p[1] and abs(p[0] - p[1]) < 0.1  # other flips, the same test
