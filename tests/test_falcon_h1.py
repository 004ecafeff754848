"""Falcon-H1 against ``transformers``' FalconH1 classes: drawn configurations on the meta
device (names, shapes, order, total), the configuration class's defaults counted exactly,
the FLOPs of every module (attention, the mixer's scan, the MLP) against FlopCounterMode
on a real eager CPU forward, the cache of every layer (keys and values, the mixer's
convolution and SSM states) after a real forward in fp32 and bf16, the built model's
logits, the command line and its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import from_hf_config, hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.falcon_h1 import falcon_h1
from shapecalc.core.errors import ShapecalcError
from tests.cache_truth import ours, real_cache
from tests.test_cli import run
from tests.twins import hf, on_meta

torch = pytest.importorskip("torch")
t = hf()
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def config_of(s: dict[str, Any], **extra: Any) -> Any:
    if s.get("head_dim") is not None:
        extra["head_dim"] = s["head_dim"]
    return t.FalconH1Config(
        vocab_size=s["vocab"],
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s.get("kv_heads") or s["heads"],
        intermediate_size=s["intermediate"],
        mamba_n_heads=s["mamba_heads"],
        mamba_d_ssm=s.get("mamba_inner"),
        mamba_expand=s.get("mamba_expand", 2),
        mamba_d_state=s.get("mamba_state", 256),
        mamba_n_groups=s.get("mamba_groups", 1),
        mamba_d_conv=s.get("mamba_conv", 4),
        mamba_chunk_size=s.get("chunk_size", 256),
        mamba_rms_norm=s.get("mamba_rms_norm", False),
        mamba_conv_bias=s.get("mamba_conv_bias", True),
        mamba_proj_bias=s.get("mamba_proj_bias", False),
        projectors_bias=s.get("projectors_bias", False),
        attention_bias=s.get("attention_bias", False),
        mlp_bias=s.get("mlp_bias", False),
        tie_word_embeddings=s.get("tie_weights", False),
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        **extra,
    )


@st.composite
def sizes(draw: st.DrawFn) -> dict[str, Any]:
    """Sizes transformers builds and runs: kv heads divide the heads, which divide the
    hidden size; an even head_dim; the mixer's heads divide its width, its groups its
    heads."""
    kv = draw(st.integers(1, 2))
    heads = kv * draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    mamba_heads = groups * draw(st.integers(1, 3))
    hidden = heads * 2 * draw(st.integers(1, 3))
    expand = draw(st.integers(1, 2))
    inner = draw(st.sampled_from([None, mamba_heads * draw(st.integers(1, 3))]))
    if inner is None and (expand * hidden) % mamba_heads:
        inner = mamba_heads
    return {
        "vocab": draw(st.integers(2, 40)),
        "hidden": hidden,
        "layers": draw(st.integers(1, 2)),
        "heads": heads,
        "kv_heads": kv,
        "head_dim": draw(st.sampled_from([None, 2 * draw(st.integers(1, 3))])),
        "intermediate": draw(st.integers(1, 12)),
        "mamba_heads": mamba_heads,
        "mamba_inner": inner,
        "mamba_expand": expand,
        "mamba_state": draw(st.integers(1, 5)),
        "mamba_groups": groups,
        "mamba_conv": draw(st.integers(1, 4)),
        "chunk_size": draw(st.integers(1, 6)),
        "mamba_rms_norm": draw(st.booleans()),
        "mamba_conv_bias": draw(st.booleans()),
        "mamba_proj_bias": draw(st.booleans()),
        "projectors_bias": draw(st.booleans()),
        "attention_bias": draw(st.booleans()),
        "mlp_bias": draw(st.booleans()),
        "tie_weights": draw(st.booleans()),
    }


@settings(max_examples=25, deadline=None)
@given(s=sizes(), head=st.sampled_from(["lm", "none"]))
def test_drawn_configs_equal_transformers_on_meta(s: dict[str, Any], head: str) -> None:
    cls = t.FalconH1ForCausalLM if head == "lm" else t.FalconH1Model
    theirs = on_meta(cls, config_of(s))
    model = falcon_h1(**s, head=head)
    assert model.named_parameters() == params(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters())


def test_the_configuration_class_defaults_count_exactly(tmp_path: Path) -> None:
    """FalconH1Config()'s defaults: no published config.json is written here, the
    class's own defaults are the config (the mixer's width 1024, 128 heads of 8)."""
    theirs = on_meta(t.FalconH1ForCausalLM, t.FalconH1Config())
    total = sum(p.numel() for p in theirs.parameters())
    config = {"architectures": ["FalconH1ForCausalLM"], "model_type": "falcon_h1"}
    model = from_hf_config(config)
    assert model.total == total == 8_514_961_408
    assert model.named_parameters() == params(theirs)
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path)], 200)
    assert result.exit_code == 0, result.output
    assert f"{total:,}" in result.stdout


def test_a_layers_tensors_in_transformers_order() -> None:
    names = [n for n, _ in falcon_h1(**SMALL).named_parameters() if ".layers.0." in n]
    short = [n.removeprefix("model.layers.0.") for n in names]
    assert short == [
        "feed_forward.gate_proj.weight",
        "feed_forward.up_proj.weight",
        "feed_forward.down_proj.weight",
        "mamba.dt_bias",
        "mamba.A_log",
        "mamba.D",
        "mamba.conv1d.weight",
        "mamba.conv1d.bias",
        "mamba.in_proj.weight",
        "mamba.norm.weight",
        "mamba.out_proj.weight",
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
        "self_attn.o_proj.weight",
        "input_layernorm.weight",
        "pre_ff_layernorm.weight",
    ]


def test_multipliers_and_mamba_d_head_are_read() -> None:
    """The multipliers change no tensor (a note says so); mamba_d_head must be the
    mixer's width over its heads, as transformers insists."""
    config = {
        "model_type": "falcon_h1",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "mamba_n_heads": 8,
        "mamba_d_ssm": 128,
        "mamba_d_head": 16,
        "key_multiplier": 0.5,
        "ssm_multipliers": [1.0, 0.5, 0.25, 0.25, 2.0],
    }
    found = hf_model(config)
    assert any("key_multiplier" in n and "no tensor" in n for n in found.notes)
    with pytest.raises(ShapecalcError, match="mamba_d_head"):
        from_hf_config({**config, "mamba_d_head": 8})


