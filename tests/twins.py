"""Torch twins: every architecture written by hand in PyTorch, independently of the engine,
with the names its users know. ``TWINS[command](config)`` builds the twin of a
configuration on the meta device (allocating nothing); tests/test_architectures.py
compares every name, shape and total with the model shapecalc describes.

Adding an architecture adds its twin here (tests/test_architectures.py fails without it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class TorchLM(nn.Module):  # type: ignore[misc]
    """The recurrent language model written by hand in PyTorch, independently of the engine."""

    def __init__(
        self,
        vocab: int,
        hidden: int,
        layers: int = 1,
        embed_dim: int | None = None,
        one_hot: bool = False,
        bias: bool = True,
        bidirectional: bool = False,
        proj_size: int = 0,
        tie_weights: bool = False,
        dropout: float = 0.0,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
    ) -> None:
        super().__init__()
        embed = embed_dim or hidden
        if not one_hot:
            self.embedding = nn.Embedding(vocab, embed, device="meta")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            extra: dict[str, Any] = {"proj_size": proj_size} if cell == "lstm" else {}
            if cell == "rnn":
                extra["nonlinearity"] = nonlinearity
            rnn = getattr(nn, cell.upper())(
                vocab if one_hot else embed,
                hidden,
                num_layers=layers,
                bias=bias,
                dropout=dropout,
                bidirectional=bidirectional,
                device="meta",
                **extra,
            )
            setattr(self, cell, rnn)  # registered before the head, as in the spec
        directions = 2 if bidirectional else 1
        self.head = nn.Linear(directions * (proj_size or hidden), vocab, bias=bias, device="meta")
        if tie_weights:
            self.head.weight = self.embedding.weight


def recurrent_twin(cell: str) -> Callable[[Any], Any]:
    def make(config: Any) -> Any:
        args = config.arguments()
        args.pop("batch_first")
        return TorchLM(**args, cell=cell)

    return make


def mlp_twin(config: Any) -> Any:
    """The multilayer perceptron as torch users write it: Linear, activation, dropout."""
    activation = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    activation["silu"] = nn.SiLU
    layers: list[Any] = []
    width = config.inputs
    for _ in range(config.layers):
        layers += [nn.Linear(width, config.hidden, bias=config.bias, device="meta")]
        layers.append(activation[config.activation]())
        if config.dropout:
            layers.append(nn.Dropout(config.dropout))
        width = config.hidden
    layers.append(nn.Linear(width, config.outputs, bias=config.bias, device="meta"))
    return nn.Sequential(*layers)


# -- transformers: the classes of Hugging Face transformers, built from their configs ----------
def hf() -> Any:
    """The transformers package, quiet (its configs warn of token ids out of a small
    vocabulary)."""
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    return transformers


def on_meta(model_class: Any, config: Any) -> Any:
    with torch.device("meta"):
        return model_class(config)


def gpt2_twin(c: Any) -> Any:
    t = hf()
    config = t.GPT2Config(
        vocab_size=c.vocab,
        n_embd=c.hidden,
        n_layer=c.layers,
        n_head=c.heads,
        n_positions=c.context,
        n_inner=c.intermediate,
        tie_word_embeddings=c.tie_weights,
    )
    return on_meta(t.GPT2LMHeadModel if c.head == "lm" else t.GPT2Model, config)


def gpt_neox_twin(c: Any) -> Any:
    t = hf()
    config = t.GPTNeoXConfig(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        intermediate_size=c.intermediate or 4 * c.hidden,
        rotary_pct=c.rotary_pct,
        use_parallel_residual=c.parallel_residual,
        attention_bias=c.attention_bias,
        tie_word_embeddings=c.tie_weights,
    )
    return on_meta(t.GPTNeoXForCausalLM if c.head == "lm" else t.GPTNeoXModel, config)


def falcon_twin(c: Any) -> Any:
    t = hf()
    norms = {"auto": None, "one": 1, "two": 2}[c.parallel_norms]
    config = t.FalconConfig(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_kv_heads=c.kv_heads,
        ffn_hidden_size=c.intermediate,
        new_decoder_architecture=c.new_decoder_architecture,
        multi_query=c.multi_query,
        parallel_attn=c.parallel_attn,
        num_ln_in_parallel_attn=norms,
        bias=c.bias,
        alibi=c.alibi,
        tie_word_embeddings=c.tie_weights,
    )
    return on_meta(t.FalconForCausalLM if c.head == "lm" else t.FalconModel, config)


def bert_twin(c: Any) -> Any:
    t = hf()
    roberta = c.layout == "roberta"
    config = (t.RobertaConfig if roberta else t.BertConfig)(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        intermediate_size=c.intermediate or 4 * c.hidden,
        max_position_embeddings=c.context + (2 if roberta else 0),
        type_vocab_size=c.type_vocab or (1 if roberta else 2),
        tie_word_embeddings=c.tie_weights,
        pad_token_id=min(1 if roberta else 0, c.vocab - 1),
    )
    if c.head != "none":
        suffix = {
            "mlm": "ForMaskedLM",
            "pretraining": "ForPreTraining",
            "nsp": "ForNextSentencePrediction",
            "seq-cls": "ForSequenceClassification",
            "token-cls": "ForTokenClassification",
            "qa": "ForQuestionAnswering",
            "multiple-choice": "ForMultipleChoice",
        }[c.head]
        config.num_labels = c.labels or 2
        return on_meta(getattr(t, ("Roberta" if roberta else "Bert") + suffix), config)
    model_class = t.RobertaModel if roberta else t.BertModel
    with torch.device("meta"):
        return model_class(config, add_pooling_layer=c.pooler)


def llama_sizes(c: Any) -> dict[str, int]:
    """A LLaMA configuration's sizes, worked out as Meta's code does: the intermediate
    size 8·H/3 rounded up to a multiple of 256."""
    inner = c.intermediate or 256 * -(-int(2 * 4 * c.hidden / 3) // 256)
    return {
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads or c.heads,
        "head_dim": c.head_dim or c.hidden // c.heads,
        "intermediate_size": inner,
    }


def llama_twin(c: Any, prefix: str = "Llama") -> Any:
    """LlamaForCausalLM, with each feature Llama lacks taken from the family member that
    has it: Qwen2's q, k and v biases (no o_proj bias), Qwen3's q_norm and k_norm, Gemma
    2's four norms, Phi-3's fused projections (o_proj registered first), Mixtral's sparse
    block, or the checkpoint files' experts.{e}.w1/w2/w3."""
    t = hf()
    sizes = llama_sizes(c)
    config = getattr(t, f"{prefix}Config")(
        **sizes,
        attention_bias=c.attention_bias == "all",
        mlp_bias=c.mlp_bias,
        tie_word_embeddings=c.tie_weights,
    )
    model = on_meta(getattr(t, f"{prefix}ForCausalLM"), config)
    h, i, d = sizes["hidden_size"], sizes["intermediate_size"], sizes["head_dim"]
    q, kv = sizes["num_attention_heads"] * d, sizes["num_key_value_heads"] * d
    qkv_bias = c.attention_bias != "none"

    def linear(n_in: int, n_out: int, bias: bool) -> Any:
        return nn.Linear(n_in, n_out, bias=bias, device="meta")

    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        if c.fused_qkv:
            o_bias = attn.o_proj.bias is not None
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                delattr(attn, name)
            attn.o_proj = linear(q, h, o_bias)
            attn.qkv_proj = linear(h, q + 2 * kv, qkv_bias)
        elif c.attention_bias == "qkv":
            attn.q_proj, attn.k_proj = linear(h, q, True), linear(h, kv, True)
            attn.v_proj = linear(h, kv, True)
        if c.qk_norm:
            attn.q_norm = nn.RMSNorm(d, device="meta")
            attn.k_norm = nn.RMSNorm(d, device="meta")
        if c.fused_gate_up:
            for name in ("gate_proj", "up_proj", "down_proj"):
                delattr(mlp, name)
            mlp.gate_up_proj = linear(h, 2 * i, c.mlp_bias)
            mlp.down_proj = linear(i, h, c.mlp_bias)
        if c.experts:
            modules = dict(layer._modules)
            name, moe = (
                ("mlp", mixtral_block(c, h, i))
                if c.moe_layout == "fused"
                else (
                    "block_sparse_moe",
                    checkpoint_block(c.experts, h, i),
                )
            )
            layer._modules.clear()
            for key, module in modules.items():
                layer.add_module(name if key == "mlp" else key, moe if key == "mlp" else module)
        if c.sandwich_norm:
            layer.pre_feedforward_layernorm = nn.RMSNorm(h, device="meta")
            layer.post_feedforward_layernorm = nn.RMSNorm(h, device="meta")
    return model if c.head == "lm" else model.model


