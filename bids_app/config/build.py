"""Turn options from the command line and a configuration file into the frozen Config.

Types, choices, aliases and ranges come from the declarations in
:mod:`bids_app.config.options`; only the checks that tie several options together are written
here.
"""

from __future__ import annotations

import difflib
import re
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import yaml

from bids_app.config.options import SECTIONS, Config, Declaration, declarations, iter_values
from bids_app.config.recipes import Recipe, deviations, load_recipe
from bids_app.errors import UsageError
from bids_app.preprocessing.qmaps import PARAMETRIC_SUFFIXES, is_suffix, parse_map_range
from bids_app.preprocessing.qmaps import map_range as map_range_of

#: A BIDS label: letters and digits only (so that no label can name a path).
LABEL = re.compile(r"[A-Za-z0-9]+")
#: The option a label prefix belongs to, for the messages.
_LABEL_OPTIONS = {"sub-": "--participant-label", "ses-": "--session-label"}

#: Options of which one excludes the other: a recipe's value of one gives way when the user
#: sets the other.
_EXCLUSIVE = (("positive_label", "threshold"),)

#: How the errors name each type.
_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path",
}


def strip_prefix(labels: list[str] | tuple[str, ...] | str | None, prefix: str) -> tuple[str, ...]:
    """Remove a BIDS entity prefix such as ``sub-`` from labels.

    Parameters
    ----------
    labels : list of str, str or None
        Labels as a user typed them.
    prefix : str
        The prefix to remove, e.g. ``"sub-"``.

    Returns
    -------
    tuple of str
        Unique labels without prefix, in the order given.

    Raises
    ------
    UsageError
        If a label is not letters and digits (``[A-Za-z0-9]+``) after the optional prefix.

    Examples
    --------
    >>> strip_prefix(["sub-01", "02", "sub-01"], "sub-")
    ('01', '02')
    """
    if labels is None:
        return ()
    if isinstance(labels, str):
        labels = [labels]
    cleaned = [str(label).strip().removeprefix(prefix) for label in labels]
    bad = [label for label in cleaned if not LABEL.fullmatch(label)]
    if bad:
        option = _LABEL_OPTIONS.get(prefix, f"{prefix} labels")
        raise UsageError(
            f"{option}: invalid label(s) {bad!r}; a BIDS label is letters and digits only, "
            f"with an optional {prefix!r} (e.g. {prefix}01 or 01)"
        )
    return tuple(dict.fromkeys(cleaned))


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML configuration file (safe-loaded).

    Keys may be written with ``-`` or ``_`` (``participant-label`` or ``participant_label``).

    Parameters
    ----------
    path : Path
        A ``.toml``, ``.yaml`` or ``.yml`` file whose top level is a table of options.

    Returns
    -------
    dict
        Option name (with ``_``) to value.

    Raises
    ------
    UsageError
        If the file is missing, not UTF-8, unparsable or not a table, names an unknown option
        or one option twice (``participant-label`` and ``participant_label``), or gives numbers
        as BIDS labels (YAML reads ``002`` as the number 2).
    """
    if not path.is_file():
        raise UsageError(f"configuration file {path} does not exist; give an existing file")
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise UsageError(
            f"configuration file {path}: unknown format {path.suffix!r}; "
            "use a .toml, .yaml or .yml file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"configuration file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "save it as UTF-8"
        ) from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise UsageError(
            f"configuration file {path} cannot be parsed: {exc}; fix its syntax"
        ) from exc
    if not isinstance(data, dict):
        raise UsageError(
            f"configuration file {path}: the top level must be a table of options; "
            "write one 'option = value' (TOML) or 'option: value' (YAML) per line"
        )
    known = {d.name: d for d in declarations() if d.option.in_file}
    options: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        if key in options:
            raise UsageError(
                f"configuration file {path}: option {key!r} is given twice (as "
                f"{key!r} and {key.replace('_', '-')!r}); give it once"
            )
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {sorted(known)}"
            raise UsageError(f"configuration file {path}: unknown option {key!r}; {hint}")
        _check_labels(path, known[key], value)
        options[key] = value
    return options


def read_plugin_file(path: Path) -> tuple[str, dict[str, Any]]:
    """Read a ``--use-plugin`` file: nipype's execution plugin and its arguments (as fMRIPrep).

    Parameters
    ----------
    path : Path
        A YAML (or JSON) file with ``plugin:`` (e.g. ``MultiProc``, ``Linear``) and optional
        ``plugin_args:`` (e.g. ``{n_procs: 4, memory_gb: 8}``).

    Returns
    -------
    tuple of (str, dict)
        The plugin's name and its arguments.

    Raises
    ------
    UsageError
        If the file is missing, unparsable, or has no ``plugin`` name.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"--use-plugin {path}: cannot be read ({exc}); give a YAML file") from exc
    plugin = data.get("plugin") if isinstance(data, dict) else None
    args = data.get("plugin_args", {}) if isinstance(data, dict) else None
    if not isinstance(plugin, str) or not isinstance(args, dict):
        raise UsageError(
            f"--use-plugin {path}: write 'plugin: NAME' (e.g. MultiProc) and optionally "
            "'plugin_args: {n_procs: 4}'"
        )
    return plugin, args


