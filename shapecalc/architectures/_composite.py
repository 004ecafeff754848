"""Models made of several: a vision tower, a projector and a language model, each built
by its own family and mounted under the names the composite class gives them.

A composite architecture (Qwen2-VL, Mistral 3, LLaVA, ...) declares its parts' sizes as
its own arguments, and its Hugging Face types declare each part's nested config
(:class:`~shapecalc.core.hfmap.Part`: ``vision_config``, ``text_config``), which
``adapters/hf_config.py`` reads as a config of the part's own model type. Here: the
language model built by the family that serves its model type (:func:`language_model`),
the parts mounted as the composite class holds them (:func:`mount`), and the count of
each part beside the total (:func:`part_notes`).

    >>> from shapecalc.core.tree import Leaf
    >>> from shapecalc.layers.linear import Linear
    >>> built = mount(
    ...     "LlavaForConditionalGeneration",
    ...     "LlavaModel",
    ...     {"vision_tower": Leaf(Linear(4, 8)), "language_model": Leaf(Linear(8, 8))},
    ...     hidden=8,
    ...     vocab=10,
    ...     tie=False,
    ...     parts={"vision_tower": "the vision tower", "language_model": "the language model"},
    ... )
    >>> [n for n, _ in Model("m", built.root).named_parameters()][:2]
    ['model.vision_tower.weight', 'model.vision_tower.bias']
    >>> built.notes[0]
    'model.vision_tower (the vision tower): 40 parameters'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shapecalc.core.declare import Architecture, Built, arguments_of
from shapecalc.core.dims import Dim, count_str
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, Node
from shapecalc.layers._linear import Linear

__all__ = [
    "consistent_part",
    "family_of",
    "forward_products",
    "language_model",
    "mount",
    "part_family",
    "part_notes",
]


def family_of(model_type: str) -> type[Architecture]:
    """The architecture that serves ``model_type`` (LLaMA serves ``qwen2``)."""
    from shapecalc.architectures import command_for, get

    command = command_for(model_type)
    if command is None:  # a composite names its part's type; a test holds them declared
        raise LookupError(f"no architecture declares model_type {model_type!r}")
    return get(command)


def part_family(model_type: str, arguments: Mapping[str, Any], owner: str) -> Architecture:
    """The part of type ``model_type`` as its own family makes it (no head), with the
    arguments every model of that type has (Qwen2's q, k and v biases) and ``arguments``;
    a refusal of its rules is the composite's (``owner``), naming the same field."""
    cls = family_of(model_type)
    declared = next(t for t in cls.hf if t.model_type == model_type)
    body_class = next(
        (name for name, sets in declared.classes.items() if sets.get("head") == "none"), None
    )
    head = {"head": "none"} if body_class is not None else {}
    try:
        return cls(**{**declared.fixed, **arguments, **head})
    except InvalidArgumentError as err:
        message = err.message
        if err.layer and message.startswith(f"{err.layer}: "):
            message = message.removeprefix(f"{err.layer}: ")
        raise InvalidArgumentError(
            f"the {model_type} part: {message}",
            layer=owner,
            field=err.field,
            value=err.value,
            rule=err.rule,
        ) from None


def language_model(model_type: str, arguments: Mapping[str, Any], owner: str = "") -> Node:
    """The body of the language model of type ``model_type`` (no head), built by its own
    family (:func:`part_family`): the tree the composite mounts as its language model."""
    return part_family(model_type, arguments, owner).build().root


def consistent_part(
    model_type: str, arguments: dict[str, Any], names: tuple[str, ...], prefix: str = ""
) -> dict[str, Any]:
    """Drawn arguments of a composite made consistent for one part, by the part's own
    family (``prefix`` + each of ``names`` is the composite's argument)."""
    cls = family_of(model_type)
    defaults = {f.name: f.default for f, _ in arguments_of(cls)}
    part = {n: arguments.get(prefix + n, defaults.get(n)) for n in names}
    fixed = next(t for t in cls.hf if t.model_type == model_type).fixed
    made = cls.consistent({**defaults, **fixed, **part})
    return {**arguments, **{prefix + n: made[n] for n in names}}


def part_notes(parts: Mapping[str, tuple[str, Node]]) -> tuple[str, ...]:
    """One line a part: its path, what it is and its count (a formula when sizes are
    letters), as each part's own model counts it."""
    lines = []
    for path, (what, node) in parts.items():
        total: Dim = Model(path, node).total
        lines.append(f"{path} ({what}): {count_str(total)} parameters")
    return tuple(lines)


def forward_products(root: Node, inputs: tuple[tuple[Dim, ...], ...]) -> Dim:
    """The matrix-product FLOPs of one forward of ``root`` on ``inputs`` (a vision
    tower on one image's patches), as ``shapecalc.analyze`` follows its flow: what
    PyTorch's FlopCounterMode counts."""
    from shapecalc.analysis.cost import analyze

    cost = analyze(Model("part", root), inputs)
    return 2 * cost.macs


def mount(
    kind: str,
    base_kind: str,
    children: Mapping[str, Node],
    *,
    hidden: Dim,
    vocab: Dim,
    tie: bool,
    parts: Mapping[str, str],
    embedding: str = "language_model.embed_tokens",
    head: bool = True,
    flow: Any = None,
    input_layout: tuple[tuple[str | int, ...], ...] = (("B", "T"),),
    name: str = "",
    notes: tuple[str, ...] = (),
) -> Built:
    """The composite class ``kind``: ``model`` (the class ``base_kind`` holding the parts
    ``children`` by their names) and ``lm_head`` (V × H, the token embedding itself with
    ``tie``), as transformers' ``*ForConditionalGeneration`` holds them; with ``head``
    False, ``base_kind`` alone. ``parts`` says what each child is (a line of the notes
    each, with its count). ``flow`` is the base's forward (the language model's by
    default: the image features enter it in place of tokens)."""
    base_flow = flow if flow is not None else chain("language_model")
    model = Block(base_kind, dict(children), flow=base_flow)
    prefix = "model." if head else ""
    said = notes
    notes = part_notes({f"{prefix}{k}": (what, children[k]) for k, what in parts.items()})
    if not head:
        notes = (*notes, *said)
        return Built(model, notes=notes, input_layout=input_layout, group_depth=1, name=name)
    lm = Leaf(Linear(hidden, vocab, bias=False), "a score per token", "head")
    root = Block(kind, {"model": model, "lm_head": lm}, flow=chain("model", "lm_head"))
    ties = {"lm_head.weight": f"model.{embedding}.weight"} if tie else {}
    notes = (
        *notes,
        f"lm_head (the head): {count_str(Model('h', lm).total)} parameters",
        *said,
    )
    return Built(
        root,
        ties=ties,
        notes=notes,
        input_layout=input_layout,
        group_depth=2,
        head="lm_head",
        name=name,
    )
