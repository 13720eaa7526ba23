"""The group level: assemble the participants table, describe the groups, write the report."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from bids_app.config import FEATURE_FAMILIES, Config
from bids_app.config.recipes import load_recipe
from bids_app.deep.devices import resolve_device
from bids_app.derivatives.naming import sidecar_path
from bids_app.derivatives.writer import DerivativesWriter
from bids_app.errors import DataError, NoInputError
from bids_app.group.attention import AttentionResult, run_attention_analyses
from bids_app.group.classification import (
    check_target,
    class_names,
    covariates_for,
    default_feature_sets,
    load_saved_models,
    run_apply_models,
    run_classification,
    target_of,
)
from bids_app.group.clustering import run_clustering
from bids_app.group.deep_learning import (
    DeepOutcome,
    collect_crops,
    crop_space,
    pretrained_features,
    run_deep_learning,
)
from bids_app.group.longitudinal import (
    TIMELINE_COLUMNS,
    check_times,
    subject_rows,
    uses_rates,
    wants_subject_rows,
    with_exclusions,
)
from bids_app.group.network_validation import (
    NetworkValidation,
    collect_votes,
    validate_networks,
)
from bids_app.group.statistics import run_statistics
from bids_app.inputs.cluster_table import read_cluster_table
from bids_app.inputs.inventory import SessionInputs
from bids_app.inputs.participants import read_sessions
from bids_app.models.design import DesignError, build_design, join_families
from bids_app.reports.classification import render_classification, render_external
from bids_app.reports.clustering import render_clustering
from bids_app.reports.deep_learning import render_deep_learning, render_network_validation
from bids_app.reports.group import render_extractor, render_group_report, render_recipe
from bids_app.reports.html import ReportPart
from bids_app.reports.statistics import render_statistics
from bids_app.statistics.demographics import (
    AGE_BAND_EDGES,
    characteristics_by_group,
    demographic_tests,
    demographics_by_group,
)

LOGGER = logging.getLogger("bids_app.group")

#: The input dataset's participants table (BIDS), the source of the group tables.
PARTICIPANTS_TSV = "participants.tsv"
#: Family of the MeshNet parcellation's volumes (``--segmentation meshnet``), beside ``volumes``.
MESHNET_FAMILY = "meshnet"
#: Fewest subjects with participant-level outputs that the group level compares.
MIN_SUBJECTS = 2
#: Every feature family the participant level may write.
PARTICIPANT_FAMILIES = (*FEATURE_FAMILIES, MESHNET_FAMILY)

_TABLE_COLUMNS = {
    "n_sessions": {"Description": "sessions with a T1w in the input dataset"},
    "n_processed": {"Description": "sessions with participant-level outputs"},
    "has_flair": {"Description": "at least one session has a FLAIR image"},
    "has_lesion_mask": {"Description": "at least one session has a lesion mask"},
}
_DEMOGRAPHICS_COLUMNS = {
    "group": {"Description": "diagnostic group"},
    "n": {"Description": "subjects"},
    "age_mean": {"Description": "mean age", "Units": "years"},
    "age_sd": {"Description": "standard deviation of age (ddof=1)", "Units": "years"},
    "age_median": {"Description": "median age", "Units": "years"},
    "age_min": {"Description": "youngest", "Units": "years"},
    "age_max": {"Description": "oldest", "Units": "years"},
    "n_male": {"Description": "subjects with sex M"},
    "n_female": {"Description": "subjects with sex F"},
    "n_sex_other_or_missing": {"Description": "subjects with sex O or n/a"},
}
_CHARACTERISTICS_COLUMNS = {
    "group": {"Description": "diagnostic group"},
    "variable": {"Description": "sex or age"},
    "level": {"Description": "sex, or age band in years (Turrisi 2024 Table 1: <60, 60-75, >75)"},
    "n": {"Description": "subjects of the group at this level"},
    "percent": {"Description": "share of the group's subjects with a value", "Units": "%"},
}
_TESTS_COLUMNS = {
    "variable": {"Description": "compared variable"},
    "groups": {"Description": "compared groups"},
    "test": {
        "Description": "two-sample Kolmogorov-Smirnov (age); Pearson's chi2, or Fisher's exact "
        "when an expected count is below 5 (sex)"
    },
    "statistic": {"Description": "test statistic"},
    "p_value": {"Description": "two-sided p-value"},
    "n": {"Description": "subjects in the test"},
}


def assemble_group_table(
    participants: pd.DataFrame,
    inventory: Sequence[SessionInputs],
    processed: set[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join participants.tsv with the inventory: one row per subject with imaging data.

    Parameters
    ----------
    participants : pandas.DataFrame
        From :func:`bids_app.inputs.participants.read_participants`, indexed by subject label.
    inventory : sequence of SessionInputs
        The selected subjects and sessions.
    processed : set of str
        Keys (``sub-X[_ses-Y]``) of sessions whose participant-level outputs exist.

    Returns
    -------
    table : pandas.DataFrame
        ``participant_id``, the participants.tsv columns and the inventory counts.
    exclusions : pandas.DataFrame
        Subjects left out (``subject, reason``): in participants.tsv without images, or with
        images but no participant-level output.
    """
    rows: dict[str, dict] = {}
    for item in inventory:
        row = rows.setdefault(
            item.subject,
            {"n_sessions": 0, "n_processed": 0, "has_flair": False, "has_lesion_mask": False},
        )
        row["n_sessions"] += int(item.usable)
        row["n_processed"] += int(item.key in processed)
        row["has_flair"] |= bool(item.flair)
        row["has_lesion_mask"] |= bool(item.lesion_masks)
    imaging = pd.DataFrame.from_dict(rows, orient="index").rename_axis("subject")
    table = imaging.join(participants.drop(columns="participant_id", errors="ignore"), how="left")
    table.insert(0, "participant_id", "sub-" + table.index.to_series())
    exclusions = [
        {"subject": f"sub-{s}", "reason": "in participants.tsv but no images selected"}
        for s in participants.index.difference(table.index)
    ]
    unprocessed = table.index[table["n_processed"] == 0]
    exclusions += [
        {"subject": f"sub-{s}", "reason": "no participant-level outputs (run participant first)"}
        for s in unprocessed
    ]
    table = table.drop(index=unprocessed)
    return table.reset_index(drop=True), pd.DataFrame(exclusions, columns=["subject", "reason"])


