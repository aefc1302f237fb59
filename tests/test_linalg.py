"""Host linear algebra: the operations read only G's upper triangle; numpy's BLAS kept quiet."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import threadpoolctl

from forgetless.linalg import (
    HOST,
    numpy_blas_quiet,
    oas_shrinkage,
    oas_shrinkage_of_rows,
    one_thread,
    ridge_solve,
)
from forgetless.statistics import SufficientStatistics


def _upper_with_noise_below(sym: np.ndarray, seed: int = 0) -> np.ndarray:
    """sym's upper triangle, with random values below the diagonal (which must not be read)."""
    noise = np.random.default_rng(seed).standard_normal(sym.shape)
    return np.asfortranarray(np.triu(sym) + np.tril(noise, -1))


@pytest.mark.parametrize("m", [1, 7, 256, 300, 513])
def test_operations_read_only_the_upper_triangle(m):
    rng = np.random.default_rng(m)
    H = rng.standard_normal((m + 5, m))
    sym = H.T @ H
    upper = _upper_with_noise_below(sym)
    block = rng.standard_normal((m, 3))
    np.testing.assert_allclose(HOST.product(upper, block), sym @ block, rtol=1e-12, atol=1e-9)
    assert HOST.norm1(upper) == pytest.approx(np.abs(sym).sum(axis=0).max(), rel=1e-12)
    factor = np.triu(HOST.shifted_cholesky(upper, 0.5))  # below its diagonal: not the factor
    np.testing.assert_allclose(factor.T @ factor, sym + 0.5 * np.eye(m), rtol=1e-10, atol=1e-9)
    targets = rng.standard_normal((m, 2))
    np.testing.assert_allclose(
        ridge_solve(upper, targets, 0.5),
        np.linalg.solve(sym + 0.5 * np.eye(m), targets),
        rtol=1e-8,
        atol=1e-10,
    )


def test_centred_gram_is_the_upper_triangle_of_the_centred_sums():
    rng = np.random.default_rng(0)
    H = rng.standard_normal((40, 12)) + 3.0
    stats = SufficientStatistics(12)
    stats.add(H, rng.integers(0, 3, 40), n_classes=3)
    mean = H.mean(axis=0)
    centred = HOST.gram(stats, mean)
    expected = (H - mean).T @ (H - mean)
    np.testing.assert_allclose(np.triu(centred), np.triu(expected), rtol=1e-10, atol=1e-9)
    assert centred.flags.f_contiguous and not np.shares_memory(centred, stats.gram_upper)


def test_numpy_blas_quiet_limits_numpy_only_and_restores():
    threads = _threads

    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # numpy's own BLAS on 2 threads
        outer = threads()
        own = {p for p in outer if "numpy.libs" in p}
        if own:  # a wheel's BLAS of numpy's own (none where numpy and scipy share one)
            assert all(outer[p] == 2 for p in own)
            with numpy_blas_quiet():
                assert all(threads()[p] == 1 for p in own)
            assert threads() == outer
    before = threads()
    with numpy_blas_quiet():
        inside = threads()
        np.ones((64, 64)) @ np.ones((64, 64))  # numpy still computes, on one thread
    assert threads() == before
    changed = {path for path in before if inside[path] != before[path]}
    # Only a BLAS that numpy ships itself is limited (none where numpy and scipy share one).
    assert all("numpy" in path for path in changed)
    assert all(inside[path] == 1 for path in changed)
    own = {p for p, n in before.items() if "numpy.libs" in p and n > 1}  # numpy's wheel's BLAS
    assert own <= changed


def _threads() -> dict[str, int]:
    return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}


def test_numpy_blas_quiet_nested_and_from_threads_restores_once():
    from concurrent.futures import ThreadPoolExecutor

    before = _threads()

    def work(_: int) -> None:
        with numpy_blas_quiet(), numpy_blas_quiet():
            np.ones((32, 32)) @ np.ones((32, 32))

    # (not inside a context of this thread: the threads' contexts wait for its compute lock)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(16)))
    assert _threads() == before


def test_limit_contexts_leave_no_limit_behind_whatever_order_they_leave_in():
    """The limits in force follow from the contexts active: any one_thread puts every pool on
    one thread; the counts found at the first entry come back when the last context leaves.
    (Before, each context restored what it had found: one that left last restored the limit
    of one that had left before it, for good.)"""
    before = _threads()
    quiet = numpy_blas_quiet()
    quiet.__enter__()
    single = one_thread()
    single.__enter__()
    assert set(_threads().values()) == {1}
    quiet.__exit__(None, None, None)  # leaves first: one_thread is still active
    assert set(_threads().values()) == {1}
    single.__exit__(None, None, None)
    assert _threads() == before


