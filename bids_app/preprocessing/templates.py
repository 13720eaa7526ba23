"""The standard-space template: T1w image, brain mask and tissue priors.

The default is nilearn's bundled copy of the ICBM 2009a nonlinear symmetric template
(MNI152NLin2009aSym, skull-stripped, 1 mm and 2 mm), which needs no network. When the CLI
finds TemplateFlow's ``tpl-MNI152NLin2009aSym`` files at the requested resolution in
``TEMPLATEFLOW_HOME``, those are used instead (their T1w keeps the skull, which helps
registration of heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from bids_app.errors import DataError

#: Template space of every standard-space output.
TEMPLATE_NAME = "MNI152NLin2009aSym"

#: Tissue classes in the order of sMRIPrep's ``dseg`` labels (1 CSF, 2 GM, 3 WM).
TISSUES = ("CSF", "GM", "WM")


@dataclass(frozen=True)
class Template:
    """A template at one resolution, all images on the same grid.

    Parameters
    ----------
    name : str
        TemplateFlow identifier.
    resolution : int
        Voxel size in mm.
    t1w : nibabel.Nifti1Image
        T1-weighted template.
    brain_mask : nibabel.Nifti1Image
        Binary brain mask (uint8).
    probseg : dict of str to nibabel.Nifti1Image
        Tissue probability maps for ``CSF``, ``GM`` and ``WM``, summing to at most 1.
    source : str
        Where the files came from (``nilearn`` or the TemplateFlow folder).
    has_skull : bool
        Whether the T1w template shows the head, not only the brain.
    """

    name: str
    resolution: int
    t1w: nib.Nifti1Image
    brain_mask: nib.Nifti1Image
    probseg: dict[str, nib.Nifti1Image]
    source: str
    has_skull: bool


def templateflow_files(root: Path, resolution: int, name: str = TEMPLATE_NAME) -> dict | None:
    """Return TemplateFlow's files for a template, or None when any is missing.

    Parameters
    ----------
    root : Path
        ``TEMPLATEFLOW_HOME``.
    resolution : int
        TemplateFlow's ``res`` entity (1 or 2 for MNI152NLin2009aSym).
    name : str
        Template identifier.

    Returns
    -------
    dict or None
        Keys ``T1w``, ``mask``, ``CSF``, ``GM``, ``WM`` to paths.

    Examples
    --------
    >>> templateflow_files(Path("/nonexistent"), 1) is None
    True
    """
    folder = root / f"tpl-{name}"
    prefix = f"tpl-{name}_res-{resolution:02d}"
    files = {
        "T1w": folder / f"{prefix}_T1w.nii.gz",
        "mask": folder / f"{prefix}_desc-brain_mask.nii.gz",
        **{tissue: folder / f"{prefix}_label-{tissue}_probseg.nii.gz" for tissue in TISSUES},
    }
    return files if all(path.is_file() for path in files.values()) else None


def load_template(resolution: int = 1, templateflow_home: Path | None = None) -> Template:
    """Load the MNI152NLin2009aSym template at a resolution.

    Parameters
    ----------
    resolution : {1, 2}
        Voxel size in mm.
    templateflow_home : Path or None
        TemplateFlow's folder (the CLI passes ``TEMPLATEFLOW_HOME``); None uses nilearn's copy.

    Returns
    -------
    Template
        The template with its brain mask and CSF/GM/WM priors.
    """
    files = templateflow_files(templateflow_home, resolution) if templateflow_home else None
    if files is not None:
        return _load_templateflow(files, resolution)
    return _load_nilearn(resolution)


def _load_templateflow(files: dict[str, Path], resolution: int) -> Template:
    try:
        images = {key: nib.load(path) for key, path in files.items()}
        mask = np.asanyarray(images["mask"].dataobj) > 0
    except Exception as exc:
        raise DataError(
            f"TemplateFlow files in {files['T1w'].parent} cannot be read ({exc}); "
            "re-download them or unset TEMPLATEFLOW_HOME to use the bundled template"
        ) from exc
    affine = images["T1w"].affine
    return Template(
        name=TEMPLATE_NAME,
        resolution=resolution,
        t1w=_float_image(images["T1w"].get_fdata(), affine),
        brain_mask=nib.Nifti1Image(mask.astype(np.uint8), affine),
        probseg={t: _float_image(images[t].get_fdata(), affine) for t in TISSUES},
        source=str(files["T1w"].parent),
        has_skull=True,
    )


@lru_cache(maxsize=4)
def _load_nilearn(resolution: int) -> Template:
    from nilearn import datasets

    t1w = datasets.load_mni152_template(resolution=resolution)
    gm = datasets.load_mni152_gm_template(resolution=resolution).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=resolution).get_fdata()
    mask = datasets.load_mni152_brain_mask(resolution=resolution).get_fdata() > 0
    affine = t1w.affine
    # nilearn ships GM and WM maps only: CSF is what the brain mask leaves (clipped at 0).
    csf = np.clip(mask.astype(np.float64) - gm - wm, 0.0, 1.0)
    return Template(
        name=TEMPLATE_NAME,
        resolution=resolution,
        t1w=_float_image(t1w.get_fdata(), affine),
        brain_mask=nib.Nifti1Image(mask.astype(np.uint8), affine),
        probseg={
            "CSF": _float_image(csf, affine),
            "GM": _float_image(gm, affine),
            "WM": _float_image(wm, affine),
        },
        source="nilearn",
        has_skull=False,
    )


#: Synthetic head around a skull-stripped template, as (outer distance from the brain in mm,
#: intensity relative to the template's white matter): CSF, skull, scalp. Typical adult
#: thicknesses (skull 5-7 mm, scalp 5-7 mm); T1w intensities: skull dark, scalp fat bright.
HEAD_SHELLS = ((2.5, 0.15), (8.5, 0.03), (14.5, 0.8))


def with_head(template: Template) -> Template:
    """Return the template with CSF, skull and scalp shells painted around its brain.

    A head image registered to a brain-only template tends to scale the brain onto the scalp
    (both are edges against a dark background); adding the shells lets heads be registered to
    heads. Templates that already show the skull are returned unchanged.

    Parameters
    ----------
    template : Template
        A template.

    Returns
    -------
    Template
        The same template whose ``t1w`` shows a head (``has_skull`` True).
    """
    if template.has_skull:
        return template
    from scipy import ndimage as ndi

    brain = np.asarray(template.brain_mask.dataobj) > 0
    t1w = np.asarray(template.t1w.dataobj, dtype=np.float32)
    zooms = template.t1w.header.get_zooms()[:3]
    distance = ndi.distance_transform_edt(~brain, sampling=zooms)
    white = float(np.percentile(t1w[brain], 95))
    head = t1w.copy()
    inner = 0.0
    for outer, relative in HEAD_SHELLS:
        shell = (distance > inner) & (distance <= outer)
        head[shell] = relative * white
        inner = outer
    return Template(
        name=template.name,
        resolution=template.resolution,
        t1w=_float_image(head, template.t1w.affine),
        brain_mask=template.brain_mask,
        probseg=template.probseg,
        source=f"{template.source} + synthetic head",
        has_skull=True,
    )


def _float_image(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
