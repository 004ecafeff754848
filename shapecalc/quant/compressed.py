"""compressed-tensors (``quant_method: compressed-tensors``; llm-compressor's checkpoints),
the weights of the ``nn.Linear`` layers each config group targets, stored compressed.

A config group names its ``targets`` (``Linear``, or ``re:`` a regular expression matched
from a module name's start) and a scheme: the weights' ``num_bits``, ``type`` (int or
float), ``symmetric``, ``strategy`` (tensor, channel, group, block, tensor_group) with its
``group_size`` or ``block_structure``, and the input activations'. ``ignore`` lists the
modules left alone (names, ``re:`` patterns, or class names). The tensors, in the order
the compressor leaves them in the module:

- ``pack-quantized`` (int, 1 to 8 bits): ``weight_scale`` at the model's dtype,
  (out, 1) per channel, (out, ⌈in/g⌉) per group, (1,) per tensor; ``weight_zero_point``
  when asymmetric, packed into int32 along the rows, (⌈out·bits/32⌉, groups), for
  channel and group (int8 as the scale's shape per tensor); ``weight_packed`` int32 (out,
  ⌈in·bits/32⌉); ``weight_shape`` int64 (2,).
- ``int-quantized``, ``float-quantized``, ``naive-quantized`` (8 bits): ``weight_scale``
  (per block: (⌈out/rows⌉, ⌈in/cols⌉)), ``weight_zero_point`` when asymmetric (int8, or
  the float type), then ``weight`` as int8 or float8_e4m3fn.
- ``nvfp4-pack-quantized`` (float 4-bit, tensor_group of 16): ``weight_global_scale``
  float32 (1,), ``weight_packed`` uint8 (out, in/2), ``weight_scale`` float8_e4m3fn (out,
  ⌈in/16⌉); input activations of ``dynamic: local`` add ``input_global_scale`` float32
  (1,) first.

Static input activations add ``input_scale`` (1,) per tensor first. Output activations,
a KV-cache scheme, sparsity, ``actorder`` and a ``scale_dtype`` are not modelled: such a
config is refused by name, never guessed.

Sources: ``compressed_tensors/quantization/lifecycle/initialize.py``
(``initialize_qparams``: shapes and dtypes), ``compressed_tensors/compressors/``
(``pack_quantized``, ``naive_quantized``, ``nvfp4``: ``compress``),
``compressed_tensors/utils/match.py`` (``is_match``, ``match_name``), and
``quantization/quant_args.py`` (the defaults a scheme takes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div, known
from shapecalc.core.errors import echo
from shapecalc.core.frozen import FrozenMethods, frozen
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.core.tree import join_name
from shapecalc.layers._linear import Linear
from shapecalc.quant import Method, module_names, weights_error

__all__ = ["METHOD", "CompressedTensors"]

#: the formats shapecalc stores, and the weights each takes
FORMATS = {
    "pack-quantized": "int weights of 1 to 8 bits",
    "int-quantized": "8-bit int weights",
    "naive-quantized": "8-bit weights",
    "float-quantized": "8-bit float weights",
    "nvfp4-pack-quantized": "4-bit float weights in groups of 16",
}
STRATEGIES = ("tensor", "channel", "group", "block", "tensor_group")
#: keys of a scheme's quantization args shapecalc reads or that change no tensor
ARGS = {
    "num_bits",
    "type",
    "symmetric",
    "strategy",
    "group_size",
    "block_structure",
    "dynamic",
    "observer",
    "observer_kwargs",
    "actorder",
    "scale_dtype",
    "zp_dtype",
}


def ceil_div(n: Dim, d: int) -> Dim:
    return floor_div(n + (d - 1), d)


@frozen
class Args(FrozenMethods):
    """One tensor's quantization args (a scheme's ``weights`` or ``input_activations``)."""

    bits: int
    kind: str
    symmetric: bool
    strategy: str
    group: int | None
    block: tuple[int, int] | None
    dynamic: Any


@frozen
class Scheme(FrozenMethods):
    name: str
    targets: tuple[str, ...]
    format: str
    weights: Args
    inputs: Args | None


def _fail(where: str, value: Any, rule: str) -> Exception:
    return weights_error(where, value, f"{where} = {echo(value)}: {rule}", rule)


def _int(where: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(where, value, f"must be an integer from {low} to {high}")
    return value


def _args(where: str, raw: Any) -> Args:
    if not isinstance(raw, Mapping):
        raise _fail(where, raw, "must be a mapping of quantization args")
    for key in raw:
        if key not in ARGS:
            raise _fail(f"{where}.{key}", raw[key], "not a quantization arg shapecalc knows")
    for key in ("actorder", "scale_dtype", "zp_dtype"):
        if raw.get(key) not in (None, "static") or (key != "actorder" and raw.get(key)):
            raise _fail(f"{where}.{key}", raw.get(key), "not modelled by shapecalc (null only)")
    bits = _int(f"{where}.num_bits", raw.get("num_bits", 8), 1, 8)
    kind = raw.get("type", "int")
    if kind not in ("int", "float"):
        raise _fail(f"{where}.type", kind, "must be int or float")
    symmetric = raw.get("symmetric", True)
    if not isinstance(symmetric, bool):
        raise _fail(f"{where}.symmetric", symmetric, "must be true or false")
    group = raw.get("group_size")
    strategy = raw.get("strategy")
    if strategy is None:  # QuantizationArgs' rule: inferred from the group size
        strategy = "tensor" if group is None else "channel" if group == -1 else "group"
    if strategy not in (*STRATEGIES, "token"):
        raise _fail(f"{where}.strategy", strategy, f"must be one of {', '.join(STRATEGIES)}")
    if strategy in ("group", "tensor_group"):
        group = _int(f"{where}.group_size", group, 1, 2**31)
    elif group not in (None, -1):
        raise _fail(f"{where}.group_size", group, "a group size needs strategy group")
    else:
        group = None
    block = raw.get("block_structure")
    if strategy == "block":
        if not (
            isinstance(block, (list, tuple))
            and len(block) == 2
            and all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)
        ):
            raise _fail(f"{where}.block_structure", block, "must be two positive integers")
        block = (block[0], block[1])
    elif block is not None:
        raise _fail(f"{where}.block_structure", block, "a block structure needs strategy block")
    dynamic = raw.get("dynamic", False)
    if dynamic not in (True, False, "local"):
        raise _fail(f"{where}.dynamic", dynamic, "must be true, false or local")
    return Args(bits, kind, symmetric, strategy, group, block, dynamic)


def _scheme(name: str, raw: Any, default_format: Any) -> Scheme:
    where = f"config_groups.{name}"
    if not isinstance(raw, Mapping):
        raise _fail(where, raw, "must be a mapping (targets, weights, ...)")
    targets = raw.get("targets")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise _fail(f"{where}.targets", targets, "must be a list of names")
    for target in targets:
        if not target.startswith("re:") and target != "Linear":
            raise _fail(
                f"{where}.targets",
                target,
                "shapecalc stores Linear layers: targets are Linear or re: patterns",
            )
        _pattern(f"{where}.targets", target)
    fmt = raw.get("format") or default_format
    if fmt not in FORMATS:
        raise _fail(f"{where}.format", fmt, f"must be one of {', '.join(FORMATS)}")
    if raw.get("output_activations") is not None:
        raise _fail(f"{where}.output_activations", raw["output_activations"], "not modelled")
    if raw.get("weights") is None:
        raise _fail(f"{where}.weights", None, "a group quantizes weights")
    weights = _args(f"{where}.weights", raw["weights"])
    if weights.strategy == "token" or weights.dynamic:
        raise _fail(f"{where}.weights.strategy", weights.strategy, "weights are static")
    inputs = None
    if raw.get("input_activations") is not None:
        inputs = _args(f"{where}.input_activations", raw["input_activations"])
        if inputs.dynamic is False and (inputs.strategy != "tensor" or not inputs.symmetric):
            raise _fail(
                f"{where}.input_activations",
                inputs.strategy,
                "static input activations are modelled symmetric, per tensor",
            )
    rule = _format_rule(fmt, weights)
    if rule:
        raise _fail(f"{where}.weights", raw["weights"], rule)
    for key in raw:
        if key not in ("targets", "weights", "input_activations", "output_activations", "format"):
            raise _fail(f"{where}.{key}", raw[key], "not a config group key shapecalc knows")
    return Scheme(name, tuple(targets), fmt, weights, inputs)


def _format_rule(fmt: str, w: Args) -> str:
    """Why ``fmt`` cannot store weights ``w`` ("" when it can)."""
    if fmt == "pack-quantized":
        return "" if w.kind == "int" else "pack-quantized stores int weights"
    if fmt == "nvfp4-pack-quantized":
        ok = w.kind == "float" and w.bits == 4 and w.strategy == "tensor_group" and w.symmetric
        return "" if ok else "nvfp4 stores symmetric 4-bit floats in tensor groups"
    if w.bits != 8:
        return f"{fmt} stores 8-bit weights"
    if fmt == "int-quantized" and w.kind != "int":
        return "int-quantized stores int weights"
    if fmt == "float-quantized" and w.kind != "float":
        return "float-quantized stores float weights"
    if w.strategy == "tensor_group":
        return f"{fmt} does not store tensor groups"
    return ""


def _pattern(where: str, target: str) -> None:
    if target.startswith("re:"):
        try:
            re.compile(target[3:])
        except re.error:
            raise _fail(where, target, "not a regular expression") from None


def _matches(name: str, target: str) -> bool:
    """``match_name``: a ``re:`` pattern from the name's start, or the name itself; the
    class ``Linear`` (every layer shapecalc stores here is one)."""
    if target.startswith("re:"):
        return re.match(target[3:], name) is not None
    return target in (name, "Linear")


@frozen
class CompressedTensors(Method):
    """compressed-tensors' quantization groups: each group's targets stored in its
    format (pack-quantized, float-quantized, naive...) with its scales and zero points."""

    #: the config's groups and ignore list as JSON text (kept hashable)
    config: str = "{}"
    #: the config group a layer's tensors follow (see :meth:`at`)
    group: str = ""

    quant_method: ClassVar[str] = "compressed-tensors"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {}
    keys: ClassVar[dict[str, tuple[str, ...]]] = {"skip": ()}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str) -> Method:
        known_keys = {
            "quant_method",
            "config_groups",
            "format",
            "ignore",
            "quantization_status",
            "kv_cache_scheme",
            "sparsity_config",
            "transform_config",
            "global_compression_ratio",
            "version",
            "provider",
        }
        for key in options:
            if key not in known_keys:
                raise weights_error(
                    where,
                    key,
                    f"{where}: compressed-tensors has no setting {echo(key)} (settings: "
                    f"{', '.join(sorted(known_keys - {'quant_method'}))})",
                    "a compressed-tensors setting",
                )
        for key in ("kv_cache_scheme", "sparsity_config", "transform_config"):
            if options.get(key):
                raise _fail(f"{where}.{key}", options[key], "not modelled by shapecalc (null)")
        status = options.get("quantization_status", "compressed")
        if status != "compressed":
            raise _fail(
                f"{where}.quantization_status", status, "shapecalc stores compressed checkpoints"
            )
        try:
            text = json.dumps(
                {
                    "config_groups": options.get("config_groups"),
                    "format": options.get("format"),
                    "ignore": options.get("ignore") or [],
                },
                sort_keys=True,
            )
        except (TypeError, ValueError):
            raise _fail(where, options, "must be JSON values") from None
        method = cls(config=text)
        method.check(where)
        return method

    @cached_property
    def _parsed(self) -> tuple[tuple[Scheme, ...], tuple[str, ...]]:
        raw = json.loads(self.config)
        groups = raw["config_groups"]
        if not isinstance(groups, Mapping) or not groups:
            raise _fail("config_groups", groups, "must be a mapping of named groups")
        schemes = tuple(_scheme(str(k), v, raw["format"]) for k, v in groups.items())
        ignore = raw["ignore"]
        if not isinstance(ignore, list) or not all(isinstance(i, str) for i in ignore):
            raise _fail("ignore", ignore, "must be a list of names")
        for item in ignore:
            _pattern("ignore", item)
        return schemes, tuple(ignore)

    def check(self, where: str) -> None:
        self._parsed  # noqa: B018 (parsed now, so that a bad group is said here)

    def settings(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.config)
        return out

    def describe(self) -> str:
        schemes, _ = self._parsed
        parts = []
        for s in schemes:
            w = s.weights
            how = w.strategy if w.group is None else f"{w.strategy} of {w.group}"
            parts.append(f"{s.format} {w.kind}{w.bits} per {how}")
        return "compressed-tensors " + "; ".join(dict.fromkeys(parts))

    def _scheme_of(self, parts: tuple[str, ...]) -> Scheme | None:
        schemes, ignore = self._parsed
        names = module_names(parts)
        found: set[str | None] = set()
        for name in names:
            chosen = None
            if not any(_matches(name, i) for i in ignore):
                chosen = next(
                    (s.name for s in schemes if any(_matches(name, t) for t in s.targets)), None
                )
            found.add(chosen)
        if len(found) > 1:
            raise weights_error(
                "config_groups",
                join_name(*parts),
                f"compressed-tensors: the config's targets and ignore treat the layers "
                f"{join_name(*parts)} differently; shapecalc stores a run of equal layers "
                "one way",
                "a run of equal layers is quantized alike",
            )
        group = found.pop()
        return next((s for s in schemes if s.name == group), None)

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        if type(spec) is not Linear:
            return False
        return self._scheme_of(parts) is not None

    def at(self, parts: tuple[str, ...]) -> Method:
        scheme = self._scheme_of(parts)
        return self if scheme is None else replace(self, group=scheme.name)

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        # the weight leaves its place; the compressed tensors follow the bias
        return () if param.name == "weight" and isinstance(spec, Linear) else None

    def appended(self, spec: LayerSpec, twin: LayerSpec | None = None) -> tuple[Param, ...]:
        if not isinstance(spec, Linear):
            return ()
        schemes, _ = self._parsed
        scheme = next((s for s in schemes if s.name == self.group), schemes[0])
        weight = next(p for p in spec.params() if p.name == "weight")
        return self._tensors(spec, scheme, weight)

    def _tensors(self, spec: Linear, scheme: Scheme, param: Param) -> tuple[Param, ...]:
        n_out, n_in = spec.out_features, spec.in_features
        w = scheme.weights
        out: list[Param] = []
        inputs = scheme.inputs
        if inputs is not None and inputs.strategy == "tensor_group":
            out.append(_own("input_global_scale", (1,), "the inputs' global scale", "float32"))
        if inputs is not None and inputs.dynamic is False:
            out.append(Param("input_scale", (1,), "the inputs' scale", trainable=False))
        if w.strategy == "tensor_group":
            out.append(_own("weight_global_scale", (1,), "the weights' global scale", "float32"))
        columns = known(n_in)
        if w.group is not None and columns is not None and columns % w.group:
            raise weights_error(
                "group_size",
                w.group,
                f"compressed-tensors: group_size {w.group} does not divide the "
                f"{columns} input features of a layer (its compressor refuses it)",
                "the group size divides the input features",
            )
        scale_shape = _scale_shape(w, n_out, n_in)
        what = f"one scale per {w.strategy}" + (f" of {w.group}" if w.group else "")
        fmt = scheme.format
        if fmt == "nvfp4-pack-quantized":
            cols = known(n_in)
            if cols is not None and cols % 2:
                raise weights_error(
                    "weights",
                    cols,
                    f"nvfp4: {dim_str(n_in)} input features do not pack two to a byte",
                    "an even number of input features",
                )
            out.append(
                _own(
                    "weight_packed",
                    (n_out, floor_div(n_in, 2)),
                    f"{param.role}; fp4 (e2m1), two to a byte",
                    "uint8",
                )
            )
            out.append(_own("weight_scale", scale_shape, what, "float8_e4m3fn"))
            return tuple(out)
        out.append(Param("weight_scale", scale_shape, what, trainable=False))
        if not w.symmetric:
            out.append(self._zero_point(w, fmt, scale_shape, n_out))
        if fmt == "pack-quantized":
            out.append(
                _own(
                    "weight_packed",
                    (n_out, ceil_div(n_in * w.bits, 32)),
                    f"{param.role}; {w.bits}-bit integers, 32 of them in {w.bits} int32",
                    "int32",
                )
            )
            out.append(_own("weight_shape", (2,), "the weight's shape (out, in)", "int64"))
        else:
            dtype = "float8_e4m3fn" if w.kind == "float" else "int8"
            out.append(_own("weight", param.shape, f"{param.role}; {dtype}", dtype))
        return tuple(out)

    def _zero_point(self, w: Args, fmt: str, scale_shape: tuple[Dim, ...], n_out: Dim) -> Param:
        if fmt == "pack-quantized" and w.strategy in ("group", "channel"):
            return _own(
                "weight_zero_point",
                (ceil_div(n_out * w.bits, 32), scale_shape[-1]),
                f"zero points, {w.bits}-bit, packed into int32 down the rows",
                "int32",
            )
        dtype = "float8_e4m3fn" if w.kind == "float" else "int8"
        return _own("weight_zero_point", scale_shape, "zero points", dtype)


def _own(name: str, shape: tuple[Dim, ...], role: str, dtype: str) -> Param:
    return Param(name, shape, role, trainable=False, dtype=dtype)


def _scale_shape(w: Args, n_out: Dim, n_in: Dim) -> tuple[Dim, ...]:
    """``initialize_qparams``' expected shape."""
    if w.strategy == "tensor":
        return (1,)
    if w.strategy == "channel":
        return (n_out, 1)
    if w.strategy in ("group", "tensor_group"):
        assert w.group is not None
        return (n_out, ceil_div(n_in, w.group))
    assert w.block is not None
    return (ceil_div(n_out, w.block[0]), ceil_div(n_in, w.block[1]))


METHOD = CompressedTensors
