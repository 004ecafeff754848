"""Jamba (``jamba``) against transformers' classes: drawn configs through ``shapecalc hf``
(names, shapes, order, totals and the active count from the transformers model's own
tensors), which layers attend and which have experts for every period and offset, the
configuration class's defaults (Jamba-v0.1's) counted exactly, the state each layer keeps
against transformers' cache after a real forward (attention layers' keys and values
growing, Mamba layers' fixed state; fp32 and bf16), the FLOPs of every linear layer, the
Mamba mixers and the whole forward against FlopCounterMode, the tensors autograd keeps,
and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.jamba import Jamba, jamba
from shapecalc.core.errors import ShapecalcError
from shapecalc.core.tree import split_name
from tests.cache_truth import ours, real_cache
from tests.hf_configs import hf_configs
from tests.test_cli import run
from tests.test_transformers import MATMUL_KINDS, expand

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def built(config: dict[str, Any]) -> Any:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    cls = getattr(transformers, (config.get("architectures") or ["JambaForCausalLM"])[0])
    with torch.device("meta"):
        return cls(transformers.JambaConfig(**fields))


def used_by_one_token(model: Any) -> tuple[int, int]:
    """(total, active): the routed experts' tensors counted top_k of E."""
    k = model.config.num_experts_per_tok
    total = active = 0
    for name, p in model.named_parameters():
        total += p.numel()
        active += p.numel() // p.shape[0] * k if ".experts." in name else p.numel()
    return total, active


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(data: st.DataObject) -> None:
    config = data.draw(hf_configs("jamba"), label="config")
    ours_ = hf_model(config).model()
    theirs = built(config)
    assert ours_.named_parameters() == params(theirs)
    assert (ours_.total, ours_.active) == used_by_one_token(theirs)


@settings(max_examples=12, deadline=None)
@given(
    layers=st.integers(1, 12),
    attn=st.integers(1, 5).flatmap(lambda p: st.tuples(st.just(p), st.integers(0, p - 1))),
    moe=st.integers(1, 4).flatmap(lambda p: st.tuples(st.just(p), st.integers(0, p - 1))),
    experts=st.integers(1, 4),
)
def test_which_layers_attend_and_have_experts_is_transformers_rule(
    layers: int, attn: tuple[int, int], moe: tuple[int, int], experts: int
) -> None:
    config = {
        "model_type": "jamba",
        "vocab_size": 11,
        "hidden_size": 8,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "intermediate_size": 6,
        "num_experts": experts,
        "num_experts_per_tok": 1,
        "attn_layer_period": attn[0],
        "attn_layer_offset": attn[1],
        "expert_layer_period": moe[0],
        "expert_layer_offset": moe[1],
        "mamba_d_state": 3,
        "mamba_d_conv": 2,
    }
    ours_ = hf_model(config).model()
    theirs = built(config)
    assert ours_.named_parameters() == params(theirs)
    assert (ours_.total, ours_.active) == used_by_one_token(theirs)
    sizes = {k: v for k, v in ours_.sizes.items() if isinstance(v, int)}
    assert ours_.total_formula.subs(sizes) == ours_.total


