"""AWQ, tensor by tensor: shapecalc's stored tensors against AutoAWQ's WQLinear layers
packed for real (recorded in tests/golden/packed_truth.json by tests/packed_truth.py)
and transformers' own AWQ conversion of a whole model, the layout rules on drawn sizes,
a published checkpoint's shapes, and what AWQ cannot take refused in one line."""

from __future__ import annotations

import math
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from shapecalc.cli import cli
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.layers.linear import Linear
from shapecalc.quant import from_config, parse_weights, quantize
from tests.test_gptq import LLAMA, TRUTH, layer, tensors


@pytest.mark.parametrize("case", TRUTH["awq_layers"], ids=lambda c: str(c))
def test_a_layer_stores_what_autoawq_packs(case: dict[str, Any]) -> None:
    """AutoAWQ 0.2.9's WQLinear_GEMM, _GEMV and _GEMVFast.from_linear (a Linear packed with
    scales and zero points, as awq/quantize/quantizer.py calls them) and WQLinear_Exllama
    as built to load: every name, shape, dtype, in order."""
    method = parse_weights(f"awq:version={case['version']},group_size={case['group_size']}").method
    assert layer(Linear(case["in"], case["out"], bias=case["bias"]), method) == case["state"]


def test_a_model_stores_what_transformers_converts() -> None:
    """transformers 5's replace_with_awq_linear (GPTQModel's AWQ layer, GEMM layout) on a
    tiny LLaMA, the head left by get_keys_to_not_convert: every tensor, in order."""
    from shapecalc.adapters.hf_config import from_hf_config

    (record,) = [m for m in TRUTH["models"] if m["method"] == "awq"]
    model = from_hf_config(record["config"])
    q = quantize(model, from_config({"quant_method": "awq", **record["settings"]}))
    assert [(n, s, d) for n, s, d in tensors(q)] == [tuple(t) for t in record["state"]]


def test_the_json_is_what_autoawq_packs_today() -> None:
    """Rerun AutoAWQ's packers the truth file records (AutoAWQ needs a CUDA build to
    install; tests/packed_truth.py says how it was run from its source)."""
    import importlib.util

    if importlib.util.find_spec("awq") is None:
        pytest.skip("AutoAWQ is not importable here")
    from tests import packed_truth

    packed_truth.stub_datasets()
    pytest.importorskip("awq.modules.linear.gemm")

    for case in TRUTH["awq_layers"][:8]:
        real = packed_truth.awq_layer(
            case["version"], case["group_size"], case["in"], case["out"], case["bias"]
        )
        assert packed_truth._state(real) == case["state"]


def test_ipex_holds_gemm_tensors_in_bfloat16() -> None:
    """awq/modules/linear/gemm_ipex.py: WQLinear_IPEX registers GEMM's shapes, scales and
    bias in bfloat16 (use_bf16 = True); it needs Intel's extension, so cited, not run."""
    got = layer(Linear(256, 64), parse_weights("awq:version=ipex").method)
    assert got == [
        ["qweight", [256, 8], "int32"],
        ["qzeros", [2, 8], "int32"],
        ["scales", [2, 64], "bfloat16"],
        ["bias", [64], "bfloat16"],
    ]


@st.composite
def awq_cases(draw: Any) -> tuple[str, int, int, int]:
    version = draw(st.sampled_from(("gemm", "gemv", "gemv_fast")))
    group = draw(st.sampled_from((32, 64, 128, 256)))
    n_in = group * draw(st.integers(1, 64)) * (2 if version == "gemv_fast" and group == 32 else 1)
    n_out = 32 * draw(st.integers(1, 400))
    return version, group, n_in, n_out


