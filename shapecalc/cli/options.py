"""What the model commands share: their options (format, depth, explain, verify, cost,
convention), the click types, and the path from flags to a printed report.

A report is built once (:class:`shapecalc.report.Report`) and written by one writer per
format; only the table and tree formats import rich.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from shapecalc.cli.group import engine_error
from shapecalc.core.dims import Expr
from shapecalc.core.errors import InvalidArgumentError, MissingDependencyError, ShapecalcError

if TYPE_CHECKING:
    from shapecalc.analysis.conventions import Converted
    from shapecalc.analysis.cost import Cost
    from shapecalc.core.declare import Reference
    from shapecalc.core.model import Model
    from shapecalc.report import Report

__all__ = [
    "COST_FLAGS",
    "F",
    "apply",
    "convention_options",
    "cost_options",
    "format_option",
    "report_options",
    "show",
]

F = TypeVar("F", bound=Callable[..., Any])
#: every format of a model report (``shapecalc.report.FORMATS``, without importing it)
FORMATS = ("table", "tree", "json", "markdown", "latex")
#: the flags of the cost sections, popped from a command's keyword arguments
COST_FLAGS = ("shapes", "flops", "memory", "all_", "dtype", "training", "mixed_precision")
SIZE_FLAGS = ("batch", "seq_len")
CONVENTION_FLAGS = ("convention", "reset_after")
REPORT_FLAGS = ("fmt", "depth", "explain", "verify", "plot", "plot_file")


def apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def format_option(choices: tuple[str, ...]) -> Callable[[F], F]:
    """``--format``, table by default."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="table",
        show_default=True,
        help="Output format.",
    )


def report_options(*, explain: str | None) -> list[Callable[[F], F]]:
    """``--format``, ``--depth``, ``--verify`` and (with its help) ``--explain``."""
    options = [
        format_option(FORMATS),
        click.option(
            "--depth",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="Levels of names to show; deeper tensors are summed into their node "
            "(table, tree, Markdown, LaTeX) [default: every tensor].",
        ),
    ]
    if explain:
        options.append(click.option("--explain", is_flag=True, help=explain))
    options.append(
        click.option(
            "--verify",
            is_flag=True,
            help="Build the real torch module on the meta device and confirm every name and shape.",
        )
    )
    options += plot_options(
        "Draw where the parameters are: a bar per node at --depth (default 1); with "
        "--memory, the memory account as a stacked bar."
    )
    return options


def plot_options(what: str) -> list[Callable[[F], F]]:
    """``--plot`` (in the terminal) and ``--plot-file FILE`` (.svg or .png, matplotlib)."""
    return [
        click.option("--plot", is_flag=True, help=what),
        click.option(
            "--plot-file",
            default=None,
            metavar="FILE",
            help="Draw the same into FILE (.svg or .png; needs shapecalc[plot]).",
        ),
    ]


def convention_options(*, gru: bool) -> list[Callable[[F], F]]:
    """``--convention`` and, for a model with a GRU, Keras' ``--reset-after``."""
    from shapecalc.core.choices import CONVENTIONS

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


def price_options(used_by: str) -> list[Callable[[F], F]]:
    """``--dtype``, ``--training`` and ``--mixed-precision``: what the memory account
    prices (``used_by``: the option or command that uses them, for their help)."""
    from shapecalc.core.choices import OPTIMIZER_STATES
    from shapecalc.core.units import DTYPE_BYTES

    return [
        click.option(
            "--dtype",
            type=click.Choice(tuple(DTYPE_BYTES)),
            default="fp32",
            show_default=True,
            help=f"Storage type of the weights (and activations) for {used_by}.",
        ),
        click.option(
            "--training",
            type=click.Choice(tuple(OPTIMIZER_STATES)),
            default="adam",
            show_default=True,
            help=f"Optimizer whose state is counted in {used_by}; none for inference.",
        ),
        click.option(
            "--mixed-precision",
            is_flag=True,
            help="fp16/bf16 weights, gradients and activations with an fp32 master copy and "
            "fp32 optimizer state (needs --dtype fp16 or bf16).",
        ),
    ]


