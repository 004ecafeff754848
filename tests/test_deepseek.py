"""DeepSeek-V2/V3 and GLM-4.5 against ``transformers``: drawn configs (names, shapes,
order, buffers, totals and the active count worked out from the built model), the FLOPs of
every matrix product against FlopCounterMode on a real eager forward, the tensors autograd
keeps, what transformers' cache holds, checkpoint folders (fp8 block scales, the
multi-token prediction layer, both expert layouts), the command line."""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_checkpoint import check_folder
from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.deepseek import deepseek
from shapecalc.architectures.glm4_moe import glm4_moe
from shapecalc.core.errors import InvalidArgumentError
from tests.hf_configs import hf_configs
from tests.published_moe import DEEPSEEK_V3
from tests.test_cli import run
from tests.twins import hf

torch = pytest.importorskip("torch")
t = hf()
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

TYPES = {"deepseek_v2": "DeepseekV2", "deepseek_v3": "DeepseekV3", "glm4_moe": "Glm4Moe"}

V3 = {
    "model_type": "deepseek_v3",
    "vocab_size": 50,
    "hidden_size": 32,
    "intermediate_size": 48,
    "moe_intermediate_size": 8,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_group": 2,
    "topk_group": 1,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 12,
    "q_lora_rank": 10,
    "qk_rope_head_dim": 4,
    "qk_nope_head_dim": 6,
    "v_head_dim": 5,
}
V2 = {**V3, "model_type": "deepseek_v2", "q_lora_rank": None, "n_group": None}
V2 |= {"topk_group": None, "mlp_bias": True, "attention_bias": True}
GLM = {
    "model_type": "glm4_moe",
    "vocab_size": 50,
    "hidden_size": 32,
    "intermediate_size": 48,
    "moe_intermediate_size": 8,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 12,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_group": 2,
    "topk_group": 1,
    "first_k_dense_replace": 1,
    "attention_bias": True,
    "use_qk_norm": True,
}
CONFIGS = {"v3": V3, "v2": V2, "glm": GLM}


def built(config: dict[str, Any], cls: str | None = None, device: str = "meta") -> Any:
    """transformers' class of a config (the one with the head unless named)."""
    prefix = TYPES[config["model_type"]]
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    made = getattr(t, f"{prefix}Config")(**fields)
    name = cls or (config.get("architectures") or [f"{prefix}ForCausalLM"])[0]
    if device == "meta":
        with torch.device("meta"):
            return getattr(t, name)(made)
    options = {"attn_implementation": "eager", "experts_implementation": "eager"}
    return getattr(t, name)._from_config(made, **options)


def active_of(module: Any, config: dict[str, Any]) -> int:
    """The parameters one token uses, from the built model alone: every parameter but the
    routed experts' it is not sent to (k of E experts' share of each experts tensor)."""
    total = 0
    for name, p in module.named_parameters():
        if re.search(r"\.experts\.(gate_up_proj|down_proj)$", name):
            e, k = config["n_routed_experts"], config["num_experts_per_tok"]
            total += p.numel() // e * k
        else:
            total += p.numel()
    return total


# -- drawn configs --------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", sorted(TYPES))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_drawn_configs_equal_transformers(model_type: str, data: st.DataObject) -> None:
    config = data.draw(hf_configs(model_type), label="config")
    found = hf_model(config)
    model = found.model()
    theirs = built(config, found.class_name)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    buffers = [(n, tuple(b.shape)) for n, b in theirs.named_buffers() if "rotary_emb" not in n]
    assert [(n, tuple(s)) for n, s, _ in _buffers(model)] == buffers
    assert model.total == sum(p.numel() for p in theirs.parameters())
    full = {**found.architecture.hf_values()}
    expected = active_of(
        theirs,
        {"n_routed_experts": full["experts"], "num_experts_per_tok": full["experts_per_token"]},
    )
    assert model.active == expected
    # checkpoint files name each expert: the same numbers
    assert found.checkpoint_model().total == model.total


def _buffers(model: Any) -> list[tuple[str, tuple[int, ...], bool]]:
    from shapecalc.adapters.torch_bridge import build

    module = build(model.evaluate() if model.symbolic else model, device="meta")
    return [(n, tuple(b.shape), True) for n, b in module.named_buffers()]