# -- FLOPs, cache and logits on a real forward -------------------------------------------------
SMALL: dict[str, Any] = {
    "vocab": 50,
    "hidden": 16,
    "layers": 2,
    "heads": 4,
    "kv_heads": 2,
    "head_dim": 6,
    "intermediate": 24,
    "mamba_heads": 6,
    "mamba_inner": 24,
    "mamba_state": 5,
    "mamba_groups": 2,
    "mamba_conv": 3,
    "chunk_size": 4,
    "mamba_rms_norm": True,
}
ROPE = {"rope_type": "default", "rope_theta": 10000.0}


def real(s: dict[str, Any]) -> Any:
    t.logging.set_verbosity_error()  # the torch path's "no kernel" notices
    config = config_of(s, rope_parameters=ROPE)
    return t.FalconH1ForCausalLM._from_config(config, attn_implementation="eager").eval()


@pytest.mark.parametrize(
    ("seq", "extra"),
    [(3, {}), (7, {}), (9, {"kv_heads": 4, "mamba_rms_norm": False, "head_dim": None})],
)
def test_flops_of_every_module_equal_flop_counter_mode(seq: int, extra: dict[str, Any]) -> None:
    s = {**SMALL, **extra}
    theirs = real(s).requires_grad_(False)  # the counter's module hooks want no grads here
    batch = 2
    with FlopCounterMode(display=False) as counter:
        out = theirs(torch.randint(0, 50, (batch, seq)), use_cache=False)
    flops = {
        name.split(".", 1)[1]: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if "." in name
    }
    cost = analyze(falcon_h1(**s), batch=batch, seq_len=seq)
    by_module: dict[str, int] = {}
    for layer in cost.layers:
        parts = layer.name.split(" ")[0].split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[:n])
            by_module[name] = by_module.get(name, 0) + 2 * layer.macs
    for i in range(2):
        for module in ("mamba", "mamba.in_proj", "self_attn", "self_attn.q_proj", "feed_forward"):
            name = f"model.layers.{i}.{module}"
            assert flops[name] == by_module[name], name
    assert flops["lm_head"] == by_module["lm_head"]
    assert sum(counter.get_flop_counts()["Global"].values()) == 2 * cost.macs
    assert cost.layers[-1].outputs[0] == tuple(out.logits.shape)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("seq", [1, 3, 4, 9])
def test_cache_equals_what_transformers_keeps(seq: int, dtype: str) -> None:
    """Every layer: keys and values (B, K, T, D) in the model's dtype, the convolution's
    last W inputs in the model's dtype, the SSM state in fp32."""
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    theirs = real_cache(
        config_of(SMALL), t.FalconH1ForCausalLM, batch=2, seq_len=seq, dtype=torch_dtype
    )
    mine = ours(falcon_h1(**SMALL), batch=2, seq_len=seq, dtype=dtype)
    assert list(mine.values()) == theirs and list(mine) == [0, 1]


@settings(max_examples=6, deadline=None)
@given(s=sizes(), seq=st.integers(1, 9), dtype=st.sampled_from(["fp32", "bf16"]))
def test_cache_of_drawn_configs(s: dict[str, Any], seq: int, dtype: str) -> None:
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    t.logging.set_verbosity_error()
    theirs = real_cache(
        config_of(s), t.FalconH1ForCausalLM, batch=1, seq_len=seq, dtype=torch_dtype
    )
    assert list(ours(falcon_h1(**s), batch=1, seq_len=seq, dtype=dtype).values()) == theirs


