"""The transformer language models against the classes of Hugging Face ``transformers``:
every family member's names, shapes and total for drawn configurations, the FLOPs of every
linear layer against FlopCounterMode on a real forward, the output shapes, the tensors
autograd keeps, the mixture of experts in both layouts, and the command line."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.architectures.bert import bert
from shapecalc.architectures.falcon import falcon
from shapecalc.architectures.gpt2 import gpt2
from shapecalc.architectures.gpt_neox import gpt_neox
from shapecalc.architectures.llama import llama
from shapecalc.core.errors import ShapecalcError
from tests.test_cli import run
from tests.twins import hf, on_meta

torch = pytest.importorskip("torch")
t = hf()
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def params(module: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in module.named_parameters()]


# -- the LLaMA family, member by member ----------------------------------------------------
@st.composite
def decoder_sizes(draw: st.DrawFn, own_head_dim: bool = False) -> dict[str, int]:
    """Sizes a transformers config accepts: kv heads divide the heads, the hidden size a
    multiple of the heads, an even head_dim (rotary positions turn pairs)."""
    kv = draw(st.integers(1, 4))
    heads = kv * draw(st.integers(1, 3))
    head_dim = 2 * draw(st.integers(1, 6))
    hidden = heads * (head_dim if not own_head_dim else draw(st.integers(1, 6)))
    return {
        "vocab": draw(st.integers(2, 64)),
        "hidden": hidden,
        "layers": draw(st.integers(1, 3)),
        "heads": heads,
        "kv_heads": kv,
        "intermediate": draw(st.integers(1, 48)),
        **({"head_dim": head_dim} if own_head_dim else {}),
    }


def hf_sizes(s: dict[str, int]) -> dict[str, int]:
    out = {
        "vocab_size": s["vocab"],
        "hidden_size": s["hidden"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "intermediate_size": s["intermediate"],
    }
    if "head_dim" in s:
        out["head_dim"] = s["head_dim"]
    return out


#: member -> (its config and model classes, its own head_dim?, its flags here, its config's
#: extra arguments, as functions of a drawn boolean)
FAMILY: dict[str, tuple[str, bool, Any]] = {
    "Llama": (
        "Llama",
        True,
        lambda b: (
            {"attention_bias": "all" if b else "none", "mlp_bias": b, "tie_weights": b},
            {"attention_bias": b, "mlp_bias": b, "tie_word_embeddings": b},
        ),
    ),
    "Mistral": ("Mistral", True, lambda b: ({"tie_weights": b}, {"tie_word_embeddings": b})),
    "Qwen2": (
        "Qwen2",
        False,
        lambda b: (
            {"attention_bias": "qkv", "tie_weights": b},
            {"tie_word_embeddings": b},
        ),
    ),
    "Qwen3": (
        "Qwen3",
        True,
        lambda b: (
            {"qk_norm": True, "attention_bias": "all" if b else "none"},
            {"attention_bias": b, "tie_word_embeddings": False},
        ),
    ),
    "Gemma": (
        "Gemma",
        True,
        lambda b: ({"tie_weights": True, "activation": "gelu_tanh"}, {}),
    ),
    "Gemma2": (
        "Gemma2",
        True,
        lambda b: (
            {"sandwich_norm": True, "tie_weights": True, "activation": "gelu_tanh"},
            {"attention_bias": False},
        ),
    ),
    "Phi3": (
        "Phi3",
        False,
        lambda b: (
            {"fused_qkv": True, "fused_gate_up": True, "tie_weights": b},
            {"pad_token_id": 0, "tie_word_embeddings": b},
        ),
    ),
    "Mixtral": (
        "Mixtral",
        True,
        lambda b: ({"experts": 3, "experts_per_token": 2 if b else 1}, {}),
    ),
}


def member(name: str, sizes: dict[str, int], flag: bool) -> tuple[Any, Any]:
    """(our model, the transformers model) of one family member."""
    prefix, _, options = FAMILY[name]
    ours, theirs = options(flag)
    config = getattr(t, f"{prefix}Config")(**hf_sizes(sizes), **theirs)
    if name == "Mixtral":
        config.num_local_experts, config.num_experts_per_tok = 3, ours["experts_per_token"]
    return llama(**sizes, **ours), on_meta(getattr(t, f"{prefix}ForCausalLM"), config)


@pytest.mark.parametrize("name", sorted(FAMILY))
@settings(max_examples=15, deadline=None)
@given(data=st.data(), flag=st.booleans())
def test_llama_family_names_shapes_and_totals(name: str, data: st.DataObject, flag: bool) -> None:
    sizes = data.draw(decoder_sizes(own_head_dim=FAMILY[name][1]), label="sizes")
    if name == "Phi3":  # one key and value head per query head (no num_key_value_heads split)
        sizes["kv_heads"] = sizes["heads"]
    ours, theirs = member(name, sizes, flag)
    assert ours.named_parameters() == params(theirs)
    assert ours.total == sum(p.numel() for p in theirs.parameters())


def test_llama_intermediate_follows_meta_rule() -> None:
    """Without --intermediate, LLaMA's 8·H/3 up to a multiple of 256 (11,008 for 4,096)."""
    model = llama(vocab=32000, hidden=4096, layers=1, heads=32)
    assert model.sizes["I"] == 11008
    assert dict(model.named_parameters())["model.layers.0.mlp.up_proj.weight"] == (11008, 4096)