def collect_features(
    inventory: Sequence[SessionInputs], writer: DerivativesWriter, families: Sequence[str]
) -> tuple[dict[str, pd.DataFrame], dict[str, dict], pd.DataFrame]:
    """Read every session's feature tables, one family at a time.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        The selected subjects and sessions.
    writer : DerivativesWriter
        The derivatives dataset (it knows the file names).
    families : sequence of str
        Feature families (``volumes``, ``thickness``, ``radiomics``, ``histogram``).

    Returns
    -------
    tables : dict of str to pandas.DataFrame
        Family to the sessions' rows stacked (``participant_id``, ``session_id`` when there are
        sessions, then the features); families that no session has are left out.
    dictionaries : dict of str to dict
        Family to the data dictionary of its columns (from the first session's sidecar).
    missing : pandas.DataFrame
        ``session, family, reason`` for every table that could not be read.
    """
    tables: dict[str, pd.DataFrame] = {}
    dictionaries: dict[str, dict] = {}
    missing = []
    for family in families:
        frames = []
        for item in inventory:
            path = writer.path(family, item.entities)
            try:
                frames.append(pd.read_csv(path, sep="\t", na_values="n/a", keep_default_na=False))
            except FileNotFoundError:
                reason = "not computed: run the participant level with this family in --features"
                missing.append({"session": item.key, "family": family, "reason": reason})
                continue
            if family not in dictionaries:
                sidecar = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
                dictionaries[family] = {
                    column: sidecar[column] for column in frames[-1] if column in sidecar
                }
        if frames:
            tables[family] = pd.concat(frames, ignore_index=True)
    return tables, dictionaries, pd.DataFrame(missing, columns=["session", "family", "reason"])