def mixtral_block(c: Any, hidden: int, inner: int) -> Any:
    """Mixtral's sparse MLP, as transformers builds it."""
    t = hf()
    config = t.MixtralConfig(
        vocab_size=8,
        hidden_size=hidden,
        intermediate_size=inner,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        num_local_experts=c.experts,
        num_experts_per_tok=c.experts_per_token or 2,
    )
    return on_meta(t.MixtralForCausalLM, config).model.layers[0].mlp


def checkpoint_block(experts: int, hidden: int, inner: int) -> Any:
    """A mixture of experts as Mixtral's checkpoint files name it: block_sparse_moe.gate,
    block_sparse_moe.experts.{e}.w1 (gate), w2 (down) and w3 (up)."""
    block = nn.Module()
    block.gate = nn.Linear(hidden, experts, bias=False, device="meta")
    block.experts = nn.ModuleList()
    for _ in range(experts):
        expert = nn.Module()
        expert.w1 = nn.Linear(hidden, inner, bias=False, device="meta")
        expert.w2 = nn.Linear(inner, hidden, bias=False, device="meta")
        expert.w3 = nn.Linear(hidden, inner, bias=False, device="meta")
        block.experts.append(expert)
    return block


def olmo2_twin(c: Any) -> Any:
    """Olmo2ForCausalLM: norms after attention and MLP, q and k norms over all heads."""
    t = hf()
    sizes = llama_sizes(c)
    config = t.Olmo2Config(
        **sizes,
        attention_bias=c.attention_bias,
        tie_word_embeddings=c.tie_weights,
        pad_token_id=0,
    )
    return on_meta(t.Olmo2ForCausalLM if c.head == "lm" else t.Olmo2Model, config)


def granite_twin(c: Any) -> Any:
    """GraniteForCausalLM: LLaMA's tensors (its multipliers hold none), with each feature
    Granite lacks taken from the family member that has it, as for LLaMA."""
    return llama_twin(c, "Granite")


def cohere_twin(c: Any) -> Any:
    """CohereForCausalLM: one bias-free LayerNorm, attention and MLP side by side, per-head
    q and k norms with use_qk_norm."""
    t = hf()
    config = t.CohereConfig(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_key_value_heads=c.kv_heads or c.heads,
        head_dim=c.head_dim or c.hidden // c.heads,
        intermediate_size=c.intermediate or 4 * c.hidden,
        attention_bias=c.attention_bias,
        use_qk_norm=c.qk_norm,
        tie_word_embeddings=c.tie_weights,
        pad_token_id=0,
    )
    return on_meta(t.CohereForCausalLM if c.head == "lm" else t.CohereModel, config)


def _kinds(c: Any) -> list[str] | None:
    """layer_types, a pattern repeated to every layer; None: the type's own rule."""
    kinds = c.kinds_of("layer_types", c.layers)
    return None if kinds is None else list(kinds)


