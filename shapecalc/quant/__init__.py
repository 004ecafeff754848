"""Quantized weights, tensor by tensor: which modules a method converts, and the tensors
it stores in place of each weight, named, shaped and typed as its checkpoints hold them.

A method is one file of this package (``fp8.py``: block-scaled fp8), a frozen dataclass
subclassing :class:`Method`, listed in :data:`METHODS` under the ``quant_method`` a
config's ``quantization_config`` names it by. :func:`quantize` gives the model whose rows
are the stored tensors; its :attr:`~shapecalc.core.model.Model.parameters` stay the
unquantized model's, and its bytes are the stored tensors' exactly.

Example:

    >>> import shapecalc as sc
    >>> model = sc.Model("net", {"fc": sc.Linear(256, 256, bias=False)})
    >>> q = quantize(model, parse_weights("fp8"))
    >>> [(r.name, r.shape, r.param.dtype) for r in q.rows()]
    [('fc.weight', (256, 256), 'float8_e4m3fn'), ('fc.weight_scale_inv', (2, 2), 'float32')]
    >>> q.parameters, q.bytes("bf16")
    (65536, 65552)
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.frozen import frozen
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec, Param, Shape, Work
from shapecalc.core.tree import Leaf, join_name, map_leaves

__all__ = [
    "METHODS",
    "Method",
    "Quantization",
    "Quantized",
    "from_config",
    "method_class",
    "parse_weights",
    "quantize",
]

#: quant_method (as a config's quantization_config names it) -> the module that holds it
METHODS: dict[str, str] = {
    "fp8": "shapecalc.quant.fp8",
    "gptq": "shapecalc.quant.gptq",
    "awq": "shapecalc.quant.awq",
}


@dataclass(frozen=True)
class Method:
    """A quantization method with its settings (the quantization_config's own keys).

    Subclasses set :attr:`quant_method`, :attr:`aliases` (short names for
    ``--weights``, each with the settings it stands for), and implement
    :meth:`converts` (which layers it stores quantized) and :meth:`stored` (the
    tensors it stores for one of a converted layer's parameters)."""

    #: modules left as they are, by name (a config's ``modules_to_not_convert``)
    skip: tuple[str, ...] = ()

    quant_method: ClassVar[str] = ""
    #: short names for ``--weights`` -> the settings each stands for
    aliases: ClassVar[dict[str, dict[str, Any]]] = {}
    #: the config keys each field reads ({"skip": ("modules_to_not_convert",)})
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"skip": ("modules_to_not_convert",)}
    #: keys a quantization_config may carry that change no stored tensor
    ignored_keys: ClassVar[tuple[str, ...]] = ("quant_method",)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str) -> Method:
        """The method from a quantization_config (or ``--weights`` settings): each
        field from its key, an unknown key refused by name (``where``: the flag or
        config the options came from, for the message)."""
        values: dict[str, Any] = {}
        known = set(cls.ignored_keys)
        settings: list[str] = []  # the keys that change a stored tensor, for the message
        for f in dataclasses.fields(cls):
            names = cls.keys.get(f.name, (f.name,))
            known.update(names)
            settings.extend(names[:1])
            for name in names:
                if name in options and options[name] is not None:
                    values[f.name] = options[name]
                    break
        for key in options:
            if key not in known:
                raise weights_error(
                    where,
                    key,
                    f"{where}: {cls.quant_method} has no setting {echo(key)} (settings: "
                    f"{', '.join(sorted(settings))})",
                    f"a {cls.quant_method} setting",
                )
        if "skip" in values:
            skip = values["skip"]
            if not isinstance(skip, (list, tuple)) or not all(isinstance(s, str) for s in skip):
                raise weights_error(
                    where,
                    skip,
                    f"{where}: modules_to_not_convert = {echo(skip)}: must be a list of "
                    "module names",
                    "modules_to_not_convert is a list of names",
                )
            values["skip"] = tuple(skip)
        method = cls(**values)
        method.check(where)
        return method

    def check(self, where: str) -> None:
        """Refuse settings the method cannot take (bits=3 for a 4-bit-only method)."""

    def describe(self) -> str:
        """The method in a few words, for the memory account's rule."""
        return self.quant_method

    def bind(self, model: Model) -> Method:
        """The method as it applies to ``model`` (GPTQ finds the model's blocks here),
        or a one-line refusal of a model it cannot take; called once by :func:`quantize`."""
        return self

    def skipped(self, parts: tuple[str, ...]) -> bool:
        """``modules_to_not_convert``: a name that is the module's or one of its parents'
        (``lm_head``, ``model.layers.0.mlp.gate``), as transformers' quantizers match."""
        name = join_name(*parts)
        dotted = f".{name}."
        return any(f".{s}." in dotted or name.endswith("." + s) for s in self.skip)

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        """Whether the layer at ``parts`` is stored quantized (``head``: it is the
        model's output head)."""
        raise NotImplementedError

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        """The tensors stored for ``param`` of a converted layer, or None to keep it."""
        raise NotImplementedError


@dataclass(frozen=True)
class Quantization:
    """A method and where it came from (``--weights nf4``, ``config.json``)."""

    method: Method
    source: str = "--weights"

    def describe(self) -> str:
        return self.method.describe()