# -- FLOPs, kept tensors and the cache on a real forward ----------------------------------
def counted(module: Any, ids: Any) -> tuple[dict[str, int], int]:
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(ids)
    per = {
        name.split(".", 1)[1]: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if "." in name
    }
    return per, counter.get_total_flops()


def expand(name: str) -> list[str]:
    found = re.search(r"\{(\d+)\.\.(\d+)\}", name)
    if not found:
        return [name]
    first, last = int(found[1]), int(found[2])
    return [name[: found.start()] + str(i) + name[found.end() :] for i in range(first, last + 1)]


@pytest.mark.parametrize("key", sorted(CONFIGS))
@pytest.mark.parametrize("q_lora", [True, False])
def test_flops_equal_flop_counter_mode(key: str, q_lora: bool) -> None:
    config = dict(CONFIGS[key])
    if key != "glm":
        config["q_lora_rank"] = 10 if q_lora else None
    elif not q_lora:
        config["use_qk_norm"] = False
    ours = hf_model(config).model()
    theirs = built(config, device="cpu")
    batch, seq = 2, 7
    per, total = counted(theirs, torch.randint(2, 40, (batch, seq)))
    cost = analyze(ours, batch=batch, seq_len=seq)
    checked = 0
    for layer in cost.layers:
        if layer.spec.kind not in ("Linear", "Experts", "TopkRouter"):
            continue
        names = expand(layer.name)
        for name in names:
            assert per.get(name, 0) == 2 * layer.macs // len(names), name
            checked += 1
    assert checked >= 10
    assert total == 2 * cost.macs  # attention's products too: q·kᵀ and weights·v


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_kept_tensors_equal_autograd(key: str, dense: bool) -> None:
    """What the built model keeps for backward: latent (or grouped-query) attention, the
    dense MLP, the router, routed and shared experts (or every layer dense)."""
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    config = dict(CONFIGS[key])
    if dense:
        config["first_k_dense_replace"] = config["num_hidden_layers"]
    ours = hf_model(config).model()
    module = build(ours, device="cpu")
    for p in module.parameters():
        if p.dim() > 1:
            p.data.normal_(0, 0.02)
    cost = analyze(ours, batch=2, seq_len=9)
    assert kept_bytes(module, [torch.randint(2, 40, (2, 9))]) == cost.activation_bytes


def test_the_cache_holds_the_latent_and_the_rotated_key() -> None:
    """transformers' cache keeps MLA's compressed latent (kv_lora_rank) and the rotated key
    per position and layer: the state shapecalc counts."""
    theirs = built(V3, device="cpu")
    batch, seq = 2, 5
    out = theirs(torch.randint(2, 40, (batch, seq)), use_cache=True)
    held = sum(layer.keys.numel() + layer.values.numel() for layer in out.past_key_values.layers)
    first = out.past_key_values.layers[0]
    assert tuple(first.keys.shape) == (batch, 1, seq, V3["kv_lora_rank"])
    assert tuple(first.values.shape) == (batch, 1, seq, V3["qk_rope_head_dim"])
    cost = analyze(hf_model(V3).model(), batch=batch, seq_len=seq)
    assert sum(s.count for _, s in cost.state) == held


def test_the_built_model_runs_a_forward() -> None:
    import shapecalc

    model = hf_model(V3).model()
    module = shapecalc.build(model, device="cpu")
    logits = module(torch.randint(2, 40, (2, 6)))
    assert tuple(logits.shape) == (2, 6, 50)