def _check_labels(path: Path, declaration: Declaration, value: Any) -> None:
    """Refuse numbers as labels: YAML reads ``002`` as 2, so the label cannot be recovered."""
    if declaration.option.label_prefix is None:
        return
    numbers = [
        item
        for item in (value if isinstance(value, list) else [value])
        if isinstance(item, int | float) and not isinstance(item, bool)
    ]
    if numbers:
        raise UsageError(
            f"configuration file {path}: option {declaration.name!r} holds the number(s) "
            f"{numbers}, not labels (002 is read as 2); quote the labels, e.g. "
            f"{declaration.name.replace('_', '-')}: ['002', '003']"
        )


def _item(declaration: Declaration, value: Any) -> Any:
    """Check and convert one value (or one item of a tuple) to the declared type."""
    kind = declaration.kind
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, bool):
        pass  # true/false is not a number, a string or a path
    elif kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str | int | float):
            return str(value)
    elif kind is Path and isinstance(value, str | Path):
        return Path(value).expanduser().resolve()
    name = declaration.name
    if kind is bool:
        raise UsageError(
            f"option {name!r} must be true or false, not {value!r}; write true or false (unquoted)"
        )
    expected = _TYPE_NAMES[kind] + (" or a list of them" if declaration.multiple else "")
    raise UsageError(
        f"option {name!r}: invalid value {value!r} (expected {expected}); correct the value"
    )


def _convert(declaration: Declaration, value: Any) -> Any:
    """Check and convert a value of the command line or a file to the declared type."""
    spec = declaration.option
    if value is None and (declaration.optional or declaration.multiple):
        return None if declaration.optional else ()
    if declaration.multiple:
        items = [value] if isinstance(value, str | int | float | Path) else value
        if not isinstance(items, list | tuple):
            raise UsageError(
                f"option {declaration.name!r}: invalid value {value!r} (expected "
                f"{_TYPE_NAMES[declaration.kind]} or a list of them); correct the value"
            )
        converted = tuple(_item(declaration, item) for item in items)
        if spec.label_prefix is not None:
            return strip_prefix(converted, spec.label_prefix)
        return tuple(spec.aliases.get(item, item) for item in converted)
    value = _item(declaration, value)
    return spec.aliases.get(value, value) if spec.aliases else value


def _check(declaration: Declaration, value: Any) -> None:
    """Check a converted value against the declared choices and minimum."""
    name, spec = declaration.name, declaration.option
    if value is None:
        return
    if spec.choices is not None:
        if declaration.multiple:
            unknown = sorted(set(value) - set(spec.choices))
            if unknown:
                raise UsageError(f"option {name!r}: unknown {unknown}; choose from {spec.choices}")
        elif value not in spec.choices:
            raise UsageError(
                f"option {name!r} must be one of {spec.choices}, not {value!r}; choose one of them"
            )
    kind = declaration.kind
    low, high = (
        None if bound is None else bound if kind is float else int(bound)
        for bound in (spec.minimum, spec.maximum)
    )
    if low is not None and spec.strict and value <= low:
        raise UsageError(
            f"option {name!r} must be greater than {low}, not {value}; give a larger value"
        )
    if high is not None and (value > high or (low is not None and value < low)):
        raise UsageError(
            f"option {name!r} must be in {low}..{high}, not {value}; give a value in that range"
        )
    if low is not None and value < low:
        raise UsageError(
            f"option {name!r} must be at least {low}, not {value}; give a larger value"
        )


