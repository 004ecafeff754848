"""The formulas agree with the numbers: a model built with some sizes as letters, analysed,
then given the values, costs what the model built with the numbers costs.

For every architecture, a valid configuration is drawn from its declaration; one or two of
its sizes become their letters (hidden, layers, vocab, heads, ...), and the batch and the
sequence length are numbers or the letters B and T. Substituting the drawn values (and the
sizes the numbers work out, D = H / A and I = 4·H) into every count and cost of the
symbolic analysis must give the concrete analysis's: parameters, each memory line,
training memory, forward and backward FLOPs, activations.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from shapecalc.adapters.strategies import configs
from shapecalc.analysis.cost import EIGHT_BIT, OPTIMIZERS, Cost, analyze
from shapecalc.architectures import commands, get
from shapecalc.core.declare import arguments_of
from shapecalc.core.dims import Dim, Expr, symbol
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError

COMMANDS = commands()
#: small sizes: a listed run (up to 4 layers) and one analysed once (5 and more) both drawn;
#: from 0, for the sizes whose 0 means none (qwen-moe's experts 0: every layer dense), the
#: others drawn from their minimum
SIZES = st.integers(min_value=0, max_value=9)


def _value(value: Dim, sizes: dict[str, Dim]) -> Dim:
    return value.subs(sizes) if isinstance(value, Expr) else value


def _numbers(cost: Cost, sizes: dict[str, Dim]) -> dict[str, Dim]:
    """Everything compared, the formulas given ``sizes``."""
    out = {
        "total": cost.model.total,
        "training_bytes": cost.training_bytes,
        "forward_flops": cost.forward_flops,
        "backward_flops": cost.backward_flops,
        "activation_bytes": cost.activation_bytes,
    }
    out.update({f"memory: {line.label}": line.bytes for line in cost.memory})
    return {name: _value(value, sizes) for name, value in out.items()}


def test_the_architectures_are_the_expected_ones() -> None:
    expected = {"lstm", "gru", "rnn", "mlp", "gpt2", "bert", "gpt-neox", "llama"}
    assert expected <= set(COMMANDS)


def test_gpt2_activations_with_the_hidden_size_as_a_letter() -> None:
    """The reported case: q, k and v are views of c_attn's output, which they keep whole
    (3·B·T·H), whether H is a number or a letter."""
    gpt2 = get("gpt2")
    numbers = analyze(
        gpt2(vocab=50257, heads=12, layers=12, hidden=384).model(), batch=1, seq_len=1024
    )
    letters = analyze(
        gpt2(vocab=50257, heads=12, layers=12, hidden=symbol("H")).model(), batch=1, seq_len=1024
    )
    assert numbers.activation_bytes == 345_268_224
    assert _value(letters.activation_bytes, {"H": 384, "D": 32}) == 345_268_224


@pytest.mark.parametrize("command", COMMANDS)
@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_formula_at_the_values_is_the_concrete_cost(command: str, data: st.DataObject) -> None:
    cls = get(command)
    config = data.draw(configs(cls, SIZES), label="config")
    args = config.arguments()
    named = [
        f.name
        for f, argument in arguments_of(cls)
        if argument.kind == "size"
        and argument.names
        and args[f.name] is not None
        and args[f.name] != argument.unset
        and args[f.name] != 0  # a letter is a size of 1 or more: 0 is none of it
    ]
    letters = {f.name: argument.letter for f, argument in arguments_of(cls)}
    chosen = data.draw(
        st.lists(st.sampled_from(named), min_size=1, max_size=2, unique=True), label="letters"
    )
    as_letters = data.draw(st.booleans(), label="B and T as letters")
    # with B and T as letters, from 2: a bidirectional batch-first recurrent layer keeps a
    # copy of its input for the reverse direction only when B > 1 and T > 1, which no
    # polynomial says (the formula is the one for B, T >= 2)
    lowest = 2 if as_letters else 1
    batch = data.draw(st.integers(lowest, 3), label="batch")
    seq_len = data.draw(st.integers(lowest, 6), label="seq_len")
    context = args.get("context")
    if isinstance(context, int):
        seq_len = min(seq_len, context)
    mixed = data.draw(st.booleans(), label="mixed precision")
    options: dict[str, Any] = (
        {"dtype": "bf16", "mixed_precision": True} if mixed else {"dtype": "fp32"}
    )
    # bitsandbytes' 8-bit state is no polynomial (each tensor's state is 8-bit from 4096
    # numbers on, fp32 below): analyze refuses it for sizes that are names
    polynomial = sorted(set(OPTIMIZERS) - set(EIGHT_BIT))
    options["training"] = data.draw(st.sampled_from(polynomial), label="training")

    try:
        concrete = analyze(config.model(), batch=batch, seq_len=seq_len, **options)
    except ShapecalcError:
        event("concrete refused")
        return  # a configuration the model cannot run at all: nothing to compare
    # the formulas printed beside the numbers (the model's template) are the counts at the
    # model's sizes
    printed, at = concrete.model, config.sizes()
    assert _value(printed.total_formula, at) == printed.total, printed.total_formula
    assert _value(printed.active_formula, at) == printed.active, printed.active_formula
    assert _value(printed.vocabulary_formula, at) == printed.vocabulary
    try:
        model = cls(**{**args, **{name: letters[name] for name in chosen}}).model()
    except InvalidArgumentError as err:
        if "the tree needs the number" in err.message or "cannot be a size name" in err.message:
            event(f"letters refused: {chosen}")
            return  # the tree needs that size as a number
        raise
    symbolic = analyze(
        model,
        batch="B" if as_letters else batch,
        seq_len="T" if as_letters else seq_len,
        **options,
    )

    sizes: dict[str, Dim] = {**config.sizes(), "B": batch, "T": seq_len}
    expected = _numbers(concrete, sizes)
    got = _numbers(symbolic, sizes)
    # a sliding layer with T a letter keeps its window (the count for a context longer
    # than it: min(T, W - 1) is no polynomial); shorter, the concrete count is smaller
    windows = [s.window for _, s in symbolic.state if s.capped and s.window is not None]
    if windows and seq_len < max(windows):
        event("a window longer than the context")
        for numbers in (expected, got):
            numbers.pop("memory: inference state", None)
            numbers.pop("memory: inference total", None)  # it holds the state
    # the largest live tensors at inference: the largest of several formulas is no formula,
    # so those lines come with numbers only
    # and activations recomputed per block, whose blocks differ as formulas (attention and
    # state-space layers): the line comes with numbers only
    for label in (
        "activations, prefill",
        "activations, forward",
        "activations, decode step",
        "inference total",
        "activations, recomputed",
    ):
        if f"memory: {label}" not in got or f"memory: {label}" not in expected:
            expected.pop(f"memory: {label}", None)
            got.pop(f"memory: {label}", None)
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name] == value, (name, got[name], value)
