"""Sub-workflows of the template: registration to it, then resampling into it (log-Jacobian)."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.participant.interfaces.anatomical import (
    RegisterToTemplate,
    ResampleToTemplate,
    WarpTemplateMask,
)
from bids_app.participant.options import AnatomicalOptions


def init_registration_wf(options: AnatomicalOptions, name: str = "registration_wf") -> pe.Workflow:
    """Register the T1w to the template (affine + SyN) and warp the template brain mask back.

    The registration uses the brain mask unless ``skull_strip="template"``, where the warped
    template mask is the brain extraction.

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``t1w`` (conformed), ``t1w_n4`` (bias-corrected head) and ``brain_mask``; outputs
        ``forward`` (T1w-to-template field), ``inverse``, ``affine`` (the affine stage alone),
        ``template_mask`` and ``template_probability`` (the template brain mask on the T1w
        grid).

    Examples
    --------
    >>> wf = init_registration_wf(AnatomicalOptions("template", "requested"))
    >>> sorted(wf.list_node_names())
    ['inputnode', 'outputnode', 'register', 'warp_template_mask']
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w", "t1w_n4", "brain_mask"]), name="inputnode"
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=["forward", "inverse", "affine", "template_mask", "template_probability"]
        ),
        name="outputnode",
    )
    register = pe.Node(
        RegisterToTemplate(
            preset=options.registration_preset,
            seed=options.seed,
            templateflow_home=options.template["templateflow_home"],
        ),
        name="register",
        mem_gb=2.0,
    )
    warp_mask = pe.Node(WarpTemplateMask(**options.template), name="warp_template_mask", mem_gb=1.0)
    workflow.connect([
        (inputnode, register, [("t1w_n4", "in_file")]),
        (inputnode, warp_mask, [("t1w", "reference")]),
        (register, warp_mask, [("inverse", "inverse")]),
        (register, outputnode, [
            ("forward", "forward"),
            ("inverse", "inverse"),
            ("affine", "affine"),
        ]),
        (warp_mask, outputnode, [
            ("out_mask", "template_mask"),
            ("out_probability", "template_probability"),
        ]),
    ])  # fmt: skip
    if options.skull_strip != "template":
        workflow.connect(inputnode, "brain_mask", register, "mask_file")
    return workflow


def init_template_space_wf(
    options: AnatomicalOptions, lesion: bool = False, name: str = "template_space_wf"
) -> pe.Workflow:
    """Resample the T1w, its brain mask, labels (and lesion mask) into the template.

    The log-Jacobian of the T1w-to-template field is computed here too.

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings.
    lesion : bool
        Resample a lesion mask as well.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``t1w_preproc``, ``brain_mask``, ``dseg``, ``forward`` and ``lesion``; outputs
        ``t1w_mni``, ``mask_mni``, ``dseg_mni``, ``logjacobian_mni`` and ``lesion_mni``.

    Examples
    --------
    >>> wf = init_template_space_wf(AnatomicalOptions("template", "requested"))
    >>> sorted(wf.list_node_names())
    ['inputnode', 'outputnode', 'to_template']
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w_preproc", "brain_mask", "dseg", "forward", "lesion"]),
        name="inputnode",
    )
    outputs = ["t1w_mni", "mask_mni", "dseg_mni", "logjacobian_mni", "lesion_mni"]
    outputnode = pe.Node(niu.IdentityInterface(fields=outputs), name="outputnode")
    to_template = pe.Node(ResampleToTemplate(**options.template), name="to_template", mem_gb=1.5)
    workflow.connect([
        (inputnode, to_template, [
            ("t1w_preproc", "t1w"),
            ("brain_mask", "brain_mask"),
            ("dseg", "dseg"),
            ("forward", "forward"),
        ]),
        (to_template, outputnode, [(output, output) for output in outputs]),
    ])  # fmt: skip
    if lesion:
        workflow.connect(inputnode, "lesion", to_template, "lesion")
    return workflow
