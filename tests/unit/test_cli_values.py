"""Command-line values converted without Pydantic give what Typer's own conversion gives
(docs/cli.md, "Start-up"), and leave everything else to it; the start-up's pause of the
cycle collector ends with the start-up."""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest
from typer.core import TyperOption

from patchgate.entrypoints.cli import main as cli_main
from patchgate.entrypoints.cli import values

TEXT = ["", "x", " padded ", "é", "12", "--", "a\nb"]
DIGITS = ["0", "7", "007", "-5", "-0", "00", "123456789012345678", "-123456789012345678"]
# Left to Typer: what Pydantic reads with its own rules (signs, spaces, underscores, words).
OTHER_NUMBERS = ["+5", " 5", "5 ", "1_000", "1e3", "5.0", "abc", "", "1234567890123456789"]


def _typers(annotation: type[Any]) -> Any:
    """Typer's own conversion of a parameter of this type."""
    from typer._coercion import build_runtime_param, resolve_type_descriptor
    from typer.models import OptionInfo

    return build_runtime_param(resolve_type_descriptor(annotation, OptionInfo()))


def _typers_result(annotation: type[Any], value: Any) -> Any:
    try:
        return _typers(annotation).adapter.validate_python(value)
    except Exception as exc:  # the adapter's refusal, compared by kind
        return type(exc).__name__


@pytest.mark.parametrize("value", TEXT)
def test_text_is_kept_as_typer_keeps_it(value: str) -> None:
    assert values.PlainValue(str).convert(value) == _typers_result(str, value) == value


@pytest.mark.parametrize("value", DIGITS)
def test_digits_are_read_as_typer_reads_them(value: str) -> None:
    converted = values.PlainValue(int).convert(value)
    assert type(converted) is int
    assert converted == _typers_result(int, value)


@pytest.mark.parametrize("value", OTHER_NUMBERS)
def test_any_other_number_is_left_to_typer(value: str) -> None:
    assert values.PlainValue(int).convert(value) is values._NOT_SIMPLE


@pytest.mark.parametrize(("annotation", "value"), [(bool, True), (bool, False), (int, 3)])
def test_a_value_of_the_type_already_is_kept(annotation: type[Any], value: Any) -> None:
    assert values.PlainValue(annotation).convert(value) is value
    assert _typers_result(annotation, value) == value


@pytest.mark.parametrize(("annotation", "value"), [(bool, "yes"), (int, True), (str, b"x")])
def test_a_value_of_another_type_is_left_to_typer(annotation: type[Any], value: Any) -> None:
    assert values.PlainValue(annotation).convert(value) is values._NOT_SIMPLE


def test_bounded_numbers_lists_and_paths_are_left_to_typer() -> None:
    simple = []
    cli_main.build_cli()
    for name, (module, _) in cli_main.COMMANDS.items():
        stack = [cli_main._load(module)[name]]
        while stack:
            command = stack.pop()
            stack.extend(getattr(command, "commands", {}).values())
            for param in command.params:
                param._runtime_param = None
                info = param.type_descriptor.parameter_info
                if values.is_simple(param):
                    simple.append(param)
                    assert info.min is None and info.max is None
                    assert param.type_descriptor.annotation in (str, int, bool)
                    assert not param.multiple and param.nargs == 1
    assert simple  # most of the commands' parameters are simple
    from typer._coercion import resolve_type_descriptor
    from typer.models import OptionInfo

    bounded = TyperOption(
        param_decls=["--n"], type_descriptor=resolve_type_descriptor(int, OptionInfo(min=1))
    )
    assert not values.is_simple(bounded)


def test_a_bad_number_is_refused_in_typers_words(capsys: pytest.CaptureFixture[str]) -> None:
    umask = os.umask(0o022)  # main() sets the server's; this test's files keep theirs
    try:
        with pytest.raises(SystemExit) as exited:
            cli_main.main(["device", "assign", "d-1", "not-a-number"])
    finally:
        os.umask(umask)
    assert exited.value.code == 2
    # Pydantic's words: the value went to Typer's own conversion.
    assert "Input should be a valid integer, unable to parse string as an integer" in (
        capsys.readouterr().err
    )


def test_the_cycle_collector_runs_again_after_the_start_up() -> None:
    from patchgate.entrypoints.cli import common

    assert gc.isenabled()
    with common._collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        with common._collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert common._FROZEN  # set aside once in this process