# -- the command line -----------------------------------------------------------------------
@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize(
    "args",
    [
        [
            "deepseek",
            "--vocab",
            "1000",
            "--hidden",
            "64",
            "--layers",
            "4",
            "--heads",
            "4",
            "--intermediate",
            "128",
            "--moe-intermediate",
            "16",
            "--experts",
            "8",
            "--experts-per-token",
            "2",
            "--dense-layers",
            "1",
            "--q-lora-rank",
            "24",
            "--kv-lora-rank",
            "16",
            "--nope-dim",
            "8",
            "--rope-dim",
            "4",
            "--value-dim",
            "8",
        ],
        [
            "glm4-moe",
            "--vocab",
            "1000",
            "--hidden",
            "64",
            "--layers",
            "4",
            "--heads",
            "4",
            "--kv-heads",
            "2",
            "--intermediate",
            "128",
            "--moe-intermediate",
            "16",
            "--experts",
            "8",
            "--experts-per-token",
            "2",
            "--qk-norm",
        ],
    ],
)
def test_the_command_at_80_and_200_columns(args: list[str], width: int) -> None:
    result = run([*args, "--explain", "--all", "--seq-len", "16"], width)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Active" in out
    assert all(len(line) <= width for line in out.splitlines())
    if args[0] == "deepseek":
        assert "latent" in out and "kv_b_proj" in out
    report = json.loads(run([*args, "--format", "json"]).stdout)
    assert report["active"] < report["total"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--experts-per-token", "9"], "experts_per_token <= experts"),
        (["--dense-layers", "5"], "dense_layers <= layers"),
        (["--rope-dim", "3"], "rope_dim must be even"),
        (["--heads", "3"], "heads must divide hidden"),
        (["--expert-groups", "3", "--topk-groups", "1"], "expert_groups must divide experts"),
        (["--expert-groups", "2", "--topk-groups", "3"], "topk_groups <= expert_groups"),
        (["--expert-groups", "2"], "set together"),
        (["--experts", "0"], "experts"),
    ],
)
def test_wrong_input_is_one_line(args: list[str], words: str) -> None:
    base = ["deepseek", "--vocab", "100", "--hidden", "64", "--layers", "4", "--heads", "4"]
    base += ["--intermediate", "32", "--moe-intermediate", "8", "--experts", "8"]
    base += ["--experts-per-token", "2"]
    result = run([*base, *args])
    assert result.exit_code == 2, result.output
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_key_value_heads": 1}, "num_key_value_heads"),
        ({"num_experts_per_tok": 5}, "num_experts_per_tok"),
        ({"first_k_dense_replace": 4}, "first_k_dense_replace"),
        ({"n_group": None}, "n_group"),
        ({"n_group": 3}, "n_group"),
        ({"qk_rope_head_dim": 5}, "qk_rope_head_dim"),
        ({"hidden_act": "gelu"}, "hidden_act"),
    ],
)
def test_configs_transformers_cannot_run_are_refused(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        hf_model({**V3, **change})
    assert err.value.field == field


def test_the_library_functions() -> None:
    m = deepseek(
        vocab=100, hidden=32, layers=3, heads=4, intermediate=16, moe_intermediate=8,
        experts=4, experts_per_token=2, dense_layers=1, kv_lora_rank=8, nope_dim=4,
        rope_dim=2, value_dim=4,
    )  # fmt: skip
    names = dict(m.named_parameters())
    assert names["model.layers.1.mlp.gate.weight"] == (4, 32)
    assert "model.layers.0.mlp.gate_proj.weight" in names
    g = glm4_moe(
        vocab=100, hidden=32, layers=2, heads=4, intermediate=16, moe_intermediate=8,
        experts=4, experts_per_token=2,
    )  # fmt: skip
    assert g.routed and g.active < g.total
    symbolic = deepseek(
        vocab="V", hidden="H", layers="L", heads="A", intermediate="I", moe_intermediate="M",
        experts="E", experts_per_token="k", dense_layers=1,
    )  # fmt: skip
    assert symbolic.symbolic


# -- checkpoint folders ---------------------------------------------------------------------
def _write(path: Path, tensors: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """A safetensors file of these names, dtypes and shapes (zeros)."""
    out, offset = {}, 0
    sizes = {"F32": 4, "BF16": 2, "F8_E4M3": 1}
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype] * math.prod(shape)
        out[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(out).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(offset))


Damage = dict[str, tuple[str, tuple[int, ...]] | None]


def v3_folder(
    tmp_path: Path,
    layout: str,
    scale: tuple[int, int] | None = None,
    damage: Damage | None = None,
) -> Path:
    """A sharded DeepSeek-V3-like download: fp8 weights with 128 × 128 block scales, the
    routers' e_score_correction_bias buffers in float32 (as save_pretrained writes them),
    the multi-token prediction layer after the last, experts one by one or fused;
    ``damage``: tensors changed (None: left out)."""
    config = {
        **V3,
        "hidden_size": 160,
        "architectures": ["DeepseekV3ForCausalLM"],
        "num_nextn_predict_layers": 1,
        "dtype": "bfloat16",
        "quantization_config": {
            "activation_scheme": "dynamic",
            "fmt": "e4m3",
            "quant_method": "fp8",
            "weight_block_size": [128, 128],
        },
    }
    folder = tmp_path / layout
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    found = hf_model(config, allow=["quantization_config"])
    model = found.checkpoint_model() if layout == "checkpoint" else found.model()
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    layers = [l for l in model.layers if l.spec.kind == "Linear"]  # noqa: E741
    linear = {p for l in layers for p in expand(l.name)}  # noqa: E741
    for name, shape in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        dims = tuple(int(d) for d in shape)
        expert = ".experts." in name and layout == "checkpoint"
        if (module in linear or expert) and name.endswith(".weight") and "lm_head" not in name:
            tensors[name] = ("F8_E4M3", dims)
            want = (-(-dims[0] // 128), -(-dims[1] // 128))
            tensors[module + ".weight_scale_inv"] = ("F32", scale or want)
        else:
            tensors[name] = ("BF16", dims)
    for name, shape in model.named_buffers():
        if "rotary_emb" not in name:
            tensors[name] = ("F32", tuple(int(d) for d in shape))
    last = config["num_hidden_layers"]
    mtp = {
        f"model.layers.{last}.enorm.weight": ("BF16", (160,)),
        f"model.layers.{last}.hnorm.weight": ("BF16", (160,)),
        f"model.layers.{last}.eh_proj.weight": ("F8_E4M3", (160, 320)),
        f"model.layers.{last}.eh_proj.weight_scale_inv": ("F32", (2, 3)),
        f"model.layers.{last}.shared_head.norm.weight": ("BF16", (160,)),
        f"model.layers.{last}.shared_head.head.weight": ("BF16", (50, 160)),
        f"model.layers.{last}.embed_tokens.weight": ("BF16", (50, 160)),
        f"model.layers.{last}.self_attn.kv_a_layernorm.weight": ("BF16", (12,)),
    }
    tensors.update(mtp)
    for name, value in (damage or {}).items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half]}
    shards["model-00002-of-00002.safetensors"] = names[half:]
    weight_map = {}
    for file, listed in shards.items():
        _write(folder / file, {n: tensors[n] for n in listed})
        weight_map.update(dict.fromkeys(listed, file))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


@pytest.mark.parametrize("layout", ["checkpoint", "fused"])
def test_a_v3_download_agrees_in_either_layout(tmp_path: Path, layout: str) -> None:
    folder = v3_folder(tmp_path, layout)
    check = check_folder(str(folder))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)
    assert check.layout == ("checkpoint files" if layout == "checkpoint" else "transformers")
    assert len(check.held) == 8 and all(".layers.3." in n for n in check.held)
    scales = [s for _, parts in check.quantized for s in parts[1:]]
    assert scales and all(s.endswith("_scale_inv") for s in scales)
    result = run(["inspect", str(folder)], 200)
    assert result.exit_code == 0, result.output
    assert "held by the checkpoint, not loaded by transformers" in result.stdout
    report = json.loads(run(["inspect", str(folder), "--format", "json"]).stdout)
    assert len(report["check"]["held"] if "check" in report else report["held"]) == 8