def zeros_width(n_in: int, group: int) -> int:
    """AutoAWQ's calculate_zeros_width (awq/modules/linear/gemv.py)."""
    multiplier = 1 if group >= 128 else {64: 2, 32: 4}[group]
    base = -(-(n_in // group) // 8)
    return -(-base // multiplier) * multiplier


@given(awq_cases())
def test_the_layout_rules_on_drawn_sizes(case: tuple[str, int, int, int]) -> None:
    """The shapes each WQLinear's __init__ registers (gemm.py, gemv.py, gemv_fast.py of
    AutoAWQ 0.2.9), and the bytes exact."""
    version, group, n_in, n_out = case
    w = zeros_width(n_in, group)
    expected = {
        "gemm": [
            ["qweight", [n_in, n_out // 8], "int32"],
            ["qzeros", [n_in // group, n_out // 8], "int32"],
            ["scales", [n_in // group, n_out], "float16"],
        ],
        "gemv": [
            ["qweight", [n_out, n_in // 8], "int32"],
            ["qzeros", [n_out, w], "int32"],
            ["scales", [n_out, w * 8], "float16"],
        ],
        "gemv_fast": [
            ["qweight", [n_out // 4, n_in // 4 * 4], "int16"],
            ["scales", [w * 8, n_out], "float16"],
            ["qzeros", [w * 8, n_out], "float16"],
        ],
    }[version]
    method = parse_weights(f"awq:version={version},group_size={group}").method
    assert layer(Linear(n_in, n_out, bias=False), method) == expected
    sizes = {"int32": 4, "int16": 2, "float16": 2}
    want = sum(math.prod(s) * sizes[d] for _, s, d in expected)
    got = quantize_one(n_in, n_out, version, group)
    assert got == want


def quantize_one(n_in: int, n_out: int, version: str, group: int) -> int:
    from shapecalc.quant import Quantized

    method = parse_weights(f"awq:version={version},group_size={group}").method
    return sum(
        int(p.nbytes(2)) for p in Quantized(Linear(n_in, n_out, bias=False), method).params()
    )


def test_published_llama2_7b_awq_shapes() -> None:
    """TheBloke/Llama-2-7B-AWQ's model.safetensors, as AutoAWQ issue #566 quotes it:
    model.layers.0.mlp.down_proj.qweight [11008, 512] I32, qzeros [86, 512] I32, scales
    [86, 4096] F16."""
    from shapecalc.architectures import get

    model = get("llama")(vocab=32000, hidden=4096, layers=1, heads=32, intermediate=11008).model()  # type: ignore[call-arg]
    shapes = {n: (s, d) for n, s, d in tensors(quantize(model, parse_weights("awq")))}
    assert shapes["model.layers.0.mlp.down_proj.qweight"] == ([11008, 512], "int32")
    assert shapes["model.layers.0.mlp.down_proj.qzeros"] == ([86, 512], "int32")
    assert shapes["model.layers.0.mlp.down_proj.scales"] == ([86, 4096], "float16")


def test_configs_transformers_and_autoawq_write_are_read() -> None:
    """transformers' AwqConfig.to_dict(), and AutoAWQ's quant_config keys (w_bit,
    q_group_size, version "GEMM": awq/models/base.py)."""
    from transformers import AwqConfig

    written = AwqConfig(bits=4, group_size=64, version="gemv").to_dict()
    method: Any = from_config(written).method
    assert (method.group_size, method.kind) == (64, "gemv")
    autoawq: Any = from_config(
        {
            "quant_method": "awq",
            "zero_point": True,
            "q_group_size": 128,
            "w_bit": 4,
            "version": "GEMM",
        }
    ).method
    assert (autoawq.bits, autoawq.group_size, autoawq.kind) == (4, 128, "gemm")


def test_modules_to_not_convert_is_a_substring_within_the_block() -> None:
    """awq/utils/module.py exclude_layers_to_not_quantize: `any(key in name ...)` over the
    names within a block: "gate" leaves the MLP's gate_proj too."""
    from shapecalc.architectures import get

    model = get("llama")(vocab=100, hidden=128, layers=2, heads=2, intermediate=256).model()  # type: ignore[call-arg]
    q = quantize(model, from_config({"quant_method": "awq", "modules_to_not_convert": ["gate"]}))
    names = [n for n, _, _ in tensors(q)]
    assert "model.layers.1.mlp.gate_proj.weight" in names
    assert "model.layers.1.mlp.up_proj.qweight" in names


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("awq:bits=8", "bits = 8"),
        ("awq:group_size=-1", "cannot take -1"),
        ("awq:zero_point=false", "zero_point = False"),
        ("awq:version=marlin", "version = .marlin."),
        ("awq:version=gemv,group_size=16", "group_size = 16"),
    ],
)
def test_settings_awq_cannot_take_are_refused(text: str, words: str) -> None:
    with pytest.raises(InvalidArgumentError, match=words):
        parse_weights(text)


def run(args: list[str], width: int = 80) -> Any:
    return CliRunner().invoke(cli, args, env={"COLUMNS": str(width)}, prog_name="shapecalc")


@pytest.mark.parametrize("width", [80, 200])
def test_the_cli_prints_the_packed_tensors(width: int) -> None:
    result = run([*LLAMA, "--weights", "awq", "--memory"], width)
    assert result.exit_code == 0, result.output
    assert "q_proj.qweight" in result.stdout and "g_idx" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= width


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            [
                "gpt2",
                "--vocab",
                "100",
                "--hidden",
                "64",
                "--layers",
                "2",
                "--heads",
                "4",
                "--context",
                "32",
            ],
            "nn.Linear",
        ),
        ([*LLAMA[:-2], "--heads", "4", "--intermediate", "100"], "out_features = 100"),
    ],
)
def test_models_awq_cannot_take_are_refused_in_one_line(args: list[str], words: str) -> None:
    result = run([*args, "--weights", "awq"])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.stderr.split()) and "Traceback" not in result.output
