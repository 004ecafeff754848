"""``fit``'s words the trial found wrong: under llama.cpp only GGUF mixes are priced and
its split is by layer; quantized weights and the activations' dtype named apart; a speed
with nothing to compute says why; a figure past its bound gives the bound; a size a
command's flag refuses says the flag, not the library function."""

from __future__ import annotations

from typing import Any

import pytest

from shapecalc.quant import method_class
from tests.test_cli import run

LLAMA_70B = ["--vocab", "128256", "--hidden", "8192", "--layers", "80", "--heads", "64"]
LLAMA_70B += ["--kv-heads", "8", "--intermediate", "28672"]
TINY = ["--vocab", "1000", "--hidden", "64", "--layers", "2", "--heads", "4"]
WIDTHS = [80, 200]
NOT_GGUF = ("awq", "gptq-int4", "gptq-int8", "nf4", "fp8", "int8")


def said(result: Any) -> str:
    """The table's words, its borders and line breaks gone."""
    return " ".join(result.output.replace("│", " ").split())


def formats_row(text: str) -> str:
    return text.split("weights formats", 1)[1].split("decode, at most", 1)[0]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("every", [False, True])
def test_llama_cpp_prices_gguf_mixes_only(width: int, every: bool) -> None:
    """Before: awq, gptq-int4 and nf4 (no GGUF file) among llama.cpp's formats."""
    flags = ["--formats"] if every else []
    result = run(
        ["fit", "llama", *LLAMA_70B, "--gpu", "h100", "--engine", "llama.cpp", *flags], width
    )
    assert result.exit_code == 1, result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    row = formats_row(said(result))
    priced = [part.split()[0] for part in row.split(";")[0].split(", ")]
    mixes = set(method_class("gguf").aliases)
    assert priced and set(priced) <= mixes, priced
    assert "q4_k_m" in priced and not set(priced) & set(NOT_GGUF)
    if every:
        # every mix priced (those an importance matrix must make are refused, unlisted)
        assert {"q4_0", "q4_k_s", "iq4_xs", "q5_k_s", "tq1_0"} <= set(priced)
        assert "common" not in row
    else:
        assert "of the common GGUF mixes, which llama.cpp loads" in row


def test_without_an_engine_every_common_format_is_priced() -> None:
    result = run(["fit", "llama", *LLAMA_70B, "--gpu", "h100"], 200)
    row = formats_row(said(result))
    assert all(f"{name} " in row for name in NOT_GGUF), row
    assert "(of the common formats; --formats prices every one)" in row


@pytest.mark.parametrize("width", WIDTHS)
def test_fewest_gpus_under_llama_cpp_is_its_layer_split(width: int) -> None:
    """Before: "2 (tensor parallel)"; llama.cpp places whole layers on each GPU
    (shapecalc.analysis.llama_split, -sm layer)."""
    text = said(run(["fit", "llama", *LLAMA_70B, "--gpu", "h100", "--engine", "llama.cpp"], width))
    gpus = text.split("fewest GPUs", 1)[1].split("weights formats", 1)[0]
    assert "tensor parallel" not in gpus
    assert "llama.cpp's split by layer, -sm layer: whole layers on each GPU" in gpus
    plain = said(run(["fit", "llama", *LLAMA_70B, "--gpu", "h100"], width))
    assert "(tensor parallel)" in plain.split("fewest GPUs", 1)[1].split("weights formats")[0]


@pytest.mark.parametrize("width", WIDTHS)
def test_quantized_weights_and_the_activations_dtype_are_named_apart(width: int) -> None:
    """Before: "fits at B=1, T=4,096, bf16" with the weights at q4_k_m."""
    result = run(["fit", "llama", *TINY, "--gpu", "h100", "--weights", "q4_k_m"], width)
    assert result.exit_code == 0, result.output
    head = " ".join(result.output.split("┏", 1)[0].split())
    assert head.endswith(
        "fits at B=1, T=4,096, weights GGUF Q4_K_M (llama-quantize's mix), activations bf16"
    ), head
    plain = " ".join(
        run(["fit", "llama", *TINY, "--gpu", "h100"], width).output.split("┏")[0].split()
    )
    assert plain.endswith("fits at B=1, T=4,096, bf16"), plain


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("hardware", "row", "why"),
    [
        (["--memory-gb", "24"], "decode", "no bound: no memory bandwidth given (--bandwidth-gbs)"),
        (["--memory-gb", "24"], "prefill", "no bound: no peak FLOPs given (--tflops)"),
        (["--gpu", "m3-max-128gb"], "prefill", "no bound: m3-max-128gb publishes no bf16 peak"),
    ],
)
def test_a_speed_with_nothing_to_compute_says_why(
    width: int, hardware: list[str], row: str, why: str
) -> None:
    """Before: "-: B × bandwidth × 1 / ...", the dash unexplained."""
    text = said(run(["fit", "llama", *TINY, *hardware], width))
    rows = text.split("decode, at most", 1)[1]
    shown = rows.split("prefill, at most", 1)[0 if row == "decode" else 1]
    assert shown.strip().startswith(why), shown
    assert "-:" not in rows


def test_a_speed_with_its_figures_is_a_number() -> None:
    text = said(run(["fit", "llama", *TINY, "--memory-gb", "24", "--bandwidth-gbs", "1000"], 200))
    rows = text.split("decode, at most", 1)[1]
    assert rows.split("prefill")[0].split()[1] == "tokens/s:", rows


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    ("flag", "value", "unit"),
    [
        ("--memory-gb", "1e30", "GB"),
        ("--bandwidth-gbs", "2e9", "GB/s"),
        ("--tflops", "0", "TFLOPs"),
    ],
)
def test_a_figure_out_of_range_gives_its_bounds(
    width: int, flag: str, value: str, unit: str
) -> None:
    """Before: "--memory-gb must be a positive number, got 1e+30" (1e30 is positive)."""
    args = ["fit", "llama", *TINY, "--memory-gb", "24", flag, value]
    if flag == "--memory-gb":
        args = ["fit", "llama", *TINY, flag, value]
    result = run(args, width)
    assert result.exit_code == 2, result.output
    line = " ".join(result.stderr.split())
    assert f"{flag} must be a positive number of at most 1e9 ({unit}), got" in line, line


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "command",
    [
        ["sweep", "llama", *TINY, "--seq-len", "0..1024"],
        ["sweep", "llama", *TINY, "--batch", "0,1"],
        ["llama", *TINY, "--seq-len", "0", "--all"],
    ],
)
def test_a_size_a_flag_refuses_is_said_in_the_flag_s_words(width: int, command: list[str]) -> None:
    """Before: "Invalid value for '--seq-len': analyze: seq_len must be ...": the library's
    function and argument, not the flag given."""
    result = run(command, width)
    assert result.exit_code == 2, result.output
    line = " ".join(result.stderr.split())
    flag = "--seq-len" if "--seq-len" in command else "--batch"
    assert f"'{flag}': {flag} must be an integer >= 1, got 0" in line, line
    assert "analyze:" not in line
