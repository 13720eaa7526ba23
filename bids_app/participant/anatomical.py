"""Sub-workflows of the T1w in its own space: preprocessing, then brain N4 and segmentation."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.participant.interfaces.anatomical import (
    N4,
    ConformMask,
    HDBet,
    MaskFromNonzero,
    MindGrab,
    SegmentTissues,
)
from bids_app.participant.interfaces.conform import Conform
from bids_app.participant.options import AnatomicalOptions


def init_anat_preproc_wf(
    options: AnatomicalOptions, lesion: bool = False, name: str = "anat_preproc_wf"
) -> pe.Workflow:
    """Conform the T1w, correct its bias over the head and extract the brain.

    The brain mask comes from HD-BET, mindgrab, a user mask or the non-zero voxels of a
    skull-stripped input; with ``skull_strip="template"`` it comes later, from the registration,
    and the ``brain_mask`` output stays unconnected.

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings.
    lesion : bool
        Conform a lesion mask onto the T1w grid as well.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``t1w`` (the raw T1w) and ``lesion_mask``; outputs ``t1w`` (conformed),
        ``t1w_n4`` (bias-corrected head), ``brain_mask`` and ``lesion`` (on the T1w grid).

    Examples
    --------
    >>> wf = init_anat_preproc_wf(AnatomicalOptions("none", "requested"), lesion=True)
    >>> sorted(wf.list_node_names())
    ['conform_t1w', 'inputnode', 'lesion', 'n4_head', 'nonzero_mask', 'outputnode']
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w", "lesion_mask"]), name="inputnode")
    outputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w", "t1w_n4", "brain_mask", "lesion"]), name="outputnode"
    )
    conform_t1w = pe.Node(Conform(), name="conform_t1w", mem_gb=0.5)
    n4_head = pe.Node(N4(preset=options.n4_preset), name="n4_head", mem_gb=1.0)
    workflow.connect([
        (inputnode, conform_t1w, [("t1w", "in_file")]),
        (conform_t1w, n4_head, [("out_file", "in_file")]),
        (conform_t1w, outputnode, [("out_file", "t1w")]),
        (n4_head, outputnode, [("out_file", "t1w_n4")]),
    ])  # fmt: skip
    if options.skull_strip != "template":
        mask, conformed, out = _brain_mask_node(options)
        workflow.connect([
            (conform_t1w, mask, [("out_file", conformed)]),
            (mask, outputnode, [(out, "brain_mask")]),
        ])  # fmt: skip
    if lesion:
        conform_lesion = pe.Node(ConformMask(empty_ok=True), name="lesion")
        workflow.connect([
            (inputnode, conform_lesion, [("lesion_mask", "in_file")]),
            (conform_t1w, conform_lesion, [("out_file", "reference")]),
            (conform_lesion, outputnode, [("out_file", "lesion")]),
        ])  # fmt: skip
    return workflow


def _brain_mask_node(options: AnatomicalOptions) -> tuple[pe.Node, str, str]:
    """Return the node giving the brain mask, its conformed-T1w input and its mask output."""
    if options.skull_strip == "hdbet":
        hdbet = HDBet(device=options.device)
        if options.hdbet_version == "v2":
            hdbet.inputs.weights_dir = str(options.hdbet_weights)
        else:
            hdbet.inputs.mode = options.hdbet_mode
            hdbet.inputs.tta = options.hdbet_tta
            hdbet.inputs.precision = options.precision
        node = pe.Node(hdbet, name="hdbet", mem_gb=4.0)
        return node, "in_file", "out_mask"
    if options.skull_strip == "mindgrab":
        node = pe.Node(
            MindGrab(
                models_dir=str(options.models_dir),
                device=options.device,
                precision=options.precision,
            ),
            name="mindgrab",
            mem_gb=4.0,
        )
        return node, "in_file", "out_mask"
    if options.skull_strip == "user":
        node = pe.Node(ConformMask(in_file=str(options.user_mask)), name="user_mask")
        return node, "reference", "out_file"
    return pe.Node(MaskFromNonzero(), name="nonzero_mask", mem_gb=0.5), "in_file", "out_mask"


def init_segmentation_wf(options: AnatomicalOptions, name: str = "segmentation_wf") -> pe.Workflow:
    """Correct the bias inside the brain, then segment with Atropos and the template priors.

    With ``skull_strip="template"`` the segmentation also refines the warped template mask.

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``t1w`` (conformed), ``brain_mask``, ``inverse`` (template-to-T1w field) and
        ``template_probability`` (warped template mask, template mode); outputs ``t1w_preproc``,
        ``brain_mask`` (final), ``dseg`` and ``probseg`` (CSF, GM, WM).

    Examples
    --------
    >>> wf = init_segmentation_wf(AnatomicalOptions("template", "requested"))
    >>> sorted(wf.list_node_names())
    ['inputnode', 'n4_brain', 'outputnode', 'segment']
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w", "brain_mask", "inverse", "template_probability"]),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w_preproc", "brain_mask", "dseg", "probseg"]),
        name="outputnode",
    )
    n4_brain = pe.Node(N4(preset=options.n4_preset), name="n4_brain", mem_gb=1.0)
    segment = pe.Node(SegmentTissues(**options.template), name="segment", mem_gb=2.0)
    workflow.connect([
        (inputnode, n4_brain, [("t1w", "in_file"), ("brain_mask", "mask_file")]),
        (inputnode, segment, [("brain_mask", "mask_file"), ("inverse", "inverse")]),
        (n4_brain, segment, [("out_file", "in_file")]),
        (n4_brain, outputnode, [("out_file", "t1w_preproc")]),
        (segment, outputnode, [
            ("out_mask", "brain_mask"),
            ("out_dseg", "dseg"),
            ("out_probseg", "probseg"),
        ]),
    ])  # fmt: skip
    if options.skull_strip == "template":
        workflow.connect(inputnode, "template_probability", segment, "refine_probability")
    return workflow
