"""Turn options from the command line and a configuration file into the frozen Config.

Types, choices, aliases and ranges come from the declarations in
:mod:`bids_app.config.options`; only the checks that tie several options together are written
here.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

import yaml

from bids_app.config.options import SECTIONS, Config, Declaration, declarations
from bids_app.errors import UsageError

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
        If a label is not alphanumeric.

    Examples
    --------
    >>> strip_prefix(["sub-01", "02", "sub-01"], "sub-")
    ('01', '02')
    """
    if labels is None:
        return ()
    if isinstance(labels, str):
        labels = [labels]
    cleaned = [str(label).removeprefix(prefix).strip() for label in labels]
    bad = [label for label in cleaned if not label or not label.isalnum()]
    if bad:
        raise UsageError(
            f"invalid label(s) {bad!r} for {prefix!r}: BIDS labels are alphanumeric "
            f"(e.g. {prefix}01)"
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
        If the file is missing, unparsable, not a table, or names an unknown option.
    """
    if not path.is_file():
        raise UsageError(f"configuration file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text) or {}
        else:
            raise UsageError(f"configuration file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"configuration file {path} cannot be parsed: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"configuration file {path}: the top level must be a table of options")
    options = {str(key).replace("-", "_"): value for key, value in data.items()}
    known = sorted(d.name for d in declarations() if d.option.in_file)
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {known}"
            raise UsageError(f"configuration file {path}: unknown option {key!r}{hint}")
    return options


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
        raise UsageError(f"option {name!r} must be true or false, not {value!r}")
    expected = _TYPE_NAMES[kind] + (" or a list of them" if declaration.multiple else "")
    raise UsageError(f"option {name!r}: invalid value {value!r} (expected {expected})")


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
                f"{_TYPE_NAMES[declaration.kind]} or a list of them)"
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
            raise UsageError(f"option {name!r} must be one of {spec.choices}, not {value!r}")
    if spec.minimum is not None:
        low = spec.minimum if declaration.kind is float else int(spec.minimum)
        if spec.strict and value <= low:
            raise UsageError(f"option {name!r} must be greater than {low}, not {value}")
        if value < low:
            raise UsageError(f"option {name!r} must be at least {low}, not {value}")


def build_config(cli_options: dict[str, Any], file_options: dict[str, Any]) -> Config:
    """Merge file options and command-line options (the command line wins) into a Config.

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
        If an option is unknown, or a value has the wrong type or is out of range.

    Examples
    --------
    >>> config = build_config({"bids_dir": "/in", "output_dir": "/out",
    ...                        "analysis_level": "group", "dl_preset": "seed004"}, {"nprocs": 2})
    >>> config.deep.dl_preset, config.resources.nprocs, config.resources.omp_nthreads
    ('lu2023', 2, 2)
    """
    merged = {**file_options, **cli_options}
    known = {d.name: d for d in declarations()}
    unknown = sorted(set(merged) - set(known))
    if unknown:
        raise UsageError(f"unknown option(s) {unknown}")
    values = {name: _convert(known[name], value) for name, value in merged.items()}
    for name, value in values.items():
        _check(known[name], value)
    values.setdefault("omp_nthreads", values.get("nprocs", 1))
    if values.get("dl_contrasts", ("T1w",))[:1] != ("T1w",):
        raise UsageError("--dl-contrasts must start with T1w (the crops are placed by the T1w)")
    if values.get("positive_label") is not None and values.get("threshold") is not None:
        raise UsageError("give --positive-label (categorical target) or --threshold, not both")
    sections: dict[str, dict[str, Any]] = {section: {} for section in (*SECTIONS, "run")}
    for name, value in values.items():
        sections[known[name].section][name] = value
    run = sections.pop("run")
    return Config(**run, **{name: SECTIONS[name](**kw) for name, kw in sections.items()})
