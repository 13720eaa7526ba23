"""N4 bias-field correction (Tustison et al. 2010), the first step of Coll 2023 §2.2.

ANTsPy's defaults (shrink factor 4, four fitting levels of 50 iterations, tolerance 1e-7) take
about a minute on a 1 mm brain. Shrinking to a 6 mm grid, three fitting levels and a tolerance
of 1e-4 is ten times faster for a bias field within a few percent of the default one, and the
second pass inside the brain mask then refines it (``make bench``; the measurements are in
``benchmarks/notes/code-history.md``, "N4 bias-field correction").
"""

from __future__ import annotations

from dataclasses import dataclass

import ants
import nibabel as nib
import numpy as np

from bids_app.preprocessing.antsio import to_ants, to_nibabel


@dataclass(frozen=True)
class N4Settings:
    """Settings of one N4 run.

    Parameters
    ----------
    shrink_mm : float
        Grid spacing (mm) the image is shrunk to before fitting; the shrink factor is this over
        the smallest voxel size, rounded, at least 1.
    iterations : tuple of int
        Iterations per fitting level (one level per entry).
    tolerance : float
        Convergence threshold.
    spline_distance_mm : float
        B-spline control-point spacing (mm) at the first level.
    """

    shrink_mm: float = 6.0
    iterations: tuple[int, ...] = (50, 50, 30)
    tolerance: float = 1e-4
    spline_distance_mm: float = 200.0


#: Named settings: ``fast`` is ours (see above); ``sloppy`` (``--sloppy``) stops earlier, at a
#: looser tolerance, for noisy low-resolution test heads on which ``fast`` does not converge (it
#: keeps three fitting levels: two left a bias that broke the registration);
#: ``antspy-default`` is ANTsPy's, for the benchmark's baseline (shrink factor 4 at 1 mm).
N4_PRESETS = {
    "fast": N4Settings(),
    "sloppy": N4Settings(tolerance=1e-3),
    "antspy-default": N4Settings(
        shrink_mm=4.0, iterations=(50, 50, 50, 50), tolerance=1e-7, spline_distance_mm=200.0
    ),
}


def n4_correct(
    image: nib.Nifti1Image,
    mask: nib.Nifti1Image | None = None,
    settings: N4Settings = N4_PRESETS["fast"],
) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """Correct the intensity non-uniformity of an image with N4.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        The image (positive intensities; negative values are clipped to 0 first).
    mask : nibabel.Nifti1Image or None
        Where the bias field is fitted (the brain for the second pass); None fits it on the
        whole image.
    settings : N4Settings
        Shrinking and convergence.

    Returns
    -------
    corrected : nibabel.Nifti1Image
        ``image`` divided by the bias field (everywhere, also outside ``mask``).
    bias : nibabel.Nifti1Image
        The estimated multiplicative bias field.
    """
    data = np.clip(np.asarray(image.dataobj, dtype=np.float32), 0, None)
    source = to_ants(nib.Nifti1Image(data, image.affine))
    shrink = max(1, round(settings.shrink_mm / min(source.spacing)))
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = to_ants(nib.Nifti1Image((np.asarray(mask.dataobj) > 0) * 1.0, mask.affine))
    bias = ants.n4_bias_field_correction(
        source,
        shrink_factor=shrink,
        convergence={"iters": list(settings.iterations), "tol": settings.tolerance},
        spline_param=settings.spline_distance_mm,
        return_bias_field=True,
        **kwargs,
    )
    bias_image = to_nibabel(bias)
    field = np.clip(np.asarray(bias_image.dataobj), 1e-3, None)  # guard against 0
    return nib.Nifti1Image(data / field, image.affine), bias_image
