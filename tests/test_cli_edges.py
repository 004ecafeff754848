"""Edges of the command line and of the shapes it prints: names it does not know, options
left out or ignored, self-attention from one input shape, the convolutions and pools torch
refuses to run, the notes under --memory, and ``shapecalc layers``' general formulas."""

from __future__ import annotations

import json
import shlex
import warnings
from typing import Any

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from shapecalc import ShapecalcError
from shapecalc.architectures import commands, get
from shapecalc.cli.layers import example_flags, general_arguments
from shapecalc.core.dims import Expr
from shapecalc.layers import LAYER_KINDS
from tests.test_cli import run

ARCHITECTURES = commands()


def one_error(args: list[str]) -> str:
    result = run(args)
    assert result.exit_code == 2, (args, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# -- names it does not know ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (["lsmt"], ["lstm"]),
        (["gtp2"], ["gpt2"]),
        (["solve", "lsmt"], ["lstm"]),
        (["layer", "lstn"], ["lstm"]),
        (["layer", "maxpol2d"], ["maxpool2d"]),
        (
            ["layer", "conv"],
            [
                "conv1d",
                "conv2d",
                "conv3d",
                "convtranspose1d",
                "convtranspose2d",
                "convtranspose3d",
            ],
        ),
        (["layer", "batchnorm"], ["batchnorm1d", "batchnorm2d", "batchnorm3d"]),
    ],
)
def test_unknown_names_get_the_closest(args: list[str], meant: list[str]) -> None:
    line = one_error(args)
    assert f"No such command '{args[-1]}'" in line
    assert line.endswith(f"did you mean {', '.join(meant)}?"), line


def test_a_name_like_nothing_gets_no_guess_and_any_case_is_taken() -> None:
    assert one_error(["frobnicator"]) == "Error: No such command 'frobnicator'."
    assert "did you mean" not in one_error(["layer", "x" * 5000])
    for args in (["LSTM", "--hidden", "4", "--vocab", "5"], ["layer", "ReLU"]):
        assert run(args).exit_code == 0, args


# -- options left out: all of them at once, with the example -------------------------------
@pytest.mark.parametrize("command", ARCHITECTURES)
def test_a_model_command_without_options_names_every_required_one(command: str) -> None:
    from shapecalc.cli.models import model_command

    cls = get(command)
    required = [
        max(p.opts, key=len) for p in model_command(command).params if p.required and p.opts
    ]
    if not required:  # every size has a default (ResNet-50's, CLIP ViT-B/32's): it runs
        assert run([command]).exit_code == 0
        return
    line = one_error([command])
    for flag in required:
        assert f"'{flag}'" in line, (flag, line)
    assert line.startswith("Error: Missing option" + ("s" if len(required) > 1 else ""))
    assert f"(example: shapecalc {command} {cls.example})" in line
    # the example it offers runs
    assert run([command, *shlex.split(cls.example)]).exit_code == 0


def test_lstm_without_options() -> None:
    assert one_error(["lstm"]) == (
        "Error: Missing options '--vocab' and '--hidden' (example: shapecalc lstm --layers 2 "
        "--hidden 512 --vocab 65)."
    )


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_a_layer_without_its_arguments_names_them_with_a_working_example(kind: str) -> None:
    import dataclasses

    cls = LAYER_KINDS[kind]
    required = [
        "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
    ]
    if not required:
        return
    line = one_error(["layer", kind.lower()])
    for flag in required:
        assert f"'{flag}'" in line, (flag, line)
    example = example_flags(cls.example)
    assert f"(example: shapecalc layer {kind.lower()} {example})" in line
    assert run(["layer", kind.lower(), *shlex.split(example)]).exit_code == 0


def test_solve_names_every_missing_option() -> None:
    line = one_error(["solve", "lstm"])
    assert "Missing options '--params' and '--vocab'" in line
    assert "(example: shapecalc solve lstm --params" in line
    assert "Missing option '--hidden'" in one_error(
        ["solve", "lstm", "--params", "1M", "--for", "vocab"]
    )


