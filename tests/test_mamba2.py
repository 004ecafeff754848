"""Mamba-2 against ``transformers``' Mamba2 classes: drawn configurations on the meta device
(every name, shape, the order and the total), the configuration class's defaults counted
exactly, the FLOPs of every module (the SSD scan's einsums included) against
FlopCounterMode on a real CPU forward, what the cache holds after a real forward (fp32
and bf16, lengths below, at and past the chunk size and the kernel), the built model's
logits against transformers', the command line and its refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.mamba2 import mamba2
from shapecalc.core.errors import ShapecalcError
from tests.cache_truth import ours, real_cache
from tests.test_cli import run
from tests.twins import hf, on_meta

torch = pytest.importorskip("torch")
t = hf()
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def config_of(s: dict[str, Any]) -> Any:
    heads = s.get("heads") or s.get("expand", 2) * s["hidden"] // s.get("head_dim", 64)
    return t.Mamba2Config(
        vocab_size=s["vocab"],
        hidden_size=s["hidden"],
        num_hidden_layers=s["layers"],
        num_heads=heads,
        head_dim=s.get("head_dim", 64),
        state_size=s.get("state_size", 128),
        n_groups=s.get("groups", 8),
        expand=s.get("expand", 2),
        conv_kernel=s.get("conv_kernel", 4),
        chunk_size=s.get("chunk_size", 256),
        use_bias=s.get("bias", False),
        use_conv_bias=s.get("conv_bias", True),
        tie_word_embeddings=s.get("tie_weights", False),
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
    )


@st.composite
def sizes(draw: st.DrawFn) -> dict[str, Any]:
    """Sizes transformers builds and runs: heads·head_dim = expand·hidden, the groups
    dividing the heads."""
    groups = draw(st.integers(1, 3))
    heads = groups * draw(st.integers(1, 3))
    head_dim = draw(st.integers(1, 4))
    expand = draw(st.integers(1, 3))
    # hidden·expand = heads·head_dim: hidden = heads·head_dim / expand, a whole number
    while (heads * head_dim) % expand:
        expand -= 1
    return {
        "vocab": draw(st.integers(2, 40)),
        "hidden": heads * head_dim // expand,
        "layers": draw(st.integers(1, 3)),
        "heads": draw(st.sampled_from([None, heads])),
        "head_dim": head_dim,
        "state_size": draw(st.integers(1, 6)),
        "groups": groups,
        "expand": expand,
        "conv_kernel": draw(st.integers(1, 5)),
        "chunk_size": draw(st.integers(1, 8)),
        "bias": draw(st.booleans()),
        "conv_bias": draw(st.booleans()),
        "tie_weights": draw(st.booleans()),
    }


@settings(max_examples=25, deadline=None)
@given(s=sizes(), head=st.sampled_from(["lm", "none"]))
def test_drawn_configs_equal_transformers_on_meta(s: dict[str, Any], head: str) -> None:
    cls = t.Mamba2ForCausalLM if head == "lm" else t.Mamba2Model
    theirs = on_meta(cls, config_of(s))
    model = mamba2(**s, head=head)
    assert model.named_parameters() == params(theirs)
    assert model.total == sum(p.numel() for p in theirs.parameters())


def test_the_mixers_own_tensors_come_first() -> None:
    names = [n for n, _ in mamba2(**SMALL).named_parameters() if ".layers.0." in n]
    assert names == [
        "backbone.layers.0.norm.weight",
        "backbone.layers.0.mixer.dt_bias",
        "backbone.layers.0.mixer.A_log",
        "backbone.layers.0.mixer.D",
        "backbone.layers.0.mixer.conv1d.weight",
        "backbone.layers.0.mixer.conv1d.bias",
        "backbone.layers.0.mixer.in_proj.weight",
        "backbone.layers.0.mixer.norm.weight",
        "backbone.layers.0.mixer.out_proj.weight",
    ]


def test_the_configuration_class_defaults_count_exactly(tmp_path: Path) -> None:
    """Mamba2Config()'s defaults (those of Mamba-Codestral-7B's shape): no published
    config.json is written here, the class's own defaults are the config."""
    theirs = on_meta(t.Mamba2ForCausalLM, t.Mamba2Config())
    total = sum(p.numel() for p in theirs.parameters())
    config = {"architectures": ["Mamba2ForCausalLM"], "model_type": "mamba2"}
    model = from_hf_config(config)
    assert model.total == total == 7_285_403_648
    assert model.named_parameters() == params(theirs)
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path)], 200)
    assert result.exit_code == 0, result.output
    assert f"{total:,}" in result.stdout


