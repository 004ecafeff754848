"""The ``shapecalc`` command: click commands that turn flags into engine calls.

Engine errors become usage errors naming the flag (exit status 2). Every error, click's
own included, is printed as one line, ``Error: ...``, with no traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from shapecalc import __version__
from shapecalc.core.errors import ShapecalcError

if TYPE_CHECKING:
    from shapecalc.analysis.conventions import Converted
    from shapecalc.analysis.cost import Cost
    from shapecalc.core.tree import Model

__all__ = ["cli", "main"]

FORMATS = ("table", "json", "markdown", "latex")
F = TypeVar("F", bound=Callable[..., Any])


def _format_option(choices: tuple[str, ...]) -> Callable[[Any], Any]:
    """``--format``, table by default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="table",
        show_default=True,
        help="Output format.",
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ShapecalcGroup(click.Group):
    """A group whose errors are always one line on stderr with click's exit status, and
    whose per-model commands (lstm, gru, rnn) are made when they are first asked for."""

    #: command name -> a function making it
    lazy: dict[str, Callable[[], click.Command]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self.lazy[cmd_name](), cmd_name)
        return super().get_command(ctx, cmd_name)

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


Flow = tuple[tuple[tuple[Any, ...], ...], tuple[tuple[Any, ...], ...]]
#: which cost sections were asked for: (shapes, flops, memory)
Sections = tuple[bool, bool, bool]


def _emit(
    model: Model,
    fmt: str,
    explain: bool,
    flow: Flow | None = None,
    cost: Cost | None = None,
    sections: Sections = (False, False, False),
    convention: tuple[Converted, Converted | None] | None = None,
) -> None:
    """Print ``model`` in ``fmt``; only the table path imports rich. ``flow`` is the
    (input shapes, output shapes) of ``--input-shape``; ``cost`` the shapes, compute and
    memory, shown in the ``sections`` asked for (JSON carries all of it)."""
    if fmt == "json":
        from shapecalc.report.as_json import to_json

        text = to_json(model, explanation=explain, flow=flow, cost=cost, convention=convention)
        click.echo(text, nl=False)
        return
    from shapecalc.report import rich_writer as render

    shown = cost is not None and any(sections)
    chosen = convention[0].convention if convention else "pytorch"
    if fmt == "markdown":
        text = render.markdown(model, explanation=explain, convention=chosen)
        if convention:
            text = render.convention_markdown(model, *convention) + "\n" + text
        if flow:
            text += f"- **Shapes**: {render.flow_text(*flow)}\n"
        if shown:
            assert cost is not None
            text += render.cost_markdown(cost, **_named(sections))
        click.echo(text, nl=False)
        return
    if fmt == "latex":
        if convention:
            raise click.UsageError("--format latex shows the pytorch convention only")
        click.echo(render.latex(model), nl=False)
        return
    from rich.console import Console

    console = Console(highlight=False)
    console.print(
        render.convention_table(model, *convention) if convention else render.table(model)
    )
    if flow:
        console.print(f"[bold]Shapes[/bold]  {render.flow_text(*flow)}")
    if shown:
        assert cost is not None
        console.print()
        console.print(render.cost_table(cost, **_named(sections)))
    if explain:
        console.print()
        console.print(render.explanation(model, chosen))


def _named(sections: Sections) -> Any:
    return dict(zip(("shapes", "flops", "memory"), sections, strict=True))


_COST_FLAGS = ("shapes", "flops", "memory", "all_", "dtype", "training", "mixed_precision")
_CONVENTION_FLAGS = ("convention", "reset_after")


def _convention_options(*, gru: bool) -> list[Callable[[F], F]]:
    """``--convention`` and, for a GRU, Keras' ``--reset-after``."""
    from shapecalc.analysis.conventions import CONVENTIONS

    options: list[Callable[[F], F]] = [
        click.option(
            "--convention",
            type=click.Choice(CONVENTIONS),
            default="pytorch",
            show_default=True,
            help="Name and shape the tensors as this framework stores them.",
        )
    ]
    if gru:
        options.append(
            click.option(
                "--reset-after/--no-reset-after",
                default=True,
                show_default=True,
                help="Keras' GRU reset_after: a (2, 3H) bias, or one 3H bias.",
            )
        )
    return options


