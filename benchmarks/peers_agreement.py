"""Each peer in ``forgetless.evaluation.peers`` against a direct transcription of its procedure.

    python benchmarks/peers_agreement.py

Writes ``benchmarks/results/peers_agreement.json``. On the features ``forgetless run`` hands each
peer (the encoder's, as they come: ``forgetless.experiment.method_features``), the same class order
and random draws (the transcription is handed our random weights, so that it checks the
procedure and not the generator), after every task: accuracy on all classes seen of both, the
share of equal predictions and the largest difference of scores (relative to the largest
score). The transcriptions follow the peers' public code step by step, in its own framework:

- RanDumb: scikit-learn ``RBFSampler(gamma="scale")`` (fitted on the first task, weights
  replaced by ours) and ``LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=OAS())``
  fitted offline on all rows seen so far, as their script does;
- KLDA / KLDA-E: torch, per class a running mean and the scatter about the updated mean,
  ``torch.pinverse``, negative Mahalanobis distances, the sum of softmaxes for the ensemble;
- Fly-CL: torch, a sparse CSC projection, ``topk`` per sample, float32 sums, GCV from
  ``torch.linalg.svd`` of the task's features, ``cholesky`` + ``cholesky_solve``;
- ACIL: torch float64, the recursive update of ``RecursiveLinear`` per mini-batch of 4,096;
- SLDA: torch, ``fit_base`` (OAS on the class-centred base task), then one ``fit`` per sample.

Scores are compared after removing each row's mean where a peer's scores are defined up to a
per-row constant (KLDA: ``h^T S^+ h``). Run in float64 where ours is float64 (the peers' code
runs float32 on a GPU; KLDA's and SLDA's float32 results are not what is checked here).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch
from peers import load
from scipy import linalg
from sklearn.covariance import OAS
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.kernel_approximation import RBFSampler

from forgetless.evaluation.peers import make_peer
from forgetless.experiment import make_scenarios, method_features

OUT = Path(__file__).resolve().parent / "results" / "peers_agreement.json"
CASES = {"digits/raw": 500, "wordnet/minilm": 1000}  # dataset -> width


def run_inputs(name, config, data, seed=0):
    """The features ``forgetless run`` hands method ``name`` (the encoder's, as they come, for
    a peer), and the seed's class-incremental scenario."""
    scenario = make_scenarios(config, data["y_train"], data["y_test"])[seed]
    first = scenario.steps[0].train
    X, Xt = method_features(name, data["X_train"], data["X_test"], first)
    return X, data["y_train"], Xt, data["y_test"], scenario


def t64(a):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


class RanDumbTranscript:
    def __init__(self, ours):
        self.ours, self.X, self.y = ours, [], []

    def step(self, X, y):
        if not self.X:
            self.sampler = RBFSampler(gamma="scale", n_components=self.ours.n_components)
            self.sampler.fit(X)
            self.gamma = self.sampler._gamma
            self.sampler.random_weights_ = self.ours.W_rand
            self.sampler.random_offset_ = self.ours.b_rand
        self.X.append(X)
        self.y.append(y)
        self.lda = LinearDiscriminantAnalysis(solver="lsqr", covariance_estimator=OAS())
        self.lda.fit(self.sampler.transform(np.concatenate(self.X)), np.concatenate(self.y))

    def scores(self, X):
        """LDA's per-class scores before scikit-learn folds two classes into one column."""
        lda = self.lda
        coef = linalg.lstsq(lda.covariance_, lda.means_.T)[0]
        intercept = -0.5 * np.sum(lda.means_.T * coef, axis=0) + np.log(lda.priors_)
        return self.sampler.transform(X) @ coef + intercept


class KLDATranscript:
    def __init__(self, ours):
        self.draws = [
            {"W": t64(d["W"]), "b": t64(d["b"]), "S": None, "mu": {}, "n": {}} for d in ours.draws_
        ]
        self.D = ours.n_components

    def rff(self, X, d):
        return (2.0 / self.D) ** 0.5 * torch.cos(t64(X) @ d["W"] + d["b"])

    def step(self, X, y):
        for c in np.unique(y):  # their Classifier.fit: one batch_update per class
            for d in self.draws:
                phi = self.rff(X[y == c], d)
                prev = d["n"].get(c, 0)
                d["n"][c] = prev + len(phi)
                mu = d["mu"].get(c, torch.zeros(self.D, dtype=torch.float64))
                d["mu"][c] = (mu * prev + phi.mean(0) * len(phi)) / d["n"][c]
                centred = phi - d["mu"][c]
                S = centred.T @ centred
                d["S"] = S if d["S"] is None else d["S"] + S
        for d in self.draws:
            d["inv"] = torch.pinverse(d["S"])
            d["M"] = torch.stack([d["mu"][c] for c in sorted(d["mu"])])

    def scores(self, X):
        total = 0
        for d in self.draws:
            diff = d["M"][None] - self.rff(X, d)[:, None, :]
            logits = -torch.einsum("ncm,mk,nck->nc", diff, d["inv"], diff)
            if len(self.draws) == 1:
                return logits.numpy()
            total = total + torch.softmax(logits, dim=1)
        return total.numpy()


