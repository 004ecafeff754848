"""gpt-oss against ``transformers``' GptOss classes: drawn configurations on the meta
device (every name, shape and the order, the total, the active count worked out from the
built model's tensors), the published gpt-oss-20b and gpt-oss-120b configs counted
exactly, the FLOPs of every module against FlopCounterMode on a real eager forward, the
tensors autograd keeps in the model shapecalc builds (both expert layouts), the MXFP4
checkpoint layout (names, shapes, dtypes, dequantization, ``inspect FOLDER``), the command
line and its refusals."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_checkpoint import check_folder
from shapecalc.adapters.hf_config import from_hf_config, hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.gpt_oss import gpt_oss
from shapecalc.core.errors import ShapecalcError
from tests.published_moe import GPT_OSS_20B, GPT_OSS_120B
from tests.test_cli import run
from tests.twins import hf, on_meta

torch = pytest.importorskip("torch")
t = hf()
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def used_by_one_token(model: Any, top_k: int) -> tuple[int, int]:
    """(total, active) of a transformers model from its own tensors: every tensor under
    ``.experts.`` has a leading experts dimension and counts top_k / E of it."""
    total = active = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if ".experts." in name:
            experts = p.shape[0]
            assert p.numel() % experts == 0
            active += p.numel() // experts * top_k
        else:
            active += p.numel()
    return total, active


def config_of(s: dict[str, Any], **extra: Any) -> Any:
    return t.GptOssConfig(
        vocab_size=s["vocab"],
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        head_dim=s["head_dim"],
        intermediate_size=s["intermediate"],
        num_local_experts=s["experts"],
        num_experts_per_tok=s["experts_per_token"],
        attention_bias=s.get("attention_bias", True),
        tie_word_embeddings=s.get("tie_weights", False),
        pad_token_id=0,
        **extra,
    )


@st.composite
def sizes(draw: st.DrawFn) -> dict[str, Any]:
    """Sizes transformers builds and runs: kv heads divide the heads, an even head_dim of
    its own (the heads need not divide the hidden size), k at most E."""
    kv = draw(st.integers(1, 3))
    experts = draw(st.integers(1, 6))
    return {
        "vocab": draw(st.integers(2, 50)),
        "hidden": draw(st.integers(1, 24)),
        "layers": draw(st.integers(1, 3)),
        "heads": kv * draw(st.integers(1, 3)),
        "kv_heads": kv,
        "head_dim": 2 * draw(st.integers(1, 5)),
        "intermediate": draw(st.integers(1, 20)),
        "experts": experts,
        "experts_per_token": draw(st.integers(1, experts)),
        "attention_bias": draw(st.booleans()),
        "tie_weights": draw(st.booleans()),
    }


@settings(max_examples=25, deadline=None)
@given(s=sizes(), head=st.sampled_from(["lm", "none", "seq-cls", "token-cls"]))
def test_drawn_configs_equal_transformers_on_meta(s: dict[str, Any], head: str) -> None:
    cls = {
        "lm": t.GptOssForCausalLM,
        "none": t.GptOssModel,
        "seq-cls": t.GptOssForSequenceClassification,
        "token-cls": t.GptOssForTokenClassification,
    }[head]
    theirs = on_meta(cls, config_of(s))
    ours = gpt_oss(**s, head=head)
    assert ours.named_parameters() == params(theirs)
    total, active = used_by_one_token(theirs, s["experts_per_token"])
    assert ours.total == total
    if head == "lm":  # a tied head is counted once, as transformers holds it once
        assert ours.active == active
    assert ours.routed


def test_sinks_come_first_and_every_projection_has_a_bias() -> None:
    names = [n for n, _ in gpt_oss(**SMALL).named_parameters() if ".layers.0." in n]
    assert names[:4] == [
        "model.layers.0.self_attn.sinks",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.weight",
    ]
    assert "model.layers.0.mlp.router.bias" in names
    assert names[-6:-2] == [
        "model.layers.0.mlp.experts.gate_up_proj",
        "model.layers.0.mlp.experts.gate_up_proj_bias",
        "model.layers.0.mlp.experts.down_proj",
        "model.layers.0.mlp.experts.down_proj_bias",
    ]


# -- the published configs ------------------------------------------------------------------
def transformers_model(config: dict[str, Any]) -> Any:
    fields = {k: v for k, v in config.items() if k not in ("architectures", "model_type")}
    return on_meta(t.GptOssForCausalLM, t.AutoConfig.for_model("gpt_oss", **fields))


#: the configs, and the model card's figures: 21B total and 3.6B active (gpt-oss-20b),
#: 117B and 5.1B (gpt-oss-120b)
CARD = {"20b": (GPT_OSS_20B, 21e9, 3.6e9), "120b": (GPT_OSS_120B, 117e9, 5.1e9)}


@pytest.mark.parametrize("name", ["20b", "120b"])
def test_published_configs_count_exactly(name: str, tmp_path: Path) -> None:
    config = CARD[name][0]
    theirs = transformers_model(config)
    total, active = used_by_one_token(theirs, config["num_experts_per_tok"])
    model = from_hf_config(config, allow=("quantization_config",))
    assert (model.total, model.active) == (total, active)
    # the model card's "active" leaves out the embedding table, not the head
    embedding = config["vocab_size"] * config["hidden_size"]
    _, card_total, card_active = CARD[name]
    assert round(model.total / 1e9) == round(card_total / 1e9)
    assert round((model.active - embedding) / 1e8) == round(card_active / 1e8)
    assert round(model.active / 1e8) != round(card_active / 1e8)  # with it, more
    # and through the command, as a config.json
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--allow-field", "quantization_config"], 200)
    assert result.exit_code == 0, result.output
    assert f"{total:,}" in result.stdout and f"{active:,}" in result.stdout
    # which layers slide: every even one, as layer_types says
    layers = config["num_hidden_layers"]
    assert f"{layers // 2} of the {layers} layers (0, 2, ..., {layers - 2})" in result.stdout


def test_an_mxfp4_config_is_counted_another_quantization_refused(tmp_path: Path) -> None:
    """MXFP4 is what gpt-oss's checkpoint layout lists: counted, with a note; a method the
    layout does not model is refused unless allowed."""
    (tmp_path / "config.json").write_text(json.dumps(GPT_OSS_20B))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 0 and "quantization_config mxfp4" in result.stdout
    other = {**GPT_OSS_20B, "quantization_config": {"quant_method": "awq", "bits": 4}}
    (tmp_path / "config.json").write_text(json.dumps(other))
    result = run(["hf", str(tmp_path)])  # AWQ packs Linear layers; these experts are not
    assert result.exit_code == 2, result.output
    assert "Invalid value for 'quantization_config': awq:" in result.stderr
    assert "3-D tensors" in result.stderr


def test_sliding_layers_follow_layer_types() -> None:
    config = {**GPT_OSS_20B, "num_hidden_layers": 4}
    config["layer_types"] = ["full_attention", "sliding_attention"] * 2
    found = hf_model(config, allow=("quantization_config",))
    assert any("2 of the 4 layers (1, 3)" in n for n in found.model().notes)
    del config["layer_types"]  # transformers' default: the even layers
    found = hf_model(config, allow=("quantization_config",))
    assert any("2 of the 4 layers (0, 2)" in n for n in found.model().notes)


# -- FLOPs and kept tensors on a real forward ----------------------------------------------------
SMALL: dict[str, Any] = {
    "vocab": 40,
    "hidden": 32,
    "layers": 2,
    "heads": 4,
    "kv_heads": 2,
    "head_dim": 12,
    "intermediate": 24,
    "experts": 3,
    "experts_per_token": 2,
}


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_flops_of_every_module_equal_flop_counter_mode(kv_heads: int) -> None:
    s = {**SMALL, "kv_heads": kv_heads}
    theirs = t.GptOssForCausalLM._from_config(
        config_of(s), attn_implementation="eager", experts_implementation="eager"
    )
    ours = gpt_oss(**s)
    assert ours.named_parameters() == params(theirs)
    batch, seq = 2, 12
    ids = torch.randint(2, 40, (batch, seq))
    theirs.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = theirs(ids)
    flops = {
        name.split(".", 1)[1]: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if "." in name
    }
    cost = analyze(ours, batch=batch, seq_len=seq)
    by_module: dict[str, int] = {}
    for layer in cost.layers:  # a run of two blocks is listed block by block
        parts = layer.name.split(" ")[0].split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[:n])
            by_module[name] = by_module.get(name, 0) + 2 * layer.macs
    for module in ("self_attn", "mlp.router", "mlp.experts", "mlp", "self_attn.q_proj"):
        for i in range(2):
            name = f"model.layers.{i}.{module}"
            assert flops[name] == by_module[name], name
    assert flops["lm_head"] == by_module["lm_head"]
    assert sum(v for k, v in flops.items() if "." not in k) == 2 * cost.macs
    assert cost.layers[-1].outputs[0] == tuple(out.logits.shape)


@pytest.mark.parametrize(("layout", "kv_heads"), [("fused", 2), ("fused", 4), ("checkpoint", 2)])
def test_kept_tensors_equal_autograd_on_the_built_model(layout: str, kv_heads: int) -> None:
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    s = {**SMALL, "hidden": 64, "intermediate": 32, "kv_heads": kv_heads}
    model = gpt_oss(**s, moe_layout=layout)
    module = build(model, device="cpu")
    for p in module.parameters():
        if p.is_floating_point():
            p.data.normal_(0, 0.02)
    ids = torch.randint(2, 40, (2, 12))
    assert kept_bytes(module, [ids]) == analyze(model, batch=2, seq_len=12).activation_bytes


def test_built_model_computes_what_transformers_computes() -> None:
    """The module shapecalc builds, given transformers' weights, gives its logits (rotary
    positions of base 10,000 without scaling, as shapecalc's torch build turns them): the
    sinks, the clamped SwiGLU, the routing and the biases as transformers computes them."""
    from shapecalc.adapters.torch_bridge import build

    rope = {"rope_type": "default", "rope_theta": 10000.0}
    theirs = t.GptOssForCausalLM._from_config(
        config_of(SMALL, rope_parameters=rope),
        attn_implementation="eager",
        experts_implementation="eager",
    )
    for p in theirs.parameters():
        p.data.normal_(0, 0.3)
    ours = build(gpt_oss(**SMALL), device="cpu")
    state = {k: v for k, v in theirs.state_dict().items() if "rotary_emb" not in k}
    ours.load_state_dict(state, strict=True)
    ids = torch.randint(2, 40, (2, 7))
    with torch.no_grad():
        # up to the norms' epsilon (transformers' 1e-5, torch's RMSNorm its own)
        assert torch.allclose(ours(ids), theirs(ids).logits, atol=1e-3)


# -- the MXFP4 checkpoint layout -----------------------------------------------------------------
def test_checkpoint_layout_names_shapes_and_dtypes() -> None:
    from shapecalc.adapters.torch_bridge import build

    s = {**SMALL, "hidden": 64, "intermediate": 32}
    model = gpt_oss(**s, moe_layout="checkpoint")
    experts = {
        n.rsplit(".", 1)[1]: shape
        for n, shape in model.named_parameters()
        if n.startswith("model.layers.0.mlp.experts.")
    }
    assert experts == {
        "gate_up_proj_blocks": (3, 64, 2, 16),
        "gate_up_proj_scales": (3, 64, 2),
        "gate_up_proj_bias": (3, 64),
        "down_proj_blocks": (3, 64, 1, 16),
        "down_proj_scales": (3, 64, 1),
        "down_proj_bias": (3, 64),
    }
    module = build(model, device="meta")
    dtypes = {n: p.dtype for n, p in module.named_parameters()}
    assert dtypes["model.layers.0.mlp.experts.down_proj_blocks"] == torch.uint8
    assert dtypes["model.layers.0.mlp.experts.down_proj_bias"] == torch.float32
    assert list(dtypes) == [n for n, _ in model.named_parameters()]
    # counts are elements as stored (a byte each) and the bytes follow: uint8 at 1
    fused = gpt_oss(**s)
    assert model.total < fused.total
    blocks = sum(
        p.numel() for n, p in module.named_parameters() if n.endswith(("_blocks", "_scales"))
    )
    assert model.bytes("bf16") == 2 * (model.total - blocks) + blocks
    assert model.active < fused.active


def test_checkpoint_layout_dequantizes_as_transformers_does() -> None:
    """The built module's MXFP4 weights, dequantized, equal transformers' own
    dequantization into the fused (E, H, 2·I) layout."""
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors

    from shapecalc.adapters.torch_build import _MODULES
    from shapecalc.layers.transformers import GptOssExperts

    spec = GptOssExperts(3, 64, 32, 2, layout="checkpoint")
    module = _MODULES[GptOssExperts](torch, spec, "cpu")
    module.gate_up_proj_blocks.data = torch.randint(0, 256, (3, 64, 2, 16), dtype=torch.uint8)
    module.gate_up_proj_scales.data = torch.randint(120, 134, (3, 64, 2), dtype=torch.uint8)
    ours = module.dequantized("gate_up_proj", torch.float32)
    theirs = convert_moe_packed_tensors(
        module.gate_up_proj_blocks.data, module.gate_up_proj_scales.data, dtype=torch.float32
    )
    assert ours.shape == theirs.shape == (3, 64, 64)
    assert torch.equal(ours, theirs)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A safetensors file of ``tensors`` (dtype, shape), zero-filled."""
    sizes = {"U8": 1, "BF16": 2, "F32": 4}
    head, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        head[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(head).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(offset))


