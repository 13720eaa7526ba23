"""The classifiers of the group level, their hyper-parameter grids and their pipelines.

The grids are those of Turrisi 2024 (Turrisi et al.) §2.3-2.4: KNN with k in {3, 5, 7}; random
forest with N in {5, 100, 200, 500} trees; SVM with linear, RBF, polynomial and sigmoid kernels, C
in {1e-4, ..., 10}, γ in {1e-3, ..., 10} (RBF) and degree in {2, 3} (polynomial); the DNN with early
stopping on the training F1 (DNNt) or on a 20 % validation split (DNNv), each run 5 times. The
logistic regression on volumes is the baseline of Coll 2023 §2.4.

Every classifier runs in one imbalanced-learn :class:`~imblearn.pipeline.Pipeline`: standard
scaling → ComBat (when the rows come from several sites) → SMOTE (Turrisi 2024 §2.4, k = 5) → the
classifier, so that everything fitted sees the training rows of a fold only (SMOTE resamples
during ``fit`` only, never at prediction).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from imblearn.over_sampling import SMOTE
from imblearn.pipeline import Pipeline
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bids_app.models.harmonization import ComBatHarmonizer

#: Regularisation strengths of the SVM grid (Turrisi 2024 §2.4).
SVM_C = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: Kernel coefficients of the RBF grid (Turrisi 2024 §2.4).
SVM_GAMMA = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
#: SMOTE neighbours (Turrisi 2024 §2.4: "k=5 samples of the nearest neighbors").
SMOTE_K = 5
#: Repeats of each DNN with a different initialisation (Turrisi 2024 §2.4: "5 trials").
DNN_TRIALS = 5


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier of the comparison.

    Parameters
    ----------
    name : str
        Short name (the column of the results tables).
    label : str
        Name as Turrisi 2024's tables print it.
    build : callable
        ``build(random_state) -> estimator``.
    grid : dict
        Hyper-parameter grid of the inner search (keys without the pipeline prefix); empty when
        the hyper-parameters are fixed.
    trials : int
        Repeats with different seeds whose metrics are averaged (the DNNs).
    """

    name: str
    label: str
    build: Callable[[int], BaseEstimator]
    grid: dict[str, Sequence[Any]] = field(default_factory=dict)
    trials: int = 1


def _dnn(early_stopping: str) -> Callable[[int], BaseEstimator]:
    def build(random_state: int) -> BaseEstimator:
        from bids_app.models.dnn import DNNClassifier  # imports torch: only when used

        return DNNClassifier(early_stopping=early_stopping, random_state=random_state)

    return build


#: The classifiers of Turrisi 2024 Table 3 plus the logistic regression of Coll 2023.
CLASSIFIERS: dict[str, ClassifierSpec] = {
    spec.name: spec
    for spec in (
        ClassifierSpec(
            "svm_linear",
            "SVM (L)",
            lambda seed: SVC(kernel="linear", random_state=seed),
            {"C": SVM_C},
        ),
        ClassifierSpec(
            "svm_poly",
            "SVM (P)",
            lambda seed: SVC(kernel="poly", random_state=seed),
            {"C": SVM_C, "degree": (2, 3)},
        ),
        ClassifierSpec(
            "svm_rbf",
            "SVM (RBF)",
            lambda seed: SVC(kernel="rbf", random_state=seed),
            {"C": SVM_C, "gamma": SVM_GAMMA},
        ),
        ClassifierSpec(
            "svm_sigmoid",
            "SVM (S)",
            lambda seed: SVC(kernel="sigmoid", random_state=seed),
            {"C": SVM_C},
        ),
        ClassifierSpec(
            "knn", "Knn", lambda seed: KNeighborsClassifier(), {"n_neighbors": (3, 5, 7)}
        ),
        ClassifierSpec(
            "random_forest",
            "RF",
            lambda seed: RandomForestClassifier(random_state=seed),
            {"n_estimators": (5, 100, 200, 500)},
        ),
        ClassifierSpec("dnn_t", "DNNt", _dnn("train"), trials=DNN_TRIALS),
        ClassifierSpec("dnn_v", "DNNv", _dnn("validation"), trials=DNN_TRIALS),
        # Coll 2023 §2.4 fits an ordinary logistic regression on five volumes; with hundreds of
        # radiomic features it needs a penalty, so C is searched like the linear SVM's
        ClassifierSpec(
            "logistic_regression",
            "LR",
            lambda seed: LogisticRegression(max_iter=5000),
            {"C": (1e-2, 1e-1, 1.0, 10.0)},
        ),
    )
}


