"""Hugging Face configs: a model counted from its ``config.json``, offline.

A source is a ``config.json``, a folder holding one, or a Hub id (``owner/name``, or
``owner/name@revision``) found in the local Hugging Face cache; the network is never used.
The config's ``model_type`` picks the family, ``architectures[0]`` the class (with its
head or without), and every field that changes a shape is read, with the defaults of
``transformers``' own config class where the file leaves one out. A field shapecalc does
not know, that could change a shape, is refused by name: nothing is guessed.

    >>> from shapecalc.adapters.hf_config import from_hf_config
    >>> m = from_hf_config({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    >>> m.total
    124439808
    >>> m.named_parameters()[0]
    ('transformer.wte.weight', (50257, 768))

No ``transformers`` is needed: the families' fields and defaults are tabled here (a test
holds them to the installed ``transformers``' config classes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shapecalc.core.declare import Architecture, Reference
from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.model import Model

__all__ = [
    "FAMILIES",
    "HFModel",
    "Source",
    "from_hf_config",
    "hf_model",
    "hub_cache",
    "hub_repo",
    "is_hub_id",
    "read_config",
    "resolve",
]

#: sizes are torch dimensions: int64
LARGEST = 2**63
#: a config.json larger than this is not a config (refused before it is parsed)
MAX_CONFIG = 16 * 1024 * 1024
#: ``owner/name`` or ``name``, with an optional ``@revision``, as the Hub spells ids
#: a snapshot's folder name in the cache: a commit hash (or a name without a path in it)
SNAPSHOT = re.compile(r"^[\w.-]{1,128}$")
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*(?:@[\w./-]+)?$")

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

#: activations transformers' ACT2FN knows (none holds parameters)
ACTIVATIONS = frozenset(
    {
        "gelu",
        "gelu_10",
        "gelu_fast",
        "gelu_new",
        "gelu_python",
        "gelu_pytorch_tanh",
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
        "silu",
        "swish",
        "tanh",
        "prelu",
        "xielu",
    }
)


#: known fields that build nothing, with the type transformers' config classes insist on
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


FREE_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_position_embeddings": (_is_int, "an integer"),
    "max_window_layers": (_is_int, "an integer"),
    "original_max_position_embeddings": (_is_int, "an integer"),
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
}


# -- where a config comes from ---------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """A config's file, the folder around it (its checkpoint's) and how to name it."""

    config: str
    folder: str
    label: str


def _fail(field: str, value: Any, message: str, rule: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, field=field, value=value, rule=rule)


def hub_cache() -> str:
    """The local Hugging Face cache of models, as ``huggingface_hub`` finds it."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.environ[name])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "huggingface", "hub")


def hub_repo(hub_id: str) -> str:
    """The cache's folder of a Hub id (``owner/name@revision``): ``models--owner--name``."""
    return os.path.join(hub_cache(), "models--" + hub_id.partition("@")[0].replace("/", "--"))


def is_hub_id(path: str) -> bool:
    """Whether ``path`` (no file or folder) is read as a Hub id: ``owner/name``, or a bare
    ``name`` the cache holds (``gpt2``)."""
    name = path.partition("@")[0]
    return bool(HUB_ID.match(path)) and ("/" in name or os.path.isdir(hub_repo(path)))


def _from_cache(hub_id: str) -> str:
    """The snapshot folder of ``hub_id`` in the local cache (``refs/<revision>``, or the
    only snapshot)."""
    name, _, revision = hub_id.partition("@")
    if revision and (".." in revision.split("/") or revision.startswith("/")):
        raise _fail(
            "path",
            hub_id,
            f"{_short(hub_id)}: a revision is a branch, tag or commit, not a path",
            "a revision names a ref or a snapshot of the cache",
        )
    cache = hub_cache()
    repo = hub_repo(hub_id)
    rule = "a Hub id must be in the local Hugging Face cache (shapecalc never downloads)"
    if not os.path.isdir(repo):
        raise _fail(
            "path",
            hub_id,
            f"{echo(hub_id)} is not a file or folder, nor a model in the local Hugging Face cache "
            f"({cache}); shapecalc never downloads: `hf download {name} config.json` "
            "fetches the config",
            rule,
        )
    snapshots = os.path.join(repo, "snapshots")
    ref = os.path.join(repo, "refs", revision or "main")
    commit = revision
    if os.path.isfile(ref):
        with open(ref, "rb") as handle:
            commit = handle.read(256).decode("ascii", "replace").strip()
    elif not revision:
        found = sorted(os.listdir(snapshots)) if os.path.isdir(snapshots) else []
        if len(found) != 1:
            raise _fail(
                "path",
                hub_id,
                f"{echo(hub_id)} has {len(found)} snapshots in the cache and no refs/main: name "
                f"one as {_name(name)}@COMMIT",
                rule,
            )
        commit = found[0]
    folder = os.path.join(snapshots, commit)
    if not SNAPSHOT.match(commit) or commit in (".", "..") or not os.path.isdir(folder):
        raise _fail(
            "path", hub_id, f"{_short(hub_id)}: no snapshot {_short(commit)} in the cache", rule
        )
    return folder


