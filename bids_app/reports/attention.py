"""Figures of the attention-map analyses: region rankings and relevance maps."""

from __future__ import annotations

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import plotting


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
