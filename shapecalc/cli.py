"""The ``shapecalc`` command: click commands that turn flags into engine calls.

Engine errors become usage errors naming the flag (exit status 2). Every error, click's
own included, is printed as one line, ``Error: ...``, with no traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from shapecalc import __version__
from shapecalc.errors import ShapecalcError
from shapecalc.model import Model

__all__ = ["cli", "main"]

FORMATS = ("table", "json", "markdown", "latex")


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


def _engine_error(err: ShapecalcError, flags: dict[str, str] | None = None) -> click.ClickException:
    flag = (flags or {}).get(err.field or "") or _flag(err.field)
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
    if fmt == "latex":
        click.echo(render.latex(model), nl=False)
        return
    from rich.console import Console

    console = Console(highlight=False)
    console.print(render.table(model))
    if explain:
        console.print()
        console.print(render.explanation(model))


F = TypeVar("F", bound=Callable[..., Any])


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _lstm_options(*, solving: bool) -> Callable[[F], F]:
    """The LSTM language model's flags, shared by ``lstm`` and ``solve lstm``.

    Sizes are integers or size names (H, V, ...); when solving, none is required, since
    one of them is the free size."""
    return _apply(
        [
            click.option(
                "--layers",
                default=None if solving else "1",
                show_default=not solving,
                metavar="L",
                help="Number of stacked LSTM layers" + (" [default: 1]." if solving else "."),
            ),
            click.option(
                "--hidden",
                required=not solving,
                metavar="H",
                help="Hidden size: the length of h_t and c_t (the 'hidden nodes').",
            ),
            click.option(
                "--vocab",
                required=not solving,
                metavar="V",
                help="Vocabulary size: characters or tokens in and out.",
            ),
            click.option(
                "--embed-dim", default=None, metavar="E", help="Embedding size [default: H]."
            ),
            click.option(
                "--one-hot",
                is_flag=True,
                help="No embedding: the LSTM reads one-hot vectors of size V (char-rnn).",
            ),
            click.option("--no-bias", is_flag=True, help="No biases in the LSTM nor in the head."),
            click.option(
                "--bidirectional", is_flag=True, help="A backward LSTM beside the forward one."
            ),
            click.option(
                "--proj-size",
                default="0",
                show_default=True,
                metavar="P",
                help="Project h_t down to this size (LSTM proj_size); 0 for none.",
            ),
            click.option(
                "--tie-weights",
                is_flag=True,
                help="The head shares the embedding matrix (needs E == the head's input size).",
            ),
            click.option(
                "--dropout",
                type=float,
                default=0.0,
                show_default=True,
                help="Dropout between LSTM layers, in [0, 1); it adds no parameters.",
            ),
        ]
    )


def _lstm_arguments(flags: dict[str, Any]) -> dict[str, Any]:
    """lstm_lm's keyword arguments from the flags (None: not given)."""
    return {
        "vocab": flags["vocab"],
        "hidden": flags["hidden"],
        "layers": flags["layers"],
        "embed_dim": flags["embed_dim"],
        "one_hot": flags["one_hot"],
        "bias": not flags["no_bias"],
        "bidirectional": flags["bidirectional"],
        "proj_size": flags["proj_size"],
        "tie_weights": flags["tie_weights"],
        "dropout": flags["dropout"],
    }


@cli.command()
@_lstm_options(solving=False)
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
def lstm(fmt: str, explain: bool, **flags: Any) -> None:
    """An LSTM language model: embedding (V -> E), L-layer LSTM (H), head (-> V).

    Every size is an integer or a size name: --hidden H --vocab V --layers L prints
    each shape and count as a formula.

    \b
    Example, the "2-layer LSTM with 512 hidden nodes" on 65 characters:
      shapecalc lstm --layers 2 --hidden 512 --vocab 65
    """
    from shapecalc.architectures import lstm_lm

    try:
        model = lstm_lm(**_lstm_arguments(flags))
    except ShapecalcError as err:
        raise _engine_error(err) from None
    _emit(model, fmt, explain)


@cli.group()
def solve() -> None:
    """Find the size that brings a model closest to a parameter budget."""


#: --for choices -> the factory argument they free
_FREE = {"hidden": "hidden", "layers": "layers", "vocab": "vocab", "embed-dim": "embed_dim"}


@solve.command("lstm")
@click.option(
    "--params",
    "budget",
    required=True,
    metavar="N",
    help="The budget: 10M, 3.5e6, 1.2B, 350k or 4,269,121.",
)
@click.option(
    "--for",
    "free",
    type=click.Choice(list(_FREE)),
    default="hidden",
    show_default=True,
    help="The size to solve for.",
)
@click.option(
    "--multiple-of",
    type=int,
    default=1,
    show_default=True,
    metavar="M",
    help="Only sizes that are multiples of M (64 suits most hardware).",
)
@_lstm_options(solving=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
    help="Output format.",
)
def solve_lstm(budget: str, free: str, multiple_of: int, fmt: str, **flags: Any) -> None:
    """The LSTM language model's size (hidden by default) closest to a budget.

    \b
    Example: the hidden size of a 2-layer model on 65 characters with 10M parameters:
      shapecalc solve lstm --params 10M --layers 2 --vocab 65
    """
    from shapecalc.architectures import lstm_lm
    from shapecalc.solve import solve as solve_for

    free_arg = _FREE[free]
    arguments = _lstm_arguments(flags)
    if arguments[free_arg] is not None:
        raise click.BadParameter(
            f"{arguments[free_arg]}: this is the size --for {free} solves; leave it out",
            param_hint=f"'{_flag(free_arg)}'",
        )
    for required in ("hidden", "vocab"):
        if required != free_arg and arguments[required] is None:
            raise click.UsageError(f"Missing option '{_flag(required)}'.")
    if arguments["layers"] is None and free_arg != "layers":
        arguments["layers"] = 1
    fixed = {k: v for k, v in arguments.items() if k != free_arg and v is not None}
    try:
        solution = solve_for(lstm_lm, budget, free_arg, multiple_of=multiple_of, **fixed)
    except ShapecalcError as err:
        raise _engine_error(err, {"target": "--params", "multiple_of": "--multiple-of"}) from None
    if fmt == "json":
        from shapecalc.report import solution_json

        click.echo(solution_json(solution), nl=False)
        return
    from rich.console import Console

    from shapecalc import render

    Console(highlight=False).print(render.solution_table(solution))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shapecalc")
