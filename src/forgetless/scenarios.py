"""Continual-learning scenarios: which training samples arrive at each step, and what to test.

A :class:`Scenario` is a list of :class:`Step` s over one dataset's train and test splits, given
as index arrays, so any features (raw or cached encoder outputs) can be fed through it. Test
indices always come from the test split: no test sample is ever trained on. Every split is a
function of the labels and the seed.

- :func:`class_incremental` — ``B0-Inc10`` (equal steps) or ``B50-Inc10`` (a large first step),
  class order shuffled by the seed or given.
- :func:`domain_incremental` — the same classes, one domain per step (domain labels given;
  each step's ``domain`` names it).
- :func:`few_shot` — a base session with all samples of the base classes, then N-way K-shot
  sessions (the FSCIL protocol).
- :func:`online_blurry` — one pass over a stream of small batches; consecutive tasks overlap
  because a fraction of each task's samples come from other tasks' classes (blurry boundaries).

>>> import numpy as np
>>> y = np.repeat(np.arange(6), 4); scenario = class_incremental(y, y, initial=2, increment=2)
>>> [step.classes.tolist() for step in scenario.steps]
[[3, 2], [5, 4], [0, 1]]
>>> scenario.name
'B2-Inc2'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Step:
    """One step: the training indices that arrive, and the test indices that belong to it.

    ``batches`` splits ``train`` into the stream's small batches (online scenarios only);
    ``domain`` names the step's domain (domain-incremental scenarios only, else None).
    """

    train: np.ndarray
    test: np.ndarray
    classes: np.ndarray
    batches: list[np.ndarray] = field(default_factory=list)
    domain: str | int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str
    steps: list[Step]
    class_order: list[int]
    seed: int
    # online-blurry: per step, the test rows of every class the stream has shown so far
    shown_test: list[np.ndarray] | None = None

    def seen_test(self, step: int) -> np.ndarray:
        """Test indices of every class seen up to and including ``step``: those of the steps so
        far, or in an online-blurry stream, of every class it has shown (later tasks' classes
        appear early, in the blurry share)."""
        if self.shown_test is not None:
            return self.shown_test[step]
        return np.unique(np.concatenate([s.test for s in self.steps[: step + 1]]))

    @property
    def domain_order(self) -> list | None:
        """The domains in the order the steps teach them (domain-incremental only, else None)."""
        if self.kind != "domain-incremental":
            return None
        return [s.domain for s in self.steps]

    def describe(self) -> dict:
        """JSON-ready summary: sizes and classes per step, and in a domain-incremental scenario
        each step's domain (``domain_order`` lists them in the order taught)."""
        domains = self.domain_order
        return {
            "name": self.name,
            "kind": self.kind,
            "seed": self.seed,
            "class_order": self.class_order,
            **({"domain_order": domains} if domains is not None else {}),
            "steps": [
                {
                    **({"domain": s.domain} if domains is not None else {}),
                    "classes": s.classes.tolist(),
                    "n_train": int(s.train.size),
                    "n_test": int(s.test.size),
                    "n_batches": len(s.batches),
                    **(
                        {"n_test_seen": int(self.shown_test[i].size)}
                        if self.shown_test is not None
                        else {}
                    ),
                }
                for i, s in enumerate(self.steps)
            ],
        }


class OrderError(ValueError):
    """A class order that is not the classes, each once, written as the labels are."""


def _order(labels: np.ndarray, seed: int, order: list[int] | None) -> np.ndarray:
    classes = np.unique(labels)
    if order is None:
        return np.random.default_rng(seed).permutation(classes)
    # each entry of the labels' own kind: True is no class 1, nor 1.0 class 1, nor None a class
    kinds = {
        "i": (int, np.integer), "u": (int, np.integer), "f": (int, float, np.integer, np.floating),
        "b": (bool, np.bool_), "U": (str, np.str_), "S": (bytes, np.bytes_),
    }.get(classes.dtype.kind, object)  # fmt: skip
    boolean = classes.dtype.kind == "b"
    odd = [
        c
        for c in order
        if not isinstance(c, kinds) or (not boolean and isinstance(c, (bool, np.bool_)))
    ]
    if odd or sorted(order) != classes.tolist():
        wrong = f" ({odd[0]!r} is no class label)" if odd else ""
        raise OrderError(
            f"class order must list each class exactly once{wrong}; classes are {classes.tolist()}"
        )
    return np.asarray(order)


