"""The text and vision towers of CLIP and SigLIP, as ``transformers`` builds them: each a
function of its config's values that returns the tower's block, for the dual encoders
(``clip``, ``siglip``) and for the models that mount a tower inside (LLaVA's
``model.vision_tower``, Gemma 3's SigLIP tower).

A tower is a transformer encoder: embeddings, L layers of (LayerNorm, attention, LayerNorm,
MLP) with residuals, a final LayerNorm. CLIP's vision tower puts a learned
``class_embedding`` (H,) before the patches and normalises them before the encoder
(``pre_layrnorm``, spelled so by transformers); SigLIP's has no class token and pools with
a multihead-attention head (``head.probe``, ``head.attention``, an
``nn.MultiheadAttention``) unless ``vision_use_head`` is false. Each embeddings module holds
a ``position_ids`` buffer (int64, not saved).
"""

from __future__ import annotations

from typing import Any

from shapecalc.core.dims import Dim, dim_str, exact_div, floor_div, known, symbol
from shapecalc.core.flow import Positions, chain, parallel, residual, summed
from shapecalc.core.own import Buffer, Parameter
from shapecalc.core.tree import Block, Leaf, ModuleList
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._function import Select
from shapecalc.layers.activation import GELU
from shapecalc.layers.attention import MultiheadAttention
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.functional import Pick, ScaledDotProductAttention
from shapecalc.layers.linear import Flatten, Linear
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.tensors import Cat, Expand, Tile, Transpose
from shapecalc.layers.vision import QuickGELU

__all__ = [
    "ACTIVATIONS",
    "activation",
    "encoder",
    "head_dim",
    "patches",
    "text_tower",
    "vision_tower",
]

#: the activations of ``hidden_act`` a tower takes (none holds a tensor)
ACTIVATIONS = ("quick_gelu", "gelu", "gelu_pytorch_tanh", "gelu_new")


def activation(name: str) -> Any:
    """transformers' ``ACT2FN[name]`` as a layer spec."""
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu":
        return GELU()
    return GELU(approximate="tanh")  # gelu_pytorch_tanh, gelu_new: the tanh approximation


def head_dim(h: Dim, a: Dim, letter: str = "D") -> Dim:
    """The width of one head, H / A (⌊H/A⌋ when H is a letter and A a number; ``letter``
    (D for a text tower, Dv for a vision tower) when both are letters and A does not
    divide H as written)."""
    kh, ka = known(h), known(a)
    if kh is not None and ka is not None:
        return kh // ka
    if ka is not None:
        return floor_div(h, ka)
    found = exact_div(h, a)
    return found if found is not None else symbol(letter)


def derived_heads(text: tuple[Dim, Dim] | None, vision: tuple[Dim, Dim] | None) -> dict[str, int]:
    """The head widths a formula may name, at numbers: D = H / A of the text tower, Dv =
    W / G of the vision tower (where both sizes are numbers)."""
    out: dict[str, int] = {}
    for letter, pair in (("D", text), ("Dv", vision)):
        if pair is not None:
            h, a = known(pair[0]), known(pair[1])
            if h is not None and a:
                out[letter] = h // a
    return out