def test_the_config_class_defaults_count_exactly(tmp_path: Path) -> None:
    """JambaConfig's defaults are Jamba-v0.1's sizes (AI21-Jamba-1.5-Mini's config is not
    written here: its every field is not known for sure): 51,570,323,328 parameters,
    12,110,311,296 used by one token, as transformers builds them on the meta device."""
    config = {"model_type": "jamba"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    theirs = built(config)
    assert (report["total"], report["active"]) == used_by_one_token(theirs)
    assert (report["total"], report["active"]) == (51_570_323_328, 12_110_311_296)
    assert hf_model(config).model().named_parameters() == params(theirs)


def test_the_default_stack_prints_as_eight_runs() -> None:
    model = jamba(vocab=65536, hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336)
    runs = {split_name(r.name)[2] for r in model.rows() if r.name.startswith("model.layers.")}
    assert runs == {f"{{{i},{i + 8}..{24 + i}}}" for i in range(8)}
    names = {r.name for r in model.rows()}
    assert "model.layers.{4,12..28}.self_attn.q_proj.weight" in names
    assert "model.layers.{1,9..25}.feed_forward.experts.gate_up_proj" in names
    assert "model.layers.{0,8..24}.mamba.dt_layernorm.weight" in names
    symbolic = jamba(vocab=65536, hidden=4096, layers="L", heads=32, kv_heads=8, intermediate=14336)
    assert symbolic.evaluate(L=32).total == model.total


# -- the state each layer keeps --------------------------------------------------------------------
SMALL = {
    "vocab": 40,
    "hidden": 16,
    "layers": 5,
    "heads": 4,
    "kv_heads": 2,
    "intermediate": 12,
    "experts": 3,
    "experts_per_token": 2,
    "attn_layer_period": 3,
    "attn_layer_offset": 1,
    "expert_layer_period": 2,
    "expert_layer_offset": 0,
    "state_size": 5,
    "conv_kernel": 3,
    "time_step_rank": 3,
}


def real(arch: Jamba, **options: Any) -> tuple[Any, Any]:
    reference = arch.reference()
    assert reference is not None
    config = getattr(transformers, reference.config_class)(**reference.config)
    return config, getattr(transformers, reference.model)


@settings(max_examples=5, deadline=None)
@given(
    layers=st.integers(2, 5),
    offset=st.integers(0, 1),
    kernel=st.integers(1, 4),
    kv=st.sampled_from([1, 2, 4]),
)
def test_the_state_is_what_transformers_cache_holds(
    layers: int, offset: int, kernel: int, kv: int
) -> None:
    """Attention layers: keys and values of every position (kind full attention); Mamba
    layers: the conv state in the model's dtype and the SSM state in fp32 (state space);
    at lengths below and past the kernel, fp32 and bf16."""
    arch = Jamba(
        **{
            **SMALL,
            "layers": layers,
            "kv_heads": kv,
            "conv_kernel": kernel,
            "intermediate": 16,  # transformers' grouped experts want rows of 16 bytes
            "attn_layer_period": 2,
            "attn_layer_offset": offset,
        }
    )
    config, cls = real(arch)
    model = arch.model()
    for dtype, name in ((None, "fp32"), (torch.bfloat16, "bf16")):
        for length in sorted({1, kernel, kernel + 4}):
            truth = real_cache(config, cls, batch=2, seq_len=length, dtype=dtype)
            assert ours(model, batch=2, seq_len=length, dtype=name) == dict(enumerate(truth))
    kinds = {g.kind: g for g in analyze(model, batch=1, seq_len=9, training="none").state_groups()}
    assert set(kinds) == {"full attention", "state space"}
    assert kinds["full attention"].grows and not kinds["state space"].grows


# -- FLOPs and kept tensors on a real forward ---------------------------------------------------
def test_flops_equal_flop_counter_mode() -> None:
    arch = Jamba(**SMALL)
    config, cls = real(arch)
    theirs = cls._from_config(
        config, attn_implementation="eager", experts_implementation="eager"
    ).eval()
    theirs.requires_grad_(False)  # the counter's hooks need no grad on parameters
    model = arch.model()
    assert model.named_parameters() == params(theirs)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(torch.randint(0, 40, (2, 9)))
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    cost = analyze(model, batch=2, seq_len=9)
    checked = 0
    for layer in cost.layers:
        if layer.spec.kind not in {*MATMUL_KINDS, "MambaMixer"}:
            continue
        names = expand(layer.name)
        for name in names:
            assert flops.get(f"JambaForCausalLM.{name}", 0) == 2 * layer.macs // len(names), name
            checked += 1
    assert checked >= 20
    assert flops["Global"] == 2 * cost.macs


def test_kept_tensors_equal_autograd() -> None:
    """On shapecalc's built model and on transformers' own Mamba mixer (its slow path)."""
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    model = jamba(**SMALL)
    module = build(model, device="cpu")
    for p in module.parameters():
        if p.dim() > 1:
            p.data.normal_(0, 0.02)
    cost = analyze(model, batch=2, seq_len=7)
    assert kept_bytes(module, [torch.randint(2, 40, (2, 7))]) == cost.activation_bytes
    config, cls = real(Jamba(**SMALL))
    mixer = cls(config).model.layers[0].mamba
    mine = next(c for c in cost.layers if c.name.endswith("layers.0.mamba"))
    x = torch.randn(2, 7, 16, requires_grad=True)
    assert kept_bytes(mixer, [x]) == mine.kept_bytes(4)


# -- the command line -----------------------------------------------------------------------
EXAMPLE = Jamba.example.split()


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_at_80_and_200_columns(width: int) -> None:
    result = run(["jamba", *EXAMPLE], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    text = " ".join(result.stdout.split())
    assert "model.layers.{4,12..28}.self_attn.q_proj.weight" in text
    assert "51,570,323,328" in text


def test_explain_says_which_layers_attend_and_what_they_keep() -> None:
    result = run(["jamba", *EXAMPLE, "--explain"], 200)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "Layer i attends when i % 8 == 4" in out
    assert "Here 4 of the 32 layers attend (4, 12, 20, 28), 16 have experts." in out
    assert "dt_layernorm, b_layernorm, c_layernorm" in out
    assert "The state does not grow" in out


def test_verify_against_transformers() -> None:
    tiny = ["--vocab", "50", "--hidden", "16", "--layers", "4", "--heads", "2"]
    tiny += ["--intermediate", "8", "--experts", "3", "--attn-layer-period", "2"]
    for args, cls in [
        (tiny, "JambaForCausalLM"),
        ([*tiny, "--head", "seq-cls", "--labels", "3"], "JambaForSequenceClassification"),
        ([*tiny, "--head", "none", "--proj-bias", "--time-step-rank", "2"], "JambaModel"),
    ]:
        result = run(["jamba", *args, "--attn-layer-offset", "1", "--verify"])
        assert result.exit_code == 0, result.output
        assert "Verified against transformers" in result.stderr and cls in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--attn-layer-offset", "8"], "--attn-layer-offset"),
        (["--expert-layer-offset", "2"], "--expert-layer-offset"),
        (["--attn-layer-period", "0"], "--attn-layer-period"),
        (["--attn-layer-period", "P"], "--attn-layer-period"),
        (["--attn-layer-period", "997", "--expert-layer-period", "991"], "--attn-layer-period"),
        (["--experts-per-token", "17"], "--experts-per-token"),
        (["--kv-heads", "3"], "--kv-heads"),
        (["--heads", "5"], "--heads"),
        (["--state-size", "0"], "--state-size"),
        (["--labels", "3"], "--labels"),
    ],
)
def test_wrong_input_is_one_line(extra: list[str], message: str) -> None:
    result = run(["jamba", *EXAMPLE, *extra])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attn_layer_offset": 8}, "attn_layer_offset"),
        ({"expert_layer_offset": 3}, "expert_layer_offset"),
        ({"mamba_dt_rank": "big"}, "mamba_dt_rank"),
        ({"num_experts_per_tok": 17}, "num_experts_per_tok"),
        ({"head_dim": 64}, "head_dim"),
        ({"num_experts": 0}, "num_experts"),
    ],
)
def test_a_wrong_config_is_one_line(change: dict[str, Any], field: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "jamba", **change}))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert field in result.stderr


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        jamba(**{**SMALL, "attn_layer_offset": 3})
    assert err.value.field == "attn_layer_offset"