def _convention(model: Model, flags: dict[str, Any]) -> tuple[Converted, Converted | None] | None:
    """The model in the convention the flags ask for (None for pytorch)."""
    name = flags.get("convention", "pytorch")
    if name == "pytorch":
        return None
    from shapecalc.analysis.conventions import convert_with_template

    try:
        return convert_with_template(model, name, reset_after=flags.get("reset_after", True))
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'--convention'") from None


_SIZE_FLAGS = ("batch", "seq_len")


def _cost_options(*, sequence: bool) -> list[Callable[[F], F]]:
    """``--shapes --flops --memory --all --dtype --training --mixed-precision``, and for a
    model ``--batch --seq-len``."""
    from shapecalc.analysis.cost import OPTIMIZER_STATES
    from shapecalc.core.units import DTYPE_BYTES

    options: list[Callable[[F], F]] = [
        click.option("--shapes", is_flag=True, help="Add every layer's input and output shapes."),
        click.option(
            "--flops",
            is_flag=True,
            help="Add multiply-accumulates and FLOPs per layer, forward and backward.",
        ),
        click.option(
            "--memory",
            is_flag=True,
            help="Add the memory account: weights, gradients, optimizer state, activations "
            "kept for backward, inference state.",
        ),
        click.option("--all", "all_", is_flag=True, help="The same as --shapes --flops --memory."),
        click.option(
            "--dtype",
            type=click.Choice(tuple(DTYPE_BYTES)),
            default="fp32",
            show_default=True,
            help="Storage type of the weights (and activations) for --memory.",
        ),
        click.option(
            "--training",
            type=click.Choice(tuple(OPTIMIZER_STATES)),
            default="adam",
            show_default=True,
            help="Optimizer whose state --memory counts; none for inference.",
        ),
        click.option(
            "--mixed-precision",
            is_flag=True,
            help="fp16/bf16 weights, gradients and activations with an fp32 master copy and "
            "fp32 optimizer state (needs --dtype fp16 or bf16).",
        ),
    ]
    if sequence:
        options += [
            click.option(
                "--batch",
                default="B",
                show_default=True,
                metavar="B",
                help="Batch size for --shapes/--flops/--memory: an integer or a name.",
            ),
            click.option(
                "--seq-len",
                default="T",
                show_default=True,
                metavar="T",
                help="Sequence length for --shapes/--flops/--memory: an integer or a name.",
            ),
        ]
    return options


def _cost(
    model: Model,
    flags: dict[str, Any],
    inputs: tuple[tuple[Any, ...], ...] | None = None,
) -> tuple[Cost | None, Sections]:
    """The analysis the flags ask for; JSON then carries all of it (shapes, compute and
    memory), whichever of the flags was given."""
    all_ = flags["all_"]
    sections = (all_ or flags["shapes"], all_ or flags["flops"], all_ or flags["memory"])
    if not any(sections):
        return None, sections
    if inputs is None and not model.input_layout:
        raise click.UsageError(
            "--shapes, --flops and --memory need the layer's input: give --input-shape"
        )
    from shapecalc.analysis.cost import analyze

    try:
        cost = analyze(
            model,
            inputs,
            batch=flags.get("batch", "B"),
            seq_len=flags.get("seq_len", "T"),
            dtype=flags["dtype"],
            training=flags["training"],
            mixed_precision=flags["mixed_precision"],
        )
    except ShapecalcError as err:
        raise _engine_error(err, {"input": "--input-shape"}) from None
    return cost, sections


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


_VERIFY = click.option(
    "--verify",
    is_flag=True,
    help="Build the real torch module on the meta device and confirm every name and shape.",
)


