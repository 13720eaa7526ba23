"""Quantitative maps as CNN inputs: which suffixes are maps, and their range normalisation.

Lu et al. 2023 §II.A feed the CNN quantitative maps (qT1, MWF, NDI) instead of weighted images:
each measure is clipped to its feasible physical range and scaled to [0, 1], with no bias-field
correction (a map has no bias field) and no per-image intensity normalisation, so that a value
means the same in every subject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

#: BIDS anatomical suffixes of weighted ("non-parametric") images (BIDS schema,
#: ``rules/files/raw/anat.yaml``, ``nonparametric``; deprecated suffixes left out).
WEIGHTED_SUFFIXES = (
    "T1w",
    "T2w",
    "PDw",
    "T2starw",
    "FLAIR",
    "inplaneT1",
    "inplaneT2",
    "PDT2",
    "angio",
)

#: BIDS anatomical suffixes of quantitative ("parametric") maps (BIDS schema,
#: ``rules/files/raw/anat.yaml``, ``parametric``).
PARAMETRIC_SUFFIXES = (
    "T1map",
    "T2map",
    "T2starmap",
    "R1map",
    "R2map",
    "R2starmap",
    "PDmap",
    "MTRmap",
    "MTsat",
    "UNIT1",
    "T1rho",
    "MWFmap",
    "MTVmap",
    "Chimap",
    "S0map",
    "M0map",
)

#: Feasible range of each measure, in the units of the file, clipped and scaled to [0, 1]
#: (Lu et al. 2023 §II.A: "qT1 feasible values fall between 0 and 2500 ms", "MWF feasible values
#: within the brain are at most 30%", "NDI is between zero and one"). BIDS stores T1map in seconds
#: (hence 0-2.5) and recommends MWFmap in percent (0-100, hence 0-30). ``NDImap`` is not a BIDS
#: suffix: it names a NODDI neurite density map placed in ``anat`` by the user.
MAP_RANGES: dict[str, tuple[float, float]] = {
    "T1map": (0.0, 2.5),
    "MWFmap": (0.0, 30.0),
    "NDImap": (0.0, 1.0),
}

_SUFFIX = re.compile(r"^[A-Za-z0-9]+$")
_RANGE = re.compile(r"^(?P<suffix>[A-Za-z0-9]+)=(?P<low>[^:]+):(?P<high>[^:]+)$")


def is_suffix(name: str) -> bool:
    """Tell whether a name can be a BIDS suffix (letters and digits only).

    Parameters
    ----------
    name : str
        The name, e.g. ``"T1map"``.

    Returns
    -------
    bool
        True for letters and digits only.

    Examples
    --------
    >>> is_suffix("T1map"), is_suffix("T1map.nii"), is_suffix("")
    (True, False, False)
    """
    return bool(_SUFFIX.match(name))


def parse_map_range(text: str) -> tuple[str, float, float]:
    """Parse one ``SUFFIX=LOW:HIGH`` range of a quantitative map.

    Parameters
    ----------
    text : str
        E.g. ``"T2map=0:0.2"`` (in the units of the file).

    Returns
    -------
    tuple
        ``(suffix, low, high)``.

    Raises
    ------
    ValueError
        If the form is not ``SUFFIX=LOW:HIGH``, a bound is not a finite number or
        ``LOW >= HIGH``; the message says which.

    Examples
    --------
    >>> parse_map_range("T1map=0:3.5")
    ('T1map', 0.0, 3.5)
    """
    match = _RANGE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not SUFFIX=LOW:HIGH (e.g. T1map=0:2.5)")
    try:
        low, high = float(match["low"]), float(match["high"])
    except ValueError:
        raise ValueError(f"{text!r}: LOW and HIGH must be numbers") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise ValueError(f"{text!r}: LOW must be a finite number below HIGH")
    return match["suffix"], low, high


def map_range(
    suffix: str, overrides: Mapping[str, tuple[float, float]] | None = None
) -> tuple[float, float] | None:
    """Return the range a contrast is normalised by, or None for a weighted image.

    Parameters
    ----------
    suffix : str
        The contrast's BIDS suffix.
    overrides : mapping, optional
        Ranges given by the user (``--map-range``), which win over :data:`MAP_RANGES`.

    Returns
    -------
    tuple of float or None
        ``(low, high)`` in the file's units; None when the contrast has no range.

    Examples
    --------
    >>> map_range("T1map"), map_range("FLAIR"), map_range("T1map", {"T1map": (0.0, 4.0)})
    ((0.0, 2.5), None, (0.0, 4.0))
    """
    return {**MAP_RANGES, **(overrides or {})}.get(suffix)


def range_normalise(data: np.ndarray, mask: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip a quantitative map to its range and scale it to [0, 1] inside a mask; 0 outside.

    Parameters
    ----------
    data : numpy.ndarray
        The map, in the file's units.
    mask : numpy.ndarray
        Brain mask (bool).
    low, high : float
        The measure's feasible range (:data:`MAP_RANGES`), mapped to 0 and 1.

    Returns
    -------
    numpy.ndarray
        float32 array in [0, 1].

    Examples
    --------
    >>> range_normalise(np.array([-0.1, 1.25, 3.0, 1.0]), np.array([True, True, True, False]),
    ...                 0.0, 2.5)
    array([0. , 0.5, 1. , 0. ], dtype=float32)
    """
    scaled = (np.clip(data, low, high) - low) / (high - low)
    return np.where(mask, scaled, 0.0).astype(np.float32)


def describe_normalisation(value_range: tuple[float, float] | None, other: str) -> str:
    """Say how a contrast's crops are normalised, for the sidecars and the reports.

    Parameters
    ----------
    value_range : tuple of float or None
        Its range (a quantitative map), or None (a weighted image).
    other : str
        The normalisation of the weighted images (``--cnn-normalisation``).

    Returns
    -------
    str
        E.g. ``"range 0-2.5 clipped and scaled to [0, 1]"`` or ``"minmax"``.

    Examples
    --------
    >>> describe_normalisation((0.0, 2.5), "minmax")
    'range 0-2.5 clipped and scaled to [0, 1]'
    """
    if value_range is None:
        return other
    low, high = value_range
    return f"range {low:g}-{high:g} clipped and scaled to [0, 1]"