def class_incremental(
    y_train: np.ndarray,
    y_test: np.ndarray,
    initial: int = 0,
    increment: int = 10,
    seed: int = 0,
    order: list[int] | None = None,
) -> Scenario:
    """``B{initial}-Inc{increment}``: the first step brings ``initial`` classes (``increment``
    when 0), every later step ``increment`` new classes, until all classes have arrived."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    class_order = _order(y_train, seed, order)
    if increment < 1 or initial < 0 or initial > class_order.size:
        raise ValueError(
            f"need increment >= 1 and 0 <= initial <= {class_order.size} classes, got "
            f"initial={initial}, increment={increment}"
        )
    first = initial or increment
    groups = [class_order[:first]] + [
        class_order[i : i + increment] for i in range(first, class_order.size, increment)
    ]
    steps = [
        Step(
            train=np.flatnonzero(np.isin(y_train, g)),
            test=np.flatnonzero(np.isin(y_test, g)),
            classes=g,
        )
        for g in groups
    ]
    return Scenario(
        f"B{initial}-Inc{increment}", "class-incremental", steps, class_order.tolist(), seed
    )


def domain_incremental(
    y_train: np.ndarray,
    y_test: np.ndarray,
    domain_train: np.ndarray,
    domain_test: np.ndarray,
    seed: int = 0,
    order: list | None = None,
) -> Scenario:
    """One step per domain, in an order shuffled by the seed (or given); all classes each step.

    >>> y = np.arange(6) % 2; d = np.array(["a", "a", "b", "b", "c", "c"])
    >>> domain_incremental(y, y, d, d, seed=1).domain_order
    ['a', 'b', 'c']
    >>> domain_incremental(y, y, d, d, seed=2).describe()["steps"][0]["domain"]
    'c'
    """
    domain_train, domain_test = np.asarray(domain_train), np.asarray(domain_test)
    domains = np.unique(domain_train)
    if order is None:
        domain_order = np.random.default_rng(seed).permutation(domains)
    else:
        domain_order = np.asarray(order)
        if sorted(domain_order.tolist()) != domains.tolist():
            raise ValueError(f"domain order must list each domain once: {domains.tolist()}")
    steps = [
        Step(
            train=np.flatnonzero(domain_train == d),
            test=np.flatnonzero(domain_test == d),
            classes=np.unique(np.asarray(y_train)[domain_train == d]),
            domain=d.item() if isinstance(d, np.generic) else d,  # a plain str or int: JSON
        )
        for d in domain_order
    ]
    return Scenario(
        f"domains-{len(steps)}", "domain-incremental", steps, np.unique(y_train).tolist(), seed
    )


def few_shot(
    y_train: np.ndarray,
    y_test: np.ndarray,
    base: int,
    ways: int,
    shots: int,
    seed: int = 0,
    order: list[int] | None = None,
) -> Scenario:
    """A base session with every sample of ``base`` classes, then ``ways``-way ``shots``-shot
    sessions drawing ``shots`` training samples per new class (all their test samples)."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    class_order = _order(y_train, seed, order)
    if not 0 < base < class_order.size or ways < 1 or shots < 1:
        raise ValueError(f"need 0 < base < {class_order.size}, ways >= 1, shots >= 1")
    rng = np.random.default_rng(seed + 1)
    steps = [
        Step(
            train=np.flatnonzero(np.isin(y_train, class_order[:base])),
            test=np.flatnonzero(np.isin(y_test, class_order[:base])),
            classes=class_order[:base],
        )
    ]
    for i in range(base, class_order.size, ways):
        group = class_order[i : i + ways]
        picks = []
        for c in group:
            members = np.flatnonzero(y_train == c)
            if members.size < shots:
                raise ValueError(f"class {c} has {members.size} training samples < {shots} shots")
            picks.append(np.sort(rng.choice(members, size=shots, replace=False)))
        steps.append(
            Step(
                train=np.concatenate(picks),
                test=np.flatnonzero(np.isin(y_test, group)),
                classes=group,
            )
        )
    return Scenario(
        f"FSCIL-B{base}-{ways}way-{shots}shot", "few-shot", steps, class_order.tolist(), seed
    )


def online_blurry(
    y_train: np.ndarray,
    y_test: np.ndarray,
    n_tasks: int = 5,
    blurry: float = 0.1,
    batch_size: int = 16,
    seed: int = 0,
    order: list[int] | None = None,
) -> Scenario:
    """Online class-incremental with blurry task boundaries, one pass over the stream.

    Classes are split into ``n_tasks`` disjoint groups. Each task's stream holds its own classes'
    samples plus a ``blurry`` fraction drawn from the *other* tasks' classes (so classes of a
    later task already appear earlier, and earlier ones reappear), shuffled and cut into
    ``batch_size`` batches. Every training sample appears exactly once in the whole stream.
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    class_order = _order(y_train, seed, order)
    if not 1 <= n_tasks <= class_order.size or not 0.0 <= blurry < 1.0 or batch_size < 1:
        raise ValueError("need 1 <= n_tasks <= classes, 0 <= blurry < 1 and batch_size >= 1")
    rng = np.random.default_rng(seed + 2)
    groups = np.array_split(class_order, n_tasks)
    own = [rng.permutation(np.flatnonzero(np.isin(y_train, g))) for g in groups]
    # Move a `blurry` share of every task's samples to another (random) task's stream.
    streams: list[list[np.ndarray]] = [[] for _ in range(n_tasks)]
    for t, members in enumerate(own):
        n_move = int(round(blurry * members.size)) if n_tasks > 1 else 0
        streams[t].append(members[n_move:])
        if n_move:
            targets = rng.choice([u for u in range(n_tasks) if u != t], size=n_move)
            for u in range(n_tasks):
                streams[u].append(members[:n_move][targets == u])
    steps = []
    for t, g in enumerate(groups):
        train = rng.permutation(np.concatenate(streams[t]))
        batches = [train[i : i + batch_size] for i in range(0, train.size, batch_size)]
        steps.append(
            Step(train=train, test=np.flatnonzero(np.isin(y_test, g)), classes=g, batches=batches)
        )
    shown: set = set()
    shown_test = []
    for step in steps:
        shown.update(np.unique(y_train[step.train]).tolist())
        shown_test.append(np.flatnonzero(np.isin(y_test, sorted(shown))))
    name = f"online-blurry{int(round(100 * blurry))}-{n_tasks}tasks-b{batch_size}"
    return Scenario(name, "online-blurry", steps, class_order.tolist(), seed, shown_test)
