"""Generated argument lists for every command: the answer is always exit 0 with output, or
exit 2 with one line ``Error: ...``; never a traceback, never exit 1, never a hang."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shapecalc.architectures import commands, get
from shapecalc.layers import LAYER_KINDS
from tests.test_cli import run
from tests.test_schema import REPORT

#: a config folder with its weights, for hf and inspect FOLDER (made once per test run)
_HERE = Path(tempfile.mkdtemp(prefix="shapecalc-fuzz-"))
(_HERE / "config.json").write_text(
    json.dumps(
        {
            "model_type": "llama",
            "vocab_size": 16,
            "hidden_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 8,
        }
    )
)
CONFIG = str(_HERE)
#: a Qwen2-MoE config: a shared expert, a dense layer, experts every other layer
(_HERE / "qwen").mkdir()
(_HERE / "qwen" / "config.json").write_text(
    json.dumps(
        {
            "model_type": "qwen2_moe",
            "vocab_size": 16,
            "hidden_size": 8,
            "num_hidden_layers": 4,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 8,
            "moe_intermediate_size": 4,
            "shared_expert_intermediate_size": 6,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "decoder_sparse_step": 2,
            "mlp_only_layers": [3],
        }
    )
)
#: a Qwen3-Next config: linear and full attention, experts every other layer, a dense one
(_HERE / "qwen3_next").mkdir()
(_HERE / "qwen3_next" / "config.json").write_text(
    json.dumps(
        {
            "model_type": "qwen3_next",
            "vocab_size": 16,
            "hidden_size": 8,
            "num_hidden_layers": 4,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 4,
            "linear_num_key_heads": 1,
            "linear_num_value_heads": 2,
            "linear_key_head_dim": 4,
            "linear_value_head_dim": 4,
            "intermediate_size": 8,
            "moe_intermediate_size": 4,
            "shared_expert_intermediate_size": 6,
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "decoder_sparse_step": 2,
            "mlp_only_layers": [3],
            "full_attention_interval": 2,
        }
    )
)
#: a Falcon-H1 config: attention and a Mamba-2 mixer in every layer, its gated norm
(_HERE / "falcon_h1").mkdir()
(_HERE / "falcon_h1" / "config.json").write_text(
    json.dumps(
        {
            "model_type": "falcon_h1",
            "vocab_size": 16,
            "hidden_size": 8,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "intermediate_size": 8,
            "mamba_n_heads": 4,
            "mamba_d_ssm": 8,
            "mamba_d_state": 4,
            "mamba_n_groups": 2,
            "mamba_rms_norm": True,
            "key_multiplier": 0.5,
        }
    )
)
#: Gemma 3 and Cohere2: sliding and global layers (a pattern, and a list of kinds), and a
#: gemma3 config read as its language model
for name, sliding in (
    ("gemma3_text", {"sliding_window": 3, "sliding_window_pattern": 3, "head_dim": 4}),
    ("cohere2", {"sliding_window": 2, "layer_types": ["full_attention", "sliding_attention"] * 2}),
):
    (_HERE / name).mkdir()
    (_HERE / name / "config.json").write_text(
        json.dumps(
            {
                "model_type": name,
                "vocab_size": 16,
                "hidden_size": 8,
                "num_hidden_layers": 4,
                "num_attention_heads": 2,
                "num_key_value_heads": 1,
                "intermediate_size": 8,
                **sliding,
            }
        )
    )
(_HERE / "gemma3").mkdir()
(_HERE / "gemma3" / "config.json").write_text(
    json.dumps(
        {
            "model_type": "gemma3",
            "text_config": json.loads((_HERE / "gemma3_text" / "config.json").read_text()),
        }
    )
)
#: a named pipe as --plot-file: writing to it would block forever
PIPE = str(_HERE / "pipe.svg")
if hasattr(os, "mkfifo"):
    os.mkfifo(PIPE)
(_HERE / "dir.svg").mkdir()

#: calls per run: thousands in the ci profile; SHAPECALC_FUZZ_EXAMPLES sets it
#: (python scripts/fuzz.py runs 10,000 or more)
EXAMPLES = int(
    os.environ.get(
        "SHAPECALC_FUZZ_EXAMPLES", "2000" if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else "300"
    )
)

#: each command with a valid base; generated tokens come after it (and may override it)
COMMANDS = [
    ["hf", CONFIG],
    ["hf", str(_HERE / "config.json"), "--verify"],
    ["inspect", CONFIG],
    ["llama", "--vocab", "16", "--hidden", "8", "--heads", "2", "--layers", "1"],
    [  # gpt-oss's MXFP4 checkpoint layout (hidden and intermediate multiples of 32)
        *("gpt-oss", "--vocab", "16", "--hidden", "64", "--heads", "2", "--layers", "1"),
        *("--intermediate", "32", "--experts", "2", "--experts-per-token", "1"),
        *("--moe-layout", "checkpoint"),
    ],
    ["hf", str(_HERE / "qwen"), "--verify"],
    [
        *("qwen-moe", "--vocab", "16", "--hidden", "8", "--heads", "2", "--layers", "3"),
        *("--moe-intermediate", "4", "--experts", "4", "--experts-per-token", "2"),
    ],
    [  # Mamba-2: heads from expand·hidden / head_dim, groups dividing them
        *("mamba2", "--vocab", "16", "--hidden", "8", "--layers", "2", "--head-dim", "4"),
        *("--state-size", "3", "--groups", "2", "--chunk-size", "3"),
    ],
    ["hf", str(_HERE / "falcon_h1"), "--verify"],
    [
        *("falcon-h1", "--vocab", "16", "--hidden", "8", "--heads", "2", "--layers", "1"),
        *("--intermediate", "8", "--mamba-heads", "4", "--mamba-state", "3"),
    ],
    [  # a state-space model: its fixed state, its mixer's own flags
        *("mamba", "--vocab", "16", "--hidden", "8", "--layers", "2", "--state-size", "2"),
        *("--conv-kernel", "2", "--memory"),
    ],
    [  # attention and Mamba layers, experts every other layer: runs of four kinds
        *("jamba", "--vocab", "16", "--hidden", "8", "--heads", "2", "--layers", "6"),
        *("--intermediate", "4", "--experts", "3", "--attn-layer-period", "3"),
        *("--attn-layer-offset", "1", "--state-size", "2", "--memory"),
    ],
    ["hf", str(_HERE / "qwen3_next"), "--verify"],
    [
        *("qwen3-next", "--vocab", "16", "--hidden", "8", "--heads", "2", "--layers", "3"),
        *("--linear-key-heads", "1", "--linear-value-heads", "2", "--moe-intermediate", "4"),
        *("--shared-intermediate", "4", "--experts", "4", "--experts-per-token", "2"),
    ],
    ["hf", str(_HERE / "gemma3_text"), "--verify"],
    ["hf", str(_HERE / "cohere2"), "--verify"],
    ["hf", str(_HERE / "gemma3"), "--verify"],  # the vision tower left out, and said
    [
        *("gemma3", "--vocab", "16", "--hidden", "8", "--heads", "2", "--layers", "5"),
        *("--sliding-window", "3", "--layer-types", "sliding_attention*2,full_attention"),
    ],
    ["lstm", "--hidden", "8", "--vocab", "5"],
    ["gru", "--hidden", "8", "--vocab", "5"],
    ["rnn", "--hidden", "8", "--vocab", "5"],
    ["lstm"],
    ["solve", "lstm", "--params", "10k", "--vocab", "5"],
    ["solve", "gru", "--params", "1M", "--vocab", "5", "--layers", "2"],
    ["layer", "linear", "--in-features", "4", "--out-features", "3"],
    ["layer", "conv2d", "--in-channels", "4", "--out-channels", "8", "--kernel-size", "3"],
    ["layer", "lstm", "--input-size", "4", "--hidden-size", "6"],
    ["layer", "multiheadattention", "--embed-dim", "8", "--num-heads", "2"],
    ["layer", "layernorm", "--normalized-shape", "8"],
    ["layer", "embeddingbag", "--num-embeddings", "10", "--embedding-dim", "4"],
    ["layer", "maxpool2d", "--kernel-size", "2", "--input-shape", "1,3,8,8"],
    ["layer", "adaptiveavgpool2d", "--output-size", "1"],
    ["layer", "upsample", "--scale-factor", "2", "--input-shape", "1,3,8,8"],
    ["layer", "softmax", "--dim", "-1"],
    ["layers"],
    ["inspect"],
    ["solve", "rnn"],
    *(["layer", kind.lower()] for kind in LAYER_KINDS),  # every kind, no base arguments
    # every architecture: its example, bare, solved for and in the three conventions
    *([name, *get(name).example.split()] for name in commands()),
    *([name] for name in commands()),
    *(["solve", name, "--params", "1M"] for name in commands()),
    *(["compare-conventions", name, *get(name).example.split()] for name in commands()),
    # sweeps, pictures and ports
    ["sweep", "lstm", "--hidden", "8,16", "--vocab", "5"],
    ["sweep", "gpt2", "--hidden", "8,16", "--heads", "2", "--layers", "1", "--vocab", "10"],
    ["sweep", "llama", "--vocab", "16", "--hidden", "8", "--heads", "2", "--seq-len", "4,8"],
    ["sweep", "hf", CONFIG, "--seq-len", "8,16"],
    ["sweep", "mlp", "--inputs", "4", "--outputs", "2", "--hidden", "4..8:2"],
    ["lstm", "--hidden", "8", "--vocab", "5", "--plot"],
    ["port", "lstm", "--hidden", "8", "--vocab", "5", "--to", "keras"],
    ["port", "gru", "--hidden", "8", "--vocab", "5", "--from", "keras", "--to", "onnx"],
    ["port", "gpt2", "--hidden", "8"],
]
ARCHITECTURES = set(commands())
FLAGS = [
    "--layers",
    "--hidden",
    "--vocab",
    "--embed-dim",
    "--proj-size",
    "--dropout",
    "--params",
    "--for",
    "--multiple-of",
    "--format",
    "--in-features",
    "--out-features",
    "--in-channels",
    "--out-channels",
    "--kernel-size",
    "--stride",
    "--padding",
    "--groups",
    "--input-size",
    "--hidden-size",
    "--num-layers",
    "--embed-dim",
    "--num-heads",
    "--kdim",
    "--normalized-shape",
    "--num-embeddings",
    "--embedding-dim",
    "--mode",
    "--padding-idx",
    "--input-shape",
    "--depth",
    "--nonlinearity",
    "--dilation",
    "--output-size",
    "--size",
    "--scale-factor",
    "--dim",
    "--negative-slope",
    "--approximate",
    "--divisor-override",
    "--inputs",
    "--outputs",
    "--activation",
    "--batch",
    "--seq-len",
    "--dtype",
    "--training",
    "--convention",
    "--head",
    "--heads",
    "--kv-heads",
    "--head-dim",
    "--intermediate",
    "--context",
    "--experts",
    "--experts-per-token",
    "--moe-intermediate",
    "--shared-intermediate",
    "--sparse-step",
    "--dense-layers",
    "--moe-layout",
    "--qa-body",
    "--rotary-pct",
    "--class",
    "--allow-field",
    "--attention-bias",
    "--layout",
    "--show",
    "--vary",
    "--from",
    "--to",
    "--plot-file",
    "--moe-intermediate",
    "--experts-per-token",
    "--shared-experts",
    "--dense-layers",
    "--expert-groups",
    "--topk-groups",
    "--q-lora-rank",
    "--kv-lora-rank",
    "--nope-dim",
    "--rope-dim",
    "--value-dim",
    "--moe-layout",
]
SWITCHES = [
    "--correction-bias",
    "--no-correction-bias",
    "--qk-norm",
    "--one-hot",
    "--no-bias",
    "--bidirectional",
    "--tie-weights",
    "--explain",
    "--bias",
    "--batch-first",
    "--verify",
    "--help",
    "--inplace",
    "--ceil-mode",
    "--return-indices",
    "--align-corners",
    "--no-align-corners",
    "--recompute-scale-factor",
    "--all",
    "--shapes",
    "--mixed-precision",
    "--plot",
    "--memory",
    "--qk-norm",
]
VALUES = st.one_of(
    st.integers(-3, 70).map(str),
    st.sampled_from(
        [
            "0",
            "1",
            "2",
            "3",
            "512",
            "65",
            "H",
            "V",
            "L",
            "1e3",
            "10M",
            "3.5e6",
            "0.5",
            "1.0",
            "nan",
            "inf",
            "-0",
            "same",
            "valid",
            "3,3",
            "0,1,2",
            "1,-1",
            "(2, 2)",
            "json",
            "table",
            "markdown",
            "latex",
            "tree",
            "keras",
            "onnx",
            "adamw",
            "bf16",
            "gelu",
            "hidden",
            "layers",
            "vocab",
            "embed-dim",
            "sum",
            "max",
            "tanh",
            "relu",
            "",
            " ",
            "none",
            "10**15",
            "1" + "0" * 15,
            "1" + "0" * 40,
            "4,269,121",
            "B,T,512",
            "2,3,8,8",
            "1..4",
            "4..1",
            "8..64:8",
            "1..1000000",
            "params,state",
            "layers=1,2",
            "pytorch",
            "out.svg",
            "/nonexistent/out.png",
            PIPE,
            "/dev/null",
            str(_HERE / "dir.svg"),
            "none,3",
            "2.5",
            "bilinear",
            "area",
            "lm",
            "mlm",
            "LlamaModel",
            "9" * 5000,
            "-" + "9" * 5000,
            "1e1000000",
            "1.5e-1000000",
            "9223372036854775808",
            "0" * 5000 + "5",
            "0" * 5000 + "5,6",
            "1.." + "0" * 5000 + "9",
            "1.." + "9" * 4000 + ":" + "0" * 5000 + "1",
            "x" * 100_000,
            "[bold]",
            "[/]",
            "\x1b[2J",
            "a\nb",
            CONFIG,
            "/no/such/file",
            "acme/missing-model",
            "sys:exit",
            "os:abort",
        ]
    ),
    st.text(max_size=6),
)
TOKENS = st.one_of(
    st.tuples(st.sampled_from(FLAGS), VALUES).map(list),
    st.sampled_from(SWITCHES).map(lambda s: [s]),
    st.sampled_from(["--frobnicate", "-x", "extra", "--", "ünïcødé", "\u202e"]).map(lambda s: [s]),
)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=st.sampled_from(COMMANDS), tokens=st.lists(TOKENS, max_size=6))
def test_every_command_exits_0_or_2_with_one_line(command: list[str], tokens: list[Any]) -> None:
    args = [*command, *(t for group in tokens for t in group)]
    start = time.perf_counter()
    result = run(args, 100)
    took = time.perf_counter() - start
    event(f"exit {result.exit_code}")
    shown = [a[:60] for a in args]
    assert took < 120, (shown, f"{took:.1f} s")  # a hang, not a speed (benchmarks/ time it)
    assert result.exit_code in (0, 2), (shown, result.exit_code, result.output[:500])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        shown,
        repr(result.exception)[:500],
    )
    assert "Traceback" not in result.output, shown
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (shown, result.stderr[:500])
        assert len(lines[0]) <= 700, (shown, len(lines[0]))
    elif "--help" not in args:
        assert result.stdout.strip() or "Verified against" in result.stderr, shown
        fmt = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--format"]
        if fmt and fmt[-1] == "json" and (command[0] in ARCHITECTURES or command[0] == "layer"):
            REPORT.validate(json.loads(result.stdout))  # always parses, always valid


HUGE = ["9" * 5000, "-" + "9" * 5000, "9223372036854775808", "1e1000000"]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize(
    "args",
    [
        ["layer", "conv2d", "--in-channels", "3", "--out-channels", "4", "--kernel-size"],
        [
            "layer",
            "conv2d",
            "--in-channels",
            "3",
            "--out-channels",
            "4",
            "--kernel-size",
            "3",
            "--stride",
        ],
        ["layer", "linear", "--in-features", "3", "--out-features", "4", "--input-shape"],
        ["layer", "linear", "--in-features", "3", "--out-features"],
        ["layer", "maxpool2d", "--kernel-size", "2", "--input-shape", "1,3,8,8", "--padding"],
        ["lstm", "--vocab", "5", "--hidden"],
        ["lstm", "--vocab", "5", "--hidden", "4", "--shapes", "--batch"],
        ["solve", "lstm", "--vocab", "5", "--params", "1e30", "--layers"],
        ["llama", "--vocab", "5", "--hidden", "8", "--layers", "1", "--heads"],
        ["inspect", "--depth"],
    ],
)
def test_numbers_past_any_size_are_one_line(args: list[str], value: str) -> None:
    result = run([*args, value])
    assert result.exit_code == 2, result.output[:300]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and len(lines[0]) <= 700


ZEROS = "0" * 5000


@pytest.mark.parametrize(
    "args",
    [
        ["lstm", "--vocab", "5", "--hidden", ZEROS + "8"],
        ["lstm", "--vocab", "5", "--hidden", "8", "--memory", "--batch", ZEROS + "2"],
        ["layer", "linear", "--in-features", ZEROS + "3", "--out-features", "4"],
        [
            "layer",
            "conv2d",
            "--in-channels",
            "3",
            "--out-channels",
            "4",
            "--kernel-size",
            "0" + ZEROS + "3,2",
        ],
        ["mlp", "--inputs", ZEROS + "4", "--hidden", "3", "--layers", "1", "--outputs", "2"],
        ["sweep", "lstm", "--vocab", "5", "--hidden", f"{ZEROS}8,{ZEROS}16"],
        ["sweep", "lstm", "--vocab", "5", "--hidden", f"{ZEROS}8..{ZEROS}16:{ZEROS}8"],
        ["solve", "lstm", "--vocab", "5", "--params", ZEROS + "10000"],
    ],
)
def test_thousands_of_leading_zeros_are_the_number(args: list[str]) -> None:
    """Leading zeros count toward Python's 4,300-digit limit on int(): read past them."""
    result = run(args)
    assert result.exit_code == 0, result.output[-300:]


@pytest.mark.parametrize(
    "values", ["9" * 4300 + ",1", "1.." + "9" * 4300, "1..9:" + "9" * 4300, "-" + "9" * 4400]
)
def test_sweep_values_past_the_digit_limit_are_one_line(values: str) -> None:
    result = run(["sweep", "lstm", "--vocab", "5", "--hidden", values])
    assert result.exit_code == 2, result.output[-300:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and len(lines[0]) <= 700
