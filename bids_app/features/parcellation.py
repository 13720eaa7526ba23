"""Volumes (mL) from a deep-learning parcellation: brainchop's MeshNet aparc+aseg labels.

One column per class of the model (Brain-Stem, ctx-precentral...), named as
:func:`~bids_app.features.volumes.column_name` writes it, plus what sums several classes: the
intracranial volume (the brain mask), grey matter (cortex, deep grey nuclei and cerebellar
cortex: FreeSurfer's TotalGray), white matter (cerebral and cerebellar, corpus callosum) and
the cerebellum. The single classes that the clinical papers name keep their familiar names
(:data:`RENAMED`): ``brainstem``, ``lateral_ventricles`` (18-class model), ``precentral_gm`` and
``paracentral_gm`` (their grey-matter volume, not their cortical thickness); the 50-class
model's "Cerebellum" class, its cerebellar cortex, is ``cerebellum_cortex``.

The ``Brain-Stem`` class is also split into midbrain, pons and medulla
(:func:`split_brainstem_class`, columns :data:`BRAINSTEM_PARTS`): the subject's own brain stem,
cut by the planes of :mod:`bids_app.features.brainstem` found after mapping its voxels into
MNI152 through the session's registration.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd

from bids_app.features.brainstem import (
    MAPPED_SLAB_MM,
    MEDULLA,
    MIDBRAIN,
    PONS,
    SPINAL_CORD,
    split_brainstem,
    template_planes,
)
from bids_app.features.volumes import column_name, voxel_volume_ml

LOGGER = logging.getLogger("bids_app.features")

#: Class names of brainchop's colormaps to the column names the papers use.
RENAMED = {
    "Brain-Stem": "brainstem",
    "Lateral-Ventricle": "lateral_ventricles",
    "ctx-precentral": "precentral_gm",
    "ctx-paracentral": "paracentral_gm",
    "Cerebellum": "cerebellum_cortex",  # the 50-class model's name of it
}
#: Deep grey-matter classes (counted in ``gm``), in the names of both models.
DEEP_GREY = (
    "Thalamus",
    "Thalamus-Proper*",
    "Caudate",
    "Putamen",
    "Pallidum",
    "Hippocampus",
    "Amygdala",
    "Accumbens-area",
    "VentralDC",
)
#: White-matter classes (counted in ``wm``).
WHITE_MATTER = ("Cerebral-White-Matter", "Cerebellum-White-Matter", "Corpus callosum")
#: Cerebellar classes (``cerebellum``): the 18-class model's cortex and white matter, the
#: 50-class model's "Cerebellum" (cortex) and white matter.
CEREBELLUM = ("Cerebellum-Cortex", "Cerebellum", "Cerebellum-White-Matter")
#: Cortical grey-matter classes: the 18-class model's cortex; the 50-class model's ``ctx-*``.
CORTEX_PREFIX, CORTEX_18 = "ctx-", "Cerebral-Cortex"
#: Cerebellar cortex classes (counted in ``gm``).
CEREBELLAR_CORTEX = ("Cerebellum-Cortex", "Cerebellum")
#: The models' whole brain-stem class.
BRAINSTEM_CLASS = "Brain-Stem"
#: Columns of the brain stem's parts and their FreeSurfer ``segmentBS`` codes (Iglesias et al.
#: 2015), the parts the clustering paper measures (Milella et al. 2023).
BRAINSTEM_PARTS = {
    "brainstem_midbrain": MIDBRAIN,
    "brainstem_pons": PONS,
    "brainstem_medulla": MEDULLA,
}
#: ``dseg.tsv`` rows of the split's codes (FreeSurferColorLUT names; colours ours).
PART_ROWS = (
    {"index": MIDBRAIN, "name": "Midbrain", "color": "#ff0000"},
    {"index": PONS, "name": "Pons", "color": "#00ff00"},
    {"index": MEDULLA, "name": "Medulla", "color": "#0000ff"},
    {"index": SPINAL_CORD, "name": "Spinal-Cord", "color": "#ff00ff"},
)


def class_column(name: str) -> str:
    """Return the table column of a class.

    Parameters
    ----------
    name : str
        A class of the model's colormap.

    Returns
    -------
    str
        The column name.

    Examples
    --------
    >>> class_column("ctx-precentral"), class_column("Thalamus-Proper*")
    ('precentral_gm', 'thalamus_proper')
    >>> class_column("Cerebellum"), class_column("Cerebellum-Cortex")
    ('cerebellum_cortex', 'cerebellum_cortex')
    """
    return RENAMED.get(name) or column_name(name).strip("_")


def parcellation_volumes(
    labels: nib.Nifti1Image, table: pd.DataFrame, brain_mask: nib.Nifti1Image
) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """Return the volumes of a MeshNet parcellation and their data dictionary.

    Parameters
    ----------
    labels : nibabel.Nifti1Image
        Integer labels (``table["index"]``), 0 outside the brain.
    table : pandas.DataFrame
        The labels' ``index`` and ``name`` (a ``dseg.tsv``).
    brain_mask : nibabel.Nifti1Image
        The session's brain mask on the same grid (its volume is ``tiv``).

    Returns
    -------
    values : dict of str to float
        Column to mL: ``tiv``, ``gm``, ``wm``, ``cerebellum`` then one per class.
    columns : dict of str to dict
        Column to its ``Description`` and ``Units`` (the sidecar's data dictionary).
    """
    data = np.asarray(labels.dataobj).astype(np.int64)
    ml = voxel_volume_ml(labels)
    counts = np.bincount(data.ravel(), minlength=int(table["index"].max()) + 1) * ml
    by_name = {
        name: float(counts[index])
        for index, name in zip(table["index"], table["name"], strict=True)
    }
    cortex = [n for n in by_name if n.startswith(CORTEX_PREFIX) or n == CORTEX_18]
    groups = {
        "gm": (
            [*cortex, *DEEP_GREY, *CEREBELLAR_CORTEX],
            "grey matter: cortex, deep grey nuclei and cerebellar cortex (FreeSurfer's TotalGray)",
        ),
        "wm": (WHITE_MATTER, "white matter: cerebral, cerebellar and the corpus callosum"),
        "cerebellum": (CEREBELLUM, "cerebellum: cortex and white matter"),
    }
    values = {
        "tiv": float((np.asarray(brain_mask.dataobj) > 0).sum()) * voxel_volume_ml(brain_mask)
    }
    columns = {"tiv": {"Description": "intracranial volume: the brain mask", "Units": "mL"}}
    for column, (names, description) in groups.items():
        present = [n for n in names if n in by_name]
        values[column] = sum(by_name[n] for n in present)
        columns[column] = {
            "Description": f"{description} (MeshNet classes {present})",
            "Units": "mL",
        }
    for name, volume in by_name.items():
        column = class_column(name)
        if column in values:
            raise ValueError(f"MeshNet class {name!r} would overwrite column {column!r}")
        values[column] = volume
        columns[column] = {"Description": f"MeshNet class {name!r}", "Units": "mL"}
    return values, columns


def split_brainstem_class(
    labels: nib.Nifti1Image,
    table: pd.DataFrame,
    to_template: Callable[[np.ndarray], np.ndarray],
) -> tuple[nib.Nifti1Image, pd.DataFrame]:
    """Split a parcellation's ``Brain-Stem`` class into midbrain, pons and medulla.

    The class's voxels are mapped into MNI152 by ``to_template``, where the planes of
    :func:`~bids_app.features.brainstem.split_brainstem` are found (from its largest connected
    part, on 2 mm slabs: ``MAPPED_SLAB_MM``; each junction within 5 mm of the template's,
    ``MAX_JUNCTION_SHIFT_MM``) and each voxel is classified (more than 33 mm below the
    pontomedullary plane: spinal cord).

    Parameters
    ----------
    labels : nibabel.Nifti1Image
        Integer labels (``table["index"]``) in the subject's space.
    table : pandas.DataFrame
        The labels' ``index``, ``name`` and ``color`` (a ``dseg.tsv``).
    to_template : callable
        Maps world coordinates ``(n, 3)`` (RAS mm) of ``labels`` into MNI152 ones.

    Returns
    -------
    labels : nibabel.Nifti1Image
        The labels (same dtype and grid) with the brain stem's voxels recoded 173 (midbrain),
        174 (pons), 175 (medulla) or 126 (spinal cord).
    table : pandas.DataFrame
        ``table`` without the ``Brain-Stem`` row, with one row per code of the split present.

    Raises
    ------
    ValueError
        If the table has no ``Brain-Stem`` class, the labels none of its voxels, or the
        brain stem shows no ventral pons bulge in MNI152 space or one far from the template's.
    """
    index = table.loc[table["name"] == BRAINSTEM_CLASS, "index"]
    if index.empty:
        raise ValueError(f"the parcellation has no {BRAINSTEM_CLASS!r} class")
    data = np.asarray(labels.dataobj)
    if not (data == int(index.iloc[0])).any():
        raise ValueError(f"no voxel of the {BRAINSTEM_CLASS!r} class")
    split = split_brainstem(
        data, labels.affine, int(index.iloc[0]), to_template, MAPPED_SLAB_MM, template_planes()
    )
    present = [row for row in PART_ROWS if (split == row["index"]).any()]
    rows = pd.concat([table[table["name"] != BRAINSTEM_CLASS], pd.DataFrame(present)])
    out = nib.Nifti1Image(split, labels.affine, labels.header)
    return out, rows.reset_index(drop=True)


@dataclass(frozen=True)
class BrainstemParts:
    """A parcellation with its brain stem split, or kept whole where the split failed.

    Attributes
    ----------
    labels : nibabel.Nifti1Image
        The labels, brain stem split (:func:`split_brainstem_class`) or whole.
    table : pandas.DataFrame
        Their ``dseg.tsv`` rows.
    values : dict of str to float
        :data:`BRAINSTEM_PARTS` column to mL (NaN where the split failed).
    columns : dict of str to dict
        Column to its ``Description`` and ``Units``.
    missing : dict of str to str
        Column to the reason it is missing (empty when the split succeeded).
    """

    labels: nib.Nifti1Image
    table: pd.DataFrame
    values: dict[str, float]
    columns: dict[str, dict[str, str]]
    missing: dict[str, str]


def brainstem_parts(
    labels: nib.Nifti1Image,
    table: pd.DataFrame,
    to_template: Callable[[np.ndarray], np.ndarray],
) -> BrainstemParts:
    """Split the ``Brain-Stem`` class and measure its parts; a failed split is not an error.

    Parameters
    ----------
    labels, table, to_template
        As for :func:`split_brainstem_class`.

    Returns
    -------
    BrainstemParts
        The split labels and the parts' volumes (mL); where the split raises (no brain-stem
        voxel, no ventral pons bulge), the labels and table unchanged, NaN volumes and the
        reason, with a warning logged.
    """
    try:
        split, rows = split_brainstem_class(labels, table, to_template)
    except ValueError as error:
        LOGGER.warning("brain stem not split into midbrain, pons and medulla: %s", error)
        reason = f"brain stem not split: {error}"
        values = dict.fromkeys(BRAINSTEM_PARTS, math.nan)
        return BrainstemParts(
            labels, table, values, _part_columns(), dict.fromkeys(BRAINSTEM_PARTS, reason)
        )
    data, ml = np.asarray(split.dataobj), voxel_volume_ml(split)
    values = {column: float((data == code).sum()) * ml for column, code in BRAINSTEM_PARTS.items()}
    return BrainstemParts(split, rows, values, _part_columns(), {})


def _part_columns() -> dict[str, dict[str, str]]:
    """Return the data dictionary of the :data:`BRAINSTEM_PARTS` columns."""
    return {
        column: {
            "Description": f"{column.removeprefix('brainstem_')} of MeshNet's "
            f"{BRAINSTEM_CLASS!r} class (code {code}), split by planes perpendicular to the brain "
            "stem's long axis at the pontine notches, found in MNI152 space through the "
            "registration",
            "Units": "mL",
        }
        for column, code in BRAINSTEM_PARTS.items()
    }
