"""Reading checkpoints' shapes without loading their weights.

A ``.safetensors`` file is read by its header only, without torch: 8 bytes of header
length, then that many bytes of JSON. A 100 GB checkpoint is inspected in milliseconds.
Every field is checked; a malformed, truncated or hostile file raises
:class:`CheckpointError` and never allocates more than the header cap.

A ``.pt``/``.pth``/``.bin`` state dict goes through ``torch.load(weights_only=True,
mmap=True)``, which maps the file instead of reading it and refuses pickles that want to
run code.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import operator
import os
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import Any

from shapecalc.core.errors import ShapecalcError, echo, field_error, printable

__all__ = [
    "BUFFER_NAMES",
    "DTYPE_SIZES",
    "MAX_HEADER",
    "TORCH_DTYPES",
    "Checkpoint",
    "CheckpointError",
    "Tensor",
    "buffer_flags",
    "is_buffer_name",
    "read_checkpoint",
    "read_safetensors",
]

#: the cap on a safetensors header: larger ones are refused before anything is read
MAX_HEADER = 100 * 1024 * 1024
#: safetensors dtype -> bytes per element
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}

#: safetensors dtype -> torch's name for it, the one spelling every format is shown in
#: (a torch.save file's tensors and a config's ``dtype`` are spelled so)
TORCH_DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E8M0": "float8_e8m0fnu",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "I64": "int64",
    "U64": "uint64",
    "F64": "float64",
    "C64": "complex64",
}


#: the names torch.nn's own modules register buffers under (``register_buffer`` in
#: torch/nn/modules): BatchNorm's and InstanceNorm's running statistics, FractionalMaxPool's
#: samples, BCEWithLogitsLoss's pos_weight. A file does not record which tensors are
#: buffers, so a checkpoint's are told apart by the last part of their names. The loss
#: classes' ``weight`` buffer is left out: ``weight`` is a parameter everywhere else.
BUFFER_NAMES = frozenset(
    {"running_mean", "running_var", "num_batches_tracked", "_random_samples", "pos_weight"}
)


def is_buffer_name(name: str) -> bool:
    """Whether a stored tensor is taken for a buffer: the last part of its name is one of
    :data:`BUFFER_NAMES` (``bn1.running_mean``), as torch.nn's own modules name them."""
    return name.endswith(_BUFFER_ENDINGS) and name.rpartition(".")[2] in BUFFER_NAMES


#: what a buffer's name ends with: most names are told apart by this one test
_BUFFER_ENDINGS = tuple(BUFFER_NAMES)


class CheckpointError(ShapecalcError):
    """A checkpoint file that cannot be read as what it claims to be."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @cached_property
    def count(self) -> int:
        result = 1
        for d in self.shape:
            result *= d
        return result


@dataclass(frozen=True)
class Checkpoint:
    path: str
    format: str
    tensors: tuple[Tensor, ...]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Every number stored, parameters and buffers."""
        return sum(t.count for t in self.tensors)

    @property
    def buffer_total(self) -> int:
        """The numbers in tensors named as torch.nn's buffers (see :func:`is_buffer_name`)."""
        flags = buffer_flags(list(map(_name, self.tensors)))
        return sum(itertools.compress(map(_count, self.tensors), flags))

    @property
    def parameter_total(self) -> int:
        """The numbers in every other tensor: the parameters, as the names tell them apart."""
        return self.total - self.buffer_total

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes
        return out


_count, _name = operator.attrgetter("count"), operator.attrgetter("name")


def buffer_flags(names: list[str]) -> list[bool]:
    """:func:`is_buffer_name` of each name: most are told apart in one pass (a buffer's
    name ends as one does), the few that do end so looked at one by one."""
    ends = list(map(str.endswith, names, repeat(_BUFFER_ENDINGS)))
    if not any(ends):
        return ends
    return [end and is_buffer_name(name) for name, end in zip(names, ends, strict=True)]


def _shown(text: str, limit: int = 80) -> str:
    """A name from a file in a message: control characters escaped, cut to ``limit``."""
    shown = printable(str(text))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


#: what a file that is not safetensors is refused with
NOT_SAFETENSORS = (
    "not a safetensors file: one holds 8 bytes of header length, then a JSON header "
    "beginning with '{'"
)


