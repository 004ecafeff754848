"""Quantized weights, tensor by tensor: which modules a method converts, and the tensors
it stores in place of each weight, named, shaped and typed as its checkpoints hold them.

A method is one file of this package (``fp8.py``: block-scaled fp8), a frozen dataclass
subclassing :class:`Method`, listed in :data:`METHODS` under the ``quant_method`` a
config's ``quantization_config`` names it by. :func:`quantize` gives the model whose rows
are the stored tensors; its :attr:`~shapecalc.core.model.Model.parameters` stay the
unquantized model's, and its bytes are the stored tensors' exactly.

Example:

    >>> import shapecalc as sc
    >>> model = sc.Model("net", {"fc": sc.Linear(256, 256, bias=False),
    ...                          "out": sc.Linear(256, 10)})
    >>> q = quantize(model, parse_weights("fp8"))
    >>> [(r.name, r.shape, r.param.dtype) for r in q.rows()][:2]
    [('fc.weight', (256, 256), 'float8_e4m3fn'), ('fc.weight_scale_inv', (2, 2), 'float32')]
    >>> q.parameters, q.bytes("bf16")
    (68106, 70692)

The last module (``out``, as transformers leaves a classifier's head) stays as it is
unless the config names its own ``modules_to_not_convert``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, cast

from shapecalc.core.dims import Dim, known
from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.frozen import FrozenMethods, frozen
from shapecalc.core.model import Model, full_name
from shapecalc.core.spec import LayerSpec, Param, Shape, Work
from shapecalc.core.tree import Leaf, Node, Repeat, join_name, map_leaves

__all__ = [
    "METHODS",
    "Method",
    "Quantization",
    "Quantized",
    "from_config",
    "method_class",
    "parse_weights",
    "quantize",
    "quantized_bytes",
    "stored_bytes",
    "stored_shapes",
    "weights_rule",
]

#: quant_method (as a config's quantization_config names it) -> the module that holds it;
#: the methods of ``fit``'s common formats first (a search for those names imports no
#: module after them)
METHODS: dict[str, str] = {
    "fp8": "shapecalc.quant.fp8",
    "bitsandbytes": "shapecalc.quant.bnb",
    "gguf": "shapecalc.quant.gguf",
    "gptq": "shapecalc.quant.gptq",
    "awq": "shapecalc.quant.awq",
    "mxfp4": "shapecalc.quant.mxfp4",
    "compressed-tensors": "shapecalc.quant.compressed",
}


@frozen
class Method(FrozenMethods):
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

    def settings(self) -> dict[str, Any]:
        """The settings by the quantization_config's keys (JSON values)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            names = self.keys.get(f.name, (f.name,))
            if not names:
                continue
            value = getattr(self, f.name)
            out[names[0]] = list(value) if isinstance(value, tuple) else value
        return out

    def describe(self) -> str:
        """The method in a few words, for the memory account's rule."""
        return self.quant_method

    def bind(self, model: Model) -> Method:
        """The method as it applies to ``model`` (GPTQ finds the model's blocks here),
        or a one-line refusal of a model it cannot take; called once by :func:`quantize`."""
        return self

    def skipped(self, parts: tuple[str, ...]) -> bool:
        """``modules_to_not_convert``, matched as transformers' ``should_convert_module``
        matches (``quantizers/quantizers_utils.py``): a pattern from the name's start up to
        a module boundary (``model.layers.1`` holds ``model.layers.1.mlp``, not
        ``model.layers.11``), as a regular expression with the same boundary
        (``model.layers.*``), or as the name's end (``lm_head``, ``mlp.gate``). A run's
        children (``layers.{0..31}``) are matched at each of their indices."""
        if not self.skip:
            return False
        found = {_skipped(name, self.skip) for name in module_names(parts)}
        if len(found) > 1:
            key = (self.keys.get("skip") or ("modules_to_not_convert",))[0]
            raise weights_error(
                key,
                list(self.skip),
                f"{key} {echo(list(self.skip))} names some of the layers "
                f"{join_name(*parts)} and not others; shapecalc stores a run of equal "
                "layers one way",
                "a skipped module is every layer of its run or none",
            )
        return found == {True}

    def at(self, parts: tuple[str, ...]) -> Method:
        """The method as it applies to the layer at ``parts`` (compressed-tensors: the
        config group whose targets name it); itself by default."""
        return self

    def varies(self, name: str) -> bool:
        """Whether a stored tensor's length depends on the numbers, not the shapes alone
        (bitsandbytes' double-quantized state, whose JSON prints a float): a checkpoint's
        may differ from the priced one by a few bytes."""
        return False

    def appended(self, spec: LayerSpec, twin: LayerSpec | None = None) -> tuple[Param, ...]:
        """Tensors a converted layer stores after all of its own (bitsandbytes' ``SCB``
        after ``weight`` and ``bias``, as its state dict lists them). ``twin``: in a
        model's symbolic template, the same layer with the concrete sizes, for a tensor
        whose length no formula writes (a JSON text's, which holds the sizes' digits)."""
        return ()

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        """Whether the layer at ``parts`` is stored quantized (``head``: it is the
        model's output head)."""
        raise NotImplementedError

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        """The tensors stored for ``param`` of a converted layer, or None to keep it."""
        raise NotImplementedError

    def quantize_model(self, model: Model, quantization: Quantization) -> Model | None:
        """The whole model quantized by the method's own walk (a GGUF mix, whose types
        depend on each tensor's layer), or None for :func:`quantize`'s layer by layer."""
        return None

    def stored_tensors(
        self, model: Model, quantization: Quantization
    ) -> tuple[tuple[str, Param], ...] | None:
        """Every tensor the quantized model stores, each with the full name of the
        model's tensor it stores, worked out without building the quantized model (what
        a search over many formats asks); None: build it with :func:`quantize`."""
        return None

    def stored_shapes(
        self, model: Model, quantization: Quantization
    ) -> dict[tuple[tuple[int, ...], str], int] | None:
        """How many tensors of each (shape, dtype) :meth:`stored_tensors` gives, without
        naming them (what a price needs); None where it gives None."""
        return None