def test_a_wrong_block_scale_is_of_the_wrong_shape(tmp_path: Path) -> None:
    check = check_folder(str(v3_folder(tmp_path, "checkpoint", scale=(7, 7))))
    assert not check.ok
    assert check.wrong_shape and all(m.name.endswith("_scale_inv") for m in check.wrong_shape)
    assert not check.unexpected and not check.missing


def test_a_huge_expert_count_against_one_tensor_is_counted_not_listed(tmp_path: Path) -> None:
    config = {"model_type": "deepseek_v3", "n_routed_experts": 10**8, "n_group": 1}
    config |= {"topk_group": 1, "vocab_size": 10, "hidden_size": 8, "num_attention_heads": 1}
    config |= {"num_key_value_heads": 1, "num_hidden_layers": 2, "first_k_dense_replace": 1}
    text = json.dumps(config)
    assert len(text) < 250
    (tmp_path / "config.json").write_text(text)
    _write(tmp_path / "model.safetensors", {"model.embed_tokens.weight": ("F32", (10, 8))})
    import time

    start = time.perf_counter()
    result = run(["inspect", str(tmp_path), "--format", "json"])
    assert time.perf_counter() - start < 20
    # experts one by one would be 3·10^8 tensors: that layout is counted, not listed; the
    # fused one names what is missing
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    check = report.get("check", report)
    # (28 parameters and the router's e_score_correction_bias buffer)
    assert check["layout"] == "transformers" and len(check["missing"]) == 30


