"""What CLIP and SigLIP share: a text tower and a vision tower (``_towers.py``) trained to
agree, their arguments, the classes transformers builds of them (the whole model, either
tower alone, with or without its projection) and the reading and writing of their
configs, whose whole-model type nests a ``text_config`` and a ``vision_config``.

The whole model's arguments are its towers' own, each read from its nested config as a
config of the tower's type (``clip_text_model``, ``clip_vision_model``) with every rule of
that type; a refusal names the nested config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from shapecalc.architectures import _towers
from shapecalc.core.declare import Architecture, Built, Reference
from shapecalc.core.dims import Dim, count_str, dim_str, known
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, each
from shapecalc.core.hfmap import HFType, config_for
from shapecalc.core.model import Model
from shapecalc.core.own import Parameter
from shapecalc.core.tree import Block, Leaf, Node
from shapecalc.layers._linear import Linear

__all__ = [
    "TEXT",
    "VISION",
    "DualEncoder",
    "described",
    "nested_read",
    "nested_write",
    "tower_keys",
    "towers_of",
    "whole_clip",
    "whole_siglip",
]

#: the arguments of each tower, in the order of their declarations
TEXT = ("vocab", "hidden", "layers", "heads", "intermediate", "context", "activation")
VISION = (
    "vision_hidden",
    "vision_layers",
    "vision_heads",
    "vision_intermediate",
    "image_size",
    "patch_size",
    "channels",
    "vision_activation",
)

#: which parts each ``part`` builds: the text tower, the vision tower
_PARTS = {
    "model": (True, True),
    "text": (True, False),
    "text-projection": (True, False),
    "vision": (False, True),
    "vision-projection": (False, True),
}


class DualEncoder(Architecture):
    """A text tower and a vision tower (CLIP, SigLIP); subclasses declare the fields and
    the family ("CLIP" or "Siglip")."""

    family: ClassVar[str]
    sequence: ClassVar[bool] = True

    part: str
    vocab: Dim
    hidden: Dim
    layers: Dim
    heads: Dim
    intermediate: Dim
    context: Dim
    activation: str
    vision_hidden: Dim
    vision_layers: Dim
    vision_heads: Dim
    vision_intermediate: Dim
    image_size: int
    patch_size: int
    channels: Dim
    vision_activation: str
    projection: Dim | None

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        for hidden, heads in (("hidden", "heads"), ("vision_hidden", "vision_heads")):
            h, a = known(getattr(self, hidden)), known(getattr(self, heads))
            if h is not None and a is not None and h % a:
                self._fail(
                    heads,
                    a,
                    f"{heads} must divide {hidden} (each head is {hidden} / {heads} wide; "
                    "num_attention_heads into hidden_size)",
                    f"{h} % {a} = {h % a}",
                )
        if self.patch_size > self.image_size:
            self._fail(
                "patch_size",
                self.patch_size,
                "patch_size must be at most image_size (an image holds at least one patch)",
                f"patch_size {self.patch_size} > image_size {self.image_size}",
            )

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """a multiple of its tower's attention heads (hidden of heads, vision_hidden of
        vision_heads)."""
        heads = {"hidden": "heads", "vision_hidden": "vision_heads"}.get(free)
        number = arguments.get(heads) if heads else None
        if number is None:
            fields = dataclasses.fields(cls)  # type: ignore[arg-type]
            number = next((f.default for f in fields if f.name == heads), None)
        return number if isinstance(number, int) and not isinstance(number, bool) else 1

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """Hidden sizes a multiple of their heads, a patch no larger than the image."""
        out = dict(arguments)
        for hidden, heads in (("hidden", "heads"), ("vision_hidden", "vision_heads")):
            h, a = out.get(hidden), out.get(heads)
            if isinstance(h, int) and isinstance(a, int) and h % a:
                out[hidden] = a * -(-h // a)
        if isinstance(out.get("image_size"), int) and isinstance(out.get("patch_size"), int):
            out["image_size"] = max(out["image_size"], out["patch_size"])
        return out

    # -- the towers ----------------------------------------------------------------------
    @property
    def eps(self) -> float:
        """The towers' LayerNorm epsilon (changes no tensor)."""
        return 1e-5 if self.family == "CLIP" else 1e-6

    def text_tower(self, pooled: bool = True) -> Block:
        """The text tower's block (CLIPTextModel, SiglipTextModel)."""
        return _towers.text_tower(
            self.family,
            vocab=self.vocab,
            hidden=self.hidden,
            layers=self.layers,
            heads=self.heads,
            intermediate=self.intermediate,
            positions=self.context,
            act=self.activation,
            eps=self.eps,
            projection=self.projection,
            pooled=pooled,
        )

    def vision_tower(self, pooled: bool = True, use_head: bool = True) -> Block:
        """The vision tower's block (CLIPVisionModel, SiglipVisionModel)."""
        return _towers.vision_tower(
            self.family,
            hidden=self.vision_hidden,
            layers=self.vision_layers,
            heads=self.vision_heads,
            intermediate=self.vision_intermediate,
            image_size=self.image_size,
            patch_size=self.patch_size,
            channels=self.channels,
            act=self.vision_activation,
            eps=self.eps,
            use_head=use_head,
            pooled=pooled,
        )

    @property
    def image_layout(self) -> tuple[str | int, ...]:
        s = self.image_size
        return ("B", self.channels if isinstance(self.channels, int) else "K", s, s)

    def sizes(self) -> dict[str, Dim]:
        """The sizes of the towers the part builds (a text model shows no vision size)."""
        text, vision = _PARTS[self.part]
        out = super().sizes()
        drop = set()
        if not text:
            drop |= {"V", "H", "L", "A", "I", "C"}
        if not vision:
            drop |= {"W", "M", "G", "J", "S", "P", "K"}
        if self.part == "vision" or (self.part == "text" and self.family == "CLIP"):
            drop.add("E")
        from shapecalc.architectures._towers import derived_heads

        out.update(
            derived_heads(
                (self.hidden, self.heads) if text else None,
                (self.vision_hidden, self.vision_heads) if vision else None,
            )
        )
        return {k: v for k, v in out.items() if k not in drop}

    def towers_notes(self, parts: Mapping[str, Node]) -> tuple[str, ...]:
        """One line a tower: its path and count."""
        return tuple(
            f"{path}: {count_str(Model(path, node).total)} parameters"
            for path, node in parts.items()
        )


