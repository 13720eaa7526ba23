"""Group level: analyses of the networks' out-of-fold attention maps.

Coll 2023 §2.6: class-average relevance maps of the true/false positives/negatives, the same
binarised at the 95th percentile, mean relevance per atlas region ranked, and a voxel-wise
regression of the relevance on the lesion indicator and the (log-)Jacobian within each
prediction group (R², partial R² and standardised beta maps). Lu 2023 §II.G: the voxel-inversion
test over the quantile masks down to the top 40 % and, for a numeric target, Spearman's ρ of each
contrast's mean intensity inside each subject's top-40 % mask with the clinical score, with a
permutation p-value. Networks with attention weights (GAMER) also get the GAMER-MRIL analyses of
:mod:`bids_app.group.gamer`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from bids_app.config import Config
from bids_app.deep.crossval import fold_models
from bids_app.deep.networks import NETWORKS, positive_probability
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.features.atlases import load_atlas
from bids_app.group.deep_learning import DeepOutcome
from bids_app.group.gamer import GamerResult, run_gamer_analysis
from bids_app.models.design import Target
from bids_app.preprocessing.cnn_input import to_crop_grid
from bids_app.preprocessing.templates import load_template
from bids_app.statistics.attention import (
    LU2023_QUANTILES,
    binarise_percentile,
    class_average_maps,
    contrast_spearman,
    individual_region_counts,
    inversion_test,
    prediction_groups,
    region_relevance,
    voxelwise_regression,
)

LOGGER = logging.getLogger("bids_app.deep")

#: Percentile of the class-average maps kept in their binarised copies (Coll 2023 §2.6.1).
TOP_PERCENTILE = 95.0
#: Quantiles of the voxel-inversion test (Lu 2023 §II.G from high to low, §III.B to the top 40 %).
INVERSION_QUANTILES = LU2023_QUANTILES
#: Quantile of the mask whose mean intensity is correlated with the clinical score (Lu 2023
#: §III.C: the top 40 %).
SPEARMAN_QUANTILE = LU2023_QUANTILES[-1]
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


def out_of_fold_predictor(outcome: DeepOutcome, name: str, device: torch.device):
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


@dataclass(frozen=True)
class AttentionResult:
    """The analyses of one network's out-of-fold relevance maps.

    Parameters
    ----------
    network : str
        The network.
    atlas : str
        The atlas of the region ranking.
    counts : dict of str to int
        Subjects per prediction group (TP, FP, TN, FN) with a class average.
    shown : str
        The prediction group shown (TP when there is one).
    regions : pandas.DataFrame
        Regions ranked by the shown group's class-average relevance.
    average : numpy.ndarray
        The shown group's class-average relevance map.
    mean_crop : numpy.ndarray
        The mean of the first contrast's crops (background of ``average``).
    example : numpy.ndarray
        Relevance map of one subject of the shown group.
    example_crop : numpy.ndarray
        That subject's crop (first contrast).
    example_subject : str
        That subject's ``participant_id``.
    affine : numpy.ndarray
        Affine of the crop grid.
    inversion : pandas.DataFrame
        The voxel-inversion test.
    regression : pandas.DataFrame or None
        Summary of the voxel-wise regression (None without the log-Jacobian maps).
    regression_lesions : bool
        Whether the regression had the lesion indicator.
    spearman : pandas.DataFrame or None
        Spearman's test against the clinical score (None without a numeric target).
    score : str
        The clinical score's column.
    gamer : GamerResult or None
        The GAMER-MRIL analyses (networks with attention weights only).
    tops : dict of str to numpy.ndarray
        Each prediction group's class-average map binarised at its 95th percentile in the
        brain (Coll 2023 Fig. 4a).
    region_counts : pandas.DataFrame
        Voxels of each binarised class-average map per atlas region and group (Coll 2023
        Fig. 4c): ``group`` and the columns of
        :func:`~bids_app.statistics.attention.individual_region_counts`.
    group_maps : dict of str to dict of str to numpy.ndarray
        Each prediction group's mean maps, the rows of Coll 2023 Fig. 5: ``T1w`` (the first
        contrast's crops), ``lesion`` (share of subjects with a lesion in each voxel) and
        ``jacobian`` (the Jacobian determinant, ``exp`` of the log-Jacobian) when those maps
        exist, ``relevance`` (the class average), and, for groups large enough for the
        voxel-wise regression, ``r2`` and ``partialr2_<regressor>``.
    """

    network: str
    atlas: str
    counts: dict[str, int]
    shown: str
    regions: pd.DataFrame
    average: np.ndarray
    mean_crop: np.ndarray
    example: np.ndarray
    example_crop: np.ndarray
    example_subject: str
    affine: np.ndarray
    inversion: pd.DataFrame
    regression: pd.DataFrame | None
    regression_lesions: bool
    spearman: pd.DataFrame | None
    score: str
    gamer: GamerResult | None = None
    tops: dict[str, np.ndarray] = field(default_factory=dict)
    region_counts: pd.DataFrame = field(default_factory=pd.DataFrame)
    group_maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def run_attention_analyses(
    outcome: DeepOutcome,
    target: Target,
    config: Config,
    writer: DerivativesWriter,
    device: torch.device,
) -> list[AttentionResult]:
    """Write the group analyses of every network's out-of-fold relevance maps.

    Parameters
    ----------
    outcome : DeepOutcome
        The trained networks, their out-of-fold predictions and relevance maps.
    target : Target
        What the networks predict (a numeric target gets the Spearman test of Lu 2023).
    config : Config
        Atlas, seed, template folder.
    writer : DerivativesWriter
        The output dataset.
    device : torch.device
        Where the inversion test runs the networks.

    Returns
    -------
    list of AttentionResult
        One per network.
    """
    grid = nib.Nifti1Image(np.zeros(outcome.volumes.shape[2:], np.uint8), outcome.affine)
    resolution = 1 if abs(outcome.affine[0, 0]) < 1.5 else 2
    template = load_template(resolution, config.participant.templateflow_home)
    atlas = load_atlas(config.participant.atlas)
    labels = np.asarray(to_crop_grid(atlas.image, grid).dataobj).astype(np.int32)
    brain = np.asarray(to_crop_grid(template.brain_mask, grid).dataobj) > 0
    jacobian = _crop_maps(outcome, writer, "logjacobian_mni", grid, "linear")
    lesions = _crop_maps(outcome, writer, "lesion_mni", grid, "nearest")
    mean_crop = outcome.volumes[:, 0].astype(np.float32).mean(axis=0)
    results = []
    for name, maps in outcome.relevance.items():
        predictions = outcome.predictions[name]
        groups = prediction_groups(predictions["y_true"], predictions["y_pred"])
        averages = class_average_maps(maps, groups)
        rankings, counted, tops = [], [], {}
        for group, average in averages.items():
            writer.write_group_image(
                nib.Nifti1Image(average, outcome.affine),
                "deep_relevance_average",
                network=name,
                group=group,
            )
            top = binarise_percentile(average, TOP_PERCENTILE, brain).astype(np.uint8)
            tops[group] = top
            # Coll 2023 Fig. 4c: the binarised class average's voxels per anatomical area
            counted.append(
                individual_region_counts(
                    average[None], labels, atlas.labels, TOP_PERCENTILE, brain, [group]
                ).rename(columns={"subject": "group"})
            )
            writer.write_group_image(
                nib.Nifti1Image(top, outcome.affine),
                "deep_relevance_top",
                network=name,
                group=group,
            )
            rankings.append(
                region_relevance(average, labels, atlas.labels).assign(
                    group=group, n_subjects=int((groups == group).sum())
                )
            )
        ranking = pd.concat(rankings, ignore_index=True)
        writer.write_group_table(ranking, "deep_relevance_regions", network=name)
        region_counts = pd.concat(counted, ignore_index=True)
        writer.write_group_table(region_counts, "deep_relevance_counts", network=name)
        shown = "TP" if "TP" in averages else next(iter(averages))
        example = int(np.flatnonzero(groups == shown)[0])
        regression, fits = None, {}
        if jacobian is not None:
            regression, fits = _regression(
                name, maps, groups, jacobian, lesions, brain, outcome, writer
            )
        group_maps = {
            group: {
                **_mean_inputs(outcome, groups == group, jacobian, lesions),
                "relevance": average,
                **fits.get(group, {}),
            }
            for group, average in averages.items()
        }
        predict = out_of_fold_predictor(outcome, name, device)
        inversion = inversion_test(
            predict,
            outcome.volumes.astype(np.float32),
            predictions["y_true"].to_numpy(),
            maps,
            INVERSION_QUANTILES,
            brain,
            n_random=2,
            rng=config.seed,
        )
        writer.write_group_table(inversion, "deep_inversion", network=name)
        spearman = None
        if target.threshold is not None:
            spearman = _spearman(name, maps, brain, outcome, target, config, writer)
        gamer = None
        if hasattr(NETWORKS[outcome.results[name][1].name], "forward_with_attention"):
            gamer = run_gamer_analysis(
                name, outcome, target, config, writer, device, brain, predict
            )
        results.append(
            AttentionResult(
                network=name,
                atlas=config.participant.atlas,
                counts={g: int((groups == g).sum()) for g in averages},
                shown=shown,
                regions=ranking[ranking.group == shown],
                average=averages[shown],
                mean_crop=mean_crop,
                example=maps[example],
                example_crop=outcome.volumes[example, 0].astype(np.float32),
                example_subject=predictions["participant_id"].iloc[example],
                affine=outcome.affine,
                inversion=inversion,
                regression=regression,
                regression_lesions=lesions is not None,
                spearman=spearman,
                score=target.column,
                gamer=gamer,
                tops=tops,
                region_counts=region_counts,
                group_maps=group_maps,
            )
        )
    return results


def _mean_inputs(
    outcome: DeepOutcome,
    members: np.ndarray,
    jacobian: np.ndarray | None,
    lesions: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Average a prediction group's T1w crops, lesions and Jacobians (Coll 2023 Fig. 5)."""
    means = {"T1w": outcome.volumes[members, 0].astype(np.float32).mean(axis=0)}
    if lesions is not None:
        means["lesion"] = (lesions[members] > 0).astype(np.float32).mean(axis=0)
    if jacobian is not None:
        means["jacobian"] = np.exp(jacobian[members]).astype(np.float32).mean(axis=0)
    return means


