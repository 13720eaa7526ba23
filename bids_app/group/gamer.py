"""Group level: the GAMER-MRIL analyses of Lu et al. (2023) for networks with gated attention.

For a network with attention weights (GAMER, ``--dl-models gamer``), every subject is explained
by the fold model that did not train on it (out of fold):

- its attention weight ``a_l`` of every contrast (Lu 2023 eq. (3)), averaged over the correctly
  classified subjects per contrast (§III.A, Table II);
- one LRP relevance map per contrast (§II.F: "for each qMR image, a relevance map was
  generated"), started from the logit f(x) or from the attention weights (``--lrp-start``, §II.F
  (ii)), with the gated products split by eq. (6)-(7) or by LRP-all (``--lrp-gated-rule``), and
  the combined map of eq. (8), ``sum_l R_l * x_l``;
- the voxel-inversion test of the four scenarios of Table I with the chosen start (proposed rule
  or LRP-all, individual maps or combined map) over the quantile masks down to the top 40 %
  (§II.G, §III.B, Fig. 4);
- with a numeric target (the EDSS), Spearman's ρ of each contrast's mean normalised value inside
  each subject's top-40 % mask with the score, with a 20,000-permutation test, for every
  scenario; the scenario whose top-40 % mask lowered the AUC the most is flagged (§II.G: "the
  scenario that achieved the largest drop in AUC was assessed for the correlation").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from bids_app.config import Config
from bids_app.deep.crossval import DeepCVResult, NetworkSpec
from bids_app.deep.lrp import combined_map, relevance
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.group.deep_learning import DeepOutcome, out_of_fold_batches
from bids_app.models.design import Target
from bids_app.statistics.attention import (
    LU2023_QUANTILES,
    contrast_spearman,
    inversion_test,
    mean_attention_weights,
)

#: Scenario numbers of Lu 2023 Table I by (start, gated rule, map).
SCENARIOS = {
    ("attention", "proportional", "individual"): 1,
    ("attention", "lrp-all", "individual"): 2,
    ("attention", "proportional", "combined"): 3,
    ("attention", "lrp-all", "combined"): 4,
    ("logit", "proportional", "individual"): 5,
    ("logit", "lrp-all", "individual"): 6,
    ("logit", "proportional", "combined"): 7,
    ("logit", "lrp-all", "combined"): 8,
}
#: ``--lrp-gated-rule`` to the ``gated_rule`` of :func:`bids_app.deep.lrp.relevance`.
GATED_RULES = {"proportional": "proportional", "lrp-all": "all"}


@dataclass(frozen=True)
class GamerResult:
    """The GAMER-MRIL analyses of one network.

    Parameters
    ----------
    network : str
        The network.
    contrasts : tuple of str
        Its input contrasts.
    start : str
        Where LRP started (``--lrp-start``).
    gated_rule : str
        The gated rule of the written maps (``--lrp-gated-rule``).
    mean_weights : pandas.DataFrame
        Mean attention weight per contrast over the correctly classified (Lu 2023 Table II).
    scenarios : pandas.DataFrame
        The voxel-inversion test of each scenario (long format, ``scenario`` column).
    spearman : pandas.DataFrame or None
        Spearman's ρ per scenario and contrast (None without a numeric target).
    score : str
        The clinical score's column.
    """

    network: str
    contrasts: tuple[str, ...]
    start: str
    gated_rule: str
    mean_weights: pd.DataFrame
    scenarios: pd.DataFrame
    spearman: pd.DataFrame | None
    score: str


def out_of_fold_attention(
    result: DeepCVResult,
    spec: NetworkSpec,
    volumes: np.ndarray,
    ages: np.ndarray | None,
    device: torch.device,
    batch_size: int = 4,
) -> np.ndarray:
    """Attention weights of every row by the fold model that did not train on it.

    Parameters
    ----------
    result : DeepCVResult
        The network's cross-validation.
    spec : NetworkSpec
        The network (one with ``forward_with_attention``, GAMER).
    volumes : numpy.ndarray
        The crops ``[n_rows, C, X, Y, Z]``.
    ages : numpy.ndarray or None
        Ages in years.
    device : torch.device
        Where to compute.
    batch_size : int
        Rows per forward pass.

    Returns
    -------
    numpy.ndarray
        float32 ``[n_rows, C]``, the weights ``a_l`` of Lu 2023 eq. (3); rows sum to 1.
    """
    weights = np.zeros(volumes.shape[:2], dtype=np.float32)
    with torch.no_grad():
        for net, rows, x, age in out_of_fold_batches(
            result, spec, volumes, ages, device, batch_size
        ):
            weights[rows] = net.forward_with_attention(x, age)[1].float().cpu().numpy()
    return weights


def out_of_fold_contrast_relevance(
    result: DeepCVResult,
    spec: NetworkSpec,
    volumes: np.ndarray,
    ages: np.ndarray | None,
    device: torch.device,
    *,
    rule: str,
    start: str,
    gated_rule: str,
    batch_size: int = 4,
) -> np.ndarray:
    """One LRP relevance map per contrast of every row, by its out-of-fold model.

    Parameters
    ----------
    result, spec, volumes, ages, device
        As :func:`out_of_fold_attention`.
    rule : str
        LRP rule preset (``--lrp-rule``).
    start : {"logit", "attention"}
        Start from f(x) or from the attention weights, channel l from ``a_l`` (Lu 2023 §II.F).
    gated_rule : {"proportional", "lrp-all"}
        Split of the gated products: Lu 2023 eq. (6)-(7), or LRP-all.
    batch_size : int
        Rows per LRP pass.

    Returns
    -------
    numpy.ndarray
        float32 ``[n_rows, C, X, Y, Z]``.
    """
    maps = np.zeros(volumes.shape, dtype=np.float32)
    for net, rows, x, age in out_of_fold_batches(result, spec, volumes, ages, device, batch_size):
        r = relevance(net, x, age, rule=rule, start=start, gated_rule=GATED_RULES[gated_rule])
        maps[rows] = r.float().cpu().numpy()
    return maps


def run_gamer_analysis(
    name: str,
    outcome: DeepOutcome,
    target: Target,
    config: Config,
    writer: DerivativesWriter,
    device: torch.device,
    brain: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    quantiles: tuple[float, ...] = LU2023_QUANTILES,
) -> GamerResult:
    """Write the GAMER-MRIL analyses of one network with attention weights.

    Parameters
    ----------
    name : str
        The network (a key of ``outcome.results``).
    outcome : DeepOutcome
        The trained networks and their crops.
    target : Target
        What the network predicts (a numeric target gets the Spearman tests).
    config : Config
        ``--lrp-rule``, ``--lrp-start``, ``--lrp-gated-rule``, seed.
    writer : DerivativesWriter
        The output dataset.
    device : torch.device
        Where LRP runs.
    brain : numpy.ndarray of bool
        The brain on the crop grid.
    predict : callable
        Out-of-fold positive-class scores of images ``[n_rows, C, ...]`` (the inversion test).
    quantiles : tuple of float
        Quantile masks of the inversion test, the last one that of the Spearman tests.

    Returns
    -------
    GamerResult
        The tables, also written under ``group/``.
    """
    result, spec = outcome.results[name]
    contrasts = tuple(config.deep.dl_contrasts)
    volumes = outcome.volumes.astype(np.float32)
    predictions = outcome.predictions[name]
    start, chosen = config.deep.lrp_start, config.deep.lrp_gated_rule
    params = {"lrp_rule": config.deep.lrp_rule, "lrp_start": start, "lrp_gated_rule": chosen}
    weights = out_of_fold_attention(result, spec, volumes, outcome.ages, device)
    table = predictions.assign(**{f"attention_{c}": weights[:, i] for i, c in enumerate(contrasts)})
    writer.write_group_table(table, "deep_attention_weights", params=params, network=name)
    mean_weights = mean_attention_weights(
        weights, predictions["y_true"], predictions["y_pred"], contrasts
    )
    writer.write_group_table(mean_weights, "deep_attention_summary", params=params, network=name)
    numeric = target.threshold is not None
    scores = pd.to_numeric(outcome.rows[target.column], errors="coerce").to_numpy()
    inversions, correlations = [], []
    for gated_rule in (chosen, *(g for g in GATED_RULES if g != chosen)):
        maps = out_of_fold_contrast_relevance(
            result,
            spec,
            volumes,
            outcome.ages,
            device,
            rule=config.deep.lrp_rule,
            start=start,
            gated_rule=gated_rule,
        )
        combined = combined_map(torch.from_numpy(maps), torch.from_numpy(volumes)).numpy()
        if gated_rule == chosen:
            for index, contrast in enumerate(contrasts):
                writer.write_group_image(
                    nib.Nifti1Image(np.moveaxis(maps[:, index], 0, -1), outcome.affine),
                    "deep_contrast_relevance",
                    network=name,
                    contrast=contrast,
                )
            writer.write_group_image(
                nib.Nifti1Image(np.moveaxis(combined, 0, -1), outcome.affine),
                "deep_combined_map",
                network=name,
            )
        for kind, relevant in (("individual", maps), ("combined", combined)):
            labels = {
                "scenario": SCENARIOS[start, gated_rule, kind],
                "start": start,
                "gated_rule": gated_rule,
                "map": kind,
            }
            inversion = inversion_test(
                predict,
                volumes,
                predictions["y_true"].to_numpy(),
                relevant,
                quantiles,
                brain,
                n_random=1,
                rng=config.seed,
            )
            inversions.append(inversion.assign(**labels))
            if numeric:
                spearman = contrast_spearman(
                    volumes, relevant, scores, contrasts, quantiles[-1], brain, rng=config.seed
                )
                correlations.append(spearman.assign(score=target.column, **labels))
    scenarios = _ordered(pd.concat(inversions, ignore_index=True))
    writer.write_group_table(scenarios, "deep_lrp_scenarios", params=params, network=name)
    spearman = None
    if correlations:
        spearman = _ordered(pd.concat(correlations, ignore_index=True))
        last = scenarios[np.isclose(scenarios["quantile"], quantiles[-1])]
        best = int(last.sort_values(["auc_relevance", "scenario"]).iloc[0]["scenario"])
        spearman["largest_auc_drop"] = spearman["scenario"] == best
        writer.write_group_table(spearman, "deep_contrast_spearman", params=params, network=name)
    return GamerResult(
        network=name,
        contrasts=contrasts,
        start=start,
        gated_rule=chosen,
        mean_weights=mean_weights,
        scenarios=scenarios,
        spearman=spearman,
        score=target.column,
    )


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Put the scenario labels first and sort by scenario (stable)."""
    labels = ["scenario", "start", "gated_rule", "map"]
    table = table[labels + [c for c in table.columns if c not in labels]]
    return table.sort_values("scenario", kind="stable").reset_index(drop=True)
