"""Benchmark of the Turrisi 2024 DNN: hand-written gradients and Adam against torch autograd.

:mod:`bids_app.models.dnn` trains the network of Turrisi 2024 §2.4 with a hand-written backward pass
and one Adam update over a flat buffer of all the weights, because the network is so small
(about 20 000 weights for 400 features) that torch's per-operation overhead weighs as much as
the arithmetic. Hand-written gradients are code that torch would otherwise provide, so they
are kept only while they are clearly faster: more than :data:`WORTH_IT_SPEEDUP` times less CPU
time per fit than :class:`AutogradNetwork` (``torch.nn.Parameter`` weights, autograd and
``torch.optim.Adam`` with the same settings), at equal results.

Both candidates train the same estimator (:class:`bids_app.models.dnn.DNNClassifier`, Turrisi 2024
defaults, DNNt and DNNv) from the same random stream (weights, batch order and dropout masks),
on one thread, on two tables drawn by :func:`bids_app.synthetic.features.make_feature_cohort`:
the Turrisi 2024 size (654 subjects × 400 features, 2/3 to train as in an outer fold of 3-fold
cross-validation) and a small one (150 × 30). Each seed fits both candidates back to back, in
alternating order, so that the load of a shared machine hits both alike; the table reports
medians of wall and CPU time per fit and per epoch, the held-out AUC of each candidate and how
far their predicted probabilities are apart (the two round differently, and training amplifies
the differences, so equal results means equal AUC, not equal weights).

Result (``benchmarks/results/dnn.tsv``, 7 seeds per setting, one thread, torch 2.13 on the
2-core AMD EPYC development machine while it ran other jobs, load ~10): the hand-written version
takes 2.1 to 2.6 times less CPU time per fit than autograd (2.4 in the median of the four
settings; 0.40 against 0.85 s for DNNt on the Turrisi 2024 table, 5.1 against 10.6 ms per epoch),
at equal held-out AUC (0.854 against 0.850 for DNNt, 0.823 against 0.818 for DNNv, within their
seed-to-seed SD of 0.01 to 0.05). It is therefore kept: the group level fits each DNN 5 times
per fold and feature set, and the DNNs are a sixth of the time of ``bench_group.py``'s grid.

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

from bids_app.models.dnn import ADAM_BETAS, ADAM_EPSILON, DNNClassifier, _Network  # noqa: E402
from bids_app.runtime import limit_threads  # noqa: E402
from bids_app.synthetic.features import make_feature_cohort  # noqa: E402

#: Less CPU time per fit than autograd by more than this factor keeps hand-written gradients.
WORTH_IT_SPEEDUP = 2.0
#: (name, subjects, features, informative features) of the tables.
TABLES = (("seed000", 654, 400, 20), ("small", 150, 30, 5))


class AutogradNetwork(_Network):
    """The network of :class:`bids_app.models.dnn._Network` trained by autograd and torch's Adam.

    Same constructor, the same dropout masks and inference (inherited), and the same draws from
    the generator.

    The penalty ``l2 * sum(W ** 2)`` of Turrisi 2024 §2.4 (Keras's ``kernel_regularizer=l2(l2)``)
    adds ``2 * l2 * W`` to the gradient of each weight matrix, which is what Adam's coupled
    ``weight_decay=2 * l2`` does on the weight matrices' parameter group (the biases have
    none). torch adds ε to the bias-corrected ``√v̂`` where Keras adds it to the raw ``√v``;
    with ε = 1e-7 the two updates differ only where ``√v`` is itself of the order of 1e-7.
    The weight decay and the fused Adam make this the fastest of the torch forms tried: the
    penalty as a term of the loss, or Adam's default (unfused) implementation, took longer.

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
        self.dropout = dropout
        device = generator.device
        # Weights are (inputs, outputs), as Keras's kernels: Glorot uniform, biases 0 (Keras).
        self.weights, self.biases = [], []
        for n_in, n_out in pairwise(sizes):
            limit = math.sqrt(6.0 / (n_in + n_out))
            weights = torch.empty(n_in, n_out, device=device)
            self.weights.append(
                torch.nn.Parameter(weights.uniform_(-limit, limit, generator=generator))
            )
            self.biases.append(torch.nn.Parameter(torch.zeros(n_out, device=device)))
        self.optimizer = torch.optim.Adam(
            [{"params": self.weights, "weight_decay": 2.0 * l2}, {"params": self.biases}],
            lr=learning_rate,
            betas=ADAM_BETAS,
            eps=ADAM_EPSILON,
            fused=True,  # one kernel per parameter group instead of one per tensor and operation
        )

    def targets(self, classes: torch.Tensor) -> torch.Tensor:
        """Encode class codes as :meth:`train_batch` takes them: unchanged."""
        return classes

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores before the softmax, without dropout and outside autograd (inference)."""
        return super().logits(x)

    def train_batch(
        self, x: torch.Tensor, targets: torch.Tensor, masks: list[torch.Tensor]
    ) -> None:
        """Take one Adam step on the mean cross-entropy of a batch.

        Parameters
        ----------
        x : torch.Tensor
            Batch of inputs, (samples, features).
        targets : torch.Tensor
            Class codes of the batch, (samples,) (see :meth:`targets`).
        masks : list of torch.Tensor
            Dropout masks of the hidden layers for this batch (see :meth:`draw_masks`).
        """
        hidden = x
        for weights, bias, mask in zip(self.weights[:-1], self.biases[:-1], masks, strict=True):
            hidden = torch.addmm(bias, hidden, weights).relu() * mask
        logits = torch.addmm(self.biases[-1], hidden, self.weights[-1])
        loss = torch.nn.functional.cross_entropy(logits, targets)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def state(self) -> list[torch.Tensor]:
        """Return a copy of the weights and biases."""
        return [p.detach().clone() for p in (*self.weights, *self.biases)]

    def load(self, state: list[torch.Tensor]) -> None:
        """Set the weights and biases to a copy taken by :meth:`state`."""
        with torch.no_grad():
            for param, saved in zip((*self.weights, *self.biases), state, strict=True):
                param.copy_(saved)


class AutogradDNNClassifier(DNNClassifier):
    """:class:`DNNClassifier` trained by :class:`AutogradNetwork`."""

    _network_type = AutogradNetwork


def table(n_subjects: int, n_features: int, n_informative: int, seed: int = 0):
    """Draw a cohort (first session of each subject) and split it 2/3 : 1/3, standardised."""
    cohort = make_feature_cohort(
        n_subjects=n_subjects,
        n_features=n_features,
        n_informative=n_informative,
        effect_size=0.6,
        n_sites=3,
        prevalence=548 / 654,  # Turrisi 2024: 548 ALS, 106 mimics
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
    candidates = {"autograd": AutogradDNNClassifier, "hand_written": DNNClassifier}
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
            epoch_median = {
                c: np.median([r["cpu"] / r["epochs"] for r in runs[c]]) for c in candidates
            }
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
                        "cpu_ms_per_epoch_median": round(1000 * epoch_median[candidate], 2),
                        "auc_mean": round(np.mean(aucs), 3),
                        "auc_sd": round(np.std(aucs), 3),
                        "proba_gap_mean": round(float(np.mean(gaps)), 4),
                        "proba_gap_max": round(float(np.max(gaps)), 4),
                        "speedup_per_fit": round(
                            cpu_median["autograd"] / cpu_median["hand_written"], 2
                        ),
                        "speedup_per_epoch": round(
                            epoch_median["autograd"] / epoch_median["hand_written"], 2
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
    speedup = results["speedup_per_fit"].median()
    verdict = "worth keeping" if speedup > WORTH_IT_SPEEDUP else "not worth its code"
    print(
        f"hand-written gradients: {speedup:.2f}× less CPU time per fit (median over the tables "
        f"and stopping rules), {verdict}"
    )


if __name__ == "__main__":
    main()