def towers_of(model: DualEncoder, *, use_head: bool = True) -> Built:
    """The classes with one tower (the tower alone, or with its projection) and the whole
    model's towers, projections and logit scale, as transformers names them."""
    family = model.family
    part = model.part
    if part in ("text", "vision"):
        tower = model.text_tower() if part == "text" else model.vision_tower(use_head=use_head)
        layout = (("B", "T"),) if part == "text" else (model.image_layout,)
        return Built(tower, input_layout=layout, group_depth=2)
    if part in ("text-projection", "vision-projection"):
        text = part == "text-projection"
        name, proj = (
            ("text_model", "text_projection") if text else ("vision_model", "visual_projection")
        )
        width = model.hidden if text else model.vision_hidden
        tower = model.text_tower() if text else model.vision_tower()
        assert model.projection is not None
        projection = Leaf(Linear(width, model.projection, bias=False), role="projection")
        kind = f"{family}{'Text' if text else 'Vision'}ModelWithProjection"
        root = Block(kind, {name: tower, proj: projection}, flow=chain(name, proj))
        layout = (("B", "T"),) if text else (model.image_layout,)
        return Built(root, input_layout=layout, group_depth=3)
    raise InvalidArgumentError(
        f"{model.owner()}: part {part!r} is its own class",
        layer=model.owner(),
        field="part",
        value=part,
        rule="one of " + ", ".join(_PARTS),
    )


def whole_clip(model: DualEncoder) -> Built:
    """CLIPModel: the towers, each pooled vector into its projection (H to E, W to E, no
    bias), and ``logit_scale``, a number."""
    assert model.projection is not None
    e = model.projection
    text, vision = model.text_tower(), model.vision_tower()
    children: dict[str, Any] = {
        "text_model": text,
        "vision_model": vision,
        "visual_projection": Leaf(Linear(model.vision_hidden, e, bias=False), role="projection"),
        "text_projection": Leaf(Linear(model.hidden, e, bias=False), role="projection"),
        "logit_scale": Parameter((), role="the logits' temperature (its log)"),
    }
    root = Block(
        "CLIPModel",
        children,
        flow=each(("text_model", "text_projection"), ("vision_model", "visual_projection")),
    )
    notes = model.towers_notes({"text_model": text, "vision_model": vision})
    return Built(root, input_layout=(("B", "T"), model.image_layout), group_depth=2, notes=notes)