def _fail(path: str, message: str, *, folder: bool = False) -> ShapecalcError:
    """``model.safetensors: <message>``: a file that is not a well-formed checkpoint
    (``folder``: named with its folder, as given, for a file that is not there)."""
    message = f"{_shown(path if folder else os.path.basename(path), 200)}: {message}"
    rule = "a checkpoint must be well formed"
    return field_error("target", path, rule, message, kind=CheckpointError)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: making hundreds of thousands of small objects
    (a header's entries) would set it walking them again and again; none holds a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: a JSON string (its contents are what the shape check leaves out), written unrolled
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: what never stands in a header's JSON outside its strings: a list or an object in a list,
#: an object not after a key
_NOT_A_TABLE = (b"[[", b"[{", b"{{", b",{", b",[", b"{[", b'["')


#: every byte but the punctuation the patterns above are made of
_NOT_PUNCTUATION = bytes(b for b in range(256) if b not in b'[]{},"')


def _odd(compact: bytes) -> str | None:
    if any(pattern in compact for pattern in _NOT_A_TABLE):
        return "the header is not a table of tensors (lists or objects nested where none go)"
    brackets = compact.count(b"{") + compact.count(b"[")
    if brackets > len(compact) // 8 + 4:
        return (
            f"the header is not a table of tensors ({brackets:,} brackets in "
            f"{len(compact):,} bytes; a tensor's entry takes at least 8 bytes a bracket)"
        )
    return None


def _header_shape(raw: bytes) -> str | None:
    """Why ``raw`` cannot be a table of tensors, judged before any object is built (so a
    header of millions of empty lists costs its bytes, not gigabytes): an object of
    ``name: {dtype, shape, data_offsets}``, lists holding numbers only, at most one
    bracket in 8 bytes. A header that looks like one at a glance (no such pattern, few
    brackets, strings and all) is not looked at twice; else its strings are taken out
    and it is judged on what remains. None when it may be one."""
    compact = raw.translate(None, b" \t\r\n")
    if not compact.startswith(b"{"):
        return "the header is not a JSON object"
    # first on its punctuation alone (a fifth of its bytes, read faster): a pattern of
    # compact is one of this too, so none here is none there; any found is looked at again
    punctuation = raw.translate(None, _NOT_PUNCTUATION)
    brackets = punctuation.count(b"{") + punctuation.count(b"[")
    if brackets <= len(compact) // 8 + 4 and not any(p in punctuation for p in _NOT_A_TABLE):
        return None
    if _odd(compact) is None:
        return None
    return _odd(_STRING.sub(b'""', compact))


def read_safetensors(path: str) -> Checkpoint:
    """Names, dtypes and shapes from a safetensors file's header, checked against the file."""
    with paused_gc():
        return _read_safetensors(path)


def _read_safetensors(path: str) -> Checkpoint:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(8)
            if not head:
                raise _fail(path, "the file is empty (0 bytes): not a checkpoint")
            if len(head) < 8:
                raise _fail(path, f"{size} bytes is too short for a safetensors header (8 bytes)")
            (length,) = struct.unpack("<Q", head)
            # a header begins with "{": else the file is not safetensors, and its first
            # 8 bytes are not echoed back as a length (they may be any file's text)
            if handle.read(1) != b"{":
                raise _fail(path, NOT_SAFETENSORS)
            if length > MAX_HEADER:
                raise _fail(
                    path, f"the header claims {length:,} bytes, over the {MAX_HEADER:,} cap"
                )
            if 8 + length > size:
                raise _fail(
                    path,
                    f"the header length {length:,} runs past the end of the file ({size:,} bytes)",
                )
            raw = b"{" + handle.read(length - 1)
    except OSError as err:
        raise _fail(path, f"cannot read it ({err.strerror or err})") from None
    odd = _header_shape(raw)
    if odd is not None:
        raise _fail(path, odd)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _fail(path, f"the header is not valid JSON ({type(err).__name__})") from None
    if not isinstance(header, dict):
        raise _fail(path, "the header is not a JSON object")
    if raw.count(b'"data_offsets"') > len(header):  # more entries written than read
        twice = _duplicate(raw)
        if twice is not None:
            raise _fail(path, f"{_shown(twice)}: the header names this tensor twice")
    data_size = size - 8 - length
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _fail(path, "__metadata__ must map strings to strings")
    entries = _entries(path, header, data_size)
    entries.sort()  # the file's data order (empty tensors as written; positions differ)
    tensors = [e[3] for e in entries]
    end = 0
    for begin, stop, _, tensor in entries:
        if begin != end:
            name = tensor.name
            if begin < end:
                raise _fail(path, f"{_shown(name)}: data_offsets overlap the tensor before it")
            raise _fail(path, f"{_shown(name)}: data_offsets leave a gap of {begin - end} bytes")
        end = stop
    if end != data_size:
        raise _fail(path, f"the tensors cover {end:,} bytes but the data holds {data_size:,}")
    return Checkpoint(path, "safetensors", tuple(tensors), dict(metadata))


def _duplicate(raw: bytes) -> str | None:
    """The first name a safetensors header gives twice (json.loads keeps the last), or
    None: parsed again, only when the header holds more entries than names."""
    twice: list[str | None] = [None]

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        # called for every object, the header itself last: its answer is the one kept
        seen: set[str] = set()
        twice[0] = None
        for key, _ in items:
            if key in seen:
                twice[0] = key
                break
            seen.add(key)
        return dict(items)

    json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    return twice[0]


def _entries(
    path: str, header: dict[str, Any], data_size: int
) -> list[tuple[int, int, int, Tensor]]:
    """Every entry as (begin, stop, position, tensor). A well-formed entry is checked and
    made inline (a header holds hundreds of thousands); the first that is not goes to
    :func:`_entry`, which says what is wrong with it."""
    sizes, names, new, cls = DTYPE_SIZES, TORCH_DTYPES, _new, Tensor
    entries: list[tuple[int, int, int, Tensor]] = []
    append = entries.append
    for position, (name, entry) in enumerate(header.items()):
        if type(entry) is dict:
            dtype, shape = entry.get("dtype"), entry.get("shape")
            offsets = entry.get("data_offsets")
            if type(dtype) is str and type(shape) is list and type(offsets) is list:
                size = sizes.get(dtype)
                if size is not None and len(offsets) == 2:
                    begin, stop = offsets
                    if type(begin) is int and type(stop) is int and 0 <= begin <= stop <= data_size:
                        count = 1
                        for d in shape:  # JSON's integers are int, never bool
                            if type(d) is not int or d < 0:
                                break
                            count *= d
                        else:
                            if count * size == stop - begin:
                                tensor = new(cls)
                                tensor.__dict__.update(
                                    name=name,
                                    dtype=names[dtype],
                                    shape=tuple(shape),
                                    nbytes=stop - begin,
                                    count=count,
                                )
                                append((begin, stop, position, tensor))
                                continue
        tensor, (begin, stop) = _entry(path, name, entry, data_size)
        append((begin, stop, position, tensor))
    return entries


def _entry(path: str, name: str, entry: Any, data_size: int) -> tuple[Tensor, tuple[int, int]]:
    """One entry checked, the first rule it breaks raised (:func:`_entries`' slow way)."""
    if not isinstance(entry, dict):
        raise _fail(path, f"{_shown(name)}: expected an object with dtype, shape and data_offsets")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if type(dtype) is not str or dtype not in DTYPE_SIZES:
        raise _fail(path, f"{_shown(name)}: unknown dtype {_shown(repr(dtype))}")
    count = 1
    if type(shape) is not list:
        raise _fail(path, f"{_shown(name)}: shape must be a list of non-negative integers")
    for d in shape:  # JSON's integers are int, never bool: type() is the exact test
        if type(d) is not int or d < 0:
            raise _fail(path, f"{_shown(name)}: shape must be a list of non-negative integers")
        count *= d
    if type(offsets) is not list or len(offsets) != 2:
        raise _fail(path, f"{_shown(name)}: data_offsets must be two integers")
    begin, stop = offsets
    if type(begin) is not int or type(stop) is not int:
        raise _fail(path, f"{_shown(name)}: data_offsets must be two integers")
    if not 0 <= begin <= stop <= data_size:
        raise _fail(
            path,
            f"{_shown(name)}: data_offsets [{_shown(str(begin), 24)}, {_shown(str(stop), 24)}] "
            f"lie outside the data ({data_size:,} bytes)",
        )
    if count * DTYPE_SIZES[dtype] != stop - begin:
        raise _fail(
            path,
            f"{_shown(name)}: {dtype} {_shown(str(tuple(shape)), 40)} needs "
            f"{_bytes(count * DTYPE_SIZES[dtype])} bytes but "
            f"data_offsets give {stop - begin:,}",
        )
    # made by the hundred thousand: its fields set at once, as Tensor(...) would set them,
    # and its count, known here, so that the cached property need not work it out
    tensor = _new(Tensor)
    tensor.__dict__.update(
        name=name, dtype=TORCH_DTYPES[dtype], shape=tuple(shape), nbytes=stop - begin, count=count
    )
    return tensor, (begin, stop)


_new = object.__new__


def _bytes(n: int) -> str:
    """A byte count in a message: ``1,024``, or its length in digits when Python would not
    write it (a product of in-range dims may pass the 4,300-digit limit)."""
    return _shown(format(n, ",") if n.bit_length() <= 200 else echo(n), 40)


#: the most containers and the deepest nesting a loaded state dict may have
MAX_NODES = 1_000_000
MAX_DEPTH = 64


def _torch_tensors(path: str, loaded: Any, torch: Any) -> list[tuple[str, Any]]:
    """Every tensor in a loaded object, named by its dotted path: walked without recursion,
    each container and tensor once (by identity: a list holding itself, or one object
    reached by many paths, is walked once, under its first name), refused past
    :data:`MAX_NODES` containers or :data:`MAX_DEPTH` levels."""
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("", loaded, 0)]
    nodes = 0
    while stack:
        prefix, value, depth = stack.pop()
        if id(value) in seen:
            continue
        if isinstance(value, torch.Tensor):
            seen.add(id(value))
            found.append((prefix, value))
            continue
        if isinstance(value, dict):
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            continue
        seen.add(id(value))
        nodes += 1
        if nodes > MAX_NODES or depth >= MAX_DEPTH:
            what = (
                f"more than {MAX_NODES:,} lists and dicts"
                if nodes > MAX_NODES
                else f"lists and dicts nested more than {MAX_DEPTH} deep"
            )
            raise _fail(path, f"it holds {what}: not a state dict shapecalc walks")
        for key, item in reversed(items):
            stack.append((f"{prefix}.{key}" if prefix else key, item, depth + 1))
    return found