# -- mixture of experts: the layout of transformers 5 and that of checkpoint files --------------
def test_experts_in_both_layouts() -> None:
    sizes = {"vocab": 10, "hidden": 8, "layers": 1, "heads": 2, "intermediate": 6}
    fused = llama(**sizes, experts=4, experts_per_token=2)
    stored = llama(**sizes, experts=4, experts_per_token=2, moe_layout="checkpoint")
    fused_names = dict(fused.named_parameters())
    assert fused_names["model.layers.0.mlp.gate.weight"] == (4, 8)
    assert fused_names["model.layers.0.mlp.experts.gate_up_proj"] == (4, 12, 8)
    assert fused_names["model.layers.0.mlp.experts.down_proj"] == (4, 8, 6)
    names = [n for n, _ in stored.named_parameters() if ".block_sparse_moe." in n]
    # as Mixtral's checkpoint index lists them: each expert's w1, w2, w3 in turn
    assert names[:4] == [
        "model.layers.0.block_sparse_moe.gate.weight",
        "model.layers.0.block_sparse_moe.experts.0.w1.weight",
        "model.layers.0.block_sparse_moe.experts.0.w2.weight",
        "model.layers.0.block_sparse_moe.experts.0.w3.weight",
    ]
    assert len(names) == 1 + 3 * 4
    assert fused.total == stored.total  # the same numbers, named two ways
    rows = [r.name for r in stored.rows() if ".experts." in r.name]
    assert rows[0].endswith(".block_sparse_moe.experts.{0..3}.w1.weight")  # numbers, not E