def _regression(
    name: str,
    maps: np.ndarray,
    groups: np.ndarray,
    jacobian: np.ndarray,
    lesions: np.ndarray | None,
    brain: np.ndarray,
    outcome: DeepOutcome,
    writer: DerivativesWriter,
) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Voxel-wise regression of the relevance per prediction group (Coll 2023 §2.6.3).

    Returns the summary table and, per group regressed, its R² and partial R² maps.
    """
    rows, fits = [], {}
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
        fits[str(group)] = {k: v for k, v in outputs.items() if not k.startswith("stdbeta")}
        for stat, values in outputs.items():
            writer.write_group_image(
                nib.Nifti1Image(values.astype(np.float32), outcome.affine),
                "deep_regression_map",
                network=name,
                group=group,
                stat=stat,
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
    writer.write_group_table(table, "deep_regression", network=name)
    return table, fits


def _spearman(
    name: str,
    maps: np.ndarray,
    brain: np.ndarray,
    outcome: DeepOutcome,
    target: Target,
    config: Config,
    writer: DerivativesWriter,
) -> pd.DataFrame:
    """Spearman's ρ of each contrast's mean intensity in the top-40 % mask with the score.

    Lu 2023 §II.G, §III.C; the mask is that of the relevance summed over the contrasts.
    """
    scores = pd.to_numeric(outcome.rows[target.column], errors="coerce").to_numpy()
    table = contrast_spearman(
        outcome.volumes.astype(np.float32),
        maps,
        scores,
        list(config.deep.dl_contrasts),
        SPEARMAN_QUANTILE,
        brain,
        rng=config.seed,
    ).assign(score=target.column)
    writer.write_group_table(table, "deep_spearman", network=name)
    return table
