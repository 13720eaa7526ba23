"""The participant level: one nipype workflow per subject and session.

The workflow computes into the work folder (nipype caches every node there, so a re-run resumes);
the results are then written by the derivatives writer, which alone decides their names.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import pandas as pd
from nipype.interfaces import utility as niu
from nipype.interfaces.base import isdefined
from nipype.pipeline import engine as pe

from bids_app.config import FEATURE_FAMILIES, RADIOMICS_ROIS, Config
from bids_app.derivatives.naming import TEMPLATE_SPACE
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import NeuroStratError, NoInputError
from bids_app.inputs.inventory import SessionInputs
from bids_app.participant.interfaces.anatomical import (
    N4,
    CnnReady,
    ConformMask,
    HDBet,
    MaskFromNonzero,
    OtherContrast,
    QualityReport,
    RegisterToTemplate,
    ResampleToTemplate,
    SegmentTissues,
    WarpTemplateMask,
)
from bids_app.participant.interfaces.conform import Conform
from bids_app.participant.interfaces.features import (
    AtlasToT1w,
    Histogram,
    Radiomics,
    Thickness,
    Volumes,
)
from bids_app.participant.nipype_setup import configure_nipype, failure_reason
from bids_app.preprocessing.bias import N4_PRESETS
from bids_app.preprocessing.brain_extraction import detect_skull_stripped
from bids_app.preprocessing.cnn_input import CNN_BOX_MM
from bids_app.preprocessing.conform import load_image
from bids_app.preprocessing.hdbet import find_hdbet_weights
from bids_app.preprocessing.registration import REGISTRATION_PRESETS
from bids_app.preprocessing.templates import TISSUES
from bids_app.utils.logs import track

LOGGER = logging.getLogger("bids_app.participant")


@dataclass(frozen=True)
class SessionOutcome:
    """How one subject/session ended.

    Parameters
    ----------
    key : str
        ``sub-X[_ses-Y]``.
    status : {"done", "skipped", "failed"}
        ``skipped`` means the outputs existed for the same settings.
    reason : str
        Why it failed (empty otherwise).
    """

    key: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class AnatomicalOptions:
    """How one session's anatomical workflow runs (resolved from the Config and the inputs).

    Parameters
    ----------
    skull_strip : {"hdbet", "template", "none", "user"}
        The brain extraction actually used (``auto`` resolved).
    skull_strip_reason : str
        Why, for the log and the report.
    hdbet_weights : Path or None
        HD-BET model folder (``hdbet`` only).
    user_mask : Path or None
        User-supplied brain mask (``user`` only).
    device : str
        Torch device for HD-BET.
    sloppy : bool
        Low-resolution registration and 2 mm template-space outputs.
    seed : int
        ANTs random seed.
    templateflow_home : Path or None
        TemplateFlow folder, or None for nilearn's template.
    cnn_normalisation : str
        ``minmax`` or ``zscore``.
    features : tuple of str
        Feature families to compute.
    atlas : str
        Atlas of the regional grey-matter volumes.
    radiomics_rois : tuple of str
        Regions described by PyRadiomics.
    thickness_preset : str
        DiReCT preset (:data:`bids_app.features.thickness.THICKNESS_PRESETS`).
    nprocs : int
        Processes this session may use (the thickness step runs its hemispheres side by side).
    """

    skull_strip: str
    skull_strip_reason: str
    hdbet_weights: Path | None = None
    user_mask: Path | None = None
    device: str = "cpu"
    sloppy: bool = False
    seed: int = 42
    templateflow_home: Path | None = None
    cnn_normalisation: str = "minmax"
    features: tuple[str, ...] = FEATURE_FAMILIES
    atlas: str = "desikan-killiany"
    radiomics_rois: tuple[str, ...] = RADIOMICS_ROIS
    thickness_preset: str = "fast"
    nprocs: int = 1

    @property
    def resolution(self) -> int:
        """Voxel size (mm) of the template-space outputs."""
        return 2 if self.sloppy else 1

    @property
    def n4_preset(self) -> str:
        """Name of the N4 preset."""
        return "sloppy" if self.sloppy else "fast"

    @property
    def registration_preset(self) -> str:
        """Name of the registration preset."""
        return "sloppy" if self.sloppy else "precise"

    def params(self) -> dict:
        """Return the settings that change the outputs (recorded in sidecars)."""
        return {
            "skull_strip": self.skull_strip,
            "user_mask": str(self.user_mask) if self.user_mask else None,
            "registration": REGISTRATION_PRESETS[self.registration_preset].to_dict(),
            "n4": dataclasses.asdict(N4_PRESETS[self.n4_preset]),
            "template_resolution_mm": self.resolution,
            "template_source": "templateflow" if self.templateflow_home else "nilearn",
            "cnn_normalisation": self.cnn_normalisation,
            "cnn_box_mm": list(CNN_BOX_MM),
            "features": list(self.features),
            "atlas": self.atlas,
            "radiomics_rois": list(self.radiomics_rois),
            "thickness_preset": self.thickness_preset,
        }


def init_participant_wf(
    inputs: SessionInputs, options: AnatomicalOptions, work_dir: Path
) -> pe.Workflow:
    """Build the anatomical workflow of one subject and session.

    Conform, N4 on the head, brain extraction (HD-BET, template, none or a user mask),
    registration to the template (affine + SyN), N4 inside the brain, Atropos with template
    priors (refining the template mask), template-space resampling with the log-Jacobian,
    FLAIR/T2w co-registration, CNN-ready crops and the QC report. Each node caches in
    ``work_dir``, so a re-run resumes after the last finished step.

    Parameters
    ----------
    inputs : SessionInputs
        The session's input files (a T1w is required).
    options : AnatomicalOptions
        Resolved settings.
    work_dir : Path
        Base folder for nipype's cache.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        The workflow; the outputs are read from its nodes by :func:`process_session`.
    """
    workflow = pe.Workflow(name=f"{inputs.key.replace('-', '_')}_wf", base_dir=str(work_dir))
    template = {
        "resolution": options.resolution,
        "templateflow_home": str(options.templateflow_home or ""),
    }
    conform_t1w = pe.Node(Conform(in_file=str(inputs.t1w[0])), name="conform_t1w", mem_gb=0.5)
    n4_head = pe.Node(N4(preset=options.n4_preset), name="n4_head", mem_gb=1.0)
    register = pe.Node(
        RegisterToTemplate(
            preset=options.registration_preset,
            seed=options.seed,
            templateflow_home=template["templateflow_home"],
        ),
        name="register",
        mem_gb=2.0,
    )
    warp_mask = pe.Node(WarpTemplateMask(**template), name="warp_template_mask", mem_gb=1.0)
    n4_brain = pe.Node(N4(preset=options.n4_preset), name="n4_brain", mem_gb=1.0)
    segment = pe.Node(SegmentTissues(**template), name="segment", mem_gb=2.0)
    to_template = pe.Node(ResampleToTemplate(**template), name="to_template", mem_gb=1.5)
    cnn_t1w = pe.Node(
        CnnReady(normalisation=options.cnn_normalisation, **template), name="cnn_t1w", mem_gb=0.5
    )
    qc = pe.Node(
        QualityReport(
            title=f"NeuroStrat: {inputs.key}", provenance=_provenance(options), **template
        ),
        name="qc",
        mem_gb=1.0,
    )
    workflow.connect([
        (conform_t1w, n4_head, [("out_file", "in_file")]),
        (n4_head, register, [("out_file", "in_file")]),
        (conform_t1w, warp_mask, [("out_file", "reference")]),
        (register, warp_mask, [("inverse", "inverse")]),
        (conform_t1w, n4_brain, [("out_file", "in_file")]),
        (n4_brain, segment, [("out_file", "in_file")]),
        (register, segment, [("inverse", "inverse")]),
        (n4_brain, to_template, [("out_file", "t1w")]),
        (segment, to_template, [("out_mask", "brain_mask"), ("out_dseg", "dseg")]),
        (register, to_template, [("forward", "forward")]),
        (to_template, cnn_t1w, [("t1w_mni", "in_file"), ("mask_mni", "mask_mni")]),
        (n4_brain, qc, [("out_file", "t1w")]),
        (segment, qc, [("out_mask", "brain_mask"), ("out_dseg", "dseg")]),
        (warp_mask, qc, [("out_probability", "template_probability")]),
        (to_template, qc, [("t1w_mni", "t1w_mni")]),
    ])  # fmt: skip
    if options.skull_strip == "template":
        workflow.connect([
            (warp_mask, n4_brain, [("out_mask", "mask_file")]),
            (warp_mask, segment, [
                ("out_mask", "mask_file"),
                ("out_probability", "refine_probability"),
            ]),
        ])  # fmt: skip
    else:
        if options.skull_strip == "hdbet":
            mask = pe.Node(
                HDBet(weights_dir=str(options.hdbet_weights), device=options.device),
                name="hdbet",
                mem_gb=4.0,
            )
            workflow.connect(conform_t1w, "out_file", mask, "in_file")
        elif options.skull_strip == "user":
            mask = pe.Node(ConformMask(in_file=str(options.user_mask)), name="user_mask")
            workflow.connect(conform_t1w, "out_file", mask, "reference")
        else:
            mask = pe.Node(MaskFromNonzero(), name="nonzero_mask", mem_gb=0.5)
            workflow.connect(conform_t1w, "out_file", mask, "in_file")
        mask_out = "out_file" if options.skull_strip == "user" else "out_mask"
        workflow.connect([
            (mask, register, [(mask_out, "mask_file")]),
            (mask, n4_brain, [(mask_out, "mask_file")]),
            (mask, segment, [(mask_out, "mask_file")]),
        ])  # fmt: skip

    lesion = None
    if inputs.lesion_masks:
        lesion = pe.Node(ConformMask(in_file=str(inputs.lesion_masks[0])), name="lesion")
        workflow.connect(conform_t1w, "out_file", lesion, "reference")
        workflow.connect(lesion, "out_file", to_template, "lesion")

    others = [(c, files[0]) for c, files in (("FLAIR", inputs.flair), ("T2w", inputs.t2w)) if files]
    if others:
        merge = pe.Node(niu.Merge(len(others)), name="merge_other", run_without_submitting=True)
        workflow.connect(merge, "out", qc, "other")
    for index, (contrast, path) in enumerate(others, start=1):
        name = contrast.lower()
        other = pe.Node(
            OtherContrast(
                in_file=str(path), contrast=contrast, preset=options.n4_preset, **template
            ),
            name=f"{name}_coregister",
            mem_gb=1.5,
        )
        cnn = pe.Node(
            CnnReady(normalisation=options.cnn_normalisation, **template),
            name=f"cnn_{name}",
            mem_gb=0.5,
        )
        workflow.connect([
            (n4_brain, other, [("out_file", "t1w")]),
            (segment, other, [("out_mask", "brain_mask")]),
            (register, other, [("forward", "forward")]),
            (other, cnn, [("out_mni", "in_file")]),
            (to_template, cnn, [("mask_mni", "mask_mni")]),
            (other, merge, [("summary", f"in{index}")]),
        ])  # fmt: skip
        if lesion is not None:
            workflow.connect(lesion, "out_file", other, "lesion")
    _connect_features(workflow, options, lesion)
    return workflow


def _connect_features(
    workflow: pe.Workflow, options: AnatomicalOptions, lesion: pe.Node | None
) -> None:
    """Add the nodes of the feature families after the segmentation."""
    n4_brain, segment = workflow.get_node("n4_brain"), workflow.get_node("segment")
    families = set(options.features)
    if families & {"volumes", "thickness", "radiomics"}:
        atlas = pe.Node(
            AtlasToT1w(atlas=options.atlas, templateflow_home=str(options.templateflow_home or "")),
            name="atlas_to_t1w",
            mem_gb=1.5,
        )
        workflow.connect([
            (n4_brain, atlas, [("out_file", "t1w")]),
            (workflow.get_node("register"), atlas, [("inverse", "inverse")]),
        ])  # fmt: skip
    if "volumes" in families:
        node = pe.Node(Volumes(atlas=options.atlas), name="volumes", mem_gb=1.5)
        workflow.connect([
            (segment, node, [
                ("out_probseg", "probseg"),
                ("out_mask", "brain_mask"),
                ("out_dseg", "dseg"),
            ]),
            (atlas, node, [("aparcaseg", "aparcaseg"), ("atlas_labels", "atlas_labels")]),
        ])  # fmt: skip
        if lesion is not None:
            workflow.connect(lesion, "out_file", node, "lesion")
    if "thickness" in families:
        node = pe.Node(
            Thickness(preset=options.thickness_preset, n_jobs=options.nprocs),
            name="thickness",
            mem_gb=2.0,
            n_procs=options.nprocs,
        )
        workflow.connect([
            (segment, node, [("out_dseg", "dseg"), ("out_probseg", "probseg")]),
            (atlas, node, [("aparcaseg", "aparcaseg")]),
        ])  # fmt: skip
    if "radiomics" in families:
        node = pe.Node(Radiomics(rois=list(options.radiomics_rois)), name="radiomics", mem_gb=2.0)
        if options.sloppy:  # 2 mm instead of the 1 mm of 000 (8 times fewer voxels)
            node.inputs.spacing_mm = 2.0
        workflow.connect([
            (n4_brain, node, [("out_file", "t1w")]),
            (segment, node, [("out_mask", "brain_mask")]),
            (atlas, node, [("aparcaseg", "aparcaseg")]),
        ])  # fmt: skip
        if lesion is not None:
            workflow.connect(lesion, "out_file", node, "lesion")
    if "histogram" in families:
        node = pe.Node(Histogram(), name="histogram", mem_gb=0.5)
        workflow.connect([
            (n4_brain, node, [("out_file", "t1w")]),
            (segment, node, [("out_mask", "brain_mask"), ("out_probseg", "probseg")]),
        ])  # fmt: skip


def _provenance(options: AnatomicalOptions) -> dict[str, str]:
    """Methods text of the QC report."""
    registration = REGISTRATION_PRESETS[options.registration_preset]
    return {
        "Bias correction": "N4 (ANTsPy) on the whole image, then again inside the brain mask.",
        "Brain extraction": f"{options.skull_strip}: {options.skull_strip_reason}",
        "Registration": (
            f"ANTsPy affine then SyN to {TEMPLATE_SPACE} "
            f"({'TemplateFlow' if options.templateflow_home else 'nilearn'} template) on a "
            f"{registration.template_resolution} mm grid; outputs at {options.resolution} mm."
        ),
        "Segmentation": "Atropos, 3 classes, template CSF/GM/WM priors (weight 0.25).",
        "FLAIR/T2w": "rigid, Mattes mutual information, lesions excluded from the metric.",
        "CNN-ready images": (
            f"brain-masked, {options.cnn_normalisation} normalised, cropped to "
            f"{' x '.join(map(str, CNN_BOX_MM))} mm (seed 001 §2.3)."
        ),
    }


def _node_results(result_graph) -> dict:
    return {node.name: node.result.outputs for node in result_graph.nodes()}


def _plugin(config: Config, key: str) -> tuple[str, dict]:
    """Return nipype's plugin and its arguments, with a callback that logs each step."""

    def status(node, event: str) -> None:
        if event == "end":
            LOGGER.info("%s: step %s finished", key, node.name)
        elif event == "start":
            LOGGER.debug("%s: step %s started", key, node.name)

    if config.resources.nprocs > 1:
        args = {"n_procs": config.resources.nprocs, "raise_insufficient": False}
        if config.resources.mem_gb:
            args["memory_gb"] = config.resources.mem_gb
        return "MultiProc", {**args, "status_callback": status}
    return "Linear", {"status_callback": status}


