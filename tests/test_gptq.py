"""GPTQ, tensor by tensor: shapecalc's stored tensors against GPTQModel's QuantLinear and
optimum's conversion of whole transformers models (recorded in tests/golden/
packed_truth.json by tests/packed_truth.py, and rerun live where GPTQModel imports), the
layout rules on drawn sizes, published checkpoints' shapes, and the settings and layers
GPTQ cannot take refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from shapecalc.cli import cli
from shapecalc.core.dims import symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.model import Model, full_name
from shapecalc.core.spec import expand
from shapecalc.core.tree import every_child, placed_leaves
from shapecalc.layers.linear import Linear
from shapecalc.layers.transformers import Conv1D
from shapecalc.quant import Quantized, from_config, parse_weights, quantize

TRUTH = json.loads((Path(__file__).parent / "golden" / "packed_truth.json").read_text())


def tensors(model: Model, dtype: str = "float16") -> list[tuple[str, list[int], str]]:
    """Every stored tensor (name, shape, dtype), repeated blocks expanded, ties once."""
    return [
        (full_name(place.path, p.name), [int(d) for d in p.shape], p.dtype or dtype)
        for (place,) in placed_leaves((model.root,), every_child)
        for p in expand(place.leaf.spec.params())
        if full_name(place.path, p.name) not in model.ties
    ]


def layer(spec: Any, method: Any) -> list[list[Any]]:
    return [
        [p.name, [int(d) for d in p.shape], p.dtype or "float16"]
        for p in Quantized(spec, method).params()
    ]


@pytest.mark.parametrize("case", TRUTH["gptq_layers"], ids=lambda c: str(c))
def test_a_layer_stores_what_gptqmodel_stores(case: dict[str, Any]) -> None:
    """GPTQModel's TorchLinear (gptqmodel/nn_modules/qlinear/__init__.py,
    GPTQQuantLinear._register_gptq_buffers), some packed for real by pack_original:
    every name, shape, dtype and the order."""
    method = from_config(
        {"quant_method": "gptq", "bits": case["bits"], "group_size": case["group_size"]}
    ).method
    got = layer(Linear(case["in"], case["out"], bias=case["bias"]), method)
    assert got == case["state"]


@pytest.mark.parametrize(
    "record",
    [m for m in TRUTH["models"] if m["method"] == "gptq"],
    ids=lambda m: f"{m['name']}-{m['settings']}",
)
def test_a_model_stores_what_optimum_converts(record: dict[str, Any]) -> None:
    """optimum's GPTQQuantizer.convert_model on a tiny transformers model (fp16): the
    Linear (and GPT-2's Conv1D) layers of the blocks quantized, embeddings, norms and the
    head left. optimum re-registers each converted module after its siblings, in dir()
    order (quantizer.py: _replace_by_quant_layers, delattr then setattr), so its state
    dict lists them in another order than the model's (a safetensors file sorts names
    anyway): compared sorted, and the count of tensors equal."""
    from shapecalc.adapters.hf_config import from_hf_config

    model = from_hf_config(record["config"])
    q = quantize(model, from_config({"quant_method": "gptq", **record["settings"]}))
    truth = [tuple(t) for t in record["state"] if t[0] not in model.ties]
    got = [(n, s, d) for n, s, d in tensors(q)]
    assert sorted(got) == sorted((n, list(s), d) for n, s, d in truth)
    assert q.parameters == model.parameters  # the count stays the unquantized model's


def test_the_json_is_what_gptqmodel_writes_today() -> None:
    """Rerun the packers the truth file records (needs GPTQModel and optimum: they pin
    numpy 2.2.6, so they live outside the test environment; see tests/packed_truth.py)."""
    pytest.importorskip("gptqmodel")
    pytest.importorskip("optimum.gptq")
    from tests import packed_truth

    for case in TRUTH["gptq_layers"][:12]:
        real = packed_truth.gptq_layer(
            case["bits"], case["group_size"], case["in"], case["out"], case["bias"], case["packed"]
        )
        assert packed_truth._state(real) == case["state"]
    first = TRUTH["models"][0]
    assert packed_truth.gptq_model(first["config"], **first["settings"]) == first["state"]


@st.composite
def gptq_cases(draw: Any) -> tuple[int, int, int, int]:
    bits = draw(st.sampled_from((2, 3, 4, 8)))
    group = draw(st.sampled_from((-1, 16, 32, 64, 128, 256, 512, 1024)))
    step = 32 if bits == 3 else 1
    n_in = step * draw(st.integers(1, 20_000 // step))
    n_out = step * draw(st.integers(1, 20_000 // step))
    return bits, group, n_in, n_out


@given(gptq_cases())
def test_the_layout_rules_on_drawn_sizes(case: tuple[int, int, int, int]) -> None:
    """The registered buffers' shapes (gptqmodel/nn_modules/qlinear/__init__.py,
    _register_gptq_buffers: ceil(in·bits/32) words, ceil(in/group) groups,
    ceil(out·bits/32) words of zero points), the symbolic formula evaluated at the drawn
    sizes equal to the concrete shapes, and the bytes exact."""
    bits, group, n_in, n_out = case
    method = parse_weights(f"gptq:bits={bits},group_size={group}").method
    g = n_in if group == -1 else group
    groups = math.ceil(n_in / g)
    expected = [
        ["qweight", [math.ceil(n_in * bits / 32), n_out], "int32"],
        ["qzeros", [groups, math.ceil(n_out * bits / 32)], "int32"],
        ["scales", [groups, n_out], "float16"],
        ["g_idx", [n_in], "int32"],
        ["bias", [n_out], "float16"],
    ]
    assert layer(Linear(n_in, n_out), method) == expected
    i, o = symbol("I"), symbol("O")
    symbolic = list(Quantized(Linear(i, o), method).params())
    values = {"I": n_in, "O": n_out}
    assert [
        [int(d.subs(values)) if not isinstance(d, int) else d for d in p.shape] for p in symbolic
    ] == [e[1] for e in expected]
    sizes = {"int32": 4, "float16": 2}
    want = sum(math.prod(s) * sizes[d] for _, s, d in expected)
    assert sum(p.nbytes(2) for p in Quantized(Linear(n_in, n_out), method).params()) == want


def test_conv1d_is_quantized_in_and_out() -> None:
    """GPT-2's Conv1D (in, out) weight: optimum takes in = weight.shape[0]
    (quantizer.py: _replace_by_quant_layers)."""
    method = parse_weights("gptq:group_size=32").method
    got = layer(Conv1D(192, 64), method)
    assert got[0] == ["qweight", [8, 192], "int32"] and got[3] == ["g_idx", [64], "int32"]


def test_llama2_7b_gptq_shapes() -> None:
    """Llama-2-7B at 4 bits in groups of 128 (TheBloke/Llama-2-7B-GPTQ's main branch, as
    the issue's brief quotes its q_proj: qweight (512, 4096) int32, qzeros (32, 512),
    scales (32, 4096), g_idx (4096,); the names as FastChat issue #3520 lists that kind of
    checkpoint's, g_idx included); down_proj's 11008 inputs make 86 groups, the same 86
    AutoAWQ issue #566 shows for the AWQ checkpoint of the model."""
    from shapecalc.architectures import get

    cls = get("llama")
    model = cls(vocab=32000, hidden=4096, layers=2, heads=32, intermediate=11008).model()  # type: ignore[call-arg]
    q = quantize(model, parse_weights("gptq"))
    shapes = {n: (s, d) for n, s, d in tensors(q)}
    prefix = "model.layers.0."
    assert shapes[prefix + "self_attn.q_proj.qweight"] == ([512, 4096], "int32")
    assert shapes[prefix + "self_attn.q_proj.qzeros"] == ([32, 512], "int32")
    assert shapes[prefix + "self_attn.q_proj.scales"] == ([32, 4096], "float16")
    assert shapes[prefix + "self_attn.q_proj.g_idx"] == ([4096], "int32")
    assert shapes[prefix + "mlp.down_proj.qweight"] == ([1376, 4096], "int32")
    assert shapes[prefix + "mlp.down_proj.scales"] == ([86, 4096], "float16")
    assert shapes["lm_head.weight"] == ([32000, 4096], "float16")
    assert shapes["model.embed_tokens.weight"] == ([32000, 4096], "float16")


def test_configs_transformers_writes_are_read() -> None:
    """Every key transformers' GPTQConfig serialises (to_dict) is read or known to change
    no tensor."""
    from transformers import GPTQConfig

    written = GPTQConfig(bits=3, group_size=64, desc_act=True).to_dict()
    method = from_config(written).method
    assert (method.bits, method.group_size, method.desc_act) == (3, 64, True)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("gptq:bits=5", "bits = 5"),
        ("gptq:group_size=100", "group_size = 100"),
        ("gptq:checkpoint_format=marlin", "checkpoint_format = .marlin."),
        ("gptq:pack_dtype=int16", "pack_dtype = .int16."),
        ("gptq:colour=red", "no setting .colour."),
        ("gptq:bits=abc", "bits = .abc."),
        ("gptq:desc_act=maybe", "desc_act = .maybe."),
        ("gptq:modules_in_block_to_quantize=q_proj", "a list of lists"),
        ("gptq:block_name_to_quantize=nowhere", "names under nowhere"),
    ],
)
def test_settings_gptq_cannot_take_are_refused(text: str, words: str) -> None:
    from shapecalc.architectures import get

    model = get("llama")(vocab=100, hidden=128, layers=1, heads=2).model()  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentError, match=words):
        quantize(model, parse_weights(text))