def test_limit_contexts_of_two_threads_take_turns_and_leave_no_limit_behind():
    """The sequence that left numpy's BLAS on one thread for good: thread A in
    numpy_blas_quiet (a ridge head's fit), thread B entering one_thread (a compact batch's
    factor) before A leaves. Now B's context waits for A's to leave (the compute lock), and the
    thread counts after both are those before."""
    before = _threads()
    a_in, b_trying, b_in, a_out = (threading.Event() for _ in range(4))
    order: list[str] = []

    def a() -> None:
        with numpy_blas_quiet():
            a_in.set()
            b_trying.wait(10)
            b_in.wait(0.5)  # B comes in here only if nothing keeps it out
            order.append("A leaves")
        a_out.set()

    def b() -> None:
        a_in.wait(10)
        b_trying.set()
        with one_thread():
            order.append("B enters")
            b_in.set()
            a_out.wait(10)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert _threads() == before
    assert order == ["A leaves", "B enters"]


def test_single_precision_products_and_factorising_into_a_buffer():
    """The rough products (float32 G, for placing the first factorisation) stay within float32
    rounding of the exact ones; a factorisation written into a reused buffer is bit for bit the
    fresh one, and a failed one returns None."""
    rng = np.random.default_rng(3)
    H = rng.standard_normal((400, 300))
    sym = H.T @ H
    upper = _upper_with_noise_below(sym)
    block = rng.standard_normal((300, 5))
    rough = HOST.single(upper)
    assert rough.dtype == np.float32 and rough.flags.f_contiguous
    exact = sym @ block
    error = np.abs(HOST.product(rough, block) - exact).max()
    assert error <= 1e-5 * np.abs(exact).max()
    fresh = HOST.shifted_cholesky(upper, 0.5)
    buffer = np.asfortranarray(rng.standard_normal((300, 300)))
    reused = HOST.shifted_cholesky(upper, 0.5, out=buffer)
    assert np.array_equal(np.triu(reused), np.triu(fresh))
    assert HOST.shifted_cholesky(-upper, 0.5, out=buffer) is None


@pytest.mark.filterwarnings("ignore:Only one sample available")  # scikit-learn's, at n = 1
@pytest.mark.parametrize("n, d", [(15, 40), (40, 15), (300, 8), (2, 30), (1, 5), (50, 1)])
@pytest.mark.parametrize("scale", [1.0, 1e-150, 1e150])
def test_oas_shrinkage_is_scikit_learns_from_either_gram(n, d, scale):
    """The one OAS formula (LDA head, guided layer, peers) gives scikit-learn's intensity for
    centred rows, from the n x n Gram or the d x d covariance alike, at any finite scale."""
    from sklearn.covariance import oas

    rows = np.random.default_rng(n * d).standard_normal((n, d)) * np.linspace(0.2, 3.0, d)
    expected = oas(rows, assume_centered=True)[1]
    got = oas_shrinkage_of_rows(rows * scale)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    covariance = rows.T @ rows / n
    assert oas_shrinkage(covariance, n) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert oas_shrinkage_of_rows(np.zeros((n, d))) == (0.0 if d == 1 else 1.0)


def test_single_cholesky_factorises_the_float32_copy_for_a_rough_look():
    """The lambda search's first look: G's float32 copy factorised in place at half a float64
    factorisation's cost, solves in float32 to float32's accuracy; None where float32 finds
    G + alpha I not positive definite."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((80, 30))
    G, B = np.asfortranarray(A.T @ A), rng.standard_normal((30, 4))
    upper = HOST.single_cholesky(HOST.single(G), 0.5)
    assert upper.dtype == np.float32
    solved = HOST.cho_solve(upper, B)
    assert solved.dtype == np.float32
    np.testing.assert_allclose(solved, np.linalg.solve(G + 0.5 * np.eye(30), B), rtol=1e-3)
    norms = HOST.probe_norms(upper, B)
    exact = np.einsum("ij,ij->j", B, np.linalg.solve(G + 0.5 * np.eye(30), B))
    np.testing.assert_allclose(norms, exact, rtol=1e-3)
    assert HOST.single_cholesky(HOST.single(np.asfortranarray(-G)), 0.5) is None