class FlyCLTranscript:
    def __init__(self, ours):
        self.P = torch.as_tensor(ours.P.T.copy()).to_sparse_csc()  # m x d
        self.k, self.m = ours.k, ours.n_components
        self.ridges = torch.tensor(ours.ridges)
        self.G = torch.zeros(self.m, self.m)
        self.Q, self.classes = None, np.array([], dtype=int)

    def project(self, X):
        H = torch.sparse.mm(self.P, torch.as_tensor(X, dtype=torch.float32).T)
        values, indices = H.topk(self.k, dim=0, largest=True)
        out = torch.zeros_like(H)
        out.scatter_(0, indices, values)
        return out  # m x n

    def step(self, X, y):
        self.classes = np.union1d(self.classes, y)
        H = self.project(X)
        Y = torch.zeros(len(y), self.classes.size)
        Y[np.arange(len(y)), np.searchsorted(self.classes, y)] = 1.0
        Q = H @ Y
        if self.Q is not None:
            Q[:, : self.Q.shape[1]] += self.Q  # classes arrive in sorted order here
        self.Q, self.G = Q, self.G + H @ H.T
        U, S, _ = torch.linalg.svd(H.T, full_matrices=False)
        S2, UtY, n, gcv = S**2, U.T @ Y, H.shape[1], []
        for r in self.ridges:
            diag = S2 / (S2 + r)
            residual = torch.norm(Y - U @ (diag[:, None] * UtY)) ** 2
            gcv.append(((residual / n) / (1 - diag.sum() / n) ** 2).item())
        self.ridge = float(self.ridges[int(np.argmin(gcv))])
        L = torch.linalg.cholesky(self.G + self.ridge * torch.eye(self.m))
        self.W = torch.cholesky_solve(self.Q, L)

    def scores(self, X):
        return (self.project(X).T @ self.W).numpy()


class ACILTranscript:
    def __init__(self, ours):
        self.W_rand, self.gamma, self.batch = t64(ours.W_rand), ours.gamma, ours.batch_size
        self.R = torch.eye(ours.n_components, dtype=torch.float64) / self.gamma
        self.W = torch.zeros(ours.n_components, 0, dtype=torch.float64)

    def step(self, X, y):
        for start in range(0, len(y), self.batch):
            H = torch.relu(t64(X[start : start + self.batch]) @ self.W_rand)
            labels = torch.as_tensor(y[start : start + self.batch])
            Y = torch.nn.functional.one_hot(labels).to(torch.float64)
            if Y.shape[1] > self.W.shape[1]:
                tail = torch.zeros(self.W.shape[0], Y.shape[1] - self.W.shape[1]).to(self.W)
                self.W = torch.cat((self.W, tail), dim=1)
            K = torch.inverse(torch.eye(H.shape[0]).to(H) + H @ self.R @ H.T)
            self.R -= self.R @ H.T @ K @ H @ self.R
            self.W += self.R @ H.T @ (Y - H @ self.W)

    def scores(self, X):
        return (torch.relu(t64(X) @ self.W_rand) @ self.W).numpy()


class SLDATranscript:
    def __init__(self, ours):
        self.eps, self.mu, self.n, self.Sigma, self.t = ours.shrinkage, None, None, None, 0

    def step(self, X, y):
        C = int(y.max()) + 1
        if self.mu is None:  # fit_base
            self.mu = torch.zeros(C, X.shape[1], dtype=torch.float64)
            self.n = torch.zeros(C, dtype=torch.float64)
            Xb, yb = t64(X), torch.as_tensor(y)
            for k in torch.unique(yb):
                self.mu[k] = Xb[yb == k].mean(0)
                self.n[k] = (yb == k).sum()
            self.t = len(y)
            oas = OAS(assume_centered=True).fit((Xb - self.mu[yb]).numpy())
            self.Sigma = t64(oas.covariance_)
            return
        if C > self.mu.shape[0]:
            grow = C - self.mu.shape[0]
            self.mu = torch.cat([self.mu, torch.zeros(grow, self.mu.shape[1]).to(self.mu)])
            self.n = torch.cat([self.n, torch.zeros(grow).to(self.n)])
        for x, c in zip(t64(X), y, strict=True):  # fit(x, y), one sample at a time
            x = x[None]
            delta = x - self.mu[c]
            mult = delta.T @ delta
            self.Sigma = (self.t * self.Sigma + mult * self.t / (self.t + 1)) / (self.t + 1)
            self.mu[c] += (x[0] - self.mu[c]) / (self.n[c] + 1)
            self.n[c] += 1
            self.t += 1

    def scores(self, X):
        d = self.Sigma.shape[0]
        Lam = torch.pinverse((1 - self.eps) * self.Sigma + self.eps * torch.eye(d).to(self.Sigma))
        M = self.mu.T
        W = Lam @ M
        return (t64(X) @ W - 0.5 * torch.sum(M * W, dim=0)).numpy()