def clinical_by_session(
    features: pd.DataFrame, participants: pd.DataFrame, sessions: pd.DataFrame
) -> pd.DataFrame:
    """Give every session its clinical values: participants.tsv, overridden by sessions.tsv.

    Parameters
    ----------
    features : pandas.DataFrame
        Sessions (index) with ``participant_id`` and maybe ``session_id``.
    participants : pandas.DataFrame
        From :func:`~bids_app.inputs.participants.read_participants`.
    sessions : pandas.DataFrame
        From :func:`~bids_app.inputs.participants.read_sessions`.

    Returns
    -------
    pandas.DataFrame
        Same index as ``features``; a sessions.tsv value wins over a participants.tsv one (the
        age at the scan rather than at inclusion).
    """
    by_subject = participants.drop(columns="participant_id", errors="ignore")
    subject = features["participant_id"].str.removeprefix("sub-")
    clinical = by_subject.reindex(subject.to_numpy()).set_axis(features.index)
    if len(sessions) and "session_id" in features:
        keyed = sessions.set_index(sessions["participant_id"] + "_" + sessions["session_id"])
        keyed = keyed.drop(columns=["participant_id", "session_id"]).reindex(features.index)
        for column in keyed.columns:
            clinical[column] = keyed[column].combine_first(
                clinical[column] if column in clinical else keyed[column]
            )
    return clinical


def run_group_level(
    inventory: Sequence[SessionInputs],
    participants: pd.DataFrame,
    config: Config,
    writer: DerivativesWriter,
) -> Path:
    """Write the group table, the demographics and their tests, and the group report.

    Parameters
    ----------
    inventory : sequence of SessionInputs
        The selected subjects and sessions.
    participants : pandas.DataFrame
        The checked participants table.
    config : Config
        The run configuration.
    writer : DerivativesWriter
        The output dataset.

    Returns
    -------
    Path
        The HTML report.

    Raises
    ------
    NoInputError
        If no subject has participant-level outputs.
    DataError
        If fewer than two subjects have them, the group column is absent, or the specific
        subclass of a step that cannot run on these data (design, cross-validation,
        clustering, model bundles); the target and the model bundle are checked before
        anything is written.
    """
    processed = {item.key for item in inventory if writer.session_complete(item.entities)}
    table, exclusions = assemble_group_table(participants, inventory, processed)
    check_subjects(table["participant_id"].tolist(), config)
    if config.group.group_column not in participants.columns:
        raise DataError(
            f"{config.input.bids_dir / PARTICIPANTS_TSV}: no column {config.group.group_column!r} "
            f"(columns: {list(participants.columns)}); choose one with --group-column"
        )
    saved = _check_before_writing(
        [item for item in inventory if item.key in processed], participants, config, writer
    )
    user_metrics = None
    if config.group.cluster_table is not None:
        user_metrics = read_cluster_table(
            config.group.cluster_table,
            _sessions_of([item for item in inventory if item.key in processed]),
        )
    for _, row in exclusions.iterrows():
        LOGGER.warning("%s left out: %s", row["subject"], row["reason"])
    sources = [config.input.bids_dir / PARTICIPANTS_TSV] if len(participants) else []
    writer.write_group_table(table, "participants", sources=sources, columns=_TABLE_COLUMNS)
    demographics = demographics_by_group(table, config.group.group_column)
    tests = demographic_tests(table, config.group.group_column)
    params = {"group_column": config.group.group_column}
    writer.write_group_table(
        demographics, "demographics", sources=sources, params=params, columns=_DEMOGRAPHICS_COLUMNS
    )
    writer.write_group_table(
        tests, "demographics_tests", sources=sources, params=params, columns=_TESTS_COLUMNS
    )
    characteristics = characteristics_by_group(table, config.group.group_column)
    writer.write_group_table(
        characteristics,
        "demographics_characteristics",
        sources=sources,
        params={**params, "age_band_edges": list(AGE_BAND_EDGES)},
        columns=_CHARACTERISTICS_COLUMNS,
    )
    done = [item for item in inventory if item.key in processed]  # half-written ones left out
    tables, dictionaries, missing = collect_features(done, writer, PARTICIPANT_FAMILIES)
    if MESHNET_FAMILY not in tables:  # optional (--segmentation meshnet): missing when asked
        missing = missing[missing["family"] != MESHNET_FAMILY]
    for family, features in tables.items():
        writer.write_group_table(
            features, "features", columns=dictionaries.get(family), family=family
        )
    for (family, reason), rows in missing.groupby(["family", "reason"]):
        LOGGER.warning("%s features missing for %d sessions: %s", family, len(rows), reason)
    summary = pd.DataFrame(
        [
            {
                "family": family,
                "sessions": len(tables.get(family, ())),
                "columns": len(tables[family].columns) if family in tables else 0,
                "missing": int((missing["family"] == family).sum()),
            }
            for family in PARTICIPANT_FAMILIES
            if family != MESHNET_FAMILY or family in tables
        ]
    )
    recipe_section = []
    if config.recipe is not None:
        gaps = recipe_gaps(config, tables)
        for line in (*config.recipe_deviations, *gaps):
            LOGGER.warning("recipe %s: %s", config.recipe, line)
        recipe_section = [render_recipe(load_recipe(config.recipe), config.recipe_deviations, gaps)]
    covariates = covariates_for(config, table.columns)
    statistics = run_statistics(tables, table, config.group.group_column, covariates, writer)
    sections = recipe_section + _written(render_statistics(statistics), writer)
    if config.group.cluster_features or user_metrics is not None:
        clusters = run_clustering(
            tables,
            table,
            config.group.group_column,
            config.group.control_label,
            config.group.cluster_features,
            config.group.cluster_method,
            (config.group.survival_time, config.group.survival_event),
            config.seed,
            writer,
            user_metrics,
            config.group.cluster_table,
        )
        sections += _written(render_clustering(clusters), writer)
    extra_folds = None
    if config.deep.feature_extractor:
        crops, _ = collect_crops(inventory, writer, config.deep.dl_contrasts)
        extracted, extractor = pretrained_features(
            config.deep.feature_extractor,
            crops,
            config.deep.dl_contrasts,
            resolve_device(config.resources.device),
        )
        for family, features in extracted.items():
            writer.write_group_table(features, "features", family=family, params=extractor)
        tables.update(extracted)
        sections.append(render_extractor(extractor))
    if config.deep.dl_models:
        deep, attention = _deep_learning(inventory, participants, config, writer)
        sections += _written(render_deep_learning(deep, attention), writer)
        tables.update(deep.features)
        extra_folds = deep.folds
    if not config.deep.dl_models:
        votes = collect_votes(done, writer)
        if len(votes):
            sections += _written(
                render_network_validation(_network_validation(votes, participants, config, writer)),
                writer,
            )
    sections += _written(
        _classification(tables, participants, config, writer, saved, extra_folds), writer
    )
    report = render_group_report(
        table,
        demographics,
        tests,
        exclusions,
        config.group.group_column,
        summary,
        sections,
        characteristics,
    )
    path = writer.write_group_text(report, "report")
    LOGGER.info("group report: %s", path)
    return path