def gemma3_twin(c: Any) -> Any:
    """Gemma3ForCausalLM (Gemma3TextModel without a head); with the head ``vision``,
    Gemma3ForConditionalGeneration, its SigLIP tower written from the fields."""
    t = hf()
    text = {
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads or c.heads,
        "head_dim": c.head_dim or c.hidden // c.heads,
        "intermediate_size": c.intermediate or 4 * c.hidden,
        "attention_bias": c.attention_bias,
        "sliding_window": c.sliding_window,
        "layer_types": _kinds(c),
        "pad_token_id": 0,
    }
    if c.head == "vision":
        vision = {
            "hidden_size": c.vision_hidden,
            "num_hidden_layers": c.vision_layers,
            "num_attention_heads": c.vision_heads,
            "intermediate_size": c.vision_intermediate,
            "image_size": c.image_size,
            "patch_size": c.patch_size,
            "num_channels": c.channels,
            "hidden_act": c.vision_activation,
            "vision_use_head": c.vision_head,
        }
        config = t.Gemma3Config(
            text_config=text,
            vision_config=vision,
            tie_word_embeddings=c.tie_weights,
            mm_tokens_per_image=c.image_tokens,
        )
        return on_meta(t.Gemma3ForConditionalGeneration, config)
    config = t.Gemma3TextConfig(**text, tie_word_embeddings=c.tie_weights)
    if c.head == "seq-cls":
        config.num_labels = c.labels or 2
    cls = {"lm": "Gemma3ForCausalLM", "none": "Gemma3TextModel"}
    return on_meta(getattr(t, cls.get(c.head, "Gemma3TextForSequenceClassification")), config)


def cohere2_twin(c: Any) -> Any:
    """Cohere2ForCausalLM (Cohere2Model without a head): Command R's block, sliding and
    global layers."""
    t = hf()
    config = t.Cohere2Config(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_key_value_heads=c.kv_heads or c.heads,
        head_dim=c.head_dim or c.hidden // c.heads,
        intermediate_size=c.intermediate or 4 * c.hidden,
        attention_bias=c.attention_bias,
        sliding_window=c.sliding_window,
        layer_types=_kinds(c),
        tie_word_embeddings=c.tie_weights,
        pad_token_id=0,
    )
    return on_meta(t.Cohere2ForCausalLM if c.head == "lm" else t.Cohere2Model, config)


# -- the task heads of the decoders, written by hand around the body's twin
class _TaskModel(nn.Module):  # type: ignore[misc]
    """A body under its name, then a head (registered in this order)."""

    def __init__(self, base: str, body: Any, name: str, head: Any) -> None:
        super().__init__()
        setattr(self, base, body)
        setattr(self, name, head)


def with_task_heads(
    twin: Callable[[Any], Any], base: str, classifier: str = "score"
) -> Callable[[Any], Any]:
    """``twin`` with transformers' task heads: seq-cls a bias-free ``score`` (labels × H),
    token-cls ``classifier`` (``score`` in the LLaMA-style families) with a bias, qa
    ``qa_outputs`` (2 × H) with a bias, the body named ``qa_body`` where the config has one."""

    def make(c: Any) -> Any:
        model = twin(c)
        if c.head in ("lm", "none"):
            return model
        labels = c.labels or 2
        if c.head == "seq-cls":
            return _TaskModel(base, model, "score", _linear(c.hidden, labels, False))
        if c.head == "token-cls":
            return _TaskModel(base, model, classifier, _linear(c.hidden, labels))
        return _TaskModel(getattr(c, "qa_body", base), model, "qa_outputs", _linear(c.hidden, 2))

    return make


#: command -> a function of the architecture's configuration giving its torch twin


# -- Phi and StarCoder2: written by hand in torch, as their papers and transformers lay them out
def _linear(n_in: int, n_out: int, bias: bool = True) -> Any:
    return nn.Linear(n_in, n_out, bias=bias, device="meta")


def _norm(width: int) -> Any:
    return nn.LayerNorm(width, device="meta")


class _Attention(nn.Module):  # type: ignore[misc]
    """q, k and v projections (k and v for the kv heads), an output projection, and
    optionally a LayerNorm of head_dim on queries and keys; registered in this order."""

    def __init__(self, c: Any, out_name: str, bias: bool, qk_norm: bool = False) -> None:
        super().__init__()
        d = c.hidden // c.heads
        kv = (c.kv_heads or c.heads) * d
        self.q_proj = _linear(c.hidden, c.heads * d, bias)
        self.k_proj = _linear(c.hidden, kv, bias)
        self.v_proj = _linear(c.hidden, kv, bias)
        setattr(self, out_name, _linear(c.heads * d, c.hidden, bias))
        if qk_norm:
            self.q_layernorm = _norm(d)
            self.k_layernorm = _norm(d)


class _Decoder(nn.Module):  # type: ignore[misc]
    """A token embedding, a list of layers and a final norm (the body of a causal LM)."""

    def __init__(self, c: Any, layer: Callable[[], Any], final: str, dropout: bool) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab, c.hidden, device="meta")
        self.layers = nn.ModuleList([layer() for _ in range(c.layers)])
        if dropout:
            self.embed_dropout = nn.Dropout(c.dropout)
        setattr(self, final, _norm(c.hidden))


class _CausalLM(nn.Module):  # type: ignore[misc]
    def __init__(self, c: Any, body: Any, bias: bool) -> None:
        super().__init__()
        self.model = body
        self.lm_head = _linear(c.hidden, c.vocab, bias)
        if c.tie_weights:
            self.lm_head.weight = body.embed_tokens.weight


