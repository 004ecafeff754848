"""The ``shapecalc`` command: click commands that turn flags into engine calls.

Engine errors become usage errors naming the flag (exit status 2). Every error, click's
own included, is printed as one line, ``Error: ...``, with no traceback.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from shapecalc import __version__
from shapecalc.errors import ShapecalcError
from shapecalc.model import Model

__all__ = ["cli", "main"]

FORMATS = ("table", "json", "markdown")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ShapecalcGroup(click.Group):
    """A group whose errors are always one line on stderr with click's exit status."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.ctx.get_help() if err.ctx else str(err))
            _exit(0, standalone_mode)
        except click.ClickException as err:
            click.echo(f"Error: {_one_line(err.format_message())}", err=True)
            _exit(err.exit_code, standalone_mode)
        except click.exceptions.Abort:
            click.echo("Error: aborted", err=True)
            _exit(1, standalone_mode)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _exit(code: int, standalone_mode: bool) -> NoReturn:
    if standalone_mode:
        sys.exit(code)
    raise click.exceptions.Exit(code)


#: an lstm_lm argument whose flag is not simply --name-with-dashes
_FLAG_OF = {"bias": "--no-bias"}


def _flag(field: str | None) -> str | None:
    if field is None:
        return None
    return _FLAG_OF.get(field, "--" + field.replace("_", "-"))


def _engine_error(err: ShapecalcError) -> click.ClickException:
    flag = _flag(err.field)
    if flag is None:
        return click.UsageError(str(err))
    return click.BadParameter(str(err), param_hint=f"'{flag}'")


@click.group(cls=ShapecalcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shapecalc")
def cli() -> None:
    """Which matrices a network has, the exact PyTorch shape of each, how many
    parameters it holds and the formula behind the count."""


def _emit(model: Model, fmt: str, explain: bool) -> None:
    """Print ``model`` in ``fmt``; only the table path imports rich."""
    if fmt == "json":
        from shapecalc.report import to_json

        click.echo(to_json(model, explanation=explain), nl=False)
        return
    from shapecalc import render

    if fmt == "markdown":
        click.echo(render.markdown(model, explanation=explain), nl=False)
        return
    from rich.console import Console

    console = Console(highlight=False)
    console.print(render.table(model))
    if explain:
        console.print()
        console.print(render.explanation(model))


@cli.command()
@click.option(
    "--layers", default="1", show_default=True, metavar="L", help="Number of stacked LSTM layers."
)
@click.option(
    "--hidden",
    required=True,
    metavar="H",
    help="Hidden size: the length of h_t and c_t (the 'hidden nodes').",
)
@click.option(
    "--vocab", required=True, metavar="V", help="Vocabulary size: characters or tokens in and out."
)
@click.option("--embed-dim", default=None, metavar="E", help="Embedding size [default: H].")
@click.option(
    "--one-hot",
    is_flag=True,
    help="No embedding: the LSTM reads one-hot vectors of size V (char-rnn).",
)
@click.option("--no-bias", is_flag=True, help="No biases in the LSTM nor in the head.")
@click.option("--bidirectional", is_flag=True, help="A backward LSTM beside the forward one.")
@click.option(
    "--proj-size",
    default="0",
    show_default=True,
    metavar="P",
    help="Project h_t down to this size (LSTM proj_size); 0 for none.",
)
@click.option(
    "--tie-weights",
    is_flag=True,
    help="The head shares the embedding matrix (needs E == the head's input size).",
)
@click.option(
    "--dropout",
    type=float,
    default=0.0,
    show_default=True,
    help="Dropout between LSTM layers, in [0, 1); it adds no parameters.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Explain the LSTM equations, the gate matrices and their shapes.",
)
def lstm(
    layers: str,
    hidden: str,
    vocab: str,
    embed_dim: str | None,
    one_hot: bool,
    no_bias: bool,
    bidirectional: bool,
    proj_size: str,
    tie_weights: bool,
    dropout: float,
    fmt: str,
    explain: bool,
) -> None:
    """An LSTM language model: embedding (V -> E), L-layer LSTM (H), head (-> V).

    \b
    Example, the "2-layer LSTM with 512 hidden nodes" on 65 characters:
      shapecalc lstm --layers 2 --hidden 512 --vocab 65
    """
    from shapecalc.architectures import lstm_lm

    try:
        model = lstm_lm(
            vocab=vocab,
            hidden=hidden,
            layers=layers,
            embed_dim=embed_dim,
            one_hot=one_hot,
            bias=not no_bias,
            bidirectional=bidirectional,
            proj_size=proj_size,
            tie_weights=tie_weights,
            dropout=dropout,
        )
    except ShapecalcError as err:
        raise _engine_error(err) from None
    _emit(model, fmt, explain)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shapecalc")