def recipe_gaps(config: Config, tables: dict[str, pd.DataFrame]) -> list[str]:
    """Name the participant-level settings of the run's recipe that the outputs read lack.

    Parameters
    ----------
    config : Config
        The run configuration, with a recipe.
    tables : dict of str to pandas.DataFrame
        The participant-level feature tables read, by family.

    Returns
    -------
    list of str
        One line per missing feature family or radiomics region, with the command that makes it.
    """
    rerun = (
        f"run 'neurostrat {config.input.bids_dir} {config.output_dir} participant "
        f"--recipe {config.recipe}' first"
    )
    gaps = [
        f"no participant-level {family} features; {rerun}"
        for family in config.participant.features
        if family not in tables
    ]
    if "meshnet" in config.participant.segmentation and MESHNET_FAMILY not in tables:
        gaps.append(
            f"no participant-level {MESHNET_FAMILY} features (--segmentation meshnet); {rerun}"
        )
    if "radiomics" in tables and "radiomics" in config.participant.features:
        columns = tables["radiomics"].columns
        gaps += [
            f"no radiomics of the {roi} region (--radiomics-rois {roi}); {rerun}"
            for roi in config.participant.radiomics_rois
            if not any(str(column).startswith(f"{roi}_") for column in columns)
        ]
    return gaps


def check_subjects(subjects: Sequence[str], config: Config) -> None:
    """Check that at least two subjects have participant-level outputs.

    Parameters
    ----------
    subjects : sequence of str
        Subjects (``sub-X``) with participant-level outputs.
    config : Config
        The run configuration (folders and participant filter, named in the messages).

    Raises
    ------
    NoInputError
        If none has (the participant level was not run on this output folder).
    DataError
        If one has: the group level compares subjects.
    """
    if not subjects:
        raise NoInputError(
            f"{config.output_dir}: no selected subject has participant-level outputs; run the "
            f"participant level first ({config.input.bids_dir} {config.output_dir} participant)"
        )
    if len(subjects) < MIN_SUBJECTS:
        fix = "run the participant level on more subjects"
        if config.input.participant_label:
            fix += " or select more with --participant-label"
        raise DataError(
            f"{config.output_dir}: only {', '.join(subjects)} has participant-level outputs and "
            f"the group level compares subjects, at least {MIN_SUBJECTS}: {fix}"
        )