def find_user_mask(inputs: SessionInputs, derivatives: Sequence[Path]) -> Path | None:
    """Find a user-supplied T1w-space brain mask for a session in derivatives datasets.

    Parameters
    ----------
    inputs : SessionInputs
        The session.
    derivatives : sequence of Path
        Derivatives dataset roots (``--derivatives``).

    Returns
    -------
    Path or None
        The first ``<sub>[_<ses>]_*desc-brain_mask.nii[.gz]`` without a ``space`` entity.
    """
    for root in derivatives:
        folder = root / f"sub-{inputs.subject}"
        if inputs.session:
            folder /= f"ses-{inputs.session}"
        candidates = sorted((folder / "anat").glob(f"{inputs.key}_*desc-brain_mask.nii*"))
        native = [path for path in candidates if "_space-" not in path.name]
        if native:
            return native[0]
    return None


def resolve_options(
    inputs: SessionInputs, t1w: nib.Nifti1Image, config: Config
) -> AnatomicalOptions:
    """Decide the brain extraction of a session (``--skull-strip auto``) and gather settings.

    Parameters
    ----------
    inputs : SessionInputs
        The session.
    t1w : nibabel.Nifti1Image
        Its T1w image (to detect skull-stripped input).
    config : Config
        The run configuration.

    Returns
    -------
    AnatomicalOptions
        The resolved options.
    """
    mode, reason, user_mask, weights = config.participant.skull_strip, "requested", None, None
    stripped, evidence = detect_skull_stripped(t1w)
    if mode == "auto":
        user_mask = find_user_mask(inputs, config.input.derivatives)
        weights = find_hdbet_weights(config.participant.hdbet_weights)
        if user_mask is not None:
            mode, reason = "user", f"mask supplied in {user_mask.parent}"
        elif stripped:
            mode, reason = "none", f"the input is already skull-stripped ({evidence})"
        elif weights is not None:
            mode, reason = "hdbet", f"HD-BET weights found in {weights}"
        else:
            mode, reason = "template", "no HD-BET weights found: template-based fallback"
    elif mode == "hdbet":
        weights = find_hdbet_weights(config.participant.hdbet_weights)
        if weights is None:
            raise NoInputError(
                "--skull-strip hdbet: HD-BET's weights were not found; download them "
                "(see README) and give --hdbet-weights DIR, or use --skull-strip template"
            )
    elif mode == "template" and stripped:
        reason = f"requested, although the input looks skull-stripped ({evidence})"
    elif mode == "none" and not stripped:
        reason = f"requested, although the input does not look skull-stripped ({evidence})"
    return AnatomicalOptions(
        skull_strip=mode,
        skull_strip_reason=reason,
        hdbet_weights=weights,
        user_mask=user_mask,
        device="cpu" if config.resources.device == "auto" else config.resources.device,
        sloppy=config.sloppy,
        seed=config.seed,
        templateflow_home=config.participant.templateflow_home,
        cnn_normalisation=config.participant.cnn_normalisation,
        features=config.participant.features,
        atlas=config.participant.atlas,
        radiomics_rois=config.participant.radiomics_rois,
        thickness_preset=config.participant.thickness_preset,
        nprocs=config.resources.nprocs,
    )


