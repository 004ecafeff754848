"""How an architecture maps to Hugging Face ``transformers``: the model types it serves,
declared in the architecture's own module.

An :class:`HFType` says, for one ``model_type``: transformers' config class, the classes a
config may name (each with the architecture arguments it sets: its head), which config
field sets each argument (and the other spellings a file may use), the config class's
defaults, the arguments every model of the type has, the fields that change no tensor,
and the checkpoint names transformers drops on load. From that one declaration come
reading a ``config.json`` (``adapters/hf_config.py``), ``--verify``'s class and config
(:func:`reference_of`), the list of types in ``shapecalc hf --help`` and the docs, and the
test strategy that draws configs. What a table cannot say goes in two small hooks:
``read`` (config -> arguments) and ``write`` (arguments -> config).

    >>> from shapecalc.architectures import get
    >>> t = get("gpt2").hf[0]
    >>> t.model_type, t.config_class, t.key("hidden")
    ('gpt2', 'GPT2Config', 'n_embd')
    >>> get("gpt2")(vocab=100, hidden=64, layers=2, heads=4).reference().config["n_embd"]
    64
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

from shapecalc.core.frozen import FrozenMethods, frozen

__all__ = [
    "ACTIVATIONS",
    "HFType",
    "Part",
    "Reference",
    "config_for",
    "model_types_of",
    "reference_of",
]

#: activations transformers' ACT2FN knows (none holds parameters)
ACTIVATIONS = (
    "silu",
    "gelu_pytorch_tanh",
    "gelu",
    "gelu_10",
    "gelu_fast",
    "gelu_new",
    "gelu_python",
    "gelu_accurate",
    "laplace",
    "leaky_relu",
    "linear",
    "mish",
    "quick_gelu",
    "relu",
    "relu2",
    "relu6",
    "sigmoid",
    "swish",
    "tanh",
    "prelu",
    "xielu",
)


@frozen
class Reference(FrozenMethods):
    """A model class of another library and the arguments that make this configuration:
    ``transformers.<model>._from_config(transformers.<config>(**config), **options)``."""

    model: str
    config_class: str
    config: dict[str, Any]
    #: keyword arguments of the model class beside its config (add_pooling_layer)
    options: dict[str, Any] = field(default_factory=dict)
    library: str = "transformers"


@frozen
class Part(FrozenMethods):
    """One part of a model made of several (a vision tower, a language model): the
    nested config that describes it (``vision_config``), read as a config of a model
    type some architecture declares, with every rule of that type."""

    #: the outer config's field holding the part's config (``text_config``)
    key: str
    #: the model types the part may be (the nested config's ``model_type``; the first
    #: when it names none)
    types: tuple[str, ...]
    #: what the part is, in messages (``the language model``)
    what: str
    #: nested model type -> the type it is read as (an old checkpoint's name)
    said: Mapping[str, str] = field(default_factory=dict)
    #: a config without ``key`` holds the part's fields at its top level (Qwen2-VL's
    #: files); False: a config without it is refused, naming the part
    flat: bool = False
    #: a config may leave ``key`` out or null: the part's config class's defaults
    #: (Gemma 3's text_config)
    optional: bool = False
    #: the architecture argument that records which of ``types`` the part is
    chosen: str = ""
    #: the part's config read by this declaration, its keys the composite's own
    #: arguments (a tower no other architecture builds); None: read as a config of its
    #: model type, built by the architecture that declares it
    declared: HFType | None = None
    #: a part of another architecture: the composite's name of each of its arguments is
    #: this prefix and the part's name (``vision_`` + ``hidden``)
    prefix: str = ""


@frozen
class HFType(FrozenMethods):
    """One ``model_type`` an architecture serves."""

    model_type: str
    #: transformers' config class (``LlamaConfig``)
    config_class: str
    #: class name -> the architecture arguments it sets (its head); the first is the class
    #: a config that names none gets
    classes: Mapping[str, Mapping[str, Any]]
    #: transformers' ``base_model_prefix``: the body's name under a class with a head
    base: str
    #: architecture argument -> the config field that sets it; several fields (a tuple)
    #: set one number together, the largest counting (dropout rates)
    keys: Mapping[str, str | tuple[str, ...]]
    #: the config class's defaults, by field, for a file that leaves a field out
    defaults: Mapping[str, Any]
    #: architecture arguments every model of the type has (Qwen3's q and k norms)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: argument -> {config value: argument value}, for a choice the config says otherwise
    #: (``attention_bias: true`` is ``"all"``); the first config value of an argument
    #: value is the one written
    values: Mapping[str, Mapping[Any, Any]] = field(default_factory=dict)
    #: another spelling -> the field it is (GPT-2's ``hidden_size`` is ``n_embd``)
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: fields the class reads that change no tensor (beside those every config has)
    free: frozenset[str] = frozenset()
    #: fields the class takes at these values only: field -> (values, why)
    only: Mapping[str, tuple[tuple[Any, ...], str]] = field(default_factory=dict)
    #: fields a file may leave out but not set to null (the class reads them with
    #: ``getattr(config, field, default)``, and null breaks it: Qwen2's head_dim)
    not_null: frozenset[str] = frozenset()
    #: fields a file may set to null though the class's default is a number (DeepSeek's
    #: q_lora_rank: null is one q_proj)
    nullable: frozenset[str] = frozenset()
    #: checkpoint names (regular expressions) transformers drops on load without a word
    dropped: tuple[str, ...] = ()
    #: checkpoint layout -> what the class calls it (transformers renames on load)
    renamed: Mapping[str, str] = field(default_factory=dict)
    #: the architecture arguments of the checkpoint files' layout (Mixtral's experts one
    #: by one, where the class fuses them)
    checkpoint: Mapping[str, Any] = field(default_factory=dict)
    #: peft's default LoRA target modules for the type (its
    #: ``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``): what ``get_peft_model``
    #: adapts when ``LoraConfig`` names no ``target_modules``; empty where peft has none
    #: (it refuses such a config)
    lora_targets: tuple[str, ...] = ()
    #: vLLM never runs the type in float16 (its ``_FLOAT16_NOT_SUPPORTED_MODELS``,
    #: ``vllm/config/model.py``): ``--dtype auto`` passes float16 over for it
    vllm_no_float16: bool = False
    #: quantization methods (``quant_method``) whose stored tensors the checkpoint layout
    #: lists (gpt-oss: mxfp4): such a config is counted as the class builds the model
    quantized: Mapping[str, str] = field(default_factory=dict)
    #: arguments a class takes beside its config (BERT's pooler: ``add_pooling_layer``),
    #: which the ``write`` hook passes
    options: frozenset[str] = frozenset()
    #: arguments the ``read`` hook works out from several fields by the type's own rule
    #: (the sliding window and which layers slide), and the ``write`` hook writes
    derived: frozenset[str] = frozenset()
    #: arguments no config holds, which change no tensor (an encoder-decoder's source
    #: length, an input's size): any value is the same class and config
    unread: frozenset[str] = frozenset()
    #: transformers insists that the heads divide the hidden size, even with a head_dim
    strict_heads: bool = False
    #: what the argument is called in ``--explain`` when not its field (RoBERTa's context)
    explained: Mapping[str, str] = field(default_factory=dict)
    #: a multimodal type read as its language model: the model type of its
    #: ``text_config``, read as a config of that type (of the same architecture)
    text_type: str = ""
    #: how peft 0.21 converts LoRA targets for this type's stacked experts
    #: (``shapecalc.adapt.lora_moe``): "numbered" (Mixtral's w1, w3, w2), "gated"
    #: (gate_proj, up_proj, down_proj), or "" when it converts nothing
    peft_moe: str = ""
    #: a model made of several: each part's nested config, read as a config of its own
    #: type (``adapters/hf_config.py``); ``text_type`` is the part ``text_config`` of that
    #: type, optional
    parts: tuple[Part, ...] = ()
    #: config (read through the reader's fields) -> arguments: what the table cannot say;
    #: called with the reader and the arguments read so far, changes them in place
    #: the GGUF architecture llama.cpp's convert_hf_to_gguf.py writes this type as
    #: (``general.architecture``); empty: shapecalc does not map it to GGUF
    gguf: str = ""
    #: when llama.cpp's load_arch_hparams takes the model for LLM_TYPE_70B (which
    #: llama-quant.cpp gives attn_v more bits): ``"80 layers"``, ``"80 layers, grouped
    #: heads"`` (and not 8 experts), or empty (never)
    gguf_70b: str = ""
    read: Callable[[Any, dict[str, Any]], None] | None = field(default=None, repr=False)
    #: (architecture, the reference written from the table) -> the reference, or None
    #: when this type cannot build the architecture's model
    write: Callable[[Any, Reference], Reference | None] | None = field(default=None, repr=False)
    #: notes for a model read from a config (config, arguments) -> lines
    notes: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]] | None = field(
        default=None, repr=False
    )

    @property
    def all_parts(self) -> tuple[Part, ...]:
        """The parts read from nested configs (``text_type`` as its part)."""
        if self.parts or not self.text_type:
            return self.parts
        return (Part("text_config", (self.text_type,), "the language model", optional=True),)

    def key(self, argument: str) -> str:
        """The config field of ``argument`` (the first, when several set it)."""
        found = self.keys[argument]
        return found if isinstance(found, str) else found[0]

    def fields(self, argument: str) -> tuple[str, ...]:
        found = self.keys.get(argument, ())
        return (found,) if isinstance(found, str) else found

    @property
    def head_class(self) -> str:
        """The class with a head (the default when ``architectures`` is missing)."""
        return next(iter(self.classes))

    def known_fields(self) -> frozenset[str]:
        """Every field this type reads or knows to change nothing (beside the common ones)."""
        read = {f for a in self.keys for f in self.fields(a)}
        return frozenset(read | set(self.defaults) | set(self.aliases) | self.free | set(self.only))


def model_types_of(cls: type) -> tuple[str, ...]:
    """The model types an architecture class declares."""
    return tuple(t.model_type for t in getattr(cls, "hf", ()))


def reference_of(architecture: Any) -> Reference | None:
    """transformers' class and config that build the same model as ``architecture``: the
    first type it declares that can express every argument (an argument a type does not
    read must be at its default, or at the type's fixed value), with the config written
    from the same declaration the reader uses. None when no type can."""
    for t in getattr(type(architecture), "hf", ()):
        reference = config_for(architecture, t)
        if reference is not None:
            return reference
    return None


def config_for(architecture: Any, t: HFType) -> Reference | None:
    """transformers' class and config of model type ``t`` for ``architecture``, or None
    when that type cannot build it."""
    defaults = {f.name: f.default for f in dataclasses.fields(architecture)}
    found = _written(t, architecture.arguments(), architecture.hf_values(), defaults)
    if found is None:
        return None
    reference: Reference | None = Reference(found[0], t.config_class, found[1])
    if t.write is not None and reference is not None:
        reference = t.write(architecture, reference)
    return reference


def _written(
    t: HFType,
    arguments: Mapping[str, Any],
    effective: Mapping[str, Any],
    defaults: Mapping[str, Any],
) -> tuple[str, dict[str, Any]] | None:
    """(class, config) of ``t`` for these arguments, or None when ``t`` cannot say them."""
    chosen = next(
        (
            name
            for name, sets in t.classes.items()
            if all(arguments.get(k) == v for k, v in sets.items())
        ),
        None,
    )
    if chosen is None:
        return None
    set_by_class = set(t.classes[chosen])
    config: dict[str, Any] = {}
    for name, value in arguments.items():
        if name in t.fixed:
            if value != t.fixed[name]:
                return None
            continue
        if name in set_by_class or name in t.options or name in t.derived or name in t.unread:
            continue
        if name not in t.keys:
            if value != defaults.get(name, dataclasses.MISSING):
                return None
            continue
        written = effective.get(name, value)
        if name in t.values:
            inverse = next((k for k, v in t.values[name].items() if v == written), _NONE)
            if inverse is _NONE:
                return None
            written = inverse
        for key in t.fields(name):
            config[key] = written
    return chosen, config


_NONE: Any = object()