def patches(image_size: int, patch_size: int) -> int:
    """The patches of a square image: (S // P)²."""
    return (image_size // patch_size) ** 2


def _layer(
    prefix: str,
    h: Dim,
    a: Dim,
    i: Dim,
    act: str,
    eps: float,
    causal: bool,
    norms_first: bool,
    letter: str = "D",
) -> Block:
    """One encoder layer (CLIPEncoderLayer, SiglipEncoderLayer): LayerNorm, attention
    (k, v, q and out projections, each H × H with a bias), residual; LayerNorm, MLP (fc1 H
    to I, the activation, fc2 I to H), residual."""
    d = head_dim(h, a, letter)
    attention = Block(
        f"{prefix}Attention",
        {
            "k_proj": Leaf(Linear(h, h), role="key"),
            "v_proj": Leaf(Linear(h, h), role="value"),
            "q_proj": Leaf(Linear(h, h), role="query"),
            "out_proj": Leaf(Linear(h, h), role="output projection"),
        },
        flow=chain(
            parallel("q_proj", "k_proj", "v_proj"),
            # CLIPEncoder and SiglipEncoder take no cache (CLIP's text tower too, causal)
            ScaledDotProductAttention(a, a, d, causal=causal, cached=False),
            "out_proj",
        ),
        description=f"{dim_str(a)} heads of {dim_str(d)}"
        + (", each token seeing those before it" if causal else ", every token seeing every one"),
    )
    mlp = Block(
        f"{prefix}MLP",
        {
            "fc1": Leaf(Linear(h, i), role="up"),
            "fc2": Leaf(Linear(i, h), role="down"),
        },
        flow=chain("fc1", activation(act), "fc2"),
    )
    norm1, norm2 = LayerNorm(h, eps=eps), LayerNorm(h, eps=eps)
    children: dict[str, Any] = (
        {"layer_norm1": norm1, "self_attn": attention, "layer_norm2": norm2, "mlp": mlp}
        if norms_first
        else {"self_attn": attention, "layer_norm1": norm1, "mlp": mlp, "layer_norm2": norm2}
    )
    return Block(
        f"{prefix}EncoderLayer",
        children,
        flow=chain(residual("layer_norm1", "self_attn"), residual("layer_norm2", "mlp")),
    )


def encoder(
    prefix: str,
    h: Dim,
    layers: Dim,
    a: Dim,
    i: Dim,
    act: str,
    eps: float,
    *,
    causal: bool = False,
    norms_first: bool = False,
    letter: str = "D",
) -> Block:
    """``encoder.layers``: L encoder layers (CLIPEncoder, SiglipEncoder); ``letter`` names
    a head's width where it is no number (Dv in a vision tower)."""
    layer = _layer(prefix, h, a, i, act, eps, causal, norms_first, letter)
    return Block(f"{prefix}Encoder", {"layers": ModuleList(layer, layers)}, flow=chain("layers"))


def text_tower(
    family: str,
    *,
    vocab: Dim,
    hidden: Dim,
    layers: Dim,
    heads: Dim,
    intermediate: Dim,
    positions: Dim,
    act: str,
    eps: float,
    projection: Dim | None = None,
    pooled: bool = True,
) -> Block:
    """CLIPTextModel (``family`` "CLIP": causal attention, the end-of-text token's vector
    pooled) or SiglipTextModel ("Siglip": every token sees every token, the last token's
    vector pooled, then ``head`` H to ``projection``): token and position embeddings, L
    layers, ``final_layer_norm``. ``pooled``: the flow ends in the pooled vector (B, H),
    else in the tokens' vectors."""
    siglip = family == "Siglip"
    embeddings = Block(
        f"{family}TextEmbeddings",
        {
            "token_embedding": Leaf(Embedding(vocab, hidden), role="token embedding"),
            "position_embedding": Leaf(Embedding(positions, hidden), role="position embedding"),
            "position_ids": Buffer((1, positions), dtype="int64", persistent=False),
        },
        flow=summed("token_embedding", (Positions(limit=positions), "position_embedding")),
    )
    children: dict[str, Any] = {
        "embeddings": embeddings,
        "encoder": encoder(
            family,
            hidden,
            layers,
            heads,
            intermediate,
            act,
            eps,
            causal=not siglip,
            norms_first=siglip,
        ),
        "final_layer_norm": Leaf(LayerNorm(hidden, eps=eps), role="final norm"),
    }
    steps: list[Any] = ["embeddings", "encoder", "final_layer_norm"]
    if pooled:
        # CLIP pools the end-of-text token's vector (wherever it is), SigLIP the last one's:
        # one token's vector either way, the same shape and work as the first token's
        steps.append(Select(1, 0))
    if siglip:
        out = hidden if projection is None else projection
        children["head"] = Leaf(Linear(hidden, out), role="text head")
        if pooled:
            steps.append("head")
    return Block(f"{family}TextModel", children, flow=chain(*steps))


def vision_tower(
    family: str,
    *,
    hidden: Dim,
    layers: Dim,
    heads: Dim,
    intermediate: Dim,
    image_size: int,
    patch_size: int,
    channels: Dim,
    act: str,
    eps: float,
    use_head: bool = True,
    pooled: bool = True,
) -> Block:
    """CLIPVisionModel or SiglipVisionModel: the patches by ``embeddings.patch_embedding``
    (a P × P convolution of stride P), to tokens, CLIP's ``class_embedding`` before them,
    ``position_embedding`` added; CLIP's ``pre_layrnorm``; L layers; ``post_layernorm``;
    SigLIP's attention-pooling ``head`` (``use_head``). ``pooled``: the flow ends in the
    pooled vector (B, H) (CLIP: the class token's, normalised), else in the encoder's
    tokens (CLIP: the encoder's, what LLaVA reads; SigLIP: after ``post_layernorm``,
    what Gemma 3 reads, its head run beside them as transformers runs it; what the flow
    leaves out is still built)."""
    clip = family == "CLIP"
    n = patches(image_size, patch_size) + (1 if clip else 0)
    children: dict[str, Any] = {}
    if clip:
        children["class_embedding"] = Parameter((hidden,), role="class embedding")
    children["patch_embedding"] = Leaf(
        Conv2d(channels, hidden, patch_size, stride=patch_size, bias=not clip),
        role="patch embedding",
    )
    children["position_embedding"] = Leaf(Embedding(n, hidden), role="position embedding")
    children["position_ids"] = Buffer((1, n), dtype="int64", persistent=False)
    tokens: list[Any] = ["patch_embedding", Flatten(2), Transpose(1, 2)]
    if clip:
        tokens += [parallel("class_embedding", ()), Expand((0,)), Cat(1)]
    embeddings = Block(
        f"{family}VisionEmbeddings",
        children,
        flow=chain(*tokens, summed((), (Positions(limit=n), "position_embedding"))),
    )
    body: dict[str, Any] = {"embeddings": embeddings}
    steps: list[Any] = ["embeddings"]
    if clip:
        body["pre_layrnorm"] = Leaf(LayerNorm(hidden, eps=eps), role="norm before the encoder")
        steps.append("pre_layrnorm")
    body["encoder"] = encoder(
        family, hidden, layers, heads, intermediate, act, eps, norms_first=not clip, letter="Dv"
    )
    steps.append("encoder")
    body["post_layernorm"] = Leaf(LayerNorm(hidden, eps=eps), role="final norm")
    if clip:
        if pooled:
            steps += [Select(1, 0), "post_layernorm"]
    else:
        steps.append("post_layernorm")
        if use_head:
            body["head"] = _pooling_head(hidden, heads, intermediate, act, eps)
            # SiglipVisionModel's forward runs its head whenever it has one: read for
            # its pooled vector, or beside the tokens it passes on (Gemma 3's), its
            # compute and kept tensors spent all the same
            steps.append("head" if pooled else (parallel((), "head"), Pick(0)))
    return Block(f"{family}VisionModel", body, flow=chain(*steps))


def _pooling_head(h: Dim, a: Dim, i: Dim, act: str, eps: float) -> Block:
    """SiglipMultiheadAttentionPoolingHead: a learned ``probe`` (1, 1, H) attends over the
    tokens (``attention``, an ``nn.MultiheadAttention``: ``in_proj_weight`` (3H, H)), then
    LayerNorm and the MLP with a residual; the probe's one vector out."""
    mlp = Block(
        "SiglipMLP",
        {"fc1": Leaf(Linear(h, i), role="up"), "fc2": Leaf(Linear(i, h), role="down")},
        flow=chain("fc1", activation(act), "fc2"),
    )
    return Block(
        "SiglipMultiheadAttentionPoolingHead",
        {
            "probe": Parameter((1, 1, h), role="the pooling query"),
            "attention": MultiheadAttention(h, a, batch_first=True),
            "layernorm": LayerNorm(h, eps=eps),
            "mlp": mlp,
        },
        flow=chain(
            # probe.repeat(batch_size, 1, 1): a copy, which the attention keeps
            parallel((parallel("probe", ()), Tile((1, 1, 1), like=True), Pick(0)), (), ()),
            "attention",
            Pick(0),
            residual("layernorm", "mlp"),
            Select(1, 0),
        ),
        description="a learned query attends over every patch: one vector per image",
    )
