"""Benchmark of the seed-000 DNN: torch autograd against a hand-written backward pass and Adam.

``bids_app.models.dnn`` trains the network of seed 000 §2.4 with torch autograd and
``torch.optim.Adam``. The network is tiny (about 20 000 weights for 400 features), so torch's
per-operation overhead weighs as much as the arithmetic, and an earlier version wrote the
gradients out by hand (a few matrix products per layer) with one Adam update over a flat buffer
of all the weights. This script keeps that version as :class:`HandWrittenNetwork` and decides
whether it is worth its code: it would have to be clearly faster (more than 2× less CPU time per
fit) at equal results.

Both candidates train the same estimator (:class:`bids_app.models.dnn.DNNClassifier`, seed 000
defaults) from the same random stream (weights, batch order and dropout masks), on one thread,
on two tables drawn by :func:`bids_app.synthetic.features.make_feature_cohort`: the seed-000
size (654 subjects × 400 features, 2/3 to train as in an outer fold of 3-fold cross-validation)
and a small one (150 × 30). Each seed fits both candidates back to back, in alternating order, so
that the load of a shared machine hits both alike; the table reports medians of wall and CPU
time per fit, the held-out AUC of each candidate and how far their predicted probabilities are
apart. The hand-written gradients are first checked against autograd.

Writes ``benchmarks/results/dnn.tsv`` and ``benchmarks/results/dnn_machine.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(REPO))

from bench_preprocessing import machine  # noqa: E402

from bids_app.models.dnn import ADAM_BETAS, ADAM_EPSILON, DNNClassifier  # noqa: E402
from bids_app.synthetic.features import make_feature_cohort  # noqa: E402
from bids_app.utils.threads import limit_threads  # noqa: E402

#: Less CPU time per fit than autograd by this factor makes hand-written gradients worth keeping.
WORTH_IT_SPEEDUP = 2.0
#: (name, subjects, features, informative features) of the tables.
TABLES = (("seed000", 654, 400, 20), ("small", 150, 30, 5))


class HandWrittenNetwork:
    """The network of :class:`bids_app.models.dnn._Network` with hand-written gradients and Adam.

    All weights live in one flat buffer (with per-layer views) that one Adam update treats at
    once, in Keras's form (ε added to the raw ``√v``). Same constructor and methods as the
    product's network, and the same draws from the generator.

    Parameters
    ----------
    sizes : sequence of int
        Units per layer, inputs first and classes last.
    dropout : float
        Probability of dropping each hidden unit during training.
    l2 : float
        Factor of the penalty ``l2 * sum(W ** 2)`` over the weight matrices.
    learning_rate : float
        Adam's step size.
    generator : torch.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        sizes: list[int],
        dropout: float,
        l2: float,
        learning_rate: float,
        generator: torch.Generator,
    ) -> None:
        self.dropout, self.l2, self.learning_rate = dropout, l2, learning_rate
        self.n_classes = sizes[-1]
        layers = list(pairwise(sizes))
        n_params = sum((n_in + 1) * n_out for n_in, n_out in layers)
        self.params = torch.zeros(n_params, device=generator.device)
        self.grad = torch.zeros_like(self.params)
        self.moment = torch.zeros_like(self.params)
        self.square = torch.zeros_like(self.params)
        self.steps = 0
        self.weights, self.biases, self.weight_grads, self.bias_grads = [], [], [], []
        offset = 0
        for n_in, n_out in layers:
            end = offset + n_in * n_out
            self.weights.append(self.params[offset:end].view(n_in, n_out))
            self.weight_grads.append(self.grad[offset:end].view(n_in, n_out))
            self.biases.append(self.params[end : end + n_out])
            self.bias_grads.append(self.grad[end : end + n_out])
            offset = end + n_out
            limit = math.sqrt(6.0 / (n_in + n_out))
            self.weights[-1].uniform_(-limit, limit, generator=generator)

    def draw_masks(self, n_rows: int, generator: torch.Generator) -> list[torch.Tensor]:
        """Draw the inverted-dropout masks of the hidden layers for ``n_rows`` samples."""
        return [
            torch.rand(n_rows, weights.shape[1], generator=generator, device=weights.device)
            .ge_(self.dropout)
            .div_(1.0 - self.dropout)
            for weights in self.weights[:-1]
        ]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores before the softmax, without dropout (inference)."""
        for weights, bias in zip(self.weights[:-1], self.biases[:-1], strict=True):
            x = torch.addmm(bias, x, weights).relu_()
        return torch.addmm(self.biases[-1], x, self.weights[-1])

    def backprop(self, x: torch.Tensor, classes: torch.Tensor, masks: list[torch.Tensor]) -> None:
        """Write the gradient of the penalised loss of one batch into ``self.grad``."""
        inputs = [x]  # the input of each layer: the batch, then the (dropped-out) hidden units
        for weights, bias, mask in zip(self.weights[:-1], self.biases[:-1], masks, strict=True):
            inputs.append(torch.addmm(bias, inputs[-1], weights).relu_().mul_(mask))
        # Gradient of the mean cross-entropy with respect to the logits: (softmax - one-hot) / n.
        delta = torch.addmm(self.biases[-1], inputs[-1], self.weights[-1]).softmax(dim=1)
        delta.sub_(torch.nn.functional.one_hot(classes, self.n_classes)).div_(len(x))
        for layer in reversed(range(len(self.weights))):
            # inputsᵀ · delta + 2 l2 W, the gradient of the penalty l2 ΣW².
            torch.addmm(
                self.weights[layer],
                inputs[layer].T,
                delta,
                beta=2.0 * self.l2,
                out=self.weight_grads[layer],
            )
            torch.sum(delta, dim=0, out=self.bias_grads[layer])
            if layer:
                # Through dropout (the mask) and ReLU (units whose output is positive).
                delta = delta @ self.weights[layer].T
                delta.mul_(masks[layer - 1]).mul_(inputs[layer] > 0)

    def train_batch(
        self, x: torch.Tensor, classes: torch.Tensor, masks: list[torch.Tensor]
    ) -> None:
        """Take one Adam step on the mean cross-entropy of a batch."""
        self.backprop(x, classes, masks)
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        self.moment.lerp_(self.grad, 1.0 - beta1)
        self.square.mul_(beta2).addcmul_(self.grad, self.grad, value=1.0 - beta2)
        step_size = (
            self.learning_rate * math.sqrt(1.0 - beta2**self.steps) / (1.0 - beta1**self.steps)
        )
        denominator = self.square.sqrt().add_(ADAM_EPSILON)
        self.params.addcdiv_(self.moment, denominator, value=-step_size)

    def state(self) -> torch.Tensor:
        """Return a copy of the weights and biases."""
        return self.params.clone()

    def load(self, state: torch.Tensor) -> None:
        """Set the weights and biases to a copy taken by :meth:`state`."""
        self.params.copy_(state)


class HandWrittenDNNClassifier(DNNClassifier):
    """:class:`DNNClassifier` trained by :class:`HandWrittenNetwork`."""

    _network_type = HandWrittenNetwork


def check_gradients() -> None:
    """Raise AssertionError unless the hand-written gradients equal autograd's."""
    generator = torch.Generator().manual_seed(0)
    network = HandWrittenNetwork([7, 5, 3, 4], 0.3, 0.01, 1e-3, generator)
    x = torch.randn(9, 7, generator=generator)
    classes = torch.arange(9) % 4
    masks = network.draw_masks(9, generator)
    network.backprop(x, classes, masks)

    weights = [w.clone().requires_grad_() for w in network.weights]
    biases = [b.clone().requires_grad_() for b in network.biases]
    hidden = x
    for w, b, mask in zip(weights[:-1], biases[:-1], masks, strict=True):
        hidden = torch.relu(hidden @ w + b) * mask
    loss = torch.nn.functional.cross_entropy(hidden @ weights[-1] + biases[-1], classes)
    (loss + 0.01 * sum((w**2).sum() for w in weights)).backward()
    assert any(bool((mask == 0).any()) for mask in masks)  # dropout was exercised
    for mine, reference in zip(
        network.weight_grads + network.bias_grads,
        [w.grad for w in weights] + [b.grad for b in biases],
        strict=True,
    ):
        torch.testing.assert_close(mine, reference, rtol=1e-5, atol=1e-6)


