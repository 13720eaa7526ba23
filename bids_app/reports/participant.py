"""The participant-level HTML report: QC mosaics, metrics, flags and provenance.

Each figure function returns an HTML snippet (a ``<figure>`` with one inline PNG) showing a
mosaic of sagittal, coronal and axial slices (one row each) of a grey background image with
contours over it, in the spirit of fMRIPrep's reportlets. Images are reoriented to the closest
canonical (RAS) orientation and shown in neurological convention (left hemisphere on the left,
anterior up in axial slices). :func:`participant_report` assembles the snippets chosen by the
caller into one self-contained document.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.spatialimages import SpatialImage
from scipy import ndimage

from bids_app import __version__
from bids_app.preprocessing.quality import QC_RANGES, format_range
from bids_app.reports.html import compact_figure_html, page, table_html

#: Slices per view (columns of the mosaic).
N_CUTS = 6

#: Pixels along the longest side of a slice (slices are resampled to this size, down or up).
MAX_PANEL = 128

#: Rows of the mosaic: the axis held constant and the view's name (RAS voxel axes).
VIEWS: tuple[tuple[int, str], ...] = ((0, "sagittal"), (1, "coronal"), (2, "axial"))

#: Contour colours.
COLORS: dict[str, str] = {
    "mask": "#ff3030",
    "csf": "#ffd92f",
    "gm": "#e7298a",
    "wm": "#1f9bff",
    "edges": "#ff7f00",
    "outline": "#66ff66",
}

#: Plain-language label (and unit) of each metric of
#: :func:`bids_app.preprocessing.quality.qc_metrics`.
METRIC_LABELS: dict[str, str] = {
    "brain_volume_ml": "brain mask volume (mL)",
    "dice_template_mask": "Dice of the brain mask with the warped template mask",
    "cnr": "GM/WM contrast-to-noise ratio",
    "snr_wm": "SNR within WM (mean / std)",
    "snr_air": "SNR of WM with noise from air (Dietrich)",
    "mni_correlation": "correlation of the T1w in MNI space with the template",
    "mni_nmi": "normalised mutual information with the template (1-2)",
    "fraction_csf": "CSF fraction of segmented volume",
    "fraction_gm": "GM fraction of segmented volume",
    "fraction_wm": "WM fraction of segmented volume",
}


@dataclass(frozen=True)
class Layer:
    """Contours of one volume drawn over the background.

    Parameters
    ----------
    volume : numpy.ndarray
        On the background's grid (canonical orientation).
    levels : tuple of float
        Contour levels.
    color : str
        Line colour.
    smooth : float
        Gaussian sigma (panel pixels) applied before contouring; 0 for none.
    """

    volume: np.ndarray
    levels: tuple[float, ...]
    color: str
    smooth: float = 0.0


def canonical(image: SpatialImage) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Voxel data in the closest canonical (RAS) orientation, and the voxel size.

    Parameters
    ----------
    image : nibabel.spatialimages.SpatialImage
        A 3D image.

    Returns
    -------
    data : numpy.ndarray
        float32 array, non-finite values set to 0.
    zooms : tuple of float
        Voxel size (mm) along the canonical axes.
    """
    reoriented = nib.as_closest_canonical(image)
    data = np.array(reoriented.dataobj, dtype=np.float32)
    data[~np.isfinite(data)] = 0
    if data.ndim != 3:
        raise ValueError(f"expected a 3D image, got shape {data.shape}")
    zooms = tuple(float(z) for z in reoriented.header.get_zooms()[:3])
    return data, zooms


def _same_grid(reference: np.ndarray, *others: np.ndarray) -> None:
    """Raise ValueError when an array's shape differs from the reference's."""
    for other in others:
        if other.shape != reference.shape:
            raise ValueError(
                f"images on different grids: {other.shape} and {reference.shape}; "
                "resample them first"
            )


