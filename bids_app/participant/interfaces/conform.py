"""Nipype interface of :func:`bids_app.preprocessing.conform.conform`."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from bids_app.preprocessing.conform import MAX_ANISOTROPY, conform, load_image, resample_anisotropic


class _ConformInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="anatomical image (NIfTI)")
    max_anisotropy = traits.Float(
        MAX_ANISOTROPY, usedefault=True, desc="resample to isotropic voxels above this ratio"
    )


class _ConformOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="RAS float32 image")
    report = traits.Dict(desc="what conform found and changed")


class Conform(SimpleInterface):
    """Conform an anatomical image (RAS, float32, 3D, checked header, not too anisotropic)."""

    input_spec = _ConformInputSpec
    output_spec = _ConformOutputSpec

    def _run_interface(self, runtime):
        source = Path(self.inputs.in_file)
        conformed, report = conform(load_image(source), source=str(source))
        conformed, note = resample_anisotropic(conformed, self.inputs.max_anisotropy)
        if note:
            report["changes"].append(note)
        out_file = Path(runtime.cwd) / "conformed.nii.gz"
        nib.save(conformed, out_file)
        self._results["out_file"] = str(out_file)
        self._results["report"] = report
        return runtime
