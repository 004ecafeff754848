"""Mamba (``mamba``) against transformers' classes: drawn configs through ``shapecalc hf``
(names, shapes, order, totals), the time step's rank "auto", the state each layer keeps
against what transformers' cache holds after a real forward (fp32 and bf16, sequences
shorter and longer than the convolution), the FLOPs of the mixer and every linear layer
against FlopCounterMode on a real forward, the tensors autograd keeps (on the built model
and on transformers' own), and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from shapecalc.architectures.mamba import Mamba, mamba
from shapecalc.core.errors import ShapecalcError
from tests.cache_truth import ours, real_cache
from tests.hf_configs import hf_configs
from tests.test_cli import run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


def built(config: dict[str, Any]) -> Any:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    cls = getattr(transformers, (config.get("architectures") or ["MambaForCausalLM"])[0])
    with torch.device("meta"):
        return cls(transformers.MambaConfig(**fields))


def real(arch: Mamba) -> tuple[Any, Any]:
    """transformers' config and class of ``arch``, written through its declaration."""
    reference = arch.reference()
    assert reference is not None
    config = getattr(transformers, reference.config_class)(**reference.config)
    return config, getattr(transformers, reference.model)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_drawn_configs_equal_transformers(data: st.DataObject) -> None:
    config = data.draw(hf_configs("mamba"), label="config")
    ours_ = hf_model(config).model()
    theirs = built(config)
    assert ours_.named_parameters() == params(theirs)
    assert ours_.total == sum(p.numel() for p in theirs.parameters())
    sizes = {k: v for k, v in ours_.sizes.items() if isinstance(v, int)}
    assert ours_.total_formula.subs(sizes) == ours_.total


