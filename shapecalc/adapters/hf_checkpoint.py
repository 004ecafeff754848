"""A downloaded checkpoint folder against its ``config.json``: headers only.

A folder holds ``config.json`` and its weights: ``model.safetensors``, shards listed by
``model.safetensors.index.json``, or the older ``pytorch_model.bin`` (and its index).
Every shard is read by its header (safetensors) or mapped without running code (torch),
and each tensor is set against what the config implies, as transformers loads it: the
body's prefix added or dropped, the names it renames on load (``embed_out`` to ``lm_head``,
``LayerNorm.gamma`` to ``.weight``), the buffers it drops without a word, tied tensors
that a file may leave out, and Mixtral's experts one by one or fused. What remains is
reported: tensors missing, unexpected, of the wrong shape, of another dtype than the
config's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shapecalc.adapters.checkpoint import (
    TORCH_DTYPES,
    Checkpoint,
    CheckpointError,
    Tensor,
    read_checkpoint,
)
from shapecalc.adapters.hf_config import HFModel, fp8_blocks, hf_model
from shapecalc.adapters.hub import (
    left,
    link_root,
    read_config,
    resolve,
    shown_name,
    shown_value,
    within,
)
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, field_error
from shapecalc.core.model import Model

__all__ = ["FolderCheck", "check_folder", "read_folder"]

#: what transformers 5 renames in any checkpoint it loads (its "legacy" mapping)
LEGACY = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))
#: the weight files of a folder, in the order transformers looks for them
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLES = ("model.safetensors", "pytorch_model.bin")
#: an index.json larger than this is not an index
MAX_INDEX = 64 * 1024 * 1024


def _fail(folder: str, message: str) -> ShapecalcError:
    rule = "a checkpoint folder holds its weights and their index"
    return field_error("target", folder, rule, f"{folder}: {message}", kind=CheckpointError)


def _dtype(name: str) -> str:
    return TORCH_DTYPES.get(name, name)


def _index(folder: str, name: str) -> dict[str, str]:
    """An index's ``weight_map``: tensor name -> shard file."""
    path = os.path.join(folder, name)
    if os.path.getsize(path) > MAX_INDEX:
        raise _fail(folder, f"{name} is over {MAX_INDEX:,} bytes: not an index")
    try:
        with open(path, "rb") as handle:
            index = json.loads(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _fail(folder, f"{name} is not a JSON index ({type(err).__name__})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise _fail(folder, f"{name} has no weight_map of tensor names to files")
    for file in set(weight_map.values()):
        if os.path.basename(file) != file or file in ("", ".", ".."):
            raise _fail(folder, f"{name} names a shard outside the folder: {file[:120]!r}")
    return weight_map


def read_folder(folder: str) -> tuple[Checkpoint, list[str]]:
    """Every tensor of a folder's weights (its shards read one by one, headers only), and
    what does not agree with the index: a shard missing, a tensor in the wrong shard or in
    none."""
    try:
        return _read_folder(folder)
    except OSError as err:  # a folder or a file it cannot read
        raise _fail(folder, f"cannot read it ({err.strerror or type(err).__name__})") from None


def _inside(folder: str, root: str, name: str) -> str:
    """``folder/name``, refused when a link takes it outside ``root``."""
    path = os.path.join(folder, name)
    if os.path.lexists(path) and not within(path, root):
        raise _fail(folder, left(name))
    return path


def _read_folder(folder: str) -> tuple[Checkpoint, list[str]]:
    problems: list[str] = []
    root = link_root(folder)
    for name in (*INDEXES, *SINGLES):
        _inside(folder, root, name)
    index = next((n for n in INDEXES if os.path.isfile(os.path.join(folder, n))), None)
    if index is not None:
        weight_map = _index(folder, index)
        files = sorted(set(weight_map.values()))
    else:
        weight_map = {}
        single = next((n for n in SINGLES if os.path.isfile(os.path.join(folder, n))), None)
        files = (
            [single]
            if single
            else sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
        )
        if len(files) > 1:
            problems.append(
                f"{len(files)} safetensors shards and no model.safetensors.index.json: "
                "transformers finds neither model.safetensors nor the index, and loads nothing"
            )
    if not files:
        raise _fail(
            folder,
            "no weights: expected model.safetensors, shards with model.safetensors.index.json, "
            "or pytorch_model.bin",
        )
    tensors: list[Tensor] = []
    metadata: dict[str, str] = {}
    formats: set[str] = set()
    for file in files:
        path = _inside(folder, root, file)
        if not os.path.isfile(path):
            said = f"is named by {index} but is not" if index else "is not a regular file"
            problems.append(f"shard {file} {said} in the folder")
            continue
        shard = read_checkpoint(path)
        formats.add(shard.format)
        metadata.update(shard.metadata)
        for tensor in shard.tensors:
            if weight_map and weight_map.get(tensor.name) != file:
                where = weight_map.get(tensor.name)
                problems.append(
                    f"{tensor.name} is in {file} but {index} "
                    + (f"puts it in {where}" if where else "does not list it")
                )
            tensors.append(tensor)
    found = {t.name for t in tensors}
    for name, file in weight_map.items():
        if name not in found and os.path.isfile(os.path.join(folder, file)):
            problems.append(f"{name} is listed in {index} but {file} does not hold it")
    seen: set[str] = set()
    for tensor in tensors:
        if tensor.name in seen:
            problems.append(f"{tensor.name} is stored twice")
        seen.add(tensor.name)
    source = formats.pop() if len(formats) == 1 else "safetensors"
    return Checkpoint(folder, source, tuple(tensors), metadata), problems


@dataclass(frozen=True)
class Mismatch:
    """A tensor whose shape (tuples) or dtype (names) is not the config's."""

    name: str
    expected: Any
    found: Any


@dataclass(frozen=True)
class FolderCheck:
    """A checkpoint folder set against its config: what agrees and what does not."""

    folder: str
    hf: HFModel
    checkpoint: Checkpoint
    #: the layout the names were matched in (``transformers`` or ``checkpoint files``)
    layout: str
    expected_total: int
    matched: int
    missing: tuple[tuple[str, tuple[int, ...]], ...] = ()
    unexpected: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    wrong_shape: tuple[Mismatch, ...] = ()
    wrong_dtype: tuple[Mismatch, ...] = ()
    #: tensors transformers drops on load (old buffers)
    ignored: tuple[str, ...] = ()
    #: checkpoint name -> the name transformers gives it on load
    renamed: tuple[tuple[str, str], ...] = ()
    #: tied tensors the checkpoint leaves out (stored once, under the other name)
    tied_absent: tuple[str, ...] = ()
    #: tied tensors the checkpoint stores again beside the name it loads them from (a
    #: T5's encoder.embed_tokens.weight beside shared.weight): name -> that name; one
    #: tensor once loaded, counted once
    tied_copies: tuple[tuple[str, str], ...] = ()
    index_problems: tuple[str, ...] = ()
    #: quantized linear layers' weights and the tensors stored for them
    quantized: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: tensors the checkpoint holds that transformers does not load (DeepSeek-V3's and
    #: GLM-4.5's multi-token prediction layers after the last)
    held: tuple[str, ...] = ()
    dtype: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.unexpected
            or self.wrong_shape
            or self.wrong_dtype
            or self.index_problems
        )

    @property
    def stored_total(self) -> int:
        """The numbers the checkpoint stores, its dropped buffers, the layers
        transformers does not load and the second copies of tied tensors aside."""
        dropped = set(self.ignored) | set(self.held) | {n for n, _ in self.tied_copies}
        return sum(t.count for t in self.checkpoint.tensors if t.name not in dropped)

    @property
    def problems(self) -> int:
        return (
            len(self.missing)
            + len(self.unexpected)
            + len(self.wrong_shape)
            + len(self.wrong_dtype)
            + len(self.index_problems)
        )


def _tie_holders(
    ties: Mapping[str, str],
    tied: set[str],
    stored: dict[str, Tensor],
    expected: dict[str, tuple[int, ...]],
) -> tuple[dict[str, str], dict[str, str]]:
    """Each group of tied tensors (a source and the names tied to it) as the checkpoint
    stores it: the sources stored only under a tied name -> that name (transformers loads
    the source from it), and the tied names stored again beside the one it loads from ->
    that one (a copy). A group stored under no name is left to the caller (missing)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(tied, key=list(expected).index):
        groups.setdefault(ties[name], []).append(name)
    holders: dict[str, str] = {}
    copies: dict[str, str] = {}
    for source, names in groups.items():
        held = [
            n
            for n in (source, *names)
            if n in stored and tuple(stored[n].shape) == expected[source]
        ]
        if not held:
            continue
        if held[0] != source:
            holders[source] = held[0]
        copies.update((n, held[0]) for n in held[1:])
    return holders, copies


def _quantizable(model: Model, names: list[str], quantization: dict[str, Any]) -> set[str]:
    """The weights a quantization stores in its own form: those of the linear layers,
    except the modules it keeps (``modules_to_not_convert`` and the like)."""
    keep = set()
    for key in ("modules_to_not_convert", "llm_int8_skip_modules", "ignore", "ignored_layers"):
        value = quantization.get(key)
        if isinstance(value, list):
            keep |= {str(v) for v in value}
    kinds = {layer.name: layer.spec.kind for layer in model.layers}
    linear = [
        re.compile(re.sub(r"\\\{\d+(?:,\d+)?\\\.\\\.\d+\\\}", r"\\d+", re.escape(row.name)) + "$")
        for row in model.rows()
        if kinds.get(row.layer) in ("Linear", "Conv1D", "Experts")
    ]
    out = set()
    for name in names:
        parts = name.split(".")
        if any(k in parts or name.startswith(k + ".") for k in keep):
            continue
        if any(p.match(name) for p in linear):
            out.add(name)
    return out


#: a run's part of an escaped name (``\\{0\\.\\.23\\}``), as any layer number
_RUNS = re.compile(r"\\\{\d+(?:,\d+)?\\\.\\\.\d+\\\}")


def _own_dtypes(model: Model, names: list[str]) -> dict[str, str]:
    """The names among ``names`` whose tensor keeps a dtype of its own, whatever the
    weights' (MXFP4's uint8 blocks and scales) -> that dtype."""
    owned = [(row.name, row.param.dtype) for row in model.rows() if row.param.dtype]
    # and buffers of a dtype of their own (batch norm's int64 num_batches_tracked)
    owned += [(name, buffer.dtype) for name, buffer in model.buffer_rows() if buffer.dtype]
    patterns = [
        (re.compile(_RUNS.sub(r"\\d+", re.escape(name)) + "$"), dtype) for name, dtype in owned
    ]
    if not patterns:
        return {}
    out = {}
    for name in names:
        found = next((d for p, d in patterns if p.match(name)), None)
        if found is not None:
            out[name] = found
    return out


def _held(hf: HFModel, layers: Any) -> re.Pattern[str] | None:
    """The names of the multi-token prediction layers a config says its checkpoint holds
    after the last layer (``num_nextn_predict_layers``): ``model.layers.{L}.*`` on, which
    transformers does not load."""
    config = hf.config
    count = config.get("num_nextn_predict_layers", config.get("num_mtp_layers"))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        return None
    if isinstance(layers, bool) or not isinstance(layers, int) or count > 1_000:
        return None
    numbers = "|".join(str(layers + i) for i in range(count))
    return re.compile(rf"^(?:{re.escape(hf.family.base)}\.)?layers\.(?:{numbers})\.")


def _block_scales(
    hf: HFModel, expected: dict[str, tuple[int, ...]], stored: dict[str, Tensor]
) -> tuple[dict[str, str], list[Mismatch]]:
    """fp8 block-scaled weights (DeepSeek-V3's ``quantization_config``: ``weight_block_size``
    [rows, columns]): each ``X.weight_scale_inv`` belongs to ``X.weight``, one scale per
    block, ⌈out / rows⌉ × ⌈in / columns⌉. (scale -> its weight, scales of the wrong shape)."""
    block = fp8_blocks(hf.config)
    if block is None:
        return {}, []
    owners: dict[str, str] = {}
    wrong: list[Mismatch] = []
    for name, tensor in stored.items():
        if not name.endswith(".weight_scale_inv"):
            continue
        weight = name[: -len("_scale_inv")]
        shape = expected.get(weight)
        if shape is None or len(shape) != 2:
            continue
        want = (-(-shape[0] // block[0]), -(-shape[1] // block[1]))
        owners[name] = weight
        if tensor.shape != want:
            wrong.append(Mismatch(name, want, tensor.shape))
    return owners, wrong


def _mtp_shapes(
    expected: dict[str, tuple[int, ...]], held: list[str], first: int
) -> dict[str, tuple[int, ...]]:
    """The shapes the multi-token prediction layers (``layers.{first}`` on) must have: a
    decoder layer of the model's mixture kind (its last layer with experts, renumbered),
    ``enorm`` and ``hnorm`` (H), ``eh_proj`` (H, 2·H), ``shared_head.norm`` (H),
    ``shared_head.head`` and ``embed_tokens`` (V, H), as DeepSeek-V3's checkpoint names
    them. Only these are checked; any other held name is not."""
    embed = next((n for n in expected if n.endswith("embed_tokens.weight")), None)
    if embed is None or len(expected[embed]) != 2:
        return {}
    prefix = embed[: -len("embed_tokens.weight")]
    vocab, hidden = expected[embed]
    layer = re.compile(rf"^{re.escape(prefix)}layers\.(\d+)\.(.+)$")
    by_layer: dict[int, dict[str, tuple[int, ...]]] = {}
    for name, shape in expected.items():
        m = layer.match(name)
        if m:
            by_layer.setdefault(int(m.group(1)), {})[m.group(2)] = shape
    if not by_layer:
        return {}
    mixed = [i for i, names in by_layer.items() if any(".experts." in n for n in names)]
    source = by_layer[max(mixed) if mixed else max(by_layer)]
    numbers = {int(m.group(1)) for n in held if (m := layer.match(n))}
    out: dict[str, tuple[int, ...]] = {}
    for index in sorted(i for i in numbers if i >= first):
        own = {
            "enorm.weight": (hidden,),
            "hnorm.weight": (hidden,),
            "eh_proj.weight": (hidden, 2 * hidden),
            "shared_head.norm.weight": (hidden,),
            "shared_head.head.weight": (vocab, hidden),
            "embed_tokens.weight": (vocab, hidden),
        }
        for rest, shape in {**source, **own}.items():
            out[f"{prefix}layers.{index}.{rest}"] = shape
    return out


def _scale_shape(shape: tuple[int, ...], block: tuple[int, int]) -> tuple[int, int]:
    return -(-shape[0] // block[0]), -(-shape[1] // block[1])


def _match(
    hf: HFModel,
    model: Model,
    stored: dict[str, Tensor],
    dtype: str | None,
    exact: bool = False,
    absent: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """One layout's account of the stored tensors against ``model`` (``exact``: the
    quantization's stored tensors are modelled, every one is checked; ``absent``: names
    in a shard the folder lacks, counted with that shard, not listed one by one)."""
    layers = hf.architecture.arguments().get("layers")
    held_names = _held(hf, layers)
    held = [n for n in stored if held_names is not None and held_names.search(n)]
    held_stored = {n: stored[n] for n in held}
    if held:
        stored = {n: t for n, t in stored.items() if n not in set(held)}
    expected = {
        name: tuple(d for d in shape if isinstance(d, int))
        for name, shape in model.named_parameters()
    }
    tied_in_order = [k for k, v in model.ties.items() if v in expected]
    tied = set(tied_in_order)
    for name in tied_in_order:  # in the tree's order: which stored copy holds a group
        expected[name] = expected[model.ties[name]]
    holders, copies = _tie_holders(model.ties, tied, stored, expected)
    # persistent buffers (a router's e_score_correction_bias) are saved with the weights,
    # in a dtype of their own; those the family drops on load are not expected
    buffers = {
        name: tuple(d for d in shape if isinstance(d, int))
        for name, shape in model.named_buffers()
        if name not in expected and not any(re.search(p, name) for p in hf.family.dropped)
    }
    params = expected
    expected = {**params, **buffers}
    quantization = hf.quantization
    quantized = (
        _quantizable(model, list(params), dict(quantization))
        if quantization and not exact
        else set()
    )
    missing: list[tuple[str, tuple[int, ...]]] = []
    tied_absent: list[tuple[str, tuple[int, ...]]] = []
    wrong_shape: list[Mismatch] = []
    used: set[str] = set()
    quantized_found: list[tuple[str, tuple[str, ...]]] = []
    for name, shape in expected.items():
        tensor = stored.get(name)
        if name in quantized and (tensor is None or tensor.shape != shape):
            module = name.rsplit(".", 1)[0] + "."
            parts = tuple(n for n in stored if n.startswith(module) and n not in expected)
            if tensor is not None:
                parts = (name, *parts)
            if parts:
                used.update(parts)
                quantized_found.append((name, parts))
                continue
        if tensor is None:
            if name in absent:
                continue  # its shard is missing: said once, with the shard
            (tied_absent if name in tied or name in holders else missing).append((name, shape))
            continue
        used.add(name)
        if tensor.shape != shape and not _varies(model, name, shape, tensor.shape):
            wrong_shape.append(Mismatch(name, shape, tensor.shape))
    scales, wrong_scales = _block_scales(hf, expected, stored)
    wrong_shape.extend(wrong_scales)
    scaled = set(scales.values())
    if scales:
        used.update(scales)
        by_weight: dict[str, list[str]] = {}
        for scale, weight in scales.items():
            by_weight.setdefault(weight, []).append(scale)
        quantized_found.extend(
            (w, (w, *sorted(by_weight[w]))) for w in sorted(by_weight) if w in used
        )
    # the prediction layers: each known name against the shape it must have
    block = fp8_blocks(hf.config)
    unchecked: list[str] = []  # held names of no known shape
    if held and isinstance(layers, int):
        mtp = _mtp_shapes(expected, held, layers)
        for name, tensor in held_stored.items():
            must = mtp.get(name)
            if must is None and block and name.endswith(".weight_scale_inv"):
                owner = mtp.get(name[: -len("_scale_inv")])
                must = _scale_shape(owner, block) if owner and len(owner) == 2 else None
            if must is None:
                unchecked.append(name)
            elif tensor.shape != must:
                wrong_shape.append(Mismatch(name, must, tensor.shape))
    ignored = [
        n for n in stored if n not in used and any(re.search(p, n) for p in hf.family.dropped)
    ]
    unexpected = [
        (n, t.shape, _dtype(t.dtype))
        for n, t in stored.items()
        if n not in used and n not in ignored
    ]
    if quantized:  # a quantized model's scales and zero points, under its modules
        modules = {q.rsplit(".", 1)[0] + "." for q in quantized}
        extra = [u for u in unexpected if any(u[0].startswith(m) for m in modules)]
        unexpected = [u for u in unexpected if u not in extra]
    matched = [n for n in used if n in expected and (n in scaled or n not in dict(quantized_found))]
    floats = {"float32", "float16", "bfloat16", "float64"}
    own = _own_dtypes(model, matched)  # tensors stored in a dtype of their own (uint8 blocks)
    counts: dict[str, int] = {}
    for n in matched:
        if n not in own and n not in buffers:
            d = _dtype(stored[n].dtype)
            counts[d] = counts.get(d, 0) + 1
    want = dtype or (max(counts, key=lambda d: counts[d]) if counts else None)
    wrong_dtype = []
    for n in matched:
        if n in scaled:
            continue
        found, wanted = _dtype(stored[n].dtype), own.get(n, want if want in floats else None)
        if (
            block
            and found.startswith("float8")
            and n.endswith(".weight")
            and len(params.get(n, ())) == 2
        ):
            # an fp8 weight of a block-scaled checkpoint without its scale
            missing.append((n + "_scale_inv", _scale_shape(params[n], block)))
            continue
        if n in buffers and found in ("float32", wanted):
            continue  # a buffer may keep its own dtype (float32)
        if wanted is not None and found != wanted:
            wrong_dtype.append(Mismatch(n, wanted, found))
    return {
        "missing": tuple(missing),
        "unexpected": tuple(unexpected),
        "wrong_shape": tuple(wrong_shape),
        "wrong_dtype": tuple(wrong_dtype),
        "ignored": tuple(ignored),
        "tied_absent": tuple(n for n, _ in tied_absent),
        "tied_copies": tuple(sorted(copies.items())),
        "quantized": tuple(quantized_found),
        "held": tuple(held),
        "held_unchecked": tuple(unchecked),
        # agreeing in name, shape and dtype: those of another shape or dtype are told apart
        "matched": len(
            set(matched) - {m.name for m in wrong_shape} - {m.name for m in wrong_dtype}
        ),
        "dtype": want,
    }


def _loaded_names(hf: HFModel, names: list[str], model: Model) -> dict[str, str]:
    """Each stored name -> the name transformers gives it on load: the legacy renames, the
    family's, and the body's prefix added (a body's checkpoint in a class with a head) or
    dropped (a class with a head's checkpoint in the body)."""
    out = {}
    for name in names:
        new = name
        for old, replacement in LEGACY:
            if new.endswith(old):
                new = new[: -len(old)] + replacement
        for old, replacement in hf.family.renamed.items():
            if new.startswith(old):
                new = replacement + new[len(old) :]
        out[name] = new
    prefix = hf.family.base + "."
    expected = [name for name, _ in model.named_parameters()] + list(model.ties)
    with_prefix = any(n.startswith(prefix) for n in expected)
    stored_prefix = any(n.startswith(prefix) for n in out.values())
    if with_prefix and not stored_prefix:
        heads = {n for n in expected if not n.startswith(prefix)}
        out = {k: v if v in heads else prefix + v for k, v in out.items()}
    elif not with_prefix and stored_prefix:
        out = {k: v[len(prefix) :] if v.startswith(prefix) else v for k, v in out.items()}
    return out


#: the most tensors a config may imply beyond those stored before the check stops listing
#: them: it says how many, counted, instead of naming each one missing
MAX_UNLISTED = 100_000


def _countable(model: Model, stored: int, path: str) -> None:
    """Refuse to list, name by name, a model whose config implies far more tensors than
    the folder holds (a config of 1.6 million experts against one tensor): counted, not
    listed, as ``shapecalc hf`` counts it."""
    implied = model.tensor_count()
    if isinstance(implied, int) and implied - stored > MAX_UNLISTED:
        rule = f"at most {MAX_UNLISTED:,} tensors implied and not stored are listed"
        raise InvalidArgumentError(
            f"the config implies {implied:,} tensors and the folder stores {stored:,}: over "
            f"{MAX_UNLISTED:,} would be missing, not listed one by one (`shapecalc hf` "
            "counts the config's model)",
            field="target",
            value=path,
            rule=rule,
        )


def _exact(hf: HFModel, layouts: list[tuple[str, Model]]) -> bool:
    """Whether shapecalc models every tensor the config's quantization stores: a
    block-scaled fp8 checkpoint keeps every weight's shape (and adds its scales); an MXFP4
    one is the checkpoint layout's blocks and scales, each of its own dtype. Any other
    quantization stores tensors shapecalc does not model."""
    if fp8_blocks(hf.config) is not None:
        return True
    method = (hf.quantization or {}).get("quant_method")
    return method == "mxfp4" and any(
        row.param.dtype
        for label, model in layouts
        if label != "transformers"
        for row in model.rows()
    )


def _varies(model: Model, name: str, want: tuple[int, ...], found: tuple[int, ...]) -> bool:
    """A stored tensor whose length the quantization says depends on the numbers (a
    double-quantized bitsandbytes state's JSON): one dimension either way, within 8."""
    chosen = model.quantization
    if chosen is None or not chosen.method.varies(name):
        return False
    return len(want) == len(found) == 1 and abs(want[0] - found[0]) <= 8


def _quantized_layout(hf: HFModel, model: Model, path: str) -> tuple[str, Model] | None:
    """The model stored as the config's quantization_config says, when shapecalc models
    its method; a setting it refuses is refused here, in one line."""
    from shapecalc.adapters.hf_quant import config_quantization
    from shapecalc.quant import quantize

    try:
        chosen = config_quantization(hf)
        if chosen is None:
            return None
        return "quantized", quantize(model, chosen)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(
            f"{err.message} (in the folder's config.json)",
            field="target",
            value=path,
            rule=err.rule,
        ) from None


def _lost(folder: str) -> dict[str, str]:
    """The tensors an index puts in shards the folder does not hold -> that shard."""
    index = next((n for n in INDEXES if os.path.isfile(os.path.join(folder, n))), None)
    if index is None:
        return {}
    try:
        weight_map = _index(folder, index)
    except (ShapecalcError, OSError):
        return {}  # said by read_folder
    present = {f: os.path.isfile(os.path.join(folder, f)) for f in set(weight_map.values())}
    return {name: file for name, file in weight_map.items() if not present[file]}


def _lost_first(problems: list[str], lost: dict[str, str]) -> list[str]:
    """The index's problems, each missing shard first, with the count of its tensors and
    a few of their names (not one line per tensor missing)."""
    by_file: dict[str, list[str]] = {}
    for name, file in lost.items():
        by_file.setdefault(file, []).append(name)
    first: list[str] = []
    rest: list[str] = []
    for problem in problems:
        shard = next((f for f in by_file if problem.startswith(f"shard {f} ")), None)
        if shard is None:
            rest.append(problem)
            continue
        names = by_file[shard]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3:,} more" if len(names) > 3 else "")
        first.append(f"{problem}: its {len(names):,} tensors are missing ({shown})")
    return first + rest


def check_folder(path: str, allow: tuple[str, ...] = ()) -> FolderCheck:
    """The folder's (or cached Hub id's) weights against its config.json (``allow``: the
    config's fields to count the model without, as ``shapecalc hf --allow-field``)."""
    source = resolve(path)
    try:
        config = read_config(source)
        quantized = ("quantization_config",) if "quantization_config" in config else ()
        hf = hf_model(source.config, allow=(*quantized, *allow))
    except InvalidArgumentError as err:
        raise InvalidArgumentError(
            f"{err.message} (in the folder's config.json)",
            field="target",
            value=path,
            rule=err.rule,
        ) from None
    checkpoint, index_problems = read_folder(source.folder)
    lost = _lost(source.folder)
    if lost:  # the cause first, and what it takes away counted, not listed
        index_problems = _lost_first(index_problems, lost)
    dtype = hf.dtype if hf.dtype in TORCH_DTYPES.values() else None
    best: tuple[int, str, Model, dict[str, Any], dict[str, str]] | None = None
    layouts = [("transformers", hf.model())]
    if hf.family.checkpoint:
        # sizes no checkpoint stores so (MXFP4's blocks of 32): the class's layout alone
        with contextlib.suppress(InvalidArgumentError):
            layouts.insert(0, ("checkpoint files", hf.checkpoint_model()))
    refused: InvalidArgumentError | None = None
    exact = _exact(hf, layouts)
    if not exact or fp8_blocks(hf.config) is not None:
        # a quantization shapecalc stores: its tensors, every one checked (block fp8's
        # checkpoint layouts, experts one by one, are checked as before, this beside them)
        as_stored = _quantized_layout(hf, layouts[-1][1], path)
        if as_stored is not None:
            layouts = [*layouts, as_stored] if exact else [as_stored]
            exact = True
    for label, model in layouts:
        try:
            _countable(model, len(checkpoint.tensors), path)
        except InvalidArgumentError as err:  # counted, not listed: try the other layout
            refused = refused or err
            continue
        names = _loaded_names(hf, [t.name for t in checkpoint.tensors], model)
        stored = {names[t.name]: t for t in checkpoint.tensors}
        absent = frozenset(_loaded_names(hf, list(lost), model).values()) if lost else frozenset()
        found = _match(hf, model, stored, dtype, exact, absent)
        score = len(found["missing"]) + len(found["unexpected"]) + len(found["wrong_shape"])
        if best is None or score < best[0]:
            best = (score, label, model, found, names)
    if best is None:
        assert refused is not None  # at least one layout
        raise refused
    _, layout, model, found, names = best
    renamed = tuple((k, v) for k, v in names.items() if k != v)
    stored_as = {v: k for k, v in names.items()}  # what the files call them
    found["ignored"] = tuple(stored_as[n] for n in found["ignored"])
    found["held"] = tuple(stored_as[n] for n in found["held"])
    unchecked = [stored_as[n] for n in found.pop("held_unchecked")]
    found["unexpected"] = tuple((stored_as[n], s, d) for n, s, d in found["unexpected"])
    notes = []
    if hf.quantization:
        method = hf.quantization.get("quant_method")
        # text from the config: escaped and cut, as any value from a file
        method = shown_name(method, 30) if isinstance(method, str) else "a quantization"
        bits = hf.quantization.get("bits") or (hf.quantization.get("load_in_4bit") and 4)
        bits = shown_value(bits, 12) if bits else None
        block = fp8_blocks(hf.config)
        if block is not None:
            notes.append(
                f"quantized ({method}, blocks of {block[0]} × {block[1]}): every weight keeps "
                "its shape, each weight_scale_inv one scale per block of its weight: all checked"
            )
        elif exact and model.quantization is not None:
            notes.append(
                f"quantized ({model.quantization.describe()}): every tensor it stores, "
                "named, shaped and typed as shapecalc models it: all checked"
            )
        elif exact:
            notes.append(
                f"quantized ({method}): the experts' weights are stored as the checkpoint "
                "layout's blocks and scales, each of its own dtype: all checked"
            )
        else:
            notes.append(
                f"quantized ({method}{f', {bits} bits' if bits else ''}): the linear layers' "
                "weights are stored in its own tensors and dtypes, not the config's shapes"
            )
    if unchecked:
        shown = ", ".join(shown_name(n, 80) for n in unchecked[:3])
        more = f" and {len(unchecked) - 3:,} more" if len(unchecked) > 3 else ""
        notes.append(
            f"{len(unchecked):,} held tensors of the prediction layers are not checked: "
            f"shapecalc does not know their shapes ({shown}{more})"
        )
    return FolderCheck(
        folder=source.label,
        hf=hf,
        checkpoint=checkpoint,
        layout=layout,
        expected_total=model.total if isinstance(model.total, int) else 0,
        index_problems=tuple(index_problems),
        renamed=renamed,
        notes=tuple(notes),
        **found,
    )
