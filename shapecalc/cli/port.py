"""``shapecalc port COMMAND --from A --to B``: for every tensor of framework B, the
tensor(s) of framework A it is made of and how (the map that ports weights)."""

from __future__ import annotations

from typing import Any

import click

from shapecalc.cli.group import ShapecalcGroup, engine_error, register
from shapecalc.cli.models import architecture_options
from shapecalc.cli.options import apply, format_option
from shapecalc.core.choices import CONVENTIONS, PORTABLE
from shapecalc.core.errors import ShapecalcError

__all__ = ["port"]


@click.group("port", cls=ShapecalcGroup)
def port() -> None:
    """The map that ports a model's weights from one framework to another: for every
    tensor of the target (Keras, ONNX or PyTorch), its source tensor(s), the transpose,
    the gate blocks reordered and the biases summed where one side keeps two. In Python
    the same map is shapecalc.port(model, source, target); its apply method ports a dict
    of arrays."""


def _port_command(command: str) -> click.Command:
    from shapecalc.architectures import get

    cls = get(command)
    gru = "reset-after" in cls.extra_options
    options = [
        click.option(
            "--from",
            "source",
            type=click.Choice(CONVENTIONS),
            default="pytorch",
            show_default=True,
            help="The framework whose tensors you have.",
        ),
        click.option(
            "--to",
            "target",
            type=click.Choice(CONVENTIONS),
            required=True,
            help="The framework whose tensors you want.",
        ),
    ]
    if gru:
        options.append(
            click.option(
                "--reset-after/--no-reset-after",
                default=True,
                show_default=True,
                help="Keras' GRU reset_after (only True computes what PyTorch's GRU does).",
            )
        )

    @architecture_options(cls)
    @format_option(("table", "json", "markdown"))
    @apply(options)
    def run(fmt: str, source: str, target: str, **flags: Any) -> None:
        from shapecalc.analysis.port import port as make_map

        if source == target:
            raise click.BadParameter(
                f"--to must name another framework than --from (both {source})",
                param_hint="'--to'",
            )
        reset_after = flags.pop("reset_after", True)
        try:
            model = cls(**flags).model()
            mapping = make_map(model, source, target, reset_after=reset_after)
        except ShapecalcError as err:
            flags_of = {"source": "--from", "target": "--to", "reset_after": "--reset-after"}
            raise engine_error(err, flags_of) from None
        if fmt == "json":
            from shapecalc.report.as_json import port_json

            click.echo(port_json(mapping), nl=False)
            return
        if fmt == "markdown":
            from shapecalc.report.markdown import port_markdown

            click.echo(port_markdown(mapping), nl=False)
            return
        from shapecalc.report.rich_writer import echo, port_table

        echo(port_table(mapping))

    title = cls.title or cls.__name__
    run.__doc__ = f"Port the {title}'s weights between PyTorch, Keras and ONNX." + (
        f"\n\n    Example: shapecalc port {command} {cls.example} --from pytorch --to keras"
        if cls.example
        else ""
    )
    return click.command(command)(run)


#: the architectures whose every tensor is checked against Keras 3 and both ONNX exporters
#: (tests/test_port.py); the transformers' layers have no Keras or ONNX convention yet


def _maker(command: str) -> Any:
    return lambda: _port_command(command) if command in PORTABLE else unportable("port", command)


def unportable(group: str, command: str) -> click.Command:
    """A hidden command that refuses (exit 2): ``group`` (port, compare-conventions)
    covers only the architectures in :data:`PORTABLE`."""

    @click.command(
        command,
        hidden=True,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def run() -> None:
        raise click.UsageError(
            f"{group} covers {', '.join(PORTABLE)}, whose tensors are checked against Keras 3 "
            f"and both ONNX exporters; {command}'s layers have no Keras or ONNX convention yet "
            f"(shapecalc {command} shows its PyTorch tensors)"
        )

    run.__doc__ = f"Not yet: {group} covers {', '.join(PORTABLE)}."
    return run


register(port, _maker)
