"""Sub-workflow of the feature families: volumes, cortical thickness, radiomics, histogram."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from bids_app.participant.interfaces.features import (
    AtlasToT1w,
    Histogram,
    MeshNetParcellation,
    Radiomics,
    Thickness,
    Volumes,
)
from bids_app.participant.options import MESHNET_FAMILY, MESHNET_MODEL, AnatomicalOptions

#: Families that need the atlas on the T1w grid.
_ATLAS_FAMILIES = frozenset({"volumes", "thickness", "radiomics"})


def init_features_wf(
    options: AnatomicalOptions, lesion: bool = False, name: str = "features_wf"
) -> pe.Workflow:
    """Compute the feature families of ``options.families`` from the segmented T1w.

    ``volumes`` follows ``--segmentation``: the atlas route's ``volumes`` table and/or the
    MeshNet parcellation (``meshnet`` node) with its ``meshnet`` table, its ``Brain-Stem``
    class split into midbrain, pons and medulla through the registration (``inverse``).

    Parameters
    ----------
    options : AnatomicalOptions
        Resolved settings (families, atlas, radiomics regions, thickness preset, processes).
    lesion : bool
        Count the lesion mask in the volumes and radiomics.
    name : str
        Name of the workflow.

    Returns
    -------
    nipype.pipeline.engine.Workflow
        Inputs ``t1w`` (conformed head), ``t1w_preproc``, ``brain_mask``, ``dseg``,
        ``probseg``, ``inverse`` (template-to-T1w field) and ``lesion``; outputs
        ``aparcaseg``, ``thickness_map`` and one table per family (``volumes``, ``thickness``,
        ``radiomics``, ``histogram``, ``meshnet``).

    Examples
    --------
    >>> options = AnatomicalOptions("template", "requested", features=("volumes", "histogram"))
    >>> sorted(init_features_wf(options).list_node_names())
    ['atlas_to_t1w', 'histogram', 'inputnode', 'outputnode', 'volumes']
    """
    workflow = pe.Workflow(name=name)
    inputnode = pe.Node(
        niu.IdentityInterface(
            fields=["t1w", "t1w_preproc", "brain_mask", "dseg", "probseg", "inverse", "lesion"]
        ),
        name="inputnode",
    )
    families = set(options.families)
    outputnode = pe.Node(
        niu.IdentityInterface(fields=["aparcaseg", "thickness_map", *sorted(families)]),
        name="outputnode",
    )
    if families & _ATLAS_FAMILIES:
        atlas = pe.Node(
            AtlasToT1w(
                atlas=options.atlas, templateflow_home=options.template["templateflow_home"]
            ),
            name="atlas_to_t1w",
            mem_gb=1.5,
        )
        workflow.connect([
            (inputnode, atlas, [("t1w_preproc", "t1w"), ("inverse", "inverse")]),
            (atlas, outputnode, [("aparcaseg", "aparcaseg")]),
        ])  # fmt: skip
    if "volumes" in families:
        node = pe.Node(Volumes(atlas=options.atlas), name="volumes", mem_gb=1.5)
        workflow.connect([
            (inputnode, node, [
                ("probseg", "probseg"),
                ("brain_mask", "brain_mask"),
                ("dseg", "dseg"),
            ]),
            (atlas, node, [("aparcaseg", "aparcaseg"), ("atlas_labels", "atlas_labels")]),
        ])  # fmt: skip
        if lesion:
            workflow.connect(inputnode, "lesion", node, "lesion")
    if "thickness" in families:
        node = pe.Node(
            Thickness(preset=options.thickness_preset, n_jobs=options.nprocs),
            name="thickness",
            mem_gb=2.0,
            n_procs=options.nprocs,
        )
        workflow.connect([
            (inputnode, node, [("dseg", "dseg"), ("probseg", "probseg")]),
            (atlas, node, [("aparcaseg", "aparcaseg")]),
            (node, outputnode, [("thickness_map", "thickness_map")]),
        ])  # fmt: skip
    if "radiomics" in families:
        node = pe.Node(Radiomics(rois=list(options.radiomics_rois)), name="radiomics", mem_gb=2.0)
        if options.sloppy:  # 2 mm instead of the 1 mm of 000 (8 times fewer voxels)
            node.inputs.spacing_mm = 2.0
        workflow.connect([
            (inputnode, node, [("t1w_preproc", "t1w"), ("brain_mask", "brain_mask")]),
            (atlas, node, [("aparcaseg", "aparcaseg")]),
        ])  # fmt: skip
        if lesion:
            workflow.connect(inputnode, "lesion", node, "lesion")
    if MESHNET_FAMILY in families:
        node = pe.Node(
            MeshNetParcellation(
                models_dir=str(options.models_dir),
                model=MESHNET_MODEL,
                device=options.device,
                precision=options.parcellation_precision,
            ),
            name=MESHNET_FAMILY,
            mem_gb=4.0,
        )
        workflow.connect([
            (inputnode, node, [
                ("t1w", "t1w"),
                ("brain_mask", "brain_mask"),
                ("inverse", "inverse"),  # the brain stem's parts are found in MNI152 space
            ]),
        ])  # fmt: skip
    if "histogram" in families:
        raw = options.histogram_scale == "raw"  # Turrisi 2024 Figure 3: the scanner's values
        node = pe.Node(Histogram(scale=options.histogram_scale), name="histogram", mem_gb=0.5)
        workflow.connect([
            (inputnode, node, [
                ("t1w" if raw else "t1w_preproc", "t1w"),
                ("brain_mask", "brain_mask"),
                ("probseg", "probseg"),
            ]),
        ])  # fmt: skip
    for family in sorted(families):
        workflow.connect(workflow.get_node(family), "table", outputnode, family)
    return workflow