def _sources(inputs: SessionInputs) -> list[Path]:
    """Return the input files a session uses: the first T1w, FLAIR, T2w and lesion mask."""
    others = (inputs.flair, inputs.t2w, inputs.lesion_masks)
    return [inputs.t1w[0]] + [files[0] for files in others if files]


def process_session(
    inputs: SessionInputs, config: Config, writer: DerivativesWriter, work_dir: Path
) -> SessionOutcome:
    """Run and write one subject/session; failures are returned, not raised.

    Parameters
    ----------
    inputs : SessionInputs
        The session's inputs.
    config : Config
        The run configuration.
    writer : DerivativesWriter
        The output dataset.
    work_dir : Path
        The work folder.

    Returns
    -------
    SessionOutcome
        Done, skipped (already complete) or failed with the reason.
    """
    if not inputs.usable:
        return SessionOutcome(inputs.key, "failed", "no T1w image in this session")
    try:
        options = resolve_options(inputs, load_image(inputs.t1w[0]), config)
    except NeuroStratError as exc:
        return SessionOutcome(inputs.key, "failed", f"{type(exc).__name__}: {exc}")
    sources = _sources(inputs)
    params = {
        "step": "anatomical",
        **options.params(),
        # a changed input (size or modification time) is redone
        "sources": {
            str(path.relative_to(config.input.bids_dir)): [
                path.stat().st_size,
                path.stat().st_mtime_ns,
            ]
            for path in sources
        },
    }
    marker = writer.path("qc_metrics", inputs.entities)
    if writer.is_done(marker, params):
        LOGGER.info("%s: outputs exist for these settings, skipped", inputs.key)
        return SessionOutcome(inputs.key, "skipped")
    LOGGER.info(
        "%s: brain extraction %s (%s)", inputs.key, options.skull_strip, options.skull_strip_reason
    )
    workflow = init_participant_wf(inputs, options, work_dir)
    plugin, plugin_args = _plugin(config, inputs.key)
    # nipype's MultiProc calls gc.collect() at every 0.2 s poll while a slot is free; with the
    # imaging stack loaded each collection took ~160 ms, about 250 CPU-s per 1 mm session.
    # Freezing the objects that exist now makes those collections nearly free.
    gc.collect()
    gc.freeze()
    try:
        outputs = _node_results(workflow.run(plugin=plugin, plugin_args=plugin_args))
    except Exception as exc:  # a node failed: nipype wraps the cause, keep it for the summary
        return SessionOutcome(inputs.key, "failed", failure_reason(exc))
    finally:
        gc.unfreeze()
    write_session_outputs(outputs, inputs, options, writer, sources, params)
    return SessionOutcome(inputs.key, "done")