def whole_siglip(model: DualEncoder, use_head: bool) -> Built:
    """SiglipModel: the towers (the text tower ends in its own head) and ``logit_scale``
    and ``logit_bias``, one number each."""
    text, vision = model.text_tower(), model.vision_tower(use_head=use_head)
    children: dict[str, Any] = {
        "text_model": text,
        "vision_model": vision,
        "logit_scale": Parameter((1,), role="the logits' temperature (its log)"),
        "logit_bias": Parameter((1,), role="the logits' bias"),
    }
    root = Block("SiglipModel", children, flow=each("text_model", "vision_model"))
    notes = model.towers_notes({"text_model": text, "vision_model": vision})
    return Built(root, input_layout=(("B", "T"), model.image_layout), group_depth=2, notes=notes)


# -- configs: the whole model's nested text_config and vision_config -----------------------
def _type(cls: type[Architecture], model_type: str) -> HFType:
    return next(t for t in cls.hf if t.model_type == model_type)


def nested_read(text_type: str, vision_type: str) -> Any:
    """The ``read`` hook of a whole-model type: each tower's arguments from its nested
    config, read as a config of the tower's type (what the outer config says itself, as
    CLIP's projection_dim, is the outer's)."""

    def read(f: Any, out: dict[str, Any]) -> None:
        from shapecalc.architectures import command_for, get

        command = command_for(text_type)
        assert command is not None
        cls = get(command)
        for key, model_type, what in (
            ("text_config", text_type, "a text tower"),
            ("vision_config", vision_type, "a vision tower"),
        ):
            _, arguments = f.nested(key, (model_type,), what)
            for name in _type(cls, model_type).keys:
                if name not in f.family.keys:
                    out[name] = arguments[name]

    return read


def nested_write(text_type: str, vision_type: str) -> Any:
    """The ``write`` hook of a whole-model type: the towers' fields as its nested
    ``text_config`` and ``vision_config``, each written by its own type's declaration
    (the arguments that type does not read at their defaults)."""

    def write(model: Any, reference: Reference) -> Reference | None:
        config = dict(reference.config)
        defaults = {f.name: f.default for f in dataclasses.fields(model)}
        for key, model_type, part in (
            ("text_config", text_type, "text"),
            ("vision_config", vision_type, "vision"),
        ):
            t = _type(type(model), model_type)
            others = {n: d for n, d in defaults.items() if n not in t.keys and n != "part"}
            one = dataclasses.replace(model, part=part, **others)
            written = config_for(one, t)
            if written is None:
                return None
            config[key] = dict(written.config)
        return Reference(reference.model, reference.config_class, config)

    return write


def tower_keys(names: tuple[str, ...], vision: bool) -> dict[str, str]:
    """A tower type's keys: each argument's config field."""
    fields = {
        "vocab": "vocab_size",
        "hidden": "hidden_size",
        "layers": "num_hidden_layers",
        "heads": "num_attention_heads",
        "intermediate": "intermediate_size",
        "context": "max_position_embeddings",
        "activation": "hidden_act",
        "vision_hidden": "hidden_size",
        "vision_layers": "num_hidden_layers",
        "vision_heads": "num_attention_heads",
        "vision_intermediate": "intermediate_size",
        "image_size": "image_size",
        "patch_size": "patch_size",
        "channels": "num_channels",
        "vision_activation": "hidden_act",
    }
    del vision
    return {name: fields[name] for name in names}


def described(model: DualEncoder) -> str:
    """The model's sizes in words, for titles."""
    text, vision = _PARTS[model.part]
    parts = []
    if text:
        parts.append(f"text {dim_str(model.hidden)} × {dim_str(model.layers)} layers")
    if vision:
        parts.append(
            f"vision {dim_str(model.vision_hidden)} × {dim_str(model.vision_layers)} layers, "
            f"patch {model.patch_size} of {model.image_size}"
        )
    return ", ".join(parts)
