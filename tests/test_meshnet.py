"""brainchop's MeshNet models, real weights: weight checks, accuracy, the participant level."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from bids_app.cli.main import main
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import DataError, NoInputError
from bids_app.features.parcellation import parcellation_volumes
from bids_app.group.workflow import PARTICIPANT_FAMILIES, collect_features
from bids_app.inputs.inventory import SessionInputs
from bids_app.participant.features import init_features_wf
from bids_app.participant.options import AnatomicalOptions
from bids_app.pretrained.meshnet import (
    conform_affine,
    conform_uint8,
    meshnet_parcellation,
    mindgrab_brain_mask,
    read_labels,
)
from bids_app.pretrained.weights import check_model

from .conftest import SHARED_DATA

BRAINCHOP = SHARED_DATA / "models" / "brainchop"
FREESURFER = SHARED_DATA / "freesurfer"
COLIN = SHARED_DATA / "colin27"
needs_models = pytest.mark.skipif(
    not BRAINCHOP.is_dir(), reason=f"needs brainchop's models in {BRAINCHOP}"
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@needs_models
def test_weights_are_checked_by_sha256(tmp_path):
    assert check_model(BRAINCHOP, "mindgrab") == BRAINCHOP / "mindgrab"
    with pytest.raises(NoInputError, match=r"--models-dir.*NEUROSTRAT_MODELS_DIR.*template"):
        check_model(tmp_path, "mindgrab")
    copy = tmp_path / "models" / "model30chan18cls"
    shutil.copytree(BRAINCHOP / "model30chan18cls", copy)
    (copy / "model.bin").chmod(0o644)
    with (copy / "model.bin").open("r+b") as stream:  # one flipped byte
        stream.seek(1000)
        byte = stream.read(1)
        stream.seek(1000)
        stream.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError, match=r"model30chan18cls/model\.bin: SHA-256 differs"):
        check_model(tmp_path / "models", "model30chan18cls")
    (copy / "colormap.json").unlink()
    with pytest.raises(NoInputError, match=r"colormap\.json not found.*--segmentation atlas"):
        check_model(tmp_path / "models", "model30chan18cls")


def test_conform_centres_a_lia_256_grid_on_the_image():
    image = nib.Nifti1Image(np.zeros((10, 20, 30), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    affine = conform_affine(image)
    assert nib.aff2axcodes(affine) == ("L", "I", "A")
    centre = image.affine @ [5, 10, 15, 1]
    np.testing.assert_allclose(affine @ [128, 128, 128, 1], centre)


@needs_models
def test_meshnet_volumes_table_from_a_label_image():
    table = read_labels(BRAINCHOP / "model30chan50cls")
    assert len(table) == 49 and table.loc[0, "name"] == "Cerebral-White-Matter"
    index = dict(zip(table["name"], table["index"], strict=True))
    data = np.zeros((10, 10, 10), np.uint8)
    data[:2] = index["Brain-Stem"]
    data[2:4] = index["ctx-precentral"]
    data[4] = index["Cerebellum"]
    data[5] = index["Cerebral-White-Matter"]
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # 8 µL voxels
    mask = nib.Nifti1Image(np.ones((10, 10, 10), np.uint8), affine)
    values, columns = parcellation_volumes(nib.Nifti1Image(data, affine), table, mask)
    assert values["brainstem"] == pytest.approx(1.6) and values["precentral_gm"] == pytest.approx(
        1.6
    )
    assert values["gm"] == pytest.approx(2.4) and values["cerebellum"] == pytest.approx(0.8)
    assert values["wm"] == pytest.approx(0.8) and values["tiv"] == pytest.approx(8.0)
    assert len(values) == 4 + 49 and set(columns) == set(values)


@pytest.mark.slow
@needs_models
def test_50_class_model_finds_the_brain_stem_of_the_freesurfer_brain():
    """On FreeSurfer's norm.mgz (already conformed), cropped by its own brain (aseg > 0)."""
    image = nib.load(FREESURFER / "norm.mgz")
    aseg = np.asarray(nib.load(FREESURFER / "aparc.a2009s+aseg.mgz").dataobj)
    brain = nib.Nifti1Image((aseg > 0).astype(np.uint8), image.affine)
    labels, table = meshnet_parcellation(image, BRAINCHOP, brain_mask=brain)
    assert labels.shape == image.shape and np.allclose(labels.affine, image.affine)
    stem = np.asarray(labels.dataobj) == int(table.set_index("name").loc["Brain-Stem", "index"])
    # measured 0.807 (18-class model: 0.918); FreeSurfer's brain stem is 19.1 mL, MeshNet 14.9
    assert dice(stem, aseg == 16) >= 0.75
    centre = np.argwhere(stem).mean(axis=0) - np.argwhere(aseg == 16).mean(axis=0)
    assert np.linalg.norm(centre) < 5.0  # mm: 1 mm voxels


@pytest.mark.slow
@needs_models
def test_mindgrab_extracts_the_colin27_brain():
    image = nib.load(COLIN / "ch2.nii.gz")
    mask = mindgrab_brain_mask(image, BRAINCHOP)
    assert mask.shape == image.shape and mask.get_data_dtype() == np.uint8
    reference = np.asarray(nib.load(COLIN / "ch2bet.nii.gz").dataobj) > 0
    assert dice(np.asarray(mask.dataobj) > 0, reference) >= 0.9  # measured 0.919