def read_state_dict(path: str) -> Checkpoint:
    """A torch.save file: ``torch.load(weights_only=True, mmap=True)``; never unpickles code."""
    from shapecalc.adapters.torch_build import load_torch

    torch = load_torch()
    try:
        with warnings.catch_warnings():  # torch warns of old pickle protocols, on stderr
            warnings.simplefilter("ignore")
            loaded = _load(torch, path)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except RecursionError:
        raise _fail(path, "it nests too deep to load") from None
    except Exception as err:  # torch raises many types for a bad file; all mean "refused"
        raise _fail(path, _refusal(err, path)) from None
    tensors = tuple(
        Tensor(
            name,
            str(t.dtype).removeprefix("torch."),
            tuple(int(d) for d in t.shape),
            int(t.numel()) * t.element_size(),
        )
        for name, t in _torch_tensors(path, loaded, torch)
    )
    if not tensors:
        raise _fail(path, "it holds no tensors")
    return Checkpoint(path, "torch", tensors)


def _load(torch: Any, path: str) -> Any:
    try:
        return torch.load(path, weights_only=True, mmap=True, map_location="cpu")
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
        # the legacy (pre-zip) format cannot be mapped: read it, still without code
        return torch.load(path, weights_only=True, map_location="cpu")


def _cut_zip(path: str) -> bool:
    """Whether ``path`` starts as a zip (torch.save's format) but is no whole zip: its
    central directory, at the end, is missing or broken."""
    import zipfile

    try:
        with open(path, "rb") as handle:
            start = handle.read(4)
        return start == b"PK\x03\x04" and not zipfile.is_zipfile(path)
    except OSError:
        return False


