"""Shared fixtures: small BIDS datasets written by the tests themselves.

Also the suite's guards: tests marked ``requires_bids_validator`` skip, with the reason, where the
``bids-validator`` command is not installed, and a run fails if its tests wrote into the
repository (outputs belong in ``tmp_path``; the participant level's default work folder is
``./work``, so a test that runs it passes ``-w``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from bids_app import runtime

runtime.quiet_libraries()  # as the CLI does: no nipype version check, matplotlib off-screen

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY / ".." / "shared" / "data"

#: Why a test marked ``requires_bids_validator`` is skipped where the command is missing.
NO_BIDS_VALIDATOR = "needs the bids-validator command (npm install -g bids-validator@1.15.0)"
#: What a test run may leave in the repository: the caches of Python, pytest and ruff, and the
#: data file of a coverage run.
CACHES = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".coverage"})
_CHANGES_BEFORE = pytest.StashKey[frozenset[str] | None]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``requires_bids_validator`` when the command is not installed."""
    if shutil.which("bids-validator") is not None:
        return
    skip = pytest.mark.skip(reason=NO_BIDS_VALIDATOR)
    for item in items:
        if item.get_closest_marker("requires_bids_validator"):
            item.add_marker(skip)


def repository_changes(repository: Path = REPOSITORY) -> frozenset[str] | None:
    """The changes of a git checkout (``git status``, ignored files included, caches left out).

    One entry per changed path, as ``git status --porcelain`` writes it (``?? new.txt``,
    `` M changed.py``, ``!! work/``): a new folder is one entry, not one per file in it. The
    folders at the top of the checkout are added (``.. name/``), since git does not list an empty
    one. None outside a git checkout.
    """
    if not (repository / ".git").exists():
        return None
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=normal"],
            cwd=repository,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    entries = set(status.splitlines())
    entries |= {f".. {entry.name}/" for entry in repository.iterdir() if entry.is_dir()}
    return frozenset(
        entry
        for entry in entries
        if not CACHES & set(Path(entry[3:]).parts) and not entry.endswith((".pyc", ".pyo"))
    )


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note the repository's changes before the tests (in the controller only)."""
    if not _is_xdist_worker(session.config):
        session.config.stash[_CHANGES_BEFORE] = repository_changes()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if its tests wrote into the repository (in the controller only)."""
    before = session.config.stash.get(_CHANGES_BEFORE, None)
    if _is_xdist_worker(session.config) or before is None:
        return
    new = sorted((repository_changes() or frozenset()) - before)
    if not new:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", f"tests wrote into the repository {REPOSITORY}", red=True)
        for entry in new:
            reporter.write_line(entry)
        reporter.write_line(
            "Tests write into tmp_path (runs of the app: pass -w, whose default is ./work); "
            "files edited by hand during the run are listed too."
        )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread: tiny 3D convolutions crawl with several on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _head(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """A smooth blob-shaped 'head' with a brighter core, as int16."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radius = np.sqrt((((grid.T - centre) / (centre * 0.8)) ** 2).sum(axis=-1)).T
    data = np.where(radius < 1, 400 + 300 * (radius < 0.7), 0) + rng.normal(0, 10, shape)
    return ndimage.gaussian_filter(data, 1).clip(0).astype(np.int16)