# -- published configs ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["DEEPSEEK_V2_LITE", "DEEPSEEK_V3", "GLM45_AIR"])
def test_published_configs_are_counted_exactly(tmp_path: Path, name: str) -> None:
    """DeepSeek-V2-Lite, DeepSeek-V3 and GLM-4.5-Air as their repositories hold config.json:
    shapecalc hf's total and active count equal transformers' class built from the file on
    the meta device (V3's fp8 quantization_config allowed: the unquantized model)."""
    from tests import published_moe

    config = getattr(published_moe, name)
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    allow = ["--allow-field", "quantization_config"] if "quantization_config" in config else []
    result = run(["hf", str(folder), "--format", "json", *allow])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    theirs = built(config)
    assert report["total"] == sum(p.numel() for p in theirs.parameters())
    assert report["active"] == active_of(theirs, config)


def test_a_glm_download_holds_its_prediction_layer_apart(tmp_path: Path) -> None:
    """GLM-4.5's checkpoint holds its multi-token prediction layer after the last too."""
    config = {**GLM, "architectures": ["Glm4MoeForCausalLM"], "num_nextn_predict_layers": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model = hf_model(config).checkpoint_model()
    tensors = {n: ("F32", tuple(int(d) for d in s)) for n, s in model.named_parameters()}
    tensors |= {
        n: ("F32", tuple(int(d) for d in s))
        for n, s in model.named_buffers()
        if "rotary_emb" not in n
    }
    tensors["model.layers.3.eh_proj.weight"] = ("F32", (32, 64))
    tensors["model.layers.3.mlp.experts.0.up_proj.weight"] = ("F32", (8, 32))
    _write(tmp_path / "model.safetensors", tensors)
    check = check_folder(str(tmp_path))
    assert check.ok and check.layout == "checkpoint files"
    assert sorted(check.held) == [
        "model.layers.3.eh_proj.weight",
        "model.layers.3.mlp.experts.0.up_proj.weight",
    ]
    assert any("multi-token prediction" in note for note in check.hf.notes)


def test_block_scaled_fp8_configs_are_counted_with_a_note() -> None:
    """DeepSeek-V3's fp8 checkpoint keeps every weight's shape (and adds a scale per
    128 × 128 block): its config is counted as transformers builds it, with a note; a
    quantization shapecalc does not store still needs --allow-field."""
    from shapecalc.adapters.hf_config import from_hf_config

    model = from_hf_config(DEEPSEEK_V3)
    assert model.total == 671_026_404_352
    assert any("fp8 in blocks of 128 × 128" in note for note in model.notes)
    assert "quantization_config" not in model.unshaped  # it changes what files store
    # an fp8 config without blocks is fp8 as shapecalc.quant stores it (FineGrainedFP8Config's
    # default blocks of 128 × 128): read, and priced quantized by `shapecalc hf`
    plain = {**DEEPSEEK_V3, "quantization_config": {"quant_method": "fp8"}}
    assert from_hf_config(plain).total == model.total
    hqq = {**DEEPSEEK_V3, "quantization_config": {"quant_method": "hqq", "nbits": 4}}
    with pytest.raises(InvalidArgumentError, match="quantization_config"):
        from_hf_config(hqq)
    allowed = from_hf_config(DEEPSEEK_V3, allow=("quantization_config",))
    assert not any("fp8 in blocks" in note for note in allowed.notes)


# -- inspect: an fp8 download checked tensor by tensor ---------------------------------------
EXPERT = "model.layers.1.mlp.experts.3.gate_proj"


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        (EXPERT + ".weight", (7, 160)),
        ("model.layers.1.self_attn.o_proj.weight", (160, 16)),
        ("model.layers.1.mlp.shared_experts.up_proj.weight", (7, 160)),
    ],
)
def test_an_fp8_weight_of_the_wrong_shape_is_reported(
    tmp_path: Path, name: str, shape: tuple[int, ...]
) -> None:
    """A block-scaled fp8 checkpoint keeps every weight's shape: a wrong one is not passed
    as "stored by the quantization" (the scale beside it is right for its block count)."""
    folder = v3_folder(tmp_path, "checkpoint", damage={name: ("F8_E4M3", shape)})
    check = check_folder(str(folder))
    assert check.layout == "checkpoint files"
    assert [m.name for m in check.wrong_shape] == [name]
    assert not check.missing and not check.unexpected
    assert run(["inspect", str(folder)]).exit_code == 1


