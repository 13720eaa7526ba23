"""Figures and report sections of the attention-map analyses: region rankings, relevance maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import plotting

from bids_app.group.attention import AttentionResult
from bids_app.group.gamer import GamerResult
from bids_app.reports.html import ReportPart, table_html


def region_bar_figure(ranking: pd.DataFrame, title: str, top: int = 10) -> plt.Figure:
    """Horizontal bars of the most relevant atlas regions.

    Parameters
    ----------
    ranking : pandas.DataFrame
        From :func:`bids_app.statistics.attention.region_relevance` (``region``,
        ``mean_relevance``), sorted.
    title : str
        Axis title.
    top : int
        Regions shown.

    Returns
    -------
    matplotlib.figure.Figure
        The chart.
    """
    shown = ranking.dropna(subset=["mean_relevance"]).head(top).iloc[::-1]
    figure, axis = plt.subplots(figsize=(6.5, 0.3 * len(shown) + 1.2))
    axis.barh(shown["region"], shown["mean_relevance"], color="#c0392b")
    axis.set(xlabel="mean relevance", title=title)
    axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    return figure


def prediction_groups_figure(
    tops: dict[str, np.ndarray], background: np.ndarray, counts: pd.DataFrame, top: int = 8
) -> plt.Figure:
    """Draw Coll 2023 Fig. 4a and 4c: each group's binarised class average and its regions.

    Parameters
    ----------
    tops : dict of str to numpy.ndarray
        Each prediction group's class-average map binarised at its 95th percentile.
    background : numpy.ndarray
        The mean crop, under the maps.
    counts : pandas.DataFrame
        Voxels per region and group (``group, region, n_relevant``).
    top : int
        Regions shown: those with the most voxels over all groups.

    Returns
    -------
    matplotlib.figure.Figure
        One axial slice per group (the slice with the most voxels over all groups), then a bar
        chart of the voxels per region and group.
    """
    groups = list(tops)
    stacked = np.stack([tops[g] for g in groups]).astype(float)
    z = int(np.argmax(stacked.sum(axis=(0, 1, 2))))
    figure, axes = plt.subplots(
        1, len(groups) + 1, figsize=(2.4 * len(groups) + 5, 3),
        gridspec_kw={"width_ratios": [1] * len(groups) + [2.2]},
    )  # fmt: skip
    for axis, group in zip(axes[:-1], groups, strict=True):
        axis.imshow(np.rot90(background[:, :, z]), cmap="gray")
        axis.imshow(np.rot90(np.ma.masked_equal(tops[group][:, :, z], 0)), cmap="autumn")
        axis.set_title(f"{group} (top 5 %)")
        axis.axis("off")
    totals = counts.groupby("region")["n_relevant"].sum().nlargest(top).index
    wide = counts[counts["region"].isin(totals)].pivot_table(
        index="region", columns="group", values="n_relevant", aggfunc="sum"
    )
    wide.reindex(totals).plot.barh(ax=axes[-1], width=0.8)
    axes[-1].invert_yaxis()
    axes[-1].set_xlabel("voxels in the top 5 %")
    axes[-1].set_ylabel("")
    figure.tight_layout()
    return figure


#: Rows of Coll 2023 Fig. 5, in its order; other groups follow.
FIG5_GROUPS = ("TP", "FP", "TN", "FN")
#: Columns of Coll 2023 Fig. 5 (title, colour map); partial R² columns follow R².
FIG5_COLUMNS = {
    "T1w": ("mean T1w", "gray"),
    "lesion": ("lesion share", "hot"),
    "jacobian": ("Jacobian − 1", "cold_hot"),
    "relevance": ("mean LRP", "cold_hot"),
    "r2": ("R²", "hot"),
}


def group_maps_figure(
    group_maps: dict[str, dict[str, np.ndarray]], background: np.ndarray, affine: np.ndarray
) -> plt.Figure:
    """Draw Coll 2023 Fig. 5: each prediction group's mean maps, one row per group.

    Parameters
    ----------
    group_maps : dict of str to dict of str to numpy.ndarray
        :attr:`~bids_app.group.attention.AttentionResult.group_maps`.
    background : numpy.ndarray
        The mean crop on the template grid, under the overlays.
    affine : numpy.ndarray
        Affine of the crop grid.

    Returns
    -------
    matplotlib.figure.Figure
        Rows TP, FP, TN, FN (those present); columns the mean T1w, lesion share, Jacobian
        determinant (as expansion > 0 > compression), class-average relevance, R² and the
        partial R² of each regressor, on one axial slice (that of the largest positive
        relevance over the groups). Each column shares its colour scale; a group without a
        regression (too few subjects) leaves those cells empty.
    """
    rows = [g for g in FIG5_GROUPS if g in group_maps]
    rows += [g for g in group_maps if g not in rows]
    partials = sorted({k for m in group_maps.values() for k in m if k.startswith("partialr2_")})
    columns = [c for c in FIG5_COLUMNS if any(c in m for m in group_maps.values())] + partials
    relevance = np.stack([np.clip(group_maps[g]["relevance"], 0, None) for g in rows])
    z = int(np.argmax(relevance.sum(axis=(0, 1, 2))))
    cut = [float(nib.affines.apply_affine(affine, (0, 0, z))[2])]
    bg = nib.Nifti1Image(background.astype(np.float32), affine)
    figure, axes = plt.subplots(
        len(rows), len(columns), figsize=(2.1 * len(columns), 2.3 * len(rows)), squeeze=False
    )
    for j, column in enumerate(columns):
        title, cmap = FIG5_COLUMNS.get(column, (column.replace("partialr2_", "partial R² "), "hot"))
        values = {g: _shown(column, group_maps[g][column]) for g in rows if column in group_maps[g]}
        vmax = max((float(np.nanmax(np.abs(v))) for v in values.values()), default=1.0) or 1.0
        for i, group in enumerate(rows):
            axis = axes[i, j]
            axis.axis("off")
            if i == 0:
                axis.set_title(title, fontsize=9)
            if j == 0:
                axis.text(-0.08, 0.5, group, transform=axis.transAxes, rotation=90,
                          va="center", ha="right", fontsize=10, fontweight="bold")  # fmt: skip
            if group not in values:
                axis.text(0.5, 0.5, "too few\nsubjects", ha="center", va="center", fontsize=8)
                continue
            image = nib.Nifti1Image(np.nan_to_num(values[group]).astype(np.float32), affine)
            common = {"axes": axis, "display_mode": "z", "cut_coords": cut, "annotate": False}
            if column == "T1w":
                plotting.plot_anat(image, draw_cross=False, vmax=vmax, **common)
            else:
                plotting.plot_stat_map(
                    image, bg_img=bg, cmap=cmap, vmax=vmax, colorbar=False,
                    draw_cross=False, black_bg=False, **common,
                )  # fmt: skip
    return figure


def _shown(column: str, values: np.ndarray) -> np.ndarray:
    """Return the map as Fig. 5 shows it: the Jacobian as expansion (> 0), compression (< 0)."""
    return values - 1.0 if column == "jacobian" else values


def relevance_map_figure(
    relevance: nib.Nifti1Image, background: nib.Nifti1Image, title: str
) -> plt.Figure:
    """Orthogonal slices of a relevance map over an image, cut at its maximum.

    Parameters
    ----------
    relevance : nibabel.Nifti1Image
        The map (its positive relevance shown above the 99th percentile: LRP through max
        pooling is sparse, so lower thresholds show mostly near-zero voxels).
    background : nibabel.Nifti1Image
        An image on the same grid (the subject's crop, or the mean crop).
    title : str
        Title.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    data = np.asarray(relevance.dataobj, dtype=np.float32)
    positive = data[data > 0]
    threshold = float(np.percentile(positive, 99)) if positive.size else 0.0
    peak = np.unravel_index(np.argmax(data), data.shape)
    cut = nib.affines.apply_affine(relevance.affine, peak)
    figure = plt.figure(figsize=(8, 3))
    plotting.plot_stat_map(
        relevance,
        bg_img=background,
        threshold=threshold,
        cut_coords=cut,
        display_mode="ortho",
        title=title,
        figure=figure,
        colorbar=True,
        cmap="hot",
        symmetric_cbar=False,
        vmin=threshold,
        draw_cross=False,
        black_bg=False,
        annotate=True,
    )
    return figure


def render_attention(result: AttentionResult) -> ReportPart:
    """Render one network's attention analyses (Coll 2023 §2.6, Lu 2023 §II.G).

    Parameters
    ----------
    result : AttentionResult
        From :func:`bids_app.group.attention.run_attention_analyses`.

    Returns
    -------
    ReportPart
        One section, with the region ranking, the class-average and one subject's map.
    """
    part = ReportPart()
    name, shown = result.network, result.shown
    bars = part.figure(
        region_bar_figure(
            result.regions, f"{name}: mean relevance of the {shown} ({result.atlas})"
        ),
        "region ranking",
        "figure_deep_relevance_regions",
        network=name,
    )
    average = part.figure(
        relevance_map_figure(
            nib.Nifti1Image(result.average, result.affine),
            nib.Nifti1Image(result.mean_crop, result.affine),
            f"{name}: {shown} average",
        ),
        f"{shown} class-average relevance",
        "figure_deep_relevance_average",
        network=name,
        group=shown,
    )
    example = part.figure(
        relevance_map_figure(
            nib.Nifti1Image(result.example, result.affine),
            nib.Nifti1Image(result.example_crop, result.affine),
            f"{name}: {result.example_subject} ({shown})",
        ),
        "one subject's relevance map",
        "figure_deep_relevance_example",
        network=name,
    )
    groups = ""
    if result.tops:
        groups = part.figure(
            prediction_groups_figure(result.tops, result.mean_crop, result.region_counts),
            "binarised class-average maps and voxels per region by prediction group",
            "figure_deep_relevance_groups",
            network=name,
        )
        groups = (
            "<p>Each prediction group's class-average map binarised at its 95th percentile, "
            "and its voxels per region (Coll 2023 Fig. 4a and 4c):</p>" + groups
        )
    if result.group_maps:
        groups += (
            "<p>Mean maps per prediction group (Coll 2023 Fig. 5): T1w, lesions and Jacobian "
            "determinant where those maps exist, the class-average relevance and, for groups "
            "regressed, the R² and partial R² of the voxel-wise regression:</p>"
            + part.figure(
                group_maps_figure(result.group_maps, result.mean_crop, result.affine),
                "mean maps per prediction group (Coll 2023 Fig. 5)",
                "figure_deep_group_maps",
                network=name,
            )
        )
    html = (
        "<p>Out-of-fold relevance (each subject explained by the fold model that did not "
        "train on it), averaged per prediction group: "
        + ", ".join(f"{g} {n}" for g, n in result.counts.items())
        + f". Regions of the {result.atlas} atlas ranked by the {shown} class-average "
        "(Coll 2023 §2.6.2).</p>" + bars + average + example + groups
    )
    if result.regression is not None:
        html += (
            "<p>Voxel-wise regression of the relevance on the log-Jacobian"
            + (" and the lesion indicator" if result.regression_lesions else "")
            + " per prediction group (Coll 2023 §2.6.3); R², partial R² and standardised beta "
            "maps are in group/.</p>" + table_html(result.regression)
        )
    html += (
        "<p>Voxel-inversion test (Lu 2023 §II.G): AUC after inverting each subject's "
        "most relevant voxels, and as many random brain voxels.</p>" + table_html(result.inversion)
    )
    if result.spearman is not None:
        html += (
            "<p>Spearman's ρ of the mean intensity in each subject's most relevant voxels with "
            f"{result.score} (Lu 2023 §II.G, 20,000 permutations).</p>"
            + table_html(result.spearman)
        )
    if result.gamer is not None:
        html += gamer_html(result.gamer)
    part.sections.append((f"Attention maps: {name}", html))
    return part


def gamer_html(result: GamerResult) -> str:
    """Render the GAMER-MRIL analyses of Lu 2023 (Table II, Fig. 4, Tables III-IV).

    Parameters
    ----------
    result : GamerResult
        From :func:`bids_app.group.gamer.run_gamer_analysis`.

    Returns
    -------
    str
        HTML: the mean attention weights, the AUC of each scenario's voxel-inversion test and
        the Spearman tests.
    """
    auc = result.scenarios.pivot_table(
        index="quantile", columns="scenario", values="auc_relevance", sort=True
    ).sort_index(ascending=False)
    auc.columns = [f"scenario {c}" for c in auc.columns]
    names = (
        result.scenarios.drop_duplicates("scenario")
        .set_index("scenario")[["start", "gated_rule", "map"]]
        .reset_index()
    )
    html = (
        "<p>GAMER-MRIL (Lu 2023): attention weight of each contrast averaged over the correctly "
        "classified subjects (§III.A, Table II).</p>"
        + table_html(result.mean_weights)
        + f"<p>Voxel-inversion test of the LRP scenarios of Lu 2023 Table I (start: "
        f"{result.start}; the maps written use the {result.gated_rule} gated rule): AUC after "
        "inverting each subject's voxels in the masks of its relevance maps (individual) or of "
        "its combined map (eq. (8)), by quantile of positive relevance (Fig. 4).</p>"
        + table_html(names)
        + table_html(auc.reset_index())
    )
    if result.spearman is not None:
        html += (
            f"<p>Spearman's ρ of each contrast's mean value in the top-40 % masks with "
            f"{result.score}, 20,000 permutations (§III.C, Tables III-IV); largest_auc_drop "
            "marks the scenario whose top-40 % masks lowered the AUC the most.</p>"
            + table_html(result.spearman.drop(columns=["start", "gated_rule", "map"]))
        )
    return html
