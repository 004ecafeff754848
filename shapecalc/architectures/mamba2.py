"""``shapecalc mamba2``: Mamba-2 language models (state space duality), named as
``transformers`` 5 names them (model type ``mamba2``, ``Mamba2ForCausalLM``).

No attention: every block is RMSNorm and a Mamba-2 mixer. The mixer projects each token
to a gate z, x, B, C and dt (``in_proj``), runs x·B·C through a depthwise causal
convolution (``conv1d``), scans x with a decay per head (``A_log``), input and output
matrices B and C (shared by the heads of a group) and a step dt (``dt_bias``), adds D·x,
normalises y·SiLU(z) (``norm``) and projects back (``out_proj``). Its state for decoding
is fixed: the convolution's last K inputs and one P × N state per head, whatever the
context.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._transformer import TransformerLM
from shapecalc.core.declare import Built, flag, size
from shapecalc.core.dims import Dim, as_size, dim_str, floor_div, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, each, multiply, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Reference
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._activation import SiLU
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._function import Chunk
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.functional import Pick
from shapecalc.layers.mamba2 import CausalConv1d, GatedRMSNorm, Mamba2Scan, Take

__all__ = ["Mamba2", "mamba2", "mixer"]


def mixer(
    kind: str,
    hidden: Dim,
    heads: Dim,
    head_dim: Dim,
    state_size: Dim,
    groups: Dim,
    conv_kernel: Dim,
    chunk_size: int,
    *,
    bias: bool,
    conv_bias: bool,
    projection_bias: bool | None = None,
    gated_norm: bool = True,
    norm_before_gate: bool = False,
    inner: Dim | None = None,
) -> Block:
    """A Mamba-2 mixer as transformers builds it (``Mamba2Mixer``, Falcon-H1's
    ``FalconH1Mixer``): its own dt_bias, A_log and D, then conv1d, in_proj, norm and
    out_proj. ``bias`` is in_proj's, ``projection_bias`` out_proj's (``bias`` when
    None); without ``gated_norm`` (Falcon-H1's ``mamba_rms_norm`` false) no norm, the
    scan's output times SiLU(z). ``inner``: the mixer's width when a model names it
    (Falcon-H1's mamba_d_ssm; heads·head_dim by rule), else heads·head_dim."""
    named = inner
    inner = heads * head_dim if named is None else named
    width = inner + 2 * groups * state_size
    out_bias = bias if projection_bias is None else projection_bias
    scan = Mamba2Scan(heads, head_dim, state_size, groups, chunk_size, named)
    children = {
        "": Leaf(scan, "dt_bias, A_log and D, one per head", "state space"),
        "conv1d": Leaf(
            CausalConv1d(width, conv_kernel, bias=conv_bias),
            "over x, B and C, K positions back",
            "convolution",
        ),
        "in_proj": Leaf(
            Linear(hidden, inner + width + heads, bias=bias),
            "gate z, x, B, C and dt",
            "input projection",
        ),
        "norm": Leaf(
            GatedRMSNorm(inner, groups, norm_before_gate),
            "y·SiLU(z), normalised per group",
            "norm",
        ),
        "out_proj": Leaf(Linear(inner, hidden, bias=out_bias), role="output projection"),
    }
    gated: Any = (parallel((Take((1, 2)), ""), Pick(0)), "norm")
    if not gated_norm:
        del children["norm"]
        gated = (multiply((Take((1, 2)), ""), (Pick(0), SiLU())),)
    flow = chain(
        "in_proj",
        Chunk((inner, width, heads)),
        each((), ("conv1d", SiLU()), ()),
        *gated,
        "out_proj",
    )
    what = (
        f"{dim_str(heads)} heads of {dim_str(head_dim)}, a state of {dim_str(state_size)} "
        f"per number, {dim_str(groups)} group(s) of B and C"
    )
    return Block(kind, children, flow=flow, description=what)


def _write(model: Any, reference: Reference) -> Reference:
    """Token ids inside any vocabulary (the class's own, 1 and 2, may lie outside a small
    one): padding, beginning and end 0."""
    config = {**reference.config, "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0}
    return Reference(reference.model, reference.config_class, config, reference.options)


@frozen(kw_only=True)
class Mamba2(TransformerLM):
    """A Mamba-2 language model: token embedding (V × H), L blocks of RMSNorm and a
    Mamba-2 mixer, a final RMSNorm (``norm_f``) and a head (V × H).

    The mixer of I = M·P = E·H numbers (M heads of head_dim P): in_proj (2·I + 2·G·N + M,
    H) makes the gate z (I), x (I), B and C (G·N each: G groups of a state of N) and dt
    (M); conv1d (I + 2·G·N, 1, K) convolves x·B·C; dt_bias, A_log and D (M each) drive the
    scan; norm.weight (I) scales the gated RMSNorm; out_proj (H, I).

        >>> m = mamba2(vocab=32768, hidden=4096, layers=64, heads=128, head_dim=64,
        ...            state_size=128, groups=8)
        >>> m.total
        7285403648
    """

    command: ClassVar[str] = "mamba2"
    function: ClassVar[str] = "mamba2"
    title: ClassVar[str] = "Mamba-2 (state space model)"
    example: ClassVar[str] = "--vocab 50288 --hidden 2560 --layers 64 --state-size 128 --groups 1"
    budget: ClassVar[str] = "2.7B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "head_dim",
        "state_size",
        "groups",
        "expand",
        "conv_kernel",
        "chunk_size",
    )
    explains: ClassVar[str] = (
        "Explain the mixer's sizes, its tensors (in_proj, conv1d, A_log, dt_bias, D, the "
        "gated norm), its fixed state, and where the total comes from."
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = size("L", "Number of Mamba-2 blocks (layers).")
    heads: Any = size(
        "M",
        "The mixer's heads (num_heads): heads·head_dim = expand·hidden.",
        None,
        unset=None,
        default_text="E·H / P",
        solvable=False,
    )
    head_dim: Any = size("P", "Numbers per head (head_dim).", 64, solvable=False)
    state_size: Any = size(
        "N", "The state each number of x keeps (state_size, d_state).", 128, solvable=False
    )
    groups: Any = size(
        "G",
        "Groups of B and C (n_groups): each serves heads / groups heads.",
        8,
        solvable=False,
    )
    expand: Any = size(
        "E", "The mixer's width over the hidden size (expand): I = E·H.", 2, solvable=False
    )
    conv_kernel: Any = size(
        "K", "Taps of the causal convolution (conv_kernel, d_conv).", 4, solvable=False
    )
    chunk_size: Any = size(
        "Q",
        "Positions per chunk of the scan (chunk_size): no tensor, only the scan's work.",
        256,
        solvable=False,
        names=False,
    )
    bias: bool = flag("Biases of in_proj and out_proj (use_bias).", False)
    conv_bias: bool = flag("A bias of the convolution (use_conv_bias).", True)
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    head: str = tf.lm_head("Mamba2ForCausalLM", "Mamba2Model")

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="mamba2",
            gguf="mamba2",
            config_class="Mamba2Config",
            classes={"Mamba2ForCausalLM": {"head": "lm"}, "Mamba2Model": {"head": "none"}},
            base="backbone",
            keys={
                "vocab": "vocab_size",
                "hidden": "hidden_size",
                "layers": "num_hidden_layers",
                "heads": "num_heads",
                "head_dim": "head_dim",
                "state_size": "state_size",
                "groups": "n_groups",
                "expand": "expand",
                "conv_kernel": "conv_kernel",
                "chunk_size": "chunk_size",
                "bias": "use_bias",
                "conv_bias": "use_conv_bias",
                "tie_weights": "tie_word_embeddings",
            },
            defaults={
                "vocab_size": 32768,
                "hidden_size": 4096,
                "num_hidden_layers": 64,
                "num_heads": 128,
                "head_dim": 64,
                "state_size": 128,
                "n_groups": 8,
                "expand": 2,
                "conv_kernel": 4,
                "chunk_size": 256,
                "use_bias": False,
                "use_conv_bias": True,
                "tie_word_embeddings": False,
            },
            free=frozenset(
                {
                    "layer_norm_epsilon",
                    "hidden_act",
                    "initializer_range",
                    "residual_in_fp32",
                    "time_step_rank",
                    "time_step_min",
                    "time_step_max",
                    "time_step_floor",
                    "time_step_limit",
                    "rescale_prenorm_residual",
                }
            ),
            not_null=frozenset({"num_heads"}),
            write=_write,
        ),
    )

    # -- sizes ----------------------------------------------------------------------------
    @property
    def n_heads(self) -> Dim:
        """The heads: given, or E·H / P; with the sizes as letters, the letter M."""
        if self.heads is not None:
            given: Dim = self.heads
            return given
        e, h, p = known(self.expand), known(self.hidden), known(self.head_dim)
        if e is not None and h is not None and p is not None:
            return e * h // p
        if p is not None:  # E·H / P with P a number: exact once E and H are known
            return floor_div(self.expand * self.hidden, p)
        return symbol("M")

    @property
    def inner(self) -> Dim:
        """I = M·P, the mixer's width (E·H, checked)."""
        width: Dim = self.n_heads * self.head_dim
        return width

    def sizes(self) -> dict[str, Dim]:
        out = super(TransformerLM, self).sizes()
        if self.heads is None and known(self.n_heads) is not None:
            out["M"] = self.n_heads
        return out

    def hf_values(self) -> dict[str, Any]:
        return {**self.arguments(), "heads": self.n_heads}

    def check(self) -> None:
        e, h, p = known(self.expand), known(self.hidden), known(self.head_dim)
        g = known(self.groups)
        if self.heads is None:
            if e is not None and h is not None and p is not None and (e * h) % p:
                rule = "head_dim must divide expand·hidden (heads = expand·hidden / head_dim)"
                raise InvalidArgumentError(
                    f"{rule} ({e}·{h} % {p} = {e * h % p})",
                    layer=self.owner(),
                    field="head_dim",
                    value=self.head_dim,
                    rule=rule,
                    related=("hidden", "expand"),
                )
        else:
            m = known(self.heads)
            width = None if e is None or h is None else e * h
            if width is not None and m is not None and p is not None and width != m * p:
                rule = "heads·head_dim must equal expand·hidden (transformers' Mamba2Config)"
                raise InvalidArgumentError(
                    f"{rule} ({m}·{p} = {m * p} ≠ {e}·{h} = {width})",
                    layer=self.owner(),
                    field="heads",
                    value=self.heads,
                    rule=rule,
                    related=("hidden", "head_dim", "expand"),
                )
        m = known(self.n_heads)
        if m is not None and g is not None and m % g:
            rule = "groups must divide heads (each group's B and C serve heads / groups heads)"
            raise InvalidArgumentError(
                f"{rule} ({m} % {g} = {m % g})",
                layer=self.owner(),
                field="groups",
                value=self.groups,
                rule=rule,
                related=("heads", "hidden"),
            )

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: with heads from it, a multiple of head_dim (and of the groups' heads)."""
        if free != "hidden" or arguments.get("heads") is not None:
            return 1
        p = known(as_size(arguments.get("head_dim", 64), owner=cls.owner(), field="head_dim"))
        g = known(as_size(arguments.get("groups", 8), owner=cls.owner(), field="groups"))
        return 1 if p is None or g is None else p * g

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = dict(arguments)
        p, e, g = out["head_dim"], out["expand"], out["groups"]
        out["hidden"] = p * g * max(1, out["hidden"] // (p * g))
        heads = e * out["hidden"] // p
        if out.get("heads") is not None:
            out["heads"] = heads
        return out

    # -- the tree -------------------------------------------------------------------------
    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        block = Block(
            "Mamba2Block",
            {
                "norm": LlamaRMSNorm(h),
                "mixer": mixer(
                    "Mamba2Mixer",
                    h,
                    self.n_heads,
                    self.head_dim,
                    self.state_size,
                    self.groups,
                    self.conv_kernel,
                    self.chunk_size,
                    bias=self.bias,
                    conv_bias=self.conv_bias,
                ),
            },
            flow=residual("norm", "mixer"),
        )
        body = Block(
            "Mamba2Model",
            {
                "embeddings": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": ModuleList(block, self.layers),
                "norm_f": Leaf(LlamaRMSNorm(h), role="final norm"),
            },
            flow=chain("embeddings", "layers", "norm_f"),
        )
        return self.causal_lm("Mamba2ForCausalLM", "backbone", body, "embeddings", "head")

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        sizes = mixer_lines(
            self.hidden,
            self.n_heads,
            self.head_dim,
            self.state_size,
            self.groups,
            self.conv_kernel,
            self.chunk_size,
        )
        block = self.block_lines(model, self.in_body("backbone", "layers"))
        return [("What the sizes mean", sizes), ("Every matrix of one block", block)]


def mixer_lines(
    hidden: Dim,
    heads: Dim,
    head_dim: Dim,
    state: Dim,
    groups: Dim,
    kernel: Dim,
    chunk_size: int,
    gated_norm: bool = True,
) -> list[str]:
    """What ``--explain`` says of a Mamba-2 mixer (Mamba-2's and Falcon-H1's; without
    ``gated_norm``, Falcon-H1's mixer without its norm)."""
    i = heads * head_dim
    width = i + 2 * groups * state
    return [
        f"The mixer works on I = heads·head_dim = {dim_str(i)} numbers per token: "
        f"{dim_str(heads)} heads of head_dim P = {dim_str(head_dim)}.",
        f"in_proj ({dim_str(2 * i + 2 * groups * state + heads)}, {dim_str(hidden)}) makes, "
        f"per token, the gate z (I), x (I), B and C ({dim_str(groups)} group(s) of a state "
        f"of N = {dim_str(state)} each: G·N apiece; each group serves heads / G heads) and "
        f"dt ({dim_str(heads)}, one step per head).",
        f"conv1d ({dim_str(width)}, 1, {dim_str(kernel)}): a causal convolution of each of "
        f"the {dim_str(width)} numbers of x, B and C over its last {dim_str(kernel)} "
        "positions (depthwise: one filter per channel), then SiLU.",
        "A_log, dt_bias and D: one number per head. dt = softplus(dt + dt_bias) is how far "
        "a step moves; A = −exp(A_log) the head's decay rate, so exp(A·dt) says how much "
        "of the state survives a step; D·x is a skip added to the scan's output.",
        f"The scan: each head keeps a state of P × N = {dim_str(head_dim * state)} numbers, "
        "decayed by exp(A·dt) each token and added B·x·dt; the output is C·state. "
        f"transformers' torch path computes it in chunks of Q = {chunk_size} positions "
        "(state space duality): within a chunk as a masked C·Bᵀ product, like attention; "
        "across chunks through the states at their edges.",
        (
            f"norm.weight ({dim_str(i)},): the gated RMSNorm of y and SiLU(z), normalised "
            "per group, scaled; out_proj maps I back to H."
            if gated_norm
            else "No norm: the scan's output times SiLU(z); out_proj maps I back to H."
        ),
        "The state a layer keeps for decoding is fixed whatever the context: the "
        f"convolution's last {dim_str(kernel)} inputs ({dim_str(width)} numbers each, in "
        f"the model's dtype) and {dim_str(heads)} states of P × N (fp32, as transformers' "
        "cache keeps them); no key or value grows with the tokens.",
    ]


mamba2 = Mamba2.function_for()
