"""External validation of trained networks: their votes on this dataset against its labels.

Coll et al. 2023 (§2.5, §3.2) applied the seven fold models of the in-house cross-validation to
an external cohort and reported the accuracy, sensitivity and specificity of their majority
vote. The participant level does the applying (``participant --models``: one
``predictions.tsv`` per session with every fold model's probability and the majority vote); this
step gathers those votes at the group level and, when the dataset has the labels, scores them.
The target is the one given at this run (``--target`` with ``--threshold`` or
``--positive-label``), so that a network trained on one definition (EDSS ≥ 3) can be checked
against another (PDDS ≥ 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bids_app.derivatives.writer import DerivativesWriter
from bids_app.inputs.inventory import SessionInputs
from bids_app.models.design import Target, binary_target
from bids_app.models.metrics import binary_metrics

#: Columns of the gathered votes that the metrics use.
VOTE_COLUMNS = ("network", "mean_probability", "votes", "majority_vote")


@dataclass(frozen=True)
class NetworkValidation:
    """The networks' votes on this dataset and, with labels, their cohort metrics.

    Parameters
    ----------
    predictions : pandas.DataFrame
        One row per session and network: ``participant_id``, maybe ``session_id``, the columns
        of :data:`VOTE_COLUMNS` and ``y_true`` (NaN without a label).
    metrics : pandas.DataFrame
        One row per network: ``network, n`` and the metrics of
        :func:`~bids_app.models.metrics.binary_metrics` (the majority vote as the prediction, the
        mean probability as the score); empty without labels.
    target : str
        The target as the report names it.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    target: str


def collect_votes(inventory: Sequence[SessionInputs], writer: DerivativesWriter) -> pd.DataFrame:
    """Read the ``predictions.tsv`` that ``participant --models`` wrote for each session.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        The sessions.
    writer : DerivativesWriter
        The derivatives dataset.

    Returns
    -------
    pandas.DataFrame
        One row per session and network (``participant_id``, maybe ``session_id``, the votes);
        empty when no session has predictions.
    """
    rows = []
    for item in inventory:
        path = writer.path("predictions", item.entities)
        if not path.is_file():
            continue
        table = pd.read_csv(path, sep="\t")
        ids = {"participant_id": f"sub-{item.subject}"}
        if item.session:
            ids["session_id"] = f"ses-{item.session}"
        rows.append(table[list(VOTE_COLUMNS)].assign(**ids))
    if not rows:
        return pd.DataFrame()
    votes = pd.concat(rows, ignore_index=True)
    ids = [c for c in ("participant_id", "session_id") if c in votes]
    return votes[[*ids, *VOTE_COLUMNS]]


def validate_networks(
    votes: pd.DataFrame, clinical: pd.DataFrame | None, target: Target | None
) -> NetworkValidation:
    """Score the majority votes against this dataset's labels (Coll et al. 2023 §3.2).

    Parameters
    ----------
    votes : pandas.DataFrame
        From :func:`collect_votes`.
    clinical : pandas.DataFrame or None
        The clinical values of each vote's session, row-aligned with ``votes``; None without a
        target.
    target : Target or None
        The target of this run (it may differ from the networks' training target).

    Returns
    -------
    NetworkValidation
        The votes with ``y_true``, and the metrics per network (the sessions with a label).

    Examples
    --------
    >>> votes = pd.DataFrame({"participant_id": ["sub-1", "sub-2", "sub-3", "sub-4"],
    ...                       "network": "resnet3d", "mean_probability": [0.9, 0.2, 0.6, 0.1],
    ...                       "votes": [7, 0, 4, 1], "majority_vote": [1, 0, 1, 0]})
    >>> clinical = pd.DataFrame({"edss": [4.0, 1.0, 2.0, 3.5]})
    >>> result = validate_networks(votes, clinical, Target("edss", threshold=3.0))
    >>> result.metrics[["n", "accuracy", "sensitivity", "specificity"]].to_dict("records")
    [{'n': 4, 'accuracy': 0.5, 'sensitivity': 0.5, 'specificity': 0.5}]
    """
    if target is None or clinical is None or target.column not in clinical:
        name = target.describe() if target is not None else "none"
        return NetworkValidation(votes.assign(y_true=np.nan), pd.DataFrame(), name)
    y = binary_target(clinical[target.column].reset_index(drop=True), target)
    labelled = votes.reset_index(drop=True).assign(y_true=y)
    rows = []
    for network, part in labelled.dropna(subset=["y_true"]).groupby("network", sort=True):
        metrics = binary_metrics(
            part["y_true"].to_numpy(int),
            part["majority_vote"].to_numpy(int),
            part["mean_probability"].to_numpy(float),
        )
        rows.append({"network": network, "n": len(part), **metrics})
    return NetworkValidation(labelled, pd.DataFrame(rows), target.describe())