def write_t1w(path: Path, seed: int = 0, shape=(20, 24, 20), zoom: float = 3.0) -> Path:
    """Write a small T1w NIfTI and its JSON sidecar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([zoom, zoom, zoom, 1.0])
    affine[:3, 3] = -np.array(shape) * zoom / 2
    nib.save(nib.Nifti1Image(_head(shape, seed), affine), path)
    sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
    sidecar.write_text(json.dumps({"MagneticFieldStrength": 3, "Manufacturer": "Test"}))
    return path


@pytest.fixture
def make_bids(tmp_path: Path) -> Callable[..., Path]:
    """Return a factory of small valid BIDS datasets.

    The factory takes ``subjects`` (labels), ``sessions`` (labels or None), ``flair``
    (subjects with a FLAIR and a lesion mask) and writes participants.tsv/json with a
    diagnosis, age and sex per subject.
    """

    def factory(
        subjects: Sequence[str] = ("01", "02", "03", "04"),
        sessions: Sequence[str] | None = None,
        flair: Sequence[str] = (),
        name: str = "bids",
    ) -> Path:
        root = tmp_path / name
        root.mkdir()
        (root / "dataset_description.json").write_text(
            json.dumps({"Name": "test", "BIDSVersion": "1.9.0", "DatasetType": "raw"})
        )
        (root / "README").write_text("A small dataset written by the NeuroStrat tests.\n")
        (root / ".bidsignore").write_text("*_roi.*\n")
        lines = ["participant_id\tdiagnosis\tage\tsex"]
        for index, subject in enumerate(subjects):
            lines.append(
                f"sub-{subject}\t{'ALS' if index % 2 else 'CN'}\t{50 + index}\t"
                f"{'M' if index % 3 else 'F'}"
            )
            for session in sessions or [None]:
                folder = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "anat"
                stem = f"sub-{subject}" + (f"_ses-{session}" if session else "")
                write_t1w(folder / f"{stem}_T1w.nii.gz", seed=index)
                if subject in flair:
                    write_t1w(folder / f"{stem}_FLAIR.nii.gz", seed=100 + index)
                    write_t1w(folder / f"{stem}_label-lesion_roi.nii.gz", seed=200 + index)
        (root / "participants.tsv").write_text("\n".join(lines) + "\n")
        (root / "participants.json").write_text(
            json.dumps(
                {
                    "diagnosis": {
                        "Description": "group",
                        "Levels": {"CN": "control", "ALS": "ALS"},
                    },
                    "age": {"Description": "age at scan", "Units": "years"},
                    "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
                }
            )
        )
        return root

    return factory


def read_volumes(derivatives: Path) -> pd.DataFrame:
    """Stack the ``desc-volumes_morph.tsv`` tables of a derivatives folder (by participant)."""
    tables = sorted(derivatives.rglob("*_desc-volumes_morph.tsv"))
    frames = [pd.read_csv(p, sep="\t", na_values="n/a", keep_default_na=False) for p in tables]
    return pd.concat(frames, ignore_index=True).set_index("participant_id")


def write_feature_dataset(
    root: Path, cohort, family: str = "volumes", sessions: pd.DataFrame | None = None
) -> tuple[Path, Path]:
    """Write a BIDS dataset and the participant-level outputs the group level reads.

    Tiny placeholder T1w images, each session's feature table and its completion marker, so
    that the group level runs on a synthetic feature cohort without any image processing.

    Parameters
    ----------
    root : Path
        Folder of ``bids`` and ``out``.
    cohort : FeatureCohort
        From :func:`~bids_app.synthetic.features.make_feature_cohort` (``participants`` and
        ``features`` with ``participant_id`` and ``session_id``).
    family : str
        The feature family the rows are written as (an output of the derivatives writer).
    sessions : pandas.DataFrame, optional
        Rows of the ``sessions.tsv`` files (with ``participant_id``).

    Returns
    -------
    tuple of Path
        The BIDS dataset and the output folder.
    """
    from bids_app.derivatives.writer import DerivativesWriter

    bids, out = root / "bids", root / "out"
    bids.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "features", "BIDSVersion": "1.9.0"})
    )
    cohort.participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    writer = DerivativesWriter(output_dir=out, bids_dir=bids, settings_hash="x")
    writer.initialise()
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    for row in cohort.features.itertuples(index=False):
        sub, ses = row.participant_id, row.session_id
        anat = bids / sub / ses / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        t1w = anat / f"{sub}_{ses}_T1w.nii.gz"
        nib.save(image, t1w)
        entities = {"sub": sub.removeprefix("sub-"), "ses": ses.removeprefix("ses-")}
        preproc = writer.path("t1w_preproc", entities)
        preproc.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, preproc)
        writer.write_table(pd.DataFrame([row._asdict()]), writer.path(family, entities))
        writer.write_json({}, "qc_metrics", entities, sources=[t1w], params={})  # complete
    if sessions is not None:
        for sub, table in sessions.groupby("participant_id"):
            path = bids / sub / f"{sub}_sessions.tsv"
            table.drop(columns="participant_id").to_csv(path, sep="\t", index=False)
    return bids, out


def pooled(images: np.ndarray, factor: int = 2) -> np.ndarray:
    """Average crops over blocks of ``factor`` voxels: small inputs for cheap networks.

    Parameters
    ----------
    images : numpy.ndarray of shape (N, C, X, Y, Z)
        The crops.
    factor : int
        Block size; the edges that do not fill a block are dropped.

    Returns
    -------
    numpy.ndarray of shape (N, C, X // factor, Y // factor, Z // factor)
        The block means, float32.
    """
    n, c = images.shape[:2]
    x, y, z = (size // factor for size in images.shape[2:])
    blocks = images[..., : x * factor, : y * factor, : z * factor].reshape(
        n, c, x, factor, y, factor, z, factor
    )
    return blocks.mean(axis=(3, 5, 7)).astype(np.float32)


def cross_validate_crops(n_subjects: int, atrophy: float, seed: int, epochs: int, n_jobs: int = 1):
    """Train a narrow ResNet3D out of fold on a synthetic crop cohort pooled to 8 mm.

    Parameters
    ----------
    n_subjects : int
        Subjects of :func:`~bids_app.synthetic.crops.make_crop_cohort`.
    atrophy : float
        Its planted atrophy (0: a null cohort).
    seed : int
        Its seed.
    epochs : int
        Training epochs (Coll et al. 2023's preset otherwise, batches of 4, no validation).
    n_jobs : int, default=1
        Folds trained at once.

    Returns
    -------
    tuple
        The cohort, the pooled volumes, the labels, the network's spec and the
        :class:`~bids_app.deep.crossval.DeepCVResult` of a 3-fold cross-validation (seed 2).
    """
    import dataclasses

    import torch

    from bids_app.deep.crossval import NetworkSpec, deep_cross_validate
    from bids_app.deep.training import PRESETS
    from bids_app.group.deep_learning import network_options
    from bids_app.models.crossval import outer_splits
    from bids_app.synthetic.crops import make_crop_cohort

    cohort = make_crop_cohort(n_subjects, atrophy=atrophy, seed=seed)
    volumes = pooled(cohort.images, 4)
    y = (cohort.participants.diagnosis == "ALS").astype(int).to_numpy()
    groups = cohort.participants.participant_id.to_numpy()
    spec = NetworkSpec(
        "resnet3d",
        network_options("resnet3d", 4),
        dataclasses.replace(PRESETS["coll2023"], epochs=epochs, batch_size=4),
        validation=False,
    )
    splits = outer_splits(y, groups, 3)
    cpu = torch.device("cpu")
    result = deep_cross_validate(volumes, y, groups, splits, spec, cpu, seed=2, n_jobs=n_jobs)
    return cohort, volumes, y, spec, result


#: Desikan-Killiany labels atrophied in the third class of :func:`three_class_crops`
#: (left and right superior frontal gyri; the second class has the precentral gyri).
SUPERIOR_FRONTAL = (1028, 2028)


def three_class_crops(n_per_class: int, atrophy: float, seed: int):
    """A crop cohort of three classes with class-specific atrophy, pooled to 8 mm.

    Class 0 has none, class 1 loses ``atrophy`` of the intensity of the precentral gyri and
    class 2 of the superior frontal gyri (atlas labels on the crop grid).

    Parameters
    ----------
    n_per_class : int
        Subjects per class.
    atrophy : float
        Planted loss of intensity.
    seed : int
        Seed of the cohort and of the class order.

    Returns
    -------
    volumes : numpy.ndarray
        Pooled crops ``[n, 1, X, Y, Z]``.
    y : numpy.ndarray
        Class codes 0, 1, 2.
    groups : numpy.ndarray
        Participant of every row.
    """
    from bids_app.synthetic.crops import PRECENTRAL, make_crop_cohort

    n = 3 * n_per_class
    cohort = make_crop_cohort(n, atrophy=0.0, seed=seed)
    y = np.random.default_rng(seed).permutation(np.repeat([0, 1, 2], n_per_class))
    images = cohort.images.copy()
    brain = cohort.brain_mask > 0
    for code, regions in ((1, PRECENTRAL), (2, SUPERIOR_FRONTAL)):
        loss = 1.0 - atrophy * (np.isin(cohort.atlas, regions) & brain)
        images[y == code] *= loss.astype(np.float32)
    return pooled(images, 4), y, cohort.participants.participant_id.to_numpy()