#: The hyper-parameters Turrisi 2024 Table 1 reports for each representation (radiomics, the
#: penultimate and the last convolution of the CNN, DL7 and DL8), found by a grid search on the
#: whole cohort before the nested cross-validation (§2.4). The DNNs have no grid.
TURRISI_TABLE1: dict[str, dict[str, dict[str, Any]]] = {
    "radiomics": {
        "knn": {"n_neighbors": 7},
        "random_forest": {"n_estimators": 500},
        "svm_linear": {"C": 0.001},
        "svm_poly": {"C": 1.0, "degree": 3},
        "svm_rbf": {"C": 1.0, "gamma": 0.01},
        "svm_sigmoid": {"C": 0.001},
    },
    "dl7": {
        "knn": {"n_neighbors": 7},
        "random_forest": {"n_estimators": 200},
        "svm_linear": {"C": 0.001},
        "svm_poly": {"C": 0.1, "degree": 3},
        "svm_rbf": {"C": 1.0, "gamma": 0.1},
        "svm_sigmoid": {"C": 0.0001},
    },
    "dl8": {
        "knn": {"n_neighbors": 7},
        "random_forest": {"n_estimators": 200},
        "svm_linear": {"C": 0.01},
        "svm_poly": {"C": 1.0, "degree": 2},
        "svm_rbf": {"C": 10.0, "gamma": 0.001},
        "svm_sigmoid": {"C": 0.0001},
    },
}


def fixed_spec(spec: ClassifierSpec, params: dict[str, Any]) -> ClassifierSpec:
    """Return a classifier whose hyper-parameters are fixed instead of searched.

    Parameters
    ----------
    spec : ClassifierSpec
        The classifier.
    params : dict
        Values of its hyper-parameters (keys of ``spec.grid``).

    Returns
    -------
    ClassifierSpec
        The same classifier with a one-point grid, so that the inner search fits it once.

    Raises
    ------
    ValueError
        If a key is not one of the classifier's hyper-parameters.

    Examples
    --------
    >>> fixed_spec(CLASSIFIERS["svm_poly"], TURRISI_TABLE1["radiomics"]["svm_poly"]).grid
    {'C': (1.0,), 'degree': (3,)}
    """
    unknown = sorted(set(params) - set(spec.grid))
    if unknown:
        raise ValueError(f"{spec.name}: no hyper-parameter(s) {unknown}")
    return replace(spec, grid={key: (value,) for key, value in params.items()})


def build_pipeline(
    spec: ClassifierSpec,
    features: Sequence[str],
    random_state: int,
    site_column: str | None = None,
    covariates: Sequence[str] = (),
    unseen_site: str = "error",
    smote_k: int | None = SMOTE_K,
) -> Pipeline:
    """Build scaler → ComBat → SMOTE → classifier for one classifier and feature set.

    Parameters
    ----------
    spec : ClassifierSpec
        The classifier.
    features : sequence of str
        Feature columns of the input table (the other columns are the site and covariates).
    random_state : int
        Seed of SMOTE and the classifier.
    site_column : str or None
        Column of the sites; None leaves ComBat out (one site).
    covariates : sequence of str
        Numeric columns whose effects ComBat keeps.
    unseen_site : {"error", "reference"}
        What ComBat does with a site it was not fitted on (see
        :class:`~bids_app.models.harmonization.ComBatHarmonizer`).
    smote_k : int or None
        SMOTE's neighbours; None leaves SMOTE out.

    Returns
    -------
    imblearn.pipeline.Pipeline
        Steps ``scale``, ``combat`` (with sites), ``smote`` (unless None) and ``classifier``; the
        grid of ``spec`` applies to ``classifier__<name>``.
    """
    features = list(features)
    steps: list[tuple[str, Any]] = []
    if site_column is None:
        scale = ColumnTransformer([("features", StandardScaler(), features)], remainder="drop")
        steps.append(("scale", scale))
    else:
        scale = ColumnTransformer(
            [("features", StandardScaler(), features)],
            remainder="passthrough",
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        combat = ComBatHarmonizer(
            site_column=site_column, covariates=tuple(covariates), unseen_site=unseen_site
        )
        steps += [("scale", scale), ("combat", combat)]
    if smote_k is not None:
        steps.append(("smote", SMOTE(k_neighbors=smote_k, random_state=random_state)))
    steps.append(("classifier", spec.build(random_state)))
    return Pipeline(steps)


def param_grid(spec: ClassifierSpec) -> dict[str, list]:
    """Return the grid of ``spec`` with the pipeline's ``classifier__`` prefix.

    Parameters
    ----------
    spec : ClassifierSpec
        The classifier.

    Returns
    -------
    dict
        Grid for :class:`~sklearn.model_selection.GridSearchCV` (empty: nothing to search).

    Examples
    --------
    >>> param_grid(CLASSIFIERS["knn"])
    {'classifier__n_neighbors': [3, 5, 7]}
    """
    return {f"classifier__{name}": list(values) for name, values in spec.grid.items()}
