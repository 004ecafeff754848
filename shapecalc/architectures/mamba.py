"""``shapecalc mamba``: Mamba (v1) language models, named as ``transformers`` names them
(model type ``mamba``: ``MambaForCausalLM``, ``MambaModel``).

No attention: every block is an RMSNorm and a selective state-space mixer
(``mixer``: in_proj, a depthwise causal convolution, x_proj, dt_proj, ``A_log`` and ``D``,
out_proj) added to its input. What a block carries from one token to the next is a fixed
state per sequence (the convolution's last K inputs and the SSM state), not a cache that
grows with the context.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, Reference, flag, size
from shapecalc.core.dims import Dim, count_str, dim_str, known, symbol
from shapecalc.core.flow import chain, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.mamba import MambaMixer

__all__ = ["Mamba", "mamba", "state_lines", "time_step_rank"]


def time_step_rank(given: Dim | None, hidden: Dim) -> Dim:
    """The time step's rank: given, or transformers' ``"auto"``, ⌈H / 16⌉ (the letter R
    when H is a letter: the formulas say R, and the sizes give R's value)."""
    if given is not None:
        return given
    h = known(hidden)
    return -(-h // 16) if h is not None else symbol("R")


def _read(f: Any, out: dict[str, Any]) -> None:
    """The padding id inside the vocabulary."""
    f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")


def _write(model: Any, reference: Reference) -> Reference:
    """No intermediate_size unless given (the class works it out; null would break it)."""
    config = dict(reference.config)
    if config.get("intermediate_size") is None:
        config.pop("intermediate_size", None)
    return Reference(reference.model, reference.config_class, config, reference.options)


def state_lines(d: Dim, n: Dim, k: Dim, r: Dim) -> list[str]:
    """What the mixer's tensors are, and the state it keeps, in words (Mamba and Jamba)."""
    return [
        f"in_proj maps H to 2·D = {dim_str(2 * d)}: the inner input x and the gate z, "
        f"D = {dim_str(d)} channels each.",
        f"conv1d (D, 1, K = {dim_str(k)}) is a depthwise causal convolution: each channel "
        f"mixes its own last {dim_str(k)} inputs (padded K − 1 on the left, transformers "
        "pads both sides and cuts the end), then SiLU.",
        f"x_proj (R + 2·N, D) makes, from each position, its time step (R = {dim_str(r)} "
        f"numbers, time_step_rank), B and C (N = {dim_str(n)} each, state_size): inputs, "
        "not weights, decide what the state takes in and gives out; this is what makes the "
        "scan selective.",
        "dt_proj (D, R) and its bias widen the time step to one Δ per channel, through softplus.",
        f"A_log (D, N): A = −exp(A_log), each channel's {dim_str(n)} decay rates; per "
        "position the state h (D, N) becomes exp(Δ·A)·h + Δ·B·x, and the output C·h. "
        "D (D,) adds each channel's input to that output (a skip); then the gate SiLU(z) "
        "multiplies it and out_proj (H, D) maps it back to H.",
        "The state does not grow: per sequence, each mixer keeps the convolution's last "
        f"{dim_str(k)} inputs (D·K numbers, in the model's dtype) and h (D·N numbers, kept "
        "in fp32 by transformers whatever the model's dtype), however long the context. "
        "Attention keeps every past token's keys and values instead.",
    ]


@frozen(kw_only=True)
class Mamba(TransformerLM):
    """A Mamba language model: token embedding (V × H), L blocks of RMSNorm and a
    selective state-space mixer added to the input, a final RMSNorm (norm_f) and a head
    (V × H, the embedding itself unless tie_weights is off).

    The mixer's inner width is D = expand · H (X · H); its tensors: in_proj (2·D, H),
    conv1d (D, 1, K) and its bias, x_proj (R + 2·N, D), dt_proj (D, R) and its bias (D),
    A_log (D, N), D (D,), out_proj (H, D).

        >>> m = mamba(vocab=50280, hidden=768, layers=24)
        >>> m.total
        129135360
        >>> print(m.total_formula)
        3·L·H²·X + L·H·K·X + 3·L·H·N·X + 2·L·H·R·X + 3·L·H·X + L·H + V·H + H
    """

    command: ClassVar[str] = "mamba"
    function: ClassVar[str] = "mamba"
    title: ClassVar[str] = "Mamba (selective state spaces)"
    example: ClassVar[str] = "--vocab 50280 --hidden 768 --layers 24"
    budget: ClassVar[str] = "130M"
    explains: ClassVar[str] = (
        "Explain the mixer's tensors (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj), "
        "the state each layer keeps and why it does not grow, and every matrix of one block."
    )
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "expand",
        "intermediate",
        "state_size",
        "conv_kernel",
        "time_step_rank",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = size("L", "Number of Mamba blocks (num_hidden_layers).")
    expand: Any = size(
        "X", "The mixer's inner width as a multiple of the hidden size (expand): D = X·H.", 2
    )
    intermediate: Any = size(
        "I",
        "The mixer's inner width D (intermediate_size): X·H unless given (transformers "
        "takes a config's intermediate_size over expand).",
        None,
        unset=None,
        default_text="X·H",
    )
    state_size: Any = size("N", "State numbers per inner channel (state_size).", 16)
    conv_kernel: Any = size("K", "Taps of the depthwise causal convolution (conv_kernel).", 4)
    time_step_rank: Any = size(
        "R",
        "Rank of the time step's projection (time_step_rank).",
        None,
        unset=None,
        default_text="⌈H / 16⌉ (auto)",
    )
    use_bias: bool = flag("Biases of in_proj and out_proj (use_bias).")
    use_conv_bias: bool = flag("A bias of the convolution (use_conv_bias).", True)
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).", True)
    head: str = tf.lm_head("MambaForCausalLM", "MambaModel")

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="mamba",
            gguf="mamba",
            config_class="MambaConfig",
            classes=tf.head_classes("Mamba"),
            base="backbone",
            keys={
                "vocab": "vocab_size",
                "hidden": "hidden_size",
                "layers": "num_hidden_layers",
                "expand": "expand",
                "intermediate": "intermediate_size",
                "state_size": "state_size",
                "conv_kernel": "conv_kernel",
                "time_step_rank": "time_step_rank",
                "use_bias": "use_bias",
                "use_conv_bias": "use_conv_bias",
                "tie_weights": "tie_word_embeddings",
            },
            defaults={
                "vocab_size": 50280,
                "hidden_size": 768,
                "state_size": 16,
                "num_hidden_layers": 32,
                "expand": 2,
                "intermediate_size": None,
                "conv_kernel": 4,
                "use_bias": False,
                "use_conv_bias": True,
                "time_step_rank": "auto",
                "tie_word_embeddings": True,
            },
            free=frozenset(
                {
                    "layer_norm_epsilon",
                    "hidden_act",
                    "residual_in_fp32",
                    "time_step_scale",
                    "time_step_min",
                    "time_step_max",
                    "time_step_init_scheme",
                    "time_step_floor",
                    "rescale_prenorm_residual",
                    "use_mambapy",
                    "use_associative_scan",
                    "layer_types",
                }
            ),
            not_null=frozenset({"intermediate_size"}),
            read=_read,
            write=_write,
        ),
    )

    # -- the sizes worked out ---------------------------------------------------------------
    @property
    def inner(self) -> Dim:
        """The mixer's inner width: given, or expand · H."""
        width: Dim = self.expand * self.hidden if self.intermediate is None else self.intermediate
        return width

    @property
    def rank(self) -> Dim:
        """The time step's rank: given, or ⌈H / 16⌉."""
        return time_step_rank(self.time_step_rank, self.hidden)

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and R worked out from H when not given."""
        out = super(TransformerLM, self).sizes()
        if self.intermediate is not None:
            out.pop("X", None)  # the inner width given: expand builds nothing
        if self.time_step_rank is None and known(self.rank) is not None:
            out["R"] = self.rank
        return out

    def hf_values(self) -> dict[str, Any]:
        """The arguments as a config writes them: the time step's rank worked out."""
        return {**self.arguments(), "time_step_rank": self.rank}

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        return 1

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        return dict(arguments)

    # -- the tree ---------------------------------------------------------------------------
    def mixer(self) -> MambaMixer:
        return MambaMixer(
            hidden_size=self.hidden,
            intermediate_size=self.inner,
            time_step_rank=self.rank,
            state_size=self.state_size,
            conv_kernel=self.conv_kernel,
            use_bias=self.use_bias,
            use_conv_bias=self.use_conv_bias,
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        block = Block(
            "MambaBlock",
            {
                "norm": Leaf(LlamaRMSNorm(h), role="norm"),
                "mixer": Leaf(self.mixer(), "selective state-space mixer", "mixer"),
            },
            flow=residual("norm", "mixer"),
        )
        body = Block(
            "MambaModel",
            {
                "embeddings": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": ModuleList(block, self.layers),
                "norm_f": Leaf(LlamaRMSNorm(h), role="final norm"),
            },
            flow=chain("embeddings", "layers", "norm_f"),
        )
        return self.causal_lm("MambaForCausalLM", "backbone", body, "embeddings", "head")

    # -- explanation ------------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        h, d = self.hidden, self.inner
        n, k, r = self.state_size, self.conv_kernel, self.rank
        mixer = self.mixer()
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block; there is no attention and no MLP: the mixer is the block.",
            f"The mixer works at D = {dim_str(d)} channels (intermediate_size, expand · H "
            f"unless given) and holds "
            f"{count_str(mixer.total())} numbers.",
            *state_lines(d, n, k, r),
        ]
        return [
            ("What the sizes mean", lines),
            (
                "Every matrix of one block",
                self.block_lines(model, self.in_body("backbone", "layers")),
            ),
        ]


mamba = Mamba.function_for()