def weights_error(field: str, value: Any, message: str, rule: str) -> InvalidArgumentError:
    """An error naming the ``--weights`` flag or the config key."""
    return InvalidArgumentError(message, layer="", field=field, value=value, rule=rule)


def method_class(quant_method: str, where: str = "quantization_config") -> type[Method]:
    """The class of a quant_method (``gptq``), its module imported on first use."""
    module = METHODS.get(quant_method)
    if module is None:
        raise weights_error(
            where,
            quant_method,
            f"{where}: quant_method {echo(quant_method)} is not one shapecalc knows "
            f"(known: {', '.join(METHODS)})",
            "a known quant_method",
        )
    found: type[Method] = importlib.import_module(module).METHOD
    return found


def _aliases() -> Iterator[tuple[str, type[Method], dict[str, Any]]]:
    for quant_method in METHODS:
        cls = method_class(quant_method)
        for alias, options in cls.aliases.items():
            yield alias, cls, options


def parse_weights(text: str) -> Quantization:
    """``--weights NAME[:key=value,...]``: a short name (``nf4``, ``fp8``, ``q4_k_m``)
    or a quant_method, then settings by the quantization_config's own keys
    (``gptq:bits=8,group_size=32``)."""
    if not isinstance(text, str) or not text.strip():
        raise weights_error(
            "weights", text, "--weights: give a format name (fp8, nf4, ...)", "a format name"
        )
    name, _, rest = text.strip().partition(":")
    name = name.strip().lower()
    options: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise weights_error(
                "weights",
                text,
                f"--weights {echo(text)}: settings are key=value, separated by commas "
                f"(got {echo(item)})",
                "settings are key=value",
            )
        options[key.strip()] = _value(value.strip())
    for alias, cls, preset in _aliases():
        if alias == name:
            return Quantization(cls.from_options({**preset, **options}, "--weights"))
    if name in METHODS:
        return Quantization(method_class(name).from_options(options, "--weights"))
    names = sorted({a for a, _, _ in _aliases()} | set(METHODS))
    raise weights_error(
        "weights",
        name,
        f"--weights {echo(name)} is not a format shapecalc knows (formats: {', '.join(names)})",
        "a known format",
    )


def from_config(config: Mapping[str, Any], where: str = "quantization_config") -> Quantization:
    """A config's ``quantization_config``, by its ``quant_method``."""
    if not isinstance(config, Mapping):
        raise weights_error(
            where, config, f"{where} must be a mapping, got {echo(config)}", "a mapping"
        )
    quant_method = config.get("quant_method")
    if not isinstance(quant_method, str):
        raise weights_error(
            f"{where}.quant_method",
            quant_method,
            f"{where}.quant_method = {echo(quant_method)}: must name the method (gptq, ...)",
            "quant_method names the method",
        )
    cls = method_class(quant_method, f"{where}.quant_method")
    return Quantization(cls.from_options(config, where), source=where)


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        return text


@frozen
class Quantized(LayerSpec):
    """A layer whose tensors are stored quantized: its own shapes and compute, the
    method's tensors in place of its weights (not a layer kind of its own: it is not
    registered, and ``shapecalc layer`` does not list it)."""

    layer: LayerSpec
    method: Method

    kind: ClassVar[str] = "Quantized"
    family: ClassVar[str] = "quantized"
    summary: ClassVar[str] = "a layer whose weights are stored quantized"

    def params(self) -> Iterator[Param]:
        for param in self.layer.params():
            yield from self.method.stored(self.layer, param) or (param,)

    def buffers(self) -> Iterator[Param]:
        return self.layer.buffers()

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return self.layer.output_shapes(*inputs)

    def work(self, *inputs: Shape) -> Work:
        return self.layer.work(*inputs)

    def deferred_rules(self) -> list[str]:
        return self.layer.deferred_rules()

    def active(self) -> Any:
        return self.layer.active()

    def __str__(self) -> str:
        return f"{self.layer} ({self.method.describe()})"


def quantize(model: Model, quantization: Quantization) -> Model:
    """The model with the layers ``quantization`` converts stored as its method stores
    them; a tied tensor is left as it is (its source's shape must stay its shape)."""
    if model.unquantized is not None:
        raise weights_error(
            "weights",
            quantization.describe(),
            f"{model.name} is already quantized ({model.quantization.describe()})",
            "one quantization",
        )
    method = quantization.method.bind(model)
    tied = {n.rpartition(".")[0] for pair in model.ties.items() for n in pair}
    head = model.head

    def change(parts: tuple[str, ...], leaf: Leaf) -> Leaf:
        name = join_name(*parts)
        if name in tied or method.skipped(parts):
            return leaf
        if not method.converts(parts, leaf.spec, head=bool(head) and name == head):
            return leaf
        return dataclasses.replace(leaf, spec=Quantized(leaf.spec, method))

    def of(m: Model) -> Model:
        return dataclasses.replace(
            m,
            root=map_leaves(m.root, change),
            quantization=quantization,
            unquantized=m,
            make_template=None,
            factory=None,
        )

    out = of(model)
    template = model.template
    if template is not model:
        made = of(template)
        object.__setattr__(out, "make_template", lambda: made)
    return out