@frozen
class Quantization(FrozenMethods):
    """A method and where it came from (``--weights nf4``, ``config.json``)."""

    method: Method
    source: str = "--weights"

    def describe(self) -> str:
        return self.method.describe()

    def settings(self) -> dict[str, Any]:
        """The method's settings by the quantization_config's keys (JSON values)."""
        return self.method.settings()


def stored_bytes(model: Model, itemsize: int) -> tuple[dict[str, Any], Any]:
    """(bytes of the tensors stored in a dtype of their own, by that dtype; bytes of the
    others at ``itemsize``) of a model's untied rows."""
    by_dtype: dict[str, Any] = {}
    others: Any = 0
    for row in model.rows():
        if row.tied_to:
            continue
        if row.param.dtype:
            kept = by_dtype.get(row.param.dtype, 0)
            by_dtype[row.param.dtype] = kept + row.param.nbytes(itemsize)
        else:
            others += row.count * itemsize
    return by_dtype, others


def quantized_bytes(model: Model, itemsize: int) -> tuple[Any, Any]:
    """(bytes of the tensors stored in a dtype of their own, bytes of the others at
    ``itemsize``) of a model's untied rows."""
    by_dtype, others = stored_bytes(model, itemsize)
    return sum(by_dtype.values(), start=0), others


def weights_rule(model: Model, itemsize: int, dtype: str) -> str:
    """The memory account's rule for a quantized model's weights."""
    from shapecalc.core.dims import count_str

    by_dtype, others = stored_bytes(model, itemsize)
    parts = [f"{name} tensors {count_str(n)} bytes" for name, n in by_dtype.items()]
    if not (isinstance(others, int) and others == 0):
        parts.append(f"the others {itemsize} bytes each ({dtype}), {count_str(others)} bytes")
    return f"{model.quantization.describe()}: stored as " + ", ".join(parts)