TRANSCRIPTS = {
    "randumb": RanDumbTranscript,
    "klda": KLDATranscript,
    "klda-e": KLDATranscript,
    "fly-cl": FlyCLTranscript,
    "acil": ACILTranscript,
    "slda": SLDATranscript,
}
ROW_CONSTANT = {"klda"}  # scores defined up to a per-row constant


def compare(name, X, y, Xt, yt, scenario, width, seed=0):
    # The class order of the scenario, relabelled 0..C-1 in order of arrival (as the peers'
    # scripts relabel), so that column j is the same class for both.
    order = np.concatenate([np.unique(y[s.train]) for s in scenario.steps])
    relabel = np.empty(order.max() + 1, dtype=int)
    relabel[order] = np.arange(order.size)
    y, yt = relabel[y], relabel[yt]
    ours = make_peer(name, width, seed)
    theirs, steps = None, []
    for i, step in enumerate(scenario.steps):
        ours.partial_fit(X[step.train], y[step.train])
        theirs = theirs or TRANSCRIPTS[name](ours)
        theirs.step(X[step.train], y[step.train])
        seen = scenario.seen_test(i)
        a = np.asarray(ours.decision_function(Xt[seen]), dtype=np.float64)
        b = np.asarray(theirs.scores(Xt[seen]), dtype=np.float64)[:, : a.shape[1]]
        if name in ROW_CONSTANT:
            a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
        pa, pb = ours.classes_[a.argmax(axis=1)], ours.classes_[b.argmax(axis=1)]
        entry = {
            "step": i,
            "accuracy_ours": float((pa == yt[seen]).mean()),
            "accuracy_transcription": float((pb == yt[seen]).mean()),
            "predictions_agree": float((pa == pb).mean()),
            "max_abs_score_diff": float(np.abs(a - b).max()),
            "max_rel_score_diff": float(np.abs(a - b).max() / np.abs(b).max()),
        }
        if name == "fly-cl":
            entry["ridge_ours"], entry["ridge_transcription"] = ours.alpha_, theirs.ridge
        if name == "randumb" and i == 0:
            entry["gamma_ours"], entry["gamma_transcription"] = ours.gamma_, theirs.gamma
        steps.append(entry)
    return steps


def main() -> None:
    torch.set_num_threads(1)
    results = {
        "how": __doc__.split("\n\n", 2)[2].strip(),
        "machine": f"{platform.machine()}, torch {torch.__version__}",
        "upstream": {
            "randumb": "github.com/drimpossible/RanDumb src/main.py (RBFSampler + LDA lsqr/OAS)",
            "klda": "github.com/SalehMomeni/KLDA KLDA.py (KLDA, KLDA_E), classifier.py",
            "fly-cl": "github.com/gfyddha/Fly-CL main.py (select_ridge_parameter), "
            "scripts/test_*.sh (300 non-zeros, coding level 0.3, ridges 10^6..10^9)",
            "acil": "github.com/ZHUANGHP/Analytic-continual-learning analytic/ACIL.py, "
            "AnalyticLinear.py (RecursiveLinear), Buffer.py (RandomBuffer)",
            "slda": "github.com/tyler-hayes/Deep_SLDA SLDA_Model.py (fit_base, fit, predict)",
        },
        "runs": {},
    }
    for case, width in CASES.items():
        config, data = load(case)
        for name in TRANSCRIPTS:
            X, y, Xt, yt, scenario = run_inputs(name, config, data)
            steps = compare(name, X, y, Xt, yt, scenario, width)
            results["runs"].setdefault(case, {})[name] = {"width": width, "steps": steps}
            last = steps[-1]
            print(
                f"{case:16s} {name:8s} final ours {100 * last['accuracy_ours']:.2f} % "
                f"transcription {100 * last['accuracy_transcription']:.2f} % agree "
                f"{100 * min(s['predictions_agree'] for s in steps):.2f} % max rel diff "
                f"{max(s['max_rel_score_diff'] for s in steps):.1e}",
                flush=True,
            )
            OUT.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