def test_one_wrong_expert_scale_keeps_the_layout(tmp_path: Path) -> None:
    folder = v3_folder(
        tmp_path, "checkpoint", damage={EXPERT + ".weight_scale_inv": ("F32", (1, 3))}
    )
    check = check_folder(str(folder))
    assert check.layout == "checkpoint files"
    assert [(m.name, m.expected, m.found) for m in check.wrong_shape] == [
        (EXPERT + ".weight_scale_inv", (1, 2), (1, 3))
    ]
    result = run(["inspect", str(folder)], 200)
    assert result.exit_code == 1 and "the experts as checkpoint files hold them" in result.stdout


def test_a_missing_block_scale_is_said_missing(tmp_path: Path) -> None:
    folder = v3_folder(tmp_path, "checkpoint", damage={EXPERT + ".weight_scale_inv": None})
    check = check_folder(str(folder))
    assert check.missing == ((EXPERT + ".weight_scale_inv", (1, 2)),)
    assert not check.wrong_dtype and not check.wrong_shape
    result = run(["inspect", str(folder)], 200)
    assert result.exit_code == 1 and f"missing     {EXPERT}.weight_scale_inv" in result.stdout
    assert "float8" not in result.stdout.split("Against")[1]


def test_the_routers_buffers_are_expected_in_their_own_dtype(tmp_path: Path) -> None:
    folder = v3_folder(tmp_path, "checkpoint")
    check = check_folder(str(folder))
    assert check.ok and check.dtype == "bfloat16"
    (tmp_path / "b").mkdir()
    gone = v3_folder(
        tmp_path / "b",
        "checkpoint",
        damage={
            "model.layers.2.mlp.gate.e_score_correction_bias": None,
        },
    )
    assert check_folder(str(gone)).missing == (
        ("model.layers.2.mlp.gate.e_score_correction_bias", (4,)),
    )


def test_a_saved_v3_with_its_buffers_agrees(tmp_path: Path) -> None:
    """save_pretrained writes the router's persistent e_score_correction_bias."""
    module = built({**V3, "architectures": ["DeepseekV3ForCausalLM"]}, device="cpu")
    module.save_pretrained(tmp_path)
    check = check_folder(str(tmp_path))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape, check.wrong_dtype)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("model.layers.3.eh_proj.weight", (160, 160)),
        ("model.layers.3.eh_proj.weight_scale_inv", (2, 2)),
        ("model.layers.3.enorm.weight", (16,)),
        ("model.layers.3.shared_head.head.weight", (49, 160)),
        ("model.layers.3.embed_tokens.weight", (50, 16)),
        ("model.layers.3.self_attn.kv_a_layernorm.weight", (13,)),
        ("model.layers.3.mlp.experts.0.up_proj.weight", (9, 160)),
        ("model.layers.3.mlp.gate.e_score_correction_bias", (5,)),
    ],
)
def test_a_prediction_layers_tensor_of_the_wrong_shape_is_reported(
    tmp_path: Path, name: str, shape: tuple[int, ...]
) -> None:
    """The multi-token prediction layer: a decoder layer with experts, enorm and hnorm
    (H), eh_proj (H, 2·H), shared_head.norm (H), shared_head.head and embed_tokens (V, H)."""
    dtype = "F8_E4M3" if name.endswith("proj.weight") else "F32"
    folder = v3_folder(tmp_path, "checkpoint", damage={name: (dtype, shape)})
    check = check_folder(str(folder))
    assert [(m.name, m.found) for m in check.wrong_shape] == [(name, shape)]
    assert name in check.held
    assert run(["inspect", str(folder)]).exit_code == 1


def test_a_prediction_layers_tensor_of_no_known_shape_is_said_unchecked(tmp_path: Path) -> None:
    name = "model.layers.3.mystery.weight"
    folder = v3_folder(tmp_path, "checkpoint", damage={name: ("BF16", (3,))})
    check = check_folder(str(folder))
    assert check.ok and name in check.held
    assert any("1 held tensors" in n and name in n for n in check.notes)
