"""Group level: analyses of the networks' out-of-fold attention maps.

Seed 001 §2.6: class-average relevance maps of the true/false positives/negatives, the same
binarised at the 95th percentile, mean relevance per atlas region ranked, and a voxel-wise
regression of the relevance on the lesion indicator and the (log-)Jacobian within each
prediction group (R², partial R² and standardised beta maps). Seed 004 §II.G: the voxel-inversion
test and, for a numeric target, Spearman's ρ of the mean intensity inside each subject's most
relevant voxels with the clinical score, with a permutation p-value.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from bids_app.config import Config
from bids_app.deep.crossval import fold_models
from bids_app.deep.networks import positive_probability
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.features.atlases import load_atlas
from bids_app.group.deep_learning import DeepOutcome
from bids_app.models.design import Target
from bids_app.preprocessing.cnn_input import to_crop_grid
from bids_app.preprocessing.templates import load_template
from bids_app.reports.attention import region_bar_figure, relevance_map_figure
from bids_app.reports.html import figure_html, table_html
from bids_app.statistics.attention import (
    binarise_percentile,
    class_average_maps,
    inversion_test,
    prediction_groups,
    quantile_masks,
    region_relevance,
    spearman_permutation,
    voxelwise_regression,
)

LOGGER = logging.getLogger("bids_app.deep")

#: Percentile of the class-average maps kept in their binarised copies (seed 001 §2.6.1).
TOP_PERCENTILE = 95.0
#: Quantiles of the voxel-inversion test (seed 004 §II.G used quantile masks from high to low).
INVERSION_QUANTILES = (0.99, 0.95, 0.9)
#: Quantile of the mask whose mean intensity is correlated with the clinical score.
SPEARMAN_QUANTILE = 0.95
#: Smallest prediction group given a voxel-wise regression.
MIN_REGRESSION_SUBJECTS = 5


def _crop_maps(
    outcome: DeepOutcome,
    writer: DerivativesWriter,
    output: str,
    grid: nib.Nifti1Image,
    interpolation: str,
) -> np.ndarray | None:
    """Stack a template-space output of every row on the crop grid (None if any is missing)."""
    maps = []
    for row in outcome.rows.itertuples():
        entities = {"sub": row.participant_id.removeprefix("sub-")}
        if isinstance(getattr(row, "session_id", None), str):
            entities["ses"] = row.session_id.removeprefix("ses-")
        path = writer.path(output, entities)
        if not path.exists():
            return None
        image = to_crop_grid(nib.load(path), grid, interpolation)
        maps.append(np.asarray(image.dataobj, dtype=np.float32))
    return np.stack(maps)


def _predictor(outcome: DeepOutcome, name: str, device: torch.device):
    """Score images with the fold model that did not train on each row (out of fold)."""
    result, spec = outcome.results[name]
    nets = fold_models(result, spec, outcome.volumes.shape[1], device)
    ages = outcome.ages

    @torch.no_grad()
    def predict(images: np.ndarray) -> np.ndarray:
        scores = np.zeros(len(images), dtype=np.float32)
        for fold, net in enumerate(nets):
            for row in np.flatnonzero(result.test_fold == fold):
                x = torch.as_tensor(images[row : row + 1], dtype=torch.float32, device=device)
                age = None if ages is None else torch.as_tensor(ages[row : row + 1], device=device)
                scores[row] = positive_probability(net(x, age)).float().cpu().numpy()[0]
        return scores

    return predict


def run_attention_analyses(
    outcome: DeepOutcome,
    target: Target,
    config: Config,
    writer: DerivativesWriter,
    device: torch.device,
) -> list[tuple[str, str]]:
    """Write the group analyses of every network's out-of-fold relevance maps.

    Parameters
    ----------
    outcome : DeepOutcome
        The trained networks, their out-of-fold predictions and relevance maps.
    target : Target
        What the networks predict (a numeric target gets the Spearman test of seed 004).
    config : Config
        Atlas, seed, template folder.
    writer : DerivativesWriter
        The output dataset.
    device : torch.device
        Where the inversion test runs the networks.

    Returns
    -------
    list of (str, str)
        Report sections.
    """
    grid = nib.Nifti1Image(np.zeros(outcome.volumes.shape[2:], np.uint8), outcome.affine)
    resolution = 1 if abs(outcome.affine[0, 0]) < 1.5 else 2
    template = load_template(resolution, config.participant.templateflow_home)
    atlas = load_atlas(config.participant.atlas)
    labels = np.asarray(to_crop_grid(atlas.image, grid).dataobj).astype(np.int32)
    brain = np.asarray(to_crop_grid(template.brain_mask, grid).dataobj) > 0
    jacobian = _crop_maps(outcome, writer, "logjacobian_mni", grid, "linear")
    lesions = _crop_maps(outcome, writer, "lesion_mni", grid, "nearest")
    mean_crop = nib.Nifti1Image(
        outcome.volumes[:, 0].astype(np.float32).mean(axis=0), outcome.affine
    )
    sections = []
    for name, maps in outcome.relevance.items():
        predictions = outcome.predictions[name]
        groups = prediction_groups(predictions["y_true"], predictions["y_pred"])
        averages = class_average_maps(maps, groups)
        rankings = []
        for group, average in averages.items():
            writer.write_group_image(
                nib.Nifti1Image(average, outcome.affine), f"deep_{name}_relevance_{group}"
            )
            top = binarise_percentile(average, TOP_PERCENTILE, brain).astype(np.uint8)
            writer.write_group_image(
                nib.Nifti1Image(top, outcome.affine), f"deep_{name}_relevance_{group}_top5"
            )
            rankings.append(
                region_relevance(average, labels, atlas.labels).assign(
                    group=group, n_subjects=int((groups == group).sum())
                )
            )
        ranking = pd.concat(rankings, ignore_index=True)
        writer.write_table(ranking, writer.group_file(f"deep_{name}_relevance_regions", ".tsv"))
        shown = "TP" if "TP" in averages else next(iter(averages))
        top_regions = ranking[ranking.group == shown]
        bars = region_bar_figure(
            top_regions, f"{name}: mean relevance of the {shown} ({config.participant.atlas})"
        )
        writer.write_figure(bars, f"deep_{name}_relevance_regions")
        example = int(np.flatnonzero(groups == shown)[0])
        subject = predictions["participant_id"].iloc[example]
        example_map = relevance_map_figure(
            nib.Nifti1Image(maps[example], outcome.affine),
            nib.Nifti1Image(outcome.volumes[example, 0].astype(np.float32), outcome.affine),
            f"{name}: {subject} ({shown})",
        )
        writer.write_figure(example_map, f"deep_{name}_relevance_example")
        average_map = relevance_map_figure(
            nib.Nifti1Image(averages[shown], outcome.affine), mean_crop, f"{name}: {shown} average"
        )
        writer.write_figure(average_map, f"deep_{name}_relevance_{shown}")
        html = (
            "<p>Out-of-fold relevance (each subject explained by the fold model that did not "
            "train on it), averaged per prediction group: "
            + ", ".join(f"{g} {int((groups == g).sum())}" for g in averages)
            + f". Regions of the {config.participant.atlas} atlas ranked by the {shown} "
            "class-average "
            "(seed 001 §2.6.2).</p>"
            + figure_html(bars, "region ranking")
            + figure_html(average_map, f"{shown} class-average relevance")
            + figure_html(example_map, "one subject's relevance map")
        )
        if jacobian is not None:
            html += _regression(name, maps, groups, jacobian, lesions, brain, outcome, writer)
        inversion = inversion_test(
            _predictor(outcome, name, device),
            outcome.volumes.astype(np.float32),
            predictions["y_true"].to_numpy(),
            maps,
            INVERSION_QUANTILES,
            brain,
            n_random=2,
            rng=config.seed,
        )
        writer.write_table(inversion, writer.group_file(f"deep_{name}_inversion", ".tsv"))
        html += (
            "<p>Voxel-inversion test (seed 004 §II.G): AUC after inverting each subject's "
            "most relevant voxels, and as many random brain voxels.</p>" + table_html(inversion)
        )
        if target.threshold is not None:
            html += _spearman(name, maps, brain, outcome, target, config, writer)
        sections.append((f"Attention maps: {name}", html))
    return sections


def _regression(
    name: str,
    maps: np.ndarray,
    groups: np.ndarray,
    jacobian: np.ndarray,
    lesions: np.ndarray | None,
    brain: np.ndarray,
    outcome: DeepOutcome,
    writer: DerivativesWriter,
) -> str:
    """Voxel-wise regression of the relevance per prediction group (seed 001 §2.6.3)."""
    rows = []
    for group in np.unique(groups):
        members = groups == group
        if members.sum() < MIN_REGRESSION_SUBJECTS:
            continue
        regressors = {"log_jacobian": jacobian[members]}
        if lesions is not None:
            regressors["lesion"] = (lesions[members] > 0).astype(np.float32)
        fit = voxelwise_regression(maps[members], regressors, mask=brain)
        outputs = {"r2": fit.r2}
        for regressor in regressors:
            outputs[f"partialr2_{regressor}"] = fit.partial_r2[regressor]
            outputs[f"stdbeta_{regressor}"] = fit.std_beta[regressor]
        for stat, values in outputs.items():
            writer.write_group_image(
                nib.Nifti1Image(values.astype(np.float32), outcome.affine),
                f"deep_{name}_regression_{group}_{stat}",
            )
        rows.append(
            {
                "group": group,
                "n_subjects": int(members.sum()),
                "median_r2": float(np.nanmedian(fit.r2)),
                "max_r2": float(np.nanmax(fit.r2)) if np.isfinite(fit.r2).any() else np.nan,
            }
        )
    table = pd.DataFrame(rows)
    writer.write_table(table, writer.group_file(f"deep_{name}_regression", ".tsv"))
    return (
        "<p>Voxel-wise regression of the relevance on the log-Jacobian"
        + (" and the lesion indicator" if lesions is not None else "")
        + " per prediction group (seed 001 §2.6.3); R², partial R² and standardised beta maps "
        "are in group/.</p>" + table_html(table)
    )


def _spearman(
    name: str,
    maps: np.ndarray,
    brain: np.ndarray,
    outcome: DeepOutcome,
    target: Target,
    config: Config,
    writer: DerivativesWriter,
) -> str:
    """Spearman's ρ of the mean intensity in the top relevance mask with the score (seed 004)."""
    masks = np.stack([quantile_masks(m, (SPEARMAN_QUANTILE,), brain)[0] for m in maps])
    images = outcome.volumes[:, 0].astype(np.float32)
    counts = masks.sum(axis=(1, 2, 3))
    values = np.where(
        counts > 0, (images * masks).sum(axis=(1, 2, 3)) / np.maximum(counts, 1), np.nan
    )
    scores = pd.to_numeric(outcome.rows[target.column], errors="coerce").to_numpy()
    rho, p = spearman_permutation(values, scores, rng=config.seed)
    table = pd.DataFrame(
        [
            {
                "quantile": SPEARMAN_QUANTILE,
                "score": target.column,
                "rho": rho,
                "p_permutation": p,
                "n_permutations": 20000,
                "n": int(np.isfinite(values).sum()),
            }
        ]
    )
    writer.write_table(table, writer.group_file(f"deep_{name}_spearman", ".tsv"))
    return (
        "<p>Spearman's ρ of the mean intensity in each subject's most relevant voxels with "
        f"{target.column} (seed 004 §II.G, 20,000 permutations).</p>" + table_html(table)
    )