def _verify(model: Model) -> None:
    """--verify: compare with the real module; exit 1 when anything differs."""
    if model.symbolic:
        raise click.UsageError("--verify needs every size as a number, not a symbol")
    try:
        from shapecalc.adapters.torch_bridge import _torch, build, compare

        torch = _torch()
        diff = compare(model, build(model))
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'--verify'") from None
    where = f"torch {torch.__version__}, meta device"
    if diff.ok:
        click.echo(f"Verified against {where}: {diff}", err=True)
        return
    click.echo(f"Error: differs from {where}: {diff}", err=True)
    sys.exit(1)


#: command name -> (factory name in shapecalc.architectures, the cell's display name)
_MODELS = {"lstm": ("lstm_lm", "LSTM"), "gru": ("gru_lm", "GRU"), "rnn": ("rnn_lm", "RNN")}
_ARTICLE = {"lstm": "An", "gru": "A", "rnn": "An"}


def _model_options(cell: str, *, solving: bool) -> Callable[[F], F]:
    """A recurrent language model's flags, shared by ``CELL`` and ``solve CELL``.

    Sizes are integers or size names (H, V, ...); when solving, none is required, since
    one of them is the free size."""
    name = _MODELS[cell][1]
    options = [
        click.option(
            "--layers",
            default=None if solving else "1",
            show_default=not solving,
            metavar="L",
            help=f"Number of stacked {name} layers" + (" [default: 1]." if solving else "."),
        ),
        click.option(
            "--hidden",
            required=not solving,
            metavar="H",
            help="Hidden size: the length of h_t (the 'hidden nodes').",
        ),
        click.option(
            "--vocab",
            required=not solving,
            metavar="V",
            help="Vocabulary size: characters or tokens in and out.",
        ),
        click.option("--embed-dim", default=None, metavar="E", help="Embedding size [default: H]."),
        click.option(
            "--one-hot",
            is_flag=True,
            help=f"No embedding: the {name} reads one-hot vectors of size V (char-rnn).",
        ),
        click.option("--no-bias", is_flag=True, help=f"No biases in the {name} nor in the head."),
        click.option(
            "--bidirectional", is_flag=True, help=f"A backward {name} beside the forward one."
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
            help=f"Dropout between {name} layers, in [0, 1); it adds no parameters.",
        ),
    ]
    if cell == "lstm":
        options.append(
            click.option(
                "--proj-size",
                default="0",
                show_default=True,
                metavar="P",
                help="Project h_t down to this size (LSTM proj_size); 0 for none.",
            )
        )
    if cell == "rnn":
        options.append(
            click.option(
                "--nonlinearity",
                type=click.Choice(["tanh", "relu"]),
                default="tanh",
                show_default=True,
                help="The RNN's activation.",
            )
        )
    return _apply(options)


def _model_arguments(flags: dict[str, Any]) -> dict[str, Any]:
    """The factory's keyword arguments from the flags (None: not given)."""
    arguments = dict(flags)
    arguments["bias"] = not arguments.pop("no_bias")
    return arguments


def _factory(cell: str) -> Callable[..., Model]:
    from shapecalc import architectures

    factory: Callable[..., Model] = getattr(architectures, _MODELS[cell][0])
    return factory


def _model_command(cell: str) -> click.Command:
    name = _MODELS[cell][1]

    @_model_options(cell, solving=False)
    @_format_option(FORMATS)
    @click.option(
        "--explain",
        is_flag=True,
        help=f"Explain the {name} equations, its matrices and their shapes.",
    )
    @_VERIFY
    @click.option(
        "--batch-first/--no-batch-first",
        default=True,
        show_default=True,
        help="Inputs (B, T) as with batch_first=True, or (T, B).",
    )
    @_apply(_cost_options(sequence=True))
    @_apply(_convention_options(gru=cell == "gru"))
    def command(fmt: str, explain: bool, verify: bool, **flags: Any) -> None:
        analysis = {k: flags.pop(k) for k in (*_COST_FLAGS, *_SIZE_FLAGS)}
        naming = {k: flags.pop(k) for k in _CONVENTION_FLAGS if k in flags}
        try:
            model = _factory(cell)(**_model_arguments(flags))
        except ShapecalcError as err:
            raise _engine_error(err) from None
        cost, sections = _cost(model, analysis)
        _emit(
            model, fmt, explain, cost=cost, sections=sections, convention=_convention(model, naming)
        )
        if verify:
            _verify(model)

    example = (
        '\n\n    \b\n    Example, the "2-layer LSTM with 512 hidden nodes" on 65 characters:\n'
        "      shapecalc lstm --layers 2 --hidden 512 --vocab 65"
        if cell == "lstm"
        else ""
    )
    command.__doc__ = (
        f"{_ARTICLE[cell]} {name} language model: embedding (V -> E), L-layer {name} (H), "
        "head (-> V).\n\n"
        "    Every size is an integer or a size name: --hidden H --vocab V --layers L prints\n"
        "    each shape and count as a formula." + example
    )
    return click.command(cell)(command)


