"""Per-subject intensity histograms (Turrisi et al. 2024 §3.1.2 and Figure 3).

Turrisi et al. 2024 computed, for each T1w image, the frequency distribution of the voxel
values with a fixed bin width, background (zero) voxels excluded, and averaged the histograms
per group. Raw
intensities are not comparable across scanners, so by default the brain's values are first put
on a common scale where the white-matter median is 100 (``normalisation="wm-median"``);
``"none"`` keeps the scanner's values, as the paper did on its single-protocol cohort.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

#: Bin width and upper edge on the white-matter-median = 100 scale; brighter voxels go into an
#: overflow bin whose upper edge is infinite.
BIN_WIDTH = 2.0
UPPER_EDGE = 200.0
#: Bin width on the raw scale (``--histogram-scale raw``): one unit of the scanner's values, the
#: resolution of the 8-bit grey levels of the paper's Figure 3.
RAW_BIN_WIDTH = 1.0

#: ``normalisation`` choices.
NORMALISATIONS = ("wm-median", "none")


def intensity_histogram(
    t1w: nib.Nifti1Image,
    brain_mask: nib.Nifti1Image,
    wm: nib.Nifti1Image | None = None,
    *,
    normalisation: str = "wm-median",
    bin_width: float = BIN_WIDTH,
    upper_edge: float = UPPER_EDGE,
) -> pd.DataFrame:
    """Return the histogram of the brain's non-zero intensities with a fixed bin width.

    Parameters
    ----------
    t1w : nibabel.Nifti1Image
        Bias-corrected T1w.
    brain_mask : nibabel.Nifti1Image
        Brain mask on the same grid.
    wm : nibabel.Nifti1Image, optional
        White-matter posterior (needed for ``normalisation="wm-median"``).
    normalisation : {"wm-median", "none"}
        Intensity scale, see the module's description.
    bin_width : float
        Width of every bin, in the units of the (normalised) intensities.
    upper_edge : float
        Upper edge of the last regular bin; brighter voxels are counted in an overflow bin.
        With ``normalisation="none"`` it is raised to the image's maximum.

    Returns
    -------
    pandas.DataFrame
        ``bin_lower``, ``bin_upper``, ``count`` and ``fraction`` (count / voxels counted).

    Raises
    ------
    ValueError
        On an unknown normalisation, a missing WM map, or a mask without non-zero voxels.
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; one of {NORMALISATIONS}")
    data = np.asarray(t1w.dataobj, dtype=np.float64)
    inside = (np.asarray(brain_mask.dataobj) > 0) & (data != 0)
    if not inside.any():
        raise ValueError("the brain mask holds no non-zero voxel")
    values = data[inside]
    if normalisation == "wm-median":
        if wm is None:
            raise ValueError("normalisation 'wm-median' needs the white-matter posterior")
        white = inside & (np.asarray(wm.dataobj) > 0.9)
        reference = np.median(data[white]) if white.any() else np.median(values)
        values = values * (100.0 / reference)
    else:
        upper_edge = max(upper_edge, float(np.ceil(values.max() / bin_width) * bin_width))
    edges = np.append(np.arange(0.0, upper_edge + bin_width / 2, bin_width), np.inf)
    counts, _ = np.histogram(np.clip(values, 0, None), bins=edges)
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": counts,
            "fraction": counts / counts.sum(),
        }
    )