def phi_twin(c: Any) -> Any:
    """Phi-1/1.5/2: one LayerNorm per layer read by attention and the MLP side by side,
    biases everywhere, a head with a bias."""
    inner = c.intermediate or 4 * c.hidden

    def layer() -> Any:
        block = nn.Module()
        block.self_attn = _Attention(c, "dense", True, c.qk_norm)
        block.mlp = nn.Module()
        block.mlp.fc1 = _linear(c.hidden, inner)
        block.mlp.fc2 = _linear(inner, c.hidden)
        block.input_layernorm = _norm(c.hidden)
        block.resid_dropout = nn.Dropout(c.dropout)
        return block

    body = _Decoder(c, layer, "final_layernorm", dropout=True)
    return _CausalLM(c, body, bias=True) if c.head == "lm" else body


def starcoder2_twin(c: Any) -> Any:
    """StarCoder2: LayerNorm, attention, LayerNorm, MLP; projections biased with use_bias."""
    inner = c.intermediate or 4 * c.hidden

    def layer() -> Any:
        block = nn.Module()
        block.self_attn = _Attention(c, "o_proj", c.bias)
        block.mlp = nn.Module()
        block.mlp.c_fc = _linear(c.hidden, inner, c.bias)
        block.mlp.c_proj = _linear(inner, c.hidden, c.bias)
        block.input_layernorm = _norm(c.hidden)
        block.post_attention_layernorm = _norm(c.hidden)
        return block

    body = _Decoder(c, layer, "norm", dropout=False)
    return _CausalLM(c, body, bias=False) if c.head == "lm" else body


