"""``shapecalc qwen2-vl``: Qwen2-VL and Qwen2.5-VL, a vision transformer of their own and
Qwen2's language model, named as ``transformers``' ``Qwen2VLForConditionalGeneration``
and ``Qwen2_5_VLForConditionalGeneration`` name them.

The parts (``_composite.py``): ``model.visual``, the vision transformer (its
``vision_config``, read here); ``model.language_model``, Qwen2's body built by the LLaMA
family (its ``text_config``, model type ``qwen2_vl_text`` or ``qwen2_5_vl_text``, or the
text fields at the top level of a Qwen2-VL file); ``lm_head``, the embedding itself with
tie_word_embeddings.

The vision transformer (transformers' modeling_qwen2_vl.py, PatchEmbed, VisionAttention,
Qwen2VLVisionBlock, PatchMerger; modeling_qwen2_5_vl.py for 2.5): a Conv3d of kernel and
stride (temporal_patch_size, patch_size, patch_size), no bias, embeds each patch of C ×
Tp × P × P pixels in Hv; Lv blocks of a norm, attention (one fused qkv with biases, proj)
and a norm and an MLP; the merger normalises, joins M × M neighbouring patches (M² · Hv)
and maps them through two linear layers to the language model's width. Qwen2-VL: LayerNorm
and an fc1 / fc2 MLP of mlp_ratio · Hv (QuickGELU); Qwen2.5-VL: RMSNorm and a gated MLP of
Iv (gate, up, down, each with a bias), windowed attention but in fullatt_block_indexes
(which changes no tensor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from shapecalc.architectures import _composite
from shapecalc.architectures import _transformer as tf
from shapecalc.core.declare import Architecture, Built, Reference, choice, flag, indices, size
from shapecalc.core.dims import Dim, Expr, as_size, dim_str, exact_div, known, symbol
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, each, multiply, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, Part
from shapecalc.core.tree import Block, ModuleList, Sequential, runs
from shapecalc.layers._function import Chunk
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.activation import GELU, SiLU
from shapecalc.layers.conv import Conv3d
from shapecalc.layers.functional import ScaledDotProductAttention
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.tensors import Reshape
from shapecalc.layers.vision import QuickGELU


def _head_width(width: Any, heads: Any) -> Any:
    """A vision head's width: width / heads, or the letter Dv when the two do not divide
    as letters."""
    found = exact_div(width, heads)
    return symbol("Dv") if found is None else found


__all__ = ["Qwen2VL", "qwen2_vl"]

#: the two generations: the composite class's prefix, and its text type
_VERSIONS = {"2": "Qwen2VL", "2.5": "Qwen2_5_VL"}
_TEXT = {"2": "qwen2_vl_text", "2.5": "qwen2_5_vl_text"}
_PARTS = {
    "visual": "the vision transformer, vision_config",
    "language_model": "the language model, text_config",
}


def _vision_part(version: str) -> HFType:
    """How a ``vision_config`` of each generation says the tower's sizes (its config
    class's fields and defaults: Qwen2VLVisionConfig, Qwen2_5_VLVisionConfig)."""
    if version == "2":
        keys: dict[str, str] = {
            "vision_layers": "depth",
            "vision_hidden": "embed_dim",
            "vision_heads": "num_heads",
            "vision_out": "hidden_size",
        }
        defaults: dict[str, Any] = {
            "depth": 32,
            "embed_dim": 1280,
            "hidden_size": 3584,
            "mlp_ratio": 4,
            "num_heads": 16,
        }
        free = frozenset({"mlp_ratio", "hidden_act", "rope_parameters"})
    else:
        keys = {
            "vision_layers": "depth",
            "vision_hidden": "hidden_size",
            "vision_heads": "num_heads",
            "vision_intermediate": "intermediate_size",
            "vision_out": "out_hidden_size",
            "fullatt_blocks": "fullatt_block_indexes",
            "window": "window_size",
        }
        defaults = {
            "depth": 32,
            "hidden_size": 3584,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 3584,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "window_size": 112,
        }
        # spatial_patch_size: in the published Qwen2.5-VL files; Qwen2_5_VLVisionConfig
        # declares no such field and modeling_qwen2_5_vl.py never reads it (patch_size
        # is the patches' size): kept as an attribute, it changes no tensor
        free = frozenset(
            {"hidden_act", "rope_parameters", "tokens_per_second", "spatial_patch_size"}
        )
    return HFType(
        model_type=f"{'qwen2_vl' if version == '2' else 'qwen2_5_vl'}_vision",
        config_class=f"{_VERSIONS[version]}VisionConfig",
        classes={},
        base="",
        keys={
            **keys,
            "patch_size": "patch_size",
            "temporal_patch": "temporal_patch_size",
            "merge_size": "spatial_merge_size",
            "channels": "in_channels",
        },
        defaults={
            **defaults,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        aliases={"in_chans": "in_channels"},
        free=free,
        read=_read_mlp_ratio if version == "2" else None,
    )


def _read_mlp_ratio(f: Any, out: dict[str, Any]) -> None:
    """Qwen2-VL's MLP: int(embed_dim · mlp_ratio) wide."""
    ratio = f.raw("mlp_ratio")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0:
        raise f.fail("mlp_ratio", ratio, "mlp_ratio must be a positive number")
    width = int(out["vision_hidden"] * ratio)
    if width < 1:
        raise f.fail("mlp_ratio", ratio, "embed_dim · mlp_ratio must be at least 1")
    out["vision_intermediate"] = None if width == 4 * out["vision_hidden"] else width


#: the arguments the parts' configs say (read from them, written into them)
_PART_ARGUMENTS = frozenset(
    {
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "intermediate",
        "vision_hidden",
        "vision_layers",
        "vision_heads",
        "vision_intermediate",
        "vision_out",
        "channels",
        "patch_size",
        "temporal_patch",
        "merge_size",
        "fullatt_blocks",
        "window",
        "image_size",
    }
)


def _composite_type(*, model_type: str, version: str) -> HFType:
    prefix = _VERSIONS[version]
    return HFType(
        model_type=model_type,
        config_class=f"{prefix}Config",
        classes={
            f"{prefix}ForConditionalGeneration": {"head": "lm", "version": version},
            f"{prefix}Model": {"head": "none", "version": version},
        },
        base="model",
        keys={"tie_weights": "tie_word_embeddings"},
        defaults={"text_config": None, "vision_config": None, "tie_word_embeddings": False},
        free=frozenset(
            {
                "image_token_id",
                "video_token_id",
                "vision_start_token_id",
                "vision_end_token_id",
                "vision_token_id",
                # Qwen2-VL's flat files: the text model's settings, beside its sizes
                "rope_scaling",
                "rope_theta",
            }
        ),
        parts=(
            Part(
                "vision_config",
                (f"{model_type}_vision",),
                "the vision transformer",
                said={"qwen2_vl": "qwen2_vl_vision", "qwen2_5_vl": "qwen2_5_vl_vision"},
                flat=False,
                optional=True,
                declared=_vision_part(version),
            ),
            Part("text_config", (_TEXT[version],), "the language model", flat=True),
        ),
        dropped=(r"rotary_emb\.inv_freq",),
        derived=_PART_ARGUMENTS,
        # the Hub's files (saved by transformers 4): transformers' conversion_mapping.py
        # (Qwen2VLForConditionalGeneration) renames ^visual and ^model(?!.language_model)
        renamed={
            "visual.": "model.visual.",
            "model.embed_tokens.": "model.language_model.embed_tokens.",
            "model.layers.": "model.language_model.layers.",
            "model.norm.": "model.language_model.norm.",
        },
        write=_write,
        notes=_notes,
    )


def _write(model: Any, reference: Reference) -> Reference | None:
    """The config of a model: the text sizes as text_config, the tower's as
    vision_config (Qwen2-VL's MLP as mlp_ratio, a whole multiple of embed_dim)."""
    found: Reference | None = model.reference()
    return found


def _notes(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    return []


@frozen(kw_only=True)
class Qwen2VL(Architecture):
    """Qwen2-VL (``--version 2``) or Qwen2.5-VL (``--version 2.5``): the vision
    transformer ``model.visual``, Qwen2's language model ``model.language_model`` and
    ``lm_head``.

    Vision: patch_embed (Hv, C, Tp, P, P); each of Lv blocks two norms (Hv), qkv (3·Hv,
    Hv) and proj (Hv, Hv) with biases, an MLP of Iv (fc1 and fc2, or gate, up and down);
    the merger's norm (Hv) and two linear layers, (M²·Hv, M²·Hv) and (Ho, M²·Hv). Text:
    Qwen2's body (V × H embedding, L blocks, biased q, k and v) and a V × H head.

        >>> m = qwen2_vl(vocab=152064, hidden=3584, layers=28, heads=28, kv_heads=4,
        ...              intermediate=18944)
        >>> m.total
        8291375616
    """

    command: ClassVar[str] = "qwen2-vl"
    function: ClassVar[str] = "qwen2_vl"
    title: ClassVar[str] = "Qwen2-VL (vision transformer and language model)"
    example: ClassVar[str] = (
        "--vocab 152064 --hidden 3584 --layers 28 --heads 28 --kv-heads 4 --intermediate 18944"
    )
    budget: ClassVar[str] = "8B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "intermediate",
        "vision_hidden",
        "vision_layers",
        "vision_heads",
        "vision_intermediate",
        "vision_out",
        "channels",
        "patch_size",
        "temporal_patch",
        "merge_size",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    intermediate: Any = size("I", "The language model's MLP size (intermediate_size).")
    tie_weights: bool = flag("The head is the token embedding (tie_word_embeddings).")
    version: str = choice(
        tuple(_VERSIONS),
        "2: Qwen2-VL's tower (LayerNorm, fc1 and fc2 of mlp_ratio · Hv); 2.5: Qwen2.5-VL's "
        "(RMSNorm, a gated MLP of Iv with biases, windowed attention).",
        "2",
    )
    vision_hidden: Any = size("Hv", "The vision transformer's width (embed_dim).", 1280)
    vision_layers: Any = size("Lv", "The vision transformer's blocks (depth).", 32)
    vision_heads: Any = size(
        "Av",
        "The vision transformer's attention heads (num_heads); they divide Hv.",
        16,
        solvable=False,
    )
    vision_intermediate: Any = size(
        "Iv",
        "The vision MLP's width: Qwen2-VL's embed_dim · mlp_ratio, Qwen2.5-VL's intermediate_size.",
        None,
        unset=None,
        default_text="4·Hv",
    )
    vision_out: Any = size(
        "Ho",
        "The merger's output width (vision hidden_size, out_hidden_size): the language "
        "model's H, which the image features replace tokens of.",
        None,
        unset=None,
        default_text="H",
    )
    channels: Any = size("C", "Image channels (in_channels).", 3, solvable=False)
    patch_size: Any = size("P", "A patch's side in pixels (patch_size).", 14, names=False)
    temporal_patch: Any = size("Tp", "Frames a patch spans (temporal_patch_size).", 2, names=False)
    merge_size: Any = size(
        "M",
        "The merger joins M × M patches into one token (spatial_merge_size).",
        2,
        names=False,
    )
    fullatt_blocks: tuple[int, ...] = indices(
        "Qwen2.5-VL: the blocks that attend over the whole image (fullatt_block_indexes); "
        "the others attend within windows. No tensor changes."
    )
    image_size: Any = size(
        "S",
        "The side of a square image in pixels, for the cost of one image (no tensor "
        "changes): a multiple of P·M, and for Qwen2.5-VL of its window, else no cost.",
        448,
        names=False,
        solvable=False,
    )
    window: Any = size(
        "Wv",
        "Qwen2.5-VL: the side in pixels of the windows the other blocks attend within "
        "(window_size). No tensor changes.",
        112,
        names=False,
        solvable=False,
    )
    head: str = choice(
        ("lm", "none"),
        "lm: *ForConditionalGeneration, with lm_head; none: *Model, the parts alone.",
        "lm",
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        _composite_type(model_type="qwen2_vl", version="2"),
        _composite_type(model_type="qwen2_5_vl", version="2.5"),
    )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        _composite.part_family(_TEXT[self.version], self._text_arguments(), self.owner())
        for field, whole, part in (
            ("heads", self.hidden, self.heads),
            ("vision_heads", self.vision_hidden, self.vision_heads),
        ):
            w, n = known(whole), known(part)
            if w is not None and n is not None and w % n:
                raise InvalidArgumentError(
                    f"{field} must divide the width ({dim_str(whole)} % {dim_str(part)})",
                    layer=self.owner(),
                    field=field,
                    value=str(part),
                    rule=f"{field} divides the width (each head is width / heads)",
                )
        kv = self.kv_heads
        if (
            kv is not None
            and known(kv) is not None
            and known(self.heads) is not None
            and (
                known(self.heads) % known(kv)  # type: ignore[operator]
            )
        ):
            raise InvalidArgumentError(
                f"kv_heads must divide heads ({dim_str(self.heads)} % {dim_str(kv)})",
                layer=self.owner(),
                field="kv_heads",
                value=str(kv),
                rule="kv_heads divides heads (query heads per group)",
            )
        inner = self.vision_intermediate
        w, i = known(self.vision_hidden), known(inner)
        if self.version == "2" and w is not None and i is not None and i % w:
            rule = (
                "Qwen2-VL's vision MLP is a whole mlp_ratio times embed_dim wide: "
                "vision_intermediate is a multiple of vision_hidden"
            )
            raise InvalidArgumentError(
                f"{rule} ({dim_str(inner)} % {dim_str(self.vision_hidden)})",
                layer=self.owner(),
                field="vision_intermediate",
                value=str(inner),
                rule=rule,
            )
        layers = known(self.vision_layers)
        if self.fullatt_blocks and layers is not None and self.fullatt_blocks[-1] >= layers:
            raise InvalidArgumentError(
                f"fullatt_blocks names block {self.fullatt_blocks[-1]} of {layers}",
                layer=self.owner(),
                field="fullatt_blocks",
                value=self.fullatt_blocks[-1],
                rule="fullatt_blocks are blocks of the vision transformer (< vision_layers)",
            )

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of twice the heads (an even head width, for rotary
        positions); vision_hidden: a multiple of the vision heads."""
        heads = {"hidden": ("heads", 2), "vision_hidden": ("vision_heads", 1)}.get(free)
        if heads is None:
            return 1
        number = known(as_size(arguments.get(heads[0], 1), owner=cls.owner(), field=heads[0]))
        return heads[1] * (1 if number is None else number)

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = dict(arguments)
        if isinstance(out["hidden"], int) and out["hidden"] % 2:
            out["hidden"] += 1  # rotary positions turn pairs: an even head width
        out["heads"] = _even_divisor(out["hidden"], out.get("heads", 1))
        if out.get("kv_heads") is not None:
            out["kv_heads"] = _divisor(out["heads"], out["kv_heads"])
        out["vision_heads"] = _divisor(out["vision_hidden"], out.get("vision_heads", 1))
        inner, width = out.get("vision_intermediate"), out["vision_hidden"]
        if out.get("version", "2") == "2" and isinstance(inner, int) and isinstance(width, int):
            out["vision_intermediate"] = width * max(1, inner // width)
        step = out.get("patch_size", 14) * out.get("merge_size", 2)
        out["window"] = step * max(1, out.get("window", 112) // step)
        tile = out["window"] if out.get("version", "2") == "2.5" else step
        out["image_size"] = tile * max(1, min(out.get("image_size", 448) // tile, 4))
        layers = out.get("vision_layers")
        if isinstance(layers, int):
            out["fullatt_blocks"] = tuple(i for i in out.get("fullatt_blocks", ()) if i < layers)
        return out

    # -- sizes ------------------------------------------------------------------------------
    @property
    def vision_inner(self) -> Dim:
        given: Dim | None = self.vision_intermediate
        return 4 * self.vision_hidden if given is None else given

    @property
    def merger_out(self) -> Dim:
        given: Dim | None = self.vision_out
        return self.hidden if given is None else given

    # -- the config transformers reads ------------------------------------------------------
    def hf_config(self) -> dict[str, Any]:
        """The composite config of these arguments (text_config and vision_config)."""
        text = {
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads or self.heads,
            "intermediate_size": self.intermediate,
        }
        vision: dict[str, Any] = {
            "depth": self.vision_layers,
            "num_heads": self.vision_heads,
            "in_channels": self.channels,
            "patch_size": self.patch_size,
            "temporal_patch_size": self.temporal_patch,
            "spatial_merge_size": self.merge_size,
        }
        if self.version == "2":
            vision |= {
                "embed_dim": self.vision_hidden,
                "mlp_ratio": self.vision_inner // self.vision_hidden,
                "hidden_size": self.merger_out,
            }
        else:
            vision |= {
                "hidden_size": self.vision_hidden,
                "intermediate_size": self.vision_inner,
                "out_hidden_size": self.merger_out,
                "fullatt_block_indexes": list(self.fullatt_blocks),
                "window_size": self.window,
            }
        return {
            "text_config": text,
            "vision_config": vision,
            "tie_word_embeddings": self.tie_weights,
        }

    def reference(self) -> Reference | None:
        """transformers' class of this model, and its config (text_config and
        vision_config; Qwen2-VL's MLP width a whole mlp_ratio, as check() holds it)."""
        prefix = _VERSIONS[self.version]
        cls = f"{prefix}ForConditionalGeneration" if self.head == "lm" else f"{prefix}Model"
        return Reference(cls, f"{prefix}Config", self.hf_config())

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and those the language model's family works out (its head
        width D)."""
        text = _composite.part_family(
            _TEXT[self.version], self._text_arguments(), self.owner()
        ).sizes()
        out = {**text, **super().sizes()}
        w, a = known(self.vision_hidden), known(self.vision_heads)
        if w is not None and a is not None:
            out["Dv"] = w // a  # a vision head's width, worked out
        return out

    # -- the tree ---------------------------------------------------------------------------
    @property
    def window_patches(self) -> int:
        """The patches of one window (Qwen2.5-VL): (window_size / P)²."""
        side: int = self.window // self.patch_size
        return side * side

    def _vision_block(self, windowed: bool) -> Block:
        h, a, inner = self.vision_hidden, self.vision_heads, self.vision_inner
        d = _head_width(h, a)
        sdpa = ScaledDotProductAttention(a, a, d, causal=False)
        if windowed:  # each window's patches attend among themselves
            n = self.window_patches
            split = Reshape((-1, n, h))
            steps: tuple[Any, ...] = (each(split, split, split), sdpa, Reshape((-1, h)))
            what = f"{dim_str(a)} heads of {dim_str(d)} within windows of {n} patches"
        else:
            steps = (each((), (), ()), sdpa)
            what = f"{dim_str(a)} heads of {dim_str(d)} over every patch of an image"
        attn = Block(
            "VisionAttention",
            {"qkv": Linear(h, 3 * h), "proj": Linear(h, h)},
            flow=chain("qkv", Chunk((h, h, h)), *steps, "proj"),
            description=what,
        )
        if self.version == "2":
            norm: Any = LayerNorm(h, eps=1e-6)
            mlp = Block(
                "VisionMlp",
                {"fc1": Linear(h, inner), "act": QuickGELU(), "fc2": Linear(inner, h)},
                flow=chain("fc1", "act", "fc2"),
            )
        else:
            norm = LlamaRMSNorm(h, eps=1e-6)
            mlp = Block(
                "Qwen2_5_VLMLP",
                {
                    "gate_proj": Linear(h, inner),
                    "up_proj": Linear(h, inner),
                    "down_proj": Linear(inner, h),
                },
                flow=chain(multiply(("gate_proj", SiLU()), "up_proj"), "down_proj"),
            )
        return Block(
            "Qwen2VLVisionBlock" if self.version == "2" else "Qwen2_5_VLVisionBlock",
            {"norm1": norm, "norm2": norm, "attn": attn, "mlp": mlp},
            flow=chain(residual("norm1", "attn"), residual("norm2", "mlp")),
        )

    def _blocks(self) -> Block:
        """Qwen2-VL's blocks, each over the whole image; Qwen2.5-VL's, within windows but
        those of fullatt_blocks (a run each kind)."""
        if self.version == "2":
            return ModuleList(self._vision_block(False), self.vision_layers)
        layers = known(self.vision_layers)
        full = set(self.fullatt_blocks)
        if layers is None or not full:
            return ModuleList(self._vision_block(True), self.vision_layers)
        nodes = {kind: self._vision_block(kind) for kind in (False, True)}
        return Block("ModuleList", runs([nodes[i not in full] for i in range(layers)]))

    def image_patches(self) -> int:
        """The patches of one image of image_size² pixels: (S / P)²."""
        side: int = self.image_size // self.patch_size
        return side * side

    def image_cost(self) -> tuple[int, Dim]:
        """(patches, matrix-product FLOPs) of the vision transformer on one image."""
        n = self.image_patches()
        width = self.channels * self.temporal_patch * self.patch_size**2
        return n, _composite.forward_products(self.vision_tower(), ((n, width),))

    def vision_tower(self) -> Block:
        """``model.visual``: patch_embed, the blocks and the merger."""
        h, c, p, t, m = (
            self.vision_hidden,
            self.channels,
            self.patch_size,
            self.temporal_patch,
            self.merge_size,
        )
        kernel = (t, p, p)
        patch_embed = Block(
            "PatchEmbed",
            {"proj": Conv3d(c, h, kernel_size=kernel, stride=kernel, bias=False)},
            flow=chain(Reshape((-1, c, t, p, p)), "proj", Reshape((-1, h))),
            description=f"each patch of {dim_str(c)} × {t} × {p} × {p} pixels to Hv",
        )
        joined = m * m * h
        merger = Block(
            "PatchMerger",
            {
                "ln_q": LayerNorm(h, eps=1e-6)
                if self.version == "2"
                else LlamaRMSNorm(h, eps=1e-6),
                "mlp": Sequential(Linear(joined, joined), GELU(), Linear(joined, self.merger_out)),
            },
            flow=chain("ln_q", Reshape((-1, joined)), "mlp"),
            description=f"{m} × {m} patches joined into one token of the language model",
        )
        name = "Qwen2VisionTransformerPretrainedModel"
        if self.version == "2.5":
            name = "Qwen2_5_VisionTransformerPretrainedModel"
        return Block(
            name,
            {
                "patch_embed": patch_embed,
                "blocks": self._blocks(),
                "merger": merger,
            },
            flow=chain("patch_embed", "blocks", "merger"),
        )

    def _text_arguments(self) -> dict[str, Any]:
        return {
            "vocab": self.vocab,
            "hidden": self.hidden,
            "layers": self.layers,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "intermediate": self.intermediate,
        }

    def build(self) -> Built:
        text = _composite.language_model(_TEXT[self.version], self._text_arguments(), self.owner())
        prefix = _VERSIONS[self.version]
        return _composite.mount(
            f"{prefix}ForConditionalGeneration",
            f"{prefix}Model",
            {"visual": self.vision_tower(), "language_model": text},
            hidden=self.hidden,
            vocab=self.vocab,
            tie=self.tie_weights,
            parts=_PARTS,
            head=self.head == "lm",
            name=f"{prefix}ForConditionalGeneration" if self.head == "lm" else f"{prefix}Model",
            notes=self._image_note(),
        )

    def _image_note(self) -> tuple[str, ...]:
        """The cost of one image, when every size is a number."""
        if any(isinstance(v, Expr) for v in self.arguments().values()):
            return ()
        untiled = self._untiled()
        if untiled:
            return (f"no cost of an image: {untiled} (--image-size)",)
        patches, flops = self.image_cost()
        tokens = patches // self.merge_size**2
        side = self.image_size
        return (
            f"one image of {side:,} × {side:,} pixels: {patches:,} patches, {tokens:,} tokens "
            f"for the language model; the vision transformer's forward {flops:,} FLOPs in "
            "matrix products (then each token is the language model's: --flops)",
        )

    def _untiled(self) -> str:
        """Why an image of image_size² pixels does not tile into patches, merged tokens
        (and windows), or nothing."""
        step = self.patch_size * self.merge_size
        side = self.image_size
        if side % step:
            return f"image_size {side} is not a multiple of patch_size · merge_size ({step})"
        if self.version == "2.5" and (self.window % step or side % self.window):
            return (
                f"image_size {side} is not a multiple of the window ({self.window}), a "
                f"multiple of patch_size · merge_size ({step})"
            )
        return ""


def _divisor(whole: Any, part: Any) -> Any:
    """``part``, or the largest divisor of ``whole`` below it (drawn sizes made to agree)."""
    if not isinstance(whole, int) or not isinstance(part, int):
        return part
    return next(d for d in range(min(part, whole), 0, -1) if whole % d == 0)


def _even_divisor(whole: Any, part: Any) -> Any:
    """``part``, or the largest divisor of an even ``whole`` below it whose quotient is
    even (a head width rotary positions can turn)."""
    if not isinstance(whole, int) or not isinstance(part, int):
        return part
    return next(
        d for d in range(min(part, whole), 0, -1) if whole % d == 0 and (whole // d) % 2 == 0
    )


qwen2_vl = Qwen2VL.function_for()
