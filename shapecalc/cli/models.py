"""``shapecalc COMMAND`` for every architecture: its options come from its declaration.

Each field of the architecture's config is an option: a size ``--hidden H`` (an integer or
a size name, which prints formulas), a flag ``--bias/--no-bias``, a choice, a number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import click

from shapecalc.cli.group import ExampleCommand, engine_error, plain
from shapecalc.cli.options import (
    CONVENTION_FLAGS,
    COST_FLAGS,
    REPORT_FLAGS,
    SIZE_FLAGS,
    F,
    apply,
    convention_options,
    cost_options,
    finish,
    pop,
    report_options,
)
from shapecalc.core.declare import Architecture, Argument, arguments_of
from shapecalc.core.errors import ShapecalcError

__all__ = ["architecture_options", "command_help", "model_command"]


def _option(
    f: dataclasses.Field[Any], argument: Argument, *, solving: bool, required_note: str
) -> Callable[[F], F]:
    """One option for one field; when solving, no size is required (one is the free one,
    or a list is parsed later) but the help says ``required_note`` of those without a
    default, and a size left out takes its declared default."""
    flag = "--" + f.name.replace("_", "-")
    required = f.default is dataclasses.MISSING
    if argument.kind == "flag":  # off by default: --name; on by default: --name/--no-name
        if not f.default:
            return click.option(flag, f.name, is_flag=True, help=plain(argument.help))
        no = f"--no-{f.name.replace('_', '-')}"
        return click.option(
            f"{flag}/{no}", f.name, default=True, show_default=True, help=plain(argument.help)
        )
    settings: dict[str, Any] = {"help": plain(argument.help)}
    if argument.kind == "choice":
        settings["type"] = click.Choice(argument.options)
    elif argument.kind == "number":
        settings["type"] = click.FLOAT
    elif argument.kind == "indices":  # layer numbers, comma-separated
        settings["type"] = click.STRING
        settings["metavar"] = "I,J,..."
    elif argument.kind == "kinds":  # layer kinds, comma-separated, kind*N repeated
        settings["type"] = click.STRING
        settings["metavar"] = "KIND,..."
    elif argument.kind == "sizes":  # one size per stage, comma-separated
        settings["type"] = click.STRING
        settings["metavar"] = "N,N,..."
    else:  # sizes stay text: an integer or a size name
        settings["type"] = click.STRING
        settings["metavar"] = argument.letter
    if argument.default_text:  # what an unset default means, in words
        settings["help"] += f" [default: {argument.default_text}]"
    if solving and argument.kind == "size":
        settings["default"] = None
        if not required and not argument.default_text:  # the default it takes, unparenthesised
            settings["help"] += f"  [default: {f.default}]"
        if required:
            settings["help"] += f"  [{required_note}]"
    elif required:
        settings["required"] = True
    else:
        default = f.default
        settings["default"] = (
            str(default) if argument.kind == "size" and default is not None else default
        )
        if argument.kind in ("indices", "kinds", "sizes"):
            listed = default if isinstance(default, tuple) else ()
            settings["default"] = ",".join(str(i) for i in listed) if listed else None
        settings["show_default"] = not argument.default_text and default != ()
    return click.option(flag, f.name, **settings)


def architecture_options(
    cls: type[Architecture], *, solving: bool = False, required_note: str = "required"
) -> Callable[[F], F]:
    """The options of an architecture's fields, in declaration order; when solving, the
    sizes without a default say ``required_note`` in their help."""
    return apply(
        [_option(f, a, solving=solving, required_note=required_note) for f, a in arguments_of(cls)]
    )


def command_help(cls: type[Architecture], lead: str = "") -> str:
    """The command's help: the first paragraph of the declaration's docstring, how sizes
    are given, and the example."""
    first = (cls.__doc__ or cls.title).strip().split("\n\n")[0]
    first = plain(" ".join(first.split()))
    text = (lead or first) + (
        "\n\n    Every size is an integer or a size name: a name (H, V, ...) prints each "
        "shape and count as a formula."
    )
    if cls.example:
        text += f"\n\n    \b\n    Example:\n      shapecalc {cls.command} {cls.example}"
    return text


def model_command(command: str) -> click.Command:
    """``shapecalc COMMAND``: the model's table (or tree, JSON, Markdown, LaTeX), with the
    sections the flags ask for."""
    from shapecalc.architectures import get

    cls = get(command)

    @architecture_options(cls)
    @apply(report_options(explain=cls.explains))
    @apply(cost_options(model=True, sequence=cls.sequence))
    @apply(convention_options(gru="reset-after" in cls.extra_options))
    def run(**flags: Any) -> None:
        shown = {**pop(flags, REPORT_FLAGS), **pop(flags, COST_FLAGS + SIZE_FLAGS)}
        shown.update(pop(flags, CONVENTION_FLAGS))
        try:
            model = cls(**flags).model()
        except ShapecalcError as err:
            raise engine_error(err) from None
        finish(model, shown)

    run.__doc__ = command_help(cls)
    return click.command(command, cls=ExampleCommand, example=cls.example)(run)