def _check_before_writing(
    processed: Sequence[SessionInputs],
    participants: pd.DataFrame,
    config: Config,
    writer: DerivativesWriter,
) -> tuple | None:
    """Check the target, or load the models of ``--apply-models``, before anything is written.

    The networks' needs (a target, CNN-ready crops) are checked first: they train before the
    classifiers.

    Returns
    -------
    tuple or None
        With ``--apply-models``, what :func:`load_saved_models` returns; None otherwise.
    """
    if config.deep.dl_models and not config.group.target:
        raise DesignError(
            "--dl-models needs a --target (with --positive-label or --threshold, or multi-class)"
        )
    if config.deep.dl_models or config.deep.feature_extractor:
        crops, _ = collect_crops(processed, writer, config.deep.dl_contrasts)
        if crops.empty:
            option = "--dl-models" if config.deep.dl_models else "--feature-extractor"
            raise DesignError(
                f"{config.output_dir}: no session has CNN-ready crops of "
                f"{list(config.deep.dl_contrasts)}, which {option} needs; run the participant "
                "level first"
            )
        crop_space(crops)  # crops of both --cnn-space settings are refused before any output
    if not (config.group.target or config.group.apply_models):
        return None
    sessions = _sessions_of(processed)
    subjects = sorted({item.subject for item in processed})
    session_table = read_sessions(config.input.bids_dir, subjects)
    clinical = clinical_by_session(sessions, participants, session_table)
    source = str(config.input.bids_dir / PARTICIPANTS_TSV)
    if config.group.apply_models:
        return load_saved_models(config.group.apply_models, clinical, config, source)
    check_times(session_table, config.group.feature_sets, config.group.session_time)
    if config.group.target not in participants and config.group.target in clinical:
        source = f"the sessions.tsv files of {config.input.bids_dir}"
    check_target(clinical, sessions["participant_id"], config, source)
    return None


def _sessions_of(items: Sequence[SessionInputs]) -> pd.DataFrame:
    """Return the sessions' ``participant_id`` and ``session_id`` (absent without sessions)."""
    return pd.DataFrame(
        {
            "participant_id": [f"sub-{item.subject}" for item in items],
            "session_id": [f"ses-{item.session}" if item.session else pd.NA for item in items],
        },
        index=[item.key for item in items],
    ).dropna(axis=1, how="all")


def _network_validation(
    votes: pd.DataFrame,
    participants: pd.DataFrame,
    config: Config,
    writer: DerivativesWriter,
) -> NetworkValidation:
    """Score the votes of ``participant --models`` against this run's target; write them."""
    target = target_of(config) if config.group.target else None
    clinical = None
    if target is not None and not target.multiclass:
        subjects = sorted(votes["participant_id"].str.removeprefix("sub-").unique())
        clinical = clinical_by_session(
            votes, participants, read_sessions(config.input.bids_dir, subjects)
        )
    validation = validate_networks(votes, clinical, target)
    params = {"target": validation.target}
    writer.write_group_table(validation.predictions, "deep_external_predictions", params=params)
    if len(validation.metrics):
        writer.write_group_table(validation.metrics, "deep_external_metrics", params=params)
    return validation


def _written(part: ReportPart, writer: DerivativesWriter) -> list[tuple[str, str]]:
    """Write a rendered part's figures under ``group/figures``; return its report sections."""
    for figure in part.figures:
        writer.write_group_figure(figure.png, figure.output, **figure.fields)
    return part.sections


def _deep_learning(
    inventory: Sequence[SessionInputs],
    participants: pd.DataFrame,
    config: Config,
    writer: DerivativesWriter,
) -> tuple[DeepOutcome, list[AttentionResult]]:
    """Train the networks of ``--dl-models`` on the sessions' CNN-ready crops; explain them.

    :func:`_check_before_writing` has checked that there are a target and crops.
    """
    crops, missing = collect_crops(inventory, writer, config.deep.dl_contrasts)
    for _, row in missing.iterrows():
        LOGGER.warning("%s left out of the deep learning: %s", row["participant_id"], row["reason"])
    subjects = sorted(crops["participant_id"].str.removeprefix("sub-").unique())
    clinical = clinical_by_session(
        crops, participants, read_sessions(config.input.bids_dir, subjects)
    )
    target = target_of(config)
    outcome = run_deep_learning(crops, clinical, target, config, writer)
    outcome.missing_crops = missing
    if outcome.run is not None and outcome.run.classes:
        # the analyses of Coll 2023 §2.6 and Lu 2023 §II.G group the maps by TP/FP/TN/FN and
        # score the positive class: a multi-class target keeps the out-of-fold maps only
        LOGGER.info("multi-class target: relevance maps written, no TP/FP/TN/FN analyses")
        return outcome, []
    attention = run_attention_analyses(
        outcome, target, config, writer, resolve_device(config.resources.device)
    )
    return outcome, attention


