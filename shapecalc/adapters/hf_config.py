"""Hugging Face configs: a model counted from its ``config.json``, offline.

A source is a ``config.json``, a folder holding one, or a Hub id (``owner/name``, or
``owner/name@revision``) found in the local Hugging Face cache (:mod:`.hub`); the network
is never used. The config's ``model_type`` picks the architecture that declares it
(:class:`~shapecalc.core.hfmap.HFType`, in the architecture's own module), and
``architectures[0]`` the class (with its head or without). Every field that changes a
shape is read as the declaration says, with the defaults of ``transformers``' own config
class where the file leaves one out. A field shapecalc does not know, that could change a
shape, is refused by name: nothing is guessed. This module knows no model type.

    >>> from shapecalc.adapters.hf_config import from_hf_config
    >>> m = from_hf_config({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    >>> m.total
    124439808
    >>> m.named_parameters()[0]
    ('transformer.wte.weight', (50257, 768))

No ``transformers`` is needed: the types' fields and defaults are declared with the
architectures (a test holds them to the installed ``transformers``' config classes).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

from shapecalc.adapters.hub import (
    Source,
    hub_cache,
    hub_repo,
    is_hub_id,
    read_config,
    resolve,
    shown_name,
    shown_value,
)
from shapecalc.core.declare import Architecture, Argument, Reference, arguments_of
from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.frozen import FrozenMethods, frozen
from shapecalc.core.hfmap import ACTIVATIONS, HFType, Part
from shapecalc.core.model import Model

__all__ = [
    "COMMON_FREE",
    "HFModel",
    "Source",
    "declared",
    "from_hf_config",
    "hf_model",
    "hub_cache",
    "hub_repo",
    "is_hub_id",
    "read_config",
    "resolve",
    "supported",
]

#: sizes are torch dimensions: int64
LARGEST = 2**63

#: fields every transformers config may hold that build nothing: the base class's own
#: (``PretrainedConfig``), generation settings older files keep, and bookkeeping
COMMON_FREE = frozenset(
    {
        "_name_or_path",
        "_commit_hash",
        "_attn_implementation",
        "_attn_implementation_autoset",
        "attn_implementation",
        "architectures",
        "auto_map",
        "model_type",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "use_bfloat16",
        "return_dict",
        "output_hidden_states",
        "output_attentions",
        "torchscript",
        "tf_legacy_loss",
        "use_cache",
        "is_encoder_decoder",
        "tie_encoder_decoder",
        "chunk_size_feed_forward",
        "classifier_dropout",
        "id2label",
        "label2id",
        "num_labels",
        "problem_type",
        "finetuning_task",
        "task_specific_params",
        "tokenizer_class",
        "prefix",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "sep_token_id",
        "decoder_start_token_id",
        "initializer_range",
        "gradient_checkpointing",
        "cache_implementation",
        # generation settings (transformers 4 kept them in config.json)
        "max_length",
        "min_length",
        "do_sample",
        "early_stopping",
        "num_beams",
        "num_beam_groups",
        "diversity_penalty",
        "temperature",
        "top_k",
        "top_p",
        "typical_p",
        "repetition_penalty",
        "length_penalty",
        "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size",
        "bad_words_ids",
        "num_return_sequences",
        "output_scores",
        "return_dict_in_generate",
        "forced_bos_token_id",
        "forced_eos_token_id",
        "remove_invalid_values",
        "exponential_decay_length_penalty",
        "suppress_tokens",
        "begin_suppress_tokens",
    }
)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_activation(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v in ACTIVATIONS)


_SOME_ACTIVATIONS = ", ".join(("silu", "gelu", "gelu_pytorch_tanh", "gelu_new", "relu"))
_ACTIVATION_RULE = (
    f"an activation transformers knows ({_SOME_ACTIVATIONS} and {len(ACTIVATIONS) - 5} more)"
)

#: fields that build nothing, with the type transformers' config classes insist on
FREE_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    # a context of no positions: every --seq-len would be past it
    "max_position_embeddings": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "max_window_layers": (_is_int, "an integer"),
    "original_max_position_embeddings": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "sliding_window": (lambda v: v is None or _is_int(v), "an integer or null"),
    "use_sliding_window": (lambda v: isinstance(v, bool), "true or false"),
    "use_cache": (lambda v: isinstance(v, bool), "true or false"),
    "layer_types": (
        lambda v: v is None or (isinstance(v, list) and all(isinstance(t, str) for t in v)),
        "a list of layer kinds or null",
    ),
    "rms_norm_eps": (_is_number, "a number"),
    "layer_norm_eps": (_is_number, "a number"),
    "layer_norm_epsilon": (_is_number, "a number"),
    "rope_theta": (_is_number, "a number"),
    "initializer_range": (_is_number, "a number"),
    "attention_dropout": (_is_number, "a number"),
    "hidden_act": (_is_activation, _ACTIVATION_RULE),
    "hidden_activation": (_is_activation, _ACTIVATION_RULE),
    "activation_function": (_is_activation, _ACTIVATION_RULE),
}

#: the dtype names a config's ``dtype``/``torch_dtype`` may give: transformers'
#: PreTrainedConfig.__init__ reads a string with ``getattr(torch, value)``, so the names
#: of torch's dtypes (torch 2.x; checked against torch in a test). ``"auto"`` and
#: ``"torch.float16"`` fail there.
TORCH_DTYPE_NAMES = frozenset(
    {
        "bfloat16",
        "bit",
        "bits16",
        "bits1x8",
        "bits2x4",
        "bits4x2",
        "bits8",
        "bool",
        "cdouble",
        "cfloat",
        "chalf",
        "complex128",
        "complex32",
        "complex64",
        "double",
        "float",
        "float16",
        "float32",
        "float4_e2m1fn_x2",
        "float64",
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e5m2",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
        "half",
        "int",
        "int1",
        "int16",
        "int2",
        "int3",
        "int32",
        "int4",
        "int5",
        "int6",
        "int64",
        "int7",
        "int8",
        "long",
        "qint32",
        "qint8",
        "quint2x4",
        "quint4x2",
        "quint8",
        "short",
        "uint1",
        "uint16",
        "uint2",
        "uint3",
        "uint32",
        "uint4",
        "uint5",
        "uint6",
        "uint64",
        "uint7",
        "uint8",
    }
)


def _check_dtype(config: Mapping[str, Any], label: str) -> None:
    """Refuse a ``dtype`` (or ``torch_dtype``) that names no torch dtype: transformers
    keeps ``dtype`` when both are given, as here."""
    key = "dtype" if config.get("dtype") is not None else "torch_dtype"
    value = config.get(key)
    if isinstance(value, str) and value not in TORCH_DTYPE_NAMES:
        raise _fail(
            key,
            value,
            f"{label}: {key} = {shown_value(value)}: not a torch dtype; give bfloat16, "
            "float16, float32 or another of torch's dtype names (float8_e4m3fn, int8...)",
            "a torch dtype name, as transformers reads it with getattr(torch, name)",
        )


# -- the model types, declared by the architectures -----------------------------------------
def declared() -> dict[str, tuple[str, HFType]]:
    """Every declared model type -> (the architecture's command, its declaration). Only
    the architecture that serves a type is imported to find it (see :func:`supported`)."""
    from shapecalc.architectures import get, model_types

    out: dict[str, tuple[str, HFType]] = {}
    for model_type, command in model_types().items():
        out[model_type] = (command, _declaration(get(command), model_type))
    return out


def supported() -> list[str]:
    """The model types shapecalc reads, sorted (no architecture is imported)."""
    from shapecalc.architectures import model_types

    return sorted(model_types())


def _declaration(cls: type[Architecture], model_type: str) -> HFType:
    found = [t for t in cls.hf if t.model_type == model_type]
    if len(found) != 1:
        raise InvalidArgumentError(
            f"{cls.__module__} mentions model_type {echo(model_type)} but declares it "
            f"{len(found)} times in hf",
            field="model_type",
            value=model_type,
            rule="each model type is declared once, in its architecture's hf",
        )
    return found[0]


# -- reading the fields ----------------------------------------------------------------------
class Fields:
    """A config's fields, read with the family's defaults and checked; remembers which
    fields it read, so that the rest can be checked against what is known."""

    def __init__(
        self,
        config: Mapping[str, Any],
        family: HFType,
        label: str,
        allow: tuple[str, ...] | list[str] = (),
    ) -> None:
        self.config = config
        self.family = family
        self.label = label
        self.used: set[str] = set()
        #: ``--allow-field`` names, a part's field dotted (``vision_config.FIELD``)
        self.allow = tuple(allow)

    def _name(self, key: str) -> str:
        """The key as the file spells it (an alias of the family's: GPT-2's
        ``hidden_size`` is ``n_embd``)."""
        for alias, canonical in self.family.aliases.items():
            if canonical == key and alias in self.config and key not in self.config:
                return alias
        return key

    def has(self, key: str) -> bool:
        return self._name(key) in self.config

    def raw(self, key: str) -> Any:
        name = self._name(key)
        self.used.add(name)
        if name in self.config:
            return self.config[name]
        return self.family.defaults.get(key)

    def fail(self, key: str, value: Any, rule: str, detail: str = "") -> InvalidArgumentError:
        shown = shown_value(value)
        return InvalidArgumentError(
            f"{self.label}: {self._name(key)} = {shown}: {rule}"
            + (f" ({detail})" if detail else ""),
            field=self._name(key),
            value=value,
            rule=rule,
        )

    def size(self, key: str, *, minimum: int = 1) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < LARGEST:
            raise self.fail(
                key, value, f"{self._name(key)} must be an integer >= {minimum} and < 2^63"
            )
        return value

    def optional(self, key: str, *, minimum: int = 1) -> int | None:
        """A size that may be null (or absent, with a null default), where the config
        class allows null (its default is null); else a size."""
        if self.family.defaults.get(key, None) is not None and key not in self.family.nullable:
            return self.size(key, minimum=minimum)
        if self.raw(key) is None:
            return None
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < LARGEST:
            raise self.fail(
                key,
                value,
                f"{self._name(key)} must be an integer >= {minimum} and < 2^63, or null",
            )
        return value

    def mapped(self, key: str, values: Mapping[Any, Any]) -> Any:
        """A field whose values stand for an argument's (``true`` for ``"all"``)."""
        value = self.raw(key)
        for said, meant in values.items():
            if value == said and type(value) is type(said):
                return meant
        listed = " or ".join(json.dumps(v) for v in values)
        raise self.fail(key, value, f"{self._name(key)} must be {listed}")

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, value, f"{self._name(key)} must be true or false")
        return value

    def indices(self, key: str) -> tuple[int, ...]:
        """Layer numbers: a list of integers >= 0, or null (none); a number listed twice
        is listed once (transformers asks whether a layer is in the list)."""
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(_is_int(i) and 0 <= i < LARGEST for i in value):
            raise self.fail(
                key, value, f"{self._name(key)} must be a list of layer numbers (integers >= 0)"
            )
        return tuple(sorted(set(value)))

    def kinds(self, key: str, options: tuple[str, ...]) -> tuple[str, ...]:
        """Layer kinds (``layer_types``): a list of ``options``, or null (the type's own
        rule); the architecture checks the length against the layers."""
        value = self.raw(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(v in options for v in value):
            bad = (
                value if not isinstance(value, list) else next(v for v in value if v not in options)
            )
            raise self.fail(
                key,
                bad,
                f"{self._name(key)} must be a list, each of " + ", ".join(options),
            )
        return tuple(value)

    def size_list(self, key: str) -> tuple[int, ...]:
        """Sizes, one per stage (``depths``): a list of integers >= 1, at least one."""
        value = self.raw(key)
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(_is_int(v) and 1 <= v < LARGEST for v in value)
        ):
            raise self.fail(key, value, f"{self._name(key)} must be a list of integers >= 1")
        return tuple(value)

    def number(self, key: str, low: float, high: float) -> float:
        value = self.raw(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not low <= value <= high
        ):
            raise self.fail(key, value, f"{self._name(key)} must be a number in [{low}, {high}]")
        return float(value)

    def fixed(self, key: str, allowed: tuple[Any, ...], why: str) -> None:
        """A field the class reads as one value only (or ignores): any other is refused."""
        if not self.has(key):
            return
        value = self.raw(key)
        if value not in allowed:
            listed = " or ".join(json.dumps(a) for a in allowed)
            raise self.fail(key, value, f"{self._name(key)} must be {listed}", why)

    def dropout(self, *keys: str) -> float:
        """The largest of the dropout rates (shapecalc's models take one, which adds no
        parameters; it sets whether masks are kept)."""
        return max(self.number(k, 0, 1) for k in keys)

    def rotary_fraction(self, *legacy: str) -> float:
        """The fraction of a head that rotary positions turn: ``partial_rotary_factor`` in
        ``rope_parameters`` (transformers 5), or the older top-level fields."""
        rope = self.raw("rope_parameters")
        if rope is not None and not isinstance(rope, dict):
            raise self.fail("rope_parameters", rope, "rope_parameters must be an object or null")
        found: Any = None
        for key in (*legacy, "partial_rotary_factor"):
            if key in self.config:
                self.used.add(key)
                found = self.config[key]
                break
        if isinstance(rope, dict) and "partial_rotary_factor" in rope:
            found = rope["partial_rotary_factor"]
        if found is None and not any(k in self.config for k in (*legacy, "partial_rotary_factor")):
            found = self.family.defaults.get("partial_rotary_factor", 1.0)
        if isinstance(found, bool) or not isinstance(found, (int, float)) or not 0 <= found <= 1:
            raise self.fail(
                "partial_rotary_factor",
                found,
                "partial_rotary_factor must be a number in [0, 1]",
            )
        return float(found)

    def labels(self, key: str) -> int | None:
        """The labels of a classification head, as transformers 5 counts them:
        ``num_labels``, else the length of ``id2label``, else None (2); the two must agree
        when both are given."""
        names = self.config.get("id2label")
        if names is not None:
            self.used.add("id2label")
            if not isinstance(names, dict) or not names:
                raise self.fail("id2label", names, "id2label must be an object of labels")
        if self.raw(key) is None:
            return None if names is None else len(names)
        value = self.size(key)
        if names is not None and len(names) != value:
            raise self.fail(
                key,
                value,
                f"{self._name(key)} must be the length of id2label",
                f"id2label has {len(names)}",
            )
        return value

    def padding(self, key: str, rows: int, table: str) -> None:
        """An embedding's padding index lies in its table (torch's nn.Embedding rule)."""
        value = self.raw(key)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not -rows <= value < rows:
            raise self.fail(
                key,
                value,
                f"{self._name(key)} must index the {table} ({-rows} <= id < {rows}): "
                "torch.nn.Embedding's padding_idx",
            )

    def nested(
        self,
        key: str,
        types: tuple[str, ...],
        what: str,
        class_name: str = "",
        absent: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A part's own config (``vision_config``) read as a config of its model type,
        one of ``types`` (the first when it names none; the field absent or null: that
        type's defaults, or the fields ``absent`` over them, as the outer config class
        fills it in), with every rule of that type: (the type, the arguments of its
        architecture, built as ``class_name`` or the type's class with a head). A
        refusal names the part (``config: vision_config: ...``) in one line."""
        given = self.raw(key)
        if given is None and absent is not None:
            given = dict(absent)
        where = f"{self.label}: {key}"
        if given is not None and not isinstance(given, dict):
            raise self.fail(key, given, f"{key} must be an object or null")
        inner = {k: v for k, v in (given or {}).items() if k != "architectures"}
        said = inner.get("model_type", types[0])
        if said not in types:
            listed = ", ".join(types)
            raise _fail(
                f"{key}.model_type",
                said,
                f"{where}: model_type {shown_value(said)} is not {what} shapecalc builds here "
                f"(it builds {listed}); nothing is counted without it",
                f"{key}'s model_type is one of {listed}",
            )
        inner["model_type"] = said
        try:
            found = hf_model(
                inner, class_name=class_name or None, allow=_allowed_in(self.allow, key)
            )
        except InvalidArgumentError as err:
            raise _in_part(err, key, where) from None
        return said, found.architecture.arguments()


# -- reading an architecture's arguments ------------------------------------------------------
def _argument(f: Fields, t: HFType, name: str, argument: Argument) -> Any:
    """One argument, from its field(s) as ``t`` declares them and its kind."""
    keys = t.fields(name)
    if len(keys) > 1:  # several rates, one argument: the largest (within its range)
        value = max(f.number(k, argument.low, argument.high) for k in keys)
        if argument.open_high and value >= argument.high:
            value = argument.high - 1e-3
        return value
    key = keys[0]
    if name in t.values:
        return f.mapped(key, t.values[name])
    if key == "partial_rotary_factor":
        return f.rotary_fraction(*(a for a, c in t.aliases.items() if c == key))
    if key == "num_labels":
        return f.labels(key)
    if argument.kind == "size":
        default = t.defaults.get(key)
        if argument.unset is None and isinstance(default, str) and f.raw(key) == default:
            return None  # the class's word for a size it works out (Mamba's "auto")
        if argument.unset is None and not (key in t.not_null and f.has(key)):
            return f.optional(key, minimum=argument.minimum)
        return f.size(key, minimum=argument.minimum)
    if argument.kind == "flag":
        return f.flag(key)
    if argument.kind == "number":
        return f.number(key, argument.low, argument.high)
    if argument.kind == "indices":
        return f.indices(key)
    if argument.kind == "kinds":
        return f.kinds(key, argument.options)
    if argument.kind == "sizes":
        return f.size_list(key)
    return f.mapped(key, {o: o for o in argument.options})


def _part(f: Fields, t: HFType, cls: type[Architecture], part: Part) -> dict[str, Any]:
    """One part of a model made of several: its nested config (``part.key``) read as a
    config of its own model type, declared by whichever architecture serves it, with
    every rule of that type (a refusal names the part's field); without what the outer
    config says itself (its own keys: the head's tying) or the part's class sets. A part
    of another architecture (a LLaMA-family language model) gives the arguments the
    composite declares by the same names; one it does not declare must be at the
    composite's default, or the model is refused: a part is never counted as another."""
    where = f"{f.label}: {part.key}"
    if part.key in f.config or not part.flat:
        given = f.raw(part.key)
        if given is None and not part.optional:
            rule = f"{part.key} describes {part.what}; a config of {t.model_type} needs it"
            raise _fail(
                part.key,
                None,
                f"{where} is missing: {part.what} ({' or '.join(part.types)}) is read from "
                "it; nothing is guessed",
                rule,
            )
        if given is not None and not isinstance(given, dict):
            raise f.fail(part.key, given, f"{part.key} must be an object or null")
        inner = {k: v for k, v in (given or {}).items() if k != "architectures"}
    else:  # a flat file: the part's fields at the top level beside the outer type's own
        first = _declaration_of(part.said.get(part.types[0], part.types[0]))[1]
        own = t.known_fields() | {p.key for p in t.all_parts}
        inner = {
            k: v
            for k, v in f.config.items()
            if k in first.known_fields() and k not in own and k != "model_type"
        }
        if not inner:
            rule = f"{part.key} describes {part.what}, nested or at the top level"
            raise _fail(
                part.key,
                None,
                f"{where} is missing, and no field of {part.what} ({part.types[0]}) is at "
                "the top level; nothing is guessed",
                rule,
            )
        f.used.update(inner)
    said = inner.get("model_type", part.types[0])
    said = part.said.get(said, said) if isinstance(said, str) else said
    if said not in part.types:
        listed = ", ".join(part.types)
        raise _fail(
            f"{part.key}.model_type",
            said,
            f"{where}: model_type {shown_value(said)} is not {part.what} shapecalc builds for "
            f"{t.model_type} (it builds {listed})",
            f"{part.key}'s model_type is one of {listed}",
        )
    allowed = _allowed_in(f.allow, part.key)
    if part.declared is not None:
        try:
            return _declared_part(inner, part.declared, cls, where, allowed)
        except InvalidArgumentError as err:
            if not err.message.startswith(f"{where}: "):
                raise
            bare = InvalidArgumentError(
                err.message.removeprefix(f"{where}: "),
                field=err.field,
                value=err.value,
                rule=err.rule,
            )
            raise _in_part(bare, part.key, where) from None
    for key in (k for name in t.keys for k in t.fields(name)):
        inner.pop(key, None)  # the outer config's own (Gemma 3 ties by its outer field)
    inner["model_type"] = said
    part_cls, part_t = _declaration_of(said)
    class_name = part_t.head_class
    try:
        found = hf_model(inner, class_name=class_name, allow=allowed)
    except InvalidArgumentError as err:
        raise _in_part(err, part.key, where) from None
    arguments = found.architecture.arguments()
    for name in {*t.keys, *part_t.classes[class_name], "labels"}:
        arguments.pop(name, None)
    if part.chosen:
        arguments[part.chosen] = said
    if part_cls is cls:
        return arguments
    return _carried(arguments, cls, part_cls, part_t, where, part.prefix)


def _declared_part(
    inner: dict[str, Any],
    declared: HFType,
    cls: type[Architecture],
    where: str,
    allow: list[str] | None = None,
) -> dict[str, Any]:
    """A part read by the composite's own declaration of its config: every field known
    or refused, the types transformers insists on, the arguments its keys name."""
    inner.pop("model_type", None)
    for key, (ok, kind) in FREE_TYPES.items():
        if key in inner and not ok(inner[key]):
            raise _fail(
                key,
                inner[key],
                f"{where}: {key} = {shown_value(inner[key])}: {key} must be {kind}",
                f"{key} is {kind}",
            )
    fields = Fields(inner, declared, where)
    known_arguments = dict((fd.name, a) for fd, a in arguments_of(cls))
    out = {name: _argument(fields, declared, name, known_arguments[name]) for name in declared.keys}
    out.update(declared.fixed)
    if declared.read is not None:
        declared.read(fields, out)
    _refuse_unknown(inner, declared, fields, allow or (), where)
    return out


def _carried(
    arguments: dict[str, Any],
    cls: type[Architecture],
    part_cls: type[Architecture],
    part_t: HFType,
    where: str,
    prefix: str = "",
) -> dict[str, Any]:
    """The arguments a part of another architecture gives the composite: those it
    declares by the same name (after ``prefix``); any other must be at the part class's
    default or its type's fixed value (else the composite would count another model)."""
    declared = {fd.name for fd, _ in arguments_of(cls)}
    defaults = {fd.name: fd.default for fd, _ in arguments_of(part_cls)}
    out: dict[str, Any] = {}
    for name, value in arguments.items():
        if prefix + name in declared:
            out[prefix + name] = value
        elif value != part_t.fixed.get(name, defaults.get(name)) and name != "head":
            shown = shown_value(value)
            raise _fail(
                name,
                value,
                f"{where}: {name} = {shown} is not modelled in {cls.command}'s {part_t.model_type} "
                "part; nothing is guessed",
                f"{cls.command} models its part with {name} at its default",
            )
    return out


def _declaration_of(model_type: str) -> tuple[type[Architecture], HFType]:
    """The architecture that declares ``model_type``, and its declaration."""
    from shapecalc.architectures import command_for, get

    command = command_for(model_type)
    if command is None:
        raise _fail(
            "model_type",
            model_type,
            f"model_type {shown_value(model_type)} is declared by no architecture",
            "a part's model type is declared by an architecture",
        )
    cls = get(command)
    return cls, _declaration(cls, model_type)


def _read(f: Fields, t: HFType, cls: type[Architecture]) -> dict[str, Any]:
    """The architecture's arguments from a config, as ``t`` declares them (a model made
    of several reads each part from its nested config)."""
    known_arguments = dict((fd.name, a) for fd, a in arguments_of(cls))
    out: dict[str, Any] = {}
    for part in t.all_parts:
        out.update(_part(f, t, cls, part))
    for name in t.keys:
        out[name] = _argument(f, t, name, known_arguments[name])
    for key, (allowed, why) in t.only.items():
        f.fixed(key, allowed, why)
    out.update(t.fixed)
    if t.read is not None:
        t.read(f, out)
    return out


def _checked(t: HFType, arguments: dict[str, Any], f: Fields) -> None:
    """transformers' rules for the heads, said with the config's names (as the file
    spells them: GPT-2's ``n_head``)."""
    if "heads" not in arguments or "hidden" not in arguments:
        return
    hidden, heads = arguments["hidden"], arguments["heads"]
    if (t.strict_heads or arguments.get("head_dim") is None) and hidden % heads:
        a, h = f._name(t.key("heads")), f._name(t.key("hidden"))
        raise f.fail(
            t.key("heads"), heads, f"{a} must divide {h}", f"{hidden} % {heads} = {hidden % heads}"
        )
    kv = arguments.get("kv_heads")
    if kv is not None and heads % kv:
        raise f.fail(
            t.key("kv_heads"),
            kv,
            f"{f._name(t.key('kv_heads'))} must divide {f._name(t.key('heads'))}",
            f"{heads} % {kv} = {heads % kv}",
        )


# -- the model -------------------------------------------------------------------------------
@frozen
class HFModel(FrozenMethods):
    """What a config describes: its model type's declaration, class, shapecalc's
    architecture and the transformers class of the same file (for ``--verify``)."""

    family: HFType
    class_name: str
    architecture: Architecture
    config: Mapping[str, Any]
    label: str
    folder: str = ""
    notes: tuple[str, ...] = ()
    #: the architecture's arguments -> the config's fields that set them
    names: Mapping[str, str] = field(default_factory=dict)
    #: the config's fields that change no tensor (its type's free fields, those fixed at
    #: the one value the class takes, and those allowed by name)
    unshaped: tuple[str, ...] = ()

    @property
    def reference(self) -> Reference:
        """transformers' class of this config, made from the file's own fields."""
        return Reference(self.class_name, self.family.config_class, dict(self.config))

    @property
    def dtype(self) -> str | None:
        """The dtype the config says the weights are stored in (``bfloat16``)."""
        value = self.config.get("dtype", self.config.get("torch_dtype"))
        return value if isinstance(value, str) else None

    @property
    def quantization(self) -> Mapping[str, Any] | None:
        value = self.config.get("quantization_config")
        return value if isinstance(value, dict) else None

    def model(self) -> Model:
        """The model, named as transformers' class names its parameters."""
        return self._named(self.architecture.model())

    def _named(self, model: Model) -> Model:
        """``model`` titled by the config's class and file, with the config's notes."""
        return dataclasses.replace(
            model,
            name=f"{self.class_name} ({self.label})",
            notes=(*model.notes, *self.notes),
            argument_names=self.names,
            unshaped=self.unshaped,
            model_type=self.family.model_type,
        )

    def checkpoint_model(self) -> Model:
        """The model named as checkpoint files store it (Mixtral's experts one by one)."""
        if not self.family.checkpoint:
            return self.model()
        changed: Architecture = dataclasses.replace(
            self.architecture,  # type: ignore[type-var]
            **self.family.checkpoint,
        )
        return self._named(changed.model())


def _architectures(config: Mapping[str, Any], family: HFType, label: str) -> str:
    value = config.get("architectures")
    supported_classes = ", ".join(family.classes)
    if value is None:
        return family.head_class
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(
            "architectures",
            value,
            f"{label}: architectures = {shown_value(value)}: must be a list of class names",
            "architectures is a list of class names",
        )
    if value[0] not in family.classes:
        raise _fail(
            "architectures",
            value[0],
            f"{label}: architectures[0] = {shown_value(value[0])}: shapecalc builds "
            f"{supported_classes} for model_type {echo(family.model_type)}",
            f"one of {supported_classes}",
        )
    return str(value[0])


def _fail(field: str, value: Any, message: str, rule: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, field=field, value=value, rule=rule)


def _source(
    source: str | os.PathLike[str] | Mapping[str, Any] | Any,
) -> tuple[dict[str, Any], str, str]:
    """(the config, how to name it, its folder) from any of the sources taken."""
    if isinstance(source, Mapping):
        return dict(source), "config", ""
    if isinstance(source, (str, os.PathLike)):
        where = resolve(os.fspath(source))
        return read_config(where), where.label, where.folder
    if callable(getattr(source, "to_dict", None)):
        return dict(source.to_dict()), "config", ""
    raise TypeError(
        "source must be a path to config.json, a folder, a Hub id, a dict or a "
        f"transformers config, got {type(source).__name__}"
    )


def _model_type(config: Mapping[str, Any], label: str) -> tuple[type[Architecture], HFType]:
    from shapecalc.architectures import command_for, get, model_types

    model_type: Any = config.get("model_type")
    command = command_for(model_type) if isinstance(model_type, str) else None
    if command is None:
        known_types = sorted(model_types())
        listed = ", ".join(known_types)
        said = (
            "has no model_type"
            if model_type is None
            else f"model_type {shown_value(model_type)} is not supported"
        )
        close = (
            difflib.get_close_matches(model_type, known_types, 3)
            if isinstance(model_type, str)
            else []
        )
        hint = f" (closest: {', '.join(close)})" if close else ""
        raise _fail(
            "model_type",
            model_type,
            f"{label}: {said}; shapecalc reads {len(known_types)} model types{hint}, "
            "listed by `shapecalc hf --help`",
            f"model_type is one of {listed}",
        )
    cls = get(command)
    return cls, _declaration(cls, model_type)


def fp8_blocks(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """The block of a block-scaled fp8 checkpoint's scales (DeepSeek-V3's
    ``quantization_config``: ``quant_method`` fp8, ``weight_block_size`` [rows, columns]),
    or None. Such a checkpoint keeps every weight's shape (one byte per number) and adds a
    ``weight_scale_inv`` per block: the config's shapes are the model's."""
    quantized = config.get("quantization_config")
    if not isinstance(quantized, dict) or quantized.get("quant_method") != "fp8":
        return None
    block = quantized.get("weight_block_size")
    if not (
        isinstance(block, list)
        and len(block) == 2
        and all(isinstance(b, int) and not isinstance(b, bool) and 0 < b < 2**31 for b in block)
    ):
        return None
    return block[0], block[1]


def modelled_quantization(config: Mapping[str, Any], t: HFType) -> str | None:
    """What the checkpoint of a quantized config stores, when shapecalc models it (block
    fp8, which keeps every shape; a method the type's checkpoint layout lists, gpt-oss's
    MXFP4), as a note; None for any other quantization, or none."""
    block = fp8_blocks(config)
    if block is not None:
        return (
            f"quantization_config fp8 in blocks of {block[0]} × {block[1]}: the checkpoint "
            "stores the linear layers' weights in float8 (1 byte each) with a "
            "weight_scale_inv per block (`shapecalc hf` lists and prices them, --weights "
            "none the model as transformers builds it; `shapecalc inspect FOLDER` checks "
            "the stored tensors)"
        )
    quantized = config.get("quantization_config")
    method = quantized.get("quant_method") if isinstance(quantized, dict) else None
    if isinstance(method, str) and method in t.quantized:
        return f"quantization_config {method}: {t.quantized[method]}"
    return None


def _refuse_quantized(
    config: Mapping[str, Any], t: HFType, allow: tuple[str, ...] | list[str], label: str
) -> None:
    quantized = config.get("quantization_config")
    if quantized is None or "quantization_config" in allow:
        return
    if modelled_quantization(config, t) is not None:
        return
    method = quantized.get("quant_method") if isinstance(quantized, dict) else None
    from shapecalc.quant import METHODS

    if isinstance(method, str) and method in METHODS:
        return  # shapecalc stores it (`hf` prices the quantized tensors by default)
    kind = shown_name(method, 30) if isinstance(method, str) else "a quantization"
    raise _fail(
        "quantization_config",
        method,
        f"{label}: quantization_config ({kind}) is not a method shapecalc stores (it "
        f"knows {', '.join(METHODS)}); `shapecalc inspect FOLDER` reports the stored "
        "tensors, and --allow-field quantization_config counts the unquantized model",
        "a quantized config is counted only when asked",
    )


def _allowed_in(allow: tuple[str, ...] | list[str], key: str) -> list[str]:
    """The ``--allow-field`` names of the part ``key`` (``vision_config.FIELD``), as the
    part's own config names them."""
    return [a.removeprefix(f"{key}.") for a in allow if a.startswith(f"{key}.")]


def _in_part(err: InvalidArgumentError, key: str, where: str) -> InvalidArgumentError:
    """A part's refusal said of the outer config: its field dotted under ``key``, and
    the advice ``--allow-field`` naming it so (``--allow-field vision_config.FIELD``)."""
    message = err.message.removeprefix("config: ")
    if err.field:
        message = message.replace(
            f"--allow-field {shown_name(err.field)} ",
            f"--allow-field {shown_name(f'{key}.{err.field}')} ",
        )
    return InvalidArgumentError(
        f"{where}: {message}",
        field=f"{key}.{err.field}" if err.field else key,
        value=err.value,
        rule=err.rule,
    )


def _has_path(config: Mapping[str, Any], name: str) -> bool:
    """Whether the config has the field ``name``, or a part's field dotted
    (``vision_config.spatial_patch_size``)."""
    if name in config:
        return True
    head, dot, rest = name.partition(".")
    inner = config.get(head) if dot else None
    return isinstance(inner, Mapping) and _has_path(inner, rest)


def _refuse_unknown(
    config: Mapping[str, Any],
    t: HFType,
    fields: Fields,
    allow: tuple[str, ...] | list[str],
    label: str,
) -> None:
    known = COMMON_FREE | t.known_fields()
    unknown = [k for k in config if k not in known and k not in fields.used and k not in allow]
    unknown = [k for k in unknown if k != "quantization_config"]
    if not unknown:
        return
    first = unknown[0]
    more = ""
    if len(unknown) > 1:
        others = ", ".join(shown_name(k, 30) for k in unknown[1:4])
        more = f" (and {others}{'…' if len(unknown) > 4 else ''})"
    raise _fail(
        first,
        config[first],
        f"{label}: field {shown_value(first)}{more} is not one shapecalc knows for model_type "
        f"{echo(t.model_type)}, and it could change a shape; nothing is guessed "
        f"(--allow-field {shown_name(first)} counts the model without it)",
        "every field of a config is known",
    )


def hf_model(
    source: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    class_name: str | None = None,
    allow: tuple[str, ...] | list[str] = (),
) -> HFModel:
    """The model a Hugging Face config describes: ``source`` is a config.json, a folder
    with one, a cached Hub id, a dict, or a transformers config object. ``class_name``
    overrides ``architectures[0]``; ``allow`` names unknown fields to count without."""
    config, label, folder = _source(source)
    if isinstance(allow, str) or not all(isinstance(a, str) for a in allow):
        raise TypeError("allow must be a list of field names")
    if class_name is not None and not isinstance(class_name, str):
        raise TypeError(f"class_name must be a class name (str), got {type(class_name).__name__}")
    cls, t = _model_type(config, label)
    chosen = class_name or _architectures(config, t, label)
    if chosen not in t.classes:
        listed = ", ".join(t.classes)
        raise _fail(
            "class",
            chosen,
            f"class {shown_value(chosen)}: shapecalc builds {listed} for model_type "
            f"{echo(t.model_type)}",
            f"one of {listed}",
        )
    _refuse_quantized(config, t, allow, label)
    absent = [a for a in allow if not _has_path(config, a)]
    if absent:
        raise _fail(
            "allow",
            absent[0],
            f"{label}: --allow-field {shown_name(absent[0])}: the config has no field "
            f"{shown_value(absent[0])}",
            "an allowed field is one the config has",
        )
    for alias, canonical in t.aliases.items():  # GPT-2's two spellings of one field
        if alias in config and canonical in config and config[alias] != config[canonical]:
            raise _fail(
                alias,
                config[alias],
                f"{label}: {alias} = {shown_value(config[alias])} and {canonical} = "
                f"{shown_value(config[canonical])} name one size twice and disagree",
                "a field given in two spellings has one value",
            )
    for key, (ok, kind) in FREE_TYPES.items():
        if key in config and not ok(config[key]):
            raise _fail(
                key,
                config[key],
                f"{label}: {key} = {shown_value(config[key])}: {key} must be {kind}",
                f"{key} is {kind}",
            )
    _check_dtype(config, label)
    fields = Fields(config, t, label, allow)
    arguments = _read(fields, t, cls)
    _refuse_unknown(config, t, fields, allow, label)
    arguments.update(t.classes[chosen])
    if arguments.get("head") not in getattr(cls, "label_heads", ()):
        # read by the class only with a classification head (Whisper's projector width too)
        for name, unset in getattr(cls, "label_arguments", {"labels": None}).items():
            if name in arguments:
                arguments[name] = unset
        if "labels" in arguments:
            fields.used -= {"num_labels", "id2label"}
    _checked(t, arguments, fields)
    try:
        architecture = cls(**arguments)
    except InvalidArgumentError as err:
        raise _renamed(err, label, t) from None
    names = {}
    for argument in t.keys:
        key = t.key(argument)
        if key in fields.used or key in t.defaults:
            names[argument] = fields._name(key)
    names.update(t.explained)
    notes: list[str] = [] if t.notes is None else t.notes(config, arguments)
    defaulted = _defaulted(t, cls, fields)
    if defaulted:
        notes.append(f"left to {t.config_class}'s defaults: {defaulted}")
    if config.get("architectures") is None and class_name is None:
        notes.append(f"the config names no class: {chosen}, the class with the head")
    stored = modelled_quantization(config, t)
    if stored is not None and "quantization_config" not in allow:
        notes.append(stored)
    free = t.free | set(t.only) | set(FREE_TYPES) | set(allow)
    # a quantization changes what the checkpoint stores: said in a note, not listed as a
    # field that changes no tensor
    unshaped = tuple(
        k for k in config if k in free and k not in fields.used and k != "quantization_config"
    )
    return HFModel(t, chosen, architecture, config, label, folder, tuple(notes), names, unshaped)


def _defaulted(t: HFType, cls: type[Architecture], fields: Fields) -> str:
    """The sizes and switches the config leaves to its class's defaults, with the values
    they took (``hidden_size 4,096``)."""
    kinds = {f.name: a.kind for f, a in arguments_of(cls)}
    taken = []
    for argument in t.keys:
        key = t.key(argument)
        value = t.defaults.get(key)
        if kinds.get(argument) in ("size", "flag") and not fields.has(key) and value is not None:
            shown = (
                f"{value:,}"
                if isinstance(value, int) and not isinstance(value, bool)
                else (json.dumps(value))
            )
            taken.append(f"{key} {shown}")
    return ", ".join(taken)


def _renamed(err: InvalidArgumentError, label: str, t: HFType) -> InvalidArgumentError:
    """An architecture's refusal, with the field named as the config names it."""
    name = t.key(err.field) if err.field and err.field in t.keys else (err.field or "")
    message = err.message
    if err.layer and message.startswith(f"{err.layer}"):
        message = message.split(": ", 1)[-1]
    return InvalidArgumentError(
        f"{label}: {name} = {shown_value(err.value)}: {message}",
        field=name,
        value=err.value,
        rule=err.rule,
    )


def from_hf_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    class_name: str | None = None,
    allow: tuple[str, ...] | list[str] = (),
) -> Model:
    """The model a Hugging Face ``config.json`` describes (a path, a folder, a cached Hub
    id, a dict or a transformers config), its ``named_parameters()`` as transformers
    names them.

        >>> m = from_hf_config({"model_type": "llama", "hidden_size": 64,
        ...     "num_attention_heads": 4, "num_hidden_layers": 2, "intermediate_size": 128,
        ...     "vocab_size": 100})
        >>> m.total, m.named_parameters()[-1]
        (95040, ('lm_head.weight', (100, 64)))
    """
    return hf_model(source, class_name=class_name, allow=allow).model()
