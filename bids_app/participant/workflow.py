"""The participant workflow of one subject and session, composed of small sub-workflows.

The workflow computes into the work folder (nipype caches every node there, so a re-run resumes);
the results are then written by the derivatives writer, which alone decides their names.
"""

from __future__ import annotations

from pathlib import Path

from nipype.pipeline import engine as pe

from bids_app.inputs.inventory import SessionInputs
from bids_app.participant.anatomical import init_anat_preproc_wf, init_segmentation_wf
from bids_app.participant.cnn_input import init_cnn_input_wf
from bids_app.participant.coregistration import init_coregistration_wf
from bids_app.participant.features import init_features_wf
from bids_app.participant.options import AnatomicalOptions
from bids_app.participant.qc import init_qc_wf
from bids_app.participant.registration import init_registration_wf, init_template_space_wf


def init_participant_wf(
    inputs: SessionInputs, options: AnatomicalOptions, work_dir: Path
) -> pe.Workflow:
    """Build the anatomical workflow of one subject and session.

    Conform, N4 on the head, brain extraction (HD-BET, template, none or a user mask)
    (``anat_preproc_wf``); registration to the template (affine + SyN) and the warped template
    mask (``registration_wf``); N4 inside the brain and Atropos with template priors, refining
    the template mask (``segmentation_wf``); template-space resampling with the log-Jacobian
    (``template_space_wf``); FLAIR/T2w co-registration (``coregistration_wf``); CNN-ready crops
    (``cnn_input_wf``); the feature families (``features_wf``) and the QC report (``qc_wf``).
    Each node caches in ``work_dir``, so a re-run resumes after the last finished step.

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
        The workflow; the outputs are read from its nodes by
        :func:`bids_app.participant.run.process_session`.
    """
    workflow = pe.Workflow(name=f"{inputs.key.replace('-', '_')}_wf", base_dir=str(work_dir))
    lesion = bool(inputs.lesion_masks)
    others = {c: files[0] for c, files in (("FLAIR", inputs.flair), ("T2w", inputs.t2w)) if files}

    anat_preproc_wf = init_anat_preproc_wf(options, lesion=lesion)
    anat_preproc_wf.inputs.inputnode.t1w = str(inputs.t1w[0])
    if lesion:
        anat_preproc_wf.inputs.inputnode.lesion_mask = str(inputs.lesion_masks[0])
    registration_wf = init_registration_wf(options)
    segmentation_wf = init_segmentation_wf(options)
    template_space_wf = init_template_space_wf(options, lesion=lesion)
    cnn_input_wf = init_cnn_input_wf(options, tuple(others))
    qc_wf = init_qc_wf(options, f"NeuroStrat: {inputs.key}", other=bool(others))
    workflow.connect([
        (anat_preproc_wf, registration_wf, [
            ("outputnode.t1w", "inputnode.t1w"),
            ("outputnode.t1w_n4", "inputnode.t1w_n4"),
        ]),
        (anat_preproc_wf, segmentation_wf, [("outputnode.t1w", "inputnode.t1w")]),
        (registration_wf, segmentation_wf, [("outputnode.inverse", "inputnode.inverse")]),
        (segmentation_wf, template_space_wf, [
            ("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
            ("outputnode.brain_mask", "inputnode.brain_mask"),
            ("outputnode.dseg", "inputnode.dseg"),
        ]),
        (registration_wf, template_space_wf, [("outputnode.forward", "inputnode.forward")]),
        (template_space_wf, cnn_input_wf, [
            ("outputnode.t1w_mni", "inputnode.t1w_mni"),
            ("outputnode.mask_mni", "inputnode.mask_mni"),
        ]),
        (segmentation_wf, qc_wf, [
            ("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
            ("outputnode.brain_mask", "inputnode.brain_mask"),
            ("outputnode.dseg", "inputnode.dseg"),
        ]),
        (registration_wf, qc_wf, [
            ("outputnode.template_probability", "inputnode.template_probability"),
        ]),
        (template_space_wf, qc_wf, [("outputnode.t1w_mni", "inputnode.t1w_mni")]),
    ])  # fmt: skip
    if options.skull_strip == "template":  # the warped template mask is the brain extraction
        workflow.connect([
            (registration_wf, segmentation_wf, [
                ("outputnode.template_mask", "inputnode.brain_mask"),
                ("outputnode.template_probability", "inputnode.template_probability"),
            ]),
        ])  # fmt: skip
    else:
        workflow.connect([
            (anat_preproc_wf, registration_wf, [("outputnode.brain_mask", "inputnode.brain_mask")]),
            (anat_preproc_wf, segmentation_wf, [("outputnode.brain_mask", "inputnode.brain_mask")]),
        ])  # fmt: skip
    if lesion:
        workflow.connect(anat_preproc_wf, "outputnode.lesion", template_space_wf, "inputnode.lesion")
    if others:
        _connect_coregistration(workflow, options, others, lesion)
    if options.features:
        features_wf = init_features_wf(options, lesion=lesion)
        workflow.connect([
            (segmentation_wf, features_wf, [
                ("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                ("outputnode.brain_mask", "inputnode.brain_mask"),
                ("outputnode.dseg", "inputnode.dseg"),
                ("outputnode.probseg", "inputnode.probseg"),
            ]),
            (registration_wf, features_wf, [("outputnode.inverse", "inputnode.inverse")]),
        ])  # fmt: skip
        if lesion:
            workflow.connect(anat_preproc_wf, "outputnode.lesion", features_wf, "inputnode.lesion")
    return workflow


def _connect_coregistration(
    workflow: pe.Workflow, options: AnatomicalOptions, others: dict[str, Path], lesion: bool
) -> None:
    """Add the co-registration of the other contrasts, feeding the CNN crops and the QC."""
    coregistration_wf = init_coregistration_wf(options, tuple(others), lesion=lesion)
    for contrast, path in others.items():
        setattr(coregistration_wf.inputs.inputnode, contrast.lower(), str(path))
    get = workflow.get_node
    workflow.connect([
        (get("segmentation_wf"), coregistration_wf, [
            ("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
            ("outputnode.brain_mask", "inputnode.brain_mask"),
        ]),
        (get("registration_wf"), coregistration_wf, [("outputnode.forward", "inputnode.forward")]),
        (coregistration_wf, get("cnn_input_wf"), [
            (f"outputnode.{contrast.lower()}_mni", f"inputnode.{contrast.lower()}_mni")
            for contrast in others
        ]),
        (coregistration_wf, get("qc_wf"), [("outputnode.summaries", "inputnode.summaries")]),
    ])  # fmt: skip
    if lesion:
        workflow.connect(
            get("anat_preproc_wf"), "outputnode.lesion", coregistration_wf, "inputnode.lesion"
        )
