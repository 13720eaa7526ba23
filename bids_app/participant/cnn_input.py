"""Sub-workflow of the CNN-ready crops in template space (T1w and the other contrasts)."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.participant.interfaces.anatomical import CnnReady
from bids_app.participant.options import AnatomicalOptions


def init_cnn_input_wf(
    options: AnatomicalOptions, contrasts: Sequence[str] = (), name: str = "cnn_input_wf"
) -> pe.Workflow:
    """Brain-mask, normalise and crop the template-space images to the seed's box.

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings (``cnn_normalisation``).
    contrasts : sequence of str
        Other contrasts (``FLAIR``, ``T2w``) to crop besides the T1w.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``mask_mni``, ``t1w_mni`` and ``<contrast>_mni`` (lower case); outputs
        ``t1w_cnn`` and ``<contrast>_cnn`` (undefined where the contrast's co-registration
        failed).

    Examples
    --------
    >>> wf = init_cnn_input_wf(AnatomicalOptions("template", "requested"), ["T2w"])
    >>> sorted(wf.list_node_names())
    ['cnn_t1w', 'cnn_t2w', 'inputnode', 'outputnode']
    """
    images = ["t1w"] + [contrast.lower() for contrast in contrasts]
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["mask_mni"] + [f"{image}_mni" for image in images]),
        name="inputnode",
    )
    outputnode = pe.Node(
        niu.IdentityInterface(fields=[f"{image}_cnn" for image in images]), name="outputnode"
    )
    for image in images:
        cnn = pe.Node(
            CnnReady(normalisation=options.cnn_normalisation, **options.template),
            name=f"cnn_{image}",
            mem_gb=0.5,
        )
        workflow.connect([
            (inputnode, cnn, [(f"{image}_mni", "in_file"), ("mask_mni", "mask_mni")]),
            (cnn, outputnode, [("out_file", f"{image}_cnn")]),
        ])  # fmt: skip
    return workflow