# -- FLOPs, cache and logits on a real forward -------------------------------------------------
SMALL: dict[str, Any] = {
    "vocab": 40,
    "hidden": 16,
    "layers": 2,
    "heads": 8,
    "head_dim": 4,
    "state_size": 6,
    "groups": 2,
    "chunk_size": 5,
}


def real(s: dict[str, Any]) -> Any:
    t.logging.set_verbosity_error()  # the torch path's "no kernel" notices
    return t.Mamba2ForCausalLM(config_of(s)).eval()


@pytest.mark.parametrize(
    ("seq", "extra"),
    [(3, {}), (5, {}), (7, {}), (12, {"groups": 4, "conv_kernel": 3, "bias": True})],
)
def test_flops_of_every_module_equal_flop_counter_mode(seq: int, extra: dict[str, Any]) -> None:
    """The forward without a cache, as training runs it: in_proj, the convolution (its
    T + K − 1 padded positions), the scan's five einsums, out_proj and the head."""
    s = {**SMALL, **extra}
    theirs = real(s).requires_grad_(False)  # the counter's module hooks want no grads here
    batch = 2
    ids = torch.randint(0, 40, (batch, seq))
    with FlopCounterMode(display=False) as counter:
        out = theirs(ids, use_cache=False)
    flops = {
        name.split(".", 1)[1]: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if "." in name
    }
    cost = analyze(mamba2(**s), batch=batch, seq_len=seq)
    by_module: dict[str, int] = {}
    for layer in cost.layers:
        parts = layer.name.split(" ")[0].split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[:n])
            by_module[name] = by_module.get(name, 0) + 2 * layer.macs
    for i in range(2):
        for module in ("mixer", "mixer.in_proj", "mixer.out_proj"):
            name = f"backbone.layers.{i}.{module}"
            assert flops[name] == by_module[name], name
        ops = counter.get_flop_counts()[f"Mamba2ForCausalLM.backbone.layers.{i}.mixer"]
        conv = sum(v for op, v in ops.items() if "convolution" in str(op))
        assert conv == by_module[f"backbone.layers.{i}.mixer.conv1d"]
    assert flops["lm_head"] == by_module["lm_head"]
    assert sum(counter.get_flop_counts()["Global"].values()) == 2 * cost.macs
    assert cost.layers[-1].outputs[0] == tuple(out.logits.shape)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("seq", [1, 3, 5, 7, 11])
def test_cache_equals_what_transformers_keeps(seq: int, dtype: str) -> None:
    """Every layer's state after a real forward: the convolution's last K inputs in the
    model's dtype and the SSM state in fp32 (bf16 too), whatever the length (below the
    kernel, at and past the chunk size, not a multiple of it)."""
    s = {**SMALL, "conv_kernel": 4}
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    theirs = real_cache(config_of(s), t.Mamba2ForCausalLM, batch=2, seq_len=seq, dtype=torch_dtype)
    mine = ours(mamba2(**s), batch=2, seq_len=seq, dtype=dtype)
    assert list(mine.values()) == theirs
    assert list(mine) == [0, 1]


@settings(max_examples=6, deadline=None)
@given(s=sizes(), seq=st.integers(1, 12), dtype=st.sampled_from(["fp32", "bf16"]))
def test_cache_of_drawn_configs(s: dict[str, Any], seq: int, dtype: str) -> None:
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    t.logging.set_verbosity_error()
    theirs = real_cache(config_of(s), t.Mamba2ForCausalLM, batch=1, seq_len=seq, dtype=torch_dtype)
    assert list(ours(mamba2(**s), batch=1, seq_len=seq, dtype=dtype).values()) == theirs


def test_state_is_state_space_and_fixed() -> None:
    model = mamba2(**SMALL)
    short, long = (analyze(model, batch=2, seq_len=n, training="none") for n in (4, 400))
    assert short.state_bytes == long.state_bytes
    (group,) = long.state_groups()
    assert group.kind == "state space" and not group.grows and group.layers == 2
    # fp32 SSM state (2, 8, 4, 6) and the convolution's (2, 56, 4) at the model's dtype
    bf16 = analyze(model, batch=2, seq_len=4, dtype="bf16", training="none")
    assert bf16.state_bytes == 2 * (2 * 8 * 4 * 6 * 4 + 2 * 56 * 4 * 2)


