"""Sub-workflow of the quality control: metrics, flags and the session's HTML report."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.derivatives.naming import TEMPLATE_SPACE
from bids_app.participant.interfaces.anatomical import QualityReport
from bids_app.participant.options import AnatomicalOptions
from bids_app.preprocessing.cnn_input import CNN_BOX_MM
from bids_app.preprocessing.registration import REGISTRATION_PRESETS


def init_qc_wf(
    options: AnatomicalOptions,
    title: str,
    other: bool = False,
    lesion: bool = False,
    name: str = "qc_wf",
) -> pe.Workflow:
    """Measure the session's quality, flag what is off and render its report.

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings (described in the report's methods).
    title : str
        Title of the report.
    other : bool
        Show the co-registered contrasts (input ``summaries``).
    lesion : bool
        Flag a lesion mask lying outside the brain mask (input ``lesion``: the input mask).
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``t1w_preproc``, ``brain_mask``, ``dseg``, ``template_probability``, ``t1w_mni``,
        ``summaries`` and ``lesion``; outputs ``metrics``, ``flags`` and ``report`` (HTML file).

    Examples
    --------
    >>> wf = init_qc_wf(AnatomicalOptions("template", "requested"), "NeuroStrat: sub-01")
    >>> sorted(wf.list_node_names())
    ['inputnode', 'outputnode', 'qc']
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=[
                "t1w_preproc",
                "brain_mask",
                "dseg",
                "template_probability",
                "t1w_mni",
                "summaries",
                "lesion",
            ]
        ),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(fields=["metrics", "flags", "report"]), name="outputnode"
    )
    qc = pe.Node(
        QualityReport(title=title, provenance=provenance(options), **options.template),
        name="qc",
        mem_gb=1.0,
    )
    workflow.connect([
        (inputnode, qc, [
            ("t1w_preproc", "t1w"),
            ("brain_mask", "brain_mask"),
            ("dseg", "dseg"),
            ("template_probability", "template_probability"),
            ("t1w_mni", "t1w_mni"),
        ]),
        (qc, outputnode, [("metrics", "metrics"), ("flags", "flags"), ("report", "report")]),
    ])  # fmt: skip
    if other:
        workflow.connect(inputnode, "summaries", qc, "other")
    if lesion:
        workflow.connect(inputnode, "lesion", qc, "lesion")
    return workflow


def provenance(options: AnatomicalOptions) -> dict[str, str]:
    """Return the methods text of the QC report, one entry per step.

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings.

    Returns
    -------
    dict of str to str
        Step to the method used.
    """
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
            f"{' x '.join(map(str, CNN_BOX_MM))} mm (Coll 2023 §2.3), resampled through the "
            + (
                "affine stage of the registration only (Coll 2023 §2.2)."
                if options.cnn_space == "affine"
                else "whole registration (affine + SyN)."
            )
        ),
    }
