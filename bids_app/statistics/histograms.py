"""Mean intensity histogram per group (Turrisi 2024, §3.1.2 and Figure 3).

Turrisi et al. (Turrisi 2024) computed a fixed-bin-width histogram of every T1w image's non-zero
voxels and averaged the histograms per group (their Figure 3, "mean frequency distribution").
Here the per-session histograms of :func:`bids_app.features.histogram.intensity_histogram`,
stacked one session after the other, are

1. normalised to sum 1 each (frequency = count / voxels counted), so that brains of
   different sizes weigh the same;
2. averaged over the sessions of a subject, so that a subject with several sessions counts
   once (the average of normalised histograms still sums to 1);
3. averaged over the subjects of a group, with the standard deviation across the subjects.

Sessions are expected to share their bins, which ``normalisation="wm-median"`` guarantees.
With ``normalisation="none"`` the regular bins stop at each image's maximum, so the open
overflow bins begin at different edges; every bin at or above the lowest of these edges is
then merged into one open bin, which makes the bins common again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns of :func:`group_histograms`.
GROUP_HISTOGRAM_COLUMNS = ["group", "bin_lower", "bin_upper", "n_subjects", "mean", "sd"]


def group_histograms(histograms: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Return the mean and SD of the normalised intensity histogram per group and bin.

    Parameters
    ----------
    histograms : pandas.DataFrame
        The sessions' histograms stacked: one row per session and bin, with
        ``participant_id``, optionally ``session_id``, and ``bin_lower``, ``bin_upper`` and
        ``count`` as written by :func:`bids_app.features.histogram.intensity_histogram`.
    groups : pandas.Series
        Group of each subject, indexed by ``participant_id``; subjects without a group are
        left out, as are sessions without counts.

    Returns
    -------
    pandas.DataFrame
        One row per group (sorted) and bin (ascending), with the columns of
        ``GROUP_HISTOGRAM_COLUMNS``: ``n_subjects`` the subjects averaged, ``mean`` the mean
        frequency (summing to 1 over a group's bins) and ``sd`` its standard deviation across
        the subjects (NaN for a single subject).

    Raises
    ------
    ValueError
        If the sessions' bins differ in a way that merging the overflow bins cannot undo.

    Examples
    --------
    >>> bins = {"bin_lower": [0.0, 2.0, 4.0], "bin_upper": [2.0, 4.0, np.inf]}
    >>> histograms = pd.concat([
    ...     pd.DataFrame({"participant_id": "sub-1", **bins, "count": [1, 1, 2]}),
    ...     pd.DataFrame({"participant_id": "sub-2", **bins, "count": [0, 3, 1]}),
    ... ])
    >>> group_histograms(histograms, pd.Series({"sub-1": "A", "sub-2": "A"}))
      group  bin_lower  bin_upper  n_subjects   mean        sd
    0     A        0.0        2.0           2  0.125  0.176777
    1     A        2.0        4.0           2  0.500  0.353553
    2     A        4.0        inf           2  0.375  0.176777
    """
    keys = ["participant_id", "session_id"] if "session_id" in histograms else ["participant_id"]
    frame = histograms[[*keys, "bin_lower", "bin_upper", "count"]].copy()
    open_bins = np.isinf(frame["bin_upper"])
    if open_bins.any():
        edge = frame.loc[open_bins, "bin_lower"].min()
        merged = frame["bin_lower"] >= edge
        frame.loc[merged, ["bin_lower", "bin_upper"]] = [edge, np.inf]
    counts = (
        frame.groupby([*keys, "bin_lower", "bin_upper"], dropna=False)["count"]
        .sum()
        .unstack(["bin_lower", "bin_upper"])
        .sort_index(axis=1)
    )
    if counts.isna().any().any():
        raise ValueError("the sessions' histograms do not share their bins")
    counts = counts[counts.sum(axis=1) > 0]
    frequencies = counts.div(counts.sum(axis=1), axis=0)
    per_subject = frequencies.groupby(level="participant_id").mean()
    subject_groups = groups.reindex(per_subject.index).dropna()
    summary = (
        per_subject.loc[subject_groups.index]
        .groupby(subject_groups.to_numpy())
        .agg(["count", "mean", "std"])
        .stack(["bin_lower", "bin_upper"], future_stack=True)
        .rename_axis(["group", "bin_lower", "bin_upper"])
        .rename(columns={"count": "n_subjects", "std": "sd"})
    )
    return summary.reset_index()[GROUP_HISTOGRAM_COLUMNS]