def _classification(
    tables: dict[str, pd.DataFrame],
    participants: pd.DataFrame,
    config: Config,
    writer: DerivativesWriter,
    saved: tuple | None = None,
    extra_folds: pd.DataFrame | None = None,
) -> ReportPart:
    """Run the classification or apply saved models, when asked; return the report's part."""
    part = ReportPart()
    if tables and (config.group.target or config.group.apply_models):
        # the histograms (long format, one row per bin) are described, not classified
        families = {f: t for f, t in tables.items() if f != "histogram"}
        features, columns = join_families(families)
        subjects = sorted(features["participant_id"].str.removeprefix("sub-").unique())
        clinical = clinical_by_session(
            features, participants, read_sessions(config.input.bids_dir, subjects)
        )
        if config.group.apply_models:
            part += render_external(
                run_apply_models(
                    config.group.apply_models, saved, features, clinical, config, writer
                )
            )
        else:
            feature_sets = list(config.group.feature_sets or default_feature_sets(list(columns)))
            excluded = None
            if wants_subject_rows(feature_sets, config.group.predict_from):
                features, columns, clinical, excluded = _subject_rows(
                    features, columns, clinical, feature_sets, config, writer
                )
            # beside the networks, the logistic regression on volumes of Coll 2023 §2.4 always
            # runs: the design then holds the volumes even where --feature-sets leaves them out
            baseline = bool(config.deep.dl_models)
            extra = ["volumes"] if baseline and "volumes" in columns else []
            design = build_design(
                features,
                columns,
                clinical,
                target_of(config),
                list(dict.fromkeys(feature_sets + extra)),
                covariates=covariates_for(config, clinical.columns),
                site_column=config.group.site_column or ("site" if "site" in clinical else None),
            )
            design = dataclasses.replace(
                design, feature_sets={s: design.feature_sets[s] for s in feature_sets}
            )
            if excluded is not None:
                design = with_exclusions(design, excluded)
            for _, row in design.exclusions.iterrows():
                LOGGER.warning(
                    "%s left out of the classification: %s", *row[["participant_id", "reason"]]
                )
            part += render_classification(
                run_classification(
                    design,
                    config,
                    writer,
                    class_names(design.target),
                    extra_folds,
                    baseline=baseline,
                )
            )
    elif not config.group.target:
        LOGGER.info("no --target: no classification (descriptive statistics only)")
    return part


def _subject_rows(
    features: pd.DataFrame,
    columns: dict[str, list[str]],
    clinical: pd.DataFrame,
    feature_sets: Sequence[str],
    config: Config,
    writer: DerivativesWriter,
) -> tuple[pd.DataFrame, dict[str, list[str]], pd.DataFrame, pd.DataFrame]:
    """One row per subject (``rates``, ``--predict-from first-session``); write the rates."""
    subjects = sorted(features["participant_id"].str.removeprefix("sub-").unique())
    rows = subject_rows(
        features,
        columns,
        clinical,
        read_sessions(config.input.bids_dir, subjects),
        config.group.target,
        with_rates=uses_rates(feature_sets),
        rate_units=config.group.rate_units,
        session_time=config.group.session_time,
    )
    LOGGER.info(
        "classification on one row per subject (%d): first session's features, target at the "
        "last session%s",
        len(rows.features),
        f", sessions timed by sessions.tsv {rows.time_column}" if rows.time_column else "",
    )
    if rows.rates is not None:
        params = {"rate_units": config.group.rate_units, "session_time": rows.time_column}
        writer.write_group_table(
            rows.rates, "longitudinal_rates", params=params, columns=TIMELINE_COLUMNS
        )
    return rows.features, rows.families, rows.clinical, rows.exclusions
