"""MXFP4 as a method, and what a quantized model's report says: the parameters and the
stored bytes, the weights line of the memory account, JSON's quantization section,
--verify on the unquantized model, and bad input in one line."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc as sc
from shapecalc.core.errors import ShapecalcError
from shapecalc.quant import parse_weights, quantize
from tests.test_cli import run
from tests.test_schema import validator

GPT_OSS = [
    "gpt-oss",
    "--vocab",
    "100",
    "--hidden",
    "64",
    "--layers",
    "2",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--head-dim",
    "16",
    "--intermediate",
    "96",
    "--experts",
    "4",
]
LLAMA = [
    "llama",
    "--vocab",
    "1000",
    "--hidden",
    "256",
    "--layers",
    "2",
    "--heads",
    "4",
    "--intermediate",
    "512",
]


@settings(max_examples=20)
@given(
    e=st.integers(4, 8),
    h=st.integers(1, 6).map(lambda n: 32 * n),
    i=st.integers(1, 6).map(lambda n: 32 * n),
)
def test_mxfp4_stores_gpt_oss_experts_as_its_checkpoints(e: int, h: int, i: int) -> None:
    """The experts' tensors as transformers' MXFP4 quantizer serializes them
    (quantizers/quantizer_mxfp4.py: gate_up_proj -> gate_up_proj_blocks and
    gate_up_proj_scales, down_proj likewise), the blocks holding exactly the bytes of
    Mxfp4GptOssExperts' packed uint8 tensors (integrations/mxfp4.py: (E, 2·I, H // 2) and
    (E, H, I // 2)); attention, router, embeddings, norms and head unconverted."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.integrations.mxfp4 import Mxfp4GptOssExperts

    config = transformers.GptOssConfig(
        vocab_size=50,
        hidden_size=h,
        intermediate_size=i,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        num_local_experts=e,
    )
    with torch.device("meta"):
        packed = dict(Mxfp4GptOssExperts(config).named_parameters())
    model = sc.from_hf_config({**config.to_dict(), "architectures": ["GptOssForCausalLM"]})
    q = quantize(model, parse_weights("mxfp4"))
    changed = {r.name: r for r in q.rows() if r.name not in dict(model.named_parameters())}
    stem = "model.layers.0.mlp.experts."
    assert sorted(changed) == sorted(
        stem + f"{p}_{s}" for p in ("gate_up_proj", "down_proj") for s in ("blocks", "scales")
    )
    for proj in ("gate_up_proj", "down_proj"):
        blocks, scales = changed[stem + proj + "_blocks"], changed[stem + proj + "_scales"]
        assert blocks.param.nbytes(2) == packed[proj].numel()  # uint8: a byte a number
        assert blocks.shape[:3] == scales.shape and blocks.shape[3] == 16
        assert blocks.param.dtype == scales.param.dtype == "uint8"
    assert q.parameters == model.total
    from shapecalc.adapters.hf_config import hf_model

    # the same tensors as gpt-oss's checkpoint layout (--layout checkpoint) lists them
    layout = hf_model({**config.to_dict(), "architectures": ["GptOssForCausalLM"]})
    listed = layout.checkpoint_model().rows()
    assert [(r.name, r.shape, r.param.dtype) for r in q.rows()] == [
        (r.name, r.shape, r.param.dtype) for r in listed
    ]


def test_the_summary_says_parameters_and_stored_bytes() -> None:
    plain = run(LLAMA, 80)
    result = run([*LLAMA, "--weights", "int8", "--memory", "--training", "none"], 80)
    assert result.exit_code == 0, result.output
    total = next(line for line in plain.stdout.splitlines() if line.startswith("Total"))
    parameters = total.split()[1]  # the parameters, not the stored numbers
    assert f"Total      {parameters} parameters" in result.stdout
    assert f"{parameters.replace(',', '')[:1]}.82 M params" in result.stdout
    assert "Stored" in result.stdout and "bitsandbytes 8-bit" in result.stdout  # wraps at 80
    report = json.loads(run([*LLAMA, "--weights", "int8", "--memory", "--format", "json"]).stdout)
    rule = next(m["rule"] for m in report["cost"]["memory"] if m["label"] == "weights")
    own, others = report["quantization"]["bytes"]["fp32"].values()
    assert rule.startswith("bitsandbytes 8-bit (LLM.int8): stored as ")
    assert rule.endswith(f"the others 4 bytes each (fp32), {others:,} bytes")
    by_dtype = re.findall(r"(\w+) tensors ([\d,]+) bytes", rule)
    assert {"int8", "float32"} <= {d for d, _ in by_dtype}  # weights, and SCB's scales
    assert sum(int(n.replace(",", "")) for _, n in by_dtype) == own
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    wide = run([*LLAMA, "--weights", "nf4", "--memory"], 200)
    assert wide.exit_code == 0 and max(len(x) for x in wide.stdout.splitlines()) <= 200


@pytest.mark.parametrize(
    "weights",
    ["int8", "nf4", "fp4:bnb_4bit_use_double_quant=true", "fp8", "fp8:weight_block_size=null"],
)
def test_json_carries_the_quantization(weights: str) -> None:
    result = run([*LLAMA, "--weights", weights, "--format", "json", "--memory"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validator("report").validate(report)
    quantization = report["quantization"]
    model = sc.llama(vocab=1000, hidden=256, layers=2, heads=4, intermediate=512)
    assert quantization["parameters"] == model.total
    chosen = quantize(model, parse_weights(weights))
    for dtype in ("fp32", "bf16"):
        part = quantization["bytes"][dtype]
        assert part["quantized"] + part["others"] == report["bytes"][dtype] == chosen.bytes(dtype)
    stored = [p for layer in report["layers"] for p in layer["params"] if "dtype" in p]
    assert stored and all(p["dtype"] for p in stored)


def test_verify_compares_the_unquantized_model() -> None:
    pytest.importorskip("transformers")
    for args in (LLAMA, GPT_OSS):
        weights = "nf4" if args is LLAMA else "mxfp4"
        result = run([*args, "--weights", weights, "--verify"], 200)
        assert result.exit_code == 0, result.output
        assert "Verified against transformers" in result.output
        assert "the unquantized model" in result.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([*LLAMA, "--weights", "mxfp4"], "converts no layer"),
        (
            [*GPT_OSS[:-4], "--intermediate", "100", "--experts", "4", "--weights", "mxfp4"],
            "not a multiple of 32",
        ),
        (
            [
                *LLAMA,
                "--weights",
                "nf4:bnb_4bit_quant_storage=float32",
                "--hidden",
                "2",
                "--heads",
                "1",
                "--intermediate",
                "3",
            ],
            "cannot view",
        ),
        ([*LLAMA, "--weights", "q9_z"], "not a format shapecalc knows"),
        ([*LLAMA, "--weights", "nf4:colour=blue"], "no setting 'colour'"),
        ([*LLAMA, "--weights", "nf4:llm_int8_skip_modules=lm_head"], "list of module names"),
        ([*LLAMA, "--weights", "fp8:weight_block_size=7"], "weight_block_size"),
        ([*LLAMA, "--weights", "int8:modules_to_not_convert=x"], "no setting"),
        (
            [
                "llama",
                "--vocab",
                "V",
                "--hidden",
                "H",
                "--layers",
                "L",
                "--heads",
                "A",
                "--intermediate",
                "I",
                "--weights",
                "nf4",
            ],
            "give the sizes as numbers",
        ),
    ],
)
def test_bad_weights_are_one_line(args: list[str], said: str) -> None:
    result = run(args, 200)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0], result.stderr
    assert "--weights" in lines[0]


