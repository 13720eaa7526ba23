"""Sub-workflow of the CNN-ready crops in template space (T1w and the other contrasts)."""

from __future__ import annotations

from collections.abc import Sequence

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.participant.interfaces.anatomical import AffineToTemplate, CnnReady
from bids_app.participant.options import AnatomicalOptions


def init_cnn_input_wf(
    options: AnatomicalOptions, contrasts: Sequence[str] = (), name: str = "cnn_input_wf"
) -> pe.Workflow:
    """Brain-mask, normalise and crop the template-space images to the seed's box.

    With ``cnn_space="nonlinear"`` the crops are cut from the template-space images of the
    whole registration (affine + SyN). With ``cnn_space="affine"`` the T1w-space images and the
    brain mask are first resampled through the registration's affine stage only, as the FLIRT
    registration of Coll et al. (2023, §2.2): the subject's atrophy stays in the crop. The other
    contrasts then go through their T1w-space images (rigid co-registration, then the affine).
    A quantitative map (a contrast with a range, :meth:`AnatomicalOptions.value_range`) is
    resampled linearly, then clipped to its range and scaled to [0, 1] instead of
    ``cnn_normalisation`` (Lu 2023 §II.A).

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings (``cnn_normalisation``, ``cnn_space``).
    contrasts : sequence of str
        Other contrasts (``FLAIR``, ``T2w``, quantitative maps such as ``T1map``) to crop
        besides the T1w.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``mask_mni``, ``t1w_mni`` and ``<contrast>_mni`` (lower case; nonlinear), or
        ``affine``, ``brain_mask``, ``t1w_preproc`` and ``<contrast>_t1w`` (affine); outputs
        ``t1w_cnn`` and ``<contrast>_cnn`` (undefined where the contrast's co-registration
        failed).

    Examples
    --------
    >>> wf = init_cnn_input_wf(AnatomicalOptions("template", "requested"), ["T2w"])
    >>> sorted(wf.list_node_names())
    ['cnn_t1w', 'cnn_t2w', 'inputnode', 'outputnode']
    >>> wf = init_cnn_input_wf(
    ...     AnatomicalOptions("template", "requested", cnn_space="affine"), ["T2w"]
    ... )
    >>> sorted(wf.list_node_names())  # doctest: +NORMALIZE_WHITESPACE
    ['affine_mask', 'affine_t1w', 'affine_t2w', 'cnn_t1w', 'cnn_t2w', 'inputnode',
     'outputnode']
    """
    ranges = {"t1w": None} | {c.lower(): options.value_range(c) for c in contrasts}
    images = list(ranges)
    affine = options.cnn_space == "affine"
    if affine:
        fields = ["affine", "brain_mask", "t1w_preproc"] + [f"{i}_t1w" for i in images[1:]]
    else:
        fields = ["mask_mni"] + [f"{image}_mni" for image in images]
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    outputnode = pe.Node(
        niu.IdentityInterface(fields=[f"{image}_cnn" for image in images]), name="outputnode"
    )
    if affine:
        mask = pe.Node(
            AffineToTemplate(mask=True, **options.template), name="affine_mask", mem_gb=0.5
        )
        workflow.connect([
            (inputnode, mask, [("brain_mask", "in_file"), ("affine", "affine")]),
        ])  # fmt: skip
    for image in images:
        value_range = {} if ranges[image] is None else {"value_range": ranges[image]}
        cnn = pe.Node(
            CnnReady(normalisation=options.cnn_normalisation, **value_range, **options.template),
            name=f"cnn_{image}",
            mem_gb=0.5,
        )
        if affine:
            source = "t1w_preproc" if image == "t1w" else f"{image}_t1w"
            to_template = pe.Node(
                AffineToTemplate(quantitative=ranges[image] is not None, **options.template),
                name=f"affine_{image}",
                mem_gb=0.5,
            )
            workflow.connect([
                (inputnode, to_template, [(source, "in_file"), ("affine", "affine")]),
                (to_template, cnn, [("out_file", "in_file")]),
                (mask, cnn, [("out_file", "mask_mni")]),
            ])  # fmt: skip
        else:
            workflow.connect([
                (inputnode, cnn, [(f"{image}_mni", "in_file"), ("mask_mni", "mask_mni")]),
            ])  # fmt: skip
        workflow.connect(cnn, "out_file", outputnode, f"{image}_cnn")
    return workflow