def _maker(make: Callable[[str], click.Command], cell: str) -> Callable[[], click.Command]:
    return lambda: make(cell)


for _cell in _MODELS:
    cli.lazy[_cell] = _maker(_model_command, _cell)


@cli.group("compare-conventions", cls=ShapecalcGroup)
def compare_conventions() -> None:
    """The same model as PyTorch, Keras and ONNX store it, side by side: each framework's
    tensor names, shapes, gate order and counts, and why the totals differ."""


def _compare_command(cell: str) -> click.Command:
    name = _MODELS[cell][1]

    @_model_options(cell, solving=False)
    @_format_option(("table", "json", "markdown"))
    @_apply(_convention_options(gru=cell == "gru")[1:])
    def command(fmt: str, **flags: Any) -> None:
        from shapecalc.analysis.conventions import CONVENTIONS, convert_with_template

        reset_after = flags.pop("reset_after", True)
        try:
            model = _factory(cell)(**_model_arguments(flags))
        except ShapecalcError as err:
            raise _engine_error(err) from None
        done: list[tuple[Converted, Converted | None]] = []
        refused: list[tuple[str, str]] = []
        for convention in CONVENTIONS:
            try:
                done.append(convert_with_template(model, convention, reset_after=reset_after))
            except ShapecalcError as err:
                refused.append((convention, err.rule or str(err)))
        if fmt == "json":
            from shapecalc.report.as_json import comparison_json

            click.echo(comparison_json(model, done, refused), nl=False)
            return
        from shapecalc.report import rich_writer as render

        if fmt == "markdown":
            text = "\n".join(render.convention_markdown(model, c, t) for c, t in done)
            text += "".join(f"\n- **{conv}**: {why}\n" for conv, why in refused)
            click.echo(text, nl=False)
            return
        from rich.console import Console

        console = Console(highlight=False)
        console.print(render.conventions_side_by_side(model, [c for c, _ in done]))
        for convention, why in refused:
            console.print(f"[bold]{convention}[/bold]  cannot store this model: {why}")

    command.__doc__ = (
        f"The {name} language model in PyTorch's, Keras' and ONNX's conventions.\n\n"
        f"    Example: shapecalc compare-conventions {cell} --layers 2 --hidden 512 --vocab 65"
    )
    return click.command(cell)(command)


for _cell in _MODELS:
    compare_conventions.lazy[_cell] = _maker(_compare_command, _cell)  # type: ignore[attr-defined]


@cli.group(cls=ShapecalcGroup)
def solve() -> None:
    """Find the size that brings a model closest to a parameter budget."""


#: --for choices -> the factory argument they free
_FREE = {"hidden": "hidden", "layers": "layers", "vocab": "vocab", "embed-dim": "embed_dim"}