# -- FLOPs, shapes and memory on a real forward -------------------------------------------------
def hf_model(kind: str) -> tuple[Any, Any]:
    """(our model, the transformers model on the cpu, eager attention) of a small config."""
    common = {"vocab_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4}
    eager = {"attn_implementation": "eager"}
    if kind == "gpt2":
        config = t.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=40, n_positions=16)
        ours = gpt2(vocab=40, hidden=32, layers=2, heads=4, context=16)
        return ours, t.GPT2LMHeadModel._from_config(config, **eager)
    if kind == "gpt-neox":
        config = t.GPTNeoXConfig(**common, hidden_size=32, intermediate_size=64)
        ours = gpt_neox(vocab=40, hidden=32, layers=2, heads=4, intermediate=64)
        return ours, t.GPTNeoXForCausalLM._from_config(config, **eager)
    if kind in FALCONS:
        flags = FALCONS[kind]
        config = t.FalconConfig(**common, hidden_size=32, **flags)
        arguments = {
            "kv_heads": flags.get("num_kv_heads"),
            "new_decoder_architecture": flags.get("new_decoder_architecture", False),
            "multi_query": flags.get("multi_query", True),
            "parallel_attn": flags.get("parallel_attn", True),
            "bias": flags.get("bias", False),
            "alibi": flags.get("alibi", False),
        }
        ours = falcon(vocab=40, hidden=32, layers=2, heads=4, **arguments)
        return ours, t.FalconForCausalLM._from_config(config, **eager)
    if kind in ("bert", "roberta-mlm"):
        roberta = kind == "roberta-mlm"
        config = (t.RobertaConfig if roberta else t.BertConfig)(
            **common,
            hidden_size=32,
            intermediate_size=48,
            max_position_embeddings=18 if roberta else 16,
            type_vocab_size=1 if roberta else 2,
            pad_token_id=1 if roberta else 0,
        )
        ours = bert(
            vocab=40,
            hidden=32,
            layers=2,
            heads=4,
            intermediate=48,
            context=16,
            layout="roberta" if roberta else "bert",
            head="mlm" if roberta else "none",
        )
        cls = t.RobertaForMaskedLM if roberta else t.BertModel
        return ours, cls._from_config(config, **eager)
    name = {"llama": "Llama", "qwen3": "Qwen3", "gemma2": "Gemma2", "phi3": "Phi3"}
    name["mixtral"] = "Mixtral"
    prefix, own_head_dim, options = FAMILY[name[kind]]
    sizes = {"vocab": 40, "hidden": 32, "layers": 2, "heads": 4, "intermediate": 24}
    sizes["kv_heads"] = 4 if kind == "phi3" else 2
    if own_head_dim:
        sizes["head_dim"] = 12
    ours, theirs = options(True)
    config = getattr(t, f"{prefix}Config")(**hf_sizes(sizes), **theirs)
    if kind == "mixtral":
        config.num_local_experts, config.num_experts_per_tok = 3, 2
    # eager attention and experts: the products FlopCounterMode sees
    model = getattr(t, f"{prefix}ForCausalLM")._from_config(
        config, **eager, experts_implementation="eager"
    )
    return llama(**sizes, **ours), model


#: Falcon's layouts: 7B's (one key and value head), 40B's (the new decoder) and RW's
FALCONS: dict[str, dict[str, Any]] = {
    "falcon-7b": {},
    "falcon-40b": {"new_decoder_architecture": True, "num_kv_heads": 2},
    "falcon-rw": {"multi_query": False, "parallel_attn": False, "bias": True, "alibi": True},
}
KINDS = ["gpt2", "gpt-neox", "bert", "roberta-mlm", "llama", "qwen3", "gemma2", "phi3", "mixtral"]
KINDS += list(FALCONS)
MATMUL_KINDS = {"Linear", "Conv1D", "Experts"}


def counted_per_module(module: Any, batch: int, seq: int) -> tuple[dict[str, int], Any]:
    ids = torch.randint(2, 40, (batch, seq))
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = module(ids)
    flops = {
        name.split(".", 1)[1]: sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if "." in name
    }
    return flops, out