def test_conform_uint8_keeps_a_conformed_image_and_scales_others():
    rng = np.random.default_rng(0)
    affine = conform_affine(nib.Nifti1Image(np.zeros((256,) * 3, np.uint8), np.eye(4)))
    data = rng.integers(0, 255, (256,) * 3, dtype=np.uint8)
    volume, out = conform_uint8(nib.Nifti1Image(data, affine))
    assert np.array_equal(volume, data) and np.array_equal(out, affine)
    small = nib.Nifti1Image(rng.normal(1000, 100, (20, 20, 20)).astype(np.float32), np.eye(4))
    volume, out = conform_uint8(small)
    assert volume.shape == (256,) * 3 and volume.dtype == np.uint8
    assert volume.max() == 255 and (volume > 0).sum() == pytest.approx(19**3, rel=0.2)


def test_features_wf_runs_meshnet_instead_of_the_atlas_volumes(tmp_path):
    options = AnatomicalOptions(
        "none",
        "stripped",
        features=("volumes", "thickness"),
        segmentation=("meshnet",),
        models_dir=tmp_path,
    )
    assert options.families == ("thickness", "meshnet")
    nodes = set(init_features_wf(options).list_node_names())
    assert {"meshnet", "thickness", "atlas_to_t1w"} <= nodes and "volumes" not in nodes
    both = AnatomicalOptions("none", "x", features=("volumes",), segmentation=("atlas", "meshnet"))
    assert both.families == ("volumes", "meshnet")


@pytest.mark.slow
@needs_models
def test_participant_level_writes_the_meshnet_parcellation(make_bids, tmp_path):
    bids = make_bids(subjects=("01",))
    out = tmp_path / "derivatives"
    args = ["-w", str(tmp_path / "work"), "--sloppy", "--skip-bids-validation"]
    options = ["--segmentation", "meshnet", "--features", "volumes", "--models-dir", str(BRAINCHOP)]
    assert main([str(bids), str(out), "participant", *args, *options]) == 0
    anat = out / "sub-01" / "anat"
    dseg = nib.load(anat / "sub-01_desc-meshnet_dseg.nii.gz")
    preproc = nib.load(anat / "sub-01_desc-preproc_T1w.nii.gz")
    assert dseg.shape == preproc.shape and np.allclose(dseg.affine, preproc.affine)
    labels = pd.read_csv(anat / "sub-01_desc-meshnet_dseg.tsv", sep="\t")
    assert list(labels.columns) == ["index", "name", "color"]
    volumes = pd.read_csv(anat / "sub-01_desc-meshnetvolumes_morph.tsv", sep="\t")
    assert volumes.loc[0, "participant_id"] == "sub-01" and volumes.loc[0, "tiv"] > 0
    # MeshNet finds no brain stem in this small synthetic brain (measured): the split fails,
    # which leaves the parts n/a with the reason and the session successful
    assert volumes.loc[0, "brainstem"] == 0 and "Brain-Stem" in set(labels["name"])
    assert len(labels) == 49 and not np.isin(np.asarray(dseg.dataobj), (173, 174, 175)).any()
    parts = ["brainstem_midbrain", "brainstem_pons", "brainstem_medulla"]
    assert volumes.loc[0, parts].isna().all()
    sidecar = json.loads((anat / "sub-01_desc-meshnetvolumes_morph.json").read_text())
    assert all("no voxel of the 'Brain-Stem' class" in sidecar["MissingValues"][c] for c in parts)
    assert sidecar["brainstem_pons"]["Units"] == "mL"
    assert not (anat / "sub-01_desc-volumes_morph.tsv").exists()  # the atlas route's
    mindgrab = ["--skull-strip", "mindgrab", "--models-dir", str(tmp_path / "nomodels")]
    assert main([str(bids), str(tmp_path / "d2"), "participant", *args, *mindgrab]) != 0


def test_group_level_picks_up_the_meshnet_volumes_as_a_family(make_bids, tmp_path):
    bids = make_bids(subjects=("01", "02"))
    writer = DerivativesWriter(output_dir=tmp_path / "out", bids_dir=bids, settings_hash="x")
    inventory = [
        SessionInputs(s, None, t1w=(bids / f"sub-{s}/anat/sub-{s}_T1w.nii.gz",))
        for s in ("01", "02")
    ]
    for index, item in enumerate(inventory):
        table = pd.DataFrame(
            [{"participant_id": f"sub-{item.subject}", "tiv": 1500.0 + index, "brainstem": 20.0}]
        )
        writer.write_table(
            table, writer.path("meshnet", item.entities), columns={"tiv": {"Units": "mL"}}
        )
    tables, dictionaries, missing = collect_features(inventory, writer, PARTICIPANT_FAMILIES)
    assert list(tables) == ["meshnet"] and list(tables["meshnet"]["tiv"]) == [1500.0, 1501.0]
    assert dictionaries["meshnet"] == {"tiv": {"Units": "mL"}}
    assert set(missing["family"]) == {"volumes", "thickness", "radiomics", "histogram"}
    assert writer.path("meshnet", {"sub": "01"}).name == "sub-01_desc-meshnetvolumes_morph.tsv"
