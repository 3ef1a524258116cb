"""Config fields that carry their own help, and the command-line options made from them.

A setting's default and help are written once, on its dataclass field
(`setting(...)`); the command line's options are derived from the fields
(`add_options`) and the config is built back from the parsed arguments
(`from_args`). So `--help` and the configs cannot disagree.

    @dataclasses.dataclass(frozen=True)
    class Example:
        dupe_factor: int = setting(10, "times each document is turned into instances")

    add_options(parser, Example)          # --dupe-factor DUPE_FACTOR (default 10)
    Example(**from_args(Example, args))
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any


def setting(default: Any, help: str, *, flag: str | None = None, choices: Iterable | None = None,
            negated: str | None = None) -> Any:
    """A dataclass field with its command-line help.

    flag: the option's name when it is not `--field-name`. negated: for a
    boolean default True, the `--no-...` option that turns it off.
    """
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices else None, "negated": negated}
    return dataclasses.field(default=default, metadata=metadata)


def _option_fields(config_type: type, skip: Iterable[str]) -> list[dataclasses.Field]:
    skip = set(skip)
    return [f for f in dataclasses.fields(config_type) if "help" in f.metadata and f.name not in skip]


def _scalar_type(annotation: Any) -> type:
    """int for `int`, str for `str | None`, and so on."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, config_type: type,
                skip: Iterable[str] = ()) -> None:
    """One option per field of `config_type` declared with `setting`."""
    hints = typing.get_type_hints(config_type)
    for field in _option_fields(config_type, skip):
        meta = field.metadata
        kind = _scalar_type(hints[field.name])
        flag = meta["flag"] or "--" + field.name.replace("_", "-")
        if kind is bool:
            if field.default:
                if not meta["negated"]:
                    raise TypeError(f"{config_type.__name__}.{field.name}: a True default needs a negated flag")
                parser.add_argument(meta["negated"], dest=field.name, action="store_false", help=meta["help"])
            else:
                parser.add_argument(flag, dest=field.name, action="store_true", help=meta["help"])
            continue
        shown = "" if field.default is None else f" (default: {field.default})"
        parser.add_argument(flag, dest=field.name, type=kind, default=field.default, choices=meta["choices"],
                            metavar=None if meta["choices"] else flag.lstrip("-").replace("-", "_").upper(),
                            help=meta["help"] + shown)


def from_args(config_type: type, args: argparse.Namespace, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The keyword arguments of `config_type` that `add_options` made options for."""
    return {f.name: getattr(args, f.name) for f in _option_fields(config_type, skip)}