def expand(name: str) -> list[str]:
    """transformer.h.{0..1}.attn.c_attn -> the names of each repeat."""
    found = re.search(r"\{(\d+)\.\.(\d+)\}", name)
    if not found:
        return [name]
    first, last = int(found[1]), int(found[2])
    return [name[: found.start()] + str(i) + name[found.end() :] for i in range(first, last + 1)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_linear_layer_flops_equal_flop_counter_mode(kind: str) -> None:
    ours, theirs = hf_model(kind)
    assert ours.named_parameters() == params(theirs)
    batch, seq = 2, 12
    cost = analyze(ours, batch=batch, seq_len=seq)
    flops, out = counted_per_module(theirs, batch, seq)
    checked = 0
    for layer in cost.layers:
        if layer.spec.kind not in MATMUL_KINDS:
            continue
        names = expand(layer.name)
        for name in names:
            assert flops.get(name, 0) == 2 * layer.macs // len(names), name
            checked += 1
    assert checked >= 4 * 2
    # the whole forward: the products of attention too (eager attention: q·kᵀ and w·v)
    assert sum(v for k, v in flops.items() if "." not in k) == 2 * cost.macs
    last = out.logits if hasattr(out, "logits") else out.pooler_output
    assert cost.layers[-1].outputs[0] == tuple(last.shape)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gpt-neox", "bert", *FALCONS])
def test_kept_tensors_equal_autograd_on_the_built_model(kind: str) -> None:
    """The activations shapecalc counts are those autograd keeps in a forward of the
    model shapecalc builds (its attention is torch's fused kernel)."""
    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    ours, _ = hf_model(kind)
    model = ours.evaluate() if ours.symbolic else ours
    module = build(model, device="cpu")
    for name, p in module.named_parameters():
        p.data.normal_(0, 0.02) if p.dim() > 1 else None
        del name
    cost = analyze(model, batch=2, seq_len=12)
    ids = torch.randint(2, 40, (2, 12))
    assert kept_bytes(module, [ids]) == cost.activation_bytes


# -- the command line ---------------------------------------------------------------------------
def test_gpt2_small_on_the_command_line() -> None:
    result = run(["gpt2", "--layers", "12", "--hidden", "768", "--heads", "12", "--vocab", "50257"])
    assert result.exit_code == 0, result.output
    assert "124,439,808" in result.stdout
    assert "transformer.h.{0..11}.attn.c_attn.weight" in result.stdout
    report = json.loads(
        run(
            [
                "gpt2",
                "--layers",
                "2",
                "--hidden",
                "64",
                "--heads",
                "4",
                "--vocab",
                "10",
                "--format",
                "json",
            ]
        ).stdout
    )
    rows = [p for layer in report["layers"] for p in layer["params"]]
    row = next(p for p in rows if p["name"].endswith("attn.c_attn.weight"))
    assert row["shape"] == [64, 192] and row["role"].startswith("query, key and value")


def test_explain_names_every_matrix_of_one_block() -> None:
    args = ["llama", "--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32"]
    result = run([*args, "--kv-heads", "8", "--explain"], 200)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "head_dim D = 128" in out and "grouped-query attention" in out
    assert "self_attn.k_proj.weight (1024, 4096): 4,194,304" in out
    assert "mlp.down_proj.weight (4096, 11008)" in out
    assert "fewer numbers per block" in out


def test_flops_per_token_against_the_6n_rule() -> None:
    args = ["gpt2", "--layers", "12", "--hidden", "768", "--heads", "12", "--vocab", "50257"]
    result = run([*args, "--flops", "--batch", "1", "--seq-len", "1024"], 160)
    assert result.exit_code == 0, result.output
    assert "6·N" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gpt2", "--hidden", "100", "--heads", "12"], "--heads"),
        (["llama", "--hidden", "64", "--heads", "8", "--kv-heads", "3"], "--kv-heads"),
        (["llama", "--hidden", "40", "--heads", "8"], "even"),
        (
            [
                "llama",
                "--hidden",
                "64",
                "--heads",
                "4",
                "--experts",
                "2",
                "--experts-per-token",
                "3",
            ],
            "--experts-per-token",
        ),
        (
            [
                "gpt2",
                "--hidden",
                "64",
                "--heads",
                "4",
                "--context",
                "8",
                "--shapes",
                "--seq-len",
                "9",
            ],
            "'--seq-len'",
        ),
        (["bert", "--hidden", "64", "--heads", "0"], "--heads"),
        (["llama", "--hidden", "64", "--heads", "4", "--experts", "2", "--mlp-bias"], "--mlp-bias"),
        (["llama", "--hidden", "64", "--heads", "4", "--experts-per-token", "2"], "needs experts"),
        (
            ["bert", "--hidden", "64", "--heads", "4", "--layout", "roberta", "--vocab", "1"],
            "--vocab",
        ),
        (["gpt-neox", "--hidden", "20", "--heads", "4", "--rotary-pct", "1"], "--rotary-pct"),
        (["gpt-neox", "--hidden", "64", "--heads", "4", "--rotary-pct", "2"], "--rotary-pct"),
    ],
)
def test_wrong_input_is_one_line(args: list[str], message: str) -> None:
    needed = {"--vocab": "100", "--layers": "2"}
    full = [*args, *(x for k, v in needed.items() if k not in args for x in (k, v))]
    result = run(full)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert message in result.stderr