def test_a_dynamic_config_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="dynamic"):
        from_config({"quant_method": "gptq", "bits": 4, "dynamic": {"-:.*mlp.*": {}}})


def test_three_bits_need_multiples_of_32() -> None:
    """pack_original packs 3-bit numbers 32 at a time into 3 words."""
    from shapecalc.architectures import get

    model = get("llama")(vocab=100, hidden=96, layers=1, heads=2, intermediate=100).model()  # type: ignore[call-arg]
    with pytest.raises(InvalidArgumentError, match="out_features = 100"):
        quantize(model, parse_weights("gptq-int3"))


def run(args: list[str], width: int = 80) -> Any:
    return CliRunner().invoke(cli, args, env={"COLUMNS": str(width)}, prog_name="shapecalc")


LLAMA = ["llama", "--vocab", "1000", "--hidden", "256", "--layers", "2", "--heads", "4"]


@pytest.mark.parametrize("width", [80, 200])
def test_the_cli_prints_the_packed_tensors(width: int) -> None:
    result = run([*LLAMA, "--weights", "gptq-int8", "--memory"], width)
    assert result.exit_code == 0, result.output
    assert "q_proj.qweight" in result.stdout and "g_idx" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= width


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["mlp", "--inputs", "64", "--hidden", "64", "--layers", "2", "--outputs", "10"],
            "no decoder blocks",
        ),
        (
            [*LLAMA, "--experts", "4"],
            "--moe-layout checkpoint",
        ),
    ],
)
def test_models_gptq_cannot_take_are_refused_in_one_line(args: list[str], words: str) -> None:
    result = run([*args, "--weights", "gptq"])
    assert result.exit_code == 2
    assert words in " ".join(result.stderr.split())
    assert "Traceback" not in result.output


