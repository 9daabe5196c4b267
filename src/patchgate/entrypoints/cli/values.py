"""Command-line values converted without Pydantic (docs/cli.md, "Start-up").

Typer converts every value through a Pydantic type adapter that it builds on first use;
importing Pydantic and building the adapters costs a fifth of a second or more on every
command. Most values are text, a whole number written in digits or a flag, and for those
the result is plain: the text itself, ``int`` of the digits, the flag's ``True`` or
``False``. Those are converted here, exactly as the adapter would; every other value (a
sign other than ``-``, spaces, underscores, ``yes`` for a boolean, a bound, a list, a
file, a path, a choice) goes to Typer's own conversion, unchanged.
"""

from __future__ import annotations

import re
from typing import Any

# What the adapter reads as ``int(value)``: optional minus, 1 to 18 ASCII digits.
_DIGITS = re.compile(r"-?[0-9]{1,18}")
_SIMPLE = (str, int, bool)


class _NotSimple:
    """A value this module leaves to Typer."""


_NOT_SIMPLE = _NotSimple()


class PlainValue:
    """A parameter's conversion: text and digits here, anything else by Typer."""

    def __init__(self, annotation: type[Any]) -> None:
        self.annotation = annotation

    def convert(self, value: Any) -> Any:
        """The value as Typer's adapter returns it, or ``_NOT_SIMPLE``."""
        if value is None:  # an option not given: Typer's conversion returns None too
            return None
        if type(value) is self.annotation:
            return value
        if self.annotation is int and type(value) is str and _DIGITS.fullmatch(value):
            return int(value)
        return _NOT_SIMPLE

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        converted = self.convert(value)
        if converted is not _NOT_SIMPLE:
            return converted
        # Typer's own conversion from here on, for this parameter.
        from typer._coercion import build_runtime_param

        param._runtime_param = build_runtime_param(param.type_descriptor)
        return param._runtime_param.coerce(value, param=param, ctx=ctx)


def is_simple(param: Any) -> bool:
    """A single text, whole-number or boolean value with no bound, parser or file."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", False) is not None:
        return False
    info = descriptor.parameter_info
    return (
        descriptor.annotation in _SIMPLE
        and descriptor.file_annotation is None
        and info.parser is None
        and info.min is None
        and info.max is None
        and not info.clamp
        and not param.multiple
        and param.nargs == 1
    )


def install() -> None:
    """Convert every simple parameter's values here, from its first value on: the
    commands' own parameters and the ``--help`` option Typer adds to each."""
    from typer.core import _TyperParameter

    if getattr(_TyperParameter, "_patchgate_plain", False):
        return
    typers = _TyperParameter.get_runtime_param

    def get_runtime_param(param: Any) -> Any:
        if is_simple(param):
            param._runtime_param = PlainValue(param.type_descriptor.annotation)
        return typers(param)

    setattr(_TyperParameter, "get_runtime_param", get_runtime_param)  # noqa: B010
    setattr(_TyperParameter, "_patchgate_plain", True)  # noqa: B010
