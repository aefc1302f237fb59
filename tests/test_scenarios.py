"""Scenario splits: no leakage, reproducible, the right classes per step."""

from __future__ import annotations

import numpy as np
import pytest

from forgetless.scenarios import class_incremental, domain_incremental, few_shot, online_blurry

rng = np.random.default_rng(0)
Y_TRAIN = np.repeat(np.arange(20), 30)
Y_TEST = np.repeat(np.arange(20), 10)


def test_class_incremental_equal_steps():
    s = class_incremental(Y_TRAIN, Y_TEST, initial=0, increment=5, seed=3)
    assert s.name == "B0-Inc5" and len(s.steps) == 4
    assert [step.classes.size for step in s.steps] == [5, 5, 5, 5]
    all_train = np.concatenate([step.train for step in s.steps])
    assert np.array_equal(np.sort(all_train), np.arange(Y_TRAIN.size))  # each sample once
    for step in s.steps:
        assert set(Y_TRAIN[step.train]) == set(step.classes.tolist())
        assert set(Y_TEST[step.test]) == set(step.classes.tolist())
    assert sorted(s.class_order) == list(range(20))


def test_class_incremental_large_first_step_and_given_order():
    s = class_incremental(Y_TRAIN, Y_TEST, initial=10, increment=5, order=list(range(19, -1, -1)))
    assert s.name == "B10-Inc5"
    assert [step.classes.size for step in s.steps] == [10, 5, 5]
    assert s.steps[0].classes.tolist() == list(range(19, 9, -1))
    with pytest.raises(ValueError, match="each class exactly once"):
        class_incremental(Y_TRAIN, Y_TEST, order=[0, 1, 2])


def test_same_seed_same_split_other_seed_other_order():
    a = class_incremental(Y_TRAIN, Y_TEST, increment=4, seed=1)
    b = class_incremental(Y_TRAIN, Y_TEST, increment=4, seed=1)
    c = class_incremental(Y_TRAIN, Y_TEST, increment=4, seed=2)
    assert a.class_order == b.class_order != c.class_order
    for x, y in zip(a.steps, b.steps, strict=True):
        assert np.array_equal(x.train, y.train) and np.array_equal(x.test, y.test)


def test_domain_incremental():
    domains_train = np.tile(np.arange(3), Y_TRAIN.size // 3)
    domains_test = np.tile(np.arange(3), Y_TEST.size // 3 + 1)[: Y_TEST.size]
    s = domain_incremental(Y_TRAIN, Y_TEST, domains_train, domains_test, seed=0)
    assert len(s.steps) == 3
    for step in s.steps:
        d = domains_train[step.train[0]]
        assert np.all(domains_train[step.train] == d) and np.all(domains_test[step.test] == d)
        assert step.classes.size == 20
    assert sorted(domains_train[step.train[0]] for step in s.steps) == [0, 1, 2]  # one each
    every = np.sort(np.concatenate([step.train for step in s.steps]))
    np.testing.assert_array_equal(every, np.arange(Y_TRAIN.size))


def test_each_domain_step_names_its_domain_in_the_order_taught():
    """The domain order changes with the seed: each step (and describe(), which results.json
    holds) names its domain, so the columns of an accuracy matrix can be traced to one."""
    names = np.array(["original", "invert", "rotate90", "noise"])
    domains_train = names[np.tile(np.arange(4), Y_TRAIN.size // 4)]
    domains_test = names[np.tile(np.arange(4), Y_TEST.size // 4)]
    orders = set()
    for seed in range(4):
        s = domain_incremental(Y_TRAIN, Y_TEST, domains_train, domains_test, seed=seed)
        taught = [str(domains_train[step.train[0]]) for step in s.steps]
        assert [step.domain for step in s.steps] == taught == s.domain_order
        described = s.describe()
        assert described["domain_order"] == taught
        assert [step["domain"] for step in described["steps"]] == taught
        assert all(type(d) is str for d in described["domain_order"])  # JSON-ready
        orders.add(tuple(taught))
    assert len(orders) > 1  # the seed changes the order
    given = domain_incremental(Y_TRAIN, Y_TEST, domains_train, domains_test, order=sorted(names))
    assert given.domain_order == sorted(names)
    crisp = class_incremental(Y_TRAIN, Y_TEST, increment=5, seed=0)
    assert crisp.steps[0].domain is None and crisp.domain_order is None
    assert "domain_order" not in crisp.describe() and "domain" not in crisp.describe()["steps"][0]


def test_few_shot_sessions():
    s = few_shot(Y_TRAIN, Y_TEST, base=10, ways=5, shots=3, seed=0)
    assert [step.train.size for step in s.steps] == [300, 15, 15]
    for step in s.steps[1:]:
        counts = np.bincount(Y_TRAIN[step.train], minlength=20)
        assert sorted(set(counts[step.classes].tolist())) == [3]
        assert counts.sum() == 15
    with pytest.raises(ValueError, match="shots"):
        few_shot(Y_TRAIN, Y_TEST, base=10, ways=5, shots=31)


def test_online_blurry_stream():
    s = online_blurry(Y_TRAIN, Y_TEST, n_tasks=4, blurry=0.1, batch_size=16, seed=0)
    stream = np.concatenate([b for step in s.steps for b in step.batches])
    assert np.array_equal(np.sort(stream), np.arange(Y_TRAIN.size))  # one pass, each once
    assert all(b.size <= 16 for step in s.steps for b in step.batches)
    for step in s.steps:
        foreign = ~np.isin(Y_TRAIN[step.train], step.classes)
        assert 0.03 < foreign.mean() < 0.2  # blurry: other tasks' classes appear
        assert set(Y_TEST[step.test]) == set(step.classes.tolist())
    crisp = online_blurry(Y_TRAIN, Y_TEST, n_tasks=4, blurry=0.0, seed=0)
    assert all(np.isin(Y_TRAIN[st.train], st.classes).all() for st in crisp.steps)


def test_seen_test_accumulates():
    s = class_incremental(Y_TRAIN, Y_TEST, increment=5, seed=0)
    assert s.seen_test(0).size == 50 and s.seen_test(3).size == Y_TEST.size


def test_online_blurry_scores_every_class_the_stream_has_shown():
    """In a blurry stream later tasks' classes appear early: "accuracy on every class seen"
    after a step covers each class the stream has shown so far (it used to cover the nominal
    task groups only), and every test row by the last step."""
    s = online_blurry(Y_TRAIN, Y_TEST, n_tasks=4, blurry=0.1, batch_size=16, seed=0)
    for i in range(len(s.steps)):
        shown = np.unique(np.concatenate([Y_TRAIN[st.train] for st in s.steps[: i + 1]]))
        np.testing.assert_array_equal(s.seen_test(i), np.flatnonzero(np.isin(Y_TEST, shown)))
    assert s.seen_test(0).size > s.steps[0].test.size  # the blurry share shows other classes
    assert s.seen_test(3).size == Y_TEST.size
    assert s.describe()["steps"][0]["n_test_seen"] == s.seen_test(0).size
    crisp = class_incremental(Y_TRAIN, Y_TEST, increment=5, seed=0)
    assert "n_test_seen" not in crisp.describe()["steps"][0]


def test_a_class_order_of_float_or_bool_labels_is_taken_as_written():
    y = np.repeat([0.0, 1.0, 2.0], 3)
    order = class_incremental(y, y, increment=1, order=[2.0, 0.0, 1.0]).class_order
    assert order == [2.0, 0.0, 1.0]
    b = np.repeat([True, False], 3)
    assert class_incremental(b, b, increment=1, order=[True, False]).class_order == [True, False]