#: layer classes a method asks about, by module and name: a module not imported yet
#: holds no instance, so :func:`loaded` answers without importing it (a pricing of a
#: model without experts does not load the mixtures' layers)
EXPERTS = ("shapecalc.layers._experts", "Experts")
CONV1D = ("shapecalc.layers.transformers", "Conv1D")
GPT_OSS_EXPERTS = ("shapecalc.layers.transformers", "GptOssExperts")


def loaded(spec: LayerSpec, layer: tuple[str, str]) -> Any:
    """``spec`` when it is an instance of the class ``layer`` names (:data:`EXPERTS`,
    ...), else None."""
    module = sys.modules.get(layer[0])
    cls = getattr(module, layer[1]) if module is not None else None
    return spec if cls is not None and isinstance(spec, cls) else None


def weights_error(field: str, value: Any, message: str, rule: str) -> InvalidArgumentError:
    """An error naming the ``--weights`` flag or the config key."""
    return InvalidArgumentError(message, layer="", field=field, value=value, rule=rule)


def require_choices(where: str, choices: tuple[tuple[str, Any, tuple[Any, ...]], ...]) -> None:
    """Refuse the first ``(key, value, options)`` whose value is none of its options."""
    for key, value, options in choices:
        if value not in options:
            said = ", ".join(str(o) for o in options)
            raise weights_error(
                where,
                value,
                f"{where}: {key} = {echo(value)}: must be one of {said}",
                f"{key} is one of {said}",
            )


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
    (``gptq:bits=8,group_size=32``; a list as ``[64;64]``, ``null`` for none)."""
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
        if key.strip() in options:
            raise weights_error(
                "weights",
                text,
                f"--weights {echo(text)}: {key.strip()} is given twice",
                "each setting once",
            )
        options[key.strip()] = _value(value.strip())
    for alias, cls, preset in _aliases():
        if alias == name:
            return Quantization(cls.from_options({**preset, **options}, "--weights"))
    if name in METHODS:
        return Quantization(method_class(name).from_options(options, "--weights"))
    names = sorted({a for a, _, _ in _aliases()} | set(METHODS))
    from shapecalc.core.units import DTYPE_BYTES

    dtype = {"f16": "fp16", "f32": "fp32", "float16": "fp16", "bfloat16": "bf16"}.get(name, name)
    if dtype in DTYPE_BYTES:
        raise weights_error(
            "weights",
            name,
            f"--weights {echo(name)} is a dtype, not a weights format: give --dtype {dtype} "
            "(and --weights none, or no --weights, for the weights as they are)",
            "a weights format; dtypes go to --dtype",
        )
    import difflib

    near = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
    guess = f"did you mean {', '.join(near)}?" if near else "fp8, nf4, int8, gptq, awq, q4_k_m, ..."
    raise weights_error(  # one line of ~200 characters at most, not every name
        "weights",
        name,
        f"--weights {echo(name, 24)} is not a format shapecalc knows: {guess} "
        f"({len(names) + 1} formats with none: `fit --formats` prices them)",
        "a known format",
    )


def weights_option(value: Quantization | str | None) -> Quantization | None:
    """``--weights`` as given: None or ``none`` (any case) is the model as it is, a
    :class:`Quantization` itself, text :func:`parse_weights`'s."""
    if value is None or isinstance(value, Quantization):
        return value
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    return parse_weights(value)


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


_BOUNDARY = r"(?:(?<=\.)|(?=\.|$))"


def _skipped(name: str, patterns: tuple[str, ...]) -> bool:
    for key in patterns:
        if name.endswith(key):
            return True
        try:
            if re.match(rf"(?:{key}){_BOUNDARY}", name):
                return True
        except re.error:
            continue  # transformers would fail on it; as a plain name it matched above
    return False