def mxfp4_folder(tmp_path: Path, **damage: Any) -> Path:
    """A folder as the Hub's gpt-oss checkpoints lay it out, small: its config (with the
    quantization_config) and the safetensors header of every tensor."""
    s = {**SMALL, "hidden": 64, "intermediate": 32}
    config = {
        "architectures": ["GptOssForCausalLM"],
        "model_type": "gpt_oss",
        "vocab_size": s["vocab"],
        "hidden_size": s["hidden"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "head_dim": s["head_dim"],
        "intermediate_size": s["intermediate"],
        "num_local_experts": s["experts"],
        "num_experts_per_tok": s["experts_per_token"],
        "experts_per_token": s["experts_per_token"],
        "pad_token_id": 0,
        "torch_dtype": "bfloat16",
        "quantization_config": GPT_OSS_20B["quantization_config"],
    }
    tensors = {}
    for name, shape in gpt_oss(**s, moe_layout="checkpoint").named_parameters():
        dtype = "U8" if name.endswith(("_blocks", "_scales")) else "BF16"
        tensors[name] = (dtype, [int(d) for d in shape])
    for name, value in damage.items():
        tensors[name.replace("__", ".")] = value
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    write_safetensors(tmp_path / "model.safetensors", tensors)
    return tmp_path


def test_inspect_an_mxfp4_checkpoint_agrees_with_its_config(tmp_path: Path) -> None:
    check = check_folder(str(mxfp4_folder(tmp_path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.layout == "checkpoint files"
    result = run(["inspect", str(tmp_path)], 200)
    assert result.exit_code == 0, result.output
    assert "the experts as checkpoint files hold them" in result.stdout
    assert "uint8" in result.stdout and "The checkpoint agrees with its config." in result.stdout


def test_inspect_reports_a_wrong_block_and_a_float_block(tmp_path: Path) -> None:
    name = "model__layers__0__mlp__experts__gate_up_proj_blocks"
    folder = mxfp4_folder(tmp_path / "a", **{name: ("U8", [3, 64, 2, 8])})
    check = check_folder(str(folder))
    assert [m.name for m in check.wrong_shape] == [name.replace("__", ".")]
    folder = mxfp4_folder(tmp_path / "b", **{name: ("BF16", [3, 64, 2, 16])})
    check = check_folder(str(folder))
    assert [(m.expected, m.found) for m in check.wrong_dtype] == [("uint8", "bfloat16")]


def test_inspect_checks_every_tensor_of_an_mxfp4_checkpoint(tmp_path: Path) -> None:
    """The checkpoint layout is what an MXFP4 download stores, tensor for tensor: a bf16
    weight of the wrong shape is not passed as "stored by the quantization"."""
    name = "model__layers__0__self_attn__q_proj__weight"
    folder = mxfp4_folder(tmp_path, **{name: ("BF16", [64, 20])})
    check = check_folder(str(folder))
    assert check.layout == "checkpoint files" and not check.quantized
    assert [m.name for m in check.wrong_shape] == [name.replace("__", ".")]
    assert not check.missing and not check.unexpected
    assert run(["inspect", str(tmp_path)]).exit_code == 1


# -- the command line ------------------------------------------------------------------------------
ARGS = [
    "gpt-oss",
    "--vocab",
    "201088",
    "--hidden",
    "2880",
    "--layers",
    "24",
    "--heads",
    "64",
    "--kv-heads",
    "8",
    "--head-dim",
    "64",
    "--intermediate",
    "2880",
    "--experts",
    "32",
]


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("layout", ["fused", "checkpoint"])
def test_gpt_oss_20b_on_the_command_line(width: int, layout: str) -> None:
    result = run([*ARGS, "--moe-layout", layout], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    text = " ".join(result.output.split())
    if layout == "fused":
        assert "Total 20,914,757,184 parameters" in text
        assert "Active 4,187,440,704 parameters per token" in text
    else:  # elements as stored, and the bytes of the Hub's files
        assert "model.layers.{0,2..22}.mlp.experts.gate_up_proj_blocks" in text
        assert "(32, 5760, 90, 16)" in text
        assert "bf16 13.8 GB (13,761,264,768 bytes)" in text


def test_explain_names_the_sinks_the_experts_and_the_mxfp4_blocks() -> None:
    result = run([*ARGS, "--explain", "--moe-layout", "checkpoint"], 200)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "sinks (64,): one learned logit per head" in out
    assert "no shared expert" in out
    assert "one token uses 3,067,696,704" in out
    assert "elements as stored" in out
    assert "(up + 1)·gate·sigmoid(1.702·gate)" in out


def test_verify_against_transformers() -> None:
    small = ["gpt-oss", "--vocab", "50", "--hidden", "32", "--layers", "2", "--heads", "4"]
    result = run([*small, "--kv-heads", "2", "--intermediate", "8", "--experts", "5", "--verify"])
    assert result.exit_code == 0, result.output
    assert "Verified against transformers" in result.stderr and "GptOss" in result.stderr


def test_symbolic_formulas_agree_with_numbers() -> None:
    model = gpt_oss(
        vocab="V", hidden="H", layers="L", heads="A", kv_heads="K", head_dim="D",
        intermediate="I", experts="E",
    )  # fmt: skip
    values = {"V": 40, "H": 32, "L": 2, "A": 4, "K": 2, "D": 12, "I": 24, "E": 3}
    concrete = gpt_oss(**{**SMALL, "experts_per_token": 4, "experts": 5})
    evaluated = model.evaluate(**{**values, "E": 5})
    assert (evaluated.total, evaluated.active) == (concrete.total, concrete.active)
    stored = gpt_oss(**{**SMALL, "hidden": "H", "intermediate": "I"}, moe_layout="checkpoint")
    assert "⌊" in str(stored.total_formula)
    assert (
        stored.evaluate(H=64, I=32).total
        == gpt_oss(**{**SMALL, "hidden": 64, "intermediate": 32}, moe_layout="checkpoint").total
    )


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--experts", "2", "--experts-per-token", "3"], "--experts-per-token"),
        (["--experts", "2", "--kv-heads", "3"], "--kv-heads"),
        (["--experts", "2", "--head-dim", "7"], "--head-dim"),
        (["--experts", "2", "--moe-layout", "checkpoint"], "--hidden"),
        (["--experts", "2", "--hidden", "64", "--moe-layout", "checkpoint"], "--intermediate"),
        (["--experts", "0"], "--experts"),
        (["--experts", "2", "--labels", "3"], "--labels"),
        (["--experts", "3", "--experts-per-token", ""], "--experts"),
    ],
)
def test_wrong_input_is_one_line(extra: list[str], flag: str) -> None:
    base = {"--vocab": "10", "--hidden": "48", "--layers": "1", "--heads": "4"}
    base.update({"--intermediate": "40", "--experts-per-token": "2"})
    given = dict(zip(extra[::2], extra[1::2], strict=True))
    # an empty value: the flag left out (the default k of 4 among 3 experts: not guessed)
    args = ["gpt-oss", *(x for k, v in {**base, **given}.items() if v for x in (k, v))]
    result = run(args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert flag in result.stderr


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        gpt_oss(**{**SMALL, "experts_per_token": 4})
    assert err.value.field == "experts_per_token"
    with pytest.raises(ShapecalcError) as err:
        gpt_oss(**SMALL, moe_layout="checkpoint")
    assert err.value.field == "intermediate"  # 24: not a multiple of MXFP4's blocks of 32