# -- size and price flags without the section that uses them -------------------------------
@pytest.mark.parametrize("command", ARCHITECTURES)
def test_batch_without_a_cost_section_is_said_to_be_ignored(command: str) -> None:
    cls = get(command)
    base = [command, *shlex.split(cls.example)]
    plain = run(base)
    sized = run([*base, "--batch", "64"])
    assert sized.exit_code == 0 and sized.stdout == plain.stdout
    assert sized.stderr == (
        "Warning: --batch 64 is ignored without --shapes, --flops, --memory or --all\n"
    )
    shown = run([*base, "--batch", "64", "--shapes"])
    assert shown.exit_code == 0 and shown.stderr == "" and "B=64" in shown.stdout


def test_every_ignored_flag_in_one_line() -> None:
    base = ["lstm", "--hidden", "4", "--vocab", "5"]
    result = run([*base, "--batch", "2", "--seq-len", "3", "--dtype", "bf16", "--training", "sgd"])
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "Warning: --batch 2 and --seq-len 3 are ignored without --shapes, --flops, --memory "
        "or --all; --dtype bf16 and --training sgd are ignored without --memory or --all"
    ]
    # --dtype prices the memory account only; JSON carries the whole cost with any section
    assert "--dtype bf16 is ignored" in run([*base, "--shapes", "--dtype", "bf16"]).stderr
    assert run([*base, "--shapes", "--dtype", "bf16", "--format", "json"]).stderr == ""
    assert run([*base, "--memory", "--dtype", "bf16"]).stderr == ""


def test_a_layer_says_so_too() -> None:
    base = ["layer", "linear", "--in-features", "3", "--out-features", "4", "--input-shape", "2,3"]
    result = run([*base, "--dtype", "fp16"])
    assert result.exit_code == 0
    assert result.stderr == "Warning: --dtype fp16 is ignored without --memory or --all\n"
    assert run([*base, "--all", "--dtype", "fp16"]).stderr == ""


def test_an_ignored_value_is_echoed_short_and_printable() -> None:
    result = run(["lstm", "--hidden", "4", "--vocab", "5", "--batch", "\x1b[2J" + "9" * 500])
    assert result.exit_code == 0
    (line,) = result.stderr.splitlines()
    assert "\x1b" not in line and len(line) < 160


# -- self-attention from one input shape ---------------------------------------------------
MHA = ["layer", "multiheadattention", "--embed-dim", "8", "--num-heads", "2"]


