"""``shapecalc layer KIND``: one torch.nn layer with its own arguments; ``shapecalc layers``
lists the kinds. Each kind's options come from its spec's fields (torch's argument names)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from shapecalc.cli.group import ExampleCommand, SuggestingGroup, engine_error
from shapecalc.cli.options import (
    CONVENTION_FLAGS,
    COST_FLAGS,
    REPORT_FLAGS,
    F,
    apply,
    convention_options,
    cost_options,
    finish,
    format_option,
    pop,
    report_options,
)
from shapecalc.core.errors import ShapecalcError, echo

__all__ = ["layer", "layers"]


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
            self.fail(f"{echo(value)} is empty", param, ctx)
        parsed: list[Any] = [
            _int(item) if _is_int(item) else None if item.lower() == "none" else item
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
            self.fail(f"{echo(value)} is not {what} or 'none'", param, ctx)


def _is_int(text: str) -> bool:
    """An integer that ``int()`` takes: digits (at most 40 of them; a longer number stays
    text, which the size check refuses in words, as past 2^63 - 1)."""
    digits = text.lstrip("+-")
    significant = digits.lstrip("0")  # leading zeros do not count (nor meet int()'s limit)
    return digits.isdigit() and digits.isascii() and len(significant) <= 40


def _int(text: str) -> int:
    """An integer :func:`_is_int` took."""
    from shapecalc.core.dims import parse_int

    number = parse_int(text)
    assert number is not None  # _is_int took it
    return number


def _shape(text: str) -> tuple[Any, ...]:
    """``32,100,512`` or ``(B, T, 512)``: an input shape for ``--input-shape`` (``()`` a
    scalar); a size left empty (``2,,3``, or nothing at all) is refused."""
    inner = text.strip().strip("()[]").replace(" ", "")
    if not inner and text.strip() in ("()", "[]"):
        return ()  # a scalar
    items = inner.split(",")
    if items and items[-1] == "" and len(items) > 1:
        items = items[:-1]  # (2,) is a one-dimensional shape, as Python writes it
    if not inner or any(not i for i in items):
        raise click.BadParameter(
            f"{echo(text)} has an empty size; write sizes between commas, as 32,100,512",
            param_hint="'--input-shape'",
        )
    return tuple(_int(i) if _is_int(i) else i for i in items)


#: each constructor argument's help, by torch's name (``(kind, name)`` where two kinds
#: mean different things by one name); an argument a kind adds needs its line here
#: (tests/test_help.py walks every ``layer KIND --help``)
ARGUMENT_HELP: dict[str | tuple[str, str], str] = {
    "input_size": "Features of each input step.",
    "hidden_size": "Features of the hidden state.",
    "num_layers": "Stacked recurrent layers.",
    "bias": "Learn additive biases (--no-bias drops every bias tensor).",
    "batch_first": "Inputs and outputs as (batch, seq, feature); changes no tensor.",
    "dropout": "Dropout probability; adds no parameters.",
    "bidirectional": "Run each layer both ways (a second set of tensors, suffix _reverse).",
    "proj_size": "Project the hidden state to this size (0: no projection).",
    "nonlinearity": "The activation: tanh or relu.",
    "in_features": "Size of each input sample.",
    "out_features": "Size of each output sample.",
    "in1_features": "Size of each first input sample.",
    "in2_features": "Size of each second input sample.",
    "p": "Probability of an element to be zeroed; adds no parameters.",
    "inplace": "Do the operation in place; changes no tensor.",
    "start_dim": "First dimension to flatten.",
    "end_dim": "Last dimension to flatten.",
    "num_embeddings": "Size of the dictionary (rows of the weight).",
    "embedding_dim": "Size of each embedding vector.",
    "padding_idx": "The row that gets no gradient (none: every row learns).",
    "max_norm": "Renormalize embeddings whose norm exceeds this (none: never).",
    "norm_type": "The p of the p-norm for --max-norm.",
    "scale_grad_by_freq": "Scale gradients by the inverse frequency of the words.",
    "sparse": "Sparse gradients for the weight; changes no shape.",
    ("EmbeddingBag", "mode"): "How a bag is reduced: sum, mean or max.",
    ("Upsample", "mode"): "The algorithm: nearest, linear, bilinear, bicubic or trilinear.",
    "include_last_offset": "The offsets end with the size of the bag (CSR format).",
    "in_channels": "Channels in the input.",
    "out_channels": "Channels produced.",
    "kernel_size": "Size of the window: one number or one per dimension (3 or 3,3).",
    "stride": "Step of the window: one number or one per dimension.",
    "padding": "Padding added to each side: a number, one per dimension, or a word (same).",
    "dilation": "Spacing between the window's elements.",
    "groups": "Blocked connections from input to output channels (both divisible by it).",
    "padding_mode": "zeros, reflect, replicate or circular.",
    "output_padding": "Size added to one side of the output shape.",
    "num_features": "Channels of the input (C of (N, C, ...)).",
    "eps": "Added to the denominator for numerical stability.",
    "momentum": "Weight of the newest batch in the running statistics (none: a plain average).",
    "affine": "Learn a scale and a shift (weight and bias).",
    "track_running_stats": "Keep running mean and variance (buffers, not parameters).",
    "normalized_shape": "The trailing shape normalized over: one size or several (512 or 8,512).",
    "elementwise_affine": "Learn a per-element scale (and bias, for LayerNorm).",
    "num_groups": "Groups the channels are split into.",
    "num_channels": "Channels of the input (divisible by --num-groups).",
    "embed_dim": "Total dimension of the model.",
    "num_heads": "Parallel attention heads (--embed-dim divisible by it).",
    "add_bias_kv": "Add a learned bias to the key and value sequences.",
    "add_zero_attn": "Add a batch of zeros to the key and value sequences; adds no parameters.",
    "kdim": "Features of the keys (none: --embed-dim).",
    "vdim": "Features of the values (none: --embed-dim).",
    "d_model": "Features of the input.",
    "nhead": "Attention heads (--d-model divisible by it).",
    "dim_feedforward": "Width of the feed-forward network.",
    "activation": "Activation of the feed-forward network: relu or gelu.",
    "layer_norm_eps": "The layer norms' eps.",
    "norm_first": "Layer norm before attention and feed-forward (pre-norm); changes no tensor.",
    "num_parameters": "Learned slopes: 1, or one per input channel.",
    "init": "Initial value of the slopes.",
    "negative_slope": "Slope for negative inputs.",
    "alpha": "The alpha of the ELU formulation.",
    "approximate": "none, or tanh for the tanh approximation.",
    "beta": "The beta of the Softplus formulation.",
    "threshold": "Above this the Softplus is linear.",
    "dim": "The dimension the softmax is computed along (none: inferred, deprecated).",
    "return_indices": "Also return the indices of the maxima; adds no parameters.",
    "ceil_mode": "Round the output shape up instead of down.",
    "count_include_pad": "Include the zero padding in the average.",
    "divisor_override": "Divide by this instead of the window's size (none: the window's size).",
    "output_size": "The output's size: one number or one per dimension (none keeps the input's).",
    "size": "The output's spatial size (give this or --scale-factor).",
    "scale_factor": "Multiplier of the spatial size (give this or --size).",
    "align_corners": "Align the corner pixels of input and output (linear modes only).",
    "recompute_scale_factor": "Recompute the scale factor from the output size.",
}


def _field_option(field: Any, kind: str = "") -> Callable[[F], F]:
    """A click option for one constructor argument of a layer spec."""
    import dataclasses

    flag = "--" + field.name.replace("_", "-")
    required = field.default is dataclasses.MISSING
    default = field.default
    help_text = ARGUMENT_HELP.get((kind, field.name)) or ARGUMENT_HELP.get(field.name)
    kind = str(field.type)
    if kind in ("bool", "bool | None"):  # None when neither flag is given
        return click.option(
            f"{flag}/--no-{field.name.replace('_', '-')}",
            field.name,
            default=default,
            show_default=default is not None,
            help=help_text,
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
        help=help_text,
        **settings,
    )


def _layer_command(kind: str) -> click.Command:
    import dataclasses

    from shapecalc.layers import LAYER_KINDS

    cls = LAYER_KINDS[kind]

    def command(input_shape: tuple[str, ...], **arguments: Any) -> None:
        from shapecalc.core.dims import as_size
        from shapecalc.core.model import layer_model

        shown = {**pop(arguments, REPORT_FLAGS), **pop(arguments, COST_FLAGS)}
        shown.update(pop(arguments, CONVENTION_FLAGS))
        try:
            spec = cls(**arguments)
            inputs = tuple(
                tuple(as_size(d, owner=kind, field="input", minimum=0) for d in _shape(text))
                for text in input_shape
            )
            outputs = spec.output_shapes(*inputs) if inputs else ()
        except ShapecalcError as err:
            raise engine_error(err, {"input": "--input-shape"}) from None
        finish(layer_model(spec), shown, inputs=inputs or None, outputs=outputs)

    options = [_field_option(f, cls.kind) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    options += [
        *cost_options(model=False),
        *convention_options(gru=kind == "GRU"),
        click.option(
            "--input-shape",
            multiple=True,
            metavar="SHAPE",
            help="An input shape such as 32,100,512 (names allowed: B,T,512); repeat for "
            "layers with several inputs. Prints the output shapes.",
        ),
        *report_options(explain=None),
    ]
    command.__doc__ = (
        f"{cls.summary}.\n\n    Each option is torch.nn.{cls.kind}'s constructor argument of "
        "the same name (--kernel-size for kernel_size); a default shown is torch's."
    )
    return click.command(kind.lower(), cls=ExampleCommand, example=example_flags(cls.example))(
        apply(options)(command)
    )


def example_flags(arguments: dict[str, Any]) -> str:
    """Constructor arguments as the flags that give them: ``--kernel-size 3 --stride 2``,
    a tuple as ``3,3``, a bool as ``--bias`` or ``--no-bias``, None as ``none``."""
    words: list[str] = []
    for name, value in arguments.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (tuple, list)):
            words += [flag, ",".join("none" if v is None else str(v) for v in value)]
        else:
            words += [flag, "none" if value is None else str(value)]
    return " ".join(words)


class _LayerGroup(SuggestingGroup):
    """``shapecalc layer KIND``: one command per registered kind, made on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from shapecalc.layers import LAYER_KINDS

        return sorted(k.lower() for k in LAYER_KINDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from shapecalc.layers import LAYER_KINDS

        kind = {k.lower(): k for k in LAYER_KINDS}.get(cmd_name.lower())
        return _layer_command(kind) if kind else None


@click.group(cls=_LayerGroup)
def layer() -> None:
    """One torch.nn layer with its own arguments: shapecalc layer conv2d --in-channels 3
    --out-channels 64 --kernel-size 7 --stride 2 --padding 3."""


#: structural arguments ``shapecalc layers`` tries as size names, for a formula that holds
#: for any value (a kernel_size of K: K·C_in·C_out + C_out; num_layers L)
STRUCTURE_LETTERS = {
    "kernel_size": "K",
    "num_layers": "L",
    "groups": "g",
    "num_groups": "G",
    "num_heads": "h",
    "nhead": "h",
}


def general_formula(cls: Any) -> tuple[str, str]:
    """The kind's count formula and the arguments it holds for (``Conv1d(in_channels=C_in,
    out_channels=C_out, kernel_size=K, groups=1)``): structural arguments as names where
    the engine can count with them, the others as numbers, shown even when torch's
    default (groups=1)."""
    arguments, total = general_arguments(cls)
    spec = cls(**arguments)
    shown = spec.changed_arguments()
    kept = {
        f: getattr(spec, f)
        for f in STRUCTURE_LETTERS
        if f in spec.arguments() and f not in shown and type(getattr(spec, f)) is int
    }
    text = str(spec)
    if kept:
        extra = ", ".join(f"{f}={v}" for f, v in kept.items())
        text = text[:-1] + (", " if shown else "") + extra + ")"
    return str(total), text


def general_arguments(cls: Any) -> tuple[dict[str, Any], Any]:
    """The arguments of the kind's reference formula (its ``formula_args``) with each
    structural argument (:data:`STRUCTURE_LETTERS`) a size name where the engine computes
    the count with it, and that count. An argument stays a number where it cannot be a
    name (groups with symbolic channels, a pooling window) or where the general count,
    evaluated at the number, is not the number's count."""
    import dataclasses

    from shapecalc.core.dims import Expr, symbol

    arguments = dict(cls.formula_args)
    total = cls(**arguments).total()
    defaults = {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }
    for field, letter in STRUCTURE_LETTERS.items():
        value = arguments.get(field, defaults.get(field))
        numbers = value if isinstance(value, tuple) else (value,)
        if not numbers or not all(type(v) is int for v in numbers):
            continue
        if len(set(numbers)) != 1 or letter in {str(v) for v in arguments.values()}:
            continue  # a kernel of (3, 5): no one name; the letter taken by a size
        trial = {**arguments, field: symbol(letter)}
        try:
            count = cls(**trial).total()
        except ShapecalcError:
            continue
        at_number = count.subs({letter: numbers[0]}) if isinstance(count, Expr) else count
        if at_number == total:
            arguments, total = trial, count
    return arguments, total


@click.command()
@format_option(("table", "json"))
def layers(fmt: str) -> None:
    """List the layer kinds shapecalc knows, with their count formulas: general where a
    structural argument can be a name (kernel_size K, num_layers L), else for the
    arguments shown."""
    from shapecalc.layers import LAYER_KINDS
    from shapecalc.report.reference import signature

    rows = []
    for kind, cls in sorted(LAYER_KINDS.items(), key=lambda item: (item[1].family, item[0])):
        formula, formula_of = general_formula(cls)
        rows.append(
            {
                "kind": kind,
                "command": f"shapecalc layer {kind.lower()}",
                "family": cls.family,
                "summary": cls.summary,
                "signature": signature(cls),
                "formula": formula,
                "formula_of": formula_of,
            }
        )
    if fmt == "json":
        import json

        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from shapecalc.report.rich_writer import LayerKindsTable, echo

    echo(LayerKindsTable(rows))