def module_names(parts: tuple[str, ...]) -> list[str]:
    """The module's names: one, or one per index of the runs it is in (``{0..31}``;
    a run of symbolic length at its first index)."""
    choices: list[list[str]] = []
    for part in parts:
        if not part.startswith("{"):
            choices.append([part])
            continue
        first, _, last = part.strip("{}").partition("..")
        start, _, second = first.partition(",")
        try:
            lo, hi = int(start), int(last)
            step = int(second) - lo if second else 1
            choices.append([str(i) for i in range(lo, hi + 1, max(step, 1))])
        except ValueError:
            choices.append([start])
    names = [""]
    for options in choices:
        names = [f"{n}.{o}" if n else o for n in names for o in options][:4096]
    return names


def _value(text: str) -> Any:
    """A setting's value: true, false, null, an integer, a list ``[a;b]`` (a comma
    separates settings), or text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if text.startswith("[") and text.endswith("]"):
        return [_value(v.strip()) for v in text[1:-1].split(";") if v.strip()]
    try:
        return int(text)
    except ValueError:
        return text


def _frozen(param: Param) -> Param:
    return dataclasses.replace(param, trainable=False) if param.dtype else param


@frozen
class Quantized(LayerSpec):
    """A layer whose tensors are stored quantized: its own shapes and compute, the
    method's tensors in place of its weights (not a layer kind of its own: it is not
    registered, and ``shapecalc layer`` does not list it)."""

    layer: LayerSpec
    method: Method
    #: in a symbolic template, the layer with concrete sizes (see :meth:`Method.appended`)
    twin: LayerSpec | None = None

    kind: ClassVar[str] = "Quantized"
    family: ClassVar[str] = "quantized"
    summary: ClassVar[str] = "a layer whose weights are stored quantized"

    def __post_init__(self) -> None:
        # routed experts stay routed, stored quantized (an instance's value over the class's)
        object.__setattr__(self, "routed", self.layer.routed)

    def params(self) -> Iterator[Param]:
        # a tensor stored in a dtype of its own (packed integers, fp8, scales) is frozen:
        # no quantizer's layer trains it (bitsandbytes' Params4bit and Int8Params,
        # GPTQ's and AWQ's buffers); one kept in the weights' dtype trains as before
        return _stored_params(self.layer, self.method, self.twin, _frozen)

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

    def arguments(self) -> dict[str, Any]:
        """The layer's own arguments and, under ``weights``, how they are stored."""
        return {**self.layer.arguments(), "weights": self.method.describe()}

    def changed_arguments(self) -> dict[str, Any]:
        return {**self.layer.changed_arguments(), "weights": self.method.describe()}

    def __str__(self) -> str:
        return f"{self.layer} ({self.method.describe()})"


def _converter(model: Model, method: Method) -> Callable[[tuple[str, ...], Leaf], bool]:
    """Whether ``method`` (bound to ``model``) stores the leaf at ``parts`` quantized; a
    tied tensor is left as it is (its source's shape must stay its shape)."""
    tied = {n.rpartition(".")[0] for pair in model.ties.items() for n in pair}
    # transformers' get_keys_to_not_convert: the output embeddings and the module of the
    # last parameter (a classifier's score), besides the tied tensors
    untied = [row for row in model.rows() if not row.tied_to]
    heads = {model.head, untied[-1].layer if untied else ""} - {""}

    def converted(parts: tuple[str, ...], leaf: Leaf) -> bool:
        name = join_name(*parts)
        # a mixture's router is a TopKRouter in transformers 5, not an nn.Linear: no
        # quantizer converts it (mixtral, qwen2_moe, jamba, gpt_oss modeling files)
        if name in tied or leaf.role == "router" or method.skipped(parts):
            return False
        return method.converts(parts, leaf.spec, head=name in heads)

    return converted


def _converts_none(model: Model, quantization: Quantization) -> InvalidArgumentError:
    return weights_error(
        "weights",
        quantization.describe(),
        f"{quantization.describe()} converts no layer of {model.name}",
        "a quantization converts some layer",
    )