def gpt_oss_twin(c: Any) -> Any:
    """GptOssForCausalLM (or GptOssModel) of transformers; in the checkpoint layout its
    experts hold what the Hub's MXFP4 checkpoints store, as transformers' mxfp4
    integration reads and writes them: each projection's ``_blocks`` (E, rows, cols / 32,
    16) and ``_scales`` (E, rows, cols / 32), uint8, before its bias."""
    t = hf()
    config = t.GptOssConfig(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_key_value_heads=c.kv_heads or c.heads,
        head_dim=c.head_dim or c.hidden // c.heads,
        intermediate_size=c.intermediate,
        num_local_experts=c.experts,
        num_experts_per_tok=c.top_k,
        attention_bias=c.attention_bias,
        tie_word_embeddings=c.tie_weights,
        pad_token_id=0,
    )
    model = on_meta(t.GptOssForCausalLM if c.head == "lm" else t.GptOssModel, config)
    if c.moe_layout == "checkpoint":
        body = model.model if c.head == "lm" else model
        e, h, i = c.experts, c.hidden, c.intermediate

        def packed(*shape: int) -> Any:
            return nn.Parameter(torch.empty(*shape, dtype=torch.uint8, device="meta"), False)

        for layer in body.layers:
            experts = nn.Module()
            for name, rows, cols in (("gate_up_proj", 2 * i, h), ("down_proj", h, i)):
                setattr(experts, f"{name}_blocks", packed(e, rows, cols // 32, 16))
                setattr(experts, f"{name}_scales", packed(e, rows, cols // 32))
                bias = getattr(layer.mlp.experts, f"{name}_bias")
                setattr(experts, f"{name}_bias", bias)
            layer.mlp.experts = experts
    return model


# -- Qwen's mixtures of experts, written by hand in torch as transformers lays them out
def _gated(hidden: int, inner: int) -> Any:
    mlp = nn.Module()
    mlp.gate_proj = _linear(hidden, inner, False)
    mlp.up_proj = _linear(hidden, inner, False)
    mlp.down_proj = _linear(inner, hidden, False)
    return mlp


def qwen_moe_twin(c: Any) -> Any:
    """Qwen2-MoE / Qwen3-MoE: layer i has experts unless it is in mlp_only_layers, when
    there are experts and (i + 1) % decoder_sparse_step == 0; the router ``gate`` (E, H)
    registered before the experts with a shared expert (Qwen2-MoE), after without
    (Qwen3-MoE)."""
    h, d = c.hidden, c.head_dim or c.hidden // c.heads
    kv = c.kv_heads or c.heads

    def experts() -> Any:
        e, m = c.experts, c.moe_intermediate
        if c.moe_layout == "fused":
            fused = nn.Module()
            fused.gate_up_proj = nn.Parameter(torch.empty(e, 2 * m, h, device="meta"))
            fused.down_proj = nn.Parameter(torch.empty(e, h, m, device="meta"))
            return fused
        return nn.ModuleList([_gated(h, m) for _ in range(e)])

    def layer(i: int) -> Any:
        block = nn.Module()
        attn = block.self_attn = nn.Module()
        qkv, o = c.attention_bias != "none", c.attention_bias == "all"
        attn.q_proj = _linear(h, c.heads * d, qkv)
        attn.k_proj = _linear(h, kv * d, qkv)
        attn.v_proj = _linear(h, kv * d, qkv)
        attn.o_proj = _linear(c.heads * d, h, o)
        if c.qk_norm:
            attn.q_norm = nn.RMSNorm(d, device="meta")
            attn.k_norm = nn.RMSNorm(d, device="meta")
        sparse = i not in c.dense_layers and c.experts > 0 and (i + 1) % c.sparse_step == 0
        if sparse:
            moe = block.mlp = nn.Module()
            gate = nn.Module()
            gate.weight = nn.Parameter(torch.empty(c.experts, h, device="meta"))
            if c.shared_intermediate:
                moe.gate, moe.experts = gate, experts()
                moe.shared_expert = _gated(h, c.shared_intermediate)
                moe.shared_expert_gate = _linear(h, 1, False)
            else:
                moe.experts, moe.gate = experts(), gate
        else:
            block.mlp = _gated(h, c.intermediate)
        block.input_layernorm = nn.RMSNorm(h, device="meta")
        block.post_attention_layernorm = nn.RMSNorm(h, device="meta")
        return block

    body = nn.Module()
    body.embed_tokens = nn.Embedding(c.vocab, h, device="meta")
    body.layers = nn.ModuleList([layer(i) for i in range(c.layers)])
    body.norm = nn.RMSNorm(h, device="meta")
    if c.head != "lm":
        return body
    model = nn.Module()
    model.model = body
    model.lm_head = _linear(h, c.vocab, False)
    if c.tie_weights:
        model.lm_head.weight = body.embed_tokens.weight
    return model


def t5_twin(c: Any) -> Any:
    """T5ForConditionalGeneration, T5Model or T5EncoderModel (UMT5's with a bias in every
    block), as transformers builds them."""
    t = hf()
    config = t.T5Config(
        vocab_size=c.vocab,
        d_model=c.hidden,
        num_layers=c.layers,
        num_decoder_layers=c.decoder_layers,
        num_heads=c.heads,
        d_kv=c.head_dim,
        d_ff=c.intermediate or 4 * c.hidden,
        relative_attention_num_buckets=c.buckets,
        feed_forward_proj=c.feed_forward,
        dropout_rate=c.dropout,
    )
    if c.labels is not None:  # the task heads' (transformers' default otherwise)
        config.num_labels = c.labels
    prefix = "UMT5" if c.position_bias == "every" else "T5"
    if prefix == "UMT5":
        config = t.UMT5Config(**config.to_dict())
    suffix = {
        "lm": "ForConditionalGeneration",
        "none": "Model",
        "encoder": "EncoderModel",
        "seq-cls": "ForSequenceClassification",
        "token-cls": "ForTokenClassification",
        "qa": "ForQuestionAnswering",
    }[c.head]
    return on_meta(getattr(t, prefix + suffix), config)


def bart_twin(c: Any) -> Any:
    """(M)BartForConditionalGeneration or (M)BartModel, as transformers builds them."""
    t = hf()
    prefix = "MBart" if c.layout == "mbart" else "Bart"
    inner = c.intermediate or 4 * c.hidden
    config = getattr(t, prefix + "Config")(
        vocab_size=c.vocab,
        d_model=c.hidden,
        encoder_layers=c.layers,
        decoder_layers=c.decoder_layers or c.layers,
        encoder_attention_heads=c.heads,
        decoder_attention_heads=c.decoder_heads or c.heads,
        encoder_ffn_dim=inner,
        decoder_ffn_dim=c.decoder_intermediate or inner,
        max_position_embeddings=c.context,
        activation_function=c.activation,
        tie_word_embeddings=c.tie_weights,
        dropout=c.dropout,
        pad_token_id=1,
    )
    if c.labels is not None:  # the classification head's (the config class's default otherwise)
        config.num_labels = c.labels
    suffix = {
        "lm": "ForConditionalGeneration",
        "none": "Model",
        "seq-cls": "ForSequenceClassification",
        "qa": "ForQuestionAnswering",
    }[c.head]
    return on_meta(getattr(t, prefix + suffix), config)


def whisper_twin(c: Any) -> Any:
    """WhisperForConditionalGeneration, WhisperModel, WhisperForAudioClassification or
    WhisperForCausalLM, as transformers builds them."""
    t = hf()
    inner = c.intermediate or 4 * c.hidden
    config = t.WhisperConfig(
        vocab_size=c.vocab,
        d_model=c.hidden,
        num_mel_bins=c.mel_bins,
        encoder_layers=c.layers,
        decoder_layers=c.decoder_layers or c.layers,
        encoder_attention_heads=c.heads,
        decoder_attention_heads=c.decoder_heads or c.heads,
        encoder_ffn_dim=inner,
        decoder_ffn_dim=c.decoder_intermediate or inner,
        max_source_positions=c.source_positions,
        max_target_positions=c.target_positions,
        activation_function=c.activation,
        tie_word_embeddings=c.tie_weights,
        dropout=c.dropout,
        pad_token_id=0,
        num_labels=c.labels or 2,
        use_weighted_layer_sum=c.weighted_layer_sum,
    )
    if c.classifier_proj is not None:  # WhisperConfig's default otherwise
        config.classifier_proj_size = c.classifier_proj
    suffix = {
        "lm": "ForConditionalGeneration",
        "none": "Model",
        "classify": "ForAudioClassification",
        "causal": "ForCausalLM",
    }[c.head]
    return on_meta(getattr(t, "Whisper" + suffix), config)


def qwen2_vl_twin(c: Any) -> Any:
    """Qwen2VLForConditionalGeneration or Qwen2_5_VLForConditionalGeneration (or *Model),
    built by transformers from the sizes (its vision_config and text_config)."""
    t = hf()
    prefix = {"2": "Qwen2VL", "2.5": "Qwen2_5_VL"}[c.version]
    text = {
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads or c.heads,
        "intermediate_size": c.intermediate,
    }
    inner = c.vision_intermediate or 4 * c.vision_hidden
    out = c.vision_out or c.hidden
    vision: dict[str, Any] = {
        "depth": c.vision_layers,
        "num_heads": c.vision_heads,
        "in_channels": c.channels,
        "patch_size": c.patch_size,
        "temporal_patch_size": c.temporal_patch,
        "spatial_merge_size": c.merge_size,
    }
    if c.version == "2":
        vision |= {"embed_dim": c.vision_hidden, "mlp_ratio": inner // c.vision_hidden}
        vision |= {"hidden_size": out}
    else:
        vision |= {"hidden_size": c.vision_hidden, "intermediate_size": inner}
        vision |= {"out_hidden_size": out, "fullatt_block_indexes": list(c.fullatt_blocks)}
    config = getattr(t, f"{prefix}Config")(
        text_config=text, vision_config=vision, tie_word_embeddings=c.tie_weights
    )
    name = f"{prefix}ForConditionalGeneration" if c.head == "lm" else f"{prefix}Model"
    return on_meta(getattr(t, name), config)


def pixtral_twin(c: Any) -> Any:
    """PixtralVisionModel, built by transformers from the sizes."""
    t = hf()
    config = t.PixtralVisionConfig(
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        intermediate_size=c.intermediate,
        num_channels=c.channels,
        patch_size=c.patch_size,
        image_size=c.image_size,
    )
    return on_meta(t.PixtralVisionModel, config)


def mistral3_twin(c: Any) -> Any:
    """Mistral3ForConditionalGeneration (or Mistral3Model), built by transformers from the
    sizes: a Pixtral vision_config and a Mistral (or Llama) text_config."""
    t = hf()
    text = {
        "model_type": c.text_type,
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads or c.heads,
        "head_dim": c.head_dim or c.hidden // c.heads,
        "intermediate_size": c.intermediate,
    }
    vision = {
        "model_type": "pixtral",
        "hidden_size": c.vision_hidden,
        "num_hidden_layers": c.vision_layers,
        "num_attention_heads": c.vision_heads,
        "intermediate_size": c.vision_intermediate,
        "num_channels": c.vision_channels,
        "patch_size": c.vision_patch_size,
    }
    config = t.Mistral3Config(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=c.tie_weights,
        spatial_merge_size=c.merge_size,
        multimodal_projector_bias=c.projector_bias,
        vision_feature_layer=-1 if c.feature_layers == 1 else [-1] * c.feature_layers,
    )
    name = "Mistral3ForConditionalGeneration" if c.head == "lm" else "Mistral3Model"
    return on_meta(getattr(t, name), config)


def mllama_twin(c: Any) -> Any:
    """MllamaForConditionalGeneration (or MllamaModel), built by transformers from the
    sizes: an mllama_vision_model vision_config and an mllama_text_model text_config,
    written here field by field."""
    t = hf()
    layers = c.layers
    cross = list(c.cross_layers) or [i for i in (3, 8, 13, 18, 23, 28, 33, 38) if i < layers]
    default_ratios = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]
    ratios = [[1, i + 1] for i in range(c.aspect_ratios)]
    if c.tiles == 4 and c.aspect_ratios == 8:
        ratios = default_ratios
    text = {
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads or c.heads,
        "intermediate_size": c.intermediate,
        "cross_attention_layers": cross,
        "pad_token_id": 0,
    }
    vision = {
        "hidden_size": c.vision_hidden,
        "num_hidden_layers": c.vision_layers,
        "num_global_layers": c.global_layers,
        "attention_heads": c.vision_heads,
        "intermediate_size": c.vision_intermediate,
        "num_channels": c.channels,
        "image_size": c.image_size,
        "patch_size": c.patch_size,
        "max_num_tiles": c.tiles,
        "vision_output_dim": c.vision_hidden * (c.feature_layers + 1),
        "intermediate_layers_indices": list(range(c.feature_layers)),
        "supported_aspect_ratios": ratios,
    }
    config = t.MllamaConfig(text_config=text, vision_config=vision)
    name = "MllamaForConditionalGeneration" if c.head == "lm" else "MllamaModel"
    return on_meta(getattr(t, name), config)


TWINS: dict[str, Callable[[Any], Any]] = {
    "gpt-oss": with_task_heads(gpt_oss_twin, "model"),
    "lstm": recurrent_twin("lstm"),
    "gru": recurrent_twin("gru"),
    "rnn": recurrent_twin("rnn"),
    "mlp": mlp_twin,
    "gpt2": with_task_heads(gpt2_twin, "transformer", "classifier"),
    "gpt-neox": with_task_heads(gpt_neox_twin, "gpt_neox", "classifier"),
    "falcon": with_task_heads(falcon_twin, "transformer", "classifier"),
    "bert": bert_twin,
    "llama": with_task_heads(llama_twin, "model"),
    "olmo2": with_task_heads(olmo2_twin, "model"),
    "granite": granite_twin,
    "cohere": cohere_twin,
    "cohere2": cohere2_twin,
    "gemma3": gemma3_twin,
    "qwen2-vl": qwen2_vl_twin,
    "pixtral": pixtral_twin,
    "mistral3": mistral3_twin,
    "mllama": mllama_twin,
    "phi": with_task_heads(phi_twin, "model"),
    "starcoder2": with_task_heads(starcoder2_twin, "model"),
    "qwen-moe": with_task_heads(qwen_moe_twin, "model"),
}

from tests.twins_vision import VISION_TWINS  # noqa: E402 (uses hf and on_meta above)

TWINS.update(VISION_TWINS)


# -- CLIP and SigLIP: transformers' classes on the meta device, their configs written here
#    field by field
def _dual_twin(family: str) -> Callable[[Any], Any]:
    """CLIPModel / SiglipModel, or one tower (with its projection, CLIP's), from the
    text and vision configs written from the architecture's fields."""

    def make(c: Any) -> Any:
        t = hf()
        text = {
            "vocab_size": c.vocab,
            "hidden_size": c.hidden,
            "num_hidden_layers": c.layers,
            "num_attention_heads": c.heads,
            "intermediate_size": c.intermediate,
            "max_position_embeddings": c.context,
            "hidden_act": c.activation,
        }
        vision = {
            "hidden_size": c.vision_hidden,
            "num_hidden_layers": c.vision_layers,
            "num_attention_heads": c.vision_heads,
            "intermediate_size": c.vision_intermediate,
            "image_size": c.image_size,
            "patch_size": c.patch_size,
            "num_channels": c.channels,
            "hidden_act": c.vision_activation,
        }
        if family == "CLIP":
            text["projection_dim"] = vision["projection_dim"] = c.projection
            classes = {
                "model": "CLIPModel",
                "text": "CLIPTextModel",
                "text-projection": "CLIPTextModelWithProjection",
                "vision": "CLIPVisionModel",
                "vision-projection": "CLIPVisionModelWithProjection",
            }
        else:
            text["projection_size"] = c.projection
            vision["vision_use_head"] = c.vision_head
            classes = {
                "model": "SiglipModel",
                "text": "SiglipTextModel",
                "vision": "SiglipVisionModel",
            }
        cls = getattr(t, classes[c.part])
        if c.part == "model":
            config = getattr(t, f"{family}Config")(
                text_config=text,
                vision_config=vision,
                **({"projection_dim": c.projection} if family == "CLIP" else {}),
            )
        elif c.part.startswith("text"):
            config = getattr(t, f"{family}TextConfig")(**text)
        else:
            config = getattr(t, f"{family}VisionConfig")(**vision)
        return on_meta(cls, config)

    return make


TWINS["clip"] = _dual_twin("CLIP")
TWINS["siglip"] = _dual_twin("Siglip")


def llava_twin(c: Any) -> Any:
    """LlavaForConditionalGeneration / LlavaNextForConditionalGeneration (or the model
    alone), a CLIP vision tower and a text model of text_type, written field by field."""
    t = hf()
    text = {
        "model_type": c.text_type,
        "pad_token_id": None,
        "tie_word_embeddings": c.tie_weights,
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads or c.heads,
        "head_dim": c.head_dim or c.hidden // c.heads,
        "intermediate_size": c.intermediate,
        "attention_bias": c.attention_bias == "all",
        "mlp_bias": c.mlp_bias,
    }
    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": c.vision_hidden,
        "num_hidden_layers": c.vision_layers,
        "num_attention_heads": c.vision_heads,
        "intermediate_size": c.vision_intermediate,
        "image_size": c.image_size,
        "patch_size": c.patch_size,
        "num_channels": c.channels,
        "hidden_act": c.vision_activation,
    }
    prefix = "LlavaNext" if c.variant == "next" else "Llava"
    config = getattr(t, f"{prefix}Config")(
        text_config=text,
        vision_config=vision,
        vision_feature_layer=-2 if c.feature_layers == 1 else list(range(-c.feature_layers, 0)),
        multimodal_projector_bias=c.projector_bias,
        tie_word_embeddings=c.tie_weights,
    )
    name = f"{prefix}ForConditionalGeneration" if c.head == "lm" else f"{prefix}Model"
    return on_meta(getattr(t, name), config)


TWINS["llava"] = llava_twin


# -- DeepSeek-V2/V3 and GLM-4.5: transformers' classes on the meta device, from configs
#    written here field by field
def _checkpoint_experts(model: Any, c: Any) -> Any:
    """The checkpoint files' experts: mlp.experts.{e}.gate_proj/up_proj/down_proj, each a
    bias-free Linear, in the place of the fused experts."""
    if c.moe_layout == "fused":
        return model
    for module in list(model.modules()):
        fused = module._modules.get("experts")
        if fused is None or not hasattr(fused, "gate_up_proj"):
            continue
        experts = nn.ModuleList()
        for _ in range(c.experts):
            expert = nn.Module()
            expert.gate_proj = _linear(c.hidden, c.moe_intermediate, False)
            expert.up_proj = _linear(c.hidden, c.moe_intermediate, False)
            expert.down_proj = _linear(c.moe_intermediate, c.hidden, False)
            experts.append(expert)
        module._modules["experts"] = experts
    return model


def _mixture_fields(c: Any) -> dict[str, Any]:
    return {
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "intermediate_size": c.intermediate,
        "moe_intermediate_size": c.moe_intermediate,
        "n_routed_experts": c.experts,
        "num_experts_per_tok": c.experts_per_token,
        "n_shared_experts": c.shared_experts,
        "first_k_dense_replace": c.dense_layers,
        "n_group": c.expert_groups or 1,
        "topk_group": c.topk_groups or 1,
        "tie_word_embeddings": c.tie_weights,
        "num_labels": c.n_labels if hasattr(c, "labels") else 2,
        "pad_token_id": 0,
    }


def deepseek_twin(c: Any) -> Any:
    """DeepseekV3ForCausalLM (with the correction bias) or DeepseekV2ForCausalLM."""
    t = hf()
    prefix = "DeepseekV3" if c.correction_bias else "DeepseekV2"
    fields = {
        **_mixture_fields(c),
        "num_key_value_heads": c.heads,
        "q_lora_rank": c.q_lora_rank,
        "kv_lora_rank": c.kv_lora_rank,
        "qk_nope_head_dim": c.nope_dim,
        "qk_rope_head_dim": c.rope_dim,
        "v_head_dim": c.value_dim,
        "attention_bias": c.attention_bias,
    }
    if not c.correction_bias:
        fields["mlp_bias"] = c.mlp_bias
    config = getattr(t, f"{prefix}Config")(**fields)
    suffix = {
        "lm": "ForCausalLM",
        "none": "Model",
        "seq-cls": "ForSequenceClassification",
        "token-cls": "ForTokenClassification",
    }[c.head]
    return _checkpoint_experts(on_meta(getattr(t, prefix + suffix), config), c)


def glm4_moe_twin(c: Any) -> Any:
    """Glm4MoeForCausalLM (or Glm4MoeModel)."""
    t = hf()
    config = t.Glm4MoeConfig(
        **_mixture_fields(c),
        num_key_value_heads=c.kv_heads or c.heads,
        head_dim=c.head_dim or c.hidden // c.heads,
        attention_bias=c.attention_bias,
        use_qk_norm=c.qk_norm,
        partial_rotary_factor=c.rotary_pct,
    )
    cls = t.Glm4MoeForCausalLM if c.head == "lm" else t.Glm4MoeModel
    return _checkpoint_experts(on_meta(cls, config), c)


TWINS["deepseek"] = deepseek_twin
TWINS["glm4-moe"] = glm4_moe_twin
TWINS["t5"] = t5_twin
TWINS["bart"] = bart_twin
TWINS["whisper"] = whisper_twin


# -- Mamba and Jamba: transformers' classes on the meta device, from configs written here
#    field by field
def mamba_twin(c: Any) -> Any:
    """MambaForCausalLM (or MambaModel)."""
    t = hf()
    fields = {
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "expand": c.expand,
        "state_size": c.state_size,
        "conv_kernel": c.conv_kernel,
        "time_step_rank": "auto" if c.time_step_rank is None else c.time_step_rank,
        "use_bias": c.use_bias,
        "use_conv_bias": c.use_conv_bias,
        "tie_word_embeddings": c.tie_weights,
    }
    if c.intermediate is not None:
        fields["intermediate_size"] = c.intermediate
    config = t.MambaConfig(**fields)
    return on_meta(t.MambaForCausalLM if c.head == "lm" else t.MambaModel, config)


def jamba_twin(c: Any) -> Any:
    """JambaForCausalLM, JambaModel or JambaForSequenceClassification."""
    t = hf()
    config = t.JambaConfig(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_key_value_heads=c.kv_heads or c.heads,
        intermediate_size=c.intermediate,
        num_experts=c.experts,
        num_experts_per_tok=c.experts_per_token,
        attn_layer_period=c.attn_layer_period,
        attn_layer_offset=c.attn_layer_offset,
        expert_layer_period=c.expert_layer_period,
        expert_layer_offset=c.expert_layer_offset,
        mamba_expand=c.expand,
        mamba_d_state=c.state_size,
        mamba_d_conv=c.conv_kernel,
        mamba_dt_rank="auto" if c.time_step_rank is None else c.time_step_rank,
        mamba_conv_bias=c.conv_bias,
        mamba_proj_bias=c.proj_bias,
        tie_word_embeddings=c.tie_weights,
        num_labels=c.labels or 2,
        pad_token_id=0,
    )
    suffix = {"lm": "ForCausalLM", "none": "Model", "seq-cls": "ForSequenceClassification"}
    return on_meta(getattr(t, "Jamba" + suffix[c.head]), config)


TWINS["mamba"] = mamba_twin
TWINS["jamba"] = jamba_twin


def qwen3_next_twin(c: Any) -> Any:
    """Qwen3NextForCausalLM (or Qwen3NextModel, or a task head) of transformers, from a
    config written here field by field; layer_types as given (one per layer, the pattern
    repeated) or left to full_attention_interval's rule."""
    t = hf()
    fields: dict[str, Any] = {
        "vocab_size": c.vocab,
        "hidden_size": c.hidden,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads or c.heads,
        "head_dim": c.head_dim or c.hidden // c.heads,
        "linear_num_key_heads": c.linear_key_heads,
        "linear_num_value_heads": c.linear_value_heads,
        "linear_key_head_dim": c.linear_key_dim,
        "linear_value_head_dim": c.linear_value_dim,
        "linear_conv_kernel_dim": c.conv_kernel,
        "full_attention_interval": c.full_attention_interval or 4,
        "intermediate_size": c.intermediate or 1,
        "moe_intermediate_size": c.moe_intermediate,
        "shared_expert_intermediate_size": c.shared_intermediate,
        "num_experts": c.experts,
        "num_experts_per_tok": c.experts_per_token or 1,
        "decoder_sparse_step": c.sparse_step,
        "mlp_only_layers": list(c.dense_layers),
        "attention_bias": c.attention_bias,
        "tie_word_embeddings": c.tie_weights,
        "num_labels": c.labels or 2,
        "pad_token_id": 0,
    }
    if c.layer_types:
        fields["layer_types"] = [c.layer_types[i % len(c.layer_types)] for i in range(c.layers)]
    config = t.Qwen3NextConfig(**fields)
    suffix = {
        "lm": "ForCausalLM",
        "none": "Model",
        "seq-cls": "ForSequenceClassification",
        "token-cls": "ForTokenClassification",
        "qa": "ForQuestionAnswering",
    }[c.head]
    return _checkpoint_experts(on_meta(getattr(t, "Qwen3Next" + suffix), config), c)


TWINS["qwen3-next"] = qwen3_next_twin


def mamba2_twin(c: Any) -> Any:
    """Mamba2ForCausalLM (or Mamba2Model), from a config written here field by field."""
    t = hf()
    config = t.Mamba2Config(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_heads=c.heads or c.expand * c.hidden // c.head_dim,
        head_dim=c.head_dim,
        state_size=c.state_size,
        n_groups=c.groups,
        expand=c.expand,
        conv_kernel=c.conv_kernel,
        chunk_size=c.chunk_size,
        use_bias=c.bias,
        use_conv_bias=c.conv_bias,
        tie_word_embeddings=c.tie_weights,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
    )
    return on_meta(t.Mamba2ForCausalLM if c.head == "lm" else t.Mamba2Model, config)


TWINS["mamba2"] = mamba2_twin


def falcon_h1_twin(c: Any) -> Any:
    """FalconH1ForCausalLM (or FalconH1Model), from a config written here field by field."""
    t = hf()
    extra = {} if c.head_dim is None else {"head_dim": c.head_dim}
    config = t.FalconH1Config(
        vocab_size=c.vocab,
        hidden_size=c.hidden,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_key_value_heads=c.kv_heads or c.heads,
        intermediate_size=c.intermediate,
        mamba_n_heads=c.mamba_heads,
        mamba_d_ssm=c.mamba_inner,
        mamba_expand=c.mamba_expand,
        mamba_d_state=c.mamba_state,
        mamba_n_groups=c.mamba_groups,
        mamba_d_conv=c.mamba_conv,
        mamba_chunk_size=c.chunk_size,
        mamba_rms_norm=c.mamba_rms_norm,
        mamba_conv_bias=c.mamba_conv_bias,
        mamba_proj_bias=c.mamba_proj_bias,
        projectors_bias=c.projectors_bias,
        attention_bias=c.attention_bias,
        mlp_bias=c.mlp_bias,
        tie_word_embeddings=c.tie_weights,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        **extra,
    )
    return on_meta(t.FalconH1ForCausalLM if c.head == "lm" else t.FalconH1Model, config)


TWINS["falcon-h1"] = falcon_h1_twin