def table(n_subjects: int, n_features: int, n_informative: int, seed: int = 0):
    """Draw a cohort (first session of each subject) and split it 2/3 : 1/3, standardised."""
    cohort = make_feature_cohort(
        n_subjects=n_subjects,
        n_features=n_features,
        n_informative=n_informative,
        effect_size=0.6,
        n_sites=3,
        prevalence=548 / 654,  # seed 000: 548 ALS, 106 mimics
        seed=seed,
    )
    first = cohort.features.drop_duplicates("participant_id")
    diagnosis = cohort.participants.set_index("participant_id").loc[
        first["participant_id"], "diagnosis"
    ]
    x = first.filter(regex=r"^f\d+$").to_numpy()
    y = (diagnosis == "ALS").to_numpy().astype(int)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=1 / 3, stratify=y, random_state=seed
    )
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    return (x_train - mean) / sd, (x_test - mean) / sd, y_train, y_test


def timed_fit(model: DNNClassifier, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit ``model`` and return the wall and CPU seconds it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    """Time both candidates and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="seeds per table and candidate")
    args = parser.parse_args(argv)
    limit_threads(1)
    torch.set_num_threads(1)
    check_gradients()
    candidates = {"autograd": DNNClassifier, "hand_written": HandWrittenDNNClassifier}
    rows = []
    for name, n_subjects, n_features, n_informative in TABLES:
        x_train, x_test, y_train, y_test = table(n_subjects, n_features, n_informative)
        for estimator in candidates.values():  # first calls of torch's kernels: not timed
            estimator(max_epochs=3, random_state=0).fit(x_train, y_train)
        for early_stopping in ("train", "validation"):
            runs = {candidate: [] for candidate in candidates}
            for seed in range(args.repeats):
                order = list(candidates) if seed % 2 == 0 else list(reversed(candidates))
                for candidate in order:
                    model = candidates[candidate](early_stopping=early_stopping, random_state=seed)
                    wall, cpu = timed_fit(model, x_train, y_train)
                    probabilities = model.predict_proba(x_test)[:, 1]
                    runs[candidate].append(
                        {
                            "wall": wall,
                            "cpu": cpu,
                            "epochs": model.n_epochs_,
                            "auc": roc_auc_score(y_test, probabilities),
                            "probabilities": probabilities,
                        }
                    )
            gaps = [
                np.abs(mine["probabilities"] - other["probabilities"])
                for mine, other in zip(runs["autograd"], runs["hand_written"], strict=True)
            ]
            cpu_median = {c: np.median([r["cpu"] for r in runs[c]]) for c in candidates}
            for candidate, results in runs.items():
                aucs = [r["auc"] for r in results]
                rows.append(
                    {
                        "table": name,
                        "n_train": len(y_train),
                        "n_features": n_features,
                        "early_stopping": early_stopping,
                        "candidate": candidate,
                        "fits": len(results),
                        "wall_s_median": round(np.median([r["wall"] for r in results]), 3),
                        "cpu_s_median": round(cpu_median[candidate], 3),
                        "epochs_median": np.median([r["epochs"] for r in results]),
                        "auc_mean": round(np.mean(aucs), 3),
                        "auc_sd": round(np.std(aucs), 3),
                        "proba_gap_mean": round(float(np.mean(gaps)), 4),
                        "proba_gap_max": round(float(np.max(gaps)), 4),
                        "cpu_speedup_hand_written": round(
                            cpu_median["autograd"] / cpu_median["hand_written"], 2
                        ),
                    }
                )
                print(
                    f"{name:8s} {early_stopping:10s} {candidate:12s} "
                    f"cpu {rows[-1]['cpu_s_median']:.3f} s  wall {rows[-1]['wall_s_median']:.3f} s"
                    f"  AUC {rows[-1]['auc_mean']:.3f}",
                    flush=True,
                )
    results = pd.DataFrame(rows)
    results["threads"] = torch.get_num_threads()
    RESULTS.mkdir(exist_ok=True)
    results.to_csv(RESULTS / "dnn.tsv", sep="\t", index=False)
    (RESULTS / "dnn_machine.json").write_text(
        json.dumps({**machine(), "torch": torch.__version__}, indent=2) + "\n"
    )
    print(results.to_string(index=False))
    speedup = results["cpu_speedup_hand_written"].max()
    verdict = "worth keeping" if speedup > WORTH_IT_SPEEDUP else "not worth its code"
    print(f"hand-written: at most {speedup:.2f}× less CPU time per fit: {verdict}")


if __name__ == "__main__":
    main()
