"""A LoRA model's single-device activations at every training dtype: what autograd keeps
with peft's adapters (fp32, bf16, fp16), where each adapted layer's lora_A keeps its input
cast to the adapters' float32 (the layer's input itself at fp32, a copy of its own at 16
bits) and lora_A's float32 r-wide output; and the per-rank account at one rank (no
tensor or pipeline parallelism) counting the adapters' tensors as this one does."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapt import LoraConfig, lora
from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.cost import analyze
from tests.test_lora import GPT2, LLAMA, MIXTRAL, _kept

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
#: per family, the layer every drawn target list starts with (the first one the block's
#: input reaches, so that block 0 keeps the same tensors ahead of its first adapter), and
#: the others drawn. Transformers' attention output projections (o_proj, GPT-2's
#: attn.c_proj) are left to the Llama built by shapecalc's bridge: transformers' merged
#: heads are a tensor of their own, which shapecalc's attention keeps as its output
FIRST: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj",),
    "gpt2": ("attn.c_attn",),
    # transformers' eager attention keeps the softmax's 16-bit copy and the keys' repeat
    # only when the values' and the keys' projections carry a gradient: in block 0
    # (ahead of its adapters no gradient flows), when they are adapted
    "mixtral": ("q_proj", "k_proj", "v_proj"),
}
OTHERS = {
    "llama": ["k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gpt2": ["mlp.c_fc", "mlp.c_proj"],
    "mixtral": [],
}
#: GPT-2 without dropout (its masks are random)
NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
CONFIGS = {
    "llama": LLAMA,
    "gpt2": {**GPT2, **NO_DROPOUT},
    "mixtral": {**MIXTRAL, "num_hidden_layers": 1},
}


def _module(family: str, dtype: str) -> Any:
    torch.manual_seed(0)
    if family == "llama":  # shapecalc's own torch modules: its base is exact here
        from shapecalc.adapters.torch_bridge import build

        return build(from_hf_config(LLAMA), device="cpu").to(getattr(torch, DTYPES[dtype]))
    config = transformers.AutoConfig.for_model(**CONFIGS[family])
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    model = transformers.AutoModelForCausalLM.from_config(config)
    return model.to(getattr(torch, DTYPES[dtype]))


def _gap(family: str, dtype: str, lc: LoraConfig, b: int, s: int) -> int:
    """shapecalc's activations less autograd's, for peft's adapters on ``family``,
    DoRA's (m/‖·‖ − 1) of block 0's attention input layers aside (their input needs no
    gradient, so autograd keeps it not; 4 bytes per output)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = peft.get_peft_model(_module(family, dtype), peft.LoraConfig(**lc.peft_kwargs()))
    real = _kept(wrapped, [torch.randint(2, 40, (b, s))])
    model = lora(from_hf_config(CONFIGS[family]), lc)
    ours = analyze(model, batch=b, seq_len=s, dtype=dtype).activation_bytes
    ahead = 0  # block 0's layers reading its first norm's output
    for name, param in wrapped.named_parameters():
        first = any(f".0.{m}." in name for m in ("self_attn.q_proj", "self_attn.k_proj",
                                                    "self_attn.v_proj", "attn.c_attn"))  # fmt: skip
        if first and "lora_magnitude_vector" in name:
            ahead += 4 * param.numel()
    return int(ours - real - ahead)


@st.composite
def adapters(draw: st.DrawFn, family: str) -> tuple[LoraConfig, int, int]:
    others = draw(st.lists(st.sampled_from(OTHERS[family]), unique=True)) if OTHERS[family] else []
    # GPT-2's by a regular expression: the names would take attn.c_proj with mlp.c_proj
    targets = _targets(family, (*FIRST[family], *others))
    lc = LoraConfig(r=draw(st.integers(1, 6)), targets=targets, dora=draw(st.booleans()))
    return lc, draw(st.integers(1, 3)), draw(st.integers(2, 7))


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("family", ["llama", "gpt2", "mixtral"])
def test_adapters_keep_what_autograd_keeps(family: str, dtype: str) -> None:
    """Every drawn adapter set leaves the gap to autograd that the first adapter alone
    leaves (the base's: block 0's first norm, which keeps nothing in autograd as no
    gradient flows into it, and at 16 bits the norms' float32 upcast, which shapecalc
    counts at the activations' bytes): what each adapter adds (lora_A's float32 input, a
    copy per adapted layer at 16 bits, its r-wide float32 output, DoRA's tensors) is
    counted byte for byte. The Llama (shapecalc's own modules) at fp32 leaves exactly
    block 0's first norm: its input and 1/rms."""

    @settings(max_examples=3, deadline=None)
    @given(adapters(family))
    def check(case: tuple[LoraConfig, int, int]) -> None:
        lc, b, s = case
        alone = LoraConfig(r=1, targets=_targets(family, FIRST[family]))
        base = _gap(family, dtype, alone, b, s)
        assert _gap(family, dtype, lc, b, s) == base, lc
        if family == "llama" and dtype == "fp32":
            assert base == b * s * (LLAMA["hidden_size"] + 1) * 4

    check()


