"""BIDS input: participants.tsv checks, the inventory and its filters, validation."""

import shutil

import pytest

from bids_app.errors import DataError, InvalidBIDSError, NoMatchError
from bids_app.inputs.inventory import build_inventory, inventory_table
from bids_app.inputs.layout import check_dataset_root, load_layout, validate_dataset
from bids_app.inputs.participants import read_participants


def test_participants_types(make_bids):
    table = read_participants(make_bids())
    assert list(table.index) == ["01", "02", "03", "04"]
    assert table["age"].dtype == float
    assert set(table["sex"]) == {"M", "F"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("participant_id", "subject"), "'participant_id' is missing"),
        (lambda t: t.replace("sub-02", "sub-01"), "duplicate participant_id"),
        (lambda t: t.replace("sub-02", "02"), "sub-<label>"),
        (lambda t: t.replace("\t51\t", "\told\t"), "column 'age' must be numeric"),
        (lambda t: t.replace("\tF\n", "\tX\n"), "column 'sex' has unknown values"),
        (lambda t: t.replace("\tALS\t", "\tPD\t"), "Levels"),
    ],
)
def test_participants_errors(make_bids, edit, message):
    bids = make_bids()
    path = bids / "participants.tsv"
    path.write_text(edit(path.read_text()))
    with pytest.raises(DataError, match=message) as info:
        read_participants(bids)
    assert "participants.tsv" in str(info.value)


def test_participants_optional(make_bids):
    bids = make_bids()
    (bids / "participants.tsv").unlink()
    assert read_participants(bids).empty


def test_inventory_finds_optional_contrasts(make_bids):
    bids = make_bids(subjects=["01", "02"], sessions=["1", "2"], flair=["02"])
    inventory = build_inventory(load_layout(bids))
    assert [item.key for item in inventory] == [
        "sub-01_ses-1",
        "sub-01_ses-2",
        "sub-02_ses-1",
        "sub-02_ses-2",
    ]
    second = inventory[2]
    assert second.flair and second.lesion_masks and not second.t2w
    assert second.missing == ["T2w"]
    table = inventory_table(inventory)
    assert table["FLAIR"].tolist() == [0, 0, 1, 1]
    assert table["usable"].all()


def test_inventory_filters(make_bids):
    layout = load_layout(make_bids(subjects=["01", "02", "03"], sessions=["1", "2"]))
    inventory = build_inventory(layout, participant_label=["02"], session_label=["2"])
    assert [item.key for item in inventory] == ["sub-02_ses-2"]
    with pytest.raises(NoMatchError, match="'07'"):
        build_inventory(layout, participant_label=["02", "07"])
    with pytest.raises(NoMatchError):
        build_inventory(layout, session_label=["9"])


def test_dataset_root_checks(tmp_path, make_bids):
    bids = make_bids()
    check_dataset_root(bids)
    (bids / "dataset_description.json").write_text("{not json")
    with pytest.raises(InvalidBIDSError, match="not valid JSON"):
        check_dataset_root(bids)


@pytest.mark.requires_bids_validator
def test_validator_accepts_valid_and_rejects_invalid(make_bids):
    bids = make_bids(sessions=["1"], flair=["01"])
    validate_dataset(bids)
    (bids / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.json").write_text("{broken")
    with pytest.raises(InvalidBIDSError, match="bids-validator"):
        validate_dataset(bids)


def test_pybids_fallback_validation(make_bids, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    bids = make_bids(subjects=["01"])
    validate_dataset(bids)
    shutil.rmtree(bids / "sub-01")
    with pytest.raises(InvalidBIDSError, match="pybids"):
        validate_dataset(bids)
