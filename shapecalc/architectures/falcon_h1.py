"""``shapecalc falcon-h1``: TII's Falcon-H1 hybrid decoders, named as ``transformers`` 5
names them (model type ``falcon_h1``, ``FalconH1ForCausalLM``).

Every layer runs attention and a Mamba-2 mixer side by side on the same normalised input
and adds their outputs (``self_attn`` and ``mamba``), then a gated MLP
(``feed_forward``). Scalar multipliers (of the embedding, the keys, the attention's input
and output, the mixer's input, its projected parts and output, the MLP's gate and down
projection, the head) scale activations: they are numbers of the config, not tensors.
Each layer keeps, for decoding, the attention's keys and values (they grow with the
context) and the mixer's fixed state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._moe import gated_mlp
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.architectures.mamba2 import mixer, mixer_lines
from shapecalc.core.declare import Built, flag, size
from shapecalc.core.dims import Dim, as_size, dim_str, floor_div, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, parallel, residual, summed
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Reference
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention

__all__ = ["FalconH1", "falcon_h1"]

#: the config's multipliers: scalars that scale activations, no tensor
MULTIPLIERS = (
    "embedding_multiplier",
    "lm_head_multiplier",
    "key_multiplier",
    "attention_in_multiplier",
    "attention_out_multiplier",
    "ssm_in_multiplier",
    "ssm_out_multiplier",
    "ssm_multipliers",
    "mlp_multipliers",
)


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; mamba_d_head, "auto" or the mixer's width
    over its heads (transformers refuses another); the same shapes in fewer letters."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    inner = out["mamba_inner"]
    if inner is None:
        inner = out["mamba_expand"] * out["hidden"]
    head = f.raw("mamba_d_head")
    if head not in (None, "auto"):
        heads = out["mamba_heads"]
        if isinstance(head, bool) or not isinstance(head, int) or head * heads != inner:
            rule = "mamba_d_head·mamba_n_heads must be the mixer's width (mamba_d_ssm)"
            raise f.fail("mamba_d_head", head, rule, f"{heads} heads, width {inner}")
    if out["head_dim"] is not None and out["head_dim"] * out["heads"] == out["hidden"]:
        out["head_dim"] = None
    if out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None


def _write(model: Any, reference: Reference) -> Reference:
    """Token ids 0, inside any vocabulary; head_dim written only when it is not H / A
    (the class reads it with getattr)."""
    config = {**reference.config, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0}
    if model.head_dim is None:
        config.pop("head_dim", None)
    return Reference(reference.model, reference.config_class, config, reference.options)


def _notes(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    given = [k for k in MULTIPLIERS if k in config and config[k] not in (None, 1.0)]
    if not given:
        return []
    return [
        f"{', '.join(given)}: scalars that scale activations (mup); no tensor, no matrix "
        "product (transformers keeps ssm_multipliers as mup_vector, a buffer of every "
        "mixer not stored in checkpoints and not counted here)"
    ]


@frozen(kw_only=True)
class FalconH1(GroupedQueryLM):
    """A Falcon-H1 decoder: token embedding (V × H), L hybrid layers, a final RMSNorm and
    a head (V × H).

    Each layer: RMSNorm (input_layernorm), then attention (A query heads of D over K key
    and value heads, rotary positions) and a Mamba-2 mixer (M heads of P = S / M, a state
    of N per number, G groups of B and C, a convolution of W taps) on the same input,
    their outputs added to the residual; RMSNorm (pre_ff_layernorm) and a gated MLP of I.

        >>> m = falcon_h1(vocab=128000, hidden=4096, layers=32, heads=32, kv_heads=8,
        ...               intermediate=14336, mamba_heads=128, mamba_inner=1024)
        >>> m.total
        8514961408
    """

    command: ClassVar[str] = "falcon-h1"
    function: ClassVar[str] = "falcon_h1"
    title: ClassVar[str] = "Falcon-H1 (attention and Mamba-2 side by side)"
    example: ClassVar[str] = (
        "--vocab 32784 --hidden 1024 --layers 36 --heads 8 --kv-heads 2 --head-dim 64 "
        "--intermediate 2048 --mamba-heads 24 --mamba-inner 1536 --mamba-state 128"
    )
    budget: ClassVar[str] = "0.5B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
        "mamba_heads",
        "mamba_inner",
        "mamba_expand",
        "mamba_state",
        "mamba_groups",
        "mamba_conv",
        "chunk_size",
    )
    explains: ClassVar[str] = (
        "Explain the attention and the mixer side by side, the mixer's tensors, the "
        "multipliers, each layer's state, and where the total comes from."
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = size("L", "Number of hybrid layers (attention and mixer each).")
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    intermediate: Any = size("I", "The MLP's inner size (intermediate_size).")
    mamba_heads: Any = size("M", "The mixer's heads (mamba_n_heads).", solvable=False)
    mamba_inner: Any = size(
        "S",
        "The mixer's width (mamba_d_ssm): M heads of S / M.",
        None,
        unset=None,
        default_text="E·H",
        solvable=False,
    )
    mamba_expand: Any = size(
        "E",
        "The mixer's width over the hidden size when mamba_inner is not given (mamba_expand).",
        2,
        solvable=False,
    )
    mamba_state: Any = size(
        "N", "The state each number of x keeps (mamba_d_state).", 256, solvable=False
    )
    mamba_groups: Any = size(
        "G", "Groups of B and C (mamba_n_groups): each serves M / G heads.", 1, solvable=False
    )
    mamba_conv: Any = size(
        "W", "Taps of the mixer's causal convolution (mamba_d_conv).", 4, solvable=False
    )
    chunk_size: Any = size(
        "Q",
        "Positions per chunk of the scan (mamba_chunk_size): only the scan's work.",
        256,
        solvable=False,
        names=False,
    )
    mamba_rms_norm: bool = flag(
        "The mixer's gated RMSNorm (mamba_rms_norm; without it, y·SiLU(z) and no norm.weight)."
    )
    mamba_conv_bias: bool = flag("A bias of the mixer's convolution (mamba_conv_bias).", True)
    mamba_proj_bias: bool = flag("A bias of the mixer's in_proj (mamba_proj_bias).")
    projectors_bias: bool = flag("A bias of the mixer's out_proj (projectors_bias).")
    attention_bias: bool = flag("Biases of the attention's projections (attention_bias).")
    mlp_bias: bool = flag("Biases of the MLP's projections (mlp_bias).")
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    head: str = tf.lm_head("FalconH1ForCausalLM", "FalconH1Model")

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="falcon_h1",
            gguf="falcon-h1",
            config_class="FalconH1Config",
            classes={"FalconH1ForCausalLM": {"head": "lm"}, "FalconH1Model": {"head": "none"}},
            base="model",
            keys={
                **tf.SIZE_KEYS,
                "kv_heads": "num_key_value_heads",
                "head_dim": "head_dim",
                "mamba_heads": "mamba_n_heads",
                "mamba_inner": "mamba_d_ssm",
                "mamba_expand": "mamba_expand",
                "mamba_state": "mamba_d_state",
                "mamba_groups": "mamba_n_groups",
                "mamba_conv": "mamba_d_conv",
                "chunk_size": "mamba_chunk_size",
                "mamba_rms_norm": "mamba_rms_norm",
                "mamba_conv_bias": "mamba_conv_bias",
                "mamba_proj_bias": "mamba_proj_bias",
                "projectors_bias": "projectors_bias",
                "attention_bias": "attention_bias",
                "mlp_bias": "mlp_bias",
                "tie_weights": "tie_word_embeddings",
            },
            defaults={
                "vocab_size": 128000,
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "head_dim": None,
                "intermediate_size": 14336,
                "mamba_n_heads": 128,
                "mamba_d_ssm": 1024,
                "mamba_expand": 2,
                "mamba_d_state": 256,
                "mamba_n_groups": 1,
                "mamba_d_conv": 4,
                "mamba_chunk_size": 256,
                "mamba_rms_norm": False,
                "mamba_conv_bias": True,
                "mamba_proj_bias": False,
                "projectors_bias": False,
                "attention_bias": False,
                "mlp_bias": False,
                "tie_word_embeddings": False,
            },
            free=frozenset(
                {
                    *MULTIPLIERS,
                    "mamba_d_head",
                    "mamba_norm_before_gate",
                    "hidden_act",
                    "initializer_range",
                    "rms_norm_eps",
                    "num_logits_to_keep",
                    "max_position_embeddings",
                    "attention_dropout",
                    "time_step_limit",
                    "rope_parameters",
                    "rope_scaling",
                    "rope_theta",
                }
            ),
            not_null=frozenset({"head_dim"}),
            nullable=frozenset({"num_key_value_heads", "mamba_d_ssm"}),
            dropped=(r"rotary_emb\.inv_freq",),
            read=_read,
            write=_write,
            notes=_notes,
        ),
    )

    # -- sizes ----------------------------------------------------------------------------
    @property
    def mixer_width(self) -> Dim:
        """S: mamba_inner, or E·H."""
        given: Dim = (
            self.mamba_expand * self.hidden if self.mamba_inner is None else self.mamba_inner
        )
        return given

    @property
    def mixer_head(self) -> Dim:
        """P = S / M; with the sizes as letters, the letter P."""
        s, m = known(self.mixer_width), known(self.mamba_heads)
        if s is not None and m is not None:
            return s // m
        if m is not None:
            return floor_div(self.mixer_width, m)
        return symbol("P")

    def sizes(self) -> dict[str, Dim]:
        out = super().sizes()
        if known(self.mixer_head) is not None:
            out["P"] = self.mixer_head
        if self.mamba_inner is None and known(self.mixer_width) is not None:
            out["S"] = self.mixer_width
        return out

    def hf_values(self) -> dict[str, Any]:
        return {**super().hf_values(), "mamba_inner": self.mixer_width}

    def check(self) -> None:
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        s, m, g = known(self.mixer_width), known(self.mamba_heads), known(self.mamba_groups)
        field = "mamba_inner" if self.mamba_inner is not None else "mamba_heads"
        if s is not None and m is not None and s % m:
            rule = "mamba_heads must divide the mixer's width (mamba_inner, or expand·hidden)"
            raise InvalidArgumentError(
                f"{rule} ({s} % {m} = {s % m})",
                layer=self.owner(),
                field=field,
                value=getattr(self, field),
                rule=rule,
                related=("mamba_heads", "mamba_inner", "hidden", "mamba_expand"),
            )
        if m is not None and g is not None and m % g:
            rule = "mamba_groups must divide mamba_heads (each group's B and C serve M / G heads)"
            raise InvalidArgumentError(
                f"{rule} ({m} % {g} = {m % g})",
                layer=self.owner(),
                field="mamba_groups",
                value=self.mamba_groups,
                rule=rule,
                related=("mamba_heads",),
            )

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of twice the heads (an even head_dim for rotary positions),
        and of the mixer's heads when its width is expand·hidden."""
        step = super().multiple_for(free, arguments)
        if free != "hidden" or arguments.get("mamba_inner") is not None:
            return step
        m = arguments.get("mamba_heads")
        number = None if m is None else known(as_size(m, owner=cls.owner(), field="mamba_heads"))
        if number is None:
            return step
        import math

        return math.lcm(step, number)

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        g = out["mamba_groups"]
        out["mamba_heads"] = g * max(1, out["mamba_heads"] // g)
        m = out["mamba_heads"]
        if out["mamba_inner"] is not None:
            out["mamba_inner"] = m * max(1, out["mamba_inner"] // m)
        elif (out["mamba_expand"] * out["hidden"]) % m:
            out["mamba_inner"] = m * max(1, out["hidden"] // m)
        return out

    # -- the tree -------------------------------------------------------------------------
    def _attention(self) -> Block:
        h, a, kv, bias = self.hidden, self.heads, self.kv, self.attention_bias
        d, q_width, kv_width = self._widths()
        children: dict[str, Any] = {
            "q_proj": Leaf(Linear(h, q_width, bias=bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=bias), role="output projection"),
        }
        qkv = parallel(("q_proj", Rotary(a, d)), ("k_proj", Rotary(kv, d)), "v_proj")
        what = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        flow = chain(qkv, ScaledDotProductAttention(a, kv, d), "o_proj")
        return Block("FalconH1Attention", children, flow=flow, description=what)

    def _layer(self) -> Block:
        h = self.hidden
        mamba = mixer(
            "FalconH1Mixer",
            h,
            self.mamba_heads,
            self.mixer_head,
            self.mamba_state,
            self.mamba_groups,
            self.mamba_conv,
            self.chunk_size,
            bias=self.mamba_proj_bias,
            conv_bias=self.mamba_conv_bias,
            projection_bias=self.projectors_bias,
            gated_norm=self.mamba_rms_norm,
            norm_before_gate=True,
            inner=self.mixer_width,
        )
        return Block(
            "FalconH1DecoderLayer",
            {
                "feed_forward": gated_mlp(h, self.intermediate, bias=self.mlp_bias),
                "mamba": mamba,
                "self_attn": self._attention(),
                "input_layernorm": LlamaRMSNorm(h),
                "pre_ff_layernorm": LlamaRMSNorm(h),
            },
            flow=chain(
                residual("input_layernorm", summed("mamba", "self_attn")),
                residual("pre_ff_layernorm", "feed_forward"),
            ),
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "FalconH1Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": ModuleList(self._layer(), self.layers),
                "final_layernorm": Leaf(LlamaRMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "final_layernorm"),
        )
        return self.causal_lm("FalconH1ForCausalLM", "model", body, "embed_tokens", "head")

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        side = [
            "Every layer is hybrid: its input, normalised once (input_layernorm), goes to the "
            "attention (self_attn) and to a Mamba-2 mixer (mamba) side by side, and both "
            "outputs are added to the residual; then RMSNorm (pre_ff_layernorm) and a gated "
            f"MLP (feed_forward, I = {dim_str(self.intermediate)}).",
            f"Attention: {dim_str(self.heads)} query heads of head_dim D = {dim_str(d)} over "
            f"{dim_str(self.kv)} key and value heads, rotary positions: q_proj "
            f"({dim_str(q_width)}, {dim_str(self.hidden)}), k_proj and v_proj "
            f"({dim_str(kv_width)}, {dim_str(self.hidden)}) each.",
            "The multipliers (embedding, key, attention in and out, ssm in and out, the five "
            "ssm_multipliers of the mixer's projected parts, the MLP's gate and down, the "
            "head) are numbers of the config that scale activations: no tensor, and no "
            "matrix product (transformers keeps ssm_multipliers per mixer as mup_vector, a "
            "buffer not stored in checkpoints and not counted here).",
            "The state a layer keeps for decoding: the attention's keys and values, which "
            "grow with the context (full attention), and the mixer's fixed state (state "
            "space): both in every layer.",
        ]
        if not self.mamba_rms_norm:
            side.append(
                "mamba_rms_norm is off: the mixer has no norm.weight; its scan's output is "
                "multiplied by SiLU(z) directly."
            )
        sizes = mixer_lines(
            self.hidden,
            self.mamba_heads,
            self.mixer_head,
            self.mamba_state,
            self.mamba_groups,
            self.mamba_conv,
            self.chunk_size,
            self.mamba_rms_norm,
        )
        block = self.block_lines(model, self.in_body("model", "layers"))
        return [
            ("Attention and mixer side by side", side),
            ("The mixer", sizes),
            ("Every matrix of one layer", block),
        ]


falcon_h1 = FalconH1.function_for()