def write_session_outputs(
    outputs: dict,
    inputs: SessionInputs,
    options: AnatomicalOptions,
    writer: DerivativesWriter,
    sources: list[Path],
    params: dict,
) -> None:
    """Write a finished workflow's results as derivatives; the QC JSON last (the marker).

    Parameters
    ----------
    outputs : dict
        Node name to its result outputs.
    inputs : SessionInputs
        The session.
    options : AnatomicalOptions
        The resolved settings.
    writer : DerivativesWriter
        The output dataset.
    sources : list of Path
        The input files.
    params : dict
        The parameters recorded in every sidecar.
    """
    entities = inputs.entities
    t1w_source = [inputs.t1w[0]]
    mni = {"Space": TEMPLATE_SPACE, "Resolution": f"{options.resolution} mm"}

    def image(output: str, path: str, source: list[Path], **metadata) -> None:
        writer.write_image(
            nib.load(path), output, entities, sources=source, params=params, metadata=metadata
        )

    def copy(output: str, path: str, source: list[Path], **metadata) -> None:
        writer.copy_file(
            Path(path), output, entities, sources=source, params=params, metadata=metadata
        )

    segment, to_template = outputs["segment"], outputs["to_template"]
    image(
        "t1w_preproc",
        outputs["n4_brain"].out_file,
        t1w_source,
        SkullStripped=False,
        Conform=outputs["conform_t1w"].report,
    )
    image("brain_mask", segment.out_mask, t1w_source, Type="Brain", Method=options.skull_strip)
    image("dseg", segment.out_dseg, t1w_source, Labels={"1": "CSF", "2": "GM", "3": "WM"})
    for tissue, path in zip(TISSUES, segment.out_probseg, strict=True):
        image(f"probseg_{tissue.lower()}", path, t1w_source)
    copy("xfm_t1w_to_template", outputs["register"].forward, t1w_source, Format="ANTs field")
    copy("xfm_template_to_t1w", outputs["register"].inverse, t1w_source, Format="ANTs field")
    image("t1w_mni", to_template.t1w_mni, t1w_source, **mni)
    image("brain_mask_mni", to_template.mask_mni, t1w_source, Type="Brain", **mni)
    image("dseg_mni", to_template.dseg_mni, t1w_source, **mni)
    image("logjacobian_mni", to_template.logjacobian_mni, t1w_source, **mni)
    if isdefined(to_template.lesion_mni):
        image("lesion_mni", to_template.lesion_mni, [inputs.lesion_masks[0]], **mni)
    image("t1w_cnn", outputs["cnn_t1w"].out_file, t1w_source, **mni)
    for contrast, files in (("FLAIR", inputs.flair), ("T2w", inputs.t2w)):
        name = contrast.lower()
        if not files or outputs[f"{name}_coregister"].summary["status"] != "ok":
            continue
        other = outputs[f"{name}_coregister"]
        source = [files[0], inputs.t1w[0]]
        image(f"{name}_t1w", other.out_t1w, source, Coregistration=other.quality)
        image(f"{name}_mni", other.out_mni, source, **mni)
        image(f"{name}_cnn", outputs[f"cnn_{name}"].out_file, source, **mni)
        copy(f"xfm_{name}_to_t1w", other.transform, source, Format="ANTs affine")
    _write_features(outputs, inputs, options, writer, params)
    qc = outputs["qc"]
    writer.write_text(writer.report(entities), Path(qc.report).read_text(encoding="utf-8"))
    writer.write_json(
        {
            "Metrics": qc.metrics,
            "Flags": qc.flags,
            "SkullStrip": options.skull_strip,
            "SkullStripReason": options.skull_strip_reason,
        },
        "qc_metrics",
        entities,
        sources=sources,
        params=params,
    )


