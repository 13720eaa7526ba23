"""Sites: one scanner each, with its contrast, bias, noise, blur, grid and BIDS metadata."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import nibabel as nib
import numpy as np

from bids_app.synthetic.anatomy import Anatomy
from bids_app.synthetic.tissues import TISSUES

# Scanner profiles, cycled over sites.  Orientation is the array axis code (nibabel
# ``aff2axcodes``); the slice (third) axis of one site is 1.2x thicker.  Timings in seconds
# are typical vendor protocols (ADNI-3 MPRAGE/IR-FSPGR/TFE, 3D FLAIR).
_SITE_PROFILES: tuple[dict[str, Any], ...] = (
    {
        "orientation": "LAS",
        "slice_scale": 1.0,
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "Prisma",
        "MagneticFieldStrength": 3.0,
        "T1w": {"RepetitionTime": 2.3, "EchoTime": 0.00298, "InversionTime": 0.9, "FlipAngle": 9},
        "FLAIR": {"RepetitionTime": 5.0, "EchoTime": 0.387, "InversionTime": 1.8, "FlipAngle": 120},
    },
    {
        "orientation": "PIR",
        "slice_scale": 1.2,
        "Manufacturer": "Philips",
        "ManufacturersModelName": "Achieva dStream",
        "MagneticFieldStrength": 3.0,
        "T1w": {"RepetitionTime": 0.0081, "EchoTime": 0.0037, "InversionTime": 1.0, "FlipAngle": 8},
        "FLAIR": {"RepetitionTime": 4.8, "EchoTime": 0.31, "InversionTime": 1.65, "FlipAngle": 90},
    },
    {
        "orientation": "RAS",
        "slice_scale": 1.0,
        "Manufacturer": "GE",
        "ManufacturersModelName": "Signa HDxt",
        "MagneticFieldStrength": 1.5,
        "T1w": {
            "RepetitionTime": 0.0102,
            "EchoTime": 0.0042,
            "InversionTime": 0.45,
            "FlipAngle": 12,
        },
        "FLAIR": {"RepetitionTime": 8.0, "EchoTime": 0.14, "InversionTime": 2.2, "FlipAngle": 90},
    },
    {
        "orientation": "LPI",
        "slice_scale": 1.0,
        "Manufacturer": "Siemens",
        "ManufacturersModelName": "Skyra",
        "MagneticFieldStrength": 3.0,
        "T1w": {"RepetitionTime": 2.3, "EchoTime": 0.00294, "InversionTime": 0.9, "FlipAngle": 9},
        "FLAIR": {"RepetitionTime": 5.0, "EchoTime": 0.394, "InversionTime": 1.8, "FlipAngle": 120},
    },
    {
        "orientation": "ASL",
        "slice_scale": 1.0,
        "Manufacturer": "Philips",
        "ManufacturersModelName": "Ingenia",
        "MagneticFieldStrength": 1.5,
        "T1w": {"RepetitionTime": 0.0075, "EchoTime": 0.0034, "InversionTime": 0.9, "FlipAngle": 8},
        "FLAIR": {"RepetitionTime": 4.8, "EchoTime": 0.28, "InversionTime": 1.6, "FlipAngle": 90},
    },
)


@dataclass(frozen=True)
class Site:
    """A scanner: metadata, grid orientation/resolution and intensity perturbations.

    Attributes
    ----------
    name : str
        ``siteA``, ``siteB`` ...
    profile : dict
        Scanner profile: array orientation, slice scale, DICOM-like metadata and per-contrast
        timings.
    voxel_size : tuple of float
        Voxel size (mm) along the array axes.
    psf_sigma_vox : float
        Gaussian point-spread function (voxels).
    gain : float
        Global intensity scale.
    bias_sd : float
        Standard deviation of the log bias field.
    noise_sd : float
        Rician noise level, relative to white matter before the gain.
    tissue_factor : dict
        ``{contrast: {tissue: factor}}`` applied to the tissue intensity priors.
    """

    name: str
    profile: dict[str, Any]
    voxel_size: tuple[float, float, float]
    psf_sigma_vox: float
    gain: float
    bias_sd: float
    noise_sd: float
    tissue_factor: dict[str, dict[str, float]]

    def describe(self) -> dict[str, Any]:
        """Return the parameters as a JSON-able dict.

        Returns
        -------
        dict
            Every attribute.
        """
        return dataclasses.asdict(self)


def draw_sites(n_sites: int, voxel_size: float, rng: np.random.Generator) -> list[Site]:
    """Draw per-site contrast, gain, bias, noise and blur (SynthSeg-style randomisation).

    Parameters
    ----------
    n_sites : int
        Number of sites; scanner profiles are cycled over them.
    voxel_size : float
        Nominal isotropic voxel size (mm).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    list of Site
        The sites, in order.
    """
    sites = []
    for i in range(n_sites):
        profile = _SITE_PROFILES[i % len(_SITE_PROFILES)]
        field_t = profile["MagneticFieldStrength"]
        tissue_factor = {
            contrast: {t: round(float(1 + 0.06 * rng.standard_normal()), 4) for t in TISSUES}
            for contrast in ("T1w", "FLAIR")
        }
        sites.append(
            Site(
                name=f"site{_site_letter(i)}",
                profile=dict(profile),
                voxel_size=(voxel_size, voxel_size, voxel_size * profile["slice_scale"]),
                psf_sigma_vox=round(float(rng.uniform(0.3, 0.7)), 4),
                gain=round(float(rng.uniform(0.8, 1.25)), 4),
                bias_sd=round(float(rng.uniform(0.08, 0.2) * field_t / 3.0), 4),
                noise_sd=round(float(rng.uniform(0.015, 0.04) * math.sqrt(3.0 / field_t)), 4),
                tissue_factor=tissue_factor,
            )
        )
    return sites


def _site_letter(i: int) -> str:
    """Spreadsheet-style letters: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    i += 1
    while i:
        i, rem = divmod(i - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def site_grid(anat: Anatomy, site: Site) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Return a site's scanner grid over an anatomy: its array orientation and voxel size.

    Parameters
    ----------
    anat : Anatomy
        The anatomy, whose field of view the grid covers.
    site : Site
        The scanner.

    Returns
    -------
    affine : numpy.ndarray
        Voxel-to-world matrix (4 x 4).
    shape : tuple of int
        Array shape.
    """
    axis_of = {
        "R": (0, 1.0),
        "L": (0, -1.0),
        "A": (1, 1.0),
        "P": (1, -1.0),
        "S": (2, 1.0),
        "I": (2, -1.0),
    }
    direction = np.zeros((3, 3))
    shape = []
    for i, letter in enumerate(site.profile["orientation"]):
        world_axis, sign = axis_of[letter]
        direction[world_axis, i] = sign * site.voxel_size[i]
        shape.append(math.ceil(anat.fov_mm[world_axis] / site.voxel_size[i]))
    affine = np.eye(4)
    affine[:3, :3] = direction
    affine[:3, 3] = anat.centre - direction @ ((np.array(shape) - 1) / 2)
    return affine, (shape[0], shape[1], shape[2])


def sidecar(site: Site, contrast: str, affine: np.ndarray) -> dict[str, Any]:
    """Return the BIDS sidecar of an image: the site's scanner metadata for a contrast.

    Parameters
    ----------
    site : Site
        The scanner.
    contrast : str
        ``"T1w"`` or ``"FLAIR"``.
    affine : numpy.ndarray
        The image's voxel-to-world matrix (its slice axis is described).

    Returns
    -------
    dict
        JSON-able sidecar.
    """
    profile = site.profile
    slice_axis = nib.aff2axcodes(affine)[2]
    return {
        "Manufacturer": profile["Manufacturer"],
        "ManufacturersModelName": profile["ManufacturersModelName"],
        "MagneticFieldStrength": profile["MagneticFieldStrength"],
        "InstitutionName": f"NeuroStrat synthetic {site.name}",
        "MRAcquisitionType": "3D",
        **profile[contrast],
        "SliceThickness": round(site.voxel_size[2], 4),
        "SliceEncodingDirection": "k",
        "SeriesDescription": f"synthetic {contrast} (slice axis {slice_axis})",
    }
