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
    (``template_space_wf``); co-registration of the FLAIR, T2w and quantitative maps
    (``coregistration_wf``); CNN-ready crops
    (``cnn_input_wf``, through the whole registration or its affine stage, ``cnn_space``); the
    feature families (``features_wf``) and the QC report (``qc_wf``).
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
    others = inputs.others
    anat_preproc_wf = init_anat_preproc_wf(options, lesion=lesion)
    anat_preproc_wf.inputs.inputnode.t1w = str(inputs.t1w[0])
    if lesion:
        anat_preproc_wf.inputs.inputnode.lesion_mask = str(inputs.lesion_masks[0])
    registration_wf = init_registration_wf(options)
    segmentation_wf = init_segmentation_wf(options)
    template_space_wf = init_template_space_wf(options, lesion=lesion)
    cnn_input_wf = init_cnn_input_wf(options, tuple(others))
    qc_wf = init_qc_wf(options, f"NeuroStrat: {inputs.key}", other=bool(others), lesion=lesion)
    if lesion:
        qc_wf.inputs.inputnode.lesion = str(inputs.lesion_masks[0])
    links = [
        _link(anat_preproc_wf, registration_wf, "t1w", "t1w_n4"),
        _link(anat_preproc_wf, segmentation_wf, "t1w"),
        _link(registration_wf, segmentation_wf, "inverse"),
        _link(segmentation_wf, template_space_wf, "t1w_preproc", "brain_mask", "dseg"),
        _link(registration_wf, template_space_wf, "forward"),
        _link(segmentation_wf, qc_wf, "t1w_preproc", "brain_mask", "dseg"),
        _link(registration_wf, qc_wf, "template_probability"),
        _link(template_space_wf, qc_wf, "t1w_mni"),
    ]
    affine = options.cnn_space == "affine"
    if affine:  # the crops go through the affine stage only (Coll 2023 §2.2)
        links += [
            _link(registration_wf, cnn_input_wf, "affine"),
            _link(segmentation_wf, cnn_input_wf, "t1w_preproc", "brain_mask"),
        ]
    else:
        links.append(_link(template_space_wf, cnn_input_wf, "t1w_mni", "mask_mni"))
    if options.skull_strip == "template":  # the warped template mask is the brain extraction
        links.append(
            _link(
                registration_wf, segmentation_wf, "template_probability", brain_mask="template_mask"
            )
        )
    else:
        links += [
            _link(anat_preproc_wf, registration_wf, "brain_mask"),
            _link(anat_preproc_wf, segmentation_wf, "brain_mask"),
        ]
    if lesion:
        links.append(_link(anat_preproc_wf, template_space_wf, "lesion"))
    if others:
        coregistration_wf = init_coregistration_wf(options, tuple(others), lesion=lesion)
        for contrast, path in others.items():
            setattr(coregistration_wf.inputs.inputnode, contrast.lower(), str(path))
        links += [
            _link(segmentation_wf, coregistration_wf, "t1w_preproc", "brain_mask"),
            _link(registration_wf, coregistration_wf, "forward"),
            _link(
                coregistration_wf,
                cnn_input_wf,
                *(f"{c.lower()}_{'t1w' if affine else 'mni'}" for c in others),
            ),
            _link(coregistration_wf, qc_wf, "summaries"),
        ]
        if lesion:
            links.append(_link(anat_preproc_wf, coregistration_wf, "lesion"))
    if options.families:
        features_wf = init_features_wf(options, lesion=lesion)
        links += [
            _link(anat_preproc_wf, features_wf, "t1w"),
            _link(segmentation_wf, features_wf, "t1w_preproc", "brain_mask", "dseg", "probseg"),
            _link(registration_wf, features_wf, "inverse"),
        ]
        if lesion:
            links.append(_link(anat_preproc_wf, features_wf, "lesion"))
    workflow.connect(links)
    return workflow


def _link(
    source: pe.Workflow, dest: pe.Workflow, *fields: str, **renamed: str
) -> tuple[pe.Workflow, pe.Workflow, list[tuple[str, str]]]:
    """Return a connection from ``source``'s outputnode to ``dest``'s inputnode.

    Parameters
    ----------
    source, dest : nipype.pipeline.engine.Workflow
        The sub-workflows.
    *fields : str
        Fields of the same name on both sides.
    **renamed : str
        Input field of ``dest`` to the output field of ``source`` feeding it.

    Returns
    -------
    tuple
        ``(source, dest, [("outputnode.x", "inputnode.y"), ...])``, for ``Workflow.connect``.
    """
    pairs = [(field, field) for field in fields] + [(out, in_) for in_, out in renamed.items()]
    return source, dest, [(f"outputnode.{out}", f"inputnode.{in_}") for out, in_ in pairs]
