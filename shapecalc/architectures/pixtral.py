"""``shapecalc pixtral``: Pixtral's vision encoder, named as ``transformers``'
``PixtralVisionModel`` names it (model type ``pixtral``): the vision tower of Mistral 3
(``mistral3.py``) and of Pixtral-12B.

transformers' modeling_pixtral.py: a Conv2d of kernel and stride P, no bias (patch_conv),
an RMSNorm (ln_pre), then L layers of attention_norm, a gated MLP (feed_forward: gate, up,
down), attention (k, v, q and o projections, no biases: registered in that order) and
ffn_norm. Positions are 2-D rotary (no parameter); each image's patches attend among
themselves.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.declare import Architecture, Built, size
from shapecalc.core.dims import as_size, dim_str, exact_div, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, multiply, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType
from shapecalc.core.tree import Block, ModuleList
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.activation import GELU
from shapecalc.layers.conv import Conv2d
from shapecalc.layers.functional import ScaledDotProductAttention
from shapecalc.layers.tensors import Reshape, Transpose


def _head_width(width: Any, heads: Any) -> Any:
    """A head's width: width / heads, or the letter Dv (a vision head, apart from a
    language model's D beside it in a composite) when the two do not divide as letters."""
    found = exact_div(width, heads)
    return symbol("Dv") if found is None else found


__all__ = ["Pixtral", "pixtral"]


@frozen(kw_only=True)
class Pixtral(Architecture):
    """Pixtral's vision encoder: patch_conv (H, C, P, P), ln_pre (H), and L layers of
    two RMSNorms (H), q, k, v and o projections (H, H) and a gated MLP of I (gate and up
    H to I, down I to H).

        >>> pixtral(hidden=1024, layers=24, heads=16, intermediate=4096).total
        403489792
    """

    command: ClassVar[str] = "pixtral"
    function: ClassVar[str] = "pixtral"
    title: ClassVar[str] = "Pixtral vision encoder"
    example: ClassVar[str] = "--hidden 1024 --layers 24 --heads 16 --intermediate 4096"
    budget: ClassVar[str] = "400M"
    sequence: ClassVar[bool] = False
    size_order: ClassVar[tuple[str, ...]] = (
        "hidden",
        "layers",
        "heads",
        "intermediate",
        "channels",
        "patch_size",
        "image_size",
    )

    hidden: Any = size("H", "The encoder's width (hidden_size).")
    layers: Any = size("L", "Layers (num_hidden_layers).")
    heads: Any = size("A", "Attention heads (num_attention_heads); they divide H.", solvable=False)
    intermediate: Any = size("I", "The gated MLP's width (intermediate_size).")
    channels: Any = size("C", "Image channels (num_channels).", 3, solvable=False)
    patch_size: Any = size("P", "A patch's side in pixels (patch_size).", 16, names=False)
    image_size: Any = size(
        "S",
        "The side of the square image the cost is worked out for, in pixels, a multiple "
        "of P (image_size, the largest side; no tensor changes).",
        1024,
        names=False,
        solvable=False,
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="pixtral",
            config_class="PixtralVisionConfig",
            classes={"PixtralVisionModel": {}},
            base="vision_encoder",
            keys={
                "hidden": "hidden_size",
                "layers": "num_hidden_layers",
                "heads": "num_attention_heads",
                "intermediate": "intermediate_size",
                "channels": "num_channels",
                "patch_size": "patch_size",
                "image_size": "image_size",
            },
            defaults={
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "num_channels": 3,
                "image_size": 1024,
                "patch_size": 16,
            },
            # head_dim: PixtralAttention's heads are hidden_size / heads whatever it says;
            # vocab_size: Mistral3Config's vision defaults carry one, read by nothing
            free=frozenset(
                {"hidden_act", "attention_dropout", "rope_parameters", "head_dim", "vocab_size"}
            ),
        ),
    )

    def check(self) -> None:
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a is not None and (h % a or (h // a) % 2):
            rule = "heads divide hidden into heads of an even width (2-D rotary positions)"
            raise InvalidArgumentError(
                f"{rule} ({h} / {a})", layer=self.owner(), field="heads", value=a, rule=rule
            )
        if self.image_size % self.patch_size:
            rule = "image_size is a multiple of patch_size"
            raise InvalidArgumentError(
                f"{rule} ({self.image_size} % {self.patch_size})",
                layer=self.owner(),
                field="image_size",
                value=self.image_size,
                rule=rule,
            )

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of twice the heads (an even head width)."""
        if free != "hidden" or arguments.get("heads") is None:
            return 1
        heads = known(as_size(arguments["heads"], owner=cls.owner(), field="heads"))
        return 1 if heads is None else 2 * heads

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = dict(arguments)
        h, a = out.get("hidden"), out.get("heads")
        if isinstance(h, int) and isinstance(a, int):
            out["hidden"] = 2 * a * max(1, h // (2 * a))
        p = out.get("patch_size", 16)
        out["image_size"] = p * max(1, min(out.get("image_size", 1024) // p, 4))
        return out

    def sizes(self) -> dict[str, Any]:
        """The sizes given, and a head's width Dv = H / A worked out."""
        out: dict[str, Any] = super().sizes()
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a is not None:
            out["Dv"] = h // a
        return out

    def layer(self) -> Block:
        h, a, i = self.hidden, self.heads, self.intermediate
        d = _head_width(h, a)
        attention = Block(
            "PixtralAttention",
            {
                "k_proj": Linear(h, h, bias=False),
                "v_proj": Linear(h, h, bias=False),
                "q_proj": Linear(h, h, bias=False),
                "o_proj": Linear(h, h, bias=False),
            },
            flow=chain(
                parallel("q_proj", "k_proj", "v_proj"),
                ScaledDotProductAttention(a, a, d, causal=False),
                "o_proj",
            ),
            description=f"{dim_str(a)} heads of {dim_str(d)} over the patches of each image",
        )
        mlp = Block(
            "PixtralMLP",
            {
                "gate_proj": Linear(h, i, bias=False),
                "up_proj": Linear(h, i, bias=False),
                "down_proj": Linear(i, h, bias=False),
            },
            flow=chain(multiply(("gate_proj", GELU()), "up_proj"), "down_proj"),
        )
        return Block(
            "PixtralAttentionLayer",
            {
                "attention_norm": LlamaRMSNorm(h, eps=1e-5),
                "feed_forward": mlp,
                "attention": attention,
                "ffn_norm": LlamaRMSNorm(h, eps=1e-5),
            },
            flow=chain(
                residual("attention_norm", "attention"), residual("ffn_norm", "feed_forward")
            ),
        )

    def encoder(self) -> Block:
        """PixtralVisionModel: one image (B, C, S, S) to its patches' vectors (B, N, H)."""
        h, p, c = self.hidden, self.patch_size, self.channels
        n = (self.image_size // p) ** 2
        return Block(
            "PixtralVisionModel",
            {
                "patch_conv": Conv2d(c, h, kernel_size=p, stride=p, bias=False),
                "ln_pre": LlamaRMSNorm(h, eps=1e-5),
                "transformer": Block(
                    "PixtralTransformer",
                    {"layers": ModuleList(self.layer(), self.layers)},
                    flow=chain("layers"),
                ),
            },
            flow=chain("patch_conv", Reshape((-1, h, n)), Transpose(1, 2), "ln_pre", "transformer"),
        )

    def build(self) -> Built:
        return Built(self.encoder(), input_layout=(("B", "C", "S", "S"),))


pixtral = Pixtral.function_for()