def _from(options: dict[str, Any]) -> Any:
    from shapecalc.quant import from_config

    return from_config({"quant_method": "bitsandbytes", "load_in_8bit": True, **options})


def test_skip_patterns() -> None:
    model = sc.llama(vocab=100, hidden=64, layers=2, heads=4, intermediate=128)
    down = quantize(model, _from({"llm_int8_skip_modules": ["mlp.down_proj"]}))
    kept = {r.layer for r in down.rows() if r.layer.endswith("_proj") and not r.param.dtype}
    assert kept == {"model.layers.{0..1}.mlp.down_proj"}
    assert any(r.name == "lm_head.SCB" for r in down.rows())  # a list given: head converted
    default = quantize(model, _from({}))
    assert not any(r.name.startswith("lm_head.S") for r in default.rows())
    regex = quantize(model, _from({"llm_int8_skip_modules": ["model.layers.*"]}))
    assert [r.name for r in regex.rows() if r.name.endswith("SCB")] == ["lm_head.SCB"]
    with pytest.raises(ShapecalcError, match=r"llm_int8_skip_modules .* names some of the"):
        quantize(model, _from({"llm_int8_skip_modules": ["model.layers.1"]}))


def test_sweep_counts_parameters_of_a_quantized_model() -> None:
    args = ["sweep", "llama", "--vocab", "1000", "--hidden", "256,512", "--layers", "2"]
    args += ["--heads", "4", "--intermediate", "512", "--format", "json"]
    plain, stored = run(args), run([*args, "--weights", "nf4"])
    assert plain.exit_code == stored.exit_code == 0, stored.output

    def column(result: Any, key: str) -> list[Any]:
        return [p["values"][key] for p in json.loads(result.stdout)["points"]]

    assert column(stored, "params") == column(plain, "params")
    validator("sweep").validate(json.loads(stored.stdout))
    pairs = zip(column(stored, "weights"), column(plain, "weights"), strict=True)
    assert all(a < b for a, b in pairs)


@given(
    text=st.text(alphabet=st.sampled_from(list("nf4fp8int8mxbq:=,;[]()_.-tTrue0123 ")), max_size=40)
    | st.sampled_from(
        [
            "nf4:llm_int8_skip_modules=[(]",
            "fp8:weight_block_size=[1;x]",
            "compressed-tensors:config_groups=1",
            "bitsandbytes:load_in_4bit=true,bnb_4bit_quant_storage=[]",
            "mxfp4:dequantize=true",
        ]
    )
)
def test_any_weights_text_is_a_quantization_or_one_error(text: str) -> None:
    model = sc.llama(vocab=50, hidden=64, layers=2, heads=4, intermediate=64)
    try:
        quantize(model, parse_weights(text))
    except ShapecalcError as err:
        assert "\n" not in str(err)