def test_library_errors_name_the_field() -> None:
    with pytest.raises(ShapecalcError) as err:
        llama(vocab=10, hidden=64, layers=1, heads=8, kv_heads=3)
    assert err.value.field == "kv_heads"


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_recomputation_keeps_what_checkpointed_blocks_keep(kind: str) -> None:
    """With every block under torch.utils.checkpoint, the forward keeps what lies outside
    the blocks and each block's input: the forward part of the recomputation line."""
    from torch.utils.checkpoint import checkpoint

    from shapecalc.adapters.torch_bridge import build
    from tests.measure import kept_bytes

    ours, _ = hf_model(kind)
    module = build(ours, device="cpu")
    blocks = module.transformer.h if kind == "gpt2" else module.model.layers
    for block in blocks:
        forward = block.forward
        block.forward = lambda x, f=forward: checkpoint(f, x, use_reentrant=True)
    cost = analyze(ours, batch=2, seq_len=12)
    again = cost.recomputed()
    assert again is not None and again.count == 2
    ids = torch.randint(2, 40, (2, 12))
    assert kept_bytes(module, [ids]) == again.forward_bytes
    assert again.peak_bytes < cost.activation_bytes


def test_sizes_as_names_keep_the_sequence_through_attention() -> None:
    """With the hidden size a name, head_dim is the letter D; the attention still reads
    (B, T, ·) and its products grow with T², not B²."""
    model = gpt2(vocab=100, hidden="H", layers=1, heads=4)
    cost = analyze(model)
    attention = next(c for c in cost.layers if c.spec.kind == "scaled_dot_product_attention")
    assert [str(d) for d in attention.outputs[0][:2]] == ["B", "T"]
    assert "T²" in str(attention.macs) and "B²" not in str(attention.macs)


@pytest.mark.parametrize(
    ("args", "cls"),
    [
        (["gpt2", "--vocab", "50", "--hidden", "32", "--layers", "2", "--heads", "4"], "GPT2"),
        (
            [
                "llama",
                "--vocab",
                "50",
                "--hidden",
                "32",
                "--layers",
                "2",
                "--heads",
                "4",
                "--experts",
                "3",
            ],
            "MixtralForCausalLM",
        ),
        (
            [
                "llama",
                "--vocab",
                "50",
                "--hidden",
                "32",
                "--layers",
                "1",
                "--heads",
                "4",
                "--sandwich-norm",
                "--gemma-norm",
                "--activation",
                "gelu_tanh",
                "--head-dim",
                "16",
            ],
            "Gemma2",
        ),
        (
            [
                "bert",
                "--vocab",
                "50",
                "--hidden",
                "32",
                "--layers",
                "1",
                "--heads",
                "4",
                "--head",
                "mlm",
                "--layout",
                "roberta",
            ],
            "RobertaForMaskedLM",
        ),
        (
            ["gpt-neox", "--vocab", "50", "--hidden", "32", "--layers", "1", "--heads", "4"],
            "GPTNeoXForCausalLM",
        ),
        (
            [
                "phi",
                "--vocab",
                "50",
                "--hidden",
                "32",
                "--layers",
                "1",
                "--heads",
                "4",
                "--kv-heads",
                "2",
                "--qk-norm",
                "--tie-weights",
            ],
            "PhiForCausalLM",
        ),
        (
            [
                "phi",
                "--vocab",
                "50",
                "--hidden",
                "32",
                "--layers",
                "1",
                "--heads",
                "4",
                "--head",
                "none",
            ],
            "PhiModel",
        ),
        (
            [
                "starcoder2",
                "--vocab",
                "50",
                "--hidden",
                "32",
                "--layers",
                "1",
                "--heads",
                "4",
                "--kv-heads",
                "2",
                "--no-bias",
                "--no-tie-weights",
            ],
            "Starcoder2ForCausalLM",
        ),
    ],
)
def test_verify_compares_with_the_transformers_class(args: list[str], cls: str) -> None:
    result = run([*args, "--verify"])
    assert result.exit_code == 0, result.output
    assert "Verified against transformers" in result.stderr and cls in result.stderr


