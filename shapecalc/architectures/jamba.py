"""``shapecalc jamba``: AI21's Jamba, attention and Mamba layers in one stack, with a
mixture of experts every other layer, named as ``transformers`` names it (model type
``jamba``).

Layer i attends when ``i % attn_layer_period == attn_layer_offset`` (no position
embedding: the Mamba layers carry the order) and is a Mamba layer otherwise; its MLP is a
mixture of E experts when ``i % expert_layer_period == expert_layer_offset`` (and E > 1),
a gated MLP otherwise. Jamba's Mamba mixer normalises its time step, B and C (RMSNorms of
R, N and N). A stack whose layers differ is shown as runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.architectures.mamba import state_lines, time_step_rank
from shapecalc.core.declare import Built, flag, size
from shapecalc.core.dims import Dim, count_str, dim_str, known
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, multiply, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Child, Leaf, ModuleList, Node, Repeat, cycle
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.activation import SiLU
from shapecalc.layers.functional import ScaledDotProductAttention
from shapecalc.layers.mamba import MambaMixer

__all__ = ["Jamba", "jamba"]

#: the longest pattern of layers (the least common multiple of the two periods) shown
MAX_PATTERN = 1024


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary; kv heads as many as heads said as none."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
    if out["kv_heads"] == out["heads"]:
        out["kv_heads"] = None
    for name in ("attn_layer", "expert_layer"):
        period, offset = out[f"{name}_period"], out[f"{name}_offset"]
        if offset >= period:
            raise f.fail(
                f"{name}_offset",
                offset,
                f"{name}_offset must be smaller than {name}_period",
                f"{offset} >= {period}",
            )


def every(layers: int, period: int, offset: int) -> int:
    """How many of ``layers`` layers have i % period == offset (counted, not listed)."""
    return max(0, (layers - offset + period - 1) // period)


def _notes(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    layers = arguments.get("layers")
    if not isinstance(layers, int):
        return []
    period, offset = arguments["attn_layer_period"], arguments["attn_layer_offset"]
    attends = every(layers, period, offset)
    return [
        f"{attends} of the {layers} layers attend and keep every past token's keys and "
        f"values; the other {layers - attends} are Mamba layers, whose state does not grow"
    ]


@frozen(kw_only=True)
class Jamba(TransformerLM):
    """Jamba: token embedding (V × H), L layers, a final RMSNorm (final_layernorm) and a
    head (V × H).

    An attention layer: RMSNorm, attention of A query heads over K key and value heads of
    D = H / A (q_proj (A·D, H), k_proj and v_proj (K·D, H), o_proj (H, A·D), no biases, no
    rotary positions), RMSNorm, then the MLP. A Mamba layer: RMSNorm, the Mamba mixer
    (inner width X·H, state S, convolution of W taps, time step rank R, and RMSNorms of
    Δ, B and C), RMSNorm, the MLP. The MLP is a gated MLP of I, or in the expert layers a
    router (E, H) and E experts of I, each token sent to k of them.

        >>> m = jamba(vocab=65536, hidden=4096, layers=32, heads=32, kv_heads=8,
        ...           intermediate=14336, experts=16, experts_per_token=2)
        >>> m.total, m.active
        (51570323328, 12110311296)
    """

    command: ClassVar[str] = "jamba"
    function: ClassVar[str] = "jamba"
    title: ClassVar[str] = "Jamba (attention, Mamba and experts)"
    example: ClassVar[str] = (
        "--vocab 65536 --hidden 4096 --layers 32 --heads 32 --kv-heads 8 "
        "--intermediate 14336 --experts 16 --experts-per-token 2"
    )
    budget: ClassVar[str] = "52B"
    explains: ClassVar[str] = (
        "Explain which layers attend and which are Mamba layers, the Mamba mixer's tensors, "
        "the experts, the state each layer keeps, and every matrix of each kind of layer."
    )
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "intermediate",
        "experts",
        "experts_per_token",
        "expand",
        "state_size",
        "conv_kernel",
        "time_step_rank",
        "labels",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    #: a number in the formulas (the runs of each kind of layer count it out), unless given
    #: as a letter
    layers: Any = size(
        "L", "Number of layers, attention and Mamba (num_hidden_layers).", symbolic=False
    )
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    intermediate: Any = size("I", "The MLP's and each expert's inner size (intermediate_size).")
    experts: Any = size(
        "E",
        "Experts of an expert layer (num_experts); 1: every layer has the gated MLP (a "
        "letter stands for more than one).",
        16,
        solvable=False,
    )
    experts_per_token: Any = size(
        "k", "Experts each token is sent to (num_experts_per_tok).", 2, solvable=False
    )
    attn_layer_period: Any = size(
        "P", "One attention layer in every P layers (attn_layer_period).", 8, names=False
    )
    attn_layer_offset: Any = size(
        "O",
        "The first attention layer (attn_layer_offset): layer i attends when i % period == offset.",
        4,
        minimum=0,
        names=False,
    )
    expert_layer_period: Any = size(
        "Q", "One expert layer in every Q layers (expert_layer_period).", 2, names=False
    )
    expert_layer_offset: Any = size(
        "U",
        "The first expert layer (expert_layer_offset): layer i has experts when "
        "i % period == offset.",
        1,
        minimum=0,
        names=False,
    )
    expand: Any = size("X", "The Mamba mixer's inner width over H (mamba_expand).", 2)
    state_size: Any = size("S", "State numbers per inner channel (mamba_d_state).", 16)
    conv_kernel: Any = size("W", "Taps of the causal convolution (mamba_d_conv).", 4)
    time_step_rank: Any = size(
        "R",
        "Rank of the time step's projection (mamba_dt_rank).",
        None,
        unset=None,
        default_text="⌈H / 16⌉ (auto)",
    )
    conv_bias: bool = flag("A bias of the Mamba convolution (mamba_conv_bias).", True)
    proj_bias: bool = flag("Biases of the Mamba in_proj and out_proj (mamba_proj_bias).")
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    head: str = tf.lm_head("JambaForCausalLM", "JambaModel", "seq-cls")
    labels: Any = tf.labels()

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="jamba",
            gguf="jamba",
            config_class="JambaConfig",
            classes=tf.head_classes("Jamba", "seq-cls"),
            base="model",
            keys={
                **tf.SIZE_KEYS,
                **tf.LABEL_KEYS,
                "kv_heads": "num_key_value_heads",
                "experts": "num_experts",
                "experts_per_token": "num_experts_per_tok",
                "attn_layer_period": "attn_layer_period",
                "attn_layer_offset": "attn_layer_offset",
                "expert_layer_period": "expert_layer_period",
                "expert_layer_offset": "expert_layer_offset",
                "expand": "mamba_expand",
                "state_size": "mamba_d_state",
                "conv_kernel": "mamba_d_conv",
                "time_step_rank": "mamba_dt_rank",
                "conv_bias": "mamba_conv_bias",
                "proj_bias": "mamba_proj_bias",
            },
            defaults={
                "vocab_size": 65536,
                "tie_word_embeddings": False,
                "hidden_size": 4096,
                "intermediate_size": 14336,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "num_experts_per_tok": 2,
                "num_experts": 16,
                "expert_layer_period": 2,
                "expert_layer_offset": 1,
                "attn_layer_period": 8,
                "attn_layer_offset": 4,
                "mamba_d_state": 16,
                "mamba_d_conv": 4,
                "mamba_expand": 2,
                "mamba_dt_rank": "auto",
                "mamba_conv_bias": True,
                "mamba_proj_bias": False,
            },
            aliases={"num_local_experts": "num_experts"},
            free=frozenset(
                {
                    "max_position_embeddings",
                    "rms_norm_eps",
                    "attention_dropout",
                    "hidden_act",
                    "output_router_logits",
                    "router_aux_loss_coef",
                    "use_mamba_kernels",
                    "use_mambapy",
                    "use_associative_scan",
                    "layer_types",
                    "layers_block_type",
                    "layers_num_experts",
                }
            ),
            read=_read,
            write=tf.first_padding,
            notes=_notes,
        ),
    )

    # -- which layer is which ---------------------------------------------------------------
    def attends(self, index: int) -> bool:
        """transformers' rule: layer ``index`` attends when index % period == offset."""
        return bool(index % self.attn_layer_period == self.attn_layer_offset)

    def sparse(self, index: int) -> bool:
        """Layer ``index`` has experts: index % period == offset, and more than one expert."""
        return bool(
            index % self.expert_layer_period == self.expert_layer_offset and self.experts != 1
        )

    @property
    def pattern(self) -> int:
        """The layers after which the kinds repeat: the periods' least common multiple."""
        return math.lcm(int(self.attn_layer_period), int(self.expert_layer_period))

    # -- checks -----------------------------------------------------------------------------
    def check(self) -> None:
        self.check_labels()
        self.check_heads()
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        tf.check_top_k(self.owner(), self.experts, self.experts_per_token)
        for name in ("attn_layer", "expert_layer"):
            period, offset = getattr(self, f"{name}_period"), getattr(self, f"{name}_offset")
            if offset >= period:
                rule = f"{name}_offset < {name}_period (layer i is one when i % period == offset)"
                raise InvalidArgumentError(
                    f"{rule}: {offset} >= {period}",
                    layer=self.owner(),
                    field=f"{name}_offset",
                    value=offset,
                    rule=rule,
                )
        if self.pattern > MAX_PATTERN:
            rule = f"the layers repeat within {MAX_PATTERN:,} (lcm of the two periods)"
            raise InvalidArgumentError(
                f"{rule}; these repeat every {self.pattern:,}",
                layer=self.owner(),
                field="attn_layer_period",
                value=self.attn_layer_period,
                rule=rule,
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out["kv_heads"] is not None and out["heads"] % out["kv_heads"]:
            out["kv_heads"] = 1
        # one expert makes every MLP gated, which a letter for experts cannot say: drawn
        # configurations that may be given as letters have a mixture
        out["experts"] = max(out["experts"], 2)
        out["experts_per_token"] = min(out["experts_per_token"], out["experts"])
        for name in ("attn_layer", "expert_layer"):  # periods whose pattern is short
            out[f"{name}_period"] = 1 + (out[f"{name}_period"] - 1) % 16
            out[f"{name}_offset"] = out[f"{name}_offset"] % out[f"{name}_period"]
        # every layer of the pattern present, twice: the same kinds of layer with the layers
        # as a number or a letter (the line of activations recomputed per block names one)
        pattern = math.lcm(out["attn_layer_period"], out["expert_layer_period"])
        if isinstance(out["layers"], int):
            out["layers"] = max(out["layers"], 2 * pattern)
        return out

    def template(self) -> Jamba:
        """The sizes as letters, but one expert stays 1: it decides the layers' kind (every
        MLP gated), which a letter would not."""
        out = super().template()
        if self.experts == 1:
            out = dataclasses.replace(out, experts=1, experts_per_token=self.experts_per_token)
        return out

    # -- the sizes worked out ---------------------------------------------------------------
    @property
    def inner(self) -> Dim:
        given: Dim = self.intermediate
        return given

    @property
    def rank(self) -> Dim:
        return time_step_rank(self.time_step_rank, self.hidden)

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, D = H / A, and R worked out from H when not given; no k
        without experts."""
        out = super().sizes()
        if self.time_step_rank is None and known(self.rank) is not None:
            out["R"] = self.rank
        for letter in ("P", "O", "Q", "U"):
            out.pop(letter, None)
        if self.experts == 1:
            out.pop("k", None)
        return out

    def hf_values(self) -> dict[str, Any]:
        return {
            **super().hf_values(),
            "kv_heads": self.kv,
            "time_step_rank": self.rank,
        }

    # -- the tree ---------------------------------------------------------------------------
    def _attention(self) -> Block:
        h, a, kv = self.hidden, self.heads, self.kv
        d = self.head_size()
        children = {
            "q_proj": Leaf(Linear(h, a * d, bias=False), role="query"),
            "k_proj": Leaf(Linear(h, kv * d, bias=False), role="key"),
            "v_proj": Leaf(Linear(h, kv * d, bias=False), role="value"),
            "o_proj": Leaf(Linear(a * d, h, bias=False), role="output projection"),
        }
        flow = chain(
            parallel("q_proj", "k_proj", "v_proj"),
            ScaledDotProductAttention(a, kv, d),
            "o_proj",
        )
        what = f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}"
        return Block("JambaAttention", children, flow=flow, description=what)

    def mixer(self) -> MambaMixer:
        return MambaMixer(
            hidden_size=self.hidden,
            intermediate_size=self.expand * self.hidden,
            time_step_rank=self.rank,
            state_size=self.state_size,
            conv_kernel=self.conv_kernel,
            use_bias=self.proj_bias,
            use_conv_bias=self.conv_bias,
            layernorms=True,
        )

    def _mlp(self) -> Block:
        h, i = self.hidden, self.intermediate
        children = {
            "gate_proj": Leaf(Linear(h, i, bias=False), role="gate"),
            "up_proj": Leaf(Linear(h, i, bias=False), role="up"),
            "down_proj": Leaf(Linear(i, h, bias=False), role="down"),
        }
        flow = chain(multiply(("gate_proj", SiLU()), "up_proj"), "down_proj")
        return Block("JambaMLP", children, flow=flow, description=f"gated MLP of {dim_str(i)}")

    def _experts(self) -> Block:
        from shapecalc.layers.transformers import Experts

        h, e, k = self.hidden, self.experts, self.experts_per_token
        return Block(
            "JambaSparseMoeBlock",
            {
                "router": Leaf(Linear(h, e, bias=False), "a score per expert", "router"),
                "experts": Leaf(Experts(e, h, self.intermediate, k), role="experts"),
            },
            flow=chain(parallel((), "router"), "experts"),
            description=f"{dim_str(e)} experts, {dim_str(k)} per token",
        )

    def _layer(self, attention: bool, ffn: Node) -> Block:
        h = self.hidden
        first: tuple[str, Node] = (
            ("self_attn", self._attention())
            if attention
            else ("mamba", Leaf(self.mixer(), "selective state-space mixer", "Mamba mixer"))
        )
        return Block(
            "JambaAttentionDecoderLayer" if attention else "JambaMambaDecoderLayer",
            {
                first[0]: first[1],
                "feed_forward": ffn,
                "input_layernorm": LlamaRMSNorm(h),
                "pre_ff_layernorm": LlamaRMSNorm(h),
            },
            flow=chain(
                residual("input_layernorm", first[0]),
                residual("pre_ff_layernorm", "feed_forward"),
            ),
        )

    def _stack(self) -> Block:
        """The layers as transformers numbers them, each kind a run."""
        mlp, moe = self._mlp(), self._experts()
        kinds: dict[tuple[bool, bool], Block] = {}

        def layer(i: int) -> Block:
            key = (self.attends(i), self.sparse(i))
            if key not in kinds:
                kinds[key] = self._layer(key[0], moe if key[1] else mlp)
            return kinds[key]

        # the shortest pattern of kinds, taking turns (every layer, a number or a letter)
        kinds_of = [layer(i) for i in range(self.pattern)]
        p = next(
            p
            for p in range(1, self.pattern + 1)
            if self.pattern % p == 0
            and all(kinds_of[i] is kinds_of[i % p] for i in range(self.pattern))
        )
        entries = cycle(kinds_of[:p], self.layers)
        if len(entries) == 1 and isinstance(entries[0], Repeat) and entries[0].step == 1:
            return ModuleList(entries[0].node, self.layers)
        if len(entries) == 1 and isinstance(entries[0], Child):
            return ModuleList(entries[0].node, 1)
        return Block("ModuleList", entries)

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "JambaModel",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": self._stack(),
                "final_layernorm": Leaf(LlamaRMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "final_layernorm"),
        )
        return self.causal_lm("JambaForCausalLM", "model", body, "embed_tokens", "head")

    # -- explanation ------------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, a, kv, d = self.hidden, self.heads, self.kv, self.head_size()
        e, k = self.experts, self.experts_per_token
        mixer = self.mixer()
        n = known(self.layers)
        p, o = self.attn_layer_period, self.attn_layer_offset
        q, u = self.expert_layer_period, self.expert_layer_offset
        which = (
            f"Layer i attends when i % {p} == {o} (attn_layer_period, attn_layer_offset) and "
            f"is a Mamba layer otherwise; its MLP has experts when i % {q} == {u} "
            "(expert_layer_period, expert_layer_offset)"
            + (", but with one expert every MLP is the gated MLP" if e == 1 else "")
            + "."
        )
        if n is not None:
            attending = every(n, p, o)
            first = list(range(o, min(n, o + 8 * p), p))
            which += f" Here {attending} of the {n} layers attend" + (
                f" ({', '.join(map(str, first))}{', ...' if attending > len(first) else ''})"
                if attending
                else ""
            )
            sparse = every(n, q, u) if e != 1 else 0
            which += f", {sparse} have experts."
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every layer.",
            which,
            f"Attention: {dim_str(a)} query heads over {dim_str(kv)} key and value heads of "
            f"D = H / A = {dim_str(d)}, no biases and no position embedding (the Mamba layers "
            "see the order of the tokens; attention needs none).",
            f"The Mamba mixer works at D = expand · H = {dim_str(mixer.intermediate_size)} "
            f"channels and holds {count_str(mixer.total())} numbers.",
            *state_lines(mixer.intermediate_size, self.state_size, self.conv_kernel, self.rank),
            "Jamba's mixer normalises the time step, B and C after x_proj (dt_layernorm, "
            "b_layernorm, c_layernorm: RMSNorms of R, N and N), which Mamba's does not.",
            "The attention layers keep every past token's keys and values (they grow with the "
            "context); the Mamba layers keep their fixed state.",
        ]
        sections = [("What the sizes mean", lines)]
        if e != 1:
            sections.append(("Active and total", self.mixture_lines(model, e, k)))
        sections.append(
            (
                "Every matrix of the first layer",
                self.block_lines(model, self.in_body("model", "layers")),
            )
        )
        return sections


jamba = Jamba.function_for()