def build_config(cli_options: dict[str, Any], file_options: dict[str, Any]) -> Config:
    """Merge a recipe, file options and command-line options into a Config.

    The command line wins over the file, and both over the recipe (``recipe`` in either); the
    recipe's options that they change are kept as ``recipe_deviations``.

    Parameters
    ----------
    cli_options : dict
        Options given on the command line (only those the user typed), by option name.
    file_options : dict
        Options read from a configuration file, by option name.

    Returns
    -------
    Config
        The frozen configuration.

    Raises
    ------
    UsageError
        If an option or the recipe is unknown, or a value has the wrong type or is out of range.

    Examples
    --------
    >>> config = build_config({"bids_dir": "/in", "output_dir": "/out",
    ...                        "analysis_level": "group", "dl_preset": "seed004"}, {"nprocs": 2})
    >>> config.deep.dl_preset, config.resources.nprocs, config.resources.omp_nthreads
    ('lu2023', 2, 2)
    """
    given = {**file_options, **cli_options}
    known = {d.name: d for d in declarations()}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UsageError(f"unknown option(s) {unknown}")
    recipe_values = _recipe_values(given.get("recipe"), known)
    excluded = {
        other
        for pair in _EXCLUSIVE
        for mine, other in (pair, pair[::-1])
        if given.get(mine) is not None
    }
    merged = {
        **{key: value for key, value in recipe_values.items() if key not in excluded},
        **given,
    }
    values = {name: _convert(known[name], value) for name, value in merged.items()}
    for name, value in values.items():
        _check(known[name], value)
    if "recipe" in given:
        final = {name: values.get(name, known[name].default) for name in recipe_values}
        values["recipe_deviations"] = deviations(recipe_values, final)
    values.setdefault("omp_nthreads", values.get("nprocs", 1))
    _check_contrasts(values.get("dl_contrasts", ("T1w",)), values.get("map_range", ()))
    if values.get("positive_label") is not None and values.get("threshold") is not None:
        raise UsageError("give --positive-label (categorical target) or --threshold, not both")
    if values.get("target_classes") and (
        values.get("positive_label") is not None or values.get("threshold") is not None
    ):
        raise UsageError(
            "--target-classes is for a multi-class target: leave out --positive-label and "
            "--threshold (they make the target binary)"
        )
    if values.get("ordinal") and not values.get("target_classes"):
        raise UsageError("--ordinal needs --target-classes, listing the classes in their order")
    _check_lrp_target(values)
    _check_scheduler(values)
    if values.get("use_plugin") is not None:
        read_plugin_file(values["use_plugin"])  # a bad file stops the run before it starts
    sections: dict[str, dict[str, Any]] = {section: {} for section in (*SECTIONS, "run")}
    for name, value in values.items():
        sections[known[name].section][name] = value
    run = sections.pop("run")
    return Config(**run, **{name: SECTIONS[name](**kw) for name, kw in sections.items()})


def _check_contrasts(contrasts: tuple[str, ...], map_range: tuple[str, ...]) -> None:
    """Check ``--dl-contrasts`` (T1w first, BIDS suffixes) and ``--map-range``.

    Examples
    --------
    >>> _check_contrasts(("T1w", "T2map"), ())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bids_app.errors.UsageError: --dl-contrasts T2map: a quantitative map needs its range; ...
    """
    if contrasts[:1] != ("T1w",):
        raise UsageError("--dl-contrasts must start with T1w (the crops are placed by the T1w)")
    bad = [name for name in contrasts if not is_suffix(name)]
    if bad:
        raise UsageError(
            f"--dl-contrasts {bad}: a contrast is a BIDS suffix of letters and digits "
            "(e.g. FLAIR, T1map), as in sub-01_T1map.nii.gz"
        )
    repeated = sorted({name for name in contrasts if contrasts.count(name) > 1})
    if repeated:
        raise UsageError(f"--dl-contrasts {repeated}: give each contrast once")
    ranges = {}
    for text in map_range:
        try:
            suffix, low, high = parse_map_range(text)
        except ValueError as exc:
            raise UsageError(f"--map-range {exc}") from None
        ranges[suffix] = (low, high)
    for name in contrasts:
        if name in PARAMETRIC_SUFFIXES and map_range_of(name, ranges) is None:
            raise UsageError(
                f"--dl-contrasts {name}: a quantitative map needs its range; give --map-range "
                f"{name}=LOW:HIGH (in the file's units)"
            )