def test_one_input_shape_is_self_attention() -> None:
    result = run([*MHA, "--shapes", "--input-shape", "5,2,8", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["cost"]["layers"]
    assert row["inputs"] == [[5, 2, 8]] and row["outputs"] == [[5, 2, 8], [2, 5, 5]]
    assert run([*MHA, "--input-shape", "2,5,8", "--batch-first"]).exit_code == 0


def test_two_input_shapes_are_refused_with_the_rule() -> None:
    line = one_error([*MHA, "--shapes", "--input-shape", "5,2,8", "--input-shape", "5,2,8"])
    assert "'--input-shape'" in line and "got 2" in line
    assert "one input shape (self-attention: query = key = value) or three" in line
    line = one_error([*MHA, "--kdim", "4", "--input-shape", "5,2,8"])
    assert "kdim and vdim equal to embed_dim" in line


torch = pytest.importorskip("torch")


def forward(module: Any, shapes: list[tuple[int, ...]], same: bool = False) -> Any:
    inputs = [torch.randn(*s) for s in shapes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return module(*(inputs * 3 if same else inputs))


@given(
    heads=st.integers(1, 3),
    per=st.integers(1, 3),
    rank=st.sampled_from([2, 3]),
    batch_first=st.booleans(),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 3)),
)
def test_self_attention_shapes_equal_torch(
    heads: int, per: int, rank: int, batch_first: bool, sizes: tuple[int, int]
) -> None:
    args = {"embed_dim": heads * per, "num_heads": heads, "batch_first": batch_first}
    length, batch = sizes
    shape = (length, heads * per) if rank == 2 else (length, batch, heads * per)
    if rank == 3 and batch_first:
        shape = (batch, length, heads * per)
    out, weights = forward(torch.nn.MultiheadAttention(**args), [shape], same=True)
    spec = LAYER_KINDS["MultiheadAttention"](**args)
    assert spec.output_shapes(shape) == (tuple(out.shape), tuple(weights.shape))


# -- convolutions and pools: torch refuses <=> shapecalc refuses ---------------------------
def torch_shapes(kind: str, args: dict[str, Any], shape: tuple[int, ...]) -> Any:
    """The output shapes of a CPU forward, or the error torch raises (constructor or
    forward)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = getattr(torch.nn, kind)(**args)
            out = module(torch.randn(*shape))
    except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError) as err:
        return err
    outs = out if isinstance(out, tuple) else (out,)
    return tuple(tuple(o.shape) for o in outs)


def ours(kind: str, args: dict[str, Any], shape: tuple[int, ...]) -> Any:
    try:
        return LAYER_KINDS[kind](**args).output_shapes(shape)
    except ShapecalcError as err:
        return err


def same_verdict(kind: str, args: dict[str, Any], shape: tuple[int, ...]) -> None:
    expected, got = torch_shapes(kind, args, shape), ours(kind, args, shape)
    note(f"torch: {expected}; shapecalc: {got}")
    if isinstance(expected, Exception):
        event("torch refuses")
        assert isinstance(got, ShapecalcError), (kind, args, shape, expected, got)
        return
    dims = int(kind[-2])
    if kind.startswith("ConvTranspose") and any(0 in s[-dims:] for s in expected):
        # grouped transposed convolutions return an empty tensor where the others raise
        # "Output size is too small": shapecalc refuses both
        event("torch returns an empty output")
        assert isinstance(got, ShapecalcError)
        return
    if kind.startswith("ConvTranspose") and _below_one(args["dilation"]):
        # some of torch's transposed kernels (grouped with a kernel of 1, or of one channel)
        # run a dilation of 0, where the others raise "dilation should be greater than
        # zero": shapecalc refuses it
        event("a transposed kernel runs a dilation of 0")
        assert isinstance(got, ShapecalcError) and got.field == "dilation"
        return
    event("torch runs")
    assert got == expected, (kind, args, shape, got)


def _below_one(value: Any) -> bool:
    return any(v < 1 for v in (value if isinstance(value, tuple) else (value,)))


@st.composite
def loose_conv(draw: st.DrawFn, kind: str) -> tuple[dict[str, Any], tuple[int, ...]]:
    """Arguments torch's constructor takes, some its forward refuses (a kernel, stride
    or dilation below 1, negative padding, no output channels, ...), and an input of a
    batch of 1 or 2 (or none) with at least one channel."""
    transposed = kind.startswith("ConvTranspose")
    dims = int(kind[-2])
    groups = draw(st.integers(1, 2))

    def per_dim(lo: int, hi: int) -> Any:
        one = st.integers(lo, hi)
        return draw(st.one_of(one, st.tuples(*[one] * dims)))

    args: dict[str, Any] = {
        "in_channels": groups * draw(st.integers(1, 2)),
        "out_channels": groups * draw(st.integers(0, 2)),
        "kernel_size": per_dim(0, 4),
        "stride": per_dim(-1, 3),
        "dilation": per_dim(-1, 2),
        "groups": groups,
    }
    if transposed:
        args["padding"] = per_dim(-1, 2)
        args["output_padding"] = per_dim(-1, 2)
    else:
        args["padding"] = draw(
            st.one_of(st.just(per_dim(-3, 3)), st.sampled_from(["same", "valid"]))
        )
        args["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
        if args["padding"] == "same":  # the constructor refuses 'same' with a stride
            args["stride"] = 1
    channels = args["in_channels"] if draw(st.integers(0, 9)) else args["in_channels"] + 1
    spatial = tuple(draw(st.integers(0, 7)) for _ in range(dims))
    lead = draw(st.sampled_from([(), (1,), (2,)]))
    return args, (*lead, channels, *spatial)


CONVS = [f"Conv{t}{d}d" for t in ("", "Transpose") for d in (1, 2, 3)]


@pytest.mark.parametrize("kind", CONVS)
@settings(max_examples=150)
@given(data=st.data())
def test_convolutions_refuse_what_torch_refuses(kind: str, data: st.DataObject) -> None:
    args, shape = data.draw(loose_conv(kind), label="args, input")
    same_verdict(kind, args, shape)


@pytest.mark.parametrize(
    ("kind", "args", "shape", "flag"),
    [
        ("Conv2d", {"kernel_size": 0}, (1, 3, 8, 8), "kernel_size"),
        ("Conv2d", {"kernel_size": (3, 0)}, (1, 3, 8, 8), "kernel_size"),
        ("Conv1d", {"kernel_size": 3, "stride": 0}, (1, 3, 8), "stride"),
        ("Conv3d", {"kernel_size": 1, "dilation": 0}, (1, 3, 4, 4, 4), "dilation"),
        ("Conv2d", {"kernel_size": 3, "padding": -1}, (1, 3, 8, 8), "padding"),
        ("Conv2d", {"kernel_size": 3, "padding": "same", "dilation": 0}, (1, 3, 8, 8), "dilation"),
        ("Conv2d", {"kernel_size": 9}, (1, 3, 8, 8), "input"),
        ("Conv2d", {"kernel_size": 3, "padding": "same"}, (1, 3, 0, 8), "input"),
        ("Conv1d", {"kernel_size": 3}, (1, 2, 8), "input"),
        (
            "ConvTranspose2d",
            {"kernel_size": 3, "output_padding": -1},
            (1, 3, 8, 8),
            "output_padding",
        ),
        ("ConvTranspose2d", {"kernel_size": 1, "padding": 5}, (1, 3, 8, 8), "input"),
        ("ConvTranspose1d", {"kernel_size": 0}, (1, 3, 8), "kernel_size"),
    ],
)
def test_torch_s_refusals_name_the_argument(
    kind: str, args: dict[str, Any], shape: tuple[int, ...], flag: str
) -> None:
    args = {"in_channels": 3, "out_channels": 4, **args}
    assert isinstance(torch_shapes(kind, args, shape), Exception)
    refused = ours(kind, args, shape)
    assert isinstance(refused, ShapecalcError) and refused.field == flag, refused
    if flag != "input":  # an argument torch's constructor took: torch's rule is quoted
        assert "torch" in str(refused)


@pytest.mark.parametrize(
    ("kind", "args", "shape"),
    [
        ("Conv2d", {"kernel_size": 3, "padding": -1, "padding_mode": "reflect"}, (1, 3, 8, 8)),
        (
            "Conv2d",
            {"kernel_size": 3, "padding": (-1, 1), "padding_mode": "circular"},
            (1, 3, 8, 8),
        ),
        ("Conv2d", {"kernel_size": 8}, (1, 3, 8, 8)),
        ("Conv2d", {"kernel_size": 3, "padding": "same", "dilation": 2}, (3, 5, 5)),
        ("ConvTranspose2d", {"kernel_size": 3, "stride": 2, "output_padding": 1}, (2, 3, 4, 4)),
    ],
)
def test_what_torch_runs_gets_torch_s_shape(
    kind: str, args: dict[str, Any], shape: tuple[int, ...]
) -> None:
    args = {"in_channels": 3, "out_channels": 4, **args}
    assert ours(kind, args, shape) == torch_shapes(kind, args, shape)


def test_an_input_of_no_channels_gives_no_channels_as_torch_does() -> None:
    args = {"in_channels": 0, "out_channels": 4, "kernel_size": 3}
    assert ours("Conv2d", args, (1, 0, 8, 8)) == torch_shapes("Conv2d", args, (1, 0, 8, 8))


@st.composite
def loose_pool(draw: st.DrawFn, kind: str) -> tuple[dict[str, Any], tuple[int, ...]]:
    dims = int(kind[-2])
    one = st.integers(-1, 4)
    per_dim = st.one_of(one, st.tuples(*[one] * dims))
    if kind.startswith("Adaptive"):
        size = st.one_of(st.integers(-1, 4), st.none()) if dims > 1 else st.integers(-1, 4)
        args: dict[str, Any] = {
            "output_size": draw(st.one_of(st.integers(-1, 4), st.tuples(*[size] * dims)))
        }
    else:
        args = {
            "kernel_size": draw(per_dim),
            "stride": draw(st.one_of(st.none(), per_dim)),
            "padding": draw(per_dim),
            "ceil_mode": draw(st.booleans()),
        }
        if kind.startswith("Max"):
            args["dilation"] = draw(per_dim)
        else:
            args["count_include_pad"] = draw(st.booleans())
    spatial = tuple(draw(st.integers(1, 7)) for _ in range(dims))
    lead = draw(st.sampled_from([(), (1,), (2,)]))
    return args, (*lead, draw(st.integers(1, 2)), *spatial)


POOLS = [
    f"{adaptive}{op}Pool{d}d"
    for adaptive in ("", "Adaptive")
    for op in ("Max", "Avg")
    for d in (1, 2, 3)
]


@pytest.mark.parametrize("kind", POOLS)
@settings(max_examples=100)
@given(data=st.data())
def test_pools_refuse_what_torch_refuses(kind: str, data: st.DataObject) -> None:
    args, shape = data.draw(loose_pool(kind), label="args, input")
    same_verdict(kind, args, shape)


def test_the_issue_s_convolution_is_refused_naming_the_flag() -> None:
    line = one_error(
        [
            "layer",
            "conv2d",
            "--in-channels",
            "3",
            "--out-channels",
            "4",
            "--kernel-size",
            "0",
            "--shapes",
            "--input-shape",
            "1,3,8,8",
        ]
    )
    assert "'--kernel-size'" in line and "kernel_size must be >= 1" in line
    assert "kernel size should be greater than zero" in line


# -- the memory account's note -------------------------------------------------------------
LSTM = ["lstm", "--hidden", "4", "--vocab", "5", "--batch", "2", "--seq-len", "3"]


def test_memory_says_what_onednn_keeps_for_an_lstm() -> None:
    table = run([*LSTM, "--memory"], 200).stdout
    assert "Note" in table and "oneDNN" in table and "2.1× to 2.7×" in table
    markdown = run([*LSTM, "--memory", "--format", "markdown"]).stdout
    assert "- **Note**: LSTM on the CPU: PyTorch's default kernel (oneDNN)" in markdown
    assert "oneDNN" not in run([*LSTM, "--memory", "--training", "none"], 200).stdout
    assert "oneDNN" not in run([*LSTM, "--shapes"], 200).stdout
    for other in ("gru", "rnn"):
        assert "oneDNN" not in run([other, *LSTM[1:], "--memory"], 200).stdout


# -- shapecalc layers ----------------------------------------------------------------------
def test_layers_lists_general_formulas() -> None:
    rows = {row["kind"]: row for row in json.loads(run(["layers", "--format", "json"]).stdout)}
    assert rows["Conv1d"]["formula"] == "C_in·C_out·K + C_out"
    assert rows["Conv2d"]["formula"] == "C_in·C_out·K² + C_out"
    assert "kernel_size=K" in rows["Conv2d"]["formula_of"]
    assert "groups=1" in rows["Conv2d"]["formula_of"]  # a number: shown, default or not
    assert rows["LSTM"]["formula_of"] == "LSTM(input_size=I, hidden_size=H, num_layers=L)"
    assert "L" in rows["LSTM"]["formula"]
    assert rows["MaxPool2d"]["formula_of"] == "MaxPool2d(kernel_size=3, stride=2, padding=1)"


#: values for every size letter of the reference formulas (heads and groups dividing)
VALUES = {
    "C_in": 4, "C_out": 6, "K": 5, "L": 3, "E": 12, "h": 3, "D": 12, "F": 7, "G": 2,
    "C": 6, "I": 3, "H": 5, "V": 7, "O": 2, "I1": 2, "I2": 3,
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(LAYER_KINDS))
def test_the_general_formula_counts_torch_s_parameters(kind: str) -> None:
    cls = LAYER_KINDS[kind]
    arguments, formula = general_arguments(cls)
    concrete = {
        k: v.subs(VALUES) if isinstance(v, Expr) else VALUES.get(v, v) if isinstance(v, str) else v
        for k, v in arguments.items()
    }
    count = formula.subs(VALUES) if isinstance(formula, Expr) else formula
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = getattr(torch.nn, kind)(**concrete)
    assert count == sum(p.numel() for p in module.parameters())


def test_layers_reads_at_80_columns() -> None:
    result = run(["layers"], 80)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) < 4 * len(LAYER_KINDS)  # was about 7 lines a kind, a word a line
    assert "What it is" not in result.stdout and "x, or alpha·(exp(x) - 1)" in result.stdout
    wide = run(["layers"], 160).stdout
    assert all(column in wide for column in ("Family", "For", "What it is"))


@pytest.mark.parametrize("fmt", ["table", "markdown", "tree"])
def test_one_parameter_is_singular_in_every_report(fmt: str) -> None:
    args = ["layer", "linear", "--in-features", "1", "--out-features", "1", "--no-bias"]
    result = run([*args, "--format", fmt], 120)
    assert result.exit_code == 0, result.output
    assert "1 parameter" in result.stdout and "1 parameters" not in result.stdout
    assert "1 params" not in result.stdout