def resolve(path: str) -> Source:
    """``path`` as a config file, a folder with ``config.json``, or a cached Hub id."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isfile(path):
        return Source(path, os.path.dirname(path) or ".", _name(path, 120))
    if os.path.isdir(path):
        config = os.path.join(path, "config.json")
        if not os.path.isfile(config):
            raise _fail(
                "path",
                path,
                f"{path}: the folder holds no config.json",
                "a folder must hold config.json",
            )
        return Source(config, path, _name(path, 120))
    if is_hub_id(path):
        folder = _from_cache(path)
        config = os.path.join(folder, "config.json")
        if not os.path.isfile(config):
            raise _fail(
                "path",
                path,
                f"{path}: its cached snapshot holds no config.json",
                "a folder must hold config.json",
            )
        return Source(config, folder, _name(path, 120))
    raise _fail(
        "path",
        path,
        f"{echo(path)}: no such file or folder (a config.json, a folder with one, or a Hub id "
        "owner/name in the local cache)",
        "PATH must exist",
    )


def read_config(source: Source) -> dict[str, Any]:
    """The JSON object of a config file, refused in one line when it is not one."""
    where = source.label
    try:
        size = os.path.getsize(source.config)
        if size > MAX_CONFIG:
            raise _fail(
                "path",
                where,
                f"{where}: {size:,} bytes is not a config (the cap is {MAX_CONFIG:,})",
                "a config.json is a small JSON object",
            )
        with open(source.config, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise _fail(
            "path", where, f"{where}: cannot read it ({err.strerror or err})", "readable"
        ) from None
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = (
            "it is not UTF-8 text"
            if isinstance(err, UnicodeDecodeError)
            else "nesting too deep"
            if isinstance(err, RecursionError)
            else str(err).splitlines()[0][:120]
        )
        raise _fail(
            "path",
            where,
            f"{where}: not a JSON config ({reason})",
            "a config.json is a JSON object",
        ) from None
    if not isinstance(config, dict):
        raise _fail(
            "path",
            where,
            f"{where}: a config is a JSON object, not a {type(config).__name__}",
            "a config.json is a JSON object",
        )
    return config


# -- reading the fields ----------------------------------------------------------------------
class Fields:
    """A config's fields, read with the family's defaults and checked; remembers which
    fields it read, so that the rest can be checked against what is known."""

    def __init__(self, config: Mapping[str, Any], family: Family, label: str) -> None:
        self.config = config
        self.family = family
        self.label = label
        self.used: set[str] = set()

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
        shown = _short(value)
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

    def optional(self, key: str) -> int | None:
        """A size that may be null (or absent, with a null default), where the config
        class allows null (its default is null); else a size."""
        if self.family.defaults.get(key, None) is not None:
            return self.size(key)
        if self.raw(key) is None:
            return None
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < LARGEST:
            raise self.fail(
                key, value, f"{self._name(key)} must be an integer >= 1 and < 2^63, or null"
            )
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, value, f"{self._name(key)} must be true or false")
        return value

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

    def activation(self, *keys: str) -> str:
        for key in keys:
            value = self.raw(key)
            if value is None and (not self.has(key) or key not in self.family.defaults):
                continue  # absent, or null where the class has no such field
            if not isinstance(value, str) or value not in ACTIVATIONS:
                some = ", ".join(("silu", "gelu", "gelu_pytorch_tanh", "gelu_new", "relu"))
                raise self.fail(
                    key,
                    value,
                    f"{self._name(key)} must be an activation transformers knows ({some} "
                    f"and {len(ACTIVATIONS) - 5} more)",
                )
        return str(next((self.raw(k) for k in keys if self.raw(k) is not None), "silu"))

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


def _short(value: Any, limit: int = 80) -> str:
    """A value from a file, as JSON, on one line and cut to ``limit`` characters (an
    integer of thousands of digits is said by its length, never printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(text: str, limit: int = 60) -> str:
    """A name from a file or the command line (a field, a class, a path), its control
    characters escaped, cut to ``limit`` characters."""
    shown = json.dumps(str(text))[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


# -- the families ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """One ``model_type``: the architecture that builds it, its classes, its fields."""

    model_type: str
    #: the shapecalc architecture (its command)
    command: str
    #: transformers' config class
    config_class: str
    #: class name -> the arguments it sets (its head)
    classes: Mapping[str, Mapping[str, Any]]
    #: transformers' base_model_prefix: the body's name under a class with a head
    base: str
    #: the fields read, with transformers' defaults for a file that leaves them out
    defaults: Mapping[str, Any]
    #: known fields that hold no parameters (beside :data:`COMMON_FREE`)
    free: frozenset[str]
    #: config.json spelling -> the field it is (GPT-2's ``hidden_size`` is ``n_embd``)
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: checkpoint names transformers drops on load without a word (buffers of old files)
    ignored: tuple[str, ...] = ()
    #: checkpoint layout -> what the class calls it (transformers renames on load)
    renamed: Mapping[str, str] = field(default_factory=dict)
    #: the architecture arguments of the checkpoint layout (Mixtral's experts one by one)
    checkpoint: Mapping[str, Any] = field(default_factory=dict)
    #: the config's fields -> the architecture's arguments
    read: Callable[[Fields], dict[str, Any]] = field(default=lambda f: {}, repr=False)

    @property
    def head_class(self) -> str:
        """The class with a head (the default when ``architectures`` is missing)."""
        return next(iter(self.classes))


def _decoder_sizes(f: Fields) -> dict[str, Any]:
    return {
        "vocab": f.size("vocab_size"),
        "hidden": f.size("hidden_size"),
        "layers": f.size("num_hidden_layers"),
        "heads": f.size("num_attention_heads"),
        "intermediate": f.size("intermediate_size"),
        "tie_weights": f.flag("tie_word_embeddings"),
    }


def _llama_like(
    *,
    attention_bias: str | None = "all",
    qk_norm: bool = False,
    sandwich: bool = False,
    gelu: bool = False,
    fused: bool = False,
    experts: bool = False,
    partial: bool = False,
) -> Callable[[Fields], dict[str, Any]]:
    """The reader of one member of the LLaMA family: which of its fields it has."""

    def read(f: Fields) -> dict[str, Any]:
        out = _decoder_sizes(f)
        out["kv_heads"] = f.optional("num_key_value_heads")
        out["head_dim"] = f.optional("head_dim")
        if attention_bias is None:
            f.fixed("attention_bias", (False,), "this class has no attention biases")
        elif attention_bias == "qkv":
            f.fixed("attention_bias", (False,), "this class has q, k and v biases and no other")
            out["attention_bias"] = "qkv"
        else:
            out["attention_bias"] = "all" if f.flag("attention_bias") else "none"
        if "mlp_bias" in f.family.defaults:
            out["mlp_bias"] = f.flag("mlp_bias")
        else:
            f.fixed("mlp_bias", (False,), "this class has no MLP biases")
        out["qk_norm"] = qk_norm
        out["sandwich_norm"] = sandwich
        out["fused_qkv"] = out["fused_gate_up"] = fused
        act = f.activation("hidden_act", "hidden_activation")
        out["activation"] = "gelu_tanh" if gelu or act.startswith("gelu") else "silu"
        fraction = f.rotary_fraction()
        if partial:
            out["rotary_pct"] = fraction
        elif fraction != 1:
            raise f.fail(
                "partial_rotary_factor",
                fraction,
                "partial_rotary_factor must be 1 for this class, which turns whole heads",
            )
        if experts:
            out["experts"] = f.size("num_local_experts")
            out["experts_per_token"] = f.size("num_experts_per_tok")
        f.padding("pad_token_id", out["vocab"], "token embedding (vocab_size)")
        return out

    return read


def _gpt2(f: Fields) -> dict[str, Any]:
    f.fixed("add_cross_attention", (False,), "cross-attention layers are an encoder-decoder's")
    f.activation("activation_function")
    return {
        "vocab": f.size("vocab_size"),
        "hidden": f.size("n_embd"),
        "layers": f.size("n_layer"),
        "heads": f.size("n_head"),
        "context": f.size("n_positions"),
        "intermediate": f.optional("n_inner"),
        "tie_weights": f.flag("tie_word_embeddings"),
        "dropout": min(f.dropout("embd_pdrop", "attn_pdrop", "resid_pdrop"), 0.999),
    }


def _gpt_neox(f: Fields) -> dict[str, Any]:
    out = _decoder_sizes(f)
    out["rotary_pct"] = f.rotary_fraction("rotary_pct")
    out["parallel_residual"] = f.flag("use_parallel_residual")
    out["attention_bias"] = f.flag("attention_bias")
    out["dropout"] = min(f.dropout("hidden_dropout", "attention_dropout"), 0.999)
    f.activation("hidden_act")
    head_dim = f.raw("head_dim")
    if head_dim is not None and head_dim != out["hidden"] // out["heads"]:
        raise f.fail(
            "head_dim",
            head_dim,
            "head_dim must be hidden_size / num_attention_heads or absent: GPT-NeoX's heads "
            "split the hidden size",
        )
    return out


def _bert(f: Fields, *, roberta: bool) -> dict[str, Any]:
    f.fixed("add_cross_attention", (False,), "cross-attention layers are an encoder-decoder's")
    f.fixed(
        "position_embedding_type",
        ("absolute",),
        "transformers 5 builds absolute position embeddings only",
    )
    f.activation("hidden_act")
    out: dict[str, Any] = {
        "vocab": f.size("vocab_size"),
        "hidden": f.size("hidden_size"),
        "layers": f.size("num_hidden_layers"),
        "heads": f.size("num_attention_heads"),
        "intermediate": f.size("intermediate_size"),
        "type_vocab": f.size("type_vocab_size"),
        "tie_weights": f.flag("tie_word_embeddings"),
        "dropout": min(f.dropout("hidden_dropout_prob", "attention_probs_dropout_prob"), 0.999),
        "layout": "roberta" if roberta else "bert",
    }
    positions = f.size("max_position_embeddings", minimum=3 if roberta else 1)
    out["context"] = positions - 2 if roberta else positions
    f.padding("pad_token_id", out["vocab"], "word embedding (vocab_size)")
    if roberta:
        f.padding("pad_token_id", positions, "position embedding (max_position_embeddings)")
    return out


_DECODER_FREE = frozenset(
    {
        "hidden_act",
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_parameters",
        "rope_scaling",
        "rope_theta",
        "attention_dropout",
        "pretraining_tp",
        "sliding_window",
        "use_sliding_window",
        "max_window_layers",
        "layer_types",
        "partial_rotary_factor",
        "use_mrope",
    }
)
_BERT_FREE = frozenset(
    {
        "hidden_act",
        "layer_norm_eps",
        "is_decoder",
        "classifier_dropout",
        "add_cross_attention",
        "position_embedding_type",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
    }
)


def _llama_defaults(**extra: Any) -> dict[str, Any]:
    """The fields every member of the LLaMA family has, and its own defaults."""
    return {"head_dim": None, "num_key_value_heads": None, "tie_word_embeddings": False, **extra}


def _decoder(prefix: str, model_type: str, defaults: dict[str, Any], **kwargs: Any) -> Family:
    return Family(
        model_type=model_type,
        command="llama",
        config_class=f"{prefix}Config",
        classes={f"{prefix}ForCausalLM": {"head": "lm"}, f"{prefix}Model": {"head": "none"}},
        base="model",
        defaults=defaults,
        free=_DECODER_FREE | frozenset(kwargs.pop("free", ())),
        ignored=(r"rotary_emb\.inv_freq",),
        **kwargs,
    )


def _encoder(prefix: str, model_type: str, *, vocab: int, pad: int) -> Family:
    """BERT or RoBERTa: the same fields, their own vocabulary and padding id."""
    return Family(
        model_type=model_type,
        command="bert",
        config_class=f"{prefix}Config",
        classes={f"{prefix}ForMaskedLM": {"head": "mlm"}, f"{prefix}Model": {"head": "none"}},
        base=model_type,
        defaults={
            "vocab_size": vocab,
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "tie_word_embeddings": True,
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "hidden_act": "gelu",
            "pad_token_id": pad,
        },
        free=_BERT_FREE,
        ignored=(r"(^|\.)position_ids$",),
        read=lambda f: _bert(f, roberta=model_type == "roberta"),
    )


FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        model_type="gpt2",
        command="gpt2",
        config_class="GPT2Config",
        classes={"GPT2LMHeadModel": {"head": "lm"}, "GPT2Model": {"head": "none"}},
        base="transformer",
        aliases={
            "hidden_size": "n_embd",
            "max_position_embeddings": "n_positions",
            "num_attention_heads": "n_head",
            "num_hidden_layers": "n_layer",
        },
        defaults={
            "vocab_size": 50257,
            "n_embd": 768,
            "n_layer": 12,
            "n_head": 12,
            "n_positions": 1024,
            "n_inner": None,
            "tie_word_embeddings": True,
            "embd_pdrop": 0.1,
            "attn_pdrop": 0.1,
            "resid_pdrop": 0.1,
            "activation_function": "gelu_new",
            "add_cross_attention": False,
        },
        free=frozenset(
            {
                "activation_function",
                "layer_norm_epsilon",
                "n_ctx",
                "reorder_and_upcast_attn",
                "scale_attn_by_inverse_layer_idx",
                "scale_attn_weights",
                "summary_activation",
                "summary_first_dropout",
                "summary_proj_to_labels",
                "summary_type",
                "summary_use_proj",
                "add_cross_attention",
            }
        ),
        ignored=(r"attn.bias", r"crossattention.bias"),
        read=_gpt2,
    ),
    "gpt_neox": Family(
        model_type="gpt_neox",
        command="gpt-neox",
        config_class="GPTNeoXConfig",
        classes={"GPTNeoXForCausalLM": {"head": "lm"}, "GPTNeoXModel": {"head": "none"}},
        base="gpt_neox",
        defaults={
            "vocab_size": 50432,
            "hidden_size": 6144,
            "num_hidden_layers": 44,
            "num_attention_heads": 64,
            "intermediate_size": 24576,
            "tie_word_embeddings": False,
            "use_parallel_residual": True,
            "attention_bias": True,
            "hidden_dropout": 0.0,
            "attention_dropout": 0.0,
            "hidden_act": "gelu",
            "partial_rotary_factor": 0.25,
        },
        free=frozenset(
            {
                "hidden_act",
                "layer_norm_eps",
                "max_position_embeddings",
                "rope_parameters",
                "rope_scaling",
                "rope_theta",
                "rotary_emb_base",
                "rotary_pct",
                "partial_rotary_factor",
                "classifier_dropout",
                "is_decoder",
                "head_dim",
            }
        ),
        ignored=(r"attention.bias", r"attention.masked_bias", r"rotary_emb\.inv_freq"),
        renamed={"embed_out.": "lm_head."},
        read=_gpt_neox,
    ),
    "llama": _decoder(
        "Llama",
        "llama",
        _llama_defaults(
            vocab_size=32000,
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            intermediate_size=11008,
            attention_bias=False,
            mlp_bias=False,
            hidden_act="silu",
        ),
        read=_llama_like(),
    ),
    "mistral": _decoder(
        "Mistral",
        "mistral",
        _llama_defaults(
            vocab_size=32000,
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            intermediate_size=14336,
            hidden_act="silu",
        ),
        read=_llama_like(attention_bias=None),
    ),
    "mixtral": _decoder(
        "Mixtral",
        "mixtral",
        _llama_defaults(
            vocab_size=32000,
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            intermediate_size=14336,
            num_local_experts=8,
            num_experts_per_tok=2,
            hidden_act="silu",
        ),
        free={"router_jitter_noise", "router_aux_loss_coef", "output_router_logits"},
        checkpoint={"moe_layout": "checkpoint"},
        read=_llama_like(attention_bias=None, experts=True),
    ),
    "qwen2": _decoder(
        "Qwen2",
        "qwen2",
        _llama_defaults(
            vocab_size=151936,
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            intermediate_size=22016,
            hidden_act="silu",
        ),
        read=_llama_like(attention_bias="qkv"),
    ),
    "qwen3": _decoder(
        "Qwen3",
        "qwen3",
        _llama_defaults(
            vocab_size=151936,
            hidden_size=4096,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            head_dim=128,
            intermediate_size=22016,
            attention_bias=False,
            hidden_act="silu",
        ),
        read=_llama_like(qk_norm=True),
    ),
    "gemma": _decoder(
        "Gemma",
        "gemma",
        _llama_defaults(
            vocab_size=256000,
            hidden_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=16,
            head_dim=256,
            intermediate_size=24576,
            attention_bias=False,
            tie_word_embeddings=True,
            hidden_act="gelu_pytorch_tanh",
            pad_token_id=0,
        ),
        free={"hidden_activation", "use_bidirectional_attention"},
        read=_llama_like(gelu=True),
    ),
    "gemma2": _decoder(
        "Gemma2",
        "gemma2",
        _llama_defaults(
            vocab_size=256000,
            hidden_size=2304,
            num_hidden_layers=26,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=256,
            intermediate_size=9216,
            attention_bias=False,
            tie_word_embeddings=True,
            hidden_activation="gelu_pytorch_tanh",
            pad_token_id=0,
        ),
        free={
            "hidden_activation",
            "use_bidirectional_attention",
            "attn_logit_softcapping",
            "final_logit_softcapping",
            "query_pre_attn_scalar",
        },
        read=_llama_like(sandwich=True, gelu=True),
    ),
    "phi3": _decoder(
        "Phi3",
        "phi3",
        _llama_defaults(
            vocab_size=32064,
            hidden_size=3072,
            num_hidden_layers=32,
            num_attention_heads=32,
            intermediate_size=8192,
            hidden_act="silu",
            pad_token_id=32000,
        ),
        free={"embd_pdrop", "resid_pdrop", "original_max_position_embeddings"},
        read=_llama_like(attention_bias=None, fused=True, partial=True),
    ),
    "bert": _encoder("Bert", "bert", vocab=30522, pad=0),
    "roberta": _encoder("Roberta", "roberta", vocab=50265, pad=1),
}