def cost_options(*, model: bool, sequence: bool = False) -> list[Callable[[F], F]]:
    """``--shapes --flops --memory --all --dtype --training --mixed-precision``; for a
    model (whose input has a layout) ``--batch``, and for one that reads sequences
    ``--seq-len``."""
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
        *price_options("--memory"),
    ]
    if model:
        options.append(
            click.option(
                "--batch",
                default="B",
                show_default=True,
                metavar="B",
                help="Batch size for --shapes/--flops/--memory: an integer or a name.",
            )
        )
    if sequence:
        options += [
            click.option(
                "--seq-len",
                default="T",
                show_default=True,
                metavar="T",
                help="Sequence length for --shapes/--flops/--memory: an integer or a name.",
            ),
        ]
    return options


def pop(flags: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The flags named ``names`` that the command has, taken out of ``flags``."""
    return {k: flags.pop(k) for k in names if k in flags}


def _cost(
    model: Model, flags: dict[str, Any], inputs: tuple[tuple[Any, ...], ...] | None
) -> tuple[Cost | None, tuple[bool, bool, bool]]:
    """The analysis the flags ask for; JSON then carries all of it."""
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
        raise engine_error(err, {"input": "--input-shape"}) from None
    return cost, sections


def _convention(model: Model, flags: dict[str, Any]) -> tuple[Converted, Converted | None] | None:
    name = flags.get("convention", "pytorch")
    if name == "pytorch":
        return None
    from shapecalc.analysis.conventions import convert_with_template

    try:
        return convert_with_template(model, name, reset_after=flags.get("reset_after", True))
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'--convention'") from None


def build_report(
    model: Model,
    flags: dict[str, Any],
    *,
    inputs: tuple[tuple[Any, ...], ...] | None = None,
    outputs: tuple[tuple[Any, ...], ...] = (),
) -> Report:
    """The report the flags ask for, each part computed once: the cost sections, the
    convention, the explanation (gate order in the chosen convention), a layer's shapes."""
    from shapecalc.report import Report

    cost, sections = _cost(model, flags, inputs)
    convention = _convention(model, flags)
    explanation: tuple[Any, ...] = ()
    if flags.get("explain"):
        from shapecalc.analysis.explain import explain

        chosen = convention[0].convention if convention else "pytorch"
        explanation = tuple(explain(model, chosen))
    flow = (inputs, outputs) if inputs and not sections[0] else None
    return Report(
        model,
        cost=cost,
        sections=sections,
        convention=convention,
        explanation=explanation,
        flow=flow,
        depth=flags.get("depth"),
    )


def show(report: Report, fmt: str) -> None:
    """Print the report in ``fmt``; only the table and the tree import rich."""
    if fmt in ("table", "tree"):
        from shapecalc.report.rich_writer import echo, renderables

        echo(*renderables(report, fmt))
        return
    from shapecalc.report import text

    click.echo(text(report, fmt), nl=False)


def verify(model: Model, reference: Reference | None = None) -> None:
    """``--verify``: compare with the real module (the ``transformers`` class of the same
    configuration, when there is one and it is installed; ``reference`` when given, as a
    config file names it); exit 1 when anything differs."""
    _buildable(model)
    if reference is None and model.config is not None:
        reference = model.config.reference()
    try:
        from shapecalc.adapters.torch_bridge import build, build_reference, compare, load_torch

        torch = load_torch()
        module, where, note = None, f"torch {torch.__version__}, meta device", ""
        if reference is not None:
            try:
                module = build_reference(reference)
                version = sys.modules[reference.library].__version__
                where = f"{reference.library} {version} {reference.model}, meta device"
            except MissingDependencyError:  # the library, not torch: torch is here
                note = f" ({reference.library} is not installed: the module shapecalc builds)"
            except InvalidArgumentError as err:
                if err.field != reference.library:
                    raise
                note = f" ({err.message}; the module shapecalc builds)"
        elif model.config is not None and _has_references(model):
            note = " (no transformers class has this combination of flags)"
        diff = compare(model, build(model) if module is None else module)
    except ShapecalcError as err:
        raise click.BadParameter(str(err), param_hint="'--verify'") from None
    if diff.ok:
        click.echo(f"Verified against {where}{note}: {diff}", err=True)
        return
    click.echo(f"Error: differs from {where}: {diff}", err=True)
    sys.exit(1)


#: the modules and tensors --verify builds in seconds on the meta device
MOST_MODULES, MOST_TENSORS = 10_000, 20_000


def _buildable(model: Model) -> None:
    """Refuse, before building (and before anything is printed), what torch cannot build
    or not in seconds: anything without torch installed, a tensor of 2^63 numbers or
    more, more modules than :data:`MOST_MODULES` or tensors than :data:`MOST_TENSORS`."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise click.BadParameter(
            "this needs PyTorch, which is not installed; install it with pip install "
            "'shapecalc[torch]' (or pip install torch)",
            param_hint="'--verify'",
        )
    modules = 0
    for layer in model.layers:
        copies = layer.copies
        if not isinstance(copies, int) or copies >= MOST_MODULES:
            modules = MOST_MODULES + 1
            break
        modules += copies
    tensors = model.tensor_count()
    if modules > MOST_MODULES or not isinstance(tensors, int) or tensors > MOST_TENSORS:
        raise click.BadParameter(
            f"it builds every module on the meta device, and this model has more than "
            f"{MOST_MODULES:,} modules or {MOST_TENSORS:,} tensors; the same block with fewer "
            "layers checks the same names and shapes",
            param_hint="'--verify'",
        )
    for row in model.rows():
        count = row.count
        if isinstance(count, int) and count >= 2**63:
            raise click.BadParameter(
                f"torch holds at most 2^63 - 1 numbers in a tensor, and {row.name} would hold more",
                param_hint="'--verify'",
            )


def _has_references(model: Model) -> bool:
    """Whether the model's architecture names classes of another library for some of its
    configurations (it overrides :meth:`~shapecalc.core.declare.Architecture.reference`)."""
    from shapecalc.core.declare import Architecture

    return type(model.config).reference is not Architecture.reference


def finish(
    model: Model, flags: dict[str, Any], reference: Reference | None = None, **shapes: Any
) -> None:
    """Build the report the flags ask for, print it, and verify when asked (against
    ``reference`` when given; a model with sizes as names is refused before anything is
    printed)."""
    if flags.get("verify") and model.symbolic:
        names = [k for k, v in model.sizes.items() if isinstance(v, Expr)] or ["a size"]
        raise click.BadParameter(
            f"the real module needs every size as a number, and {', '.join(names)} "
            f"{'is a name' if len(names) == 1 else 'are names'}",
            param_hint="'--verify'",
        )
    if flags.get("verify"):
        _buildable(model)  # refused before anything is printed
    if flags.get("plot") or flags.get("plot_file"):
        _drawable(model, flags)
    if flags.get("plot_file"):
        from shapecalc.report.plot import check_file

        try:
            check_file(flags["plot_file"])
        except ShapecalcError as err:
            raise engine_error(err, {"plot_file": "--plot-file"}) from None
    report = build_report(model, flags, **shapes)
    show(report, flags["fmt"])
    if flags.get("plot") or flags.get("plot_file"):
        draw(report, flags)
    if flags.get("verify"):
        verify(model, reference)
    note = ignored(flags)
    if note:
        click.echo(f"Warning: {note}", err=True)


def _drawable(model: Model, flags: dict[str, Any]) -> None:
    """Refuse a picture of letters before anything is printed: the sizes, and with
    --memory the batch and the sequence length, must be numbers."""
    hint = "'--plot-file'" if flags.get("plot_file") and not flags.get("plot") else "'--plot'"
    if model.symbolic:
        raise click.BadParameter(
            "a picture draws numbers: give every size a number", param_hint=hint
        )
    if flags.get("memory") or flags.get("all_"):
        named = [
            f"--{name.replace('_', '-')}"
            for name in ("batch", "seq_len")
            if name in flags and not str(flags[name]).strip().isdigit()
        ]
        if named:
            raise click.BadParameter(
                f"the memory picture draws numbers: give {' and '.join(named)} a number "
                f"(now {', '.join(str(flags[n]) for n in ('batch', 'seq_len') if n in flags)})",
                param_hint=hint,
            )
    plot_with_table(bool(flags.get("plot")), flags.get("fmt", "table"))


def plot_with_table(plot: bool, fmt: str) -> None:
    """--plot draws for a terminal, under the table (or tree): JSON, CSV or Markdown
    that a chart follows would no longer parse."""
    if plot and fmt not in ("table", "tree"):
        raise click.BadParameter(
            f"--plot draws in the terminal under the table, not after --format {fmt} "
            "(which a program reads): use --plot-file FILE, or --format table",
            param_hint="'--plot'",
        )


def draw(report: Report, flags: dict[str, Any]) -> None:
    """--plot and --plot-file: the parameters by node of the tree at --depth (the
    model's own grouping unless given), and with --memory the memory account as one
    stacked bar."""
    from shapecalc.report.plot import draw_file, draw_terminal, memory_bars, parameter_bars

    memory = flags.get("memory") or flags.get("all_")
    try:
        depth = flags.get("depth") or getattr(report.model, "group_depth", None) or 1
        bars = [parameter_bars(report.model, depth)]
        if memory and report.cost is not None:
            bars.append(memory_bars(report.cost))
        if flags.get("plot"):
            click.echo(draw_terminal(bars))
        if flags.get("plot_file"):
            draw_file(bars, flags["plot_file"])
            click.echo(f"Wrote {flags['plot_file']}", err=True)
    except ShapecalcError as err:
        raise engine_error(err, {"plot_file": "--plot-file"}) from None


#: the cost flags that only size or price a section: (fields, what uses them)
_USED_BY = (
    (("batch", "seq_len"), "--shapes, --flops, --memory or --all"),
    (("dtype", "training", "mixed_precision"), "--memory or --all"),
)


def ignored(flags: dict[str, Any]) -> str:
    """The cost flags given on the command line that the report does not use, in one
    line (``--batch 64 is ignored without --shapes, --flops, --memory or --all``), or
    nothing: --batch and --seq-len size the cost sections, --dtype, --training and
    --mixed-precision price the memory account (JSON carries the whole cost with any
    section)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None or "all_" not in flags:
        return ""
    all_ = flags["all_"]
    sections = [all_ or flags["shapes"], all_ or flags["flops"], all_ or flags["memory"]]
    used = (any(sections), sections[2] or (any(sections) and flags.get("fmt") == "json"))
    parts = []
    for (names, needs), on in zip(_USED_BY, used, strict=True):
        given = [
            _given(ctx, name, flags[name])
            for name in names
            if name in flags and not on and _from_user(ctx, name)
        ]
        if given:
            verb = "is" if len(given) == 1 else "are"
            parts.append(f"{' and '.join(given)} {verb} ignored without {needs}")
    return "; ".join(parts)


def _from_user(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _given(ctx: click.Context, name: str, value: Any) -> str:
    """``--batch 64`` (a flag alone: ``--mixed-precision``), the value cut to a readable
    length and shown printable."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return flag
    text = str(value)
    if not text.isprintable():
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return f"{flag} {text if len(text) <= 40 else text[:39] + '…'}"
