"""The settings of one session's participant workflow, resolved from the Config and its inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from bids_app.config import FEATURE_FAMILIES, RADIOMICS_ROIS, Config
from bids_app.errors import NoInputError
from bids_app.inputs.inventory import SessionInputs
from bids_app.preprocessing.bias import N4_PRESETS
from bids_app.preprocessing.brain_extraction import detect_skull_stripped
from bids_app.preprocessing.cnn_input import CNN_BOX_MM
from bids_app.preprocessing.hdbet import find_hdbet_weights
from bids_app.preprocessing.registration import REGISTRATION_PRESETS
from bids_app.pretrained.weights import check_model, resolve_models_dir

#: Feature family of the MeshNet parcellation's volumes (``--segmentation meshnet``).
MESHNET_FAMILY = "meshnet"
#: brainchop model of ``--segmentation meshnet``: 50 classes, aseg + Desikan-Killiany parcels.
MESHNET_MODEL = "model30chan50cls"


@dataclass(frozen=True)
class AnatomicalOptions:
    """How one session's anatomical workflow runs (resolved from the Config and the inputs).

    Parameters
    ----------
    skull_strip : {"hdbet", "mindgrab", "template", "none", "user"}
        The brain extraction actually used (``auto`` resolved).
    skull_strip_reason : str
        Why, for the log and the report.
    hdbet_weights : Path or None
        HD-BET model folder (``hdbet`` only).
    user_mask : Path or None
        User-supplied brain mask (``user`` only).
    device : str
        Torch device for HD-BET.
    sloppy : bool
        Low-resolution registration and 2 mm template-space outputs.
    seed : int
        ANTs random seed.
    templateflow_home : Path or None
        TemplateFlow folder, or None for nilearn's template.
    cnn_normalisation : str
        ``minmax`` or ``zscore``.
    features : tuple of str
        Feature families to compute.
    atlas : str
        Atlas of the regional grey-matter volumes.
    radiomics_rois : tuple of str
        Regions described by PyRadiomics.
    thickness_preset : str
        DiReCT preset (:data:`bids_app.features.thickness.THICKNESS_PRESETS`).
    nprocs : int
        Processes this session may use (the thickness step runs its hemispheres side by side).
    segmentation : tuple of str
        Methods of the regional volumes: ``atlas`` (the ``volumes`` family) and/or ``meshnet``
        (the ``meshnet`` family and ``desc-meshnet_dseg``).
    models_dir : Path or None
        Folder of brainchop's MeshNet models (``mindgrab`` or ``meshnet`` only).
    precision : str
        Inference precision of the pretrained networks.
    """

    skull_strip: str
    skull_strip_reason: str
    hdbet_weights: Path | None = None
    user_mask: Path | None = None
    device: str = "cpu"
    sloppy: bool = False
    seed: int = 42
    templateflow_home: Path | None = None
    cnn_normalisation: str = "minmax"
    features: tuple[str, ...] = FEATURE_FAMILIES
    atlas: str = "desikan-killiany"
    radiomics_rois: tuple[str, ...] = RADIOMICS_ROIS
    thickness_preset: str = "fast"
    nprocs: int = 1
    segmentation: tuple[str, ...] = ("atlas",)
    models_dir: Path | None = None
    precision: str = "auto"

    @property
    def families(self) -> tuple[str, ...]:
        """The feature tables this session writes: ``volumes`` per ``--segmentation``.

        Examples
        --------
        >>> AnatomicalOptions("none", "", features=("volumes", "histogram"),
        ...                   segmentation=("meshnet",)).families
        ('histogram', 'meshnet')
        """
        families = [f for f in self.features if f != "volumes" or "atlas" in self.segmentation]
        if "volumes" in self.features and "meshnet" in self.segmentation:
            families.append(MESHNET_FAMILY)
        return tuple(families)

    @property
    def resolution(self) -> int:
        """Voxel size (mm) of the template-space outputs."""
        return 2 if self.sloppy else 1

    @property
    def n4_preset(self) -> str:
        """Name of the N4 preset."""
        return "sloppy" if self.sloppy else "fast"

    @property
    def registration_preset(self) -> str:
        """Name of the registration preset."""
        return "sloppy" if self.sloppy else "precise"

    @property
    def template(self) -> dict[str, int | str]:
        """The template inputs of the interfaces (``resolution`` and ``templateflow_home``)."""
        return {
            "resolution": self.resolution,
            "templateflow_home": str(self.templateflow_home or ""),
        }

    def params(self) -> dict:
        """Return the settings that change the outputs (recorded in sidecars)."""
        return {
            "skull_strip": self.skull_strip,
            "user_mask": str(self.user_mask) if self.user_mask else None,
            "registration": REGISTRATION_PRESETS[self.registration_preset].to_dict(),
            "n4": dataclasses.asdict(N4_PRESETS[self.n4_preset]),
            "template_resolution_mm": self.resolution,
            "template_source": "templateflow" if self.templateflow_home else "nilearn",
            "cnn_normalisation": self.cnn_normalisation,
            "cnn_box_mm": list(CNN_BOX_MM),
            "features": list(self.features),
            "atlas": self.atlas,
            "radiomics_rois": list(self.radiomics_rois),
            "thickness_preset": self.thickness_preset,
            "segmentation": list(self.segmentation),
        }


def find_user_mask(inputs: SessionInputs, derivatives: Sequence[Path]) -> Path | None:
    """Find a user-supplied T1w-space brain mask for a session in derivatives datasets.

    Parameters
    ----------
    inputs : SessionInputs
        The session.
    derivatives : sequence of Path
        Derivatives dataset roots (``--derivatives``).

    Returns
    -------
    Path or None
        The first ``<sub>[_<ses>]_*desc-brain_mask.nii[.gz]`` without a ``space`` entity.
    """
    for root in derivatives:
        folder = root / f"sub-{inputs.subject}"
        if inputs.session:
            folder /= f"ses-{inputs.session}"
        candidates = sorted((folder / "anat").glob(f"{inputs.key}_*desc-brain_mask.nii*"))
        native = [path for path in candidates if "_space-" not in path.name]
        if native:
            return native[0]
    return None


def resolve_options(
    inputs: SessionInputs, t1w: nib.Nifti1Image, config: Config
) -> AnatomicalOptions:
    """Decide the brain extraction of a session (``--skull-strip auto``) and gather settings.

    Parameters
    ----------
    inputs : SessionInputs
        The session.
    t1w : nibabel.Nifti1Image
        Its T1w image (to detect skull-stripped input).
    config : Config
        The run configuration.

    Returns
    -------
    AnatomicalOptions
        The resolved options.
    """
    mode, reason, user_mask, weights = config.participant.skull_strip, "requested", None, None
    stripped, evidence = detect_skull_stripped(t1w)
    if mode == "auto":
        user_mask = find_user_mask(inputs, config.input.derivatives)
        weights = find_hdbet_weights(config.participant.hdbet_weights)
        if user_mask is not None:
            mode, reason = "user", f"mask supplied in {user_mask.parent}"
        elif stripped:
            mode, reason = "none", f"the input is already skull-stripped ({evidence})"
        elif weights is not None:
            mode, reason = "hdbet", f"HD-BET weights found in {weights}"
        else:
            mode, reason = "template", "no HD-BET weights found: template-based fallback"
    elif mode == "hdbet":
        weights = find_hdbet_weights(config.participant.hdbet_weights)
        if weights is None:
            raise NoInputError(
                "--skull-strip hdbet: HD-BET's weights were not found; download them "
                "(see README) and give --hdbet-weights DIR, or use --skull-strip template"
            )
    elif mode == "mindgrab":
        check_model(config.participant.models_dir, "mindgrab")
    elif mode == "template" and stripped:
        reason = f"requested, although the input looks skull-stripped ({evidence})"
    elif mode == "none" and not stripped:
        reason = f"requested, although the input does not look skull-stripped ({evidence})"
    models_dir = None
    if mode == "mindgrab" or "meshnet" in config.participant.segmentation:
        models_dir = resolve_models_dir(config.participant.models_dir)
    if "meshnet" in config.participant.segmentation:
        check_model(models_dir, MESHNET_MODEL)
    return AnatomicalOptions(
        skull_strip=mode,
        skull_strip_reason=reason,
        hdbet_weights=weights,
        user_mask=user_mask,
        device="cpu" if config.resources.device == "auto" else config.resources.device,
        sloppy=config.sloppy,
        seed=config.seed,
        templateflow_home=config.participant.templateflow_home,
        cnn_normalisation=config.participant.cnn_normalisation,
        features=config.participant.features,
        atlas=config.participant.atlas,
        radiomics_rois=config.participant.radiomics_rois,
        thickness_preset=config.participant.thickness_preset,
        nprocs=config.resources.nprocs,
        segmentation=config.participant.segmentation,
        models_dir=models_dir,
        precision=config.resources.precision,
    )
