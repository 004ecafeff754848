"""A LoRA model's per-rank activations (shapecalc.analysis.lora_parallel): against what
autograd keeps in one tensor-parallel rank's slice of a Llama layer, run here on CPU
with peft's adapters (the rank's heads, key-value heads and MLP width, the adapters
peft builds on them, which are the per-rank shapes rank_parameters gives: a
column-parallel layer's lora_B split, a row-parallel layer's lora_A), and in the CLI."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapt.lora import LoraConfig, lora
from shapecalc.analysis.model_parallel import activation_bytes, rank_parameters
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures.llama import llama
from shapecalc.core.errors import InvalidArgumentError
from tests.test_lora import LLAMA, _kept

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _llama_slice(sizes: dict[str, int]) -> Any:
    """transformers' config of one tensor-parallel rank's slice of the Llama layer."""
    t = sizes["t"]
    return transformers.LlamaConfig(
        vocab_size=32, hidden_size=sizes["h"], num_attention_heads=sizes["a"] // t,
        num_key_value_heads=sizes["k"] // t, head_dim=sizes["d"],
        intermediate_size=sizes["F"] // t, num_hidden_layers=1,
    )  # fmt: skip


def _layer_kept(
    config: Any, dtype: Any, how: str, b: int, s: int, lc: LoraConfig | None = None
) -> tuple[int, dict[str, tuple[int, ...]]]:
    """Bytes autograd keeps for one forward of the first decoder layer of ``config``'s
    model (eager attention and experts) whose input carries a gradient, as a layer after
    the first adapted one does; ``how``: ``trained`` (every parameter but the norms',
    as Korthikanti counts a norm's input alone), ``frozen`` or ``peft`` (peft's adapters
    on the frozen model). Also the adapters' shapes, by name."""
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    torch.manual_seed(0)
    model: Any = transformers.AutoModelForCausalLM.from_config(config).to(dtype)
    for param in model.parameters():
        param.data.normal_(0, 0.1)
    shapes: dict[str, tuple[int, ...]] = {}
    if how == "peft":
        assert lc is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = peft.get_peft_model(model, peft.LoraConfig(**lc.peft_kwargs()))
        shapes = {n: tuple(q.shape) for n, q in model.named_parameters() if ".lora_" in n}
        core = model.base_model.model
    else:
        core = model
        for name, param in model.named_parameters():
            norm = "norm" in name or ".ln_" in name
            param.requires_grad_(how == "trained" and not norm)
    inner = core.model if hasattr(core, "model") else core.transformer  # GPT-2's
    layer = inner.layers[0] if hasattr(inner, "layers") else inner.h[0]
    x = torch.randn(b, s, config.hidden_size, dtype=dtype, requires_grad=True)
    rotary = getattr(inner, "rotary_emb", None)
    rope = rotary(x, torch.arange(s)[None].expand(b, s)) if rotary else None

    class One(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, x: Any) -> Any:
            if rope is None:
                return self.layer(x)
            return self.layer(x, position_embeddings=rope, attention_mask=None)

    return _kept(One(), [x]), shapes


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, int], tuple[str, ...], bool, str]:
    t = draw(st.sampled_from([1, 2, 4]))
    a = t * draw(st.integers(1, 2))
    sizes = {
        "t": t, "a": a, "k": t * draw(st.integers(1, a // t)), "d": draw(st.sampled_from([4, 8])),
        "F": t * draw(st.integers(2, 6)), "r": draw(st.integers(1, 5)),
        "s": draw(st.integers(2, 6)), "b": draw(st.integers(1, 2)),
    }  # fmt: skip
    sizes["h"] = draw(st.sampled_from([16, 24]))
    targets = tuple(draw(st.lists(st.sampled_from(LINEAR), min_size=1, max_size=7, unique=True)))
    dora = t == 1 and draw(st.booleans())
    return sizes, targets, dora, draw(st.sampled_from(["float32", "bfloat16"]))


@settings(max_examples=8, deadline=None)
@given(cases())
def test_a_rank_s_slice_keeps_what_autograd_keeps(case: Any) -> None:
    """One rank's layer: (a) what the frozen base stops keeping is what autograd stops
    keeping when the linear layers are frozen (their inputs); (b) what the adapters add is
    what peft's adapters make autograd keep (lora_A's float32 input, its r-wide output,
    DoRA's tensors); so the dense and the LoRA accounts differ as the runs do."""
    sizes, targets, dora, dtype_name = case
    t, p = sizes["t"], 4 if dtype_name == "float32" else 2
    dtype = getattr(torch, dtype_name)
    model = llama(
        vocab=64, hidden=sizes["h"], layers=1, heads=sizes["a"], kv_heads=sizes["k"],
        intermediate=sizes["F"], head_dim=sizes["d"],
    )  # fmt: skip
    lc = LoraConfig(r=sizes["r"], targets=targets, dora=dora)
    adapted = lora(model, lc)
    plan = ParallelPlan(tp=t)
    s, b = sizes["s"], sizes["b"]
    dense = activation_bytes(model, plan, b, s, p).layer
    ours = activation_bytes(adapted, plan, b, s, p).layer
    config = _llama_slice(sizes)
    trained, _ = _layer_kept(config, dtype, "trained", b, s)
    frozen, _ = _layer_kept(config, dtype, "frozen", b, s)
    real, shapes = _layer_kept(config, dtype, "peft", b, s, lc)
    added = sum(x.bytes for x in ours if "lora_A" in x.what or "DoRA" in x.what)
    assert real - frozen == added
    assert trained - real == sum(x.bytes for x in dense) - sum(x.bytes for x in ours)
    # the slice's adapters are the rank's, as rank_parameters splits them
    held = {
        x.name.split("layers.", 1)[1].replace("{0}.", "0."): x.local
        for x in rank_parameters(adapted, plan).tensors
        if ".lora_" in x.name
    }
    theirs = {n.split("layers.", 1)[1]: v for n, v in shapes.items() if "layers." in n}
    assert {k.replace("0..0", "0"): v for k, v in held.items()} == theirs


def _adapted(**config: Any) -> Any:
    model = llama(vocab=300, hidden=64, layers=4, heads=4, kv_heads=2, intermediate=96)
    return model, lora(model, LoraConfig(**{"r": 8, "targets": "all-linear", **config}))


def test_recomputation_and_sequence_parallel() -> None:
    """Full recomputation keeps each layer's input, adapted or not; selective drops the
    a·s² terms as it does for the dense model; with sequence parallelism the terms over
    the rank's s/t tokens are divided by t (lora_A of a column-parallel layer runs on the
    rank's tokens, a row-parallel one's output is reduce-scattered), the row-parallel
    lora_A's input (the rank's a·d/t or F/t of every token) is not."""
    model, adapted = _adapted()
    b, s = 2, 16
    full = ParallelPlan(tp=2, recompute="full")
    assert (
        activation_bytes(adapted, full, b, s).per_layer
        == activation_bytes(model, full, b, s).per_layer
    )
    plain = activation_bytes(adapted, ParallelPlan(tp=2), b, s)
    selective = activation_bytes(adapted, ParallelPlan(tp=2, recompute="selective"), b, s)
    gone = sum(x.bytes for x in plain.layer if "s²" in x.formula)
    assert plain.per_layer - selective.per_layer == gone > 0
    split = activation_bytes(adapted, ParallelPlan(tp=2, sequence_parallel=True), b, s)
    assert [x.what for x in split.layer] == [x.what for x in plain.layer]
    for x, y in zip(plain.layer, split.layer, strict=True):
        divided = y.formula != x.formula
        assert y.bytes == (x.bytes // 2 if divided else x.bytes), x.what
        row = x.what.split(" in float32")[0] in ("attention output", "down projection's input")
        if "lora_A" in x.what:
            assert divided != row, x.what


def test_ends_and_pipeline() -> None:
    """A frozen embedding keeps neither the token ids nor its dropout's mask (no gradient
    there); a frozen head not its input; an adapted head lora_A's; the first stage holds
    its layers for each micro-batch in flight, as the dense account does."""
    model, adapted = _adapted()
    b, s = 1, 8
    ends = {x.what for x in activation_bytes(adapted, ParallelPlan(tp=2), b, s).ends}
    assert ends == {"final norm's input", "logits in fp32 for the loss"}
    head = lora(model, LoraConfig(r=8, targets=("q_proj", "lm_head")))
    ends = {x.what: x.bytes for x in activation_bytes(head, ParallelPlan(tp=2), b, s).ends}
    assert ends["head's input in float32 for 1 lora_A"] == 4 * s * b * 64
    assert ends["head: lora_A's output (float32)"] == 4 * s * b * 8
    embedding = lora(model, LoraConfig(r=8, targets=("q_proj", "embed_tokens")))
    plan = ParallelPlan(pp=2, micro_batches=3)
    found = activation_bytes(embedding, plan, b, s)
    ends = {x.what: x.bytes for x in found.ends}
    assert ends["token ids (int64)"] == 8 * s * b * 2
    assert ends["embedding: lora_A's lookup (float32)"] == 4 * s * b * 8 * 2
    assert found.layer_batches == 2 * 2


MIXTURES = {
    "qwen2_moe": {
        "model_type": "qwen2_moe", "hidden_size": 16, "moe_intermediate_size": 8,
        "shared_expert_intermediate_size": 12, "intermediate_size": 24, "num_experts": 4,
        "num_experts_per_tok": 2, "norm_topk_prob": True, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 50, "num_hidden_layers": 1,
    },
    "mixtral": {
        "model_type": "mixtral", "hidden_size": 16, "intermediate_size": 8,
        "num_local_experts": 4, "num_experts_per_tok": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 50, "num_hidden_layers": 1,
    },
}  # fmt: skip


@pytest.mark.parametrize(
    ("family", "targets", "dtype"),
    [
        ("qwen2_moe", ("q_proj",), "float32"),
        ("qwen2_moe", r".*\.mlp\.shared_expert\..*_proj", "bfloat16"),
        ("qwen2_moe", ("o_proj", "shared_expert_gate"), "float32"),
        ("mixtral", ("q_proj", "v_proj"), "bfloat16"),
    ],
)
def test_a_frozen_mixture_keeps_what_autograd_keeps(family: str, targets: Any, dtype: str) -> None:
    """A mixture's layer with its experts frozen (LoRA on attention or the shared
    expert): no token gathered for the experts' matmul, no product for their down
    projection, no router or shared expert input, no shared product; the shared expert's
    adapters keep what a dense MLP's do. Autograd on transformers' eager layer with peft."""
    from shapecalc.adapters.hf_config import from_hf_config

    config = MIXTURES[family]
    model = from_hf_config(config)
    lc = LoraConfig(r=3, targets=targets)
    adapted = lora(model, lc)
    b, s, p = 2, 5, 4 if dtype == "float32" else 2
    dense = activation_bytes(model, ParallelPlan(), b, s, p).layer
    ours = activation_bytes(adapted, ParallelPlan(), b, s, p).layer
    made = transformers.AutoConfig.for_model(**config)
    trained, _ = _layer_kept(made, getattr(torch, dtype), "trained", b, s)
    frozen, _ = _layer_kept(made, getattr(torch, dtype), "frozen", b, s)
    real, _ = _layer_kept(made, getattr(torch, dtype), "peft", b, s, lc)
    added = sum(x.bytes for x in ours if "lora_A" in x.what)
    assert real - frozen == added
    assert trained - real == sum(x.bytes for x in dense) - sum(x.bytes for x in ours)


@pytest.mark.parametrize(
    ("targets", "dtype"),
    [(("c_attn",), "float32"), (("c_proj",), "bfloat16"), ("all-linear", "bfloat16")],
)
def test_gpt2_s_fused_attention_and_gelu_mlp(targets: Any, dtype: str) -> None:
    """GPT-2's block (Conv1D, a fused query-key-value layer, a GeLU MLP, dropout): the
    frozen MLP keeps the activation's input, not its output (the down projection's
    input); Conv1D's adapters keep what a Linear's do. Autograd with peft, one rank."""
    from shapecalc.adapters.hf_config import from_hf_config

    config = {
        "model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_layer": 1, "vocab_size": 50,
        "n_positions": 16, "activation_function": "gelu",
    }  # fmt: skip
    model = from_hf_config(config)
    lc = LoraConfig(r=3, targets=targets)
    adapted = lora(model, lc)
    b, s, p = 2, 5, 4 if dtype == "float32" else 2
    dense = activation_bytes(model, ParallelPlan(), b, s, p).layer
    ours = activation_bytes(adapted, ParallelPlan(), b, s, p).layer
    made = transformers.AutoConfig.for_model(**config)
    trained, _ = _layer_kept(made, getattr(torch, dtype), "trained", b, s)
    frozen, _ = _layer_kept(made, getattr(torch, dtype), "frozen", b, s)
    real, _ = _layer_kept(made, getattr(torch, dtype), "peft", b, s, lc)
    assert real - frozen == sum(x.bytes for x in ours if "lora_A" in x.what)
    assert trained - real == sum(x.bytes for x in dense) - sum(x.bytes for x in ours)


def test_lora_on_a_mixture_s_parameters_is_refused_in_one_line() -> None:
    from shapecalc.adapters.hf_config import from_hf_config

    adapted = lora(from_hf_config(MIXTURES["mixtral"]), LoraConfig(r=4, targets=("w1", "w3")))
    with pytest.raises(InvalidArgumentError, match="ParamWrapper") as caught:
        activation_bytes(adapted, ParallelPlan(pp=1, cp=1, recompute="selective"), 1, 8)
    assert "\n" not in str(caught.value) and caught.value.field == "--lora-targets"


def _cli(args: list[str], width: int) -> Any:
    from click.testing import CliRunner

    from shapecalc.cli import cli

    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
    return CliRunner().invoke(cli, args, env=env, prog_name="shapecalc")


@pytest.mark.parametrize("width", [80, 200])
def test_fit_answers_a_lora_run_under_tp_and_pp(tmp_path: Any, width: int) -> None:
    """fit --training with LoRA under --tp and --pp: the fewest GPUs from an account
    whose activations are the rank's (counted), at 80 and 200 columns."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, "architectures": ["LlamaForCausalLM"]}))
    args = ["fit", "hf", str(path), "--gpu", "h100", "--training", "adamw", "--lora-rank", "4"]
    args += ["--lora-targets", "all-linear", "--tp", "2", "--pp", "2", "--sequence-parallel"]
    result = _cli(args, width)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= width for line in result.output.splitlines())
    assert "not counted" not in result.output
    data = _cli([*args, "--format", "json"], width)
    assert data.exit_code == 0, data.output
    lines = {x["label"]: x for x in json.loads(data.stdout)["per_gpu"]["lines"]}
    assert lines["activations"]["bytes"] > 0 and lines["activations"]["counted"]
    model = ["llama", "--vocab", "1000", "--hidden", "64", "--layers", "4", "--heads", "4"]
    run = ["--lora-rank", "8", "--lora-targets", "all-linear", "--tp", "2", "--batch", "1"]
    run += ["--seq-len", "64", "--training", "adamw", "--memory", "--explain"]
    explained = _cli([*model, *run], width)
    assert explained.exit_code == 0, explained.output
    text = " ".join(explained.output.split())
    assert "LoRA's activations per rank: Korthikanti's terms of the frozen base" in text
    assert all(len(line) <= width for line in explained.output.splitlines())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_qlora_s_frozen_4_bit_layers_keep_no_input(dtype: str) -> None:
    """QLoRA: bitsandbytes' frozen 4-bit linear layer, run on CPU, keeps nothing for the
    backward pass but its own packed weight (a parameter), as a frozen linear layer; so a
    4-bit base's per-rank activations are the unquantized LoRA model's (its sizes read
    from the unquantized twin, not the packed tensors)."""
    bnb = pytest.importorskip("bitsandbytes")
    from shapecalc.quant import quantize, weights_option

    layer = bnb.nn.Linear4bit(64, 48, bias=False, compute_dtype=getattr(torch, dtype))
    layer.weight = bnb.nn.Params4bit(torch.randn(48, 64), requires_grad=False, quant_type="nf4")
    layer = layer.to("cpu")  # packs the weight (4 bits a number) and sets its state
    assert layer.weight.shape == (48 * 64 // 2, 1)
    x = torch.randn(3, 5, 64, dtype=getattr(torch, dtype), requires_grad=True)
    assert _kept(layer, [x]) == 0
    model = llama(vocab=256, hidden=64, layers=4, heads=4, intermediate=128)
    lc = LoraConfig(r=4, targets="all-linear")
    for plan in (ParallelPlan(pp=2, micro_batches=4), ParallelPlan(recompute="selective")):
        plain = activation_bytes(lora(model, lc), plan, 2, 16)
        four_bit = activation_bytes(lora(quantize(model, weights_option("nf4")), lc), plan, 2, 16)
        assert four_bit.total == plain.total


def test_lora_beside_linear_attention_is_refused_in_one_line() -> None:
    """A Qwen3-Next layer of linear attention and a dense MLP: its mixer's frozen
    in_proj and the adapters beside it are not derived, so the activations are refused
    naming it (and the flag)."""
    from shapecalc.adapters.hf_config import from_hf_config
    from tests.test_model_parallel_gdn import hf_config

    config = hf_config(16, 2, 4, 3, 5, 3, layers=2).to_dict()
    model = from_hf_config({**config, "model_type": "qwen3_next", "intermediate_size": 8})
    adapted = lora(model, LoraConfig(r=2, targets=("gate_proj", "up_proj", "down_proj")))
    with pytest.raises(InvalidArgumentError, match="linear attention") as caught:
        activation_bytes(adapted, ParallelPlan(tp=2, sequence_parallel=True), 2, 70)
    assert caught.value.field == "--lora-targets" and "\n" not in str(caught.value)
