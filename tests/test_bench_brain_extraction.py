"""The helpers of the brain-extraction and parcellation benchmarks, on tiny arrays.

The benchmarks themselves run for half an hour (``make bench``); these checks keep their
measures honest: Dice, surface distances, the majority vote, volumes and the matching of the
MeshNet classes to FreeSurfer's labels by name.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.bench_brain_extraction import dice, majority, surface_distances, volume_ml
from benchmarks.bench_parcellation import ASEG, compare, freesurfer_codes, match_classes
from tests.conftest import REPOSITORY, SHARED_DATA

BRAINCHOP = SHARED_DATA / "models" / "brainchop"


def cube(shape: tuple[int, ...], low: int, high: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[low:high, low:high, low:high] = True
    return mask


def test_dice_counts_overlap() -> None:
    a, b = cube((10, 10, 10), 0, 4), cube((10, 10, 10), 2, 6)
    assert dice(a, a) == 1.0
    assert dice(a, b) == pytest.approx(2 * 8 / (64 + 64))
    assert np.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))


def test_surface_distances_in_millimetres() -> None:
    a = cube((30, 30, 30), 5, 20)
    hd95, assd = surface_distances(a, a, (1.0, 1.0, 1.0))
    assert hd95 == 0.0 and assd == 0.0
    shifted = np.roll(a, 3, axis=2)
    hd95, assd = surface_distances(a, shifted, (2.0, 2.0, 2.0))
    assert hd95 == pytest.approx(6.0)  # 3 voxels of 2 mm
    assert 0 < assd < 6.0


def test_majority_needs_more_than_half() -> None:
    masks = [np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0])]
    assert majority(masks).tolist() == [True, True, False, False]
    assert majority(masks[:2]).tolist() == [True, False, False, False]  # a tie is not a majority


def test_volume_in_millilitres() -> None:
    assert volume_ml(np.ones((10, 10, 10), bool), (1.0, 1.0, 1.0)) == pytest.approx(1.0)


def test_classes_match_freesurfer_names() -> None:
    names = {1: "Thalamus-Proper*", 2: "Ventricle", 3: "ctx-precentral", 4: "ctx-insula", 5: "X"}
    matched = match_classes(names)
    assert matched == {
        "Thalamus": (1,),
        "Lateral-Ventricle+Inf-Lat-Vent": (2,),
        "Cerebral-Cortex": (3, 4),
    }
    assert freesurfer_codes("Thalamus") == (10, 49)
    assert 11150 in freesurfer_codes("Cerebral-Cortex")  # Destrieux parcels are cortex


def test_compare_scores_a_perfect_and_a_shifted_label() -> None:
    reference = np.zeros((20, 20, 20), np.int32)
    reference[2:8, 2:8, 2:8] = 16  # brain stem
    reference[10:16, 10:16, 10:16] = 4  # left lateral ventricle
    labels = np.zeros_like(reference)
    labels[reference == 16] = 1
    labels[11:17, 10:16, 10:16] = 2
    table = compare(labels, {1: "Brain-Stem", 2: "Lateral-Ventricle"}, reference, 0.001)
    rows = table.set_index(["kind", "structure"])
    assert rows.loc[("structure", "Brain-Stem"), "dice"] == 1.0
    assert rows.loc[("structure", "Lateral-Ventricle"), "dice"] == pytest.approx(5 / 6, abs=1e-4)
    assert rows.loc[("volume", "brainstem"), "volume_diff_pct"] == 0.0
    assert "cerebellum" not in table.structure.to_list()  # the model has no cerebellum class


@pytest.mark.skipif(not BRAINCHOP.exists(), reason="needs ../shared/data/models/brainchop")
@pytest.mark.parametrize(
    ("model", "structures"), [("model30chan18cls", 17), ("model30chan50cls", 16)]
)
def test_every_aseg_class_of_the_models_is_matched(model: str, structures: int) -> None:
    labels = json.loads((BRAINCHOP / model / "colormap.json").read_text())["labels"]
    matched = match_classes(dict(enumerate(labels)))
    assert len(matched) == structures
    assert all(name in ASEG for group in matched for name in group.split("+"))


@pytest.mark.parametrize("script", ["bench_brain_extraction.py", "bench_parcellation.py"])
def test_script_help(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--device" in result.stdout
