"""Radiomic features of regions of interest with PyRadiomics.

Paper 000 (Turrisi et al.), section 2.2.1, extracted 107 PyRadiomics features from the brain VOI
of the T1w image (18 first order, 14 shape, 24 GLCM, 14 GLDM, 16 GLRLM, 16 GLSZM, 5 NGTDM), with
the extractor "customized to normalize and resample the image and the mask if necessary and to
check the validity of VOI". The shipped parameter file :data:`DEFAULT_PARAMS` reproduces that set;
its comments say where each setting comes from.

The same features are computed for any number of ROIs (brain, brainstem, a gyrus, a lesion...),
named ``<roi>_<class>_<feature>``. An ROI that cannot be measured (empty, too small, flat) gets
the same columns filled with NaN and a reason, so that one bad ROI never stops a participant.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
import radiomics
import SimpleITK as sitk  # noqa: N813 (SimpleITK's documented alias)
from radiomics.featureextractor import RadiomicsFeatureExtractor

#: The shipped PyRadiomics parameter file (paper 000, section 2.2.1).
DEFAULT_PARAMS = Path(__file__).resolve().parents[1] / "data" / "radiomics_turrisi2024.yaml"

#: Feature classes in the order of paper 000, section 2.2.1 (also the order of the columns).
FEATURE_CLASSES = ("firstorder", "shape", "glcm", "gldm", "glrlm", "glszm", "ngtdm")

#: Classes whose features describe the intensities (all but shape): undefined on a flat ROI.
INTENSITY_CLASSES = tuple(name for name in FEATURE_CLASSES if name != "shape")

#: PyRadiomics warnings that every ROI repeats and that say nothing about the data: the seed's
#: 24 GLCM features include SumAverage, which PyRadiomics flags for each symmetrical GLCM.
_NOISE = ("GLCM is symmetrical, therefore Sum Average",)

#: Loggers held back during extraction: PyRadiomics and the schema validator of its parameter
#: files (which logs INFO "validation.valid" to the root logger).
_QUIETENED = ("radiomics", "pykwalify")

_LOGGER = logging.getLogger(__name__)
_WARNED: set[str] = set()

#: ITK's physical space is LPS+, NIfTI's (nibabel's) is RAS+.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@functools.lru_cache(maxsize=8)
def _extractor(params: Path, spacing_mm: float | None = None) -> RadiomicsFeatureExtractor:
    """Build the PyRadiomics extractor of a parameter file (schema-validated, cached).

    ``spacing_mm`` overrides the file's isotropic resampling (``--sloppy`` runs use 2 mm).
    """
    with _quiet_radiomics():
        extractor = RadiomicsFeatureExtractor(str(params))
    if spacing_mm is not None:
        extractor.settings["resampledPixelSpacing"] = [spacing_mm] * 3
    if set(extractor.enabledImagetypes) != {"Original"}:
        raise ValueError(f"{params}: only the Original image type is supported (paper 000)")
    unknown = set(extractor.enabledFeatures) - set(FEATURE_CLASSES)
    if unknown:
        raise ValueError(f"{params}: unsupported feature classes {sorted(unknown)}")
    return extractor


def _class_features(extractor: RadiomicsFeatureExtractor) -> dict[str, list[str]]:
    """Return the enabled features per class, in :data:`FEATURE_CLASSES` order, sorted."""
    classes = radiomics.getFeatureClasses()
    enabled = {}
    for name in FEATURE_CLASSES:
        if name not in extractor.enabledFeatures:
            continue
        listed = extractor.enabledFeatures[name]
        if not listed:  # an empty value enables PyRadiomics' default (non-deprecated) features
            listed = [
                f for f, deprecated in classes[name].getFeatureNames().items() if not deprecated
            ]
        enabled[name] = sorted(listed)
    return enabled


def radiomics_settings(
    params: Path | None = None, spacing_mm: float | None = None
) -> dict[str, object]:
    """Describe the extraction, for the JSON sidecar of the features.

    Parameters
    ----------
    params : pathlib.Path or None, optional
        PyRadiomics parameter file; None uses :data:`DEFAULT_PARAMS`.
    spacing_mm : float or None, optional
        Isotropic resampling that replaces the file's (None keeps it).

    Returns
    -------
    dict
        ``PyRadiomicsVersion``, ``ParameterFile`` (its name), ``ImageTypes``,
        ``FeatureClasses`` (number of features per class), ``FeaturesPerROI`` and ``Settings``
        (PyRadiomics' settings after defaults: bin width, normalisation, resampling, VOI checks).
        All values are JSON-serialisable.
    """
    params = Path(params or DEFAULT_PARAMS)
    extractor = _extractor(params, spacing_mm)
    counts = {name: len(features) for name, features in _class_features(extractor).items()}
    return {
        "PyRadiomicsVersion": radiomics.__version__,
        "ParameterFile": params.name,
        "ImageTypes": sorted(extractor.enabledImagetypes),
        "FeatureClasses": counts,
        "FeaturesPerROI": sum(counts.values()),
        "Settings": {key: _jsonable(value) for key, value in sorted(extractor.settings.items())},
    }


def _jsonable(value: object) -> object:
    """Convert a setting to JSON types (PyRadiomics keeps some as tuples or numpy scalars)."""
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def feature_names(roi: str, params: Path | None = None) -> list[str]:
    """Ordered feature columns of one ROI, ``<roi>_<class>_<feature>``.

    The list depends only on the parameter file, never on the image, so that an ROI without
    features gets the same columns (filled with NaN).

    Parameters
    ----------
    roi : str
        Name of the ROI, e.g. ``"brain"`` or ``"brainstem"``.
    params : pathlib.Path or None, optional
        PyRadiomics parameter file; None uses :data:`DEFAULT_PARAMS`.

    Returns
    -------
    list of str
        Column names, classes in :data:`FEATURE_CLASSES` order (107 with the default file).

    Examples
    --------
    >>> names = feature_names("brain")
    >>> len(names), names[0], "brain_glcm_Contrast" in names
    (107, 'brain_firstorder_10Percentile', True)
    """
    extractor = _extractor(Path(params or DEFAULT_PARAMS))
    return [
        f"{roi}_{name}_{feature}"
        for name, features in _class_features(extractor).items()
        for feature in features
    ]


def extract_radiomics(
    image: nib.Nifti1Image,
    rois: Mapping[str, nib.Nifti1Image],
    params: Path | None = None,
    spacing_mm: float | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Extract the radiomic features of every ROI of an image.

    Parameters
    ----------
    image : nibabel.Nifti1Image
        3D image (e.g. the N4-corrected T1w in native space).
    rois : mapping of str to nibabel.Nifti1Image
        Binary masks by ROI name, normally on the image's grid (voxels > 0.5 are in the ROI). A
        mask on another grid is resampled onto the image by PyRadiomics (nearest neighbour) if it
        lies inside the image.
    params : pathlib.Path or None, optional
        PyRadiomics parameter file; None uses :data:`DEFAULT_PARAMS`.
    spacing_mm : float or None, optional
        Isotropic resampling that replaces the file's (None keeps it).

    Returns
    -------
    features : dict of str to float
        ``feature_names(roi, params)`` of every ROI, in the order of ``rois``.
    failures : dict of str to str
        Why features of an ROI are NaN: all of them when the ROI is empty or fails PyRadiomics'
        VOI checks (too small, not 3D, outside the image); those of the intensity classes
        (:data:`INTENSITY_CLASSES`) when the ROI is flat, i.e. has a single intensity or a
        single grey level after discretisation, where PyRadiomics returns conventional values
        (e.g. GLCM Correlation 1, Skewness 0) rather than measurements. Shape features of a flat
        ROI are kept.

    Raises
    ------
    ValueError
        If the image is not 3D, has non-finite values or is constant (it cannot be normalised).
    """
    params = Path(params or DEFAULT_PARAMS)
    extractor = _extractor(params, spacing_mm)
    data = _image_data(image)
    itk_image = _to_sitk(data.astype(np.float32), image.affine)
    features: dict[str, float] = {}
    failures: dict[str, str] = {}
    for roi, mask_image in rois.items():
        mask = np.asanyarray(mask_image.dataobj).squeeze() > 0.5
        values, reason = _extract_roi(extractor, itk_image, mask, mask_image.affine)
        if reason is None:
            same_grid = mask.shape == data.shape and np.allclose(mask_image.affine, image.affine)
            constant = same_grid and np.ptp(data[mask]) == 0
            reason = _flat_reason(values, constant, extractor.settings["binWidth"])
        if reason is not None:
            failures[roi] = reason
        for name in feature_names(roi, params):
            features[name] = values.get(name.removeprefix(f"{roi}_"), math.nan)
    return features, failures


def _flat_reason(values: dict[str, float], constant: bool, bin_width: float) -> str | None:
    """Say why an ROI is flat and drop its intensity features from ``values``; None if not flat.

    An ROI is flat when its intensity is constant in the input image (before resampling, which
    may add interpolation ripples) or when it holds a single grey level after PyRadiomics'
    discretisation (first-order Uniformity, the sum of squared bin frequencies, is then exactly
    1). PyRadiomics then fills features with conventions rather than measurements, e.g. GLCM
    Correlation and MCC 1, NGTDM Coarseness 10^6, first-order Skewness and Kurtosis 0.
    """
    if constant:
        reason = "constant intensity"
    elif values.get("firstorder_Uniformity") == 1.0:
        reason = f"a single grey level at binWidth {bin_width}"
    else:
        return None
    for name in [key for key in values if key.startswith(INTENSITY_CLASSES)]:
        del values[name]
    return f"flat ROI ({reason}): first-order and texture features undefined, shape kept"


def _image_data(image: nib.Nifti1Image) -> np.ndarray:
    """Return the image's voxels as a 3D float array, checked to be finite and not constant."""
    data = np.asanyarray(image.dataobj, dtype=np.float64).squeeze()
    if data.ndim != 3:
        raise ValueError(f"radiomics needs a 3D image, got shape {image.shape}")
    if not np.isfinite(data).all():
        raise ValueError("the image has non-finite values")
    if np.ptp(data) == 0:
        raise ValueError("the image is constant: it cannot be normalised")
    return data


def _extract_roi(
    extractor: RadiomicsFeatureExtractor,
    image: sitk.Image,
    mask: np.ndarray,
    affine: np.ndarray,
) -> tuple[dict[str, float], str | None]:
    """Extract one ROI's features as ``{<class>_<feature>: value}``, or say why there are none.

    PyRadiomics signals an invalid VOI with a ValueError; any other error of PyRadiomics or
    SimpleITK on one ROI is also reported rather than raised, so one ROI never stops the others.
    """
    if mask.ndim != 3:
        return {}, f"the mask is not 3D (shape {mask.shape})"
    if not mask.any():
        return {}, "empty ROI (0 voxels)"
    try:
        with _quiet_radiomics():
            result = extractor.execute(image, _to_sitk(mask.astype(np.uint8), affine))
    except ValueError as error:
        return {}, f"PyRadiomics rejected the ROI: {error}"
    except Exception as error:
        _LOGGER.warning("PyRadiomics failed on an ROI", exc_info=True)
        return {}, f"PyRadiomics failed: {type(error).__name__}: {error}"
    return {
        key.removeprefix("original_"): float(value)
        for key, value in result.items()
        if key.startswith("original_")
    }, None


def _to_sitk(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """Convert to a SimpleITK image with the same voxels at the same places in the world.

    nibabel indexes voxels ``data[i, j, k]`` and maps them to RAS+ millimetres with ``affine``;
    SimpleITK indexes ``(x, y, z) = (i, j, k)`` in an array stored ``[k, j, i]`` and maps them to
    LPS+ with origin, spacing (column norms) and direction cosines.
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    linear = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((linear / spacing).ravel().tolist())
    image.SetOrigin((_RAS_TO_LPS @ affine[:3, 3]).tolist())
    return image


class _Capture(logging.Handler):
    """Logging handler that keeps the records it receives."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _quiet_radiomics() -> Iterator[None]:
    """Hold back PyRadiomics' log; pass each kind of warning on once, through this module's log.

    PyRadiomics logs INFO messages for every step of every ROI and warnings that repeat for
    each ROI (:data:`_NOISE`); its warnings about the data (e.g. a mask resampled onto the image)
    are passed on the first time they occur in the process.
    """
    loggers = [logging.getLogger(name) for name in _QUIETENED]
    saved = [(logger.handlers, logger.propagate, logger.level) for logger in loggers]
    capture = _Capture()
    for logger in loggers:
        logger.handlers, logger.propagate = [capture], False
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        for record in capture.records:
            key = str(record.msg)
            if key.startswith(_NOISE) or key in _WARNED:
                continue
            _WARNED.add(key)
            _LOGGER.warning("PyRadiomics (%s): %s", record.name, record.getMessage())
