"""The sums' bookkeeping: the symmetric G from its upper triangle, and in-place combination,
bit for bit what the plain formulas give (every route to the same sums must agree exactly)."""

from __future__ import annotations

import numpy as np
import pytest

from forgetless.statistics import SufficientStatistics, symmetrize_upper


@pytest.mark.parametrize("m", [1, 255, 256, 257, 600])
@pytest.mark.parametrize("order", ["C", "F"])
def test_symmetrize_upper_mirrors_the_upper_triangle_exactly(m, order):
    upper = np.array(np.random.default_rng(m).standard_normal((m, m)), order=order)
    full = symmetrize_upper(upper)
    expected = np.triu(upper) + np.triu(upper, 1).T
    np.testing.assert_array_equal(full, expected)
    np.testing.assert_array_equal(upper, np.array(upper))  # the input is left as it was


def test_adding_and_subtracting_sums_is_exact():
    rng = np.random.default_rng(0)
    H, y = rng.standard_normal((300, 40)), rng.integers(0, 3, 300)
    a, b = SufficientStatistics(40, 3), SufficientStatistics(40, 3)
    a.add(H[:200], y[:200])
    b.add(H[200:], y[200:])
    gram_a, sums_a = a.gram, a.class_sums.copy()
    a += b
    np.testing.assert_array_equal(a.gram, symmetrize_upper(np.triu(gram_a) + np.triu(b.gram)))
    np.testing.assert_array_equal(a.class_sums, sums_a + b.class_sums)
    a -= b
    np.testing.assert_array_equal(a.class_sums, (sums_a + b.class_sums) - b.class_sums)
    assert a.counts.tolist() == np.bincount(y[:200], minlength=3).tolist()
