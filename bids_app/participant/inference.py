"""Participant level: apply trained networks (``--models``) to each session's crops.

For every session with CNN-ready crops, each network of the bundle predicts with all its fold
models; they are combined by majority vote (Coll 2023 §2.5) and by their mean probability. The
attention map is the LRP relevance of the majority vote's class (Coll 2023 §2.6, the "winning
class"; ``--lrp-target positive``: of the positive class), averaged over the fold models, written
on the crop grid (template space) and resampled to the native T1w through the inverse
registration (its affine stage alone for ``--cnn-space affine`` crops), with a per-region table:
mean relevance and voxels above the subject's 95th percentile of positive relevance per atlas
region (Coll 2023 §2.6.1). A session that fails is reported and the others go on; a session whose
crops are of another ``--cnn-space`` than the networks' is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from bids_app.config import Config
from bids_app.deep.bundle import (
    Bundle,
    BundleError,
    ensemble_predict,
    load_bundle,
    majority_vote,
    read_card,
)
from bids_app.deep.devices import resolve_device
from bids_app.deep.lrp import explained_classes, relevance
from bids_app.deep.volumes import load_volumes
from bids_app.derivatives.naming import bundle_path, contrast_output
from bids_app.derivatives.writer import DerivativesWriter, read_sidecar
from bids_app.features.atlases import load_atlas
from bids_app.inputs.inventory import SessionInputs
from bids_app.preprocessing.cnn_input import to_crop_grid
from bids_app.preprocessing.registration import apply_transform
from bids_app.statistics.attention import individual_region_counts, region_relevance

LOGGER = logging.getLogger("bids_app.deep")

#: Percentile of the positive relevance that marks a voxel as relevant (Coll 2023 §2.6.1).
RELEVANT_PERCENTILE = 95.0


@dataclass(frozen=True)
class InferenceOutcome:
    """What happened to one session."""

    key: str
    status: str
    reason: str = ""


def _contrasts(directory: Path) -> list[str]:
    card, _ = read_card(bundle_path(directory, "deep_model_card"))
    contrasts = {tuple(entry["contrasts"]) for entry in card["networks"].values()}
    if len(contrasts) != 1:
        raise BundleError(f"{directory}: networks trained on different contrasts {contrasts}")
    return list(next(iter(contrasts)))


def run_inference(
    inventory: Sequence[SessionInputs],
    ages: pd.Series,
    config: Config,
    writer: DerivativesWriter,
) -> list[InferenceOutcome]:
    """Predict every session with the networks of ``config.deep.models`` and explain it.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        The selected sessions (their crops must exist: run the participant level first).
    ages : pandas.Series
        Age in years by subject label (networks that take age need it).
    config : Config
        ``models``, ``device``, ``lrp_rule``, ``atlas``.
    writer : DerivativesWriter
        The derivatives dataset.

    Returns
    -------
    list of InferenceOutcome
        One per session.

    Raises
    ------
    BundleError
        If the bundle is unusable or does not fit the data (before any session is processed).
    """
    assert config.deep.models is not None
    contrasts = _contrasts(config.deep.models)
    card, _ = read_card(bundle_path(config.deep.models, "deep_model_card"))
    trained_space = card.get("cnn_space", "nonlinear")
    sessions = []
    outcomes = []
    for item in inventory:
        paths = [writer.path(contrast_output(c, "cnn"), item.entities) for c in contrasts]
        absent = [p.name for p in paths if not p.exists()]
        space = read_sidecar(paths[0]).get("CnnSpace", "nonlinear") if not absent else None
        if absent:
            reason = f"no crop {absent[0]}: run the participant level without --models first"
        elif space != trained_space:
            reason = (
                f"its crops are in the {space} space, the networks were trained on "
                f"{trained_space} crops: re-run the participant level with --cnn-space "
                f"{trained_space}"
            )
        else:
            sessions.append((item, paths))
            continue
        outcomes.append(InferenceOutcome(item.key, "skipped", reason))
        LOGGER.warning("%s: %s", item.key, reason)
    if not sessions:
        return outcomes
    grid = nib.load(sessions[0][1][0])
    bundle = load_bundle(
        bundle_path(config.deep.models, "deep_model_card"), grid.shape[:3], contrasts
    )
    device = resolve_device(config.resources.device)
    for fold_models in bundle.models.values():
        for model in fold_models:
            model.to(device)
    atlas = load_atlas(config.participant.atlas)
    labels = np.asarray(to_crop_grid(atlas.image, grid).dataobj).astype(np.int32)
    for item, paths in sessions:
        try:
            age = ages.get(item.subject, np.nan)
            predict_session(
                item, paths, float(age), bundle, device, labels, atlas.labels, config, writer
            )
        except Exception as exc:
            LOGGER.error("%s: inference failed: %s", item.key, exc)
            outcomes.append(InferenceOutcome(item.key, "failed", str(exc)))
        else:
            outcomes.append(InferenceOutcome(item.key, "done"))
    return outcomes


def predict_session(
    item: SessionInputs,
    paths: Sequence[Path],
    age: float,
    bundle: Bundle,
    device: torch.device,
    labels: np.ndarray,
    names: dict[int, str],
    config: Config,
    writer: DerivativesWriter,
) -> None:
    """Predict and explain one session with every network of the bundle; write the outputs.

    Parameters
    ----------
    item : SessionInputs
        The session.
    paths : sequence of Path
        Its crops, one per contrast.
    age : float
        Age in years (NaN when unknown).
    bundle : Bundle
        The loaded networks.
    device : torch.device
        Where to compute.
    labels : numpy.ndarray
        Atlas labels on the crop grid.
    names : dict of int to str
        Atlas label names.
    config : Config
        ``lrp_rule``, ``lrp_target`` and ``atlas``.
    writer : DerivativesWriter
        The derivatives dataset.
    """
    volume = load_volumes([list(paths)], dtype=np.float32)
    x = torch.as_tensor(volume, device=device)
    crop_affine = nib.load(paths[0]).affine
    age_tensor = None if np.isnan(age) else torch.tensor([age], device=device)
    space = bundle.card.get("cnn_space", "nonlinear")  # the crops' (checked by run_inference)
    rows = []
    params = {"models": str(bundle.directory), "card_sha256": bundle.card_sha256}
    sources = list(item.t1w[:1])
    for name, models in bundle.models.items():
        if any(getattr(m, "uses_age", False) for m in models) and age_tensor is None:
            raise BundleError(f"network {name} takes age: participants.tsv has no age for it")
        probabilities = ensemble_predict(models, x, age_tensor)[:, 0]
        vote = majority_vote(probabilities[:, None])
        explained = int(explained_classes(vote, config.deep.lrp_target)[0])
        rows.append(
            {
                "network": name,
                **{f"fold-{k}_probability": p for k, p in enumerate(probabilities)},
                "mean_probability": float(probabilities.mean()),
                "votes": int((probabilities >= 0.5).sum()),
                "majority_vote": int(vote[0]),
                "explained_class": explained,
                "model_card_sha256": bundle.card_sha256,
            }
        )
        target = torch.tensor([explained], device=device)
        maps = [
            relevance(m, x, age_tensor, target=target, rule=config.deep.lrp_rule)
            .sum(dim=1)[0]
            .detach()
            .float()
            .cpu()
            .numpy()
            for m in models
        ]
        mean_map = np.mean(maps, axis=0).astype(np.float32)
        entities = {**item.entities, "desc": name}
        which = "positive" if explained == 1 else "negative"
        meta = {
            "Description": f"LRP relevance of the {which} class ({config.deep.lrp_rule} rules), "
            f"mean over {len(models)} fold models",
            "LrpTarget": config.deep.lrp_target,
            "ExplainedClass": explained,
            "CnnSpace": space,
            "ModelCardSHA256": bundle.card_sha256,
        }
        writer.write_image(
            nib.Nifti1Image(mean_map, crop_affine),
            "relevance_mni",
            entities,
            sources=sources,
            params=params,
            metadata=meta,
        )
        reference = writer.path("t1w_preproc", item.entities)
        affine = space == "affine"
        inverse = writer.path(
            "xfm_t1w_to_template_affine" if affine else "xfm_template_to_t1w", item.entities
        )
        if reference.exists() and inverse.exists():
            native = apply_transform(
                nib.Nifti1Image(mean_map, crop_affine),
                nib.load(reference),
                [inverse],
                invert=[True] if affine else None,
            )
            writer.write_image(
                native, "relevance_t1w", entities, sources=sources, params=params, metadata=meta
            )
        regions = region_relevance(mean_map, labels, names)
        counts = individual_region_counts(mean_map[None], labels, names, q=RELEVANT_PERCENTILE)
        table = regions.merge(
            counts.drop(columns=[c for c in ("subject", "region") if c in counts]),
            on="label",
            how="left",
        )
        writer.write_table(
            table, writer.path("relevance_regions", entities), sources=sources, params=params
        )
    writer.write_table(
        pd.DataFrame(rows),
        writer.path("predictions", item.entities),
        sources=sources,
        params=params,
    )