def _solve_command(cell: str) -> click.Command:
    name = _MODELS[cell][1]

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
    @_model_options(cell, solving=True)
    @_format_option(("table", "json"))
    @_apply(_convention_options(gru=cell == "gru"))
    def command(budget: str, free: str, multiple_of: int, fmt: str, **flags: Any) -> None:
        from shapecalc.analysis.sizing import solve as solve_for

        free_arg = _FREE[free]
        naming = {k: flags.pop(k) for k in _CONVENTION_FLAGS if k in flags}
        arguments = _model_arguments(flags)
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
            solution = solve_for(
                _factory(cell), budget, free_arg, multiple_of=multiple_of, **naming, **fixed
            )
        except ShapecalcError as err:
            flags_of = {"target": "--params", "multiple_of": "--multiple-of"}
            raise _engine_error(err, flags_of) from None
        if fmt == "json":
            from shapecalc.report.as_json import solution_json

            click.echo(solution_json(solution), nl=False)
            return
        from rich.console import Console

        from shapecalc.report import rich_writer as render

        Console(highlight=False).print(render.solution_table(solution))

    command.__doc__ = (
        f"The size of {_ARTICLE[cell].lower()} {name} language model (hidden by default) "
        "closest to a budget."
        + (
            "\n\n    \b\n    Example: the hidden size of a 2-layer model on 65 characters"
            " with 10M parameters:\n      shapecalc solve lstm --params 10M --layers 2 --vocab 65"
            if cell == "lstm"
            else ""
        )
    )
    return click.command(cell)(command)


for _cell in _MODELS:
    solve.lazy[_cell] = _maker(_solve_command, _cell)  # type: ignore[attr-defined]


class _IntOrTuple(click.ParamType):  # type: ignore[type-arg]
    """``3``, ``3,3``, ``(3, 3)``, ``none`` or a word (``same``); ``none`` is None (an
    adaptive pool's ``none,7`` keeps the input's size), other words stay strings."""

    name = "int|tuple"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip().strip("()[]").replace("x", ",").replace(" ", "")
        items = [item for item in text.split(",") if item]
        if not items:
            self.fail(f"{value!r} is empty", param, ctx)
        parsed: list[Any] = [
            int(item) if _is_int(item) else None if item.lower() == "none" else item
            for item in items
        ]
        if len(parsed) == 1 and "," not in value:
            return parsed[0]
        return tuple(parsed)