def test_experts_named_one_by_one_are_quantized() -> None:
    """GPTQModel defuses transformers 5's experts into a Linear per expert before it
    quantizes (gptqmodel/models/loader.py: _convert_model_with_defuser); the checkpoint
    layout names them so, and each expert's matrices are packed; the router is left."""
    result = run([*LLAMA, "--experts", "4", "--moe-layout", "checkpoint", "--weights", "gptq"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "experts.{0..3}.w1.qweight" in out and "block_sparse_moe.gate.weight" in out
    assert "gate.qweight" not in out


def _example(command: str) -> list[str]:
    import shlex

    from shapecalc.architectures import get

    args = shlex.split(get(command).example)
    args = args[1:] if args[0] == "shapecalc" else args
    return args if args[0] == command else [command, *args]


def _commands() -> list[str]:
    from shapecalc.architectures import commands

    return commands()


@pytest.mark.parametrize("weights", ["gptq", "awq"])
@pytest.mark.parametrize("command", _commands())
def test_every_architecture_is_packed_or_refused_in_one_line(command: str, weights: str) -> None:
    """Each architecture's example: its blocks' linear layers packed, or one line saying
    why not (no decoder blocks optimum's patterns find, fused experts, a size the packer
    cannot take), exit 2."""
    result = run([*_example(command), "--weights", weights], 100)
    if result.exit_code == 0:
        assert "qweight" in result.stdout
    else:
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert weights in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("group", "card_gb"),
    [(128, 7.26), (32, 8.00), (64, 7.51)],
)
def test_llama2_13b_gptq_file_sizes(group: int, card_gb: float) -> None:
    """TheBloke/Llama-2-13B-GPTQ's file sizes by branch (4 bits; main 128, and groups of
    32 and 64 with act-order), as its model card's "Provided files" table gives them (the
    card copied whole in huggingface.co/tridungduong16/Llama-2-13B-GPTQ-Orca, README.md at
    fd5b5b96): a sample, not the truth (the card rounds to 10 MB, and a file holds its
    header too); shapecalc's bytes, embeddings and head at fp16, within 0.2 %."""
    from shapecalc.architectures import get

    model = get("llama")(vocab=32000, hidden=5120, layers=40, heads=40, intermediate=13824).model()  # type: ignore[call-arg]
    stored = quantize(model, parse_weights(f"gptq:group_size={group},desc_act=true"))
    assert abs(int(stored.bytes("fp16")) / 1e9 - card_gb) / card_gb < 0.002


def test_the_docs_example_is_what_the_command_prints() -> None:
    """docs/quantization-gptq-awq.md's terminal excerpt: its command's output holds every
    line it shows."""
    import shlex

    page = (Path(__file__).parent.parent / "docs" / "quantization-gptq-awq.md").read_text()
    block = page.split("```\n", 2)[1]
    lines = block.splitlines()
    command = " ".join(line.rstrip("\\").strip() for line in lines[:2]).removeprefix("$ ")
    result = run(shlex.split(command)[1:], 80)
    assert result.exit_code == 0
    shown = [line for line in lines[2:] if line != "..."]
    assert shown and all(line in result.stdout.splitlines() for line in shown)