def _refusal(err: Exception, path: str) -> str:
    """Why torch.load refused the file ``path``, in one line."""
    text = str(err)
    if "Weights only load failed" in text and "Unsupported operand" in text:
        return (
            "it was written with a pickle protocol older than 2, which torch.load("
            "weights_only=True) does not read; save it again with torch.save's default "
            "protocol to inspect it"
        )
    if "Weights only load failed" in text:
        return (
            "it holds objects that are not plain tensors (a pickle that would run code "
            "when loaded); refused by torch.load(weights_only=True)"
        )
    printable = "".join(ch for ch in text if ch.isprintable() or ch == "\n").strip()
    first = printable.splitlines()[0] if printable else type(err).__name__
    if _cut_zip(path):  # torch's zip reader (miniz), or mmap, on a cut or damaged file
        said = first.split(". ")[0].removeprefix("PytorchStreamReader ")
        return (
            "it is a truncated or damaged PyTorch zip checkpoint (torch.load(weights_only="
            f"True) could not read it: {said[:120]}); save or copy it again"
        )
    if len(first) > 200:  # whole sentences, never one cut in the middle
        kept = first[:200].rpartition(". ")[0]
        first = kept + "." if kept else first[:199] + "…"
    return f"torch.load(weights_only=True) could not read it: {first}"