@pytest.mark.parametrize(
    ("extra", "seq"),
    [
        ({}, 7),
        ({}, 12),
        ({"hidden": 12, "heads": None, "head_dim": 3, "state_size": 4, "groups": 4}, 7),
        ({"chunk_size": 3, "conv_kernel": 2, "bias": True, "conv_bias": False}, 10),
    ],
)
def test_kept_tensors_equal_autograd_on_the_built_model(extra: dict[str, Any], seq: int) -> None:
    """Two batch rows and two chunks or more (with one of either, autograd reads some of
    the einsums' operands as views rather than copies: the docstring says so)."""
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    model = mamba2(**{**SMALL, **extra})
    module = build(model, device="cpu")
    for p in module.parameters():
        p.data.normal_(0, 0.02)
    ids = torch.randint(0, 40, (2, seq))
    assert kept_bytes(module, [ids]) == analyze(model, batch=2, seq_len=seq).activation_bytes


def test_built_model_computes_what_transformers_computes() -> None:
    from shapecalc.adapters.torch_bridge import build

    theirs = real(SMALL)
    for p in theirs.parameters():
        p.data.normal_(0, 0.3)
    mine = build(mamba2(**SMALL), device="cpu")
    mine.load_state_dict(theirs.state_dict(), strict=True)
    for seq in (3, 5, 12):
        ids = torch.randint(0, 40, (2, seq))
        with torch.no_grad():  # up to the norms' epsilon (torch's RMSNorm its own)
            assert torch.allclose(mine(ids), theirs(ids, use_cache=False).logits, atol=1e-3)


# -- the command line ------------------------------------------------------------------------------
ARGS = ["mamba2", "--vocab", "50288", "--hidden", "2560", "--layers", "64", "--groups", "1"]


@pytest.mark.parametrize("width", [80, 200])
def test_mamba2_on_the_command_line(width: int) -> None:
    result = run([*ARGS, "--memory", "--flops"], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    text = " ".join(result.output.split())
    assert "Total 2,831,336,960 parameters" in text
    assert "backbone.layers.{0..63}.mixer.A_log" in text


def test_explain_names_the_mixers_tensors_and_its_fixed_state() -> None:
    result = run([*ARGS, "--explain"], 200)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "A = −exp(A_log)" in out and "dt_bias" in out
    assert "conv1d (5376, 1, 4)" in out
    assert "fixed whatever the context" in out


def test_verify_against_transformers() -> None:
    small = ["mamba2", "--vocab", "50", "--hidden", "16", "--layers", "2", "--head-dim", "4"]
    result = run([*small, "--state-size", "6", "--groups", "2", "--verify"])
    assert result.exit_code == 0, result.output
    assert "Verified against transformers" in result.stderr and "Mamba2" in result.stderr


def test_symbolic_formulas_agree_with_numbers() -> None:
    letters = mamba2(
        vocab="V", hidden="H", layers="L", heads="M", head_dim="P", state_size="N",
        groups="G", conv_kernel="K", expand="E",
    )  # fmt: skip
    values = {"V": 40, "H": 16, "L": 2, "M": 8, "P": 4, "N": 6, "G": 2, "K": 4, "E": 2}
    assert letters.evaluate(**values).total == mamba2(**SMALL).total


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--heads", "7"], "--heads"),
        (["--head-dim", "5"], "--head-dim"),
        (["--groups", "3"], "--groups"),
        (["--state-size", "0"], "--state-size"),
        (["--chunk-size", "Q"], "--chunk-size"),
        (["--conv-kernel", "0"], "--conv-kernel"),
    ],
)
def test_wrong_input_is_one_line(extra: list[str], flag: str) -> None:
    base = {"--vocab": "10", "--hidden": "16", "--layers": "1", "--head-dim": "4"}
    base["--groups"] = "2"
    given = dict(zip(extra[::2], extra[1::2], strict=True))
    args = ["mamba2", *(x for k, v in {**base, **given}.items() for x in (k, v))]
    result = run(args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert flag in result.stderr


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        mamba2(**{**SMALL, "heads": 6})
    assert err.value.field == "heads"
    with pytest.raises(ShapecalcError) as err:
        mamba2(**{**SMALL, "groups": 3})
    assert err.value.field == "groups"


def test_a_config_that_breaks_the_rule_is_refused(tmp_path: Path) -> None:
    config = {"model_type": "mamba2", "hidden_size": 64, "num_heads": 3, "head_dim": 64}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
