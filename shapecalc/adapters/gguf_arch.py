"""A GGUF file against the architecture its metadata names, and transformers' tensor
names to GGUF's.

llama.cpp's converter (``convert_hf_to_gguf.py``) renames every tensor by gguf-py's
``tensor_mapping.py`` (``model.layers.3.self_attn.v_proj.weight`` -> ``blk.3.attn_v.weight``),
writes each shape as ggml's ``ne`` (torch's reversed), permutes the rows of llama's
``q_proj``/``k_proj`` (same shape), and splits transformers' fused experts
(``mlp.experts.gate_up_proj`` (E, 2F, H) -> ``ffn_gate_exps`` and ``ffn_up_exps``, each
(E, F, H)). :func:`gguf_tensors` does the same to any model shapecalc builds in a family
it maps; :func:`hf_config` reads the ``<arch>.*`` metadata back into a transformers config,
and :func:`check_gguf` sets the file's tensors against that config's model.

The families (GGUF architecture -> transformers ``model_type``): llama (and Mistral's and
Mixtral's conversions, which llama.cpp writes as llama), qwen2, qwen3, qwen2moe, qwen3moe,
gemma, gemma2, phi3, starcoder2; gpt2, falcon, gptneox (gpt_neox), mamba, deepseek2
(deepseek_v2, deepseek_v3), gpt-oss, jamba, falcon-h1, glm4moe (glm4_moe, its MTP layers
in block_count), qwen3next, cohere2, whose names and metadata are their own
(shapecalc.quant.gguf_names, shapecalc.adapters.gguf_families). Sources: llama.cpp
``gguf-py/gguf/tensor_mapping.py``, ``constants.py`` (``MODEL_TENSORS``),
``convert_hf_to_gguf.py`` (LlamaModel, Qwen2Model, Qwen3Model, Qwen2MoeModel,
Qwen3MoeModel, GemmaModel, Gemma2Model, Phi3MiniModel, StarCoder2Model, GPT2Model,
FalconModel, GPTNeoXModel, MambaModel, DeepseekV2Model, GptOssModel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shapecalc.adapters.gguf import GGUFArray, GGUFFile
from shapecalc.adapters.gguf_families import ARGUMENTS, Meta, file_vocab
from shapecalc.adapters.hf_config import HFModel
from shapecalc.core.errors import InvalidArgumentError, echo, printable
from shapecalc.core.hfmap import HFType
from shapecalc.quant.gguf import GGUFName, gguf_name, gguf_tensors
from shapecalc.quant.gguf_names import FAMILIES

__all__ = [
    "GGUFCheck",
    "GGUFName",
    "check_gguf",
    "gguf_name",
    "gguf_tensors",
    "gguf_types",
    "hf_config",
]


def gguf_types() -> dict[str, list[HFType]]:
    """GGUF architecture -> the transformers types that convert to it, in declaration
    order, as each architecture declares it (``HFType.gguf``)."""
    from shapecalc.architectures import commands, get

    out: dict[str, list[HFType]] = {}
    for command in commands():
        for t in get(command).hf:
            if t.gguf:
                out.setdefault(t.gguf, []).append(t)
    return out


def _fail(path: str, message: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        message, field="target", value=path, rule="a GGUF file's metadata describes its model"
    )


def _int(file: GGUFFile, key: str, default: int | None = None) -> int | None:
    value = file.metadata.get(key, default)
    if value is None:
        return None
    if isinstance(value, GGUFArray):  # one per layer (get_key_or_arr): alike, or refused
        arch = key.partition(".")[0]
        return Meta(file, arch).get(key.partition(".")[2])
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(file.path, f"{key} = {echo(value)}: must be a non-negative integer")
    return value


def _arguments(file: GGUFFile, arch: str) -> dict[str, Any]:
    """shapecalc's arguments from the file's ``<arch>.*`` metadata and tensor names."""
    if arch in ARGUMENTS:
        return ARGUMENTS[arch](Meta(file, arch))
    names = {t.name for t in file.tensors}

    def need(key: str) -> int:
        value = _int(file, f"{arch}.{key}")
        if value is None:
            raise _fail(file.path, f"{arch}.{key} is missing")
        return value

    heads = need("attention.head_count")
    args: dict[str, Any] = {
        "hidden": need("embedding_length"),
        "layers": need("block_count"),
        "heads": heads,
        "kv_heads": _int(file, f"{arch}.attention.head_count_kv", heads),
        "tie_weights": "output.weight" not in names,
    }
    vocab = _int(file, f"{arch}.vocab_size")
    if vocab is None:
        vocab = file_vocab(file)
    if vocab is None:
        raise _fail(
            file.path,
            f"neither {arch}.vocab_size, tokenizer.ggml.tokens nor token_embd.weight is there",
        )
    args["vocab"] = vocab
    for argument, key in (
        ("head_dim", "attention.key_length"),
        ("intermediate", "feed_forward_length"),
        ("experts", "expert_count"),
        ("experts_per_token", "expert_used_count"),
        ("moe_intermediate", "expert_feed_forward_length"),
        ("shared_intermediate", "expert_shared_feed_forward_length"),
    ):
        value = _int(file, f"{arch}.{key}")
        if value is not None:
            args[argument] = value
    if "blk.0.attn_q.bias" in names:
        args["attention_bias"] = True
    if "blk.0.ffn_up.bias" in names:
        args["mlp_bias"] = True
    return args


def _config(t: HFType, args: dict[str, Any]) -> dict[str, Any] | None:
    """The transformers config of type ``t`` with these arguments, by its own keys; None
    when the type has no key for an argument the file sets (experts in a dense type)."""
    config: dict[str, Any] = {
        "model_type": t.model_type,
        "architectures": [t.head_class],
        "pad_token_id": None,
    }
    for argument, value in args.items():
        keys = t.fields(argument)
        if not keys:
            if value in (0, False) or argument in (
                "tie_weights",
                "head_dim",
                "attention_bias",
                "mlp_bias",
            ):
                continue
            return None
        config[keys[0]] = value
    return config


def hf_config(file: GGUFFile) -> dict[str, Any]:
    """The transformers config the file's ``<arch>.*`` metadata describes (sizes only):
    the first type converting to its architecture that takes every size it sets."""
    return _model(file)[0]


def _model(file: GGUFFile) -> tuple[dict[str, Any], HFModel]:
    from shapecalc.adapters.hf_config import hf_model

    arch = file.architecture
    if arch is None:
        raise _fail(file.path, "general.architecture is missing: the file names no model")
    types = gguf_types()
    if arch not in types:
        raise _fail(
            file.path,
            f"general.architecture {printable(arch)[:40]!r}: shapecalc checks {', '.join(types)}",
        )
    args = _arguments(file, arch)
    args.pop("_mtp", None)
    wanted: dict[str, Any] = args.pop("_fixed", {})
    fields: dict[str, Any] = args.pop("_config", {})
    refused: InvalidArgumentError | None = None
    for t in types[arch]:
        if any(t.fixed.get(k, v) != v for k, v in wanted.items()):
            continue  # a type that fixes otherwise what the file shows
        config = _config(t, args)
        if config is None:
            continue
        config.update(fields)
        try:
            return config, hf_model(config)
        except InvalidArgumentError as err:
            refused = refused or err
    said = refused.message if refused else "no type takes its sizes"
    raise _fail(file.path, f"its metadata is not a model shapecalc builds: {said}")


@dataclass(frozen=True)
class GGUFCheck:
    """A GGUF file's tensors set against the model its metadata describes."""

    path: str
    architecture: str
    model_type: str
    config: dict[str, Any]
    expected_total: int
    matched: int
    missing: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    unexpected: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    wrong_shape: tuple[tuple[str, tuple[int, ...], tuple[int, ...], str], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)