def stored_shapes(
    model: Model, quantization: Quantization
) -> dict[tuple[tuple[int, ...], str], int] | None:
    """How many tensors of each (shape, dtype) :func:`quantize` makes the model store
    (its untied rows), worked out leaf by leaf on the model's tree, a run once for all
    of its blocks, without building the quantized model; refused as :func:`quantize`
    refuses; None where a method walks the model its own way, a size is a name, a tie
    lies inside a run, or fused experts stay unquantized (what a caller says of the
    built model): then build it."""
    method = quantization.method
    if type(method).quantize_model is not Method.quantize_model:
        return method.stored_shapes(model, quantization)
    method = method.bind(model)
    converted = _converter(model, method)
    ties = set(model.ties)
    out: dict[tuple[tuple[int, ...], str], int] = {}
    any_converted = experts_kept = False
    skipped = 0
    for parts, leaf, copies in _leaves(model.root):
        n = known(copies)
        if n is None:
            return None
        if converted(parts, leaf):
            any_converted = True
            params: Iterable[Param] = _stored_params(leaf.spec, method.at(parts))
        else:
            experts_kept = experts_kept or loaded(leaf.spec, EXPERTS) is not None
            params = leaf.spec.params()
        path = join_name(*parts)
        for param in params:
            if ties and full_name(path, param.name) in ties:
                skipped += 1
                continue
            shape = tuple(known(d) for d in param.shape)
            repeat = known(param.repeat)
            if repeat is None or any(d is None for d in shape):
                return None
            key = (cast(tuple[int, ...], shape), param.dtype)
            out[key] = out.get(key, 0) + n * repeat
    if not any_converted:
        raise _converts_none(model, quantization)
    return out if skipped == len(ties) and not experts_kept else None


def _stored_params(
    spec: LayerSpec,
    method: Method,
    twin: LayerSpec | None = None,
    kept: Callable[[Param], Param] = lambda param: param,
) -> Iterator[Param]:
    """The tensors ``method`` stores for a layer it converts: each parameter's own (as it
    is where the method keeps it), then those it appends; ``kept`` applied to the
    method's (:meth:`Quantized.params` freezes them; a price needs shapes and dtypes)."""
    for param in spec.params():
        stored = method.stored(spec, param)
        yield from (param,) if stored is None else map(kept, stored)
    yield from map(kept, method.appended(spec, twin))


def _leaves(
    node: Node, parts: tuple[str, ...] = (), copies: Dim = 1
) -> Iterator[tuple[tuple[str, ...], Leaf, Dim]]:
    """Every leaf with its place as :func:`map_leaves` gives it, and the copies its runs
    make of it."""
    if isinstance(node, Leaf):
        yield parts, node, copies
        return
    for entry in node.children:
        if isinstance(entry, Repeat):
            yield from _leaves(entry.node, (*parts, entry.part()), copies * entry.count)
        else:
            yield from _leaves(entry.node, (*parts, entry.name), copies)


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
    own = quantization.method.quantize_model(model, quantization)
    if own is not None:
        return own
    method = quantization.method.bind(model)
    converted = _converter(model, method)
    concrete: list[LayerSpec] = []

    def change(parts: tuple[str, ...], leaf: Leaf, twins: Iterator[LayerSpec] | None) -> Leaf:
        if not converted(parts, leaf):
            return leaf
        twin = next(twins, None) if twins is not None else None
        if twins is None:
            concrete.append(leaf.spec)
        elif twin is not None and type(twin) is not type(leaf.spec):
            twin = None
        return dataclasses.replace(leaf, spec=Quantized(leaf.spec, method.at(parts), twin))

    def of(m: Model, twins: Iterator[LayerSpec] | None = None) -> Model:
        return dataclasses.replace(
            m,
            root=map_leaves(m.root, lambda parts, leaf: change(parts, leaf, twins)),
            quantization=quantization,
            unquantized=m,
            make_template=None,
            factory=None,
        )

    out = of(model)
    if not concrete:
        raise _converts_none(model, quantization)
    template = model.template
    if template is not model:
        made = of(template, iter(concrete))
        object.__setattr__(out, "make_template", lambda: made)
    out.rows()  # the stored tensors now, so that a size the method refuses is said here
    return out
