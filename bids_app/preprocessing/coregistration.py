"""Rigid co-registration of FLAIR and T2w images to the T1w (Coll 2023 §2.2, Lu 2023 §II.A).

Images of one session share the scanner's space, so the registration starts from the headers
(identity), not from the centres of mass; the metric is Mattes mutual information inside the
dilated T1w brain mask, with lesions excluded from it (fMRIPrep's ``label-lesion_roi``
convention: lesions are a cost-function mask).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ants
import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from bids_app.errors import DataError
from bids_app.preprocessing.antsio import to_ants
from bids_app.preprocessing.quality import normalized_mutual_information

#: Smallest fraction of the T1w brain that the other image must cover, in the scanner's space,
#: before registration is attempted.
MIN_BRAIN_COVERAGE = 0.5


class CoregistrationError(DataError):
    """The other contrast cannot be aligned with the T1w."""


@dataclass(frozen=True)
class CoregistrationResult:
    """A rigid transform from T1w to another contrast, with its quality.

    Parameters
    ----------
    transform : Path
        ANTs affine file taking T1w points to the other image's points (resamples the other
        image into T1w space).
    coverage : float
        Fraction of the T1w brain inside the other image's field of view before registration.
    nmi : float
        Normalised mutual information (1-2) of the two images in the brain after registration.
    """

    transform: Path
    coverage: float
    nmi: float


def brain_coverage(other: nib.Nifti1Image, brain_mask: nib.Nifti1Image) -> float:
    """Fraction of the brain mask's voxels that fall inside another image's field of view.

    Parameters
    ----------
    other : nibabel.Nifti1Image
        The other contrast.
    brain_mask : nibabel.Nifti1Image
        T1w brain mask.

    Returns
    -------
    float
        Between 0 and 1, using the headers only.
    """
    ijk = np.argwhere(np.asarray(brain_mask.dataobj) > 0)
    if len(ijk) == 0:
        return 0.0
    world = nib.affines.apply_affine(brain_mask.affine, ijk[:: max(1, len(ijk) // 20000)])
    voxels = nib.affines.apply_affine(np.linalg.inv(other.affine), world)
    shape = np.array(other.shape[:3])
    inside = np.all((voxels >= -0.5) & (voxels <= shape - 0.5), axis=1)
    return float(inside.mean())


def coregister_to_t1w(
    other: nib.Nifti1Image,
    t1w: nib.Nifti1Image,
    brain_mask: nib.Nifti1Image,
    out_dir: Path,
    lesion_mask: nib.Nifti1Image | None = None,
    iterations: tuple[int, ...] = (200, 100, 50),
) -> CoregistrationResult:
    """Rigidly register another contrast of the session to the T1w.

    Parameters
    ----------
    other : nibabel.Nifti1Image
        Bias-corrected FLAIR or T2w (RAS).
    t1w : nibabel.Nifti1Image
        Bias-corrected T1w.
    brain_mask : nibabel.Nifti1Image
        T1w brain mask.
    out_dir : Path
        Folder for the transform file.
    lesion_mask : nibabel.Nifti1Image or None
        Lesions on the T1w grid, excluded from the metric.
    iterations : tuple of int
        Iterations at shrink factors 4, 2, 1.

    Returns
    -------
    CoregistrationResult
        The transform and quality measures.

    Raises
    ------
    CoregistrationError
        If the other image covers less than :data:`MIN_BRAIN_COVERAGE` of the brain.
    """
    coverage = brain_coverage(other, brain_mask)
    if coverage < MIN_BRAIN_COVERAGE:
        raise CoregistrationError(
            f"its field of view covers {coverage:.0%} of the T1w brain (headers only); "
            "the images do not overlap: check that both come from the same session"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    brain = np.asarray(brain_mask.dataobj) > 0
    metric_mask = ndi.binary_dilation(brain, iterations=2)
    if lesion_mask is not None:
        metric_mask &= ~(np.asarray(lesion_mask.dataobj) > 0)
    levels = len(iterations)
    result = ants.registration(
        to_ants(t1w),
        to_ants(other),
        type_of_transform="Rigid",
        initial_transform="Identity",
        aff_iterations=iterations,
        aff_shrink_factors=tuple(2 ** (levels - 1 - i) for i in range(levels)),
        aff_smoothing_sigmas=tuple(levels - 1 - i for i in range(levels)),
        mask=to_ants(nib.Nifti1Image(metric_mask.astype(np.float32), t1w.affine)),
        outprefix=str(out_dir / "rigid_"),
    )
    warped = result["warpedmovout"].numpy()
    fixed = np.asarray(t1w.dataobj)
    nmi = normalized_mutual_information(fixed[brain], warped[brain])
    return CoregistrationResult(Path(result["fwdtransforms"][0]), coverage, nmi)
