"""Sub-workflow of the other contrasts (FLAIR, T2w, quantitative maps): co-registration."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.participant.interfaces.anatomical import OtherContrast
from bids_app.participant.options import AnatomicalOptions


def init_coregistration_wf(
    options: AnatomicalOptions,
    contrasts: Sequence[str],
    lesion: bool = False,
    name: str = "coregistration_wf",
) -> pe.Workflow:
    """Co-register each other contrast rigidly to the T1w and resample it into the template.

    Each contrast gets N4 and a rigid Mattes registration with the lesions excluded from the
    metric; a failed co-registration is reported in its summary, not raised. A quantitative map
    (a contrast with a range, :meth:`AnatomicalOptions.value_range`) skips N4 and is resampled
    linearly (Lu 2023 §II.A).

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings.
    contrasts : sequence of str
        ``FLAIR``, ``T2w`` and any other BIDS suffix (e.g. ``T1map``), in this order.
    lesion : bool
        Exclude a lesion mask from the registration metric.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``t1w_preproc``, ``brain_mask``, ``forward``, ``lesion`` and one per contrast
        (``flair``, ``t2w``: the raw image); outputs ``<contrast>_mni`` and ``<contrast>_t1w``
        (lower case) and ``summaries`` (one dict per contrast, for the QC report).

    Examples
    --------
    >>> wf = init_coregistration_wf(AnatomicalOptions("template", "requested"), ["FLAIR", "T2w"])
    >>> sorted(wf.list_node_names())
    ['flair_coregister', 'inputnode', 'merge_other', 'outputnode', 't2w_coregister']
    """
    labels = [contrast.lower() for contrast in contrasts]
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w_preproc", "brain_mask", "forward", "lesion", *labels]),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(
            fields=[f"{label}_{space}" for label in labels for space in ("mni", "t1w")]
            + ["summaries"]
        ),
        name="outputnode",
    )
    merge = pe.Node(niu.Merge(len(labels)), name="merge_other", run_without_submitting=True)
    workflow.connect(merge, "out", outputnode, "summaries")
    for index, (contrast, label) in enumerate(zip(contrasts, labels, strict=True), start=1):
        other = pe.Node(
            OtherContrast(
                contrast=contrast,
                quantitative=options.value_range(contrast) is not None,
                preset=options.n4_preset,
                seed=options.seed,
                **options.template,
            ),
            name=f"{label}_coregister",
            mem_gb=1.5,
        )
        workflow.connect([
            (inputnode, other, [
                (label, "in_file"),
                ("t1w_preproc", "t1w"),
                ("brain_mask", "brain_mask"),
                ("forward", "forward"),
            ]),
            (other, merge, [("summary", f"in{index}")]),
            (other, outputnode, [("out_mni", f"{label}_mni"), ("out_t1w", f"{label}_t1w")]),
        ])  # fmt: skip
        if lesion:
            workflow.connect(inputnode, "lesion", other, "lesion")
    return workflow