def _write_features(
    outputs: dict,
    inputs: SessionInputs,
    options: AnatomicalOptions,
    writer: DerivativesWriter,
    params: dict,
) -> None:
    """Write the feature tables (with their data dictionaries) and the feature images."""
    entities, source = inputs.entities, [inputs.t1w[0], *inputs.lesion_masks[:1]]

    def image(output: str, path: str, **metadata) -> None:
        writer.write_image(
            nib.load(path), output, entities, sources=source, params=params, metadata=metadata
        )

    if "atlas_to_t1w" in outputs:
        atlas = outputs["atlas_to_t1w"]
        image("aparcaseg", atlas.aparcaseg, **atlas.sidecar)
    if "thickness" in options.features:
        thickness = outputs["thickness"]
        image(
            "thickness_map", thickness.thickness_map, Units="mm", Method=thickness.sidecar["Method"]
        )
    ids = {"participant_id": f"sub-{inputs.subject}"}
    if inputs.session:
        ids["session_id"] = f"ses-{inputs.session}"
    for family in options.features:
        result = outputs[family]
        table = pd.read_csv(result.table, sep="\t", na_values="n/a", keep_default_na=False)
        for position, (column, value) in enumerate(ids.items()):
            table.insert(position, column, value)
        writer.write_table(
            table,
            writer.path(family, entities),
            sources=source,
            params=params,
            columns=result.sidecar,
        )


