"""The derivatives writer: atomic files, sidecars, resumption, a dataset pybids can index."""

import errno
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from bids import BIDSLayout

from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import OutputError


@pytest.fixture
def writer(tmp_path, make_bids):
    bids = make_bids(subjects=["01"])
    out = DerivativesWriter(output_dir=tmp_path / "out", bids_dir=bids, settings_hash="abc")
    out.initialise()
    return out


def _image(value=1.0):
    return nib.Nifti1Image(np.full((4, 4, 4), value, dtype=np.float32), np.eye(4))


def test_dataset_description_and_bidsignore(writer):
    description = json.loads((writer.output_dir / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    generated = description["GeneratedBy"][0]
    assert generated["Name"] == "NeuroStrat" and generated["Version"] and generated["CodeURL"]
    assert "Container" not in generated
    assert description["DatasetLinks"]["raw"] == writer.bids_dir.as_uri()
    assert "*_morph.*" in (writer.output_dir / ".bidsignore").read_text()


def test_container_recorded(tmp_path, make_bids):
    writer = DerivativesWriter(tmp_path / "o", make_bids(), "h", container="docker")
    writer.initialise()
    description = json.loads((tmp_path / "o" / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Container"]["Type"] == "docker"


def test_image_and_sidecar(writer):
    source = writer.bids_dir / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    path = writer.write_image(
        _image(),
        "t1w_preproc",
        {"sub": "01"},
        sources=[source],
        params={"step": "conform"},
        metadata={"SkullStripped": False},
    )
    assert path == writer.output_dir / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz"
    sidecar = json.loads(path.with_name("sub-01_desc-preproc_T1w.json").read_text())
    assert sidecar["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    assert sidecar["SkullStripped"] is False
    assert sidecar["Parameters"] == {"step": "conform"}
    assert {"neurostrat", "nibabel", "numpy"} <= set(sidecar["SoftwareVersions"])
    assert not [p for p in writer.output_dir.rglob("*") if ".part-" in p.name]


def test_resumption_by_hash(writer):
    params = {"step": "conform"}
    path = writer.path("t1w_preproc", {"sub": "01"})
    assert not writer.is_done(path, params)
    writer.write_image(_image(), "t1w_preproc", {"sub": "01"}, sources=[], params=params)
    assert writer.is_done(path, params)
    assert not writer.is_done(path, {"step": "conform", "other": 1})
    other_settings = DerivativesWriter(writer.output_dir, writer.bids_dir, settings_hash="xyz")
    assert not other_settings.is_done(path, params)
    forced = DerivativesWriter(writer.output_dir, writer.bids_dir, "abc", force=True)
    assert not forced.is_done(path, params)


def test_failed_write_leaves_nothing(writer, monkeypatch):
    def broken_save(img, filename):
        with open(filename, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        writer.write_image(_image(), "t1w_preproc", {"sub": "01"}, sources=[], params={})
    assert not [p for p in writer.output_dir.rglob("*") if p.is_file() and "sub-01" in p.name]


def test_full_disk_is_an_output_error_naming_the_folder(writer, monkeypatch):
    def full_disk(img, filename):
        Path(filename).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nib, "save", full_disk)
    fix = "free some space there or choose another output folder"
    expected = f"No space left on device; {fix} ({writer.output_dir}), then re-run the same command"
    with pytest.raises(OutputError, match=re.escape(expected)):
        writer.write_image(_image(), "t1w_preproc", {"sub": "01"}, sources=[], params={})
    assert not [p for p in writer.output_dir.rglob("*") if p.is_file() and "sub-01" in p.name]


def test_session_marker_stale_parts_and_discard(writer):
    entities, other = {"sub": "01"}, {"sub": "010"}
    for subject in (entities, other):
        writer.write_image(_image(), "t1w_preproc", subject, sources=[], params={})
        writer.write_json({}, "qc_metrics", subject, sources=[], params={})
        writer.write_text(writer.report(subject), "<html></html>")
    assert writer.session_complete(entities)
    stale = [
        writer.path("dseg", entities).with_name(".sub-01_dseg.part-0badc0de.nii.gz"),
        writer.output_dir / ".sub-01.part-0badc0de.html",
    ]
    for path in stale:
        path.write_bytes(b"half")
    assert sorted(writer.remove_stale_parts(entities)) == sorted(stale)
    assert not any(path.exists() for path in stale)
    writer.start_session(entities)  # the marker goes first, the other outputs stay
    assert not writer.session_complete(entities)
    assert writer.path("t1w_preproc", entities).exists()
    writer.discard_session(entities)
    assert not list(writer.output_dir.rglob("*sub-01[._]*"))
    assert not (writer.output_dir / "sub-01").exists()
    assert writer.session_complete(other) and writer.report(other).exists()


def test_table_uses_na(writer):
    path = writer.write_group_table(
        pd.DataFrame({"a": [1.0, np.nan]}),
        "ancova",
        columns={"a": {"Description": "a"}},
        family="t",
    )
    assert path == writer.output_dir / "group" / "ancova_t.tsv"
    assert path.read_text().splitlines() == ["a", "1.0", "n/a"]
    assert json.loads(path.with_suffix(".json").read_text())["a"] == {"Description": "a"}


def test_pybids_indexes_output_as_derivatives(writer):
    for subject_session in ({"sub": "01"}, {"sub": "01", "ses": "2"}):
        writer.write_image(_image(), "t1w_preproc", subject_session, sources=[], params={})
    layout = BIDSLayout(writer.bids_dir, derivatives=str(writer.output_dir))
    found = layout.derivatives["NeuroStrat"].get(desc="preproc", suffix="T1w", extension=".nii.gz")
    assert len(found) == 2
    assert {f.entities.get("session") for f in found} == {None, "2"}


def test_unwritable_output(tmp_path, make_bids):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot write"):
        DerivativesWriter(blocker / "out", make_bids(), "h").initialise()


def test_feature_table_never_half_written(writer, monkeypatch):
    """A table whose writing fails leaves the previous version (or nothing), never a part."""
    path = writer.path("volumes", {"sub": "01"})
    path.parent.mkdir(parents=True)
    writer.write_table(pd.DataFrame({"tiv": [1500.0]}), path)
    before = path.read_text()

    def broken_to_csv(self, target, **kwargs):
        Path(target).write_text("tiv\n15")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        writer.write_table(pd.DataFrame({"tiv": [1600.0]}), path)
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "sub-01_desc-volumes_morph.json",
        "sub-01_desc-volumes_morph.tsv",
    ]
