"""What the model commands share: their options (format, depth, explain, verify, cost,
convention), the click types, and the path from flags to a printed report.

The flags become one library call (:func:`shapecalc.report.pipeline.build_report`, the
report a Python user gets too), whose :class:`~shapecalc.report.Report` is written by one
writer per format; only the table and tree formats import rich.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from shapecalc.cli.group import engine_error
from shapecalc.cli.parallel_options import PARALLEL_FLAGS, parallel_options, plan_of
from shapecalc.core.errors import ShapecalcError

if TYPE_CHECKING:
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
COST_FLAGS = (
    "shapes",
    "flops",
    "memory",
    "all_",
    "dtype",
    "training",
    "mixed_precision",
    "latent_cache",
    "weights",
    "lora_rank",
    "lora_alpha",
    "lora_targets",
    "lora_bias",
    "use_dora",
    "modules_to_save",
    *PARALLEL_FLAGS,
)
SIZE_FLAGS = ("batch", "seq_len")
CONVENTION_FLAGS = ("convention", "reset_after")
REPORT_FLAGS = ("fmt", "depth", "explain", "verify", "against", "plot", "plot_file")


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
    options.append(
        click.option(
            "--against",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="A checkpoint (.safetensors, .pt, .pth, .bin) to check: every tensor's name "
            "and shape against the model's, each difference listed (exit status 1).",
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


def price_options(used_by: str, *, config: bool = False) -> list[Callable[[F], F]]:
    """``--dtype``, ``--training`` and ``--mixed-precision``: what the memory account
    prices (``used_by``: the option or command that uses them, for their help;
    ``config``: the model comes from a config, whose torch_dtype is the default)."""
    from shapecalc.core.choices import CACHE_CONVENTIONS, OPTIMIZER_STATES
    from shapecalc.core.units import DTYPE_BYTES

    return [
        click.option(
            "--dtype",
            type=click.Choice(tuple(DTYPE_BYTES)),
            default="fp32",
            show_default=not config,
            help=f"Storage type of the weights (and activations) for {used_by}."
            + (
                " Default: the config's torch_dtype (or dtype) when it is float32, float16 "
                "or bfloat16, else fp32."
                if config
                else ""
            ),
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
        click.option(
            "--latent-cache",
            type=click.Choice(CACHE_CONVENTIONS),
            default="latent",
            show_default=True,
            help="How latent attention's cache is counted (DeepSeek): latent, the compressed "
            "latent and the rotated key per position, as transformers 5, vLLM and SGLang "
            "keep it; heads, every head's keys and values, as transformers 4 kept them.",
        ),
        click.option(
            "--weights",
            default=None,
            metavar="FORMAT",
            help="Store the weights quantized: int8 or nf4/fp4 (bitsandbytes), fp8 (blocks of "
            "128×128), mxfp4 (gpt-oss's experts), or a format with settings by the "
            "quantization_config's keys (nf4:bnb_4bit_use_double_quant=true, "
            "fp8:weight_block_size=null); none: as they are (hf: its config's "
            "quantization_config by default). The table lists the stored tensors and the "
            "memory account prices them.",
        ),
    ]


def lora_options() -> list[Callable[[F], F]]:
    """``--lora-rank --lora-alpha --lora-targets --lora-bias --use-dora
    --modules-to-save``: a LoRA adapter on the frozen model, as peft builds it."""
    return [
        click.option(
            "--lora-rank",
            type=int,
            default=None,
            metavar="R",
            help="Add a LoRA adapter of rank R (peft's r): the tensors peft adds, trainable, "
            "the model's own frozen; --memory prices gradients and optimizer state for the "
            "adapter only.",
        ),
        click.option(
            "--lora-alpha",
            type=float,
            default=None,
            metavar="A",
            help="peft's lora_alpha, recorded (it scales the update, no tensor).  [default: 8]",
        ),
        click.option(
            "--lora-targets",
            default=None,
            metavar="NAMES",
            help="The modules LoRA adapts, as peft's target_modules: names separated by "
            "commas (a name or the end of one: q_proj,v_proj), re:REGEX (the whole name "
            "matches), or all-linear (every Linear but the output head).  [default: peft's "
            "own for the config's model_type (q_proj,v_proj for llama, qwen2), refused "
            "where peft has none]",
        ),
        click.option("--lora-bias", is_flag=True, help="Give lora_B a bias (peft's lora_bias)."),
        click.option(
            "--use-dora",
            is_flag=True,
            help="DoRA: a magnitude vector per adapted layer (peft's use_dora).",
        ),
        click.option(
            "--modules-to-save",
            default=None,
            metavar="NAMES",
            help="Modules trained whole beside the adapter (peft's modules_to_save, names "
            "separated by commas: lm_head): a frozen original and a trainable copy.",
        ),
    ]


def adapter_of(flags: dict[str, Any]) -> Any:
    """The LoRA adapter the flags ask for (a ``LoraConfig``), or None."""
    given = {k: flags.get(k) for k in COST_FLAGS if k.startswith(("lora_", "use_", "modules_"))}
    rank = given.get("lora_rank")
    if rank is None:
        others = [k for k, v in given.items() if v not in (None, False)]
        if others:
            flag = "--" + others[0].replace("_", "-")
            raise click.BadParameter(
                f"{flag} needs --lora-rank (the adapter's rank r)", param_hint=f"'{flag}'"
            )
        return None
    from shapecalc.adapt import LoraConfig

    text = given.get("lora_targets")
    targets: Any = text  # None: peft's default for the model's type, chosen with the model
    if text is not None and text.startswith("re:"):
        targets = text[3:]
    elif text is not None and text.strip().lower() != "all-linear":
        targets = tuple(t.strip() for t in text.split(",") if t.strip())
    saved = given.get("modules_to_save") or ""
    alpha = given.get("lora_alpha")
    try:
        config = LoraConfig(
            r=rank,
            targets=targets,
            alpha=8 if alpha is None else (int(alpha) if alpha.is_integer() else alpha),
            bias=bool(given.get("lora_bias")),
            dora=bool(given.get("use_dora")),
            modules_to_save=tuple(s.strip() for s in saved.split(",") if s.strip()),
        )
    except ShapecalcError as err:
        raise engine_error(err) from None
    return config


def cost_options(
    *, model: bool, sequence: bool = False, config: bool = False
) -> list[Callable[[F], F]]:
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
        *price_options("--memory", config=config),
        *lora_options(),
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
        options += parallel_options()
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


def build(
    model: Model,
    flags: dict[str, Any],
    *,
    inputs: tuple[tuple[Any, ...], ...] | None = None,
    outputs: tuple[tuple[Any, ...], ...] = (),
    reference: Reference | None = None,
) -> Report:
    """The report the flags ask for, from the library's one call
    (:func:`shapecalc.report.pipeline.build_report`); its errors as usage errors naming
    the flag of the part they came from."""
    from shapecalc.report.pipeline import build_report

    all_ = flags.get("all_", False)
    shapes, flops, memory = (all_ or flags.get(k, False) for k in ("shapes", "flops", "memory"))
    if (shapes or flops or memory) and inputs is None and not model.input_layout:
        ctx = click.get_current_context(silent=True)
        flag = ctx is not None and any("--input-shape" in p.opts for p in ctx.command.params)
        raise click.UsageError(
            "--shapes, --flops and --memory need the model's input: "
            + (
                "give --input-shape"
                if flag
                else "give it an input_layout where it is made "
                '(Model(..., input_layout=(("B", "T", 64),)), the shapes of its inputs)'
            )
        )
    parallel, accounting = plan_of(flags)
    sharded = parallel is not None and (parallel.zero or parallel.fsdp not in (None, "no-shard"))
    if parallel is not None and sharded and parallel.dp == 1:
        how = f"--zero {parallel.zero}" if parallel.zero else f"--fsdp {parallel.fsdp}"
        raise click.BadParameter(  # one rank: nothing to shard, the account is unsharded
            f"{how} shards over data-parallel ranks, and --dp is 1: give --dp N (2 or more)",
            param_hint="'--dp'",
        )
    context = click.get_current_context(silent=True)
    asked = context is None or _from_user(context, "training")
    # the default: adam, or none for a model nothing of which trains (build_report)
    training = flags.get("training", "adam") if asked else None
    try:
        return build_report(
            model,
            shapes=shapes,
            flops=flops,
            memory=memory,
            inputs=inputs,
            outputs=outputs,
            batch=flags.get("batch", "B"),
            seq_len=flags.get("seq_len", "T"),
            dtype=flags.get("dtype", "fp32"),
            training=training,
            mixed_precision=flags.get("mixed_precision", False),
            cache=flags.get("latent_cache", "latent"),
            weights=flags.get("weights"),
            adapter=adapter_of(flags),
            convention=flags.get("convention", "pytorch"),
            reset_after=flags.get("reset_after", True),
            explain=bool(flags.get("explain")),
            depth=flags.get("depth"),
            verify=bool(flags.get("verify")),
            reference=reference,
            against=flags.get("against"),
            parallel=parallel,
            accounting=accounting,
        )
    except ShapecalcError as err:
        if err.argument == "parallel":
            from shapecalc.cli.parallel_options import plan_usage

            raise plan_usage(err) from None
        if err.argument in ("convention", "verify", "against", "weights"):
            hint = f"'--{err.argument}'"
            chosen = flags.get("weights")
            if err.argument == "weights" and chosen is not None and not isinstance(chosen, str):
                hint = f"'{getattr(chosen, 'source', '--weights')}'"  # a config's own
            raise click.BadParameter(str(err), param_hint=hint) from None
        raise engine_error(err, {"input": "--input-shape"}) from None


def show(report: Report, fmt: str) -> None:
    """Print the report in ``fmt``; only the table and the tree import rich."""
    if fmt in ("table", "tree"):
        from shapecalc.report.rich_writer import echo, renderables

        echo(*renderables(report, fmt))
        return
    from shapecalc.report import text

    click.echo(text(report, fmt), nl=False)


def finish(
    model: Model, flags: dict[str, Any], reference: Reference | None = None, **shapes: Any
) -> None:
    """Build the report the flags ask for (refusing a picture or a check that cannot be
    made before anything is printed), print it, draw it, and say what --verify found
    (against ``reference`` when given) and what --against found in the file, each
    difference on its line (exit 1 when anything differs)."""
    if flags.get("plot") or flags.get("plot_file"):
        _drawable(model, flags)
    if flags.get("plot_file"):
        from shapecalc.report.plot import check_file

        try:
            check_file(flags["plot_file"])
        except ShapecalcError as err:
            raise engine_error(err, {"plot_file": "--plot-file"}) from None
    report = build(model, flags, reference=reference, **shapes)
    show(report, flags["fmt"])
    if flags.get("plot") or flags.get("plot_file"):
        draw(report, flags)
    if report.verification is not None:
        from shapecalc.report.plot import terminal_width
        from shapecalc.report.rich_writer import kept_whole

        width = terminal_width()  # wrapped like the rest of the output
        if not report.verification.ok:
            click.echo(kept_whole(f"Error: {report.verification}", width), err=True)
            sys.exit(1)
        click.echo(kept_whole(str(report.verification), width), err=True)
    checked = report.against
    if checked is not None:
        if not checked.ok:
            lines = checked.diff.lines()
            click.echo(
                f"Error: {checked.where} differs from {report.model.name} in "
                f"{len(lines)} way{'s' if len(lines) > 1 else ''}:",
                err=True,
            )
            for line in lines:
                click.echo(f"  {line}", err=True)
            sys.exit(1)
        click.echo(f"Checked against {checked.where}: {checked.diff}", err=True)
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
    (("dtype", "training", "mixed_precision", "latent_cache"), "--memory or --all"),
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
    from shapecalc.cli.parallel_options import given as planned

    memory = all_ or flags["memory"] or planned(flags)  # the per-GPU account prices memory
    sections = [all_ or flags["shapes"], all_ or flags["flops"], memory]
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