#: what a file that is no checkpoint is, by its first bytes, and what reads it instead
OTHER_FILES = (
    (b"\x89HDF", "an HDF5 file (a Keras .h5 model?)", "Keras reads it"),
    (b"GGUF", "a GGUF file (llama.cpp)", "`shapecalc inspect FILE.gguf` reads it"),
    (b"\x08", "an ONNX model?", "onnx.load reads it"),
)


def _kind(path: str) -> tuple[str, str]:
    """What a file is by its first bytes: ``("safetensors", "")``, ``("torch", "")`` (a
    zip archive or the legacy pickle), or ``("other", why)``, what it is in words with
    what to use instead."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError as err:
        raise _fail(path, f"cannot read it ({err.strerror or type(err).__name__})") from None
    if not head:
        return "other", "the file is empty (0 bytes): not a checkpoint"
    lower = path.lower()
    if lower.endswith(".json") or head.lstrip()[:1] in (b"{", b"["):
        return "other", (
            "it is a JSON file, not a checkpoint: for a model's config.json use `shapecalc "
            "hf FILE`, for a downloaded folder `shapecalc inspect FOLDER`"
        )
    if lower.endswith(".keras"):
        return "other", (
            "it is a Keras 3 archive, not a PyTorch checkpoint: keras.saving.load_model reads it"
        )
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torch", ""
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors", ""
    if lower.endswith((".pt", ".pth", ".bin")):  # a text or other file named as torch's
        return "other", "neither a torch.save archive (a zip file) nor a legacy torch pickle"
    for magic, what, instead in OTHER_FILES:
        if head.startswith(magic) and (magic != b"\x08" or lower.endswith(".onnx")):
            return "other", f"it is {what}, not a PyTorch or safetensors checkpoint: {instead}"
    return "other", (
        "neither a safetensors file (8 bytes of header length, then a JSON header) nor a "
        "torch.save archive"
    )


#: how torch.save's legacy format begins with pickle protocol 0 or 1: its magic number
LEGACY_MAGIC = b"L119547037146038801333356"


def _old_protocol(path: str) -> bool:
    """Whether a file begins as a legacy torch.save of pickle protocol 0 or 1."""
    with open(path, "rb") as handle:
        return handle.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC


def read_checkpoint(path: str) -> Checkpoint:
    """By extension: ``.safetensors`` by its header; ``.pt``, ``.pth``, ``.bin`` via torch;
    any other file by its first bytes, refused in words when it is neither."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"read_checkpoint: path must be a str or os.PathLike, got {type(path).__name__}"
        )
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError("read_checkpoint: path must be a text path, got bytes")
    if not os.path.isfile(path):
        there = os.path.exists(path)
        raise _fail(path, "not a regular file" if there else "no such file", folder=not there)
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    if path.endswith((".pt", ".pth", ".bin")):  # torch's own: torch.load decides
        if os.path.getsize(path) == 0:
            raise _fail(path, "the file is empty (0 bytes): not a checkpoint")
        try:
            return read_state_dict(path)
        except CheckpointError as refused:
            kind, why = _kind(path)
            if kind == "other" and not why.startswith("neither"):
                raise _fail(path, why) from None
            if kind == "other" and not _old_protocol(path):
                raise _fail(path, f"not a PyTorch checkpoint: {why}") from None
            raise refused from None
    kind, why = _kind(path)
    if kind == "other":
        raise _fail(path, why)
    return read_safetensors(path) if kind == "safetensors" else read_state_dict(path)
