"""Recipes (``--recipe NAME``): each paper's protocol as one shipped, versioned settings file.

Every recipe must load, give a valid configuration and round-trip through ``--print-config`` and
``--config``; the configuration file and the command line override it, and the overrides are
listed as deviations. End to end, the clustering recipe of Milella et al. 2023 finds planted
subtypes and the classification recipe of the brain-stem proposal a planted group effect, and
neither finds anything in a null cohort; the group report names the recipe and its deviations.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from sklearn.metrics import adjusted_rand_score

from bids_app.cli.errors import ExitCode
from bids_app.cli.main import main, parse_config
from bids_app.config import build_config
from bids_app.config.recipes import deviations, load_recipe, recipe_names
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.models.classifiers import TURRISI_TABLE1
from bids_app.synthetic.crops import make_crop_cohort, write_crop_dataset
from bids_app.synthetic.features import make_feature_cohort
from bids_app.synthetic.subtypes import make_subtype_cohort
from tests.conftest import write_feature_dataset
from tests.test_group_clustering import _write_dataset as write_subtype_dataset

#: The recipes the papers call for (Turrisi et al. 2024, Coll et al. 2023, Milella et al. 2023,
#: Lu et al. 2023 and the brain-stem proposal).
EXPECTED = {
    "turrisi-als-radiomics",
    "coll-ms-attention",
    "milella-als-clusters",
    "lu-gamer-mril",
    "brainstem-als",
}
FOLDERS = {"bids_dir": "/in", "output_dir": "/out", "analysis_level": "group"}


def _printed(capsys, *args: str) -> str:
    assert main([*args, "--print-config"]) == ExitCode.OK
    return capsys.readouterr().out


def test_the_recipes_are_shipped_and_valid():
    assert set(recipe_names()) == EXPECTED
    for name in recipe_names():
        recipe = load_recipe(name)
        assert recipe.version >= 1 and recipe.paper and recipe.summary
        config = build_config({**FOLDERS, "recipe": name}, {})
        assert config.recipe == name and config.recipe_deviations == ()
        values = config.to_dict()
        for key, value in recipe.options.items():  # every option of the file took effect
            shown = values[key]
            assert shown == value or shown == list(value) or str(shown) == str(value), key


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_print_config_round_trips(name, tmp_path, capsys):
    printed = _printed(capsys, "--recipe", name)
    assert f"recipe {name} (version" in printed and "no deviation from the recipe" in printed
    assert yaml.safe_load(printed)["recipe"] == name
    settings = tmp_path / "settings.yaml"
    settings.write_text(printed)
    # read back, the file gives the same configuration and prints the same text
    again = _printed(capsys, "--config", str(settings))
    assert again == printed
    args = [str(tmp_path / "bids"), str(tmp_path / "out"), "group"]
    direct = parse_config([*args, "--recipe", name])
    assert parse_config([*args, "--config", str(settings)]) == direct


def test_overrides_are_deviations(tmp_path, capsys):
    printed = _printed(capsys, "--recipe", "coll-ms-attention", "--cv-folds", "5")
    assert "deviation from the recipe: cv_folds: 5 (recipe: 7)" in printed
    assert yaml.safe_load(printed)["cv_folds"] == 5
    # a categorical target on a recipe with a threshold: the threshold gives way, and is named
    settings = tmp_path / "mine.toml"
    settings.write_text('recipe = "coll-ms-attention"\npositive-label = "ALS"\n')
    config = parse_config(["in", "out", "group", "--config", str(settings), "--target", "dx"])
    assert config.group.threshold is None and config.group.positive_label == "ALS"
    assert config.recipe_deviations == (
        "target: dx (recipe: edss)",
        "threshold: None (recipe: 3.0)",
    )
    # the same value as the recipe's is no deviation
    assert deviations({"cv_folds": 7}, {"cv_folds": 7}) == ()


def test_unknown_recipe_is_a_usage_error(capsys):
    assert main(["in", "out", "group", "--recipe", "nosuch"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "nosuch" in err and "milella-als-clusters" in err


# --- end to end on synthetic cohorts --------------------------------------------------------


def _report(out) -> str:
    return (out / "group" / "report.html").read_text()


@pytest.mark.parametrize("planted", [True, False])
def test_milella_recipe_finds_planted_subtypes_only(planted, tmp_path):
    if planted:
        table, truth = make_subtype_cohort(seed=0)
    else:
        table, truth = make_subtype_cohort(n_patients=60, n_controls=20, subtypes=False, seed=1)
    bids, out = write_subtype_dataset(tmp_path, table)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    assert main([*args, "--recipe", "milella-als-clusters"]) == 0
    report = _report(out)
    assert "Recipe: milella-als-clusters" in report and "No deviation from the recipe" in report
    clusters = pd.read_csv(out / "group" / "clusters.tsv", sep="\t").set_index("participant_id")
    if planted:
        truth = truth.set_axis(table.participant_id).reindex(clusters.index)
        assert adjusted_rand_score(truth, clusters["cluster"]) >= 0.8
    else:
        assert clusters["cluster"].nunique() == 1


def _brainstem_run(tmp_path, effect_size: float, seed: int) -> tuple[pd.DataFrame, str]:
    cohort = make_feature_cohort(n_subjects=60, n_features=8, effect_size=effect_size, seed=seed)
    bids, out = write_feature_dataset(tmp_path, cohort)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    # the synthetic dataset has regional volumes only: the thickness sets are overridden
    args += ["--recipe", "brainstem-als", "--feature-sets", "volumes", "--smote-k", "3"]
    assert main(args) == 0
    folds = pd.read_csv(out / "group" / "classification_folds.tsv", sep="\t")
    return folds, _report(out)


def test_brainstem_recipe_finds_a_planted_effect(tmp_path):
    folds, report = _brainstem_run(tmp_path, effect_size=2.0, seed=7)
    assert set(folds["classifier"]) == {"logistic_regression", "svm_linear", "random_forest"}
    assert folds["fold"].nunique() == 5  # the recipe's 5 folds
    assert folds.groupby("classifier")["auc"].mean().max() > 0.8
    assert "Recipe: brainstem-als" in report
    recipe_sets = "volumes meshnet volumes+thickness meshnet+thickness"
    assert f"feature_sets: volumes (recipe: {recipe_sets})" in report
    assert "no participant-level thickness features" in report  # the gap is named
    assert "no participant-level meshnet features (--segmentation meshnet)" in report


def test_brainstem_recipe_stays_at_chance_on_a_null_cohort(tmp_path):
    folds, _ = _brainstem_run(tmp_path, effect_size=0.0, seed=8)
    mean_auc = folds.groupby("classifier")["auc"].mean()
    assert (abs(mean_auc - 0.5) <= 0.2).all(), mean_auc


def _write_radiomics_dataset(root, cohort):
    """The feature cohort as whole-brain radiomics tables (``brain_<feature>`` columns)."""
    renamed = cohort.features.rename(
        columns=lambda c: c if c in ("participant_id", "session_id") else f"brain_original_{c}"
    )
    bids, out = write_feature_dataset(root, cohort)
    writer = DerivativesWriter(output_dir=out, bids_dir=bids, settings_hash="x")
    for row in renamed.itertuples(index=False):
        entities = {"sub": row.participant_id[4:], "ses": row.session_id[4:]}
        writer.path("volumes", entities).unlink()
        writer.write_table(pd.DataFrame([row._asdict()]), writer.path("radiomics", entities))
    return bids, out


def _turrisi_run(tmp_path, effect_size: float, seed: int) -> pd.DataFrame:
    cohort = make_feature_cohort(n_subjects=60, n_features=8, effect_size=effect_size, seed=seed)
    bids, out = _write_radiomics_dataset(tmp_path, cohort)
    settings = tmp_path / "cpu.yaml"  # no CNN (no crops here), three of the eight classifiers
    settings.write_text(
        "recipe: turrisi-als-radiomics\ndl_models: []\nfeature_sets: [radiomics]\n"
        "classifiers: [svm_poly, knn, random_forest]\nhyperparameters: turrisi2024-table1\n"
    )
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    assert main([*args, "--config", str(settings), "--smote-k", "3"]) == 0
    report = _report(out)
    assert "Recipe: turrisi-als-radiomics" in report
    assert "dl_models: none (recipe: cnn8)" in report
    # Table 1 (sex and age bands with percentages) and Figure 2 (age Q-Q plots) of the paper
    assert "Turrisi 2024 Table 1" in report and "Turrisi 2024 Figure 2" in report
    assert (out / "group" / "demographics_characteristics.tsv").is_file()
    return pd.read_csv(out / "group" / "classification_folds.tsv", sep="\t")


def test_turrisi_recipe_with_table1_finds_a_planted_effect(tmp_path):
    folds = _turrisi_run(tmp_path, effect_size=2.0, seed=7)
    assert folds["fold"].nunique() == 3  # stratified nested 3-fold (§2.4)
    # the hyper-parameters are Table 1's for radiomics, in every fold
    for row in folds.itertuples():
        assert json.loads(row.params) == TURRISI_TABLE1["radiomics"][row.classifier]
    assert folds[folds.classifier == "svm_poly"]["auc"].mean() > 0.8  # the paper's best model


def test_turrisi_recipe_stays_at_chance_on_a_null_cohort(tmp_path):
    folds = _turrisi_run(tmp_path, effect_size=0.0, seed=8)
    mean_auc = folds.groupby("classifier")["auc"].mean()
    assert (abs(mean_auc - 0.5) <= 0.2).all(), mean_auc


#: CPU settings of the deep recipes' test: a narrow network, a few epochs, three folds (each a
#: deviation, listed in the report).
CPU_DEEP = ["--dl-base-width", "4", "--dl-epochs", "4", "--dl-batch-size", "2"]
CPU_DEEP += ["--no-dl-validation", "--cv-folds", "3", "--smote-k", "3", "--dl-contrasts", "T1w"]


@pytest.mark.long
@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    ("recipe", "network", "rule"),
    [("coll-ms-attention", "resnet3d", "alpha1beta0"), ("lu-gamer-mril", "gamer", "composite")],
)
def test_deep_recipes_run_their_networks(recipe, network, rule, tmp_path):
    cohort = make_crop_cohort(24, atrophy=0.8, seed=3)
    bids, out = write_crop_dataset(cohort, tmp_path)
    args = [str(bids), str(out), "group", "--skip-bids-validation", "-w", str(tmp_path / "w")]
    # the synthetic cohort has a diagnosis, not an EDSS, and CNN-ready T1w crops only
    args += ["--recipe", recipe, "--target", "diagnosis", "--positive-label", "ALS"]
    args += ["--feature-sets", f"deep_{network}", *CPU_DEEP]
    assert main(args) == 0
    folds = pd.read_csv(out / "group" / "deep_folds.tsv", sep="\t")
    assert set(folds["classifier"]) == {network}
    if network == "resnet3d":  # learns the planted precentral atrophy in 4 CPU epochs
        assert folds["auc"].mean() >= 0.8, folds
    else:  # GAMER does not in so few epochs: tests/test_gamer_mril.py plants a larger effect
        assert (out / "group" / f"deep_{network}_attention_summary.tsv").is_file()
    card = json.loads(next((out / "group").rglob("model_card.json")).read_text())
    assert card["lrp_rule"] == rule and card["preset"] == load_recipe(recipe).options["dl_preset"]
    report = _report(out)
    assert f"Recipe: {recipe}" in report and "threshold: None (recipe: " in report