#: the architectures' field names -> the config's, to name a refused field as the file does
#: and the sizes in ``--explain``
_CONFIG_NAMES = {
    "tie_weights": "tie_word_embeddings",
    "attention_bias": "attention_bias",
    "mlp_bias": "mlp_bias",
    "parallel_residual": "use_parallel_residual",
    "vocab": "vocab_size",
    "hidden": "hidden_size",
    "layers": "num_hidden_layers",
    "heads": "num_attention_heads",
    "kv_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "intermediate": "intermediate_size",
    "experts": "num_local_experts",
    "experts_per_token": "num_experts_per_tok",
    "rotary_pct": "partial_rotary_factor",
    "context": "max_position_embeddings",
    "type_vocab": "type_vocab_size",
}


# -- the model -------------------------------------------------------------------------------
@dataclass(frozen=True)
class HFModel:
    """What a config describes: its family, class, shapecalc's architecture and the
    transformers class of the same file (for ``--verify``)."""

    family: Family
    class_name: str
    architecture: Architecture
    config: Mapping[str, Any]
    label: str
    folder: str = ""
    notes: tuple[str, ...] = ()
    #: the architecture's arguments -> the config's fields that set them
    names: Mapping[str, str] = field(default_factory=dict)

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
        model = self.architecture.model()
        return dataclasses.replace(
            model,
            name=f"{self.class_name} ({self.label})",
            notes=(*model.notes, *self.notes),
            argument_names=self.names,
        )

    def checkpoint_model(self) -> Model:
        """The model named as checkpoint files store it (Mixtral's experts one by one)."""
        if not self.family.checkpoint:
            return self.model()
        changed: Architecture = dataclasses.replace(
            self.architecture,  # type: ignore[type-var]
            **self.family.checkpoint,
        )
        return changed.model()