def test_verify_says_when_no_transformers_class_has_the_flags() -> None:
    args = ["llama", "--vocab", "50", "--hidden", "32", "--layers", "1", "--heads", "4"]
    result = run([*args, "--qk-norm", "--fused-qkv", "--fused-gate-up", "--verify"])
    assert result.exit_code == 0, result.output
    assert "no transformers class has this combination" in result.stderr


def test_verify_says_when_transformers_refuses_the_configuration() -> None:
    """transformers' Llama refuses a hidden size that is not a multiple of the heads even
    with a head_dim of its own; shapecalc counts it and verifies its own build."""
    args = ["llama", "--vocab", "10", "--hidden", "30", "--layers", "1", "--heads", "4"]
    result = run([*args, "--head-dim", "8", "--verify"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "LlamaConfig refuses this configuration" in " ".join(result.stderr.split())
    assert "names and shapes identical" in result.stderr


def test_attention_keeps_its_log_sum_exp_in_fp32() -> None:
    """In bf16, torch's attention keeps q, k, v and the output at 2 bytes and the
    log-sum-exp at 4: the kept bytes agree with autograd's saved tensors."""
    from shapecalc.layers.functional import ScaledDotProductAttention

    heads, d, b, tokens = 2, 4, 3, 8
    work = ScaledDotProductAttention(heads, heads, d).work(*[(b, tokens, heads * d)] * 3)
    rule = sum(s.nbytes(2) for s in work.saved)
    q, k, v = (
        torch.randn(b, heads, tokens, d, dtype=torch.bfloat16, requires_grad=True) for _ in range(3)
    )
    seen: list[int] = []

    def pack(t: Any) -> Any:
        seen.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert rule == sum(seen)


def _with_experts(command: str, experts: str, top_k: str | None) -> list[str]:
    """The command's example with these experts (and experts per token, if given)."""
    from shapecalc.architectures import get

    words = get(command).example.split()
    for flag in ("--experts", "--experts-per-token"):
        if flag in words:
            i = words.index(flag)
            del words[i : i + 2]
    words += ["--experts", experts]
    return [command, *words, *(["--experts-per-token", top_k] if top_k else [])]


@pytest.mark.parametrize("command", ["llama", "qwen-moe", "deepseek", "glm4-moe", "gpt-oss"])
def test_the_top_k_rule_is_one_text(command: str) -> None:
    """More experts per token than experts: one rule, worded alike in every mixture, and
    blaming experts_per_token when it was given."""
    from shapecalc.architectures._transformer import TOP_K_RULE
    from tests.test_cli import run

    result = run(_with_experts(command, "2", "3"))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"Error: Invalid value for '--experts-per-token': {command.replace('-', '_')}"
        f": {TOP_K_RULE}: experts_per_token 3 > experts 2"
    ]


@pytest.mark.parametrize(("command", "default"), [("llama", 2)])
def test_the_default_top_k_blames_the_experts(command: str, default: int) -> None:
    """The reported case: ``llama --experts 1`` blamed --experts-per-token, which the user
    never gave (its default, 2, exceeds 1)."""
    from tests.test_cli import run

    result = run(_with_experts(command, "1", None))
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: Invalid value for '--experts':"), line
    assert f"experts 1 < experts_per_token {default} (its default)" in line
    assert "give --experts-per-token 1 or fewer" in line
