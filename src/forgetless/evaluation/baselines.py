"""Gradient-trained baselines on the same frozen features: what the analytic learner is up against.

:class:`SGDHead` is a linear softmax head trained by mini-batch SGD with momentum, its output
layer growing as classes appear (as class-incremental methods do). Three variants:

- ``"finetune"``: no protection against forgetting (the lower bound);
- ``"replay"``: experience replay from a small reservoir buffer (a uniform sample of every
  row seen, not balanced by class);
- ``"lwf"``: learning without forgetting, distilling the previous head's outputs on old classes.

Training calls ``on_iteration(iteration)`` every ``eval_every`` steps, which is how the runner
measures accuracy *during* training (min-ACC, WC-ACC, the stability gap).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((200, 5)); y = (X[:, 0] > 0).astype(int)
>>> head = SGDHead(epochs=5, seed=0).partial_fit(X, y)
>>> float((head.predict(X) == y).mean()) > 0.9
True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import softmax

METHODS = ("finetune", "replay", "lwf")


class SGDHead:
    def __init__(
        self,
        method: str = "finetune",
        lr: float = 0.05,
        epochs: int = 5,
        batch_size: int = 32,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        buffer_size: int = 200,
        temperature: float = 2.0,
        distill_weight: float = 1.0,
        seed: int = 0,
        eval_every: int = 0,
        on_iteration: Callable[[int], None] | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.method, self.lr, self.epochs, self.batch_size = method, lr, epochs, batch_size
        self.weight_decay, self.momentum = weight_decay, momentum
        self.buffer_size, self.temperature, self.distill_weight = (
            buffer_size,
            temperature,
            distill_weight,
        )
        self.rng = np.random.default_rng(seed)
        self.eval_every, self.on_iteration = eval_every, on_iteration
        self.classes_ = np.array([], dtype=np.int64)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.iteration = 0
        self._buffer_X: np.ndarray | None = None
        self._buffer_y = np.array([], dtype=np.int64)
        self._seen = 0

    # ------------------------------------------------------------------ model
    def _grow(self, labels: np.ndarray, d: int) -> None:
        new = np.setdiff1d(labels, self.classes_)
        if self.W is None:
            self.W, self.b = np.zeros((d, 0)), np.zeros(0)
            self._vW, self._vb = np.zeros((d, 0)), np.zeros(0)
        if new.size:
            self.classes_ = np.concatenate([self.classes_, new])
            self.W = np.hstack([self.W, np.zeros((d, new.size))])
            self.b = np.concatenate([self.b, np.zeros(new.size)])
            self._vW = np.hstack([self._vW, np.zeros((d, new.size))])
            self._vb = np.concatenate([self._vb, np.zeros(new.size)])

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return X @ self.W + self.b

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(X) == y).mean())

    # ------------------------------------------------------------------ training
    def partial_fit(self, X: np.ndarray, y: np.ndarray) -> SGDHead:
        """Train on one task (``epochs`` passes) or, with ``epochs=1``, one online batch."""
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        old_classes = self.classes_.copy()
        self._grow(np.unique(y), X.shape[1])
        index = np.searchsorted(self.classes_, y, sorter=np.argsort(self.classes_))
        index = np.argsort(self.classes_)[index]
        teacher = (
            (self.W.copy(), self.b.copy(), old_classes.size)
            if (self.method == "lwf" and old_classes.size)
            else None
        )
        for _ in range(self.epochs):
            # Shuffled epochs; a single pass (online use) keeps the stream's order.
            order = self.rng.permutation(len(y)) if self.epochs > 1 else np.arange(len(y))
            for start in range(0, len(y), self.batch_size):
                rows = order[start : start + self.batch_size]
                self._step(X[rows], index[rows], teacher)
        if self.method == "replay":
            self._remember(X, index)
        return self

    def _step(self, X: np.ndarray, target: np.ndarray, teacher) -> None:
        if self.method == "replay" and self._buffer_y.size:
            pick = self.rng.choice(
                self._buffer_y.size, size=min(len(target), self._buffer_y.size), replace=False
            )
            X = np.vstack([X, self._buffer_X[pick]])
            target = np.concatenate([target, self._buffer_y[pick]])
        probs = softmax(self.decision_function(X), axis=1)
        grad = probs
        grad[np.arange(len(target)), target] -= 1.0
        grad /= len(target)
        if teacher is not None:
            W0, b0, n_old = teacher
            T = self.temperature
            old_student = softmax((X @ self.W[:, :n_old] + self.b[:n_old]) / T, axis=1)
            old_teacher = softmax((X @ W0[:, :n_old] + b0[:n_old]) / T, axis=1)
            grad[:, :n_old] += self.distill_weight * (old_student - old_teacher) / len(target)
        gW = X.T @ grad + self.weight_decay * self.W
        gb = grad.sum(axis=0)
        self._vW = self.momentum * self._vW - self.lr * gW
        self._vb = self.momentum * self._vb - self.lr * gb
        self.W += self._vW
        self.b += self._vb
        self.iteration += 1
        if (
            self.on_iteration is not None
            and self.eval_every
            and self.iteration % self.eval_every == 0
        ):
            self.on_iteration(self.iteration)

    def _remember(self, X: np.ndarray, target: np.ndarray) -> None:
        """Reservoir sampling: every sample seen so far has the same chance to be in the buffer."""
        if self._buffer_X is None:
            self._buffer_X = np.empty((0, X.shape[1]))
        for row, t in zip(X, target, strict=True):
            self._seen += 1
            if self._buffer_y.size < self.buffer_size:
                self._buffer_X = np.vstack([self._buffer_X, row])
                self._buffer_y = np.append(self._buffer_y, t)
            else:
                slot = self.rng.integers(self._seen)
                if slot < self.buffer_size:
                    self._buffer_X[slot], self._buffer_y[slot] = row, t