def _check_lrp_target(values: dict[str, Any]) -> None:
    """Refuse an LRP target that the target cannot have (``--lrp-target``, ``--lrp-class``)."""
    binary = values.get("positive_label") is not None or values.get("threshold") is not None
    multiclass = values.get("target") is not None and not binary
    named = values.get("lrp_class")
    if values.get("lrp_target") == "positive" and values.get("dl_models") and multiclass:
        raise UsageError(
            "--lrp-target positive needs a binary target (--positive-label or --threshold): a "
            "multi-class target has no positive class; explain each subject's predicted class "
            "(--lrp-target predicted) or one class with --lrp-class"
        )
    if named is None:
        return
    if binary:
        raise UsageError(
            "--lrp-class names a class of a multi-class target; with --positive-label or "
            "--threshold use --lrp-target predicted or positive"
        )
    if values.get("lrp_target") == "positive":
        raise UsageError("give --lrp-class or --lrp-target positive, not both")
    classes = values.get("target_classes") or ()
    if classes and named not in classes:
        raise UsageError(f"--lrp-class {named!r} is not one of --target-classes {list(classes)}")


def _check_scheduler(values: dict[str, Any]) -> None:
    """Refuse the options of a submission without ``--submit slurm``."""
    if values.get("submit", "none") != "none" or values.get("status"):
        if values.get("submit", "none") != "none" and values.get("status"):
            raise UsageError("give --submit or --status, not both")
        return
    given = [
        flag
        for name, flag in (
            ("array_throttle", "--array-throttle"),
            ("sbatch_args", "--sbatch-args"),
            ("container_image", "--container"),
            ("submit_group", "--submit-group"),
        )
        if values.get(name)
    ]
    if given:
        raise UsageError(f"{', '.join(given)} only apply with --submit slurm; add it")


def _recipe_values(name: Any, known: dict[str, Declaration]) -> dict[str, Any]:
    """Return a recipe's options (none for None), converted to their types."""
    if name is None:
        return {}
    recipe = load_recipe(str(name))
    unknown = sorted(set(recipe.options) - {n for n, d in known.items() if d.option.in_file})
    if unknown:
        raise UsageError(f"recipe {recipe.name!r}: unknown option(s) {unknown}")
    return {key: _convert(known[key], value) for key, value in recipe.options.items()}


def config_text(config: Config, omit_unset: bool = False) -> str:
    """Write a Config's settings as a YAML configuration file that ``--config`` reads back.

    Parameters
    ----------
    config : Config
        The configuration.
    omit_unset : bool
        Leave out the options whose value is None, so that the run reading the file derives
        them as it would without it (e.g. ``models_dir`` from the container it runs in).

    Returns
    -------
    str
        A header of comments (the recipe, its paper, what it cannot reproduce, the deviations),
        then every option a configuration file may hold, one per line.

    Examples
    --------
    >>> config = build_config({"bids_dir": "/in", "output_dir": "/out",
    ...                        "analysis_level": "group", "recipe": "milella-als-clusters"}, {})
    >>> "- milella2023" in config_text(config).splitlines()
    True
    """
    in_file = {d.name for d in declarations() if d.option.in_file}
    values = {}
    for name, _, value in iter_values(config):
        if name not in in_file or (omit_unset and value is None):
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        values[name] = value
    header = ["NeuroStrat settings: give this file back with --config FILE"]
    if config.recipe is not None:
        header += _recipe_header(load_recipe(config.recipe), config.recipe_deviations)
    comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header)
    return comments + yaml.safe_dump(values, sort_keys=False, allow_unicode=True)


def _recipe_header(recipe: Recipe, changed: tuple[str, ...]) -> list[str]:
    lines = ["", *textwrap.wrap(f"recipe {recipe.title}", 96), *textwrap.wrap(recipe.summary, 96)]
    for note in recipe.not_reproduced:
        lines += textwrap.wrap(f"not reproduced: {note}", 96, subsequent_indent="  ")
    lines += [f"deviation from the recipe: {item}" for item in changed] or [
        "no deviation from the recipe"
    ]
    return lines
