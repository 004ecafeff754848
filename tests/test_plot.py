"""--plot on a model command: the bars are the report's own numbers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.analysis.cost import analyze
from shapecalc.report.plot import (
    FILLS,
    Bars,
    bars_text,
    memory_bars,
    parameter_bars,
    stacked_text,
)
from tests.test_cli import run


@settings(deadline=None, max_examples=30)
@given(
    hidden=st.integers(1, 64),
    layers=st.integers(1, 6),
    vocab=st.integers(1, 100),
    depth=st.integers(1, 3),
)
def test_parameter_bars_are_the_subtotals(hidden: int, layers: int, vocab: int, depth: int) -> None:
    model = shapecalc.lstm_lm(vocab=vocab, hidden=hidden, layers=layers)
    bars = parameter_bars(model, depth)
    assert sum(bars.values) == model.total
    for name, value in zip(bars.labels, bars.values, strict=True):
        assert value == model.subtotal(name)


def test_a_tied_tensor_is_a_bar_of_nothing_that_says_so() -> None:
    model = shapecalc.gpt2(vocab=100, hidden=16, layers=2, heads=2, context=8)
    bars = parameter_bars(model, 2)
    assert sum(bars.values) == model.total
    tied = bars.labels.index("lm_head.weight")
    assert bars.values[tied] == 0 and "tied to transformer.wte.weight" in bars.texts[tied]


def test_memory_bars_are_the_memory_account() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    cost = analyze(model, batch=32, seq_len=256)
    bars = memory_bars(cost)
    # a training step's account (the recomputed line replaces the activations, not added)
    lines = [m for m in cost.memory if m.training and m.label != "activations, recomputed"]
    assert bars.labels == tuple(line.label for line in lines)
    assert bars.values == tuple(line.bytes for line in lines)
    text = stacked_text(bars, 80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert text.count(FILLS[0]) > 2  # the weights' share shows
    # at inference: the weights, the state and the larger activation line, which sum to
    # the inference total
    inference = memory_bars(analyze(model, batch=32, seq_len=256, training="none"))
    assert inference.labels == ("weights", "inference state", "activations, prefill")
    assert (
        sum(inference.values)
        == analyze(model, batch=32, seq_len=256, training="none").inference_bytes
    )


def test_memory_bars_need_numbers() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    with pytest.raises(shapecalc.InvalidArgumentError, match="--batch and --seq-len numbers"):
        memory_bars(analyze(model))


@pytest.mark.parametrize("args", [[], ["--memory", "--batch", "4", "--seq-len", "16"]])
def test_cli_plot(args: list[str]) -> None:
    headline = ["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"]
    result = run([*headline, "--plot", *args], 80)
    assert result.exit_code == 0, result.output
    assert "Where the 4,269,121 parameters" in result.stdout
    assert ("Memory of the LSTM language model" in result.stdout) == bool(args)
    assert "lstm │" in result.stdout and "4,202,496 (98.4%)" in result.stdout


def test_cli_plot_symbolic_is_refused() -> None:
    result = run(["lstm", "--hidden", "H", "--vocab", "65", "--plot"])
    assert result.exit_code == 2 and "give every size a number" in result.output
    assert "Parameter" not in result.output  # refused before the table


def test_cli_plot_file(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "where.png"
    result = run(["lstm", "--hidden", "64", "--vocab", "65", "--memory", "--batch", "2",
                  "--seq-len", "8", "--plot-file", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flag", [["--plot"], ["--plot-file", "x.svg"]])
def test_a_memory_picture_of_letters_is_refused_before_the_table(flag: list[str]) -> None:
    result = run(["lstm", "--hidden", "64", "--vocab", "65", "--memory", *flag])
    assert result.exit_code == 2 and f"'{flag[0]}'" in result.output
    assert "--batch and --seq-len" in result.output and "Parameter" not in result.output


def test_an_rnn_state_is_not_per_token_of_context() -> None:
    lstm = analyze(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2), batch=2, seq_len=16)
    llama = analyze(shapecalc.llama(vocab=100, hidden=64, layers=2, heads=4), batch=2, seq_len=16)
    (lstm_state,) = [line.rule for line in lstm.memory if line.label == "inference state"]
    (kv,) = [line.rule for line in llama.memory if line.label == "inference state"]
    assert "per token of context" not in lstm_state and "per token of context" in kv


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "link to a fifo"])
@pytest.mark.parametrize("command", ["lstm", "sweep"])
def test_a_plot_file_that_is_no_regular_file_is_refused_before_drawing(
    tmp_path: Any, kind: str, command: str
) -> None:
    pytest.importorskip("matplotlib")
    import os

    path = str(tmp_path / "out.svg")
    if kind == "device":
        os.symlink("/dev/null", tmp_path / "dev.svg")
        path = str(tmp_path / "dev.svg")
    elif kind == "folder":
        os.mkdir(path)
    else:
        os.mkfifo(tmp_path / "pipe.svg")
        if kind == "fifo":
            path = str(tmp_path / "pipe.svg")
        else:
            os.symlink(tmp_path / "pipe.svg", path)
    args = (
        ["lstm", "--hidden", "8", "--vocab", "5"]
        if command == "lstm"
        else ["sweep", "lstm", "--hidden", "8,16", "--vocab", "5"]
    )
    result = run([*args, "--plot-file", path])
    assert result.exit_code == 2 and "not a regular file" in result.stderr, result.output
    assert result.stdout == ""  # nothing drawn, no table


def test_log_bars_are_as_long_as_the_decades_above_the_floor() -> None:
    """On a log scale a bar runs from the decade below the smallest value: 10, 100 and
    1,000 over a floor of 1 are 1, 2 and 3 thirds of the room; on a linear one 10 and 100
    are hardly a block or two of 1,000's."""
    bars = Bars("t", ("a", "b", "c"), (10, 100, 1000), "positions", texts=("x", "y", "z"), log=True)
    width = 40
    room = width - 1 - 1 - 4  # label, text, the bar's frame
    lengths = [line.count("█") for line in bars_text(bars, width).splitlines()[1:]]
    assert lengths == [round(room / 3), round(2 * room / 3), room]
    linear = bars_text(replace(bars, log=False), width).splitlines()[1:]
    assert [line.count("█") for line in linear] == [1, round(room / 10), room]