def _same(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Shapes ggml takes for one (its ne padded with ones: (1, H) is (H,))."""
    while a[:1] == (1,) and len(a) > 1:
        a = a[1:]
    while b[:1] == (1,) and len(b) > 1:
        b = b[1:]
    return a == b


def check_gguf(file: GGUFFile) -> GGUFCheck:
    """The file's tensors against the model its metadata describes: every tensor
    missing, unexpected or of another shape, named as GGUF names it (with the
    transformers name it stands for)."""
    count = file.metadata.get("split.count")
    if isinstance(count, int) and not isinstance(count, bool) and count > 1:
        number = file.metadata.get("split.no")
        which = f"shard {number + 1} of {count}" if isinstance(number, int) else "a shard"
        raise InvalidArgumentError(
            f"{which} (split.count = {count}): the check needs every shard's tensors",
            field="target",
            value=file.path,
            rule="a split GGUF is checked whole",
        )
    config, hf = _model(file)
    model = hf.model()
    arch = file.architecture or ""
    stored = {t.name: t for t in file.tensors}
    # DeepSeek's kv_b_proj whole (attn_kv_b), as converters wrote it before the split
    whole = (
        FAMILIES.get(arch, None) is not None
        and FAMILIES[arch].split_kv_b
        and any(n.endswith(".attn_kv_b.weight") for n in stored)
    )
    mtp = _mtp(file, arch)
    expected, unmapped = gguf_tensors(model, arch, buffers=True, kv_b=whole, mtp=mtp)
    # the MTP layers' tensors llama.cpp's loader takes when there (TENSOR_NOT_REQUIRED)
    expected = [e for e in expected if e.how != "mtp, optional" or e.name in stored]
    want = {e.name: e for e in expected}
    missing = tuple((e.name, e.shape, e.source) for e in expected if e.name not in stored)
    wrong = tuple(
        (e.name, e.shape, stored[e.name].shape, e.source)
        for e in expected
        if e.name in stored and not _same(e.shape, stored[e.name].shape)
    )
    notes: list[str] = []
    extra = []
    for t in file.tensors:
        if t.name in want:
            continue
        if t.name == "rope_freqs.weight" and file.architecture == "llama":
            notes.append(
                f"rope_freqs.weight {list(t.shape)}: llama.cpp's rope scaling factors "
                "(Llama 3.1's rope_scaling), no transformers parameter"
            )
            continue
        extra.append((t.name, t.shape, t.type.name))
    if unmapped:
        notes.append(
            f"{len(unmapped):,} transformers tensors have no GGUF name here: "
            + ", ".join(unmapped[:3])
        )
    if file.architecture in ("llama", "granite"):  # LlamaModel.permute
        notes.append("q_proj and k_proj rows are permuted by the conversion (shapes kept)")
    if mtp:
        extra_mtp = sum(_count(e.shape) for e in expected if e.how.startswith("mtp"))
        own = _int(file, f"{arch}.block_count", 0) or 0
        notes.append(
            f"{arch}.block_count = {own:,} counts {mtp} MTP (nextn) "
            f"layer{'s' if mtp > 1 else ''} after the model's {own - mtp:,} "
            f"({extra_mtp:,} parameters transformers does not build; in the total)"
        )
    family = FAMILIES.get(arch)
    if family is not None:
        notes.extend(
            n.replace(
                "kv_b_proj is split per head into attn_k_b (transposed) and attn_v_b",
                "kv_b_proj is whole (attn_kv_b), as converters wrote it before they "
                "split it into attn_k_b and attn_v_b",
            )
            if whole
            else n
            for n in family.notes
        )
    elif any(e.how for e in expected):
        notes.append(
            "transformers' fused experts gate_up_proj (E, 2F, H) are stored as "
            "ffn_gate_exps and ffn_up_exps, (E, F, H) each"
        )
    total = sum(_count(e.shape) for e in expected if e.how != "buffer")
    return GGUFCheck(
        path=file.path,
        architecture=file.architecture or "",
        model_type=config["model_type"],
        config=config,
        expected_total=total,
        # agreeing in name and shape: those of another shape are told apart
        matched=sum(1 for e in expected if e.name in stored) - len(wrong),
        missing=missing,
        unexpected=tuple(extra),
        wrong_shape=wrong,
        notes=tuple(notes),
    )


def _mtp(file: GGUFFile, arch: str) -> int:
    """The MTP (nextn) layers a file of an architecture that has them holds after the
    model's own (``<arch>.nextn_predict_layers``), else 0."""
    family = FAMILIES.get(arch)
    if family is None or not family.mtp:
        return 0
    return Meta(file, arch).get("nextn_predict_layers", 0) or 0


def _count(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def metadata_summary(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata with arrays as their lengths (for JSON)."""
    return {
        k: (f"[{v.length:,} {v.item_type}]" if isinstance(v, GGUFArray) else v)
        for k, v in metadata.items()
    }
