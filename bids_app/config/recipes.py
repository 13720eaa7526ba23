"""Recipes: the protocol of a paper as one versioned settings file shipped with the package.

A recipe (``--recipe NAME``) is a YAML file in ``bids_app/data/recipes/`` with two tables:
``recipe`` (its name, version, the paper, what it does and what of the paper it cannot
reproduce) and ``options`` (option values, written as in a configuration file). Its options sit
below the configuration file and the command line, which can still override each of them; the
overrides are the run's deviations from the recipe, which the group report lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from bids_app.errors import UsageError

#: The folder of the recipes in the package, one ``NAME.yaml`` each.
RECIPES_FOLDER = ("data", "recipes")


@dataclass(frozen=True)
class Recipe:
    """A paper's protocol as option values.

    Parameters
    ----------
    name : str
        The recipe's name (``--recipe NAME``), the file's stem.
    version : int
        Raised whenever an option value changes, so that a report names what ran.
    paper : str
        The paper, as the report cites it (authors, year, title, journal).
    summary : str
        What the recipe runs, in one paragraph.
    options : mapping of str to object
        Option values, keyed by option name (``_`` spelling), as a configuration file gives them.
    not_reproduced : tuple of str
        Parts of the paper's protocol this recipe cannot reproduce, and what it does instead.
    """

    name: str
    version: int
    paper: str
    summary: str
    options: Mapping[str, Any] = field(default_factory=dict)
    not_reproduced: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """The recipe as a report names it: ``name (version N): paper``."""
        return f"{self.name} (version {self.version}): {self.paper}"


def recipe_names() -> tuple[str, ...]:
    """Return the names of the shipped recipes, sorted.

    Returns
    -------
    tuple of str
        One name per ``.yaml`` file of the package's ``data/recipes`` folder.

    Examples
    --------
    >>> "turrisi-als-radiomics" in recipe_names()
    True
    """
    return tuple(
        sorted(
            item.name.removesuffix(".yaml")
            for item in _folder().iterdir()
            if item.name.endswith(".yaml")
        )
    )


def load_recipe(name: str) -> Recipe:
    """Read a shipped recipe.

    Parameters
    ----------
    name : str
        One of :func:`recipe_names`.

    Returns
    -------
    Recipe
        The recipe; its option names use ``_`` (``cv_folds``), its values are as written.

    Raises
    ------
    UsageError
        If no recipe has that name, or its file is not a ``recipe`` and an ``options`` table.

    Examples
    --------
    >>> recipe = load_recipe("coll-ms-attention")
    >>> recipe.options["cv_folds"], recipe.options["threshold"]
    (7, 3.0)
    """
    names = recipe_names()
    if name not in names:
        raise UsageError(f"unknown recipe {name!r}; choose one of {', '.join(names)}")
    resource = _folder() / f"{name}.yaml"
    data = yaml.safe_load(resource.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"recipe", "options"} <= set(data):
        raise UsageError(f"recipe file {resource}: needs a 'recipe' and an 'options' table")
    meta = data["recipe"]
    options = {str(key).replace("-", "_"): value for key, value in data["options"].items()}
    return Recipe(
        name=name,
        version=int(meta["version"]),
        paper=str(meta["paper"]).strip(),
        summary=" ".join(str(meta["summary"]).split()),
        options=options,
        not_reproduced=tuple(
            " ".join(str(line).split()) for line in meta.get("not_reproduced", ())
        ),
    )


def _folder() -> Traversable:
    return resources.files("bids_app").joinpath(*RECIPES_FOLDER)


def deviations(
    recipe_values: Mapping[str, Any], final_values: Mapping[str, Any]
) -> tuple[str, ...]:
    """Name the recipe's options whose final value differs from the recipe's.

    Parameters
    ----------
    recipe_values : mapping of str to object
        The recipe's options, converted to the options' types.
    final_values : mapping of str to object
        The run's options after the configuration file and the command line.

    Returns
    -------
    tuple of str
        One ``"name: value (recipe: value)"`` per changed option, in the recipe's order.

    Examples
    --------
    >>> deviations({"cv_folds": 7, "seed": 1}, {"cv_folds": 5, "seed": 1})
    ('cv_folds: 5 (recipe: 7)',)
    """
    return tuple(
        f"{name}: {_shown(final_values[name])} (recipe: {_shown(value)})"
        for name, value in recipe_values.items()
        if name in final_values and final_values[name] != value
    )


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return str(value)