def _architectures(config: Mapping[str, Any], family: Family, label: str) -> str:
    value = config.get("architectures")
    supported = ", ".join(family.classes)
    if value is None:
        return family.head_class
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _fail(
            "architectures",
            value,
            f"{label}: architectures = {_short(value)}: must be a list of class names",
            "architectures is a list of class names",
        )
    if value[0] not in family.classes:
        raise _fail(
            "architectures",
            value[0],
            f"{label}: architectures[0] = {_short(value[0])}: shapecalc builds {supported} for "
            f"model_type {echo(family.model_type)}",
            f"one of {supported}",
        )
    return str(value[0])


def hf_model(
    source: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    class_name: str | None = None,
    allow: tuple[str, ...] | list[str] = (),
) -> HFModel:
    """The model a Hugging Face config describes: ``source`` is a config.json, a folder
    with one, a cached Hub id, a dict, or a transformers config object. ``class_name``
    overrides ``architectures[0]``; ``allow`` names unknown fields to count without."""
    if isinstance(source, Mapping):
        config, label, folder = dict(source), "config", ""
    elif isinstance(source, (str, os.PathLike)):
        where = resolve(os.fspath(source))
        config, label, folder = read_config(where), where.label, where.folder
    elif callable(getattr(source, "to_dict", None)):
        config, label, folder = dict(source.to_dict()), "config", ""
    else:
        raise TypeError(
            "source must be a path to config.json, a folder, a Hub id, a dict or a "
            f"transformers config, got {type(source).__name__}"
        )
    if isinstance(allow, str) or not all(isinstance(a, str) for a in allow):
        raise TypeError("allow must be a list of field names")
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        listed = ", ".join(FAMILIES)
        said = (
            "has no model_type"
            if model_type is None
            else f"model_type {_short(model_type)} is not supported"
        )
        raise _fail(
            "model_type",
            model_type,
            f"{label}: {said}; shapecalc reads {listed}",
            f"model_type is one of {listed}",
        )
    family = FAMILIES[str(model_type)]
    chosen = class_name or _architectures(config, family, label)
    if chosen not in family.classes:
        supported = ", ".join(family.classes)
        raise _fail(
            "class",
            chosen,
            f"class {_short(chosen)}: shapecalc builds {supported} for model_type "
            f"{echo(model_type)}",
            f"one of {supported}",
        )
    quantized = config.get("quantization_config")
    if quantized is not None and "quantization_config" not in allow:
        method = quantized.get("quant_method") if isinstance(quantized, dict) else None
        kind = _name(method, 30) if isinstance(method, str) else "a quantization"
        raise _fail(
            "quantization_config",
            method,
            f"{label}: quantization_config ({kind}): a quantized model "
            "stores other tensors than its config's shapes; `shapecalc inspect FOLDER` reports "
            "the stored ones, and --allow-field quantization_config counts the unquantized model",
            "a quantized config is counted only when asked",
        )
    absent = [a for a in allow if a not in config]
    if absent:
        raise _fail(
            "allow",
            absent[0],
            f"{label}: --allow-field {_name(absent[0])}: the config has no field "
            f"{_short(absent[0])}",
            "an allowed field is one the config has",
        )
    for alias, canonical in family.aliases.items():  # GPT-2's two spellings of one field
        if alias in config and canonical in config and config[alias] != config[canonical]:
            raise _fail(
                alias,
                config[alias],
                f"{label}: {alias} = {_short(config[alias])} and {canonical} = "
                f"{_short(config[canonical])} name one size twice and disagree",
                "a field given in two spellings has one value",
            )
    fields = Fields(config, family, label)
    arguments = family.read(fields)
    known = COMMON_FREE | family.free | set(family.defaults) | set(family.aliases)
    unknown = [k for k in config if k not in known and k not in fields.used and k not in allow]
    unknown = [k for k in unknown if k != "quantization_config"]
    for key, (ok, kind) in FREE_TYPES.items():
        if key in config and not ok(config[key]):
            raise _fail(
                key,
                config[key],
                f"{label}: {key} = {_short(config[key])}: {key} must be {kind}",
                f"{key} is {kind}",
            )
    if unknown:
        first = unknown[0]
        more = ""
        if len(unknown) > 1:
            others = ", ".join(_name(k, 30) for k in unknown[1:4])
            more = f" (and {others}{'…' if len(unknown) > 4 else ''})"
        raise _fail(
            first,
            config[first],
            f"{label}: field {_short(first)}{more} is not one shapecalc knows for model_type "
            f"{echo(model_type)}, and it could change a shape; nothing is guessed "
            f"(--allow-field {_name(first)} counts the model without it)",
            "every field of a config is known",
        )
    arguments.update(family.classes[chosen])
    arguments = _checked(family, arguments, fields)
    from shapecalc.architectures import get

    cls = get(family.command)
    try:
        architecture = cls(**arguments)
    except InvalidArgumentError as err:
        raise _renamed(err, label) from None
    names = {}
    for argument, key in _CONFIG_NAMES.items():
        key = family.aliases.get(key, key)  # GPT-2's n_head
        if family.model_type == "gpt2" and argument == "intermediate":
            key = "n_inner"
        if key in fields.used or key in family.defaults:
            names[argument] = fields._name(key)
    if family.model_type == "roberta":
        names["context"] = "max_position_embeddings - 2"
    notes: list[str] = []
    sliding = _sliding_layers(family, config, arguments["layers"])
    if sliding:
        window, count = sliding
        notes.append(
            f"sliding_window {window:,}: transformers' cache keeps at most the last "
            f"{max(window - 1, 0):,} tokens in {count} of the {arguments['layers']} layers; "
            "the KV cache here counts every token of the context"
        )
    if config.get("architectures") is None and class_name is None:
        notes.append(f"the config names no class: {chosen}, the class with the head")
    return HFModel(family, chosen, architecture, config, label, folder, tuple(notes), names)


