"""The report of the attention analyses: the Coll 2023 Fig. 5 composite of the group means."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bids_app.group.attention import AttentionResult
from bids_app.reports.attention import group_maps_figure, render_attention

SHAPE = (12, 14, 10)
AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _group_maps(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Every Fig. 5 map for TP, FP and FN; TN too small to regress (no R² maps)."""
    rng = np.random.default_rng(seed)
    maps = {}
    for group in ("TN", "FN", "TP", "FP"):  # not in Fig. 5's order
        means = {
            "T1w": rng.uniform(0, 1, SHAPE),
            "lesion": rng.uniform(0, 0.3, SHAPE),
            "jacobian": rng.uniform(0.8, 1.2, SHAPE),
            "relevance": rng.normal(0, 1, SHAPE),
        }
        if group != "TN":
            means |= {
                "r2": rng.uniform(0, 0.2, SHAPE),
                "partialr2_lesion": rng.uniform(0, 0.1, SHAPE),
                "partialr2_log_jacobian": rng.uniform(0, 0.1, SHAPE),
            }
        maps[group] = {k: v.astype(np.float32) for k, v in means.items()}
    return maps


def _result(group_maps) -> AttentionResult:
    zeros = np.zeros(SHAPE, np.float32)
    regions = pd.DataFrame({"region": ["a"], "mean_relevance": [1.0], "label": [1]})
    return AttentionResult(
        network="resnet3d",
        atlas="desikan-killiany",
        counts={"TP": 6, "FP": 5, "TN": 3, "FN": 5},
        shown="TP",
        regions=regions,
        average=zeros + 1,
        mean_crop=zeros + 0.5,
        example=zeros + 1,
        example_crop=zeros + 0.5,
        example_subject="sub-001",
        affine=AFFINE,
        inversion=pd.DataFrame({"quantile": [0.9], "auc_relevance": [0.6]}),
        regression=None,
        regression_lesions=False,
        spearman=None,
        score="edss",
        group_maps=group_maps,
    )


def test_fig5_rows_are_the_groups_and_columns_the_maps():
    figure = group_maps_figure(_group_maps(), np.full(SHAPE, 0.5, np.float32), AFFINE)
    axes = np.array(figure.axes[: 4 * 7]).reshape(4, 7)
    titles = [axis.get_title() for axis in axes[0]]
    assert titles == [
        "mean T1w",
        "lesion share",
        "Jacobian − 1",
        "mean LRP",
        "R²",
        "partial R² lesion",
        "partial R² log_jacobian",
    ]
    rows = [next(t.get_text() for t in axis.texts) for axis in axes[:, 0]]
    assert rows == ["TP", "FP", "TN", "FN"]  # Coll 2023 Fig. 5's order
    # the TN group had no regression: its R² cells say so, the others hold a map
    assert [t.get_text() for t in axes[2, 4].texts] == ["too few\nsubjects"]
    assert not axes[0, 4].texts
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    assert buffer.tell() > 10_000


def test_fig5_is_embedded_in_the_report_when_the_maps_exist():
    part = render_attention(_result(_group_maps()))
    outputs = {figure.output: figure for figure in part.figures}
    assert outputs["figure_deep_group_maps"].fields == {"network": "resnet3d"}
    assert outputs["figure_deep_group_maps"].png[:8] == b"\x89PNG\r\n\x1a\n"
    html = part.sections[0][1]
    assert "Coll 2023 Fig. 5" in html
    assert 'alt="mean maps per prediction group (Coll 2023 Fig. 5)"' in html
    # without the maps, no composite
    assert "figure_deep_group_maps" not in {f.output for f in render_attention(_result({})).figures}


@pytest.mark.parametrize("missing", ["lesion", "jacobian"])
def test_fig5_leaves_out_the_inputs_that_do_not_exist(missing):
    maps = {g: {k: v for k, v in m.items() if k != missing} for g, m in _group_maps().items()}
    figure = group_maps_figure(maps, np.full(SHAPE, 0.5, np.float32), AFFINE)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert len(titles) == 6 and "mean LRP" in titles
    plt.close(figure)