def test_state_kinds_attention_grows_the_mixers_does_not() -> None:
    model = falcon_h1(**SMALL)
    cost = analyze(model, batch=2, seq_len=9, training="none")
    groups = {g.kind: g for g in cost.state_groups()}
    assert set(groups) == {"full attention", "state space"}
    assert groups["full attention"].grows and not groups["state space"].grows
    assert groups["full attention"].layers == groups["state space"].layers == 2
    # keys and values (2, 2, 9, 6) twice; conv (2, 24 + 2·2·5, 3); SSM (2, 6, 4, 5) fp32
    assert groups["full attention"].each == 2 * 2 * 2 * 9 * 6 * 4
    assert groups["state space"].each == 2 * 44 * 3 * 4 + 2 * 6 * 4 * 5 * 4


@pytest.mark.parametrize("rms_norm", [False, True])
def test_built_model_computes_what_transformers_computes(rms_norm: bool) -> None:
    """With the multipliers at 1 (the class's defaults), the module shapecalc builds,
    given transformers' weights, gives its logits."""
    from shapecalc.adapters.torch_bridge import build

    s = {**SMALL, "mamba_rms_norm": rms_norm}
    theirs = real(s)
    for p in theirs.parameters():
        p.data.normal_(0, 0.3)
    mine = build(falcon_h1(**s), device="cpu")
    state = {k: v for k, v in theirs.state_dict().items() if "rotary_emb" not in k}
    mine.load_state_dict(state, strict=True)
    ids = torch.randint(0, 50, (2, 7))
    with torch.no_grad():
        assert torch.allclose(mine(ids), theirs(ids, use_cache=False).logits, atol=1e-3)


# -- the command line ------------------------------------------------------------------------------
ARGS = [
    "falcon-h1",
    *("--vocab", "32784", "--hidden", "1024", "--layers", "36", "--heads", "8"),
    *("--kv-heads", "2", "--head-dim", "64", "--intermediate", "2048"),
    *("--mamba-heads", "24", "--mamba-inner", "1536", "--mamba-state", "128"),
]


@pytest.mark.parametrize("width", [80, 200])
def test_falcon_h1_on_the_command_line(width: int) -> None:
    result = run([*ARGS, "--memory", "--flops"], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    text = " ".join(result.output.split())
    total = falcon_h1(
        **{
            k.lstrip("-").replace("-", "_"): int(v)
            for k, v in zip(ARGS[1::2], ARGS[2::2], strict=True)
        }
    ).total
    assert f"Total {total:,} parameters" in text
    assert "model.layers.{0..35}.mamba.A_log" in text and "self_attn.k_proj" in text


def test_explain_says_side_by_side_and_the_multipliers() -> None:
    result = run([*ARGS, "--explain"], 200)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "side by side" in out and "no tensor" in out
    assert "A = −exp(A_log)" in out and "mamba_rms_norm is off" in out


def test_verify_against_transformers() -> None:
    small = ["falcon-h1", "--vocab", "50", "--hidden", "16", "--layers", "2", "--heads", "4"]
    extra = ["--intermediate", "8", "--mamba-heads", "4", "--mamba-state", "3", "--verify"]
    result = run([*small, *extra])
    assert result.exit_code == 0, result.output
    assert "Verified against transformers" in result.stderr and "FalconH1" in result.stderr


def test_symbolic_formulas_agree_with_numbers() -> None:
    letters = falcon_h1(
        vocab="V", hidden="H", layers="L", heads="A", kv_heads="K", head_dim="D",
        intermediate="I", mamba_heads="M", mamba_inner="S", mamba_state="N",
        mamba_groups="G", mamba_conv="W", mamba_rms_norm=True,
    )  # fmt: skip
    values = {"V": 50, "H": 16, "L": 2, "A": 4, "K": 2, "D": 6, "I": 24, "M": 6, "S": 24}
    values.update({"N": 5, "G": 2, "W": 3})
    assert letters.evaluate(**values).total == falcon_h1(**SMALL).total


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--mamba-heads", "5"], "--mamba-heads"),
        (["--mamba-inner", "18"], "--mamba-inner"),
        (["--mamba-groups", "3"], "--mamba-groups"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--head-dim", "5"], "--head-dim"),
        (["--mamba-state", "0"], "--mamba-state"),
        (["--chunk-size", "Q"], "--chunk-size"),
    ],
)
def test_wrong_input_is_one_line(extra: list[str], flag: str) -> None:
    base = {"--vocab": "10", "--hidden": "16", "--layers": "1", "--heads": "4"}
    base.update({"--intermediate": "8", "--mamba-heads": "4"})
    given = dict(zip(extra[::2], extra[1::2], strict=True))
    args = ["falcon-h1", *(x for k, v in {**base, **given}.items() for x in (k, v))]
    result = run(args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert flag in result.stderr
