"""Synthetic CNN-ready crops in MNI space with planted regional atrophy.

The deep-learning part of NeuroStrat trains on the participant level's CNN-ready crops
(:mod:`bids_app.preprocessing.cnn_input`: brain-masked, min-max normalised, a fixed box of MNI
space). :func:`make_crop_cohort` draws such crops directly from the MNI152 template, so that
training, attention maps and their group analyses can be tested on data whose truth is known
without running the preprocessing for every subject.

Every subject is the template's brain with its own global intensity scale, a smooth
multiplicative bias field, a sub-voxel shift and Gaussian noise; in positive subjects the
grey matter of the planted Desikan-Killiany regions (by default both precentral gyri, the motor
cortex of ALS, Milella 2023) loses ``atrophy`` of its intensity, the way partial-volume CSF darkens
an atrophied cortex on T1w. With ``atrophy=0`` the labels carry no signal (a null cohort).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.image import resample_to_img
from scipy import ndimage as ndi

from bids_app.features.atlases import load_atlas
from bids_app.preprocessing.cnn_input import CNN_BOX_MM, crop, crop_slices, normalise
from bids_app.preprocessing.templates import load_template

#: Desikan-Killiany labels of the left and right precentral gyri (the default planted region).
PRECENTRAL = (1024, 2024)
#: Sites and their intensity scale (a scanner-like multiplicative offset).
SITE_SCALES = {"siteA": 1.0, "siteB": 0.93, "siteC": 1.07}


@dataclass(frozen=True)
class CropCohort:
    """Synthetic crops and their truth.

    Attributes
    ----------
    participants : pandas.DataFrame
        ``participant_id, diagnosis, age, sex, site`` (one session per subject).
    images : numpy.ndarray
        float32 crops ``[n_subjects, 1, X, Y, Z]`` on the template grid.
    affine : numpy.ndarray
        Affine of the crop grid (MNI space).
    brain_mask : numpy.ndarray
        The template's brain mask on the crop grid.
    atlas : numpy.ndarray
        Desikan-Killiany labels on the crop grid (int16).
    atlas_names : dict of int to str
        Label value to region name, for the labels present in the crop.
    planted : tuple of int
        The atlas labels whose grey matter is atrophied in positive subjects.
    """

    participants: pd.DataFrame
    images: np.ndarray
    affine: np.ndarray
    brain_mask: np.ndarray
    atlas: np.ndarray
    atlas_names: dict[int, str]
    planted: tuple[int, ...]


def make_crop_cohort(
    n_subjects: int = 40,
    *,
    resolution: int = 2,
    atrophy: float = 0.5,
    regions: Sequence[int] = PRECENTRAL,
    prevalence: float = 0.5,
    positive_label: str = "ALS",
    negative_label: str = "mimic",
    noise_sd: float = 0.03,
    box_mm: tuple[float, float, float] = CNN_BOX_MM,
    seed: int = 0,
) -> CropCohort:
    """Draw a cohort of CNN-ready crops with atrophy planted in the positive subjects.

    Parameters
    ----------
    n_subjects : int
        Subjects (one session each).
    resolution : {1, 2}
        Voxel size of the template grid in mm (2 mm gives 72 x 92 x 76 crops).
    atrophy : float
        Fraction of intensity the grey matter of ``regions`` loses in positive subjects
        (0 plants nothing).
    regions : sequence of int
        Desikan-Killiany labels to atrophy.
    prevalence : float
        Share of positive subjects (rounded, at least one of each class).
    positive_label, negative_label : str
        Values of the ``diagnosis`` column.
    noise_sd : float
        Standard deviation of the Gaussian noise, relative to the white-matter intensity.
    box_mm : tuple of float
        Crop size in mm (:data:`~bids_app.preprocessing.cnn_input.CNN_BOX_MM` by default).
    seed : int
        Seed of everything random.

    Returns
    -------
    CropCohort
        The crops, the participants table and the atlas on the crop grid.
    """
    if not 0.0 <= atrophy < 1.0:
        raise ValueError(f"atrophy must lie in [0, 1), not {atrophy}")
    rng = np.random.default_rng(seed)
    template = load_template(resolution)
    slices = crop_slices(template.brain_mask, box_mm)
    mask = np.asarray(template.brain_mask.dataobj) > 0
    t1w = np.asarray(template.t1w.dataobj, dtype=np.float32)
    t1w = t1w / np.percentile(t1w[mask], 99)
    gm = np.asarray(template.probseg["GM"].dataobj, dtype=np.float32)
    atlas_img = load_atlas("desikan-killiany")
    atlas = np.asarray(
        resample_to_img(
            atlas_img.image,
            template.brain_mask,
            interpolation="nearest",
            copy_header=True,
            force_resample=True,
        ).dataobj
    ).astype(np.int16)
    target = np.isin(atlas, np.asarray(regions)) * gm
    n_positive = min(max(round(n_subjects * prevalence), 1), n_subjects - 1)
    positive = rng.permutation(np.arange(n_subjects) < n_positive)
    sites = list(SITE_SCALES)
    images, rows = [], []
    for index in range(n_subjects):
        site = sites[index % len(sites)]
        image = t1w * (1.0 - atrophy * target) if positive[index] else t1w.copy()
        image = image * SITE_SCALES[site] * rng.normal(1.0, 0.03) * _bias_field(mask.shape, rng)
        image = ndi.shift(image, rng.uniform(-0.5, 0.5, 3), order=1)
        image = image + rng.normal(0.0, noise_sd, image.shape).astype(np.float32)
        normalised = normalise(image, mask, "minmax")
        images.append(
            np.asarray(crop(nib.Nifti1Image(normalised, template.t1w.affine), slices).dataobj)
        )
        rows.append(
            {
                "participant_id": f"sub-{index + 1:03d}",
                "diagnosis": positive_label if positive[index] else negative_label,
                "age": round(float(rng.normal(60.0, 10.0)), 1),
                "sex": str(rng.choice(["M", "F"])),
                "site": site,
            }
        )
    cropped_atlas = crop(nib.Nifti1Image(atlas, template.t1w.affine), slices)
    labels = np.asarray(cropped_atlas.dataobj)
    present = set(np.unique(labels).tolist()) - {0}
    return CropCohort(
        participants=pd.DataFrame(rows),
        images=np.stack(images)[:, None].astype(np.float32),
        affine=cropped_atlas.affine,
        brain_mask=np.asarray(
            crop(nib.Nifti1Image(mask.astype(np.uint8), template.t1w.affine), slices).dataobj
        )
        > 0,
        atlas=labels,
        atlas_names={k: v for k, v in atlas_img.labels.items() if k in present},
        planted=tuple(int(r) for r in regions) if atrophy > 0 else (),
    )


def _bias_field(
    shape: tuple[int, ...], rng: np.random.Generator, strength: float = 0.1
) -> np.ndarray:
    """Draw a smooth multiplicative field around 1 (a 4^3 grid of log-gains, upsampled)."""
    coarse = rng.normal(0.0, strength / 2, (4, 4, 4))
    zoom = [s / 4 for s in shape]
    return np.exp(
        ndi.zoom(coarse, zoom, order=3, mode="nearest")[: shape[0], : shape[1], : shape[2]]
    ).astype(np.float32)


def write_crop_dataset(cohort: CropCohort, root: Path) -> tuple[Path, Path]:
    """Write the cohort as a raw BIDS dataset plus participant-level derivatives.

    The raw dataset holds ``participants.tsv`` and tiny placeholder T1w images; the derivatives
    hold each subject's crop (``desc-cnn_T1w``) and a placeholder preprocessed T1w, as the
    participant level would leave them. The group level then trains on the crops.

    Parameters
    ----------
    cohort : CropCohort
        From :func:`make_crop_cohort`.
    root : Path
        Folder that receives ``bids/`` and ``derivatives/``.

    Returns
    -------
    tuple of Path
        The raw BIDS folder and the derivatives folder.
    """
    from bids_app.derivatives.writer import DerivativesWriter

    bids, out = root / "bids", root / "derivatives"
    bids.mkdir(parents=True, exist_ok=True)
    (bids / "dataset_description.json").write_text(
        '{"Name": "synthetic crops", "BIDSVersion": "1.9.0"}'
    )
    cohort.participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    writer = DerivativesWriter(output_dir=out, bids_dir=bids, settings_hash="synthetic")
    writer.initialise()
    placeholder = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    for index, participant in enumerate(cohort.participants["participant_id"]):
        anat = bids / participant / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        nib.save(placeholder, anat / f"{participant}_T1w.nii.gz")
        entities = {"sub": participant.removeprefix("sub-")}
        preproc = writer.path("t1w_preproc", entities)
        preproc.parent.mkdir(parents=True, exist_ok=True)
        nib.save(placeholder, preproc)
        writer.write_json({}, "qc_metrics", entities, sources=[], params={})  # complete
        image = nib.Nifti1Image(cohort.images[index, 0], cohort.affine)
        writer.write_image(image, "t1w_cnn", entities, sources=[], params={"synthetic": True})
    return bids, out
