"""Tissue classes of label codes and their intensity priors in T1w and FLAIR."""

from __future__ import annotations

from bids_app.features.brainstem import BRAINSTEM, MEDULLA, MIDBRAIN, PONS, SPINAL_CORD
from bids_app.synthetic.anatomy import (
    HEAD_EXTRACEREBRAL,
    SKULL,
    SYNTHSEG_EXTRACEREBRAL_MIN,
    WM_LESION,
)

# Tissue intensity priors, relative to T1w white matter = 1: (T1w mean, T1w sd, FLAIR mean,
# FLAIR sd).  Contrast-specific Gaussian priors as in SynthSeg's contrast-specific variant
# (Billot et al. 2020, MICCAI "Partial volume segmentation of brain MRI scans of any
# resolution and contrast"); the values are typical 3 T MPRAGE / 3D FLAIR tissue ratios.
TISSUES: dict[str, tuple[float, float, float, float]] = {
    "background": (0.0, 0.0, 0.0, 0.0),
    "wm": (1.00, 0.03, 0.62, 0.03),
    "cortex": (0.62, 0.05, 0.78, 0.05),
    "cerebellar_cortex": (0.60, 0.05, 0.76, 0.05),
    "striatum": (0.74, 0.04, 0.74, 0.04),
    "thalamus": (0.82, 0.04, 0.68, 0.04),
    "pallidum": (0.88, 0.04, 0.60, 0.04),
    "hippocampus": (0.62, 0.05, 0.80, 0.05),
    "brainstem": (0.90, 0.04, 0.66, 0.04),
    "csf": (0.22, 0.04, 0.08, 0.02),
    "choroid": (0.45, 0.06, 0.50, 0.06),
    "vessel": (0.35, 0.08, 0.20, 0.06),
    "lesion": (0.55, 0.05, 1.30, 0.08),
    "skull": (0.10, 0.04, 0.06, 0.03),
    "marrow": (0.85, 0.10, 0.55, 0.08),
    "scalp": (1.05, 0.10, 0.85, 0.08),
    "soft_tissue": (0.55, 0.08, 0.45, 0.08),
    "skin": (0.60, 0.08, 0.50, 0.06),
    "eye": (0.15, 0.04, 0.10, 0.03),
    "optic_nerve": (0.85, 0.05, 0.65, 0.05),
    "cord": (0.88, 0.04, 0.65, 0.04),
    "airway": (0.30, 0.10, 0.25, 0.08),
}
_TISSUE_OF_CODE: dict[int, str] = {
    0: "background",
    **dict.fromkeys((2, 41, 7, 46, 251, 252, 253, 254, 255), "wm"),
    **dict.fromkeys((3, 42), "cortex"),
    **dict.fromkeys((8, 47), "cerebellar_cortex"),
    **dict.fromkeys((11, 12, 26, 50, 51, 58), "striatum"),
    **dict.fromkeys((10, 49), "thalamus"),
    **dict.fromkeys((13, 52), "pallidum"),
    **dict.fromkeys((17, 18, 53, 54), "hippocampus"),
    **dict.fromkeys((BRAINSTEM, MIDBRAIN, PONS, MEDULLA, 28, 60, 85), "brainstem"),
    **dict.fromkeys((4, 5, 14, 15, 24, 43, 44, 72), "csf"),
    **dict.fromkeys((31, 63), "choroid"),
    **dict.fromkeys((30, 62, 514), "vessel"),
    **dict.fromkeys((WM_LESION, 25, 57, 80), "lesion"),
    **dict.fromkeys((SPINAL_CORD, 512), "cord"),
    **dict.fromkeys((SKULL, 515), "skull"),
    HEAD_EXTRACEREBRAL: "scalp",
    516: "marrow",
    511: "skin",
    506: "eye",
    508: "optic_nerve",
    509: "airway",
}


def tissue(code: int) -> str:
    """Return the tissue class of a label code.

    Parameters
    ----------
    code : int
        FreeSurfer (or SynthSeg extra-cerebral) label code.

    Returns
    -------
    str
        Key of :data:`TISSUES`; cortical parcels are cortex, unknown codes are guessed.

    Examples
    --------
    >>> tissue(2), tissue(1024), tissue(520)
    ('wm', 'cortex', 'soft_tissue')
    """
    if code in _TISSUE_OF_CODE:
        return _TISSUE_OF_CODE[code]
    if 1000 <= code < 3000:
        return "cortex"
    return "soft_tissue" if code >= SYNTHSEG_EXTRACEREBRAL_MIN else "cortex"