def test_mamba_130m_counts_as_transformers_builds_it(tmp_path: Path) -> None:
    """state-spaces/mamba-130m-hf's sizes (the class's defaults but 24 layers): the
    rank "auto" is ⌈768 / 16⌉ = 48; an intermediate_size in the file is what the class
    takes, over expand · hidden."""
    config: dict[str, Any] = {"model_type": "mamba", "num_hidden_layers": 24}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    total = sum(p.numel() for p in built(config).parameters())
    assert json.loads(result.stdout)["total"] == total == 129_135_360
    read = hf_model(config)
    assert read.model().named_parameters() == params(built(config))
    assert read.model().sizes["R"] == 48
    config["intermediate_size"] = 1000
    assert hf_model(config).model().named_parameters() == params(built(config))
    assert hf_model(config).model().total == sum(p.numel() for p in built(config).parameters())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_step_rank": "big"}, "time_step_rank"),
        ({"time_step_rank": 0}, "time_step_rank"),
        ({"expand": 1.5}, "expand"),
        ({"state_size": 0}, "state_size"),
        ({"conv_kernel": -1}, "conv_kernel"),
        ({"use_bias": "yes"}, "use_bias"),
        ({"mamba_d_state": 4}, "mamba_d_state"),
        ({"intermediate_size": None}, "intermediate_size"),
    ],
)
def test_a_wrong_config_is_one_line(change: dict[str, Any], field: str, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba", **change}))
    result = run(["hf", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert field in result.stderr


# -- the state each layer keeps ------------------------------------------------------------------
@settings(max_examples=6, deadline=None)
@given(
    hidden=st.integers(2, 12),
    layers=st.integers(1, 3),
    state=st.integers(1, 6),
    kernel=st.integers(1, 5),
    rank=st.one_of(st.none(), st.integers(1, 4)),
    expand=st.integers(1, 3),
)
def test_the_state_is_what_transformers_cache_holds(
    hidden: int, layers: int, state: int, kernel: int, rank: int | None, expand: int
) -> None:
    """Every layer's conv state (B, D, K) in the model's dtype and SSM state (B, D, N) in
    fp32, at lengths below, at and past the kernel, in fp32 and bf16."""
    arch = Mamba(
        vocab=30,
        hidden=hidden,
        layers=layers,
        state_size=state,
        conv_kernel=kernel,
        time_step_rank=rank,
        expand=expand,
    )
    config, cls = real(arch)
    model = arch.model()
    for dtype, name in ((None, "fp32"), (torch.bfloat16, "bf16")):
        for length in sorted({1, kernel, kernel + 3}):
            truth = real_cache(config, cls, batch=2, seq_len=length, dtype=dtype)
            assert ours(model, batch=2, seq_len=length, dtype=name) == dict(enumerate(truth))


def test_the_state_does_not_grow_and_is_state_space() -> None:
    model = mamba(vocab=50280, hidden=768, layers=24)
    short = analyze(model, batch=1, seq_len=16, training="none")
    long = analyze(model, batch=1, seq_len=16384, training="none")
    assert short.state_bytes == long.state_bytes == 24 * (1536 * 4 * 4 + 1536 * 16 * 4)
    (group,) = long.state_groups()
    assert group.kind == "state space" and group.layers == 24 and not group.grows
    bf16 = analyze(model, batch=1, seq_len=16, dtype="bf16", training="none")
    assert bf16.state_bytes == 24 * (1536 * 4 * 2 + 1536 * 16 * 4)  # the SSM state stays fp32


# -- FLOPs and kept tensors on a real forward -----------------------------------------------------
SMALL = {
    "plain": {"vocab": 40, "hidden": 16, "layers": 2, "state_size": 5, "conv_kernel": 3},
    "biased": {
        "vocab": 40,
        "hidden": 12,
        "layers": 3,
        "state_size": 4,
        "conv_kernel": 4,
        "time_step_rank": 3,
        "expand": 3,
        "use_bias": True,
        "use_conv_bias": False,
        "tie_weights": False,
    },
}


def counted(module: Any, ids: Any) -> dict[str, int]:
    module.eval().requires_grad_(False)  # the counter's hooks need no grad on parameters
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(ids)
    return {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_flops_equal_flop_counter_mode(kind: str) -> None:
    """The mixer's products (in_proj, the padded convolution, x_proj, dt_proj's, C·h at
    every position, out_proj) per layer, the head, and the whole forward."""
    arch = Mamba(**SMALL[kind])
    config, cls = real(arch)
    theirs = cls(config)
    ours_ = arch.model()
    assert ours_.named_parameters() == params(theirs)
    batch, length = 2, 9
    flops = counted(theirs, torch.randint(0, 40, (batch, length)))
    cost = analyze(ours_, batch=batch, seq_len=length)
    mixers = [c for c in cost.layers if c.spec.kind == "MambaMixer"]
    assert len(mixers) == arch.layers
    for c in mixers:
        assert flops[f"MambaForCausalLM.{c.name}"] == 2 * c.macs, c.name
    head = next(c for c in cost.layers if c.name == "lm_head")
    assert flops["MambaForCausalLM.lm_head"] == 2 * head.macs
    assert flops["Global"] == 2 * cost.macs


@pytest.mark.parametrize("kind", sorted(SMALL))
def test_kept_tensors_equal_autograd(kind: str) -> None:
    """On shapecalc's built model and on transformers' own (its slow path in training)."""
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    arch = Mamba(**SMALL[kind])
    model = arch.model()
    ids = torch.randint(0, 40, (2, 7))
    cost = analyze(model, batch=2, seq_len=7)
    assert kept_bytes(build(model, device="cpu"), [ids]) == cost.activation_bytes
    config, cls = real(arch)
    assert kept_bytes(cls(config), [ids]) == cost.activation_bytes


# -- the command line -----------------------------------------------------------------------------
EXAMPLE = Mamba.example.split()


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_at_80_and_200_columns(width: int) -> None:
    result = run(["mamba", *EXAMPLE], width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.stdout.splitlines())
    text = " ".join(result.stdout.split())
    assert "backbone.layers.{0..23}.mixer.A_log" in text
    assert "129,135,360" in text


def test_explain_says_what_the_mixer_holds_and_why_the_state_does_not_grow() -> None:
    result = run(["mamba", *EXAMPLE, "--explain"], 200)
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "A = −exp(A_log)" in out and "what makes the scan selective" in out
    assert "The state does not grow" in out


def test_verify_against_transformers() -> None:
    for args, cls in [
        (["--vocab", "50", "--hidden", "16", "--layers", "2"], "MambaForCausalLM"),
        (
            [
                *("--vocab", "50", "--hidden", "16", "--layers", "2", "--time-step-rank", "5"),
                *("--use-bias", "--no-use-conv-bias", "--head", "none"),
            ],
            "MambaModel",
        ),
    ]:
        result = run(["mamba", *args, "--verify"])
        assert result.exit_code == 0, result.output
        assert "Verified against transformers" in result.stderr and cls in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--state-size", "0"], "--state-size"),
        (["--conv-kernel", "x-1"], "--conv-kernel"),
        (["--time-step-rank", "0"], "--time-step-rank"),
        (["--expand", "0"], "--expand"),
        (["--head", "seq-cls"], "--head"),
    ],
)
def test_wrong_input_is_one_line(extra: list[str], message: str) -> None:
    result = run(["mamba", *EXAMPLE, *extra])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr


def test_sizes_as_letters_give_the_formula() -> None:
    model = mamba(vocab="V", hidden="H", layers="L")
    assert str(model.total_formula) == (
        "3·L·H²·X + L·H·K·X + 3·L·H·N·X + 2·L·H·R·X + 3·L·H·X + L·H + V·H + H"
    )
    assert model.evaluate(V=50280, H=768, L=24, X=2, N=16, K=4, R=48).total == 129_135_360
    with pytest.raises(ShapecalcError):
        mamba(vocab=10, hidden=8, layers=1, state_size=0)
