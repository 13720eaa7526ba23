"""Volumes (mL) from a deep-learning parcellation: brainchop's MeshNet aparc+aseg labels.

One column per class of the model (Brain-Stem, ctx-precentral...), named as
:func:`~bids_app.features.volumes.column_name` writes it, plus what sums several classes: the
intracranial volume (the brain mask), grey matter (cortex, deep grey nuclei and cerebellar
cortex: FreeSurfer's TotalGray), white matter (cerebral and cerebellar, corpus callosum) and
the cerebellum. The single classes that the clinical papers name keep their familiar names
(:data:`RENAMED`): ``brainstem``, ``lateral_ventricles`` (18-class model), ``precentral_gm`` and
``paracentral_gm`` (their grey-matter volume, not their cortical thickness); the 50-class
model's "Cerebellum" class, its cerebellar cortex, is ``cerebellum_cortex``.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from bids_app.features.volumes import column_name, voxel_volume_ml

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
