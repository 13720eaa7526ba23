"""Trained networks on disk: checkpoints, the model card, and loading with checks.

A **checkpoint** is a ``torch.save`` file of a plain dict, readable with
``torch.load(path, weights_only=True)`` (no code is unpickled)::

    {"format": "neurostrat-network", "format_version": 1,
     "network": "resnet3d" | "cnn8" | "gamer",   # a key of bids_app.deep.networks.NETWORKS
     "options": {...},                            # keyword arguments of the network
     "in_channels": 1,                            # contrasts (channels) of the input
     "input_shape": [72, 92, 76],                 # crop size in voxels
     "voxel_size_mm": 2.0,
     "state_dict": {...}}                         # the network's weights

The same format serves ``--feature-extractor``: any network of this package trained elsewhere
(for instance on Alzheimer's disease, as Turrisi 2024 §2.2.2 used a model of Turrisi et al. 2023)
can be saved this way and its penultimate features extracted.

A **bundle** (``group/deep_models``) holds the fold checkpoints of every trained network and a
``model_card.json``: data, folds, metrics per fold, training settings, software versions and the
SHA-256 of every file. Loading checks the card's version, every digest, and that the bundle's
input shape and contrasts match the data, before any work is done; predictions carry the card's
SHA-256 so that they can be traced to the exact models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bids_app.deep.networks import NETWORKS, build_network, positive_probability
from bids_app.errors import DataError
from bids_app.models.persistence import check_entries, read_versioned_json, verified_file
from bids_app.utils.digests import file_digest

#: Identifier and version of the checkpoint layout.
CHECKPOINT_FORMAT = "neurostrat-network"
CHECKPOINT_VERSION = 1
#: Version of the model card's layout.
CARD_VERSION = 1


class BundleError(DataError, ValueError):
    """A checkpoint or bundle is missing, altered, or incompatible with the data."""


def checkpoint(
    network: str,
    options: Mapping[str, Any],
    in_channels: int,
    input_shape: Sequence[int],
    voxel_size_mm: float,
    model: nn.Module | Mapping[str, torch.Tensor],
) -> dict[str, Any]:
    """Describe a trained network as a checkpoint dict.

    Parameters
    ----------
    network : str
        A key of :data:`~bids_app.deep.networks.NETWORKS`.
    options : mapping
        Its keyword arguments.
    in_channels : int
        Input channels.
    input_shape : sequence of int
        Crop size in voxels.
    voxel_size_mm : float
        Voxel size of the crops.
    model : torch.nn.Module or mapping
        The network or its ``state_dict``.

    Returns
    -------
    dict
        The checkpoint (see the module docstring).
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "network": network,
        "options": dict(options),
        "in_channels": int(in_channels),
        "input_shape": [int(n) for n in input_shape],
        "voxel_size_mm": float(voxel_size_mm),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
    }