class _Optional(click.ParamType):  # type: ignore[type-arg]
    """A number, or ``none``."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = f"{kind.__name__}|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or not isinstance(value, str):
            return value
        if value.strip().lower() == "none":
            return None
        try:
            return self.kind(value)
        except ValueError:
            what = {"int": "an integer", "float": "a number"}[self.kind.__name__]
            self.fail(f"{value!r} is not {what} or 'none'", param, ctx)


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit() and text.lstrip("+-").isascii()


def _shape(text: str) -> tuple[Any, ...]:
    """``32,100,512`` or ``(B, T, 512)``: an input shape for ``--input-shape``."""
    items = [i for i in text.strip().strip("()[]").replace(" ", "").split(",") if i]
    return tuple(int(i) if _is_int(i) else i for i in items)


def _field_option(field: Any) -> Callable[[F], F]:
    """A click option for one constructor argument of a layer spec."""
    import dataclasses

    flag = "--" + field.name.replace("_", "-")
    required = field.default is dataclasses.MISSING
    default = field.default
    kind = str(field.type)
    if kind in ("bool", "bool | None"):  # None when neither flag is given
        return click.option(
            f"{flag}/--no-{field.name.replace('_', '-')}",
            field.name,
            default=default,
            show_default=default is not None,
        )
    types: dict[str, Any] = {
        "float": click.FLOAT,
        "int": click.INT,
        "float | None": _Optional(float),
        "int | None": _Optional(int),
        "Any": _IntOrTuple(),
        "str": click.STRING,
    }
    settings: dict[str, Any] = (
        {"required": True}
        if required
        else {
            "default": default,
            "show_default": True,
        }
    )  # no default at all when required: click treats default=None as a given value
    return click.option(
        flag,
        field.name,
        type=types.get(kind, click.STRING),
        metavar="N" if kind.startswith("Dim") else None,
        **settings,
    )


def _layer_command(kind: str) -> click.Command:
    import dataclasses

    from shapecalc.layers import LAYER_KINDS

    cls = LAYER_KINDS[kind]

    def command(fmt: str, input_shape: tuple[str, ...], verify: bool, **arguments: Any) -> None:
        from shapecalc.architectures import layer_model
        from shapecalc.core.dims import as_size

        analysis = {k: arguments.pop(k) for k in _COST_FLAGS}
        naming = {k: arguments.pop(k) for k in _CONVENTION_FLAGS if k in arguments}
        try:
            spec = cls(**arguments)
            inputs = tuple(
                tuple(as_size(d, owner=kind, field="input", minimum=0) for d in _shape(text))
                for text in input_shape
            )
            outputs = spec.output_shapes(*inputs) if inputs else ()
        except ShapecalcError as err:
            raise _engine_error(err, {"input": "--input-shape"}) from None
        model = layer_model(spec)
        cost, sections = _cost(model, analysis, inputs or None)
        flow = (inputs, outputs) if inputs and not sections[0] else None
        converted = _convention(model, naming)
        _emit(model, fmt, False, flow=flow, cost=cost, sections=sections, convention=converted)
        if verify:
            _verify(model)

    options = [_field_option(f) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    options += [
        *_cost_options(sequence=False),
        *_convention_options(gru=kind == "GRU"),
        _VERIFY,
        click.option(
            "--input-shape",
            multiple=True,
            metavar="SHAPE",
            help="An input shape such as 32,100,512 (names allowed: B,T,512); repeat for "
            "layers with several inputs. Prints the output shapes.",
        ),
        _format_option(FORMATS),
    ]
    from shapecalc.report.reference import signature

    command.__doc__ = f"{cls.summary}.\n\n    \b\n    torch.nn.{signature(cls)}"
    return click.command(kind.lower())(_apply(options)(command))


class _LayerGroup(click.Group):
    """``shapecalc layer KIND``: one command per registered kind, made on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from shapecalc.layers import LAYER_KINDS

        return sorted(k.lower() for k in LAYER_KINDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from shapecalc.layers import LAYER_KINDS

        kind = {k.lower(): k for k in LAYER_KINDS}.get(cmd_name.lower())
        return _layer_command(kind) if kind else None


@cli.group(cls=_LayerGroup)
def layer() -> None:
    """One torch.nn layer with its own arguments: shapecalc layer conv2d --in-channels 3
    --out-channels 64 --kernel-size 7 --stride 2 --padding 3."""


@cli.command()
@_format_option(("table", "json"))
def layers(fmt: str) -> None:
    """List the layer kinds shapecalc knows, with their count formulas."""
    from shapecalc.layers import LAYER_KINDS
    from shapecalc.report.reference import signature

    rows = []
    for kind, cls in sorted(LAYER_KINDS.items(), key=lambda item: (item[1].family, item[0])):
        formula = cls(**cls.formula_args).total()
        rows.append(
            {
                "kind": kind,
                "command": f"shapecalc layer {kind.lower()}",
                "family": cls.family,
                "summary": cls.summary,
                "signature": signature(cls),
                "formula": str(formula),
                "formula_of": str(cls(**cls.formula_args)),
            }
        )
    if fmt == "json":
        import json

        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} layer kinds", title_justify="left")
    for column in ("Kind", "Family", "Parameters", "What it is"):
        table.add_column(column, no_wrap=column == "Kind")
    for row in rows:
        table.add_row(row["kind"], row["family"], f"{row['formula']}", row["summary"])
    Console(highlight=False).print(table)


@cli.command()
@click.argument("target")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Levels of the module tree to show; deeper tensors are summed into their node.",
)
@_format_option(("table", "json"))
def inspect(target: str, depth: int, fmt: str) -> None:
    """The tensors of a checkpoint or a model, as a tree with subtotals.

    \b
    TARGET is one of:
      model.safetensors        read by its header only, without torch
      model.pt / .pth / .bin   torch.load(weights_only=True, mmap=True): never runs code
      package.module:attr      an nn.Module, or a function returning one (imports your code)
    """
    from shapecalc.adapters.targets import inspect_target

    try:
        inspection = inspect_target(target)
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'TARGET'") from None
    if fmt == "json":
        from shapecalc.report.as_json import inspection_json

        click.echo(inspection_json(inspection), nl=False)
        return
    from rich.console import Console

    from shapecalc.report import rich_writer as render

    Console(highlight=False).print(render.inspection_tree(inspection, depth))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shapecalc")