def _targets(family: str, targets: tuple[str, ...]) -> Any:
    if family != "gpt2":
        return targets
    return rf".*\.({'|'.join(t.replace('.', chr(92) + '.') for t in targets)})"


LLAMA_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@settings(max_examples=12, deadline=None)
@given(
    family=st.sampled_from(["llama", "gpt2"]),
    picks=st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True),
    dora=st.booleans(),
    r=st.integers(1, 9),
    dtype=st.sampled_from(["fp32", "bf16", "fp16"]),
    mixed=st.booleans(),
    b=st.integers(1, 3),
    s=st.integers(1, 12),
)
def test_the_per_rank_account_at_one_rank_counts_the_adapters_as_this_one(
    family: str, picks: list[int], dora: bool, r: int, dtype: str, mixed: bool, b: int, s: int
) -> None:
    """With no tensor, pipeline, context or expert parallelism, the adapters' tensors of
    the per-rank account (lora_parallel: lora_A's input, a float32 copy per adapted
    layer at 16 bits, its output, DoRA's) are this account's, tensor for tensor summed,
    under mixed precision too (16-bit activations, the adapters float32: the same)."""
    from shapecalc.analysis.model_parallel import activation_bytes
    from shapecalc.analysis.parallel_plan import ParallelPlan

    names = LLAMA_LINEAR if family == "llama" else ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"]
    chosen = tuple(names[i % len(names)] for i in picks)
    targets: Any = chosen if family == "llama" else _targets("gpt2", chosen)
    config = {**CONFIGS[family], "num_hidden_layers" if family == "llama" else "n_layer": 3}
    model = lora(from_hf_config(config), LoraConfig(r=r, targets=targets, dora=dora))
    half = dtype != "fp32"
    cost = analyze(model, batch=b, seq_len=s, dtype=dtype, mixed_precision=mixed and half)
    size = cost.activation_itemsize
    # at float32 lora_A's input is the layer's input, a tensor of the base that each
    # account shares with its own terms (the attention's output, kept by its kernel
    # here, is Korthikanti's output projection's input there): left out of both
    same = size == 4
    ours = sum(
        (n * st_.nbytes(size) for c in cost.layers if type(c.spec).__name__ == "Lora"
         for st_, n in c.kept if not (same and st_.when == "same" and st_.cast)),
        start=0,
    )  # fmt: skip
    rank = activation_bytes(model, ParallelPlan(), b, s, size)
    per_layer = sum(
        x.bytes
        for x in rank.layer
        if ("lora_A" in x.what or "DoRA" in x.what) and not (same and "lora_A's input" in x.what)
    )
    assert ours == 3 * per_layer > 0
    if mixed and half:  # the same tensors as without mixed precision
        plain = analyze(model, batch=b, seq_len=s, dtype=dtype).activation_bytes
        assert cost.activation_bytes == plain


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_qlora_keeps_the_unquantized_lora_model_s_activations(dtype: str) -> None:
    """QLoRA: bitsandbytes' frozen 4-bit layer keeps nothing (run on CPU in
    test_model_parallel_lora_act), and peft's bnb ``Linear4bit`` casts lora_A's input
    to float32 as ``lora.Linear`` does (tuners/lora/bnb.py, lines 206-209 of peft
    0.21.2, outside autocast): the same activations as the unquantized base's adapters,
    the float32 copies included."""
    from shapecalc.quant import quantize, weights_option

    base = from_hf_config({**LLAMA, "intermediate_size": 64, "hidden_size": 64})
    lc = LoraConfig(r=4, targets=("q_proj", "k_proj", "v_proj"))
    plain = analyze(lora(base, lc), batch=2, seq_len=5, dtype=dtype)
    four_bit = analyze(lora(quantize(base, weights_option("nf4")), lc), batch=2, seq_len=5,
                       dtype=dtype)  # fmt: skip
    assert four_bit.activation_bytes == plain.activation_bytes
    layers, rows, hidden = LLAMA["num_hidden_layers"], 2 * 5, 64
    copies = sum(
        n * s.nbytes(2)
        for c in plain.layers
        if type(c.spec).__name__ == "Lora"
        for s, n in c.kept
        if s.when == "copy"
    )  # three float32 copies of each block's normalised input (the norms' own are not LoRA's)
    assert copies == layers * 3 * rows * hidden * 4
