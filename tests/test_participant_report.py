"""Participant report: QC mosaics and a self-contained HTML document."""

import base64
import html
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bids_app.reports.participant import (
    brain_mask_figure,
    coregistration_figure,
    participant_report,
    segmentation_figure,
    template_edges_figure,
)

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
IMG = re.compile(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"/>')


def _images(zooms=(3.0, 3.0, 3.0), shape=(48, 52, 44)):
    """T1w-like head, brain mask, dseg and a FLAIR-like contrast on one RAS grid."""
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radius = np.sqrt((((grid.T - centre) * zooms / 60.0) ** 2).sum(axis=-1)).T
    dseg = np.select([radius < 0.5, radius < 0.7, radius < 0.8], [3, 2, 1], 0).astype(np.int16)
    t1 = np.select([dseg == 3, dseg == 2, dseg == 1, radius < 1.0], [400, 250, 80, 300], 0)
    flair = np.select([dseg == 3, dseg == 2, dseg == 1, radius < 1.0], [200, 300, 40, 250], 0)
    noise = np.random.default_rng(0).normal(0, 10, shape)
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = -np.array(shape) * zooms / 2

    def image(data, dtype=np.float32):
        return nib.Nifti1Image(np.asarray(data, dtype=dtype), affine)

    return {
        "t1w": image(np.abs(t1 + noise)),
        "mask": image(radius < 0.8, np.uint8),
        "dseg": image(dseg, np.int16),
        "flair": image(np.abs(flair + noise)),
    }


def _one_png(snippet: str) -> bytes:
    found = IMG.findall(snippet)
    assert len(found) == 1
    png = base64.b64decode(found[0])
    assert png.startswith(b"\x89PNG")
    return png


@pytest.mark.parametrize("zooms", [(3.0, 3.0, 3.0), (2.0, 2.0, 4.0)])
def test_each_figure_is_one_inline_png(zooms):
    images = _images(zooms)
    snippets = [
        brain_mask_figure(images["t1w"], images["mask"]),
        segmentation_figure(images["t1w"], images["dseg"]),
        template_edges_figure(images["t1w"], images["t1w"]),
        coregistration_figure(images["t1w"], images["flair"], "FLAIR"),
    ]
    for snippet in snippets:
        assert len(_one_png(snippet)) < 150_000
    assert "FLAIR" in snippets[-1]


def test_orientation_does_not_change_the_figure():
    images = _images()
    ras = brain_mask_figure(images["t1w"], images["mask"])

    def to_lps(img):
        transform = nib.orientations.ornt_transform(
            nib.orientations.axcodes2ornt("RAS"), nib.orientations.axcodes2ornt("LPS")
        )
        return img.as_reoriented(transform)

    lps = brain_mask_figure(to_lps(images["t1w"]), to_lps(images["mask"]))
    assert nib.aff2axcodes(to_lps(images["t1w"]).affine) == ("L", "P", "S")
    assert _one_png(lps) == _one_png(ras)


def test_different_grids_are_refused():
    images = _images()
    other = _images(shape=(40, 40, 40))
    with pytest.raises(ValueError, match="different grids"):
        brain_mask_figure(images["t1w"], other["mask"])


def _report(flags):
    images = _images()
    sections = [
        ("Brain mask", brain_mask_figure(images["t1w"], images["mask"])),
        ("Tissue segmentation", segmentation_figure(images["t1w"], images["dseg"])),
        ("Spatial normalisation & template", template_edges_figure(images["t1w"], images["t1w"])),
        ("FLAIR co-registration", '<p class="fail">Co-registration failed: no overlap.</p>'),
    ]
    metrics = {"brain_volume_ml": 524.0, "cnr": 5.2, "snr_air": float("nan")}
    provenance = {"Conform": "Reoriented to RAS.", "Brain extraction": "Template-based mask."}
    document = participant_report("sub-01 ses-1", sections, metrics, flags, provenance)
    return document, sections


def test_report_is_self_contained_and_complete():
    flags = {"brain_volume_ml": "brain_volume_ml = 524 is below the normal range (900-1800)"}
    document, sections = _report(flags)
    assert document.startswith("<!DOCTYPE html>")
    for heading, _ in sections:
        assert f"<h2>{html.escape(heading)}</h2>" in document
    for heading in ("Summary", "Quality metrics", "Methods and provenance"):
        assert f"<h2>{heading}</h2>" in document
    assert document.count("<img") == 3
    references = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', document, flags=re.IGNORECASE)
    assert len(references) == 3
    assert all(reference.startswith("data:") for reference in references)
    assert not re.search(r"https?://", document)
    assert "<script" not in document and "<link" not in document
    assert re.search(r'class="fail"[^>]*><b>brain_volume_ml</b>', document)
    assert "No flags" not in document
    assert "Reoriented to RAS." in document
    assert "900-1800" in document and "n/a" in document


def test_report_without_flags_says_so():
    document, _ = _report({})
    assert "No flags" in document
    assert '<li class="fail">' not in document


@pytest.mark.skipif(
    not (SHARED_DATA / "colin27" / "ch2.nii.gz").exists(),
    reason="shared real data (colin27) not available",
)
def test_colin27_mask_figure_is_compact():
    t1w = nib.load(SHARED_DATA / "colin27" / "ch2.nii.gz")
    bet = nib.load(SHARED_DATA / "colin27" / "ch2bet.nii.gz")
    mask = nib.Nifti1Image((np.asanyarray(bet.dataobj) > 0).astype(np.uint8), bet.affine)
    snippet = brain_mask_figure(t1w, mask)
    assert len(snippet) < 150 * 1024