def load_checkpoint(
    path: Path,
    input_shape: Sequence[int] | None = None,
    in_channels: int | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint into its network, checking it fits the data.

    Parameters
    ----------
    path : Path
        The checkpoint file.
    input_shape : sequence of int, optional
        Crop size of the data it will see.
    in_channels : int, optional
        Channels of the data it will see.

    Returns
    -------
    model : torch.nn.Module
        The network in evaluation mode, on the CPU.
    info : dict
        The checkpoint without its weights.

    Raises
    ------
    BundleError
        If the file is not a checkpoint of this format, names an unknown network, or was
        trained on another input shape or number of contrasts.
    """
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BundleError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise BundleError(
            f"{path}: not a NeuroStrat network checkpoint (no format {CHECKPOINT_FORMAT!r}); "
            "see the README for the checkpoint format"
        )
    if content.get("format_version") != CHECKPOINT_VERSION:
        raise BundleError(
            f"{path}: checkpoint format version {content.get('format_version')!r}, this "
            f"NeuroStrat reads version {CHECKPOINT_VERSION}"
        )
    if content.get("network") not in NETWORKS:
        raise BundleError(
            f"{path}: unknown network {content.get('network')!r} (known: {sorted(NETWORKS)})"
        )
    info = {k: v for k, v in content.items() if k != "state_dict"}
    if input_shape is not None and list(input_shape) != list(content["input_shape"]):
        raise BundleError(
            f"{path}: trained on crops of {content['input_shape']} voxels, the data has "
            f"{list(input_shape)}; run the participant level at the resolution of the "
            "training data (--sloppy for 2 mm)"
        )
    if in_channels is not None and in_channels != content["in_channels"]:
        raise BundleError(
            f"{path}: trained on {content['in_channels']} contrast(s), the data has "
            f"{in_channels}; give the same --dl-contrasts"
        )
    model = build_network(content["network"], content["in_channels"], **content["options"])
    try:
        model.load_state_dict(content["state_dict"])
    except RuntimeError as exc:
        raise BundleError(f"{path}: weights do not fit the network ({exc})") from exc
    return model.eval(), info


@dataclass
class Bundle:
    """The networks of a bundle, loaded.

    Parameters
    ----------
    directory : Path
        The bundle folder.
    card : dict
        The model card.
    card_sha256 : str
        SHA-256 of ``model_card.json`` (recorded with every prediction).
    models : dict of str to list of torch.nn.Module
        Network name to its fold models, in fold order.
    """

    directory: Path
    card: dict[str, Any]
    card_sha256: str
    models: dict[str, list[nn.Module]]


def read_card(path: Path) -> tuple[dict[str, Any], str]:
    """Read and check a bundle's model card.

    Parameters
    ----------
    path : Path
        The model card (see :func:`bids_app.derivatives.naming.bundle_path`).

    Returns
    -------
    card : dict
        The model card.
    sha256 : str
        Its digest.

    Raises
    ------
    BundleError
        If the card is missing, unreadable, of another version, lacks what the networks need
        (their contrasts and files), or its networks predict more than two classes (applying
        them is for binary targets only).
    """
    fix = "give the group/deep_models folder of an earlier group run with --dl-models"
    card = read_versioned_json(path, "card_version", CARD_VERSION, BundleError, fix)
    check_entries(
        card,
        path,
        "networks",
        {"files": dict, "contrasts": list},
        r"fold-\d+",
        BundleError,
        f"{fix}, as that run wrote it",
    )
    classes = card.get("classes") or []
    if len(classes) > 2:
        raise BundleError(
            f"{path}: its networks predict {len(classes)} classes {classes}; networks are "
            "applied to new data for binary targets only: give the group/deep_models folder "
            "of a run with --positive-label or --threshold"
        )
    return card, file_digest(path)


def load_bundle(
    card_path: Path, input_shape: Sequence[int] | None = None, contrasts: Sequence[str] = ()
) -> Bundle:
    """Load every network of a bundle after checking digests, shapes and contrasts.

    Parameters
    ----------
    card_path : Path
        The model card of a ``group/deep_models`` folder (its files are listed relative to the
        card's folder).
    input_shape : sequence of int, optional
        Crop size of the data the bundle will see.
    contrasts : sequence of str
        Contrasts of that data; empty skips the check.

    Returns
    -------
    Bundle
        The loaded networks.

    Raises
    ------
    BundleError
        If anything does not match (nothing is computed before all checks pass).
    """
    directory = card_path.parent
    card, digest = read_card(card_path)
    models: dict[str, list[nn.Module]] = {}
    for name, entry in card["networks"].items():
        if contrasts and list(entry["contrasts"]) != list(contrasts):
            raise BundleError(
                f"{directory}: network {name} was trained on {entry['contrasts']}, the data "
                f"has {list(contrasts)}; give the same --dl-contrasts"
            )
        loaded = []
        for key in sorted(entry["files"], key=lambda k: int(k.removeprefix("fold-"))):
            file = verified_file(directory, entry["files"][key], card_path, BundleError)
            model, _ = load_checkpoint(file, input_shape, len(entry["contrasts"]))
            loaded.append(model)
        models[name] = loaded
    return Bundle(directory, card, digest, models)


@torch.no_grad()
def ensemble_predict(
    models: Sequence[nn.Module], x: torch.Tensor, age: torch.Tensor | None = None
) -> np.ndarray:
    """Positive-class probability of every fold model.

    Parameters
    ----------
    models : sequence of torch.nn.Module
        Fold models in evaluation mode, on the device of ``x``.
    x : torch.Tensor
        Inputs ``[B, C, X, Y, Z]``.
    age : torch.Tensor, optional
        Ages ``[B]`` in years.

    Returns
    -------
    numpy.ndarray
        ``[n_models, B]`` probabilities.
    """
    return np.stack([positive_probability(m(x, age)).float().cpu().numpy() for m in models], axis=0)


def majority_vote(probabilities: np.ndarray) -> np.ndarray:
    """Combine fold models by majority vote (Coll 2023 §2.5), ties by the mean probability.

    Parameters
    ----------
    probabilities : numpy.ndarray
        ``[n_models, n]`` positive-class probabilities.

    Returns
    -------
    numpy.ndarray
        0/1 decisions, ``[n]``.

    Examples
    --------
    >>> majority_vote(np.array([[0.9, 0.2, 0.6], [0.8, 0.4, 0.3], [0.1, 0.3, 0.7]]))
    array([1, 0, 1])
    """
    votes = (probabilities >= 0.5).sum(axis=0)
    half = probabilities.shape[0] / 2
    tie = (probabilities.mean(axis=0) >= 0.5).astype(int)
    return np.where(votes == half, tie, (votes > half).astype(int))