def intensity_levels(
    data: np.ndarray, classes: int = 3, max_samples: int = 200_000
) -> tuple[float, ...]:
    """Boundaries between intensity classes of the non-zero voxels (1D k-means).

    Parameters
    ----------
    data : numpy.ndarray
        Intensities.
    classes : int
        Number of classes.
    max_samples : int
        Voxels used at most (a regular subsample).

    Returns
    -------
    tuple of float
        The ``classes - 1`` midpoints between sorted class means (empty for a constant image).

    Examples
    --------
    >>> intensity_levels(np.repeat([0.0, 10.0, 20.0, 30.0], 100))
    (15.0, 25.0)
    """
    values = data[np.isfinite(data) & (data != 0)].ravel()
    values = values[:: max(1, values.size // max_samples)].astype(float)
    if values.size == 0 or values.min() == values.max():
        return ()
    centres = np.percentile(values, np.linspace(15, 85, classes))
    for _ in range(50):
        nearest = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        updated = np.array(
            [
                values[nearest == k].mean() if np.any(nearest == k) else centres[k]
                for k in range(classes)
            ]
        )
        if np.allclose(updated, centres):
            break
        centres = updated
    centres = np.sort(centres)
    return tuple(float(level) for level in (centres[1:] + centres[:-1]) / 2)


def cut_indices(mask: np.ndarray, n_cuts: int = N_CUTS) -> dict[int, np.ndarray]:
    """Evenly spaced slices through the central 70 % of a mask's extent along each axis.

    Parameters
    ----------
    mask : numpy.ndarray
        Region to show (the whole volume when empty).
    n_cuts : int
        Slices per axis.

    Returns
    -------
    dict of int to numpy.ndarray
        Slice indices per axis.
    """
    cuts = {}
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(np.any(mask, axis=others))
        low, high = (present[0], present[-1]) if present.size else (0, mask.shape[axis] - 1)
        span = high - low
        positions = np.linspace(low + 0.15 * span, high - 0.15 * span, n_cuts)
        cuts[axis] = np.unique(np.rint(positions).astype(int))
    return cuts


def bounding_box(mask: np.ndarray, pad: int = 4) -> tuple[slice, slice, slice]:
    """Slices of a mask's bounding box, padded (the whole volume when the mask is empty).

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean mask.
    pad : int
        Voxels added on each side.

    Returns
    -------
    tuple of slice
        One slice per axis.
    """
    box = []
    for axis, size in enumerate(mask.shape):
        others = tuple(a for a in range(3) if a != axis)
        present = np.flatnonzero(np.any(mask, axis=others))
        if present.size == 0:
            box.append(slice(0, size))
        else:
            box.append(slice(max(0, present[0] - pad), min(size, present[-1] + pad + 1)))
    return tuple(box)


def _plane(volume: np.ndarray, axis: int, index: int, box: tuple) -> np.ndarray:
    """Cut a cropped 2D slice, transposed so that rows run up the higher remaining axis."""
    crop = [box[a] if a != axis else index for a in range(3)]
    return np.asarray(volume[tuple(crop)], dtype=np.float32).T


def _panels(
    volume: np.ndarray,
    cuts: Mapping[int, np.ndarray],
    box: tuple,
    scale: Mapping[int, tuple[float, float]],
) -> list[list[np.ndarray]]:
    """Cut the slices of every view (rows), resampled to square display pixels."""
    rows = []
    for axis, _ in VIEWS:
        factors = scale[axis]
        rows.append(
            [
                ndimage.zoom(_plane(volume, axis, int(index), box), factors, order=1)
                for index in cuts[axis]
            ]
        )
    return rows


def _canvas(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Lay panels out in a grid of equal cells (centred), NaN between them."""
    cell_h = [max(panel.shape[0] for panel in row) for row in rows]
    cell_w = max(panel.shape[1] for row in rows for panel in row)
    columns = max(len(row) for row in rows)
    canvas = np.full(
        (sum(cell_h) + gap * (len(rows) - 1), columns * cell_w + gap * (columns - 1)),
        np.nan,
        dtype=np.float32,
    )
    # Rows are stacked from the top (sagittal first); the canvas is shown with origin "lower".
    top = canvas.shape[0]
    for row, height in zip(rows, cell_h, strict=True):
        top -= height
        for column, panel in enumerate(row):
            y = top + (height - panel.shape[0]) // 2
            x = column * (cell_w + gap) + (cell_w - panel.shape[1]) // 2
            canvas[y : y + panel.shape[0], x : x + panel.shape[1]] = panel
        top -= gap
    return canvas


def mosaic(
    background: np.ndarray,
    zooms: tuple[float, float, float],
    region: np.ndarray,
    layers: Sequence[Layer],
    alt: str,
    n_cuts: int = N_CUTS,
) -> str:
    """Render a sagittal/coronal/axial mosaic of contours over a grey background.

    The slices are laid out on one canvas drawn with a single ``imshow`` and one ``contour``
    per layer (much faster than one matplotlib axis per slice), resampled so that the longest
    side of the cropped volume spans :data:`MAX_PANEL` square pixels whatever the voxel size.

    Parameters
    ----------
    background : numpy.ndarray
        Canonical-orientation background volume.
    zooms : tuple of float
        Voxel size (mm).
    region : numpy.ndarray
        Boolean mask that chooses the slices, the crop and the display range.
    layers : sequence of Layer
        Contours to draw.
    alt : str
        Alternative text of the image.
    n_cuts : int
        Slices per view.

    Returns
    -------
    str
        An ``<img>`` element with a data URI.
    """
    box = bounding_box(region)
    cuts = cut_indices(region, n_cuts)
    side_mm = max((b.stop - b.start) * z for b, z in zip(box, zooms, strict=True))
    pixel = side_mm / MAX_PANEL
    scale = {
        axis: tuple(zooms[a] / pixel for a in reversed([a for a in range(3) if a != axis]))
        for axis, _ in VIEWS
    }
    inside = background[region][::7] if region.any() else background.ravel()[::7]
    vmin, vmax = np.percentile(inside, [0.5, 99.5]) if inside.size else (0.0, 1.0)
    image = _canvas(_panels(background, cuts, box, scale))
    height, width = image.shape
    dpi = 80
    figure = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    cmap = plt.get_cmap("gray").with_extremes(bad="black")
    axes.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", interpolation="none")
    for layer in layers:
        rows = _panels(layer.volume, cuts, box, scale)
        if layer.smooth:
            rows = [[ndimage.gaussian_filter(p, layer.smooth) for p in row] for row in rows]
        canvas = np.ma.masked_invalid(_canvas(rows))
        levels = [v for v in layer.levels if canvas.min() < v < canvas.max()]
        if levels:
            axes.contour(canvas, levels=levels, colors=layer.color, linewidths=1.0, origin="lower")
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(-0.5, height - 0.5)
    return compact_figure_html(figure, alt, dpi=dpi)


def _figure(img: str, legend: Sequence[tuple[str, str]], note: str = "") -> str:
    """Wrap an ``<img>`` in a ``<figure>`` with a colour legend and a note."""
    keys = " ".join(
        f'<span style="color:{color}">&#9632;</span> {html.escape(label)}'
        for color, label in legend
    )
    text = f"{keys} {html.escape(note)}".strip()
    return f'<figure>{img}<figcaption class="note">{text}</figcaption></figure>'


def brain_mask_figure(anat: SpatialImage, mask: SpatialImage) -> str:
    """Contour of the brain mask over the T1w.

    Parameters
    ----------
    anat : nibabel.spatialimages.SpatialImage
        The T1w.
    mask : nibabel.spatialimages.SpatialImage
        The brain mask on the same grid (non-zero inside).

    Returns
    -------
    str
        HTML ``<figure>``.
    """
    background, zooms = canonical(anat)
    brain = canonical(mask)[0] > 0
    _same_grid(background, brain)
    layers = [Layer(brain.astype(np.float32), (0.5,), COLORS["mask"])]
    img = mosaic(background, zooms, brain, layers, "brain mask over the T1w")
    return _figure(img, [(COLORS["mask"], "brain mask")])


def template_edges_figure(anat_mni: SpatialImage, template: SpatialImage) -> str:
    """Tissue-boundary contours of the template over the T1w resampled to it.

    The contours are iso-intensity lines of the (lightly smoothed) template at the boundaries
    of a 3-class intensity clustering: the outer edge of the brain or head, and the GM/WM edge.
    A good registration puts them on the same edges of the T1w.

    Parameters
    ----------
    anat_mni : nibabel.spatialimages.SpatialImage
        The T1w resampled to the template grid.
    template : nibabel.spatialimages.SpatialImage
        The template.

    Returns
    -------
    str
        HTML ``<figure>``.
    """
    background, zooms = canonical(anat_mni)
    reference = canonical(template)[0]
    _same_grid(background, reference)
    levels = intensity_levels(reference)
    region = reference > levels[0] if levels else reference != 0
    layers = [Layer(reference, levels, COLORS["edges"], smooth=0.7)]
    img = mosaic(background, zooms, region, layers, "template edges over the T1w in MNI space")
    return _figure(img, [(COLORS["edges"], "template tissue boundaries")])


def segmentation_figure(anat: SpatialImage, dseg: SpatialImage) -> str:
    """Contours of CSF, GM and WM (sMRIPrep labels 1, 2, 3) over the T1w.

    Parameters
    ----------
    anat : nibabel.spatialimages.SpatialImage
        The T1w.
    dseg : nibabel.spatialimages.SpatialImage
        Tissue labels on the same grid.

    Returns
    -------
    str
        HTML ``<figure>``.
    """
    background, zooms = canonical(anat)
    labels = np.rint(canonical(dseg)[0]).astype(np.int16)
    _same_grid(background, labels)
    layers = [
        Layer((labels == 1).astype(np.float32), (0.5,), COLORS["csf"]),
        Layer(((labels == 2) | (labels == 3)).astype(np.float32), (0.5,), COLORS["gm"]),
        Layer((labels == 3).astype(np.float32), (0.5,), COLORS["wm"]),
    ]
    img = mosaic(background, zooms, labels > 0, layers, "tissue segmentation over the T1w")
    legend = [(COLORS["csf"], "CSF"), (COLORS["gm"], "GM (outer)"), (COLORS["wm"], "WM")]
    return _figure(img, legend)


def coregistration_figure(t1w: SpatialImage, other: SpatialImage, name: str) -> str:
    """Edges of the T1w over another contrast resampled to the T1w's grid.

    The edges are iso-intensity lines of the T1w at the boundaries of a 3-class intensity
    clustering (the outline of the head or brain, and the GM/WM edge); misregistration shows
    as edges that do not follow the other image's anatomy.

    Parameters
    ----------
    t1w : nibabel.spatialimages.SpatialImage
        The T1w.
    other : nibabel.spatialimages.SpatialImage
        The other contrast (e.g. FLAIR, T2w), already in T1w space.
    name : str
        Name of the other contrast, for the caption.

    Returns
    -------
    str
        HTML ``<figure>``.
    """
    edges, zooms = canonical(t1w)
    background = canonical(other)[0]
    _same_grid(edges, background)
    levels = intensity_levels(edges)
    region = edges > levels[0] if levels else edges != 0
    layers = []
    if levels:
        layers = [
            Layer(edges, levels[:1], COLORS["outline"], smooth=0.7),
            Layer(edges, levels[-1:], COLORS["wm"], smooth=0.7),
        ]
    img = mosaic(background, zooms, region, layers, f"T1w edges over the {name}")
    legend = [(COLORS["outline"], "T1w outline"), (COLORS["wm"], "T1w WM edge")]
    return _figure(img, legend, note=f"Background: {name} in T1w space.")


def _format_value(value: float) -> str:
    """Four significant digits, ``n/a`` for missing values."""
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.4g}"


def metrics_table(
    metrics: Mapping[str, float],
    flags: Mapping[str, str],
    ranges: Mapping[str, tuple[float, float]] = QC_RANGES,
) -> pd.DataFrame:
    """Tabulate the metrics with their description, normal range and status.

    Parameters
    ----------
    metrics : mapping of str to float
        Metric values.
    flags : mapping of str to str
        Flag messages; a metric with a flag has status ``flagged``.
    ranges : mapping of str to (float, float)
        Normal ranges.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, description, value, normal range, status``.
    """
    rows = []
    for name, value in metrics.items():
        missing = value is None or not math.isfinite(float(value))
        rows.append(
            {
                "metric": name,
                "description": METRIC_LABELS.get(name, ""),
                "value": _format_value(value),
                "normal range": format_range(*ranges[name]) if name in ranges else "",
                "status": "flagged" if name in flags else ("n/a" if missing else "ok"),
            }
        )
    return pd.DataFrame(rows, columns=["metric", "description", "value", "normal range", "status"])


def summary_html(title: str, flags: Mapping[str, str], details: Mapping[str, str]) -> str:
    """Summarise what was processed and the flags (red, class ``fail``) or "No flags".

    Parameters
    ----------
    title : str
        Subject and session.
    flags : mapping of str to str
        Flag name to message.
    details : mapping of str to str
        More lines (e.g. inputs), shown as given (escaped).

    Returns
    -------
    str
        HTML.
    """
    lines = [("Subject/session", title), *details.items()]
    items = "".join(
        f"<li><b>{html.escape(str(key))}</b>: {html.escape(str(value))}</li>"
        for key, value in lines
    )
    if flags:
        flagged = "".join(
            f'<li class="fail"><b>{html.escape(name)}</b>: {html.escape(message)}</li>'
            for name, message in flags.items()
        )
        status = f'<p class="fail">{len(flags)} flag(s):</p><ul class="fail">{flagged}</ul>'
    else:
        status = '<p class="ok">No flags.</p>'
    return f"<ul>{items}</ul>\n{status}"


def provenance_html(provenance: Mapping[str, str]) -> str:
    """List the methods: one entry per processing step.

    Parameters
    ----------
    provenance : mapping of str to str
        Step to description (escaped).

    Returns
    -------
    str
        An HTML definition list.
    """
    if not provenance:
        return '<p class="note">No provenance recorded.</p>'
    entries = "".join(
        f"<dt><b>{html.escape(step)}</b></dt><dd>{html.escape(text)}</dd>"
        for step, text in provenance.items()
    )
    return f"<dl>{entries}</dl>"


def participant_report(
    title: str,
    sections: Sequence[tuple[str, str]],
    metrics: Mapping[str, float],
    flags: Mapping[str, str],
    provenance: Mapping[str, str],
    ranges: Mapping[str, tuple[float, float]] = QC_RANGES,
    details: Mapping[str, str] | None = None,
) -> str:
    """Assemble the participant report.

    Parameters
    ----------
    title : str
        Subject and session, e.g. ``"sub-01 ses-1"``.
    sections : sequence of (str, str)
        Heading and HTML body of each figure section, in order (the caller decides which
        exist; a failed step can be a section with a note instead of a figure).
    metrics : mapping of str to float
        QC metrics (:func:`bids_app.preprocessing.quality.qc_metrics`).
    flags : mapping of str to str
        QC flags (:func:`bids_app.preprocessing.quality.flag_metrics` plus the caller's own).
    provenance : mapping of str to str
        Processing step to a description of what was done (methods).
    ranges : mapping of str to (float, float)
        Normal ranges shown in the metrics table.
    details : mapping of str to str, optional
        More summary lines (e.g. input files).

    Returns
    -------
    str
        A self-contained HTML document (inline CSS and images).
    """
    parts = [
        ("Summary", summary_html(title, flags, details or {})),
        *sections,
        ("Quality metrics", table_html(metrics_table(metrics, flags, ranges))),
        ("Methods and provenance", provenance_html(provenance)),
    ]
    return page(f"NeuroStrat: {title}", parts, f"Generated by NeuroStrat {__version__}.")


def profile_html(slowest: pd.DataFrame, wall_s: float, cpu_s: float | None) -> str:
    """Describe where a session's processing time went (``--profile``).

    Parameters
    ----------
    slowest : pandas.DataFrame
        The slowest steps (:func:`bids_app.participant.profile.slowest_steps`).
    wall_s : float
        The wall time of all steps.
    cpu_s : float or None
        Their CPU time, None when not measured.

    Returns
    -------
    str
        HTML: the totals and the table.
    """
    cpu = "" if cpu_s is None else f", {cpu_s:.1f} CPU-s"
    total = f"<p>All steps: {wall_s:.1f} s wall{cpu}. The slowest steps:</p>"
    return total + table_html(slowest, float_format="{:.1f}")