def _sliding_layers(
    family: Family, config: Mapping[str, Any], layers: int
) -> tuple[int, int] | None:
    """(window, the layers whose attention slides), as transformers' cache decides it
    (``layer_types``, else the family's rule), or None when no layer slides."""
    defaults = {"mistral": 4096, "gemma2": 4096, "qwen2": 4096, "qwen3": 4096}
    window = config.get("sliding_window", defaults.get(family.model_type))
    if family.model_type in ("qwen2", "qwen3") and not config.get("use_sliding_window"):
        window = None
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        return None
    types = config.get("layer_types")
    if isinstance(types, list):
        count = sum(1 for t in types[:layers] if t == "sliding_attention")
    elif family.model_type == "gemma2":  # every other layer, the first sliding
        count = (layers + 1) // 2
    elif family.model_type in ("qwen2", "qwen3"):
        start = config.get("max_window_layers", 28)
        count = max(0, layers - start) if isinstance(start, int) else 0
    elif family.command == "llama":
        count = layers
    else:
        return None
    return (window, count) if count else None


def _checked(family: Family, arguments: dict[str, Any], f: Fields) -> dict[str, Any]:
    """transformers' rules for the heads, said with the config's names (as the file
    spells them: GPT-2's ``n_head``)."""
    spelled = {alias: canonical for alias, canonical in family.aliases.items()}
    hidden, heads = arguments["hidden"], arguments["heads"]
    kv = arguments.get("kv_heads")
    strict = family.model_type in ("llama", "gemma2", "gpt_neox", "gpt2", "bert", "roberta")
    if (strict or arguments.get("head_dim") is None) and hidden % heads:
        a = f._name(spelled.get("num_attention_heads", "num_attention_heads"))
        h = f._name(spelled.get("hidden_size", "hidden_size"))
        raise f.fail(
            spelled.get("num_attention_heads", "num_attention_heads"),
            heads,
            f"{a} must divide {h}",
            f"{hidden} % {heads} = {hidden % heads}",
        )
    if kv is not None and heads % kv:
        raise f.fail(
            "num_key_value_heads",
            kv,
            "num_key_value_heads must divide num_attention_heads",
            f"{heads} % {kv} = {heads % kv}",
        )
    own = arguments.get("head_dim")
    if family.command == "llama" and (own or hidden // heads) % 2:
        key, value = ("head_dim", own) if own else ("num_attention_heads", heads)
        width = f"head_dim = {own}" if own else f"head_dim = {hidden} / {heads} = {hidden // heads}"
        raise f.fail(
            key,
            value,
            "rotary positions turn pairs of numbers: head_dim must be even",
            width,
        )
    # the same shapes in fewer letters: a head_dim of H / A, as many kv heads as heads
    if arguments.get("head_dim") is not None and arguments["head_dim"] * heads == hidden:
        arguments["head_dim"] = None
    if kv == heads:
        arguments["kv_heads"] = None
    experts, top = arguments.get("experts"), arguments.get("experts_per_token")
    if experts is not None and top is not None and top > experts:
        raise f.fail(
            "num_experts_per_tok",
            top,
            "num_experts_per_tok must be at most num_local_experts",
            f"{top} > {experts}",
        )
    return arguments


def _renamed(err: InvalidArgumentError, label: str) -> InvalidArgumentError:
    """An architecture's refusal, with the field named as the config names it."""
    name = _CONFIG_NAMES.get(err.field or "", err.field or "")
    message = err.message
    if err.layer and message.startswith(f"{err.layer}"):
        message = message.split(": ", 1)[-1]
    return InvalidArgumentError(
        f"{label}: {name} = {_short(err.value)}: {message}",
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