def run_participant_level(
    inventory: Sequence[SessionInputs], config: Config, writer: DerivativesWriter
) -> list[SessionOutcome]:
    """Process every subject/session of the inventory; one failure does not stop the others.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        What to process.
    config : Config
        The run configuration.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    list of SessionOutcome
        One per subject/session, in order.
    """
    work_dir = config.work_dir
    configure_nipype(work_dir, config.verbosity)
    if (
        config.participant.skull_strip == "hdbet"
        and find_hdbet_weights(config.participant.hdbet_weights) is None
    ):
        raise NoInputError(
            "--skull-strip hdbet: HD-BET's weights were not found; give --hdbet-weights DIR "
            "(a folder with plans.json, dataset.json and fold_all/checkpoint_final.pth) or use "
            "--skull-strip template"
        )
    outcomes = []
    sessions = _session_outcomes(inventory, config, writer, work_dir)
    for outcome in track(sessions, "participant", LOGGER, total=len(inventory)):
        log = LOGGER.error if outcome.status == "failed" else LOGGER.info
        log(
            "%s: %s%s",
            outcome.key,
            outcome.status,
            f" ({outcome.reason})" if outcome.reason else "",
        )
        outcomes.append(outcome)
    order = {inputs.key: index for index, inputs in enumerate(inventory)}
    return sorted(outcomes, key=lambda outcome: order[outcome.key])


def _session_outcomes(
    inventory: Sequence[SessionInputs], config: Config, writer: DerivativesWriter, work_dir: Path
) -> Iterator[SessionOutcome]:
    """Process the sessions, ``nprocs`` at a time (each one's steps then run one by one).

    The steps of one session mostly wait for each other, so running sessions side by side uses
    the cores better than running one session's graph with MultiProc.
    """
    if config.resources.nprocs == 1 or len(inventory) < 2:
        for inputs in inventory:
            yield process_session(inputs, config, writer, work_dir)
        return
    session_config = config.replace(nprocs=1)
    context = multiprocessing.get_context("fork")
    workers = min(config.resources.nprocs, len(inventory))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(process_session, inputs, session_config, writer, work_dir): inputs
            for inputs in inventory
        }
        for future in as_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # a crashed worker: this session fails, not the run
                yield SessionOutcome(futures[future].key, "failed", f"{type(exc).__name__}: {exc}")
